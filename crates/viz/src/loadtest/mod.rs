//! `viz loadtest ADDR`: many real encrypted clients from one process (or, with
//! `--rtp`, plain RTP senders: see [`rtp`]).
//!
//! Every client has its own identity, its own UDP socket, does the real Noise handshake
//! (and the CPace password exchange when a password is given), says Hello and stays
//! in the room. Speakers send real Opus, pre-encoded from distinct speech-like signals
//! (DTX pauses included) so that the load lands on the server rather than on this
//! process's encoders; every client decrypts and parses everything it receives.
//!
//! Latency: the first few listeners also decode what they receive and lay it on a
//! timeline (by timestamp, anchored at the median arrival); every speaker's audio is
//! laid on the same clock by send time and summed, which is what the room's mix should
//! be. The cross-correlation peak of their loudness envelopes is the one-way delay from the speakers' sends to a
//! listener's arrival through the room (network both ways, the server's jitter buffer,
//! mixing, encoding). A client's own jitter buffer and device come on top of that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::net::UdpSocket;
use viz_audio::codec::{Decoder, Encoded, Encoder, MAX_PACKET, MAX_PACKET_SAMPLES};
use viz_audio::{AudioParams, analysis, signals};
use viz_client::address::JoinAddress;
use viz_proto::password::JoinerPassword;
use viz_proto::{
    ControlMessage, Event, HostKeyPolicy, Initiator, Keypair, MAX_DATAGRAM, MediaFrame, Received, SessionConfig,
};
use zeroize::Zeroizing;

use crate::cli::LoadtestArgs;

mod rtp;
mod server;
mod window;

use window::Window;

/// Listeners that decode and record for the latency measurement.
const RECORDING_LISTENERS: usize = 3;
/// Seconds of each speaker's signal (looped).
const SIGNAL_SECONDS: usize = 12;
/// How long a client waits to be admitted.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One speaker's audio, pre-encoded: per 20 ms frame, the samples and the packet
/// (`None` where DTX sends nothing).
pub(crate) struct Voice {
    pcm: Vec<f32>,
    packets: Vec<Option<Vec<u8>>>,
}

fn prepare_voice(seed: u64) -> Result<Voice> {
    let params = AudioParams::default();
    let frame = params.frame.samples();
    let pcm = signals::speech_like(seed, SIGNAL_SECONDS * 48_000);
    let mut enc = Encoder::new(params)?;
    let mut buf = vec![0u8; MAX_PACKET];
    let mut packets = Vec::new();
    for chunk in pcm.chunks_exact(frame) {
        // What the real sender does: digital silence is not sent.
        let silent = chunk.iter().all(|s| s.abs() < viz_client::engine::sender::DIGITAL_SILENCE_PEAK);
        packets.push(match enc.encode(chunk, &mut buf)? {
            Encoded::Packet(n) if !silent => Some(buf[..n].to_vec()),
            _ => None,
        });
    }
    Ok(Voice { pcm, packets })
}

#[derive(Debug, Default)]
pub(crate) struct ClientResult {
    joined: bool,
    /// This client told the window it joined or gave up.
    settled: bool,
    failure: Option<String>,
    join_ms: f64,
    /// Media received, and expected by sequence number, within the window.
    media_received: u64,
    media_expected: u64,
    /// Media sent over the whole run (what the server's counter is compared with).
    media_sent: u64,
    /// Speakers: which voice, and (scheduled send instant, frame index) of each packet.
    voice: Option<usize>,
    sent_frames: Vec<(Instant, usize)>,
    /// Recording listeners only: every packet, decoded.
    heard: Vec<Heard>,
}

#[derive(Debug)]
struct Heard {
    at: Instant,
    ts: u32,
    pcm: Vec<f32>,
}

pub(crate) struct ClientSpec {
    index: usize,
    speaker: Option<usize>,
    records: bool,
    start_at: Instant,
    window: Arc<Window>,
}

