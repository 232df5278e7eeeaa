//! Anti-replay sliding window over 64-bit counters (RFC 6479's block layout).
//!
//! The window remembers the last [`WINDOW`] counters below the highest one seen. Use it
//! in two steps: [`ReplayWindow::check`] before decryption (cheap, rejects replays and
//! ancient counters without spending an AEAD), then [`ReplayWindow::commit`] only after
//! the datagram authenticated, so that forged datagrams can never move the window.

/// Counters below the highest seen that are still accepted once (2048, per DESIGN.md).
pub const WINDOW: u64 = 2048;

const BLOCK_BITS: u64 = 64;
/// One extra block so that advancing into a fresh block never forgets counters that
/// are still inside the window (RFC 6479 §2).
const BLOCKS: usize = (WINDOW / BLOCK_BITS) as usize + 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    bitmap: [u64; BLOCKS],
    /// Highest counter committed, `None` before the first.
    top: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    Fresh,
    Replayed,
    TooOld,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub fn new() -> Self {
        Self { bitmap: [0; BLOCKS], top: None }
    }

    pub fn highest(&self) -> Option<u64> {
        self.top
    }

    fn locate(counter: u64) -> (usize, u64) {
        (((counter / BLOCK_BITS) % BLOCKS as u64) as usize, 1u64 << (counter % BLOCK_BITS))
    }

    pub fn check(&self, counter: u64) -> ReplayCheck {
        let Some(top) = self.top else { return ReplayCheck::Fresh };
        if counter > top {
            return ReplayCheck::Fresh;
        }
        if top - counter >= WINDOW {
            return ReplayCheck::TooOld;
        }
        let (block, bit) = Self::locate(counter);
        if self.bitmap[block] & bit != 0 { ReplayCheck::Replayed } else { ReplayCheck::Fresh }
    }

    /// Records an authenticated counter. Returns true when it is the new highest.
    pub fn commit(&mut self, counter: u64) -> bool {
        debug_assert_eq!(self.check(counter), ReplayCheck::Fresh);
        let newest = self.top.is_none_or(|top| counter > top);
        if newest {
            let top_block = self.top.map(|t| t / BLOCK_BITS);
            let new_block = counter / BLOCK_BITS;
            match top_block {
                Some(old) if new_block - old < BLOCKS as u64 => {
                    for b in old + 1..=new_block {
                        self.bitmap[(b % BLOCKS as u64) as usize] = 0;
                    }
                }
                _ => self.bitmap = [0; BLOCKS],
            }
            self.top = Some(counter);
        }
        let (block, bit) = Self::locate(counter);
        self.bitmap[block] |= bit;
        newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn basics() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), ReplayCheck::Fresh);
        assert!(w.commit(0));
        assert_eq!(w.check(0), ReplayCheck::Replayed);
        assert!(w.commit(5000));
        assert_eq!(w.check(5000 - WINDOW), ReplayCheck::TooOld);
        assert_eq!(w.check(5000 - WINDOW + 1), ReplayCheck::Fresh);
        assert!(!w.commit(4000));
        assert_eq!(w.check(4000), ReplayCheck::Replayed);
        assert_eq!(w.check(4001), ReplayCheck::Fresh);
        assert!(w.commit(u64::MAX - 1));
        assert_eq!(w.check(u64::MAX - 1), ReplayCheck::Replayed);
        assert_eq!(w.check(5000), ReplayCheck::TooOld);
    }

    #[test]
    fn the_full_window_is_remembered_across_block_boundaries() {
        let mut w = ReplayWindow::new();
        for c in 0..10_000u64 {
            w.commit(c);
            // Everything within the window is still known as seen.
            let oldest = c.saturating_sub(WINDOW - 1);
            for probe in [oldest, (oldest + c) / 2, c] {
                assert_eq!(w.check(probe), ReplayCheck::Replayed, "c={c} probe={probe}");
            }
        }
    }

    proptest! {
        /// The window agrees with a set-based model on every sequence of counters.
        #[test]
        fn matches_a_reference_model(counters in proptest::collection::vec(0u64..6000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = BTreeSet::new();
            let mut top: Option<u64> = None;
            for c in counters {
                let expected = match top {
                    Some(t) if c + WINDOW <= t => ReplayCheck::TooOld,
                    _ if seen.contains(&c) => ReplayCheck::Replayed,
                    _ => ReplayCheck::Fresh,
                };
                prop_assert_eq!(w.check(c), expected);
                if expected == ReplayCheck::Fresh {
                    w.commit(c);
                    seen.insert(c);
                    top = Some(top.map_or(c, |t| t.max(c)));
                }
            }
        }
    }
}
