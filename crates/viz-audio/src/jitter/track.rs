//! Bookkeeping the jitter buffer builds on: unwrapping of wrapping counters, packet
//! sequence accounting (loss, duplicates) and the window of recent arrival delays.

/// Upper bound on the arrival-delay window.
pub(super) const MAX_WINDOW: usize = 512;

/// Extends a wrapping counter to 64 bits, following it in both directions.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Unwrapper<const BITS: u32> {
    last: Option<(u64, i64)>,
}

impl<const BITS: u32> Unwrapper<BITS> {
    pub(super) fn unwrap(&mut self, raw: u64) -> i64 {
        let ext = match self.last {
            None => raw as i64,
            Some((last_raw, last_ext)) => {
                let modulus = 1i64 << BITS;
                let mut d = (raw as i64 - last_raw as i64).rem_euclid(modulus);
                if d >= modulus / 2 {
                    d -= modulus;
                }
                last_ext + d
            }
        };
        if self.last.is_none_or(|(_, e)| ext > e) {
            self.last = Some((raw, ext));
        }
        ext
    }
}

/// Sequence accounting for loss statistics and DTX-versus-loss decisions.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SeqTracker {
    pub(super) base: Option<i64>,
    pub(super) highest: i64,
    /// Bit i set: packet `highest - i` was received.
    recent: u64,
    pub(super) received: u64,
}

impl SeqTracker {
    /// Returns false for a duplicate packet.
    pub(super) fn record(&mut self, seq: i64) -> bool {
        let Some(_) = self.base else {
            self.base = Some(seq);
            self.highest = seq;
            self.recent = 1;
            self.received = 1;
            return true;
        };
        if seq > self.highest {
            let shift = seq - self.highest;
            self.recent = if shift >= 64 { 0 } else { self.recent << shift };
            self.recent |= 1;
            self.highest = seq;
        } else {
            let back = self.highest - seq;
            if back >= 64 {
                // Too old to tell: treat as duplicate rather than double counting.
                return false;
            }
            if self.recent & (1 << back) != 0 {
                return false;
            }
            self.recent |= 1 << back;
        }
        self.received += 1;
        true
    }

    pub(super) fn lost(&self) -> u64 {
        match self.base {
            None => 0,
            Some(b) => ((self.highest - b + 1) as u64).saturating_sub(self.received),
        }
    }
}

/// Fixed-size window of recent arrival delays.
pub(super) struct DelayWindow {
    values: [i64; MAX_WINDOW],
    scratch: [i64; MAX_WINDOW],
    len: usize,
    next: usize,
    capacity: usize,
}

impl DelayWindow {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            values: [0; MAX_WINDOW],
            scratch: [0; MAX_WINDOW],
            len: 0,
            next: 0,
            capacity: capacity.clamp(8, MAX_WINDOW),
        }
    }

    pub(super) fn push(&mut self, v: i64) {
        self.values[self.next] = v;
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }

    /// (minimum, quantile) of the window.
    pub(super) fn spread(&mut self, quantile: f32) -> Option<(i64, i64)> {
        if self.len == 0 {
            return None;
        }
        let s = &mut self.scratch[..self.len];
        s.copy_from_slice(&self.values[..self.len]);
        let min = *s.iter().min()?;
        let k = ((self.len as f32 - 1.0) * quantile).round() as usize;
        let (_, q, _) = s.select_nth_unstable(k.min(self.len - 1));
        Some((min, *q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrapper_follows_wraps_both_ways() {
        let mut u = Unwrapper::<16>::default();
        assert_eq!(u.unwrap(65_530), 65_530);
        assert_eq!(u.unwrap(2), 65_538);
        assert_eq!(u.unwrap(65_535), 65_535); // reordered from before the wrap
        assert_eq!(u.unwrap(3), 65_539);
        let mut u = Unwrapper::<32>::default();
        assert_eq!(u.unwrap(u64::from(u32::MAX) - 959), i64::from(u32::MAX) - 959);
        assert_eq!(u.unwrap(0), i64::from(u32::MAX) + 1);
    }

    #[test]
    fn seq_tracker_counts_loss_and_duplicates() {
        let mut t = SeqTracker::default();
        for s in [10, 11, 13, 14, 12, 12, 16] {
            t.record(s);
        }
        assert_eq!(t.received, 6);
        assert_eq!(t.lost(), 1); // 15
        assert!(!t.record(11));
        assert!(!t.record(-100)); // far too old
    }

    #[test]
    fn delay_window_quantile() {
        let mut w = DelayWindow::new(100);
        for i in 0..100 {
            w.push(1000 + i);
        }
        assert_eq!(w.spread(0.98), Some((1000, 1097)));
        for _ in 0..100 {
            w.push(5);
        }
        assert_eq!(w.spread(0.98), Some((5, 5)));
    }
}
