//! `viz send ADDR --input DEVICE|FILE`: a send-only participant, for a capture PC, a
//! music feed or a machine that only contributes audio (Remote Audio Aggregation's
//! Windows client, but encrypted and on every platform).
//!
//! By default it joins a room (or a call) like `viz join --send-only`: encrypted,
//! reconnecting. With `--rtp` it sends plain RTP/Opus (RFC 3550 + RFC 7587) to any RTP
//! receiver instead (`viz serve --rtp-port`, ffmpeg, GStreamer), with an RTCP sender
//! report and source description every 5 s and a BYE when it stops. Its SSRC is kept
//! in the config directory, so a room's admin accepts this machine once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::UdpSocket;
use viz_client::engine::{EngineConfig, EngineHandle, InputSpec, OutputSpec};
use viz_client::store;
use viz_proto::rtcp;
use viz_proto::rtp::RtpHeader;
use viz_server::room::rtp_out::sender_report;

use crate::cli::{CommonArgs, JoinArgs, SendArgs};

/// The RTP port `viz serve --rtp-port` and Remote Audio Aggregation listen on.
pub const DEFAULT_RTP_PORT: u16 = 4010;
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
const SSRC_FILE: &str = "rtp-ssrc";

pub async fn run(args: SendArgs) -> Result<()> {
    if !args.rtp {
        if args.ssrc.is_some() {
            bail!("--ssrc is for --rtp (plain RTP); an encrypted sender is known by its identity key");
        }
        let mut join = join_args(args);
        // A file without --loop is sent once: the call ends with it.
        if let (Ok(InputSpec::Wav(path)), false, None) =
            (InputSpec::parse(&join.common.input), join.common.loop_input, join.common.duration)
        {
            let length = viz_audio::wav::duration(&path).map_err(|e| anyhow::anyhow!("--input: {e}"))?;
            join.common.duration = Some(length.as_secs_f64() + 0.5);
        }
        return crate::run::join(join).await;
    }
    send_rtp(args).await
}

/// `viz send ADDR` is `viz join ADDR --send-only` with nothing played.
fn join_args(a: SendArgs) -> JoinArgs {
    JoinArgs {
        address: Some(a.address),
        known_hosts: a.known_hosts,
        password: a.password,
        listen_only: false,
        send_only: true,
        echo_test: false,
        no_reconnect: a.no_reconnect,
        common: CommonArgs {
            name: a.name,
            input: a.input,
            output: "null".into(),
            loop_input: a.loop_input,
            duration: a.duration,
            muted: false,
            ptt: None,
            identity: a.identity,
            quiet: a.quiet,
            // A sender prints its progress as lines; it hears nobody to show.
            plain: true,
            audio: a.audio,
            volumes: Default::default(),
        },
    }
}

/// HOST, HOST:PORT or [v6]:PORT; the port defaults to 4010.
async fn resolve(address: &str) -> Result<SocketAddr> {
    let with_port = match address.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, DEFAULT_RTP_PORT).to_string(),
        Err(_) if address.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) => address.to_owned(),
        Err(_) => format!("{address}:{DEFAULT_RTP_PORT}"),
    };
    tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("cannot resolve '{address}' (give HOST or HOST:PORT)"))?
        .next()
        .with_context(|| format!("'{address}' has no address"))
}

