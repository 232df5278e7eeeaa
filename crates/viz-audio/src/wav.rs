//! WAV input and output with `hound`. Input of any rate, channel count and PCM or float
//! format is converted to 48 kHz mono; output is 16-bit PCM at 48 kHz mono.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::params::SAMPLE_RATE;
use crate::resample;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    #[error("cannot open {path}: {error}")]
    Open { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a readable WAV file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Resample { path: PathBuf, error: resample::ResampleError },
}

/// Reads a WAV file as 48 kHz mono samples in -1..=1 (channels are averaged).
pub fn read_mono_48k(path: &Path) -> Result<Vec<f32>, WavError> {
    let file = File::open(path).map_err(|error| WavError::Open { path: path.to_owned(), error })?;
    decode_mono_48k(std::io::BufReader::new(file), &path.display().to_string())
}

/// How long a WAV file plays, from its header.
pub fn duration(path: &Path) -> Result<std::time::Duration, WavError> {
    let reader = hound::WavReader::open(path).map_err(|e| match e {
        hound::Error::IoError(error) => WavError::Open { path: path.to_owned(), error },
        e => WavError::Format { path: path.to_owned(), reason: e.to_string() },
    })?;
    let rate = reader.spec().sample_rate.max(1);
    Ok(std::time::Duration::from_secs_f64(f64::from(reader.duration()) / f64::from(rate)))
}

/// As [`read_mono_48k`], from any reader; `name` labels errors.
pub fn decode_mono_48k<R: std::io::Read>(reader: R, name: &str) -> Result<Vec<f32>, WavError> {
    let path = PathBuf::from(name);
    let format = |reason: String| WavError::Format { path: path.clone(), reason };
    let mut reader = hound::WavReader::new(reader).map_err(|e| format(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err(format("zero channels".into()));
    }
    if spec.sample_rate == 0 || spec.sample_rate > 768_000 {
        return Err(format(format!("unsupported sample rate {} Hz", spec.sample_rate)));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            reader.samples::<f32>().collect::<Result<_, _>>().map_err(|e| format(e.to_string()))?
        }
        hound::SampleFormat::Int => {
            if !(1..=32).contains(&spec.bits_per_sample) {
                return Err(format(format!("{} bits per sample", spec.bits_per_sample)));
            }
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| format(e.to_string()))?
        }
    };
    let channels = usize::from(spec.channels);
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        // A float WAV may hold NaN or infinity; they would poison the encoder.
        .map(|s| if s.is_finite() { s } else { 0.0 })
        .collect();
    resample::resample_clip(&mono, spec.sample_rate, SAMPLE_RATE).map_err(|error| WavError::Resample { path, error })
}

/// Writes a whole clip as a 48 kHz mono 16-bit WAV file.
pub fn write_mono_48k(path: &Path, samples: &[f32]) -> Result<(), WavError> {
    let mut rec = WavRecorder::create(path)?;
    rec.write(samples)?;
    rec.finalize()
}

/// Streaming 48 kHz mono 16-bit WAV writer. Call [`WavRecorder::finalize`] to write the
/// header's final length; dropping it finalizes too, ignoring errors.
pub struct WavRecorder {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: PathBuf,
    samples: u64,
}

impl std::fmt::Debug for WavRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavRecorder").field("path", &self.path).field("samples", &self.samples).finish()
    }
}

impl WavRecorder {
    pub fn create(path: &Path) -> Result<Self, WavError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| WavError::Write { path: path.to_owned(), reason: e.to_string() })?;
        Ok(Self { writer: Some(writer), path: path.to_owned(), samples: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples written so far.
    pub fn len(&self) -> u64 {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    pub fn write(&mut self, samples: &[f32]) -> Result<(), WavError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(WavError::Write { path: self.path.clone(), reason: "already finalized".into() });
        };
        let mut i16w = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            i16w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16);
        }
        i16w.flush().map_err(|e| WavError::Write { path: self.path.clone(), reason: e.to_string() })?;
        self.samples += samples.len() as u64;
        Ok(())
    }

    pub fn finalize(mut self) -> Result<(), WavError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), WavError> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|e| WavError::Write { path: self.path.clone(), reason: e.to_string() }),
            None => Ok(()),
        }
    }
}

impl Drop for WavRecorder {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analysis, signals};

    #[test]
    fn round_trip_is_16_bit_accurate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let speech = signals::speech_like(5, 48_000);
        let mut rec = WavRecorder::create(&path).unwrap();
        for chunk in speech.chunks(1000) {
            rec.write(chunk).unwrap();
        }
        assert_eq!(rec.len(), 48_000);
        rec.finalize().unwrap();
        let back = read_mono_48k(&path).unwrap();
        assert_eq!(back.len(), speech.len());
        assert!(back.iter().zip(&speech).all(|(a, b)| (a - b).abs() < 1.0 / 16_000.0));
    }

    #[test]
    fn stereo_44k1_float_input_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("st.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        let tone = signals::tone(600.0 * 48_000.0 / 44_100.0, 0.4, 44_100);
        for s in &tone {
            w.write_sample(*s).unwrap();
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
        let back = read_mono_48k(&path).unwrap();
        assert!((back.len() as i64 - 48_000).abs() <= 2);
        assert!((analysis::dominant_frequency(&back, 48_000) - 600.0).abs() < 2.0);
    }

    #[test]
    fn missing_and_garbage_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_mono_48k(&dir.path().join("nope.wav")).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
        let err = read_mono_48k(&junk).unwrap_err();
        assert!(err.to_string().contains("not a readable WAV"), "{err}");
        // Every truncation of a valid file errors or reads, never panics.
        let good = dir.path().join("good.wav");
        write_mono_48k(&good, &signals::tone(440.0, 0.5, 100)).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        for len in 0..bytes.len() {
            std::fs::write(&junk, &bytes[..len]).unwrap();
            let _ = read_mono_48k(&junk);
        }
    }
}
