//! Noise suppression for microphone input: RNNoise (the `nnnoiseless` port), which
//! takes out fans, hum and keyboard clicks between and under words and leaves speech.
//! It works on 10 ms frames with a 20 ms window, so it delays the microphone by 20 ms
//! (a frame gathered, and the window's overlap); samples go in and come out in any
//! chunk size, one out for each in.

use nnnoiseless::DenoiseState;

use crate::blocks::BlockDelay;

/// RNNoise's frame: 10 ms at 48 kHz.
pub const FRAME: usize = DenoiseState::FRAME_SIZE;

/// RNNoise works on 16-bit sample values.
const SCALE: f32 = 32_768.0;

pub struct Denoiser {
    state: Box<DenoiseState<'static>>,
    blocks: BlockDelay<FRAME>,
    /// A frame in RNNoise's scale, for its input.
    scaled: [f32; FRAME],
    /// RNNoise's estimate that the last frame held voice, 0..=1.
    voice: f32,
}

impl Default for Denoiser {
    fn default() -> Self {
        Self::new()
    }
}

impl Denoiser {
    /// Output starts with one frame of silence (the delay).
    pub fn new() -> Self {
        Self { state: DenoiseState::new(), blocks: BlockDelay::new(), scaled: [0.0; FRAME], voice: 0.0 }
    }

    /// The delay it adds: a frame to gather one, and a frame of RNNoise's overlap.
    pub const DELAY_SAMPLES: usize = 2 * FRAME;

    /// Denoises `input` (48 kHz mono, -1..1) into `output`, one sample for each.
    pub fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        let Self { state, blocks, scaled, voice } = self;
        blocks.process(input, output, |frame| {
            for (s, x) in scaled.iter_mut().zip(frame.iter()) {
                *s = x * SCALE;
            }
            *voice = state.process_frame(frame, scaled);
            for s in frame.iter_mut() {
                *s /= SCALE;
            }
        });
    }

    /// How likely the last 10 ms held voice (0..=1), by RNNoise's own detector.
    pub fn voice_probability(&self) -> f32 {
        self.voice
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analysis, signals};

    fn run(d: &mut Denoiser, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            d.process(c, &mut out);
        }
        out
    }

    #[test]
    fn one_sample_out_for_each_in_whatever_the_chunks() {
        let input = signals::white_noise(0.1, 48_000, 3);
        for chunk in [1, 7, 240, 480, 960, 1001] {
            let out = run(&mut Denoiser::new(), &input, chunk);
            assert_eq!(out.len(), input.len(), "chunks of {chunk}");
        }
        let a = run(&mut Denoiser::new(), &input, 480);
        let b = run(&mut Denoiser::new(), &input, 7);
        assert_eq!(a, b, "the result does not depend on the chunk size");
        assert!(a[..FRAME].iter().all(|&s| s == 0.0), "the first frame is the delay");
    }

    #[test]
    fn speech_comes_out_whole_twenty_milliseconds_later() {
        let speech = signals::speech_like(3, 48_000 * 4);
        let hiss = signals::white_noise(0.001, speech.len(), 2);
        let x: Vec<f32> = speech.iter().zip(&hiss).map(|(a, b)| a + b).collect();
        let out = run(&mut Denoiser::new(), &x, 240);
        let found = analysis::find_delay_within(&x[48_000..], &out[48_000..], 0, 3_000).unwrap();
        assert_eq!(found.lag_samples, Denoiser::DELAY_SAMPLES as i64);
        assert!(found.correlation > 0.95, "speech changed: correlation {}", found.correlation);
        assert!(found.gain_db.abs() < 1.0, "speech level changed by {} dB", found.gain_db);
    }

    #[test]
    fn steady_noise_is_taken_down() {
        let noise = signals::fan_and_keyboard(-35.0, 48_000 * 4, 11);
        let out = run(&mut Denoiser::new(), &noise, 960);
        // RNNoise learns the noise over a second or two; compare the last two.
        let before = analysis::rms_dbfs(&noise[96_000..]);
        let after = analysis::rms_dbfs(&out[96_000..]);
        assert!(after < before - 15.0, "fan and keys at {before:.1} dBFS came out at {after:.1} dBFS");
    }
}