/// This machine's SSRC: `--ssrc`, or one made once and kept in the config directory.
fn ssrc(given: Option<u32>) -> Result<u32> {
    if let Some(s) = given {
        return Ok(s);
    }
    let path = store::config_dir()?.join(SSRC_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            viz_server::room::rtp_allow::parse_ssrc(text.trim()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s: u32 = rand::random();
            store::write_atomic(&path, format!("{s:#010x}\n").as_bytes(), 0o644)?;
            Ok(s)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Counts for the sender report and the closing line.
#[derive(Default)]
struct Sent {
    packets: u32,
    octets: u32,
    /// The newest packet's timestamp and when it went out.
    last: Option<(u32, Instant)>,
}

async fn send_rtp(args: SendArgs) -> Result<()> {
    let target = resolve(&args.address).await?;
    let ssrc = ssrc(args.ssrc)?;
    let params = args.audio.params()?;
    let input = InputSpec::parse(&args.input).map_err(anyhow::Error::msg).context("--input")?;
    let config = EngineConfig {
        params,
        // RFC 7587: one Opus packet per RTP packet.
        batch: 1,
        jitter: args.audio.jitter(),
        denoise: args.audio.denoise_for(&input),
        voice_gate: args.audio.voice_gate(),
        agc: args.audio.agc,
        input,
        output: OutputSpec::Null,
        loop_input: args.loop_input,
        start_muted: false,
        push_to_talk: false,
    };
    let described = config.input.describe();
    let (tx, mut outgoing) = tokio::sync::mpsc::channel(256);
    let engine = EngineHandle::spawn(config, tx).map_err(anyhow::Error::msg)?;
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let sock = UdpSocket::bind(bind).await.context("cannot open a UDP socket")?;
    let rtcp_target = SocketAddr::new(target.ip(), target.port().wrapping_add(1));
    let name = args.name.clone().unwrap_or_else(viz_client::join::default_name);
    let host = viz_client::join::machine_name().unwrap_or_else(|| "localhost".into());
    let cname = format!("{}@{host}", viz_client::join::default_name());
    if !args.quiet {
        println!(
            "Sending {described} to {target} as plain RTP/Opus (unencrypted), SSRC {ssrc:#010x} ({ssrc}), \
             payload type {}. Ctrl-C to stop.",
            args.payload_type
        );
    }
    let mut seq: u16 = rand::random();
    let mut sent = Sent::default();
    let mut buf = vec![0u8; viz_proto::MAX_DATAGRAM];
    let started = Instant::now();
    let stop_at = args.duration.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let mut next_rtcp = started + Duration::from_millis(500);
    engine.start();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut finished_at = None;
    loop {
        let now = Instant::now();
        if stop_at.is_some_and(|t| now >= t) {
            break;
        }
        // A file without --loop: send it once, then stop (after the last packets).
        if finished_at.is_none() && engine.status().input_finished {
            finished_at = Some(now);
        }
        if finished_at.is_some_and(|t| now >= t + Duration::from_millis(300)) {
            break;
        }
        if now >= next_rtcp {
            next_rtcp = now + RTCP_INTERVAL;
            let report = compound(ssrc, &sent, now, &cname, &name, None);
            let _ = sock.send_to(&report, rtcp_target).await;
        }
        tokio::select! {
            m = outgoing.recv() => {
                let Some(media) = m else { break };
                let Some(frame) = media.as_frame() else { continue };
                let mut ts = frame.timestamp;
                for (i, opus) in frame.frames().iter().enumerate() {
                    let header = RtpHeader { marker: frame.marker && i == 0, payload_type: args.payload_type, sequence: seq, timestamp: ts, ssrc };
                    let Some(n) = header.write(opus, &mut buf) else { continue };
                    if let Err(e) = sock.send_to(&buf[..n], target).await {
                        // ICMP port unreachable from an earlier datagram: nobody listens yet.
                        tracing::debug!("RTP send to {target}: {e}");
                    }
                    seq = seq.wrapping_add(1);
                    sent.packets = sent.packets.wrapping_add(1);
                    sent.octets = sent.octets.wrapping_add(opus.len() as u32);
                    sent.last = Some((ts, Instant::now()));
                    ts = ts.wrapping_add(viz_audio::codec::packet_samples(opus).unwrap_or(960) as u32);
                }
            }
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let bye = compound(ssrc, &sent, Instant::now(), &cname, &name, Some("sender stopped"));
    let _ = sock.send_to(&bye, rtcp_target).await;
    let report = engine.stop();
    if !args.quiet {
        println!(
            "Sent {} RTP packets ({:.1} kB of Opus) in {:.1} s.",
            sent.packets,
            f64::from(sent.octets) / 1000.0,
            started.elapsed().as_secs_f64()
        );
    }
    match report.error {
        Some(e) => Err(anyhow::anyhow!("audio: {e}")),
        None => Ok(()),
    }
}

/// SR + SDES (CNAME, NAME), and a BYE when leaving.
fn compound(ssrc: u32, sent: &Sent, now: Instant, cname: &str, name: &str, bye: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let sr = sender_report(ssrc, sent.packets, sent.octets, sent.last, now);
    rtcp::write_sender_compound(&mut out, &sr, cname, Some(name), bye);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use viz_proto::rtcp::{RtcpCompound, RtcpPacket, SDES_CNAME, SDES_NAME, SenderReport};

    #[tokio::test]
    async fn addresses_get_the_rtp_port_when_they_have_none() {
        assert_eq!(resolve("127.0.0.1").await.unwrap(), "127.0.0.1:4010".parse().unwrap());
        assert_eq!(resolve("127.0.0.1:5004").await.unwrap(), "127.0.0.1:5004".parse().unwrap());
        assert_eq!(resolve("[::1]:5004").await.unwrap(), "[::1]:5004".parse().unwrap());
        assert_eq!(resolve("::1").await.unwrap(), "[::1]:4010".parse().unwrap());
        assert_eq!(resolve("localhost").await.unwrap().port(), 4010);
    }

    #[test]
    fn the_rtcp_compound_names_the_sender_and_says_bye() {
        let sent = Sent { packets: 10, octets: 800, last: Some((960, Instant::now())) };
        let c = compound(7, &sent, Instant::now(), "ann@pc", "Ann", Some("bye"));
        let parsed = RtcpCompound::parse(&c).unwrap();
        let p: Vec<RtcpPacket> = parsed.packets().collect();
        assert!(matches!(
            p[0],
            RtcpPacket::SenderReport(SenderReport { ssrc: 7, packet_count: 10, octet_count: 800, .. })
        ));
        let RtcpPacket::SourceDescription(items) = p[1] else { panic!("{p:?}") };
        assert_eq!(
            items.map(|(_, k, t)| (k, t.to_vec())).collect::<Vec<_>>(),
            vec![(SDES_CNAME, b"ann@pc".to_vec()), (SDES_NAME, b"Ann".to_vec())]
        );
        assert!(matches!(p[2], RtcpPacket::Bye { .. }));
    }
}
