//! Where the engine's audio comes from and goes to.
//!
//! Files and generated signals stand in for devices and behave like them: a source
//! "speaks" its samples at real time from the moment the call starts, and a sink
//! "plays" at real time, recording silence where nothing was heard. Both are clocked
//! by absolute time since the start, so scheduling noise in the engine's ticks never
//! stretches or shrinks what is sent or recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use viz_audio::SAMPLE_RATE;
use viz_audio::resample::StreamResampler;
use viz_audio::signals::ToneOscillator;
use viz_audio::wav::WavRecorder;

use crate::device;

/// What `--input` names.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSpec {
    /// A capture device by name or index; `None` is the default device.
    Device(Option<String>),
    /// What an output device plays (`loopback`, `loopback:NAME`), where the platform
    /// offers it.
    Loopback(Option<String>),
    Wav(PathBuf),
    Tone(f32),
    Silence,
    /// Samples prepared by the caller (`viz demo`), 48 kHz mono.
    Samples {
        label: String,
        samples: Arc<[f32]>,
    },
}

/// What `--output` names.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputSpec {
    Device(Option<String>),
    Wav(PathBuf),
    Null,
}

impl InputSpec {
    /// `tone`, `tone:HZ`, `silence`, a path ending in `.wav` (or containing a `/`), else
    /// a device name or index.
    pub fn parse(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if lower == "tone" {
            return Ok(Self::Tone(440.0));
        }
        if let Some(hz) = lower.strip_prefix("tone:") {
            let f: f32 = hz.parse().map_err(|_| format!("'{hz}' is not a frequency in Hz"))?;
            if !(20.0..=20_000.0).contains(&f) {
                return Err(format!("tone frequency {f} Hz is outside 20..=20000"));
            }
            return Ok(Self::Tone(f));
        }
        if lower == "silence" {
            return Ok(Self::Silence);
        }
        if lower == "loopback" {
            return Ok(Self::Loopback(None));
        }
        if let Some(name) = s.strip_prefix("loopback:") {
            return Ok(Self::Loopback(Some(name.to_owned()).filter(|n| !n.is_empty() && n != "default")));
        }
        if lower.ends_with(".wav") || s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) {
            return Ok(Self::Wav(PathBuf::from(s)));
        }
        Ok(Self::Device(Some(s.to_owned()).filter(|s| s != "default")))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Device(None) => "default input device".into(),
            Self::Device(Some(d)) => format!("input device '{d}'"),
            Self::Loopback(None) => "what the default output device plays".into(),
            Self::Loopback(Some(d)) => format!("what output device '{d}' plays"),
            Self::Wav(p) => p.display().to_string(),
            Self::Tone(f) => format!("{f} Hz tone"),
            Self::Silence => "silence".into(),
            Self::Samples { label, .. } => label.clone(),
        }
    }
}

impl OutputSpec {
    /// `null`, a path ending in `.wav` (or containing a `/`), else a device.
    pub fn parse(s: &str) -> Self {
        let lower = s.to_ascii_lowercase();
        if lower == "null" || lower == "none" {
            Self::Null
        } else if lower.ends_with(".wav") || s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) {
            Self::Wav(PathBuf::from(s))
        } else {
            Self::Device(Some(s.to_owned()).filter(|s| s != "default"))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Device(None) => "default output device".into(),
            Self::Device(Some(d)) => format!("output device '{d}'"),
            Self::Wav(p) => p.display().to_string(),
            Self::Null => "nothing (null output)".into(),
        }
    }
}

/// Samples elapsed at 48 kHz between `start` and `now`.
fn samples_since(start: Instant, now: Instant) -> u64 {
    (now.saturating_duration_since(start).as_nanos() * u128::from(SAMPLE_RATE) / 1_000_000_000) as u64
}

