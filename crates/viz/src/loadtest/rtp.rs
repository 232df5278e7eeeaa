//! `viz loadtest --rtp HOST:PORT`: plain RTP/Opus senders, as Remote Audio Aggregation's
//! load test has them (40 clients, 10 speaking), plus the server's own figures.
//!
//! Each sender has its own UDP socket and SSRC, sends an RTCP sender report and source
//! description every 5 s, and a BYE at the end. Speakers send pre-encoded speech-like
//! audio every 20 ms on an absolute schedule (DTX pauses sent as nothing, as a real
//! sender does); the others send one second of it when they start, so that they are
//! in the room, then only RTCP: registered, connected, silent.
//!
//! With `--metrics URL` the room's `/metrics` is read every 5 s for the mixer's cycle
//! time (mean, p99 and max over each 5 s window); with `--server-pid` the server's CPU
//! time is read from `/proc` before and after (Linux).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::net::UdpSocket;
use viz_proto::rtcp;
use viz_proto::rtp::RtpHeader;
use viz_server::room::rtp_out::sender_report;
use zeroize::Zeroizing;

use super::{ClientResult, ClientSpec, Voice};

/// First SSRC of the load test's senders (then +1 each): easy to allow as a range.
pub const FIRST_SSRC: u32 = 0x7e57_0000;
/// Frames an idle sender sends when it starts (one second).
const IDLE_INTRO_FRAMES: usize = 50;

pub(super) async fn sender(spec: ClientSpec, target: SocketAddr, payload_type: u8, voices: &[Voice]) -> ClientResult {
    let mut r = ClientResult { voice: spec.speaker, ..Default::default() };
    tokio::time::sleep_until(spec.start_at.into()).await;
    if let Err(e) = run_sender(&spec, target, payload_type, voices, &mut r).await {
        r.failure = Some(e.to_string());
    }
    r
}

async fn run_sender(
    spec: &ClientSpec,
    target: SocketAddr,
    payload_type: u8,
    voices: &[Voice],
    r: &mut ClientResult,
) -> Result<()> {
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let sock = UdpSocket::bind(bind).await?;
    let rtcp_target = SocketAddr::new(target.ip(), target.port().wrapping_add(1));
    let ssrc = FIRST_SSRC + spec.index as u32;
    let name = format!("load-{}", spec.index);
    // Idle senders use the first voice for their short introduction.
    let voice = &voices[spec.speaker.unwrap_or(0)];
    let frames = if spec.speaker.is_some() { usize::MAX } else { IDLE_INTRO_FRAMES };
    r.joined = true;
    let frame = Duration::from_millis(20);
    let mut next_frame = Instant::now();
    let mut next_rtcp = Instant::now() + Duration::from_millis(100 + (spec.index as u64 * 37) % 1000);
    let (mut k, mut seq, mut marker) = (0usize, spec.index as u16 * 1000, true);
    let (mut packets, mut octets) = (0u32, 0u32);
    let mut buf = vec![0u8; 1500];
    let mut report = Vec::with_capacity(128);
    loop {
        let now = Instant::now();
        if now >= spec.stop_at {
            break;
        }
        while k < frames && now >= next_frame {
            let i = k % voice.packets.len();
            let ts = (k * 960) as u32;
            match &voice.packets[i] {
                Some(p) => {
                    let h = RtpHeader { marker, payload_type, sequence: seq, timestamp: ts, ssrc };
                    if let Some(n) = h.write(p, &mut buf) {
                        // Refused (nobody listening yet): the packet is lost, as on a network.
                        let _ = sock.send_to(&buf[..n], target).await;
                        r.media_sent += 1;
                        if spec.speaker.is_some() {
                            r.sent_frames.push((next_frame, i));
                        }
                        packets += 1;
                        octets += p.len() as u32;
                    }
                    seq = seq.wrapping_add(1);
                    marker = false;
                }
                None => marker = true,
            }
            k += 1;
            next_frame += frame;
        }
        if now >= next_rtcp {
            next_rtcp += Duration::from_secs(5);
            report.clear();
            compound(&mut report, ssrc, packets, octets, (k * 960) as u32, &name, false);
            let _ = sock.send_to(&report, rtcp_target).await;
        }
        let wake = if k < frames { next_frame.min(next_rtcp) } else { next_rtcp };
        tokio::time::sleep_until(wake.min(spec.stop_at).into()).await;
    }
    report.clear();
    compound(&mut report, ssrc, packets, octets, (k * 960) as u32, &name, true);
    let _ = sock.send_to(&report, rtcp_target).await;
    Ok(())
}

fn compound(out: &mut Vec<u8>, ssrc: u32, packets: u32, octets: u32, ts: u32, name: &str, bye: bool) {
    let now = Instant::now();
    let sr = sender_report(ssrc, packets, octets, Some((ts, now)), now);
    rtcp::write_sender_compound(out, &sr, name, Some(name), bye.then_some("load test over"));
}

