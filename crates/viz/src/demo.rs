//! `viz demo`: a whole call on one machine, measured.
//!
//! A host and a joiner run in this process, each on its own thread with its own
//! audio engine, talking over real loopback UDP sockets through an impairment proxy
//! (seeded loss, bursts, delay, jitter). Each side "speaks" generated speech-like audio
//! (or a WAV file) and records what it hears. Because both sides share one clock, the
//! mouth-to-ear delay is measured exactly: cross-correlate what one side said with what
//! the other recorded, and add the offset between the two recordings' start instants.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use viz_audio::analysis;
use viz_client::address::JoinAddress;
use viz_client::engine::{EngineConfig, EngineHandle, EngineReport, InputSpec, OutputSpec};
use viz_client::join::{self, JoinConfig, UserCommand};
use viz_client::status::Console;
use viz_netsim::Impairment;
use viz_proto::{ConnectionStats, Keypair, SessionConfig};
use viz_server::host::{self, HostConfig};

use crate::cli::DemoArgs;
use crate::proxy::{Proxy, ProxyStats};

/// Bytes of IPv4 (20) and UDP (8) headers under every datagram.
const IPV4_UDP: u64 = 28;

/// Windows correlating less than this are left out of the latency figures.
const MIN_WINDOW_CORRELATION: f32 = 0.5;