// One per engine, created once: the device variant being large costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Source {
    Clip { samples: Arc<[f32]>, looping: bool, start: Option<Instant>, delivered: u64 },
    Tone { osc: ToneOscillator, start: Option<Instant>, delivered: u64 },
    Silence { start: Option<Instant>, delivered: u64 },
    Device { dev: device::Capture, resampler: Option<StreamResampler>, scratch: Vec<f32>, mono: Vec<f32> },
}

impl Source {
    pub fn open(spec: &InputSpec, looping: bool) -> Result<Self, String> {
        Ok(match spec {
            InputSpec::Wav(path) => {
                let samples = viz_audio::wav::read_mono_48k(path).map_err(|e| e.to_string())?;
                if samples.is_empty() {
                    return Err(format!("{} contains no audio", path.display()));
                }
                Self::Clip { samples: samples.into(), looping, start: None, delivered: 0 }
            }
            InputSpec::Samples { samples, .. } => {
                Self::Clip { samples: samples.clone(), looping, start: None, delivered: 0 }
            }
            InputSpec::Tone(f) => Self::Tone { osc: ToneOscillator::new(*f, 0.3), start: None, delivered: 0 },
            InputSpec::Silence => Self::Silence { start: None, delivered: 0 },
            InputSpec::Device(sel) => Self::device(device::open_capture(sel.as_deref()))?,
            InputSpec::Loopback(sel) => Self::device(device::open_loopback(sel.as_deref()))?,
        })
    }

    /// A capture device as a source, resampled to 48 kHz on the engine thread.
    fn device(opened: Result<device::Capture, device::DeviceError>) -> Result<Self, String> {
        let dev = opened.map_err(|e| e.to_string())?;
        let resampler = if dev.rate == SAMPLE_RATE {
            None
        } else {
            Some(StreamResampler::new(dev.rate, SAMPLE_RATE, 10).map_err(|e| e.to_string())?)
        };
        tracing::info!(device = %dev.name, rate = dev.rate, channels = dev.channels, "capture device open");
        Ok(Self::Device { dev, resampler, scratch: Vec::with_capacity(48_000), mono: Vec::with_capacity(48_000) })
    }

    /// Marks the moment the call starts: files and tones begin here.
    pub fn start(&mut self, now: Instant) {
        match self {
            Self::Clip { start, .. } | Self::Tone { start, .. } | Self::Silence { start, .. } => *start = Some(now),
            Self::Device { .. } => {}
        }
    }

    /// True once a non-looping file has been played to its end.
    pub fn finished(&self) -> bool {
        matches!(self, Self::Clip { samples, looping: false, delivered, .. } if *delivered >= samples.len() as u64)
    }

