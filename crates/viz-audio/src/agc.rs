//! Automatic gain control for microphone input: a quiet microphone (a headset far from
//! the mouth, a low OS level) is brought up towards a speech level everyone hears
//! alike, and a loud one down. It follows the level of speech only: blocks below a
//! floor (pauses, after noise suppression) leave the gain alone, so the noise between
//! words is not pumped up. The gain moves slowly (a few dB a second), so words are not
//! squashed, and is bounded, so a silent microphone never becomes a hiss machine.

use crate::analysis::rms_dbfs;
use crate::blocks::BlockDelay;

/// 10 ms at 48 kHz: the gain is decided per block and ramped across it.
const BLOCK: usize = 480;

/// The level speech is brought to (RMS over a 10 ms block).
pub const TARGET_DBFS: f32 = -20.0;
/// Most it raises (a quiet microphone) and lowers.
pub const MAX_GAIN_DB: f32 = 20.0;
pub const MIN_GAIN_DB: f32 = -10.0;
/// Blocks quieter than this are not speech: the gain holds.
const SPEECH_FLOOR_DBFS: f32 = -55.0;
/// How fast the gain moves, in dB per second: up slowly, down faster (a shout).
const RISE_DB_PER_S: f32 = 6.0;
const FALL_DB_PER_S: f32 = 20.0;

#[derive(Debug)]
pub struct Agc {
    gain_db: f32,
    blocks: BlockDelay<BLOCK>,
}

impl Default for Agc {
    fn default() -> Self {
        Self::new()
    }
}

impl Agc {
    pub fn new() -> Self {
        Self { gain_db: 0.0, blocks: BlockDelay::new() }
    }

    /// The gain applied now, in dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// The delay it adds: one block, measured before its gain is chosen.
    pub const DELAY_SAMPLES: usize = BLOCK;

    /// Scales `input` into `output`, one sample out for each in.
    pub fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        let Self { gain_db, blocks } = self;
        blocks.process(input, output, |block| apply(gain_db, block));
    }
}

/// A whole block arrived: move the gain towards what it needs, ramped across it.
fn apply(gain_db: &mut f32, block: &mut [f32; BLOCK]) {
    let level = rms_dbfs(block);
    let from = *gain_db;
    if level >= SPEECH_FLOOR_DBFS {
        let wanted = (TARGET_DBFS - level).clamp(MIN_GAIN_DB, MAX_GAIN_DB);
        let seconds = BLOCK as f32 / 48_000.0;
        let step = if wanted > from {
            (RISE_DB_PER_S * seconds).min(wanted - from)
        } else {
            -(FALL_DB_PER_S * seconds).min(from - wanted)
        };
        *gain_db = from + step;
    }
    let (a, b) = (db_to_gain(from), db_to_gain(*gain_db));
    for (i, s) in block.iter_mut().enumerate() {
        let t = i as f32 / BLOCK as f32;
        *s = (*s * (a + (b - a) * t)).clamp(-1.0, 1.0);
    }
}

fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals;

    fn run(input: &[f32]) -> (Vec<f32>, f32) {
        let mut agc = Agc::new();
        let mut out = Vec::new();
        for c in input.chunks(240) {
            agc.process(c, &mut out);
        }
        (out, agc.gain_db())
    }

    /// Speech-like signal scaled to an RMS level while talking of about `db`.
    fn speech_at(db: f32, seconds: usize) -> Vec<f32> {
        let s = signals::speech_like(7, 48_000 * seconds);
        // speech_like peaks at 0.6; its talking RMS is about 12 dB under the peak.
        let gain = db_to_gain(db - (rms_dbfs(&s[..]) + 0.0));
        s.iter().map(|x| x * gain).collect()
    }

    #[test]
    fn a_quiet_microphone_is_brought_up_and_a_loud_one_down() {
        let (quiet, gain) = run(&speech_at(-40.0, 10));
        assert!(gain > 12.0, "the gain rose only to {gain:.1} dB");
        let late = &quiet[quiet.len() - 48_000 * 3..];
        assert!(rms_dbfs(late) > -30.0, "quiet speech came out at {:.1} dBFS", rms_dbfs(late));
        let (_, gain) = run(&speech_at(-8.0, 6));
        assert!(gain < -3.0, "loud speech: gain {gain:.1} dB");
    }

    #[test]
    fn silence_and_noise_between_words_do_not_raise_the_gain() {
        let hiss = signals::white_noise(0.001, 48_000 * 10, 3);
        let (out, gain) = run(&hiss);
        assert_eq!(gain, 0.0);
        assert_eq!(out.len(), hiss.len());
    }
}
