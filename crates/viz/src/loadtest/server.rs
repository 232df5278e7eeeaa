//! The server's side of a load test, from its `/metrics` (`--metrics URL`) and its
//! CPU time (`--server-pid`, Linux): the mixer's cycle and the whole tick (mix,
//! encrypt, send) every 5 s of the measurement window, the CPU over the window, and
//! what reached it: media counted before the first client and after the last one
//! stopped, against what the clients sent, is the loss on the way in. The kernel's
//! drop counter over the same span says whether any of it was the receive buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use zeroize::Zeroizing;

use super::window::Window;

/// The room refreshes its figures once a second: wait this long after the clients
/// stopped before the final reading.
const FINAL_READING_DELAY: Duration = Duration::from_millis(2500);

/// One 5 s reading of the room's timing gauges, ms.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct TimingReading {
    pub mix_mean: f64,
    pub mix_p99: f64,
    pub mix_max: f64,
    /// The whole tick: mixing, encrypting and handing every datagram to the kernel.
    pub tick_mean: f64,
    pub tick_p99: f64,
    pub tick_max: f64,
}

/// The room as its `/metrics` showed it during the run.
#[derive(Debug, Default, Serialize)]
pub struct ServerFigures {
    /// One reading per 5 s of the measurement window.
    pub windows: Vec<TimingReading>,
    pub mix_mean_ms: f64,
    pub mix_p99_ms_worst_window: f64,
    pub mix_p99_ms_median_window: f64,
    pub mix_max_ms: f64,
    pub tick_mean_ms: f64,
    pub tick_p99_ms_worst_window: f64,
    pub tick_p99_ms_median_window: f64,
    pub tick_max_ms: f64,
    pub late_ticks: f64,
    pub active_sources_max: f64,
    pub participants_max: f64,
    /// Native media packets the room received over the whole run.
    pub media_in: Option<u64>,
    /// Datagrams the room's RTP port received over the whole run.
    pub rtp_in: Option<u64>,
    /// Datagrams the kernel dropped for full receive buffers over the whole run (all
    /// UDP sockets of the server's network namespace: run nothing else there).
    pub kernel_drops: Option<u64>,
    /// The part of `kernel_drops` that fell in the measurement window (the rest came
    /// while clients joined).
    pub kernel_drops_in_window: Option<u64>,
    /// Native datagrams a second the room received during the measurement window
    /// (speech, acknowledgements, reports): what its socket has to take.
    pub datagrams_in_per_s: Option<f64>,
    /// The room socket's receive buffer, bytes.
    pub receive_buffer_bytes: Option<f64>,
    /// The server process's CPU time over the measurement window, as a share of one core.
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

/// The running totals compared before and after.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    datagrams_in: Option<f64>,
    media_in: Option<f64>,
    rtp_in: Option<f64>,
    kernel_drops: Option<f64>,
}

fn totals(text: &str) -> Totals {
    Totals {
        datagrams_in: gauge(text, "viz_room_datagrams_in_total"),
        media_in: gauge(text, "viz_room_media_packets_in_total"),
        rtp_in: gauge(text, "viz_room_rtp_datagrams_total"),
        kernel_drops: gauge(text, "viz_room_kernel_udp_receive_buffer_errors_total"),
    }
}

fn timing(text: &str) -> Option<TimingReading> {
    Some(TimingReading {
        mix_mean: gauge(text, "viz_room_mix_cycle_mean_ms")?,
        mix_p99: gauge(text, "viz_room_mix_cycle_p99_ms")?,
        mix_max: gauge(text, "viz_room_mix_cycle_max_ms")?,
        tick_mean: gauge(text, "viz_room_tick_mean_ms").unwrap_or(f64::NAN),
        tick_p99: gauge(text, "viz_room_tick_p99_ms").unwrap_or(f64::NAN),
        tick_max: gauge(text, "viz_room_tick_max_ms").unwrap_or(f64::NAN),
    })
}