#[derive(Debug, Serialize)]
pub struct DirectionReport {
    /// Who speaks to whom.
    pub direction: String,
    /// Median mouth-to-ear delay over 2-second windows of speech.
    pub latency_ms: Option<f64>,
    pub latency_min_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    pub latency_windows: usize,
    /// Median waveform correlation of those windows (codec and concealment fidelity).
    pub correlation: Option<f64>,
    /// Every 2-second window of speech: where it starts, its delay and correlation.
    pub windows: Vec<WindowReport>,
    pub packets_sent: u64,
    pub packets_lost_network: u64,
    pub packets_received: u64,
    pub frames_decoded: u64,
    pub frames_concealed: u64,
    pub frames_fec_recovered: u64,
    pub frames_dred_recovered: u64,
    pub frames_late: u64,
    pub frames_comfort_noise: u64,
    pub jitter_buffer_target_ms: f64,
    /// Wire bitrate while the speaker talks (media datagrams incl. IPv4+UDP headers).
    pub kbps_talking: f64,
    /// Everything the speaker's side sent, averaged over the whole call.
    pub kbps_average: f64,
    /// Reports, acknowledgements and control messages only, averaged over the call.
    pub kbps_control: f64,
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub seconds: f64,
    pub frame_ms: u32,
    pub bitrate: u32,
    pub fec: bool,
    pub dtx: bool,
    pub batch: u8,
    pub loss_pct: f64,
    pub jitter_ms: f64,
    pub delay_ms: f64,
    pub seed: u64,
    pub directions: Vec<DirectionReport>,
    pub cpu_host_pct: f64,
    pub cpu_joiner_pct: f64,
    /// The audio engine threads alone (codec, jitter buffer, file I/O).
    pub cpu_host_engine_pct: f64,
    pub cpu_joiner_engine_pct: f64,
    pub recordings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct WindowReport {
    pub start_s: f64,
    pub latency_ms: f64,
    pub correlation: f32,
}

#[derive(Debug, Default)]
struct LatencyStats {
    median_ms: Option<f64>,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
    correlation: Option<f64>,
    windows: usize,
    detail: Vec<WindowReport>,
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

struct SideResult {
    engine: EngineReport,
    net_cpu: Duration,
    stats: Option<ConnectionStats>,
}

fn engine_config(args: &DemoArgs, input: InputSpec, output: &Path) -> Result<EngineConfig> {
    Ok(EngineConfig {
        params: args.audio.params()?,
        batch: usize::from(args.audio.batch),
        jitter: args.audio.jitter(),
        denoise: args.audio.denoise_for(&input),
        voice_gate: args.audio.voice_gate(),
        agc: args.audio.agc,
        input,
        output: OutputSpec::Wav(output.to_owned()),
        loop_input: false,
        start_muted: false,
        push_to_talk: false,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")
}

pub fn run(args: DemoArgs) -> Result<()> {
    let params = args.audio.params()?;
    if !(1.0..=3600.0).contains(&args.duration) {
        anyhow::bail!("--duration must be between 1 and 3600 seconds");
    }
    let impairment = args.impairment.impairment()?;
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("cannot create {}", args.out_dir.display()))?;

    let seconds = args.duration;
    let speech_len = ((seconds + 3.0) * 48_000.0) as usize;
    let (host_says, joiner_says): (Arc<[f32]>, Arc<[f32]>) = match args.input.as_deref().map(InputSpec::parse) {
        Some(Err(e)) => anyhow::bail!("--input: {e}"),
        Some(Ok(InputSpec::Wav(path))) => {
            let clip: Arc<[f32]> = viz_audio::wav::read_mono_48k(&path).context("--input")?.into();
            (clip.clone(), clip)
        }
        Some(Ok(InputSpec::Tone(hz))) => {
            let tone: Arc<[f32]> = viz_audio::signals::tone(hz, 0.3, speech_len).into();
            (tone.clone(), tone)
        }
        Some(Ok(InputSpec::Silence)) => {
            let quiet: Arc<[f32]> = viz_audio::signals::silence(speech_len).into();
            (quiet.clone(), quiet)
        }
        Some(Ok(_)) => anyhow::bail!("--input: the demo uses no audio devices; give FILE.wav, tone[:HZ] or silence"),
        None => (
            viz_audio::signals::speech_like(args.impairment.seed * 2 + 1, speech_len).into(),
            viz_audio::signals::speech_like(args.impairment.seed * 2 + 2, speech_len).into(),
        ),
    };
    let host_wav = args.out_dir.join("joiner-heard-by-host.wav");
    let joiner_wav = args.out_dir.join("host-heard-by-joiner.wav");
    let host_engine = engine_config(
        &args,
        InputSpec::Samples { label: "host speech".into(), samples: host_says.clone() },
        &host_wav,
    )?;
    let joiner_engine = engine_config(
        &args,
        InputSpec::Samples { label: "joiner speech".into(), samples: joiner_says.clone() },
        &joiner_wav,
    )?;

    let console = Console { quiet: true, single_keys: false };
    let out = Sides {
        a_engine: host_engine,
        b_engine: joiner_engine,
        impairment,
        seed: args.impairment.seed,
        seconds,
        params,
        known_hosts: args.out_dir.join("known_hosts"),
        console,
    };
    let run = if args.room { run_room(out, !args.no_pass_through, &args.out_dir)? } else { run_call(out)? };
    let (host, joiner, labels) = (run.a, run.b, run.labels);
    let frame_secs = f64::from(params.frame.millis()) / 1000.0;
    let directions = vec![
        direction(
            labels[0],
            &host_says,
            &joiner_wav,
            &host,
            &joiner,
            run.lost_a_to_b,
            seconds,
            frame_secs,
            args.audio.batch,
        )?,
        direction(
            labels[1],
            &joiner_says,
            &host_wav,
            &joiner,
            &host,
            run.lost_b_to_a,
            seconds,
            frame_secs,
            args.audio.batch,
        )?,
    ];
    // CPU per second of audio the side handled (its engine may run on a little after
    // the call, encoding for nobody; that time counts on both sides of the fraction).
    let audio_secs = |s: &SideResult| s.engine.running.as_secs_f64().max(seconds);
    let cpu = |s: &SideResult| (s.engine.cpu_time + s.net_cpu).as_secs_f64() / audio_secs(s) * 100.0;
    let report = DemoReport {
        seconds,
        frame_ms: params.frame.millis(),
        bitrate: params.bitrate,
        fec: params.fec,
        dtx: params.dtx,
        batch: args.audio.batch,
        loss_pct: args.impairment.loss,
        jitter_ms: args.impairment.jitter_ms,
        delay_ms: args.impairment.delay_ms,
        seed: args.impairment.seed,
        directions,
        cpu_host_pct: cpu(&host),
        cpu_joiner_pct: cpu(&joiner),
        cpu_host_engine_pct: host.engine.cpu_time.as_secs_f64() / audio_secs(&host) * 100.0,
        cpu_joiner_engine_pct: joiner.engine.cpu_time.as_secs_f64() / audio_secs(&joiner) * 100.0,
        recordings: vec![host_wav.display().to_string(), joiner_wav.display().to_string()],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// What both sides of a demo need: their engines, and the network between them.
struct Sides {
    a_engine: EngineConfig,
    b_engine: EngineConfig,
    impairment: Impairment,
    seed: u64,
    seconds: f64,
    params: viz_audio::AudioParams,
    known_hosts: std::path::PathBuf,
    console: Console,
}

struct Run {
    a: SideResult,
    b: SideResult,
    labels: [&'static str; 2],
    lost_a_to_b: u64,
    lost_b_to_a: u64,
}

/// Starts an impairment proxy in front of `upstream` on its own thread.
fn spawn_proxy(
    upstream: std::net::SocketAddr,
    impairment: Impairment,
    seed: u64,
) -> Result<(std::net::SocketAddr, oneshot::Sender<()>, std::thread::JoinHandle<Result<ProxyStats>>)> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("demo-proxy".into()).spawn(move || -> Result<ProxyStats> {
        let rt = runtime()?;
        rt.block_on(async move {
            let proxy = Proxy::start(upstream, impairment, seed).await?;
            let _ = addr_tx.send(proxy.listen);
            let _ = stop_rx.await;
            Ok(proxy.finish().await)
        })
    })?;
    let addr = addr_rx.recv().context("the impairment proxy did not start")?;
    Ok((addr, stop_tx, thread))
}

/// A joiner with its own engine on its own thread, for `seconds` of call.
fn spawn_joiner(
    name: &str,
    engine: EngineConfig,
    address: String,
    sides: &Sides,
) -> Result<std::thread::JoinHandle<Result<SideResult>>> {
    // One known-hosts file per joiner: two joiners saving one file at once would race.
    let known_hosts = sides.known_hosts.with_file_name(format!("known_hosts-{name}"));
    let mut cfg = JoinConfig::new(JoinAddress::parse(&address)?, Keypair::generate()?, known_hosts);
    cfg.name = name.into();
    cfg.params = sides.params;
    cfg.duration = Some(Duration::from_secs_f64(sides.seconds));
    cfg.status_interval = Duration::from_secs(3600);
    let console = sides.console;
    Ok(std::thread::Builder::new().name(format!("demo-{name}")).spawn(move || -> Result<SideResult> {
        let rt = runtime()?;
        let (tx, outgoing) = mpsc::channel(256);
        let engine = EngineHandle::spawn(engine, tx).map_err(anyhow::Error::msg)?;
        let (_keep, commands) = mpsc::channel(1);
        let summary = rt.block_on(join::join(cfg, &engine, outgoing, commands, console));
        let net_cpu = viz_client::cpu::thread_cpu_time();
        let engine = engine.stop();
        let summary = summary?;
        Ok(SideResult { engine, net_cpu, stats: Some(summary.stats) })
    })?)
}

/// A two-person call: `viz host` with engine A, `viz join` with engine B.
fn run_call(sides: Sides) -> Result<Run> {
    let host_key = Keypair::generate()?;
    let fingerprint = host_key.fingerprint();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (host_cmd_tx, host_cmd_rx) = mpsc::channel::<UserCommand>(4);
    let host_cfg = HostConfig {
        bind: "127.0.0.1:0".parse()?,
        websocket: false,
        keypair: host_key,
        name: "host".into(),
        params: sides.params,
        session: SessionConfig::default(),
        duration: None,
        status_interval: Duration::from_secs(3600),
        volumes: Default::default(),
    };
    let console = sides.console;
    let host_engine = sides.a_engine.clone();
    let host_thread = std::thread::Builder::new().name("demo-host".into()).spawn(move || -> Result<SideResult> {
        let rt = runtime()?;
        let (tx, outgoing) = mpsc::channel(256);
        let engine = EngineHandle::spawn(host_engine, tx).map_err(anyhow::Error::msg)?;
        let summary = rt.block_on(host::run(host_cfg, &engine, outgoing, host_cmd_rx, console, Some(ready_tx)));
        let net_cpu = viz_client::cpu::thread_cpu_time();
        let engine = engine.stop();
        let summary = summary?;
        Ok(SideResult { engine, net_cpu, stats: summary.last_call_stats })
    })?;
    let host_addr = ready_rx.blocking_recv().context("the host did not start")?;
    let (proxy_addr, proxy_stop, proxy_thread) = spawn_proxy(host_addr, sides.impairment, sides.seed)?;
    let joiner = spawn_joiner("joiner", sides.b_engine.clone(), format!("udp://{proxy_addr}#{fingerprint}"), &sides)?;
    let joiner = joiner.join().map_err(|_| anyhow::anyhow!("the joiner thread panicked"))?;
    let _ = host_cmd_tx.blocking_send(UserCommand::Leave);
    let host = host_thread.join().map_err(|_| anyhow::anyhow!("the host thread panicked"))?;
    let _ = proxy_stop.send(());
    let proxy = proxy_thread.join().map_err(|_| anyhow::anyhow!("the proxy thread panicked"))??;
    Ok(Run {
        a: host.context("host")?,
        b: joiner.context("joiner")?,
        labels: ["host -> joiner", "joiner -> host"],
        lost_a_to_b: proxy.down.dropped,
        lost_b_to_a: proxy.up.dropped,
    })
}

/// Two joiners in a `viz serve` room, each through its own impairment proxy: what a
/// two-person call through a room server costs, with or without pass-through.
fn run_room(sides: Sides, pass_through: bool, out_dir: &Path) -> Result<Run> {
    let keypair = Keypair::generate()?;
    let fingerprint = keypair.fingerprint();
    let cfg = viz_server::room::RoomConfig {
        bind: "127.0.0.1:0".parse()?,
        websocket: false,
        keypair,
        room_name: "demo".into(),
        params: sides.params,
        jitter: sides.a_engine.jitter,
        session: SessionConfig::default(),
        password: None,
        admin_token: viz_server::room::generate_admin_token(),
        state_dir: out_dir.join("room-state"),
        test_source: false,
        pass_through,
        http: None,
        web: Default::default(),
        tls: viz_server::web::TlsMode::Off,
        stats_interval: Duration::from_secs(3600),
        duration: None,
        announce: false,
        send_threads: 0,
        media: Default::default(),
    };
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let room_thread = std::thread::Builder::new().name("demo-room".into()).spawn(move || -> Result<()> {
        let rt = runtime()?;
        let stop = async move {
            let _ = stop_rx.await;
        };
        rt.block_on(viz_server::room::run(cfg, stop, Some(ready_tx)))?;
        Ok(())
    })?;
    let room_addr = ready_rx.blocking_recv().context("the room did not start")?;
    let (a_proxy, a_stop, a_proxy_thread) = spawn_proxy(room_addr, sides.impairment, sides.seed)?;
    let (b_proxy, b_stop, b_proxy_thread) = spawn_proxy(room_addr, sides.impairment, sides.seed.wrapping_add(7))?;
    let a = spawn_joiner("a", sides.a_engine.clone(), format!("udp://{a_proxy}#{fingerprint}"), &sides)?;
    let b = spawn_joiner("b", sides.b_engine.clone(), format!("udp://{b_proxy}#{fingerprint}"), &sides)?;
    let a = a.join().map_err(|_| anyhow::anyhow!("joiner a panicked"))?;
    let b = b.join().map_err(|_| anyhow::anyhow!("joiner b panicked"))?;
    let _ = stop_tx.send(());
    room_thread.join().map_err(|_| anyhow::anyhow!("the room thread panicked"))??;
    let _ = (a_stop.send(()), b_stop.send(()));
    let pa = a_proxy_thread.join().map_err(|_| anyhow::anyhow!("a proxy thread panicked"))??;
    let pb = b_proxy_thread.join().map_err(|_| anyhow::anyhow!("a proxy thread panicked"))??;
    Ok(Run {
        a: a.context("joiner a")?,
        b: b.context("joiner b")?,
        labels: ["a -> room -> b", "b -> room -> a"],
        lost_a_to_b: pa.up.dropped + pb.down.dropped,
        lost_b_to_a: pb.up.dropped + pa.down.dropped,
    })
}

/// Measures one direction: `speaker` said `said`; `listener` recorded `heard_wav`.
#[allow(clippy::too_many_arguments)]
fn direction(
    name: &str,
    said: &[f32],
    heard_wav: &Path,
    speaker: &SideResult,
    listener: &SideResult,
    dropped_by_network: u64,
    seconds: f64,
    frame_secs: f64,
    batch: u8,
) -> Result<DirectionReport> {
    let heard = viz_audio::wav::read_mono_48k(heard_wav)?;
    let mut latency = LatencyStats::default();
    if let (Some(spoke), Some(heard_from)) = (speaker.engine.started, listener.engine.started) {
        // Seconds from the speaker's first sample to the listener's first recorded one.
        let offset = heard_from.duration_since(spoke).as_secs_f64() - spoke.duration_since(heard_from).as_secs_f64();
        let min_lag = (-offset * 48_000.0).floor() as i64;
        let max_lag = ((1.0 - offset) * 48_000.0).ceil() as i64;
        let spoken = &said[..said.len().min((seconds * 48_000.0) as usize)];
        // Two-second windows: the delay of an adaptive buffer changes during a call.
        let windows = analysis::windowed_delays(spoken, &heard, 96_000, min_lag, max_lag, 0.02);
        // A window whose waveform barely matches (concealment, a vowel whose pitch period
        // makes several lags look alike) says little about the delay: it does not vote.
        let mut ms: Vec<f64> = windows
            .iter()
            .filter(|w| w.estimate.correlation >= MIN_WINDOW_CORRELATION)
            .map(|w| (offset + w.estimate.lag_samples as f64 / 48_000.0) * 1000.0)
            .collect();
        let mut corr: Vec<f64> = windows.iter().map(|w| f64::from(w.estimate.correlation)).collect();
        ms.sort_by(f64::total_cmp);
        corr.sort_by(f64::total_cmp);
        let detail = windows
            .iter()
            .map(|w| WindowReport {
                start_s: w.start as f64 / 48_000.0,
                latency_ms: (offset + w.estimate.lag_samples as f64 / 48_000.0) * 1000.0,
                correlation: w.estimate.correlation,
            })
            .collect();
        latency = LatencyStats {
            detail,
            median_ms: median(&ms),
            min_ms: ms.first().copied(),
            max_ms: ms.last().copied(),
            correlation: median(&corr),
            windows: ms.len(),
        };
    }
    let jb = listener.engine.status.jitter;
    let stats = speaker.stats.unwrap_or_default();
    let wire = |bytes: u64, datagrams: u64| (bytes + datagrams * IPV4_UDP) as f64 * 8.0 / 1000.0;
    // Time covered by the media packets sent during the call (a packet carries `batch`
    // frames, except a partial batch cut short by a silence).
    let talk_secs = stats.media_sent as f64 * batch as f64 * frame_secs;
    let media_kbits = wire(stats.media_bytes_sent, stats.media_sent);
    let all_kbits = wire(stats.bytes_sent, stats.datagrams_sent);
    Ok(DirectionReport {
        direction: name.to_owned(),
        latency_ms: latency.median_ms,
        latency_min_ms: latency.min_ms,
        latency_max_ms: latency.max_ms,
        latency_windows: latency.windows,
        correlation: latency.correlation,
        windows: latency.detail,
        packets_sent: stats.media_sent,
        packets_lost_network: dropped_by_network,
        packets_received: jb.packets_received,
        frames_decoded: jb.frames_decoded,
        frames_concealed: jb.frames_concealed,
        frames_fec_recovered: jb.frames_fec,
        frames_dred_recovered: jb.frames_dred,
        frames_late: jb.frames_late,
        frames_comfort_noise: jb.frames_comfort_noise,
        jitter_buffer_target_ms: listener.engine.status.target_delay.as_secs_f64() * 1000.0,
        kbps_talking: if talk_secs > 0.0 { media_kbits / talk_secs } else { 0.0 },
        kbps_average: all_kbits / seconds,
        kbps_control: (all_kbits - media_kbits) / seconds,
    })
}

fn print_report(r: &DemoReport) {
    println!(
        "viz demo: {:.0} s each way, {} ms frames, {} kb/s, FEC {}, DTX {}, batch {}",
        r.seconds,
        r.frame_ms,
        r.bitrate / 1000,
        if r.fec { "on" } else { "off" },
        if r.dtx { "on" } else { "off" },
        r.batch
    );
    println!(
        "network: loss {:.1} %, jitter 0..{:.0} ms, delay {:.0} ms, seed {} (loopback UDP through an impairment proxy)",
        r.loss_pct, r.jitter_ms, r.delay_ms, r.seed
    );
    println!();
    fn opt(v: Option<f64>, prec: usize) -> String {
        v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.prec$}"))
    }
    type Row = (&'static str, Box<dyn Fn(&DirectionReport) -> String>);
    let rows: Vec<Row> = vec![
        ("mouth-to-ear latency (ms)", Box::new(|d| opt(d.latency_ms, 1))),
        (
            "  range over 2 s windows",
            Box::new(|d| format!("{}..{}", opt(d.latency_min_ms, 0), opt(d.latency_max_ms, 0))),
        ),
        ("waveform correlation", Box::new(|d| opt(d.correlation, 3))),
        ("packets sent", Box::new(|d| d.packets_sent.to_string())),
        ("packets lost by the network", Box::new(|d| d.packets_lost_network.to_string())),
        ("frames decoded", Box::new(|d| d.frames_decoded.to_string())),
        ("frames recovered by FEC", Box::new(|d| d.frames_fec_recovered.to_string())),
        ("frames rebuilt from DRED", Box::new(|d| d.frames_dred_recovered.to_string())),
        ("frames concealed (PLC)", Box::new(|d| d.frames_concealed.to_string())),
        ("frames late (dropped)", Box::new(|d| d.frames_late.to_string())),
        ("jitter buffer target (ms)", Box::new(|d| format!("{:.1}", d.jitter_buffer_target_ms))),
        ("wire kb/s while talking", Box::new(|d| format!("{:.1}", d.kbps_talking))),
        ("wire kb/s average", Box::new(|d| format!("{:.1}", d.kbps_average))),
        ("  of which control/keepalive", Box::new(|d| format!("{:.2}", d.kbps_control))),
    ];
    println!("{:<30}{:>16}{:>16}", "", r.directions[0].direction, r.directions[1].direction);
    for (label, f) in rows {
        println!("{label:<30}{:>16}{:>16}", f(&r.directions[0]), f(&r.directions[1]));
    }
    println!();
    println!("wire bitrates include IPv4 and UDP headers (28 bytes a datagram)");
    println!(
        "CPU per side, % of one core: host {:.2} (engine {:.2}), joiner {:.2} (engine {:.2})",
        r.cpu_host_pct, r.cpu_host_engine_pct, r.cpu_joiner_pct, r.cpu_joiner_engine_pct
    );
    println!("recordings: {}", r.recordings.join(", "));
}
