//! Voice activation: the microphone is open while it hears something above a
//! threshold, and for a short hold after, so the ends of words and the gaps between
//! them are not cut; otherwise it is silenced. Silence is digital zero, so the sender's
//! DTX sends nothing for it after the usual tail.
//!
//! Decided per 10 ms block on its RMS level: a block above the threshold opens the gate
//! for itself (nothing before the first loud block is let through, so a word's very
//! first milliseconds may be quieter than the threshold and lost, as in any voice
//! activation).

use crate::analysis::rms_dbfs;
use crate::blocks::BlockDelay;

/// 10 ms at 48 kHz.
const BLOCK: usize = 480;

/// How long the gate stays open after the last loud block.
pub const HOLD_MS: u32 = 300;

/// The default threshold: above a quiet room's noise (with noise suppression, far
/// above it), below speech at a normal microphone level.
pub const DEFAULT_THRESHOLD_DBFS: f32 = -45.0;

#[derive(Debug)]
pub struct VoiceGate {
    threshold_dbfs: f32,
    /// Samples of hold left.
    open_left: usize,
    blocks: BlockDelay<BLOCK>,
}

impl VoiceGate {
    pub fn new(threshold_dbfs: f32) -> Self {
        Self { threshold_dbfs, open_left: 0, blocks: BlockDelay::new() }
    }

    /// Whether the gate is open now.
    pub fn is_open(&self) -> bool {
        self.open_left > 0
    }

    /// The delay it adds: one block, judged whole before it is let through or not.
    pub const DELAY_SAMPLES: usize = BLOCK;

    /// Gates `input` into `output`, one sample out for each in, [`Self::DELAY_SAMPLES`]
    /// later.
    pub fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        let Self { threshold_dbfs, open_left, blocks } = self;
        blocks.process(input, output, |block| {
            // A whole block arrived: open or hold, or silence it.
            if rms_dbfs(block) >= *threshold_dbfs {
                *open_left = HOLD_MS as usize * 48 + BLOCK;
            }
            if *open_left == 0 {
                block.fill(0.0);
            }
            *open_left = open_left.saturating_sub(BLOCK);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals;

    fn gate(input: &[f32], chunk: usize) -> Vec<f32> {
        let mut g = VoiceGate::new(DEFAULT_THRESHOLD_DBFS);
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            g.process(c, &mut out);
        }
        out
    }

    #[test]
    fn speech_passes_with_its_hold_and_quiet_noise_is_silenced() {
        // 200 ms of hiss at -60 dBFS, 500 ms of a tone at -20 dBFS, 1 s of hiss.
        let hiss = |n| signals::white_noise(0.0017, n, 4);
        let mut input = hiss(9_600);
        input.extend(signals::tone(300.0, 0.14, 24_000));
        input.extend(hiss(48_000));
        let out = gate(&input, 333);
        assert_eq!(out.len(), input.len());
        let d = VoiceGate::DELAY_SAMPLES;
        assert!(out[..9_600 + d].iter().all(|&s| s == 0.0), "hiss before the tone was let through");
        assert_eq!(&out[9_600 + d..33_600 + d], &input[9_600..33_600], "the tone was changed");
        // The hold lets the first 300 ms of what follows through, then closes.
        let hold_end = 33_600 + d + HOLD_MS as usize * 48;
        assert!(out[33_600 + d..hold_end - BLOCK].iter().any(|&s| s != 0.0), "no hold after the tone");
        assert!(out[hold_end + BLOCK..].iter().all(|&s| s == 0.0), "the gate stayed open");
    }

    #[test]
    fn the_result_does_not_depend_on_the_chunk_size() {
        let mut input = signals::speech_like(5, 48_000 * 2);
        input.extend(signals::white_noise(0.002, 48_000, 1));
        assert_eq!(gate(&input, 1), gate(&input, 960));
    }
}
