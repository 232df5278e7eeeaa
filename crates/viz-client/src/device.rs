//! Audio devices through `cpal`.
//!
//! The device callbacks do one thing: move samples between the device buffer and a
//! lock-free `rtrb` ring, converting the sample format on the way. No allocation, no
//! lock, no logging, no system call: a full or empty ring only bumps an atomic counter
//! that the engine thread reads and reports. Channel mixing and rate conversion happen
//! on the engine thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};

/// Ring capacity: 500 ms at the device rate, far more than the engine ever lets build up.
const RING_SECONDS_DIV: u32 = 2;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("no audio {0} device found (use --{0} PATH.wav, tone or silence/null on machines without audio)")]
    NoDefault(&'static str),
    #[error("no {kind} device matches '{selector}'; `viz devices` lists them")]
    NotFound { kind: &'static str, selector: String },
    #[error("audio device error: {0}")]
    Backend(String),
    #[error("the {kind} device uses sample format {format}, which viz does not support")]
    Format { kind: &'static str, format: String },
    #[error(
        "cannot capture what output device '{device}' plays: {reason}. Loopback capture works with WASAPI \
         (Windows); on Linux with PulseAudio or PipeWire, capture the sink's monitor instead: \
         PULSE_SOURCE=\"$(pactl get-default-sink).monitor\" viz send ... --input pulse"
    )]
    Loopback { device: String, reason: String },
}

fn backend(e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Backend(format!(
        "{e} (without audio hardware, use --input PATH.wav, tone or silence and --output PATH.wav or null)"
    ))
}

/// A device as `viz devices` shows it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub index: usize,
    pub name: String,
    pub is_default: bool,
    /// Default configuration, e.g. "48000 Hz, 2 ch, f32".
    pub config: String,
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_owned())
        .or_else(|_| d.id().map(|id| id.to_string()))
        .unwrap_or_else(|_| "(unnamed)".into())
}

/// Runs `f` (which enumerates or opens devices) with alsa-lib's messages captured
/// instead of printed: probing every configured PCM makes alsa-lib write lines such as
/// "ALSA lib pcm_dmix.c: unable to open slave" to stderr, which on a machine without
/// sound cards buried the one line that matters. They go to the debug log instead. The
/// capture is alsa-lib's per-thread error handler, so cpal's own threads are unaffected.
/// Plugins that print on their own (libjack's "Cannot connect to server socket") are
/// silenced by pointing stderr at /dev/null for the duration, unless debug logging is
/// on (`--debug` shows everything).
#[cfg(target_os = "linux")]
fn quiet_alsa<T>(f: impl FnOnce() -> T) -> T {
    let _silenced = (!tracing::enabled!(tracing::Level::DEBUG)).then(SilencedStderr::new).flatten();
    let captured = alsa::Output::local_error_handler().ok();
    let result = f();
    if let Some(output) = captured {
        let text = output.borrow().to_string();
        if !text.trim().is_empty() {
            tracing::debug!("alsa-lib: {}", text.trim_end());
        }
        // Installing it again gives the thread a fresh, empty buffer.
        let _ = alsa::Output::local_error_handler();
    }
    result
}

#[cfg(not(target_os = "linux"))]
fn quiet_alsa<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Standard error pointed at /dev/null until dropped.
#[cfg(target_os = "linux")]
struct SilencedStderr {
    saved: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl SilencedStderr {
    fn new() -> Option<Self> {
        use std::os::fd::{AsFd, AsRawFd};
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").ok()?;
        let saved = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
        // SAFETY: both descriptors are open; dup2 atomically replaces fd 2.
        (unsafe { libc::dup2(null.as_raw_fd(), libc::STDERR_FILENO) } >= 0).then_some(Self { saved })
    }
}

#[cfg(target_os = "linux")]
impl Drop for SilencedStderr {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: `saved` is the original stderr, still open.
        unsafe { libc::dup2(self.saved.as_raw_fd(), libc::STDERR_FILENO) };
    }
}

/// The devices of the default host, and its defaults.
#[derive(Debug, Clone, Default)]
pub struct DeviceList {
    pub inputs: Vec<DeviceInfo>,
    pub outputs: Vec<DeviceInfo>,
    /// The default devices' names, also when the enumeration does not include them.
    pub default_input: Option<String>,
    pub default_output: Option<String>,
}

/// Lists input and output devices of the default host.
pub fn list() -> Result<DeviceList, DeviceError> {
    quiet_alsa(list_devices)
}

