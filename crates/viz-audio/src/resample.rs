//! Sample-rate conversion with `rubato`, for WAV files and devices that do not run at
//! 48 kHz. Both directions use rubato's synchronous FFT resampler: the rates are fixed for
//! the life of a stream, and it is both the fastest and the cleanest of rubato's choices.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    #[error("cannot resample from {from} Hz to {to} Hz: {reason}")]
    Setup { from: u32, to: u32, reason: String },
    #[error("resampling failed: {0}")]
    Process(String),
}

/// Resamples a whole mono clip. Returns the input unchanged when the rates are equal.
pub fn resample_clip(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let setup = |e: String| ResampleError::Setup { from, to, reason: e };
    let mut fft =
        Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Both).map_err(|e| setup(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| setup(e.to_string()))?;
    let out = fft.process_all(&input, samples.len(), None).map_err(|e| ResampleError::Process(e.to_string()))?;
    Ok(out.take_data())
}

/// Streaming mono resampler for a device whose rate is fixed but not 48 kHz. It takes
/// any number of input samples per call and appends what it can produce; after
/// construction it does not allocate as long as `output` has room.
pub struct StreamResampler {
    fft: Fft<f32>,
    pending: Vec<f32>,
    chunk_in: usize,
    scratch_out: Vec<f32>,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler").field("chunk_in", &self.chunk_in).finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// `chunk_ms` trades delay for efficiency; 10 ms is a good choice for voice.
    pub fn new(from: u32, to: u32, chunk_ms: u32) -> Result<Self, ResampleError> {
        let chunk = (from * chunk_ms / 1000).max(1) as usize;
        let fft = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
            .map_err(|e| ResampleError::Setup { from, to, reason: e.to_string() })?;
        let chunk_in = fft.input_frames_next();
        let max_out = fft.output_frames_max();
        Ok(Self { fft, pending: Vec::with_capacity(chunk_in * 4), chunk_in, scratch_out: vec![0.0; max_out] })
    }

    /// Delay the resampler adds, in output samples.
    pub fn output_delay(&self) -> usize {
        self.fft.output_delay()
    }

    pub fn process(&mut self, input: &[f32], output: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while self.pending.len() - start >= self.chunk_in {
            let chunk = &self.pending[start..start + self.chunk_in];
            let inp =
                InterleavedSlice::new(chunk, 1, self.chunk_in).map_err(|e| ResampleError::Process(e.to_string()))?;
            let frames_out = self.scratch_out.len();
            let mut out = InterleavedSlice::new_mut(&mut self.scratch_out, 1, frames_out)
                .map_err(|e| ResampleError::Process(e.to_string()))?;
            let (_, written) = self
                .fft
                .process_into_buffer(&inp, &mut out, None)
                .map_err(|e| ResampleError::Process(e.to_string()))?;
            output.extend_from_slice(&self.scratch_out[..written]);
            start += self.chunk_in;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analysis, signals};

    #[test]
    fn clip_resampling_keeps_length_and_pitch() {
        // signals::tone runs at 48 kHz; scale the frequency so the clip is 1 kHz at 44.1 kHz.
        let tone = signals::tone(1000.0 * 48_000.0 / 44_100.0, 0.5, 44_100);
        let out = resample_clip(&tone, 44_100, 48_000).unwrap();
        assert!((out.len() as i64 - 48_000).abs() <= 2, "{}", out.len());
        let f = analysis::dominant_frequency(&out, 48_000);
        assert!((f - 1000.0).abs() < 2.0, "{f} Hz");
        assert_eq!(resample_clip(&tone, 48_000, 48_000).unwrap(), tone);
    }

    #[test]
    fn stream_resampling_matches_rate_over_time() {
        let tone = signals::tone(700.0, 0.5, 48_000 * 2);
        let mut r = StreamResampler::new(48_000, 16_000, 10).unwrap();
        let mut out = Vec::with_capacity(40_000);
        // Odd-sized pieces, like device callbacks.
        for piece in tone.chunks(333) {
            r.process(piece, &mut out).unwrap();
        }
        assert!((out.len() as i64 - 32_000).abs() <= 200, "{}", out.len());
        let steady = &out[1000..];
        assert!((analysis::dominant_frequency(steady, 16_000) - 700.0).abs() < 3.0);
    }

    #[test]
    fn bad_rates_are_errors() {
        assert!(StreamResampler::new(0, 48_000, 10).is_err());
    }
}