    /// Appends what was "captured" up to `now` (48 kHz mono). Before `start`, devices are
    /// drained and their audio discarded.
    pub fn read(&mut self, now: Instant, out: &mut Vec<f32>) {
        match self {
            Self::Clip { samples, looping, start, delivered } => {
                let Some(start) = *start else { return };
                let due = samples_since(start, now);
                while *delivered < due {
                    let len = samples.len() as u64;
                    let pos = if *looping { *delivered % len } else { *delivered };
                    if pos >= len {
                        out.extend(std::iter::repeat_n(0.0, (due - *delivered) as usize));
                        *delivered = due;
                        break;
                    }
                    let n = (due - *delivered).min(len - pos) as usize;
                    out.extend_from_slice(&samples[pos as usize..pos as usize + n]);
                    *delivered += n as u64;
                }
            }
            Self::Tone { osc, start, delivered } => {
                let Some(start) = *start else { return };
                let due = samples_since(start, now);
                let n = (due - *delivered) as usize;
                let at = out.len();
                out.resize(at + n, 0.0);
                osc.fill(&mut out[at..]);
                *delivered = due;
            }
            Self::Silence { start, delivered } => {
                let Some(start) = *start else { return };
                let due = samples_since(start, now);
                out.extend(std::iter::repeat_n(0.0, (due - *delivered) as usize));
                *delivered = due;
            }
            Self::Device { dev, resampler, scratch, mono } => {
                let cap =
                    (MAX_DEVICE_AUDIO_PER_TICK.as_secs_f64() * f64::from(dev.rate)) as usize * dev.channels.max(1);
                let available = dev.ring.slots();
                let n = available.min(cap);
                if available > cap {
                    // Skip what is beyond the cap rather than fall further behind.
                    if let Ok(chunk) = dev.ring.read_chunk(available - cap) {
                        chunk.commit_all();
                    }
                    dev.counters.overflows.fetch_add((available - cap) as u64, Ordering::Relaxed);
                }
                scratch.clear();
                if let Ok(chunk) = dev.ring.read_chunk(n) {
                    let (a, b) = chunk.as_slices();
                    scratch.extend_from_slice(a);
                    scratch.extend_from_slice(b);
                    chunk.commit_all();
                }
                mono.clear();
                let ch = dev.channels.max(1);
                mono.extend(scratch.chunks_exact(ch).map(|f| f.iter().sum::<f32>() / ch as f32));
                match resampler {
                    Some(r) => {
                        if let Err(e) = r.process(mono, out) {
                            tracing::warn!("capture resampling failed: {e}");
                        }
                    }
                    None => out.extend_from_slice(mono),
                }
            }
        }
    }

    pub fn device_counters(&self) -> Option<&device::DeviceCounters> {
        match self {
            Self::Device { dev, .. } => Some(&dev.counters),
            _ => None,
        }
    }

    pub fn device_name(&self) -> Option<String> {
        match self {
            Self::Device { dev, .. } => Some(dev.name.clone()),
            _ => None,
        }
    }
}

/// Where played audio goes. File and null outputs model a device whose buffer is one
/// engine tick (`lead`): each tick hands over the audio played until the next one, so
/// every sample is decoded before its playback time, never after (which would flatter
/// measured latency).
// One per engine, created once: the device variant being large costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Sink {
    Wav {
        rec: WavRecorder,
        start: Option<Instant>,
        written: u64,
        lead: Duration,
    },
    Null {
        start: Option<Instant>,
        written: u64,
        lead: Duration,
    },
    Device {
        dev: device::Playback,
        resampler: Option<StreamResampler>,
        target: Duration,
        converted: Vec<f32>,
        last_underruns: u64,
    },
}

/// Most device audio one engine tick handles. A device that runs faster than real
/// time (a broken clock, ALSA's unclocked null device) cannot make the engine do
/// unbounded work; the excess capture is dropped and counted as overflow.
const MAX_DEVICE_AUDIO_PER_TICK: Duration = Duration::from_millis(40);

/// Device playback keeps this much audio queued ahead of the callback at first, and
/// adds 5 ms (up to 100 ms) each time the device still runs dry.
const DEVICE_QUEUE_START: Duration = Duration::from_millis(20);
const DEVICE_QUEUE_MAX: Duration = Duration::from_millis(100);

impl Sink {
    /// `lead` is the engine's tick: how far ahead file and null outputs are filled.
    pub fn open(spec: &OutputSpec, lead: Duration) -> Result<Self, String> {
        Ok(match spec {
            OutputSpec::Wav(path) => Self::Wav { rec: create_recorder(path)?, start: None, written: 0, lead },
            OutputSpec::Null => Self::Null { start: None, written: 0, lead },
            OutputSpec::Device(sel) => {
                let dev = device::open_playback(sel.as_deref()).map_err(|e| e.to_string())?;
                let resampler = if dev.rate == SAMPLE_RATE {
                    None
                } else {
                    Some(StreamResampler::new(SAMPLE_RATE, dev.rate, 10).map_err(|e| e.to_string())?)
                };
                tracing::info!(device = %dev.name, rate = dev.rate, channels = dev.channels, "playback device open");
                Self::Device {
                    dev,
                    resampler,
                    target: DEVICE_QUEUE_START,
                    converted: Vec::with_capacity(48_000),
                    last_underruns: 0,
                }
            }
        })
    }

