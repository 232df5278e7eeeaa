//! When a load test measures: from [`SETTLE`] after the last client joined (or gave
//! up) for `--duration` seconds. Joins are not part of the steady state being
//! measured, and a slow join must not shorten the measurement: the window opens only
//! once everyone is in, however long that takes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// After the last join, the room's news of it goes out and jitter buffers fill.
pub const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Window {
    clients: usize,
    settled: AtomicUsize,
    run_for: Duration,
    bounds: OnceLock<(Instant, Instant)>,
}

impl Window {
    pub fn new(clients: usize, run_for: Duration) -> Self {
        Self { clients, settled: AtomicUsize::new(0), run_for, bounds: OnceLock::new() }
    }

    /// One client joined or gave up (each calls this once); the last one opens the
    /// window.
    pub fn settle(&self, now: Instant) {
        if self.settled.fetch_add(1, Ordering::AcqRel) + 1 == self.clients {
            let start = now + SETTLE;
            let _ = self.bounds.set((start, start + self.run_for));
        }
    }

    /// (start, end), once everyone has joined or given up.
    pub fn bounds(&self) -> Option<(Instant, Instant)> {
        self.bounds.get().copied()
    }

    pub fn contains(&self, t: Instant) -> bool {
        self.bounds().is_some_and(|(start, end)| t >= start && t < end)
    }

    /// When clients stop: the window's end, once known.
    pub fn stop_at(&self) -> Option<Instant> {
        self.bounds().map(|(_, end)| end)
    }

    /// True once the window has ended.
    pub fn over(&self, now: Instant) -> bool {
        self.stop_at().is_some_and(|end| now >= end)
    }

    /// Waits until the window is known.
    pub async fn opened(&self) -> (Instant, Instant) {
        loop {
            if let Some(b) = self.bounds() {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_opens_after_the_last_client_and_lasts_the_duration() {
        let t0 = Instant::now();
        let w = Window::new(3, Duration::from_secs(20));
        w.settle(t0);
        w.settle(t0 + Duration::from_secs(4));
        assert_eq!(w.bounds(), None, "one client has not joined yet");
        assert!(!w.over(t0 + Duration::from_secs(100)), "no end before everyone is in");
        let last = t0 + Duration::from_secs(9);
        w.settle(last);
        assert_eq!(w.bounds(), Some((last + SETTLE, last + SETTLE + Duration::from_secs(20))));
        assert!(!w.contains(last) && w.contains(last + SETTLE) && !w.contains(last + SETTLE + Duration::from_secs(20)));
        assert!(w.over(last + SETTLE + Duration::from_secs(20)));
    }
}