fn list_devices() -> Result<DeviceList, DeviceError> {
    let host = cpal::default_host();
    let default_in = host.default_input_device();
    let default_out = host.default_output_device();
    // The default is matched by device id; names repeat (ALSA lists one card under
    // several plugins with the same description).
    let describe = |devs: Vec<cpal::Device>, default: &Option<cpal::Device>, input: bool| {
        let default_id = default.as_ref().and_then(|d| d.id().ok());
        devs.into_iter()
            .enumerate()
            .map(|(index, d)| {
                let name = device_name(&d);
                let config = if input { d.default_input_config() } else { d.default_output_config() }
                    .map(|c| format!("{} Hz, {} ch, {}", c.sample_rate(), c.channels(), c.sample_format()))
                    .unwrap_or_else(|e| format!("unavailable: {e}"));
                let is_default = default_id.is_some() && d.id().ok() == default_id;
                DeviceInfo { index, is_default, name, config }
            })
            .collect::<Vec<_>>()
    };
    let inputs = host.input_devices().map_err(backend)?.collect();
    let outputs = host.output_devices().map_err(backend)?.collect();
    Ok(DeviceList {
        inputs: describe(inputs, &default_in, true),
        outputs: describe(outputs, &default_out, false),
        default_input: default_in.as_ref().map(device_name),
        default_output: default_out.as_ref().map(device_name),
    })
}

/// Picks a device by index (as `viz devices` numbers them) or by name (exact, then
/// case-insensitive substring); `None` or "default" is the system default.
fn select(selector: Option<&str>, input: bool) -> Result<cpal::Device, DeviceError> {
    quiet_alsa(|| select_device(selector, input))
}

fn select_device(selector: Option<&str>, input: bool) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let kind = if input { "input" } else { "output" };
    let default = || if input { host.default_input_device() } else { host.default_output_device() };
    let Some(sel) = selector.filter(|s| !s.eq_ignore_ascii_case("default")) else {
        return default().ok_or(DeviceError::NoDefault(kind));
    };
    let devices: Vec<cpal::Device> = if input {
        host.input_devices().map_err(backend)?.collect()
    } else {
        host.output_devices().map_err(backend)?.collect()
    };
    if let Ok(i) = sel.parse::<usize>() {
        return devices.into_iter().nth(i).ok_or_else(|| DeviceError::NotFound { kind, selector: sel.into() });
    }
    let names: Vec<String> = devices.iter().map(device_name).collect();
    let lower = sel.to_lowercase();
    let pos =
        names.iter().position(|n| n == sel).or_else(|| names.iter().position(|n| n.to_lowercase().contains(&lower)));
    match pos {
        Some(p) => devices.into_iter().nth(p).ok_or_else(|| DeviceError::NotFound { kind, selector: sel.into() }),
        None => Err(DeviceError::NotFound { kind, selector: sel.into() }),
    }
}

/// Counters the callbacks bump and the engine reads.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    /// Samples the capture callback had to drop (ring full).
    pub overflows: AtomicU64,
    /// Samples the playback callback had to invent (ring empty).
    pub underruns: AtomicU64,
    /// Errors the backend reported.
    pub errors: AtomicU64,
    /// The device went away (unplugged, disabled): the engine falls back to the default.
    pub lost: std::sync::atomic::AtomicBool,
}

/// The error callback of both directions: counts, and notes a device that went away.
fn on_stream_error(counters: &DeviceCounters, err: &cpal::Error) {
    counters.errors.fetch_add(1, Ordering::Relaxed);
    if err.kind() == cpal::ErrorKind::DeviceNotAvailable {
        counters.lost.store(true, Ordering::Relaxed);
    }
}

pub struct Capture {
    _stream: cpal::Stream,
    pub ring: rtrb::Consumer<f32>,
    pub channels: usize,
    pub rate: u32,
    pub counters: Arc<DeviceCounters>,
    pub name: String,
}

pub struct Playback {
    _stream: cpal::Stream,
    pub ring: rtrb::Producer<f32>,
    pub channels: usize,
    pub rate: u32,
    pub counters: Arc<DeviceCounters>,
    pub name: String,
}

/// Asks for 10 ms device buffers when the device allows it (lower latency than most
/// defaults), else takes the default.
fn stream_config(supported: &cpal::SupportedStreamConfig) -> StreamConfig {
    let mut config: StreamConfig = supported.config();
    let wanted = supported.sample_rate() / 100;
    if let cpal::SupportedBufferSize::Range { min, max } = supported.buffer_size()
        && (*min..=*max).contains(&wanted)
    {
        config.buffer_size = cpal::BufferSize::Fixed(wanted);
    }
    config
}

pub fn open_capture(selector: Option<&str>) -> Result<Capture, DeviceError> {
    let device = select(selector, true)?;
    let supported = device.default_input_config().map_err(backend)?;
    capture_from(device, supported)
}

