//! What people see: the console lines and the periodic status line.

use std::io::Write;
use std::time::{Duration, Instant};

use viz_proto::ConnectionStats;

use crate::engine::EngineStatus;

/// Prints user-facing lines to stdout (logs go to stderr through `tracing`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Console {
    pub quiet: bool,
    /// Keys act at once (a terminal in single-key mode), not after Enter.
    pub single_keys: bool,
}

impl Console {
    /// How to mute and how to end (`end` says what ending does: "leave", "stop hosting").
    pub fn keys_hint(&self, end: &str) -> String {
        if self.single_keys {
            format!("Press m to mute, d to deafen, q or Ctrl-C to {end}.")
        } else {
            format!("Type m + Enter to mute, d + Enter to deafen, q + Enter or Ctrl-C to {end}.")
        }
    }

    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet && !crate::view::screen::print_above(text.as_ref()) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", text.as_ref());
            let _ = out.flush();
        }
    }
}

/// Prints each of the engine's notices (a device went away) once.
#[derive(Debug, Default, Clone, Copy)]
pub struct Notices {
    printed: u64,
}

impl Notices {
    pub fn print_new(&mut self, status: &EngineStatus, console: &Console) {
        if let Some((n, text)) = &status.notice
            && *n > self.printed
        {
            self.printed = *n;
            console.line(text);
        }
    }
}

/// Bitrates between two status lines, counting datagram bytes plus the headers below
/// them (IP and UDP, or an estimate for WebSocket).
#[derive(Debug)]
pub struct RateMeter {
    last: Option<(Instant, ConnectionStats)>,
    header: usize,
}

impl RateMeter {
    pub fn new(header_overhead: usize) -> Self {
        Self { last: None, header: header_overhead }
    }

    /// (sent kb/s, received kb/s) since the previous call.
    pub fn rates(&mut self, now: Instant, stats: &ConnectionStats) -> (f64, f64) {
        let result = match &self.last {
            Some((then, prev)) => {
                let secs = now.saturating_duration_since(*then).as_secs_f64().max(1e-3);
                let bits =
                    |bytes: u64, datagrams: u64| (bytes + datagrams * self.header as u64) as f64 * 8.0 / secs / 1000.0;
                (
                    bits(stats.bytes_sent - prev.bytes_sent, stats.datagrams_sent - prev.datagrams_sent),
                    bits(
                        stats.bytes_received - prev.bytes_received,
                        stats.datagrams_received - prev.datagrams_received,
                    ),
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, *stats));
        result
    }
}

/// The loss figure the encoder's FEC is tuned for. Receiver reports arrive once a
/// second and, at a few percent loss, many of them say 0 %; following them directly
/// would switch FEC off between losses. This keeps the recent maximum and lets it
/// decay by 10 % a second.
#[derive(Debug, Default, Clone, Copy)]
pub struct LossHint {
    estimate: f32,
}

impl LossHint {
    /// Feeds the latest reported loss (0..=1); returns the hint in percent.
    pub fn update(&mut self, reported: f32) -> u8 {
        self.estimate = reported.clamp(0.0, 1.0).max(self.estimate * 0.9);
        (self.estimate * 100.0).ceil() as u8
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One status line: peer, transport, loss both ways, jitter, RTT, playout target, rates.
pub fn status_line(peer: &str, via: &str, stats: &ConnectionStats, engine: &EngineStatus, rates: (f64, f64)) -> String {
    let rtt = stats.rtt.map_or_else(|| "-".to_owned(), |r| format!("{:.1} ms", ms(r)));
    let mut line = format!(
        "{peer} via {via} | loss in {:.1}% out {:.1}% | jitter {:.1} ms | rtt {rtt} | buffer {:.0} ms | kb/s out {:.1} in {:.1}",
        stats.loss * 100.0,
        stats.remote_loss * 100.0,
        ms(stats.jitter),
        ms(engine.target_delay),
        rates.0,
        rates.1,
    );
    let dropped = stats.dropped.total();
    if dropped > 0 {
        line.push_str(&format!(" | dropped {dropped} bad datagrams"));
    }
    if engine.muted {
        line.push_str(" | muted");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_hint_holds_and_decays() {
        let mut h = LossHint::default();
        assert_eq!(h.update(0.0), 0);
        assert_eq!(h.update(0.08), 8);
        assert_eq!(h.update(0.0), 8); // 7.2 % rounds up
        for _ in 0..10 {
            h.update(0.0);
        }
        assert!(h.update(0.0) <= 3);
        assert_eq!(h.update(0.2), 20);
    }

    #[test]
    fn rates_and_line() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(28);
        let mut s = ConnectionStats::default();
        assert_eq!(m.rates(t0, &s), (0.0, 0.0));
        s.bytes_sent = 5000;
        s.datagrams_sent = 50;
        let (out, inn) = m.rates(t0 + Duration::from_secs(1), &s);
        assert!((out - (5000.0 + 50.0 * 28.0) * 8.0 / 1000.0).abs() < 1e-9);
        assert_eq!(inn, 0.0);
        let line = status_line(
            "bob",
            "UDP 1.2.3.4:8443",
            &s,
            &EngineStatus { muted: true, ..Default::default() },
            (51.2, 3.0),
        );
        assert!(line.starts_with("bob via UDP"));
        assert!(line.contains("rtt -") && line.contains("out 51.2") && line.ends_with("muted"), "{line}");
        assert!(!line.contains("dropped"));
        s.dropped.count(viz_proto::DropReason::Replayed);
        let line = status_line("bob", "UDP", &s, &EngineStatus::default(), (0.0, 0.0));
        assert!(line.ends_with("dropped 1 bad datagrams"), "{line}");
    }
}