/// Reads the totals now (before any client), then every 5 s of the window, then the
/// totals again once the clients have stopped.
pub(super) async fn watch_server(
    url: String,
    token: Option<Zeroizing<String>>,
    window: Arc<Window>,
    pid: Option<u32>,
) -> ServerFigures {
    let token = token.as_deref().map(String::as_str);
    let mut f = ServerFigures::default();
    let before = fetch(&url, token).await.map(|t| totals(&t)).unwrap_or_default();
    let (from, until) = window.opened().await;
    tokio::time::sleep_until(from.into()).await;
    let cpu_start = pid.and_then(process_cpu_seconds).map(|c| (c, Instant::now()));
    let at_start = fetch(&url, token).await.map(|t| (totals(&t), Instant::now())).ok();
    let mut next = from + Duration::from_secs(5);
    while next <= until {
        tokio::time::sleep_until(next.into()).await;
        next += Duration::from_secs(5);
        let Ok(text) = fetch(&url, token).await else { continue };
        let Some(reading) = timing(&text) else { continue };
        f.windows.push(reading);
        f.late_ticks = gauge(&text, "viz_room_mix_late_ticks_total").unwrap_or(f.late_ticks);
        f.active_sources_max = f.active_sources_max.max(gauge(&text, "viz_room_active_sources").unwrap_or(0.0));
        f.participants_max = f.participants_max.max(gauge(&text, "viz_room_participants").unwrap_or(0.0));
        f.receive_buffer_bytes = gauge(&text, "viz_room_udp_receive_buffer_bytes");
    }
    tokio::time::sleep_until(until.into()).await;
    if let (Some((c0, t0)), Some(c1)) = (cpu_start, pid.and_then(process_cpu_seconds)) {
        f.cpu_percent = Some(100.0 * (c1 - c0) / t0.elapsed().as_secs_f64().max(1e-3));
    }
    if let (Some((start, t0)), Ok(text)) = (at_start, fetch(&url, token).await) {
        let end = totals(&text);
        let seconds = t0.elapsed().as_secs_f64().max(1e-3);
        f.datagrams_in_per_s = end.datagrams_in.zip(start.datagrams_in).map(|(b, a)| (b - a).max(0.0) / seconds);
        f.kernel_drops_in_window = end.kernel_drops.zip(start.kernel_drops).map(|(b, a)| (b - a).max(0.0) as u64);
    }
    tokio::time::sleep(FINAL_READING_DELAY).await;
    if let Ok(text) = fetch(&url, token).await {
        let after = totals(&text);
        let delta = |a: Option<f64>, b: Option<f64>| Some((a? - b.unwrap_or(0.0)).max(0.0) as u64);
        f.media_in = delta(after.media_in, before.media_in);
        f.rtp_in = delta(after.rtp_in, before.rtp_in);
        f.kernel_drops = delta(after.kernel_drops, before.kernel_drops);
    }
    if !f.windows.is_empty() {
        let n = f.windows.len() as f64;
        f.mix_mean_ms = f.windows.iter().map(|w| w.mix_mean).sum::<f64>() / n;
        f.tick_mean_ms = f.windows.iter().map(|w| w.tick_mean).sum::<f64>() / n;
        (f.mix_p99_ms_median_window, f.mix_p99_ms_worst_window) = median_and_worst(f.windows.iter().map(|w| w.mix_p99));
        (f.tick_p99_ms_median_window, f.tick_p99_ms_worst_window) =
            median_and_worst(f.windows.iter().map(|w| w.tick_p99));
        f.mix_max_ms = f.windows.iter().map(|w| w.mix_max).fold(0.0, f64::max);
        f.tick_max_ms = f.windows.iter().map(|w| w.tick_max).fold(0.0, f64::max);
    }
    f
}

fn median_and_worst(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    (v.get(v.len() / 2).copied().unwrap_or(f64::NAN), v.last().copied().unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_from_prometheus_text() {
        let text = "# HELP viz_room_mix_cycle_mean_ms x\n# TYPE viz_room_mix_cycle_mean_ms gauge\n\
                    viz_room_mix_cycle_mean_ms 0.87\nviz_room_mix_cycle_mean_ms_other 5\nviz_room_mix_cycle_p99_ms 2.0\n\
                    viz_room_media_packets_in_total 812\n";
        assert_eq!(gauge(text, "viz_room_mix_cycle_mean_ms"), Some(0.87));
        assert_eq!(gauge(text, "viz_room_mix_cycle_p99_ms"), Some(2.0));
        assert_eq!(gauge(text, "viz_room_mix_cycle_max_ms"), None);
        assert!(timing(text).is_none(), "no max: no reading");
        assert_eq!(totals(text).media_in, Some(812.0));
        assert_eq!(median_and_worst([3.0, 1.0, 2.0, 9.0].into_iter()), (3.0, 9.0));
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