impl ClientSpec {
    /// Tells the window this client joined or gave up, once.
    fn settle(&self, r: &mut ClientResult) {
        if !r.settled {
            r.settled = true;
            self.window.settle(Instant::now());
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    clients: usize,
    speakers: usize,
    joined: usize,
    failed: usize,
    failures: Vec<String>,
    join_ms_median: f64,
    join_ms_p95: f64,
    join_ms_max: f64,
    /// Seconds measured: from a second after the last join, for --duration.
    window_s: f64,
    /// Server to clients, within the window: sequence gaps at the clients.
    loss_to_clients_percent: f64,
    /// Clients to server, over the whole run: what the clients sent against what the
    /// server's /metrics counted (with --metrics only).
    #[serde(skip_serializing_if = "Option::is_none")]
    loss_to_server_percent: Option<f64>,
    media_received: u64,
    media_sent: u64,
    latency_ms: Vec<f64>,
    latency_correlation: Vec<f64>,
    /// With --metrics: the server's mixer during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<server::ServerFigures>,
}

/// Unwraps 16-bit sequence numbers to count expected packets.
#[derive(Default)]
struct SeqSpan {
    first: Option<i64>,
    last: i64,
}

impl SeqSpan {
    fn see(&mut self, seq: u16) {
        match self.first {
            None => {
                self.first = Some(i64::from(seq));
                self.last = i64::from(seq);
            }
            Some(_) => {
                let delta = i64::from(seq.wrapping_sub(self.last as u16) as i16);
                if delta > 0 {
                    self.last += delta;
                }
            }
        }
    }

    fn expected(&self) -> u64 {
        self.first.map_or(0, |f| (self.last - f + 1) as u64)
    }
}

async fn client(
    spec: ClientSpec,
    target: std::net::SocketAddr,
    policy: HostKeyPolicy,
    password: Option<Arc<str>>,
    voices: Arc<Vec<Voice>>,
) -> ClientResult {
    let mut r = ClientResult { voice: spec.speaker, ..Default::default() };
    tokio::time::sleep_until(spec.start_at.into()).await;
    if let Err(e) = run_client(&spec, target, policy, password, &voices, &mut r).await {
        r.failure = Some(e.to_string());
    }
    spec.settle(&mut r);
    r
}

async fn run_client(
    spec: &ClientSpec,
    target: std::net::SocketAddr,
    policy: HostKeyPolicy,
    password: Option<Arc<str>>,
    voices: &[Voice],
    r: &mut ClientResult,
) -> Result<()> {
    let bind: std::net::SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(target).await?;
    let keypair = Keypair::generate()?;
    let began = Instant::now();
    let mut init = Initiator::new(&keypair, policy, rand::random::<u32>().max(1), began, SessionConfig::default())?;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let est = loop {
        let now = Instant::now();
        if now > began + JOIN_TIMEOUT {
            bail!("no handshake answer within {} s", JOIN_TIMEOUT.as_secs());
        }
        if let Some(d) = init.poll_transmit(now) {
            sock.send(d).await?;
        }
        let wake = init.poll_timeout().min(now + Duration::from_millis(200));
        tokio::select! {
            got = sock.recv(&mut buf) => {
                let n = got?;
                if let Some(est) = init.handle_datagram(Instant::now(), &buf[..n])? {
                    break est;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    };
    let mut conn = est.connection;
    let mut exchange = None;
    if let Some(pw) = &password {
        let (x, start) = JoinerPassword::start(pw, conn.handshake_hash())?;
        conn.send_control(ControlMessage::PasswordStart(start));
        exchange = Some(x);
    }
    let mut hello = viz_client::join::hello(&format!("load-{}", spec.index), &AudioParams::default());
    hello.sends_audio = spec.speaker.is_some();
    conn.send_control(ControlMessage::Hello(hello));

    let mut out = vec![0u8; MAX_DATAGRAM];
    let mut plain = vec![0u8; MAX_DATAGRAM];
    let mut decoder = if spec.records { Some(Decoder::new()?) } else { None };
    let mut pcm = vec![0.0f32; MAX_PACKET_SAMPLES];
    let mut seqs = SeqSpan::default();
    let mut joined_at: Option<Instant> = None;
    let frame = Duration::from_millis(20);
    let mut next_frame = Instant::now() + frame;
    let (mut k, mut seq, mut marker) = (0usize, 0u16, true);
    let mut closing = false;
    loop {
        let now = Instant::now();
        while let Some(n) = conn.poll_transmit(now, &mut out) {
            sock.send(&out[..n]).await?;
        }
        if conn.is_closed() {
            break;
        }
        if joined_at.is_none() && now > began + JOIN_TIMEOUT {
            bail!("not admitted within {} s", JOIN_TIMEOUT.as_secs());
        }
        if spec.window.over(now) && !closing {
            closing = true;
            conn.close(now, viz_proto::ByeReason::Leaving);
            continue;
        }
        // Until the window is known, look again every 200 ms.
        let stop = spec.window.stop_at().unwrap_or(now + Duration::from_millis(200));
        let mut wake = conn.poll_timeout().unwrap_or(now + Duration::from_secs(1)).min(stop);
        if spec.speaker.is_some() && joined_at.is_some() {
            wake = wake.min(next_frame);
        }
        tokio::select! {
            got = sock.recv(&mut buf) => {
                let n = match got { Ok(n) => n, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => bail!("server unreachable"), Err(e) => return Err(e.into()) };
                let at = Instant::now();
                if let Ok(Received::Media(m)) = conn.handle_datagram(at, &buf[..n], &mut plain) {
                    if spec.window.contains(at) {
                        r.media_received += 1;
                        seqs.see(m.seq);
                    }
                    if let Some(d) = decoder.as_mut() {
                        let mut heard = Vec::new();
                        for f in m.frames() {
                            if let Ok(n) = d.decode(f, &mut pcm) {
                                heard.extend_from_slice(&pcm[..n]);
                            }
                        }
                        r.heard.push(Heard { at, ts: m.timestamp, pcm: heard });
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        conn.handle_timeout(now);
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Control(ControlMessage::PasswordReply { reply, proof }) => {
                    let Some(x) = exchange.take() else { continue };
                    let mine = x.finish(&reply, &proof).context("wrong password")?;
                    conn.send_control(ControlMessage::PasswordProof(mine));
                }
                Event::Control(ControlMessage::Hello(_)) if joined_at.is_none() => {
                    joined_at = Some(now);
                    r.joined = true;
                    r.join_ms = (now - began).as_secs_f64() * 1000.0;
                    spec.settle(r);
                    next_frame = now + frame;
                }
                Event::PeerLeft(reason) if joined_at.is_none() => bail!("refused: the server {reason}"),
                Event::PeerLeft(reason) => bail!("dropped: the server {reason}"),
                Event::TimedOut => bail!("timed out"),
                _ => {}
            }
        }
        // Speakers: every frame on an absolute schedule, DTX gaps sent as nothing.
        if let Some(v) = spec.speaker
            && joined_at.is_some()
            && !closing
        {
            let voice = &voices[v];
            while now >= next_frame {
                let i = k % voice.packets.len();
                let ts = (k * 960) as u32;
                match &voice.packets[i] {
                    Some(p) => {
                        if let Some(frame) = MediaFrame::new(0, seq, ts, marker, &[p])
                            && let Ok(n) = conn.send_media(now, &frame, &mut out)
                        {
                            sock.send(&out[..n]).await?;
                            r.media_sent += 1;
                            r.sent_frames.push((next_frame, i));
                        }
                        seq = seq.wrapping_add(1);
                        marker = false;
                    }
                    None => marker = true,
                }
                k += 1;
                next_frame += frame;
            }
        }
    }
    r.media_expected = seqs.expected();
    Ok(())
}

/// RMS per millisecond, mean removed.
fn envelope(x: &[f32]) -> Vec<f32> {
    let mut e: Vec<f32> = x.chunks(48).map(analysis::rms).collect();
    let mean = e.iter().sum::<f32>() / e.len().max(1) as f32;
    e.iter_mut().for_each(|v| *v -= mean);
    e
}

/// What the room should be mixing: every speaker's sent audio on one clock. Frames are
/// placed at their scheduled send times, which are exact multiples of the frame.
fn sent_mix(epoch: Instant, len: usize, voices: &[Voice], results: &[ClientResult]) -> Vec<f32> {
    let mut reference = vec![0.0f32; len];
    for r in results {
        let Some(v) = r.voice else { continue };
        for &(t, i) in &r.sent_frames {
            // Sent when its last sample was "captured": its audio began a frame earlier.
            let start = samples_between(epoch, t).saturating_sub(960);
            let src = &voices[v].pcm[i * 960..(i + 1) * 960];
            if let Some(dst) = reference.get_mut(start..start + 960) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
    reference
}

fn samples_between(epoch: Instant, t: Instant) -> usize {
    (t.saturating_duration_since(epoch).as_secs_f64() * 48_000.0) as usize
}

/// One-way latency from the speakers' sends to a recording listener's arrivals.
///
/// The received audio is laid out by its RTP timestamps (continuous, no arrival
/// jitter), anchored so that a packet's audio starts one packet duration before its
/// median arrival: a packet can only arrive once all of its audio exists.
fn latency(epoch: Instant, reference: &[f32], heard: &[Heard]) -> Option<(f64, f64)> {
    let first_ts = heard.first()?.ts;
    let rel = |ts: u32| i64::from(ts.wrapping_sub(first_ts) as i32);
    let mut anchors: Vec<i64> =
        heard.iter().map(|h| samples_between(epoch, h.at) as i64 - h.pcm.len() as i64 - rel(h.ts)).collect();
    anchors.sort_unstable();
    let anchor = anchors[anchors.len() / 2];
    let mut recorded = vec![0.0f32; reference.len()];
    for h in heard {
        let Ok(start) = usize::try_from(anchor + rel(h.ts)) else { continue };
        if let Some(dst) = recorded.get_mut(start..start + h.pcm.len()) {
            dst.copy_from_slice(&h.pcm);
        }
    }
    // Compared by loudness envelope (1 ms steps), not waveform: Opus at 32 kb/s keeps
    // the envelope but not the phase of voiced speech, so waveform correlation has
    // peaks one pitch period either side of the true delay.
    let (e_ref, e_rec) = (envelope(reference), envelope(&recorded));
    let d = analysis::find_delay_within(&e_ref, &e_rec, 0, 500)?;
    Some((d.lag_samples as f64, f64::from(d.correlation)))
}

pub async fn run(args: LoadtestArgs) -> Result<()> {
    if args.clients == 0 || args.speakers > args.clients {
        bail!("--speakers must be at most --clients, and --clients at least 1");
    }
    if args.server_pid.is_some() && !cfg!(target_os = "linux") {
        bail!("--server-pid reads the server's CPU time from /proc and works on Linux only");
    }
    let address = JoinAddress::parse(&args.address).with_context(|| format!("invalid address '{}'", args.address))?;
    let target = tokio::net::lookup_host(address.socket_target())
        .await
        .with_context(|| format!("cannot resolve {}", address.socket_target()))?
        .next()
        .context("no address")?;
    let rtp_target = match &args.rtp {
        Some(a) => Some(
            tokio::net::lookup_host(a.as_str())
                .await
                .with_context(|| format!("--rtp {a}: not HOST:PORT that resolves"))?
                .next()
                .context("no address")?,
        ),
        None => None,
    };
    let policy = match &address.fingerprint {
        Some(fp) => HostKeyPolicy::Pinned(fp.clone()),
        None => HostKeyPolicy::FirstUse,
    };
    let password: Option<Arc<str>> = args.password.load()?.map(|p| Arc::from(p.as_str()));
    let voices: Arc<Vec<Voice>> =
        Arc::new((0..args.speakers.max(1)).map(|i| prepare_voice(100 + i as u64)).collect::<Result<_>>()?);
    let ramp = Duration::try_from_secs_f64(args.ramp.max(0.0)).context("--ramp")?;
    let run_for = Duration::try_from_secs_f64(args.duration.max(1.0)).context("--duration")?;
    let epoch = Instant::now();
    let listeners = if rtp_target.is_some() { args.listeners } else { 0 };
    let window = Arc::new(Window::new(args.clients + listeners, run_for));
    if !args.json {
        match rtp_target {
            Some(t) => println!(
                "Load test: {} plain RTP senders ({} speaking, SSRCs from {:#010x}) to {t} over {:.0} s, \
                 {} encrypted listener(s) at {target}, then {:.0} s of audio",
                args.clients,
                args.speakers,
                rtp::FIRST_SSRC,
                ramp.as_secs_f64(),
                args.listeners,
                run_for.as_secs_f64()
            ),
            None => println!(
                "Load test: {} clients ({} speaking) joining {target} over {:.0} s, then {:.0} s of audio",
                args.clients,
                args.speakers,
                ramp.as_secs_f64(),
                run_for.as_secs_f64()
            ),
        }
    }
    let metrics_token = match &args.metrics_token_file {
        Some(path) => Some(crate::cli::read_secret_line(path, "admin token")?),
        None => args.metrics_token.clone().map(Zeroizing::new),
    };
    if let Some(url) = &args.metrics {
        // A room that refuses (no token, wrong token) or a wrong URL is said at once, not
        // found out as an empty report at the end.
        server::fetch(url, metrics_token.as_deref().map(String::as_str))
            .await
            .with_context(|| format!("reading {url} (a room asks for its admin token: --metrics-token-file)"))?;
    }
    // RTP senders join when the room lists them, which its API says (admin token).
    let admission = match (&rtp_target, &args.metrics) {
        (Some(_), Some(url)) => {
            let api = url
                .strip_suffix("/metrics")
                .map(|base| format!("{base}/api/rtp"))
                .with_context(|| format!("--metrics {url}: expected the room's URL ending in /metrics"))?;
            server::fetch(&api, metrics_token.as_deref().map(String::as_str)).await.with_context(|| {
                format!("reading {api} to see senders join (needs the admin token: --metrics-token-file)")
            })?;
            let starts = (0..args.clients).map(|i| epoch + ramp.mul_f64(i as f64 / args.clients as f64)).collect();
            Some(tokio::spawn(rtp::watch_admission(api, metrics_token.clone(), starts, window.clone())))
        }
        _ => None,
    };
    let server = args
        .metrics
        .clone()
        .map(|url| tokio::spawn(server::watch_server(url, metrics_token, window.clone(), args.server_pid)));
    let mut tasks = Vec::with_capacity(args.clients + args.listeners);
    let mut listeners_recording = 0;
    for i in 0..args.clients {
        let speaker = (i < args.speakers).then_some(i);
        let start_at = epoch + ramp.mul_f64(i as f64 / args.clients as f64);
        if let Some(rtp_target) = rtp_target {
            let spec = ClientSpec { index: i, speaker, records: false, start_at, window: window.clone() };
            let voices = voices.clone();
            let pt = args.rtp_payload_type;
            let verified = admission.is_some();
            tasks.push(tokio::spawn(async move { rtp::sender(spec, rtp_target, pt, &voices, verified).await }));
            continue;
        }
        let records = speaker.is_none() && listeners_recording < RECORDING_LISTENERS;
        if records {
            listeners_recording += 1;
        }
        let spec = ClientSpec { index: i, speaker, records, start_at, window: window.clone() };
        tasks.push(tokio::spawn(client(spec, target, policy.clone(), password.clone(), voices.clone())));
    }
    if rtp_target.is_some() {
        for l in 0..args.listeners {
            let records = l < RECORDING_LISTENERS;
            let spec =
                ClientSpec { index: args.clients + l, speaker: None, records, start_at: epoch, window: window.clone() };
            tasks.push(tokio::spawn(client(spec, target, policy.clone(), password.clone(), voices.clone())));
        }
    }
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| ClientResult { failure: Some(e.to_string()), ..Default::default() }));
    }
    if let Some(a) = admission {
        let listed = a.await.context("the admission watcher failed")?;
        for (i, (r, at)) in results.iter_mut().zip(listed).enumerate() {
            match at {
                Some(at) => {
                    r.joined = true;
                    let start = epoch + ramp.mul_f64(i as f64 / args.clients as f64);
                    r.join_ms = at.saturating_duration_since(start).as_secs_f64() * 1000.0;
                }
                None if r.failure.is_none() => {
                    r.failure = Some(format!("not listed by the room within {} s", rtp::LISTING_TIMEOUT.as_secs()));
                }
                None => {}
            }
        }
    } else if rtp_target.is_some() && !args.json {
        println!(
            "(RTP senders count as joined once they send: with --metrics and the admin token, the room's list says)"
        );
    }
    let joined: Vec<&ClientResult> = results.iter().filter(|r| r.joined).collect();
    let mut join_ms: Vec<f64> = joined.iter().map(|r| r.join_ms).collect();
    join_ms.sort_by(f64::total_cmp);
    let mut failures: Vec<String> = results.iter().filter_map(|r| r.failure.clone()).collect();
    failures.sort();
    failures.dedup();
    let received: u64 = results.iter().map(|r| r.media_received).sum();
    let expected: u64 = results.iter().map(|r| r.media_expected).sum();
    let mut latency_ms = Vec::new();
    let mut latency_correlation = Vec::new();
    if args.speakers > 0 {
        let len = samples_between(epoch, window.stop_at().unwrap_or_else(Instant::now)) + 48_000;
        let reference = sent_mix(epoch, len, &voices, &results);
        for r in results.iter().filter(|r| !r.heard.is_empty()) {
            if let Some((ms, c)) = latency(epoch, &reference, &r.heard) {
                latency_ms.push((ms * 10.0).round() / 10.0);
                latency_correlation.push((c * 100.0).round() / 100.0);
            }
        }
    }
    let server = match server {
        Some(h) => Some(h.await.context("the metrics watcher failed")?),
        None => None,
    };
    let media_sent: u64 = results.iter().map(|r| r.media_sent).sum();
    // What reached the room: its RTP port's datagrams for RTP senders (the native
    // listeners send no media), else its native media counter.
    let server_in = server.as_ref().and_then(|f| if rtp_target.is_some() { f.rtp_in } else { f.media_in });
    let loss_to_server_percent =
        server_in.filter(|_| media_sent > 0).map(|got| 100.0 * (1.0 - got as f64 / media_sent as f64).max(0.0));
    let percentile = |q: f64| join_ms.get(((join_ms.len() as f64 - 1.0) * q).round() as usize).copied();
    let report = Report {
        clients: results.len(),
        speakers: args.speakers,
        joined: joined.len(),
        failed: results.iter().filter(|r| r.failure.is_some()).count(),
        failures,
        join_ms_median: percentile(0.5).unwrap_or(f64::NAN),
        join_ms_p95: percentile(0.95).unwrap_or(f64::NAN),
        join_ms_max: join_ms.last().copied().unwrap_or(f64::NAN),
        window_s: window.bounds().map_or(0.0, |(start, end)| (end - start).as_secs_f64()),
        loss_to_clients_percent: if expected > 0 {
            100.0 * (1.0 - received as f64 / expected as f64).max(0.0)
        } else {
            0.0
        },
        loss_to_server_percent,
        media_received: received,
        media_sent,
        latency_ms,
        latency_correlation,
        server,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("Joined: {} of {} (failed: {})", report.joined, report.clients, report.failed);
        for f in &report.failures {
            println!("  failure: {f}");
        }
        println!(
            "Join time: median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            report.join_ms_median, report.join_ms_p95, report.join_ms_max
        );
        println!(
            "Media: {} packets sent over the run; in the {:.0} s window after the last join, clients received {} \
             with loss {:.3} % on the way to them",
            report.media_sent, report.window_s, report.media_received, report.loss_to_clients_percent
        );
        match report.loss_to_server_percent {
            Some(l) => println!("Loss on the way to the server (its /metrics against what was sent): {l:.3} %"),
            None => println!("Loss on the way to the server: not measured (needs --metrics)"),
        }
        if report.latency_ms.is_empty() {
            println!("Latency: not measured (no speaker, or nothing decoded)");
        } else {
            println!(
                "Latency speaker -> room -> listener (arrival, before the listener's jitter buffer): {:?} ms (correlation {:?})",
                report.latency_ms, report.latency_correlation
            );
        }
        if let Some(f) = &report.server {
            println!(
                "Server mix cycle over {} windows of 5 s: mean {:.3} ms, p99 {:.3} ms (median window) / {:.3} ms (worst), \
                 max {:.3} ms; late ticks {}; at most {} participants, {} active sources",
                f.windows.len(),
                f.mix_mean_ms,
                f.mix_p99_ms_median_window,
                f.mix_p99_ms_worst_window,
                f.mix_max_ms,
                f.late_ticks,
                f.participants_max,
                f.active_sources_max
            );
            println!(
                "Server whole tick (mix, encrypt, send): mean {:.3} ms, p99 {:.3} ms (median window) / {:.3} ms (worst), \
                 max {:.3} ms",
                f.tick_mean_ms, f.tick_p99_ms_median_window, f.tick_p99_ms_worst_window, f.tick_max_ms
            );
            if let Some(rate) = f.datagrams_in_per_s {
                println!(
                    "Server received {rate:.0} datagrams a second in the window (speech, acknowledgements, reports)"
                );
            }
            if let Some(drops) = f.kernel_drops {
                let buffer = f
                    .receive_buffer_bytes
                    .map_or(String::new(), |b| format!(" (room socket buffer {:.0} KiB)", b / 1024.0));
                let in_window =
                    f.kernel_drops_in_window.map_or(String::new(), |w| format!(", {w} of them in the window"));
                println!("Kernel UDP receive-buffer drops during the run: {drops}{in_window}{buffer}");
            }
            if let Some(cpu) = f.cpu_percent {
                println!("Server CPU: {cpu:.1} % of one core");
            }
        }
    }
    if report.failed > 0 {
        bail!("{} of {} clients failed", report.failed, report.clients);
    }
    Ok(())
}