/// The room's mixer, as its `/metrics` showed it during the run.
#[derive(Debug, Default, Serialize)]
pub struct ServerFigures {
    /// One entry per 5 s window: (mean, p99, max) of the mix cycle, ms.
    pub windows: Vec<(f64, f64, f64)>,
    pub mix_mean_ms: f64,
    pub mix_p99_ms_worst_window: f64,
    pub mix_p99_ms_median_window: f64,
    pub mix_max_ms: f64,
    pub late_ticks: f64,
    pub active_sources_max: f64,
    pub participants_max: f64,
    /// The server process's CPU time over the run, as a share of one core.
    pub cpu_percent: Option<f64>,
}

/// Reads one `viz_room_*` sample (a gauge, or a counter by its `_total` name) from a
/// Prometheus text page.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

/// GET `url` with the admin token if there is one; a refusal (wrong or missing token)
/// is an error, not a reading to skip.
pub(super) async fn fetch(url: &str, token: Option<&str>) -> Result<String> {
    let (url, auth) = (url.to_owned(), token.map(|t| format!("Bearer {t}")));
    tokio::task::spawn_blocking(move || -> Result<String> {
        let mut req = ureq::get(&url);
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().with_context(|| format!("GET {url}"))?;
        Ok(resp.body_mut().read_to_string()?)
    })
    .await?
}

/// utime + stime of a process, in seconds (Linux `/proc/PID/stat`; `--server-pid` is
/// refused elsewhere, see `loadtest::run`).
#[cfg(target_os = "linux")]
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (hz > 0.0).then(|| ticks / hz)
}

#[cfg(not(target_os = "linux"))]
pub fn process_cpu_seconds(_pid: u32) -> Option<f64> {
    None
}

/// Polls `/metrics` every 5 s from `from` to `until`.
pub(super) async fn watch_server(
    url: String,
    token: Option<Zeroizing<String>>,
    from: Instant,
    until: Instant,
    pid: Option<u32>,
) -> ServerFigures {
    let mut f = ServerFigures::default();
    tokio::time::sleep_until(from.into()).await;
    let cpu_start = pid.and_then(process_cpu_seconds).map(|c| (c, Instant::now()));
    let mut next = Instant::now() + Duration::from_secs(5);
    while next <= until {
        tokio::time::sleep_until(next.into()).await;
        next += Duration::from_secs(5);
        let Ok(text) = fetch(&url, token.as_deref().map(String::as_str)).await else { continue };
        let (Some(mean), Some(p99), Some(max)) = (
            gauge(&text, "viz_room_mix_cycle_mean_ms"),
            gauge(&text, "viz_room_mix_cycle_p99_ms"),
            gauge(&text, "viz_room_mix_cycle_max_ms"),
        ) else {
            continue;
        };
        f.windows.push((mean, p99, max));
        f.late_ticks = gauge(&text, "viz_room_mix_late_ticks_total").unwrap_or(f.late_ticks);
        f.active_sources_max = f.active_sources_max.max(gauge(&text, "viz_room_active_sources").unwrap_or(0.0));
        f.participants_max = f.participants_max.max(gauge(&text, "viz_room_participants").unwrap_or(0.0));
    }
    if let (Some((c0, t0)), Some(c1)) = (cpu_start, pid.and_then(process_cpu_seconds)) {
        f.cpu_percent = Some(100.0 * (c1 - c0) / t0.elapsed().as_secs_f64().max(1e-3));
    }
    if !f.windows.is_empty() {
        f.mix_mean_ms = f.windows.iter().map(|w| w.0).sum::<f64>() / f.windows.len() as f64;
        let mut p99: Vec<f64> = f.windows.iter().map(|w| w.1).collect();
        p99.sort_by(f64::total_cmp);
        f.mix_p99_ms_worst_window = p99[p99.len() - 1];
        f.mix_p99_ms_median_window = p99[p99.len() / 2];
        f.mix_max_ms = f.windows.iter().map(|w| w.2).fold(0.0, f64::max);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_from_prometheus_text() {
        let text = "# HELP viz_room_mix_cycle_mean_ms x\n# TYPE viz_room_mix_cycle_mean_ms gauge\n\
                    viz_room_mix_cycle_mean_ms 0.87\nviz_room_mix_cycle_mean_ms_other 5\nviz_room_mix_cycle_p99_ms 2.0\n";
        assert_eq!(gauge(text, "viz_room_mix_cycle_mean_ms"), Some(0.87));
        assert_eq!(gauge(text, "viz_room_mix_cycle_p99_ms"), Some(2.0));
        assert_eq!(gauge(text, "viz_room_mix_cycle_max_ms"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_uses_cpu() {
        let pid = std::process::id();
        let before = process_cpu_seconds(pid).unwrap();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_seconds(pid).unwrap() > before);
    }
}
