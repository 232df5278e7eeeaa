//! Soft limiter for the sum of several voices.
//!
//! A peak limiter without look-ahead: the gain drops at once to whatever keeps the
//! sample at the ceiling (attack is instantaneous, so the output can never exceed it)
//! and recovers exponentially (release 50 ms), so a few loud speakers are turned down
//! smoothly together instead of being clipped into square waves. Below the ceiling the
//! signal passes unchanged.

use crate::params::SAMPLE_RATE;

/// Output never exceeds this magnitude (-1 dBFS), leaving headroom for the codec.
pub const CEILING: f32 = 0.891;
const RELEASE_SECONDS: f32 = 0.05;

#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f32,
    release: f32,
    /// Samples processed with the gain below 1, for statistics.
    limited_samples: u64,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Self {
        let release = 1.0 - (-1.0 / (RELEASE_SECONDS * SAMPLE_RATE as f32)).exp();
        Self { gain: 1.0, release, limited_samples: 0 }
    }

    pub fn limited_samples(&self) -> u64 {
        self.limited_samples
    }

    /// Limits `samples` in place.
    pub fn process(&mut self, samples: &mut [f32]) {
        for s in samples {
            self.gain += (1.0 - self.gain) * self.release;
            let peak = s.abs();
            if peak * self.gain > CEILING {
                self.gain = CEILING / peak;
            }
            if self.gain < 0.999 {
                self.limited_samples += 1;
            }
            // The min() only matters for NaN/inf input, which must not escape either.
            *s = (*s * self.gain).clamp(-CEILING, CEILING);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals;

    #[test]
    fn quiet_audio_passes_unchanged() {
        let x = signals::tone(440.0, 0.5, 4800);
        let mut y = x.clone();
        Limiter::new().process(&mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn loud_sums_are_bounded_and_not_square() {
        // Five speakers at full scale: the sum peaks near 5.
        let mut sum = vec![0.0f32; 9600];
        for (i, f) in [220.0, 330.0, 440.0, 550.0, 660.0].iter().enumerate() {
            for (s, t) in sum.iter_mut().zip(signals::tone(*f, 1.0, 9600)) {
                *s += t * (1.0 - i as f32 * 0.01);
            }
        }
        let mut y = sum.clone();
        let mut lim = Limiter::new();
        lim.process(&mut y);
        assert!(y.iter().all(|s| s.abs() <= CEILING), "bounded");
        // A hard clipper would pin many samples at the ceiling; the limiter touches it
        // only at peaks.
        let at_ceiling = y.iter().filter(|s| s.abs() > CEILING - 1e-4).count();
        let hard_clipped = sum.iter().filter(|s| s.abs() > CEILING).count();
        assert!(at_ceiling * 4 < hard_clipped, "{at_ceiling} vs {hard_clipped}");
        assert!(lim.limited_samples() > 0);
    }

    #[test]
    fn non_finite_input_is_contained() {
        let mut y = vec![f32::INFINITY, f32::NEG_INFINITY, 0.5, 1e30];
        Limiter::new().process(&mut y);
        assert!(y.iter().all(|s| s.abs() <= CEILING || s.is_nan()), "{y:?}");
    }
}