    pub fn start(&mut self, now: Instant) {
        match self {
            Self::Wav { start, .. } | Self::Null { start, .. } => *start = Some(now),
            Self::Device { .. } => {}
        }
    }

    /// How many 48 kHz samples the output needs now.
    pub fn wanted(&mut self, now: Instant) -> usize {
        match self {
            Self::Wav { start, written, lead, .. } | Self::Null { start, written, lead } => {
                start.map_or(0, |s| samples_since(s, now + *lead).saturating_sub(*written) as usize)
            }
            Self::Device { dev, target, last_underruns, .. } => {
                let underruns = dev.counters.underruns.load(Ordering::Relaxed);
                if underruns > *last_underruns {
                    *last_underruns = underruns;
                    *target = (*target + Duration::from_millis(5)).min(DEVICE_QUEUE_MAX);
                }
                let queued_frames = (dev.ring.buffer().capacity() - dev.ring.slots()) / dev.channels.max(1);
                let target_frames = (target.as_secs_f64() * f64::from(dev.rate)) as usize;
                let missing = target_frames.saturating_sub(queued_frames);
                let wanted = (missing as u64 * u64::from(SAMPLE_RATE) / u64::from(dev.rate)) as usize;
                wanted.min((MAX_DEVICE_AUDIO_PER_TICK.as_secs_f64() * f64::from(SAMPLE_RATE)) as usize)
            }
        }
    }