/// Captures what an *output* device plays (its loopback: "what you hear"), where the
/// backend offers that (WASAPI builds an input stream on an output device).
pub fn open_loopback(selector: Option<&str>) -> Result<Capture, DeviceError> {
    let device = select(selector, false)?;
    let name = device_name(&device);
    let fail = |reason: String| DeviceError::Loopback { device: name.clone(), reason };
    let supported = device.default_output_config().map_err(|e| fail(e.to_string()))?;
    capture_from(device, supported).map_err(|e| fail(e.to_string()))
}

fn capture_from(device: cpal::Device, supported: cpal::SupportedStreamConfig) -> Result<Capture, DeviceError> {
    let name = device_name(&device);
    let config = stream_config(&supported);
    let (producer, consumer) =
        rtrb::RingBuffer::new((config.sample_rate / RING_SECONDS_DIV) as usize * usize::from(config.channels));
    let counters = Arc::new(DeviceCounters::default());
    let stream = match supported.sample_format() {
        SampleFormat::F32 => build_capture::<f32>(&device, config, producer, counters.clone()),
        SampleFormat::I16 => build_capture::<i16>(&device, config, producer, counters.clone()),
        SampleFormat::U16 => build_capture::<u16>(&device, config, producer, counters.clone()),
        SampleFormat::I32 => build_capture::<i32>(&device, config, producer, counters.clone()),
        other => return Err(DeviceError::Format { kind: "input", format: other.to_string() }),
    }?;
    stream.play().map_err(backend)?;
    Ok(Capture {
        _stream: stream,
        ring: consumer,
        channels: usize::from(config.channels),
        rate: config.sample_rate,
        counters,
        name,
    })
}

fn build_capture<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut ring: rtrb::Producer<f32>,
    counters: Arc<DeviceCounters>,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let err_counters = counters.clone();
    device
        .build_input_stream::<T, _, _>(
            config,
            move |data: &[T], _| {
                // Real-time callback: convert and copy, nothing else.
                let free = ring.slots();
                let n = data.len().min(free);
                if let Ok(mut chunk) = ring.write_chunk_uninit(n) {
                    let (a, b) = chunk.as_mut_slices();
                    for (dst, src) in a.iter_mut().chain(b.iter_mut()).zip(data) {
                        dst.write(src.to_sample::<f32>());
                    }
                    // SAFETY: every slot of the chunk was written just above.
                    unsafe { chunk.commit_all() };
                }
                if n < data.len() {
                    counters.overflows.fetch_add((data.len() - n) as u64, Ordering::Relaxed);
                }
            },
            move |err| on_stream_error(&err_counters, &err),
            None,
        )
        .map_err(backend)
}

pub fn open_playback(selector: Option<&str>) -> Result<Playback, DeviceError> {
    let device = select(selector, false)?;
    let name = device_name(&device);
    let supported = device.default_output_config().map_err(backend)?;
    let config = stream_config(&supported);
    let (producer, consumer) =
        rtrb::RingBuffer::new((config.sample_rate / RING_SECONDS_DIV) as usize * usize::from(config.channels));
    let counters = Arc::new(DeviceCounters::default());
    let stream = match supported.sample_format() {
        SampleFormat::F32 => build_playback::<f32>(&device, config, consumer, counters.clone()),
        SampleFormat::I16 => build_playback::<i16>(&device, config, consumer, counters.clone()),
        SampleFormat::U16 => build_playback::<u16>(&device, config, consumer, counters.clone()),
        SampleFormat::I32 => build_playback::<i32>(&device, config, consumer, counters.clone()),
        other => return Err(DeviceError::Format { kind: "output", format: other.to_string() }),
    }?;
    stream.play().map_err(backend)?;
    Ok(Playback {
        _stream: stream,
        ring: producer,
        channels: usize::from(config.channels),
        rate: config.sample_rate,
        counters,
        name,
    })
}

fn build_playback<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut ring: rtrb::Consumer<f32>,
    counters: Arc<DeviceCounters>,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample + FromSample<f32>,
{
    let err_counters = counters.clone();
    device
        .build_output_stream::<T, _, _>(
            config,
            move |data: &mut [T], _| {
                // Real-time callback: copy out what the engine prepared, silence if late.
                let n = data.len().min(ring.slots());
                if let Ok(chunk) = ring.read_chunk(n) {
                    let (a, b) = chunk.as_slices();
                    for (dst, src) in data.iter_mut().zip(a.iter().chain(b)) {
                        *dst = T::from_sample(*src);
                    }
                    chunk.commit_all();
                }
                if n < data.len() {
                    for d in &mut data[n..] {
                        *d = T::EQUILIBRIUM;
                    }
                    counters.underruns.fetch_add((data.len() - n) as u64, Ordering::Relaxed);
                }
            },
            move |err| on_stream_error(&err_counters, &err),
            None,
        )
        .map_err(backend)
}