    pub fn write(&mut self, samples: &[f32]) -> Result<(), String> {
        match self {
            Self::Wav { rec, written, .. } => {
                rec.write(samples).map_err(|e| e.to_string())?;
                *written += samples.len() as u64;
            }
            Self::Null { written, .. } => *written += samples.len() as u64,
            Self::Device { dev, resampler, converted, .. } => {
                let mono: &[f32] = match resampler {
                    Some(r) => {
                        converted.clear();
                        r.process(samples, converted).map_err(|e| e.to_string())?;
                        converted
                    }
                    None => samples,
                };
                let ch = dev.channels.max(1);
                let n = (mono.len() * ch).min(dev.ring.slots()) / ch * ch;
                if let Ok(mut chunk) = dev.ring.write_chunk_uninit(n) {
                    let (a, b) = chunk.as_mut_slices();
                    for (i, dst) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                        dst.write(mono[i / ch]);
                    }
                    // SAFETY: all `n` slots were written above.
                    unsafe { chunk.commit_all() };
                }
            }
        }
        Ok(())
    }

    /// Samples written to a file or null output so far.
    pub fn written(&self) -> u64 {
        match self {
            Self::Wav { written, .. } | Self::Null { written, .. } => *written,
            Self::Device { .. } => 0,
        }
    }

    /// Finalizes a WAV file.
    pub fn finish(self) -> Result<(), String> {
        match self {
            Self::Wav { rec, .. } => rec.finalize().map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    pub fn device_counters(&self) -> Option<&device::DeviceCounters> {
        match self {
            Self::Device { dev, .. } => Some(&dev.counters),
            _ => None,
        }
    }

    pub fn device_name(&self) -> Option<String> {
        match self {
            Self::Device { dev, .. } => Some(dev.name.clone()),
            _ => None,
        }
    }
}

fn create_recorder(path: &Path) -> Result<WavRecorder, String> {
    WavRecorder::create(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_and_output_specs() {
        assert_eq!(InputSpec::parse("tone").unwrap(), InputSpec::Tone(440.0));
        assert_eq!(InputSpec::parse("tone:1000").unwrap(), InputSpec::Tone(1000.0));
        assert!(InputSpec::parse("tone:abc").is_err());
        assert!(InputSpec::parse("tone:5").is_err());
        assert_eq!(InputSpec::parse("SILENCE").unwrap(), InputSpec::Silence);
        assert_eq!(InputSpec::parse("a.WAV").unwrap(), InputSpec::Wav("a.WAV".into()));
        assert_eq!(InputSpec::parse("dir/x").unwrap(), InputSpec::Wav("dir/x".into()));
        assert_eq!(InputSpec::parse("2").unwrap(), InputSpec::Device(Some("2".into())));
        assert_eq!(InputSpec::parse("default").unwrap(), InputSpec::Device(None));
        assert_eq!(InputSpec::parse("loopback").unwrap(), InputSpec::Loopback(None));
        assert_eq!(InputSpec::parse("loopback:Speakers").unwrap(), InputSpec::Loopback(Some("Speakers".into())));
        assert_eq!(OutputSpec::parse("null"), OutputSpec::Null);
        assert_eq!(OutputSpec::parse("out.wav"), OutputSpec::Wav("out.wav".into()));
        assert_eq!(OutputSpec::parse("USB Headset"), OutputSpec::Device(Some("USB Headset".into())));
    }

    #[test]
    fn clip_source_plays_at_real_time_then_silence() {
        let samples: Arc<[f32]> = (0..1000).map(|i| i as f32).collect::<Vec<_>>().into();
        let mut s = Source::Clip { samples, looping: false, start: None, delivered: 0 };
        let t0 = Instant::now();
        let mut out = Vec::new();
        s.read(t0 + Duration::from_millis(10), &mut out);
        assert!(out.is_empty(), "nothing before start");
        s.start(t0);
        s.read(t0 + Duration::from_millis(10), &mut out);
        assert_eq!(out.len(), 480);
        assert_eq!(out[479], 479.0);
        s.read(t0 + Duration::from_millis(30), &mut out);
        assert_eq!(out.len(), 1440);
        assert_eq!(out[999], 999.0);
        assert!(out[1000..].iter().all(|&x| x == 0.0));
        assert!(s.finished());
    }

    #[test]
    fn looping_clip_wraps() {
        let samples: Arc<[f32]> = (0..100).map(|i| i as f32).collect::<Vec<_>>().into();
        let mut s = Source::Clip { samples, looping: true, start: None, delivered: 0 };
        let t0 = Instant::now();
        s.start(t0);
        let mut out = Vec::new();
        s.read(t0 + Duration::from_millis(5), &mut out);
        assert_eq!(out.len(), 240);
        assert_eq!((out[99], out[100], out[239]), (99.0, 0.0, 39.0));
        assert!(!s.finished());
    }

    #[test]
    fn wav_sink_records_at_real_time_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.wav");
        let mut sink = Sink::open(&OutputSpec::Wav(path.clone()), Duration::from_millis(5)).unwrap();
        let t0 = Instant::now();
        assert_eq!(sink.wanted(t0 + Duration::from_secs(1)), 0);
        sink.start(t0);
        // At 100 ms the sink wants what plays until the next tick: 105 ms in all.
        let want = sink.wanted(t0 + Duration::from_millis(100));
        assert_eq!(want, 5040);
        sink.write(&vec![0.25; want]).unwrap();
        assert_eq!(sink.wanted(t0 + Duration::from_millis(100)), 0);
        sink.finish().unwrap();
        assert_eq!(viz_audio::wav::read_mono_48k(&path).unwrap().len(), 5040);
    }

    #[test]
    fn missing_wav_input_and_unwritable_output_fail_early() {
        let err = Source::open(&InputSpec::Wav("/nonexistent/in.wav".into()), false).err().unwrap();
        assert!(err.contains("cannot open"), "{err}");
        let err =
            Sink::open(&OutputSpec::Wav("/nonexistent/dir/out.wav".into()), Duration::from_millis(5)).err().unwrap();
        assert!(err.contains("cannot write"), "{err}");
    }
}
