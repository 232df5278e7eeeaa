//! The audio engine: one thread that turns captured audio into media packets and
//! received packets into played audio.
//!
//! Every tick ([`tick_for`]: 5 ms, or 2.5 ms with 10 ms frames), on an absolute
//! deadline (`next += tick`, never `sleep(tick)`), it takes the commands and received
//! packets queued since the last tick, takes what the source captured,
//! frames/encodes/packetizes it ([`sender`]), and tops up the output from the jitter
//! buffer. It never blocks on anything but its deadline. The network side talks to it
//! only through channels: [`EngineHandle`] in, a `tokio::sync::mpsc` of [`OwnedMedia`]
//! out.

pub mod io;
pub mod sender;

use std::collections::VecDeque;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use viz_audio::agc::Agc;
use viz_audio::codec::MAX_PACKET_SAMPLES;
use viz_audio::denoise::Denoiser;
use viz_audio::gate::VoiceGate;
use viz_audio::{AudioParams, FrameDuration, JitterBuffer, JitterConfig, JitterStats, PacketRef, Playout, analysis};
use viz_proto::OwnedMedia;

pub use io::{InputSpec, OutputSpec};
use io::{Sink, Source};
use sender::MediaSender;
pub use sender::SenderStats;

/// The engine's longest tick: capture and playback move in 5 ms steps at most.
pub const MAX_TICK: Duration = Duration::from_millis(5);

/// A quarter of a frame, at most [`MAX_TICK`]: 2.5 ms for 10 ms frames, where 5 ms of
/// tick granularity would be a large part of the delay, and 5 ms otherwise, to keep
/// wake-ups (and so CPU) low on old machines.
pub fn tick_for(frame: FrameDuration) -> Duration {
    (frame.duration() / 4).min(MAX_TICK)
}

/// Commands queued for the engine at most; beyond it received packets are dropped
/// (counted), which only happens if the engine thread is starved for a long time.
const COMMAND_QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub params: AudioParams,
    pub batch: usize,
    pub jitter: JitterConfig,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub loop_input: bool,
    pub start_muted: bool,
    /// Push to talk (`--ptt`): the microphone starts closed and opens with the key.
    pub push_to_talk: bool,
    /// Noise suppression on what is sent (RNNoise; 20 ms more delay).
    pub denoise: bool,
    /// Automatic gain control on what is sent, after noise suppression (10 ms more
    /// delay).
    pub agc: bool,
    /// Voice activation: send only while the microphone hears more than this (dBFS),
    /// after noise suppression (10 ms more delay).
    pub voice_gate: Option<f32>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            params: AudioParams::default(),
            batch: 1,
            jitter: JitterConfig::default(),
            input: InputSpec::Device(None),
            output: OutputSpec::Device(None),
            loop_input: false,
            start_muted: false,
            push_to_talk: false,
            denoise: false,
            agc: false,
            voice_gate: None,
        }
    }
}

enum Command {
    Start,
    Media(Instant, OwnedMedia),
    LossHint(u8),
    Mute(bool),
    Deafen(bool),
    PlaybackGain(f32),
    Stop,
}

/// A live snapshot, published a few times a second.
#[derive(Debug, Clone, Default)]
pub struct EngineStatus {
    pub started: bool,
    pub muted: bool,
    pub sender: SenderStats,
    pub jitter: JitterStats,
    pub target_delay: Duration,
    pub input_level_dbfs: f32,
    pub output_level_dbfs: f32,
    pub input_finished: bool,
    pub device_underruns: u64,
    pub device_overflows: u64,
    pub dropped_commands: u64,
    /// What the engine had to tell the user (a device went away and what replaced
    /// it), numbered so a caller prints each once.
    pub notice: Option<(u64, String)>,
}

/// What the engine did, returned when it stops.
#[derive(Debug, Clone, Default)]
pub struct EngineReport {
    pub status: EngineStatus,
    /// When the call started: capture and playback both begin here, so for file and
    /// generated inputs and outputs it is "mouth" and "ear" time zero alike.
    pub started: Option<Instant>,
    /// Samples written to a file or null output.
    pub output_samples: u64,
    /// CPU time the engine thread used.
    pub cpu_time: Duration,
    /// How long the engine ran after the call started (capture and playback time).
    pub running: Duration,
    /// Ticks that started more than a tick late (the machine was too busy).
    pub late_ticks: u64,
    pub error: Option<String>,
}

pub struct EngineHandle {
    commands: Sender<Command>,
    thread: Option<JoinHandle<EngineReport>>,
    status: tokio::sync::watch::Receiver<EngineStatus>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The keys' state at the start (`--muted`).
    initial_controls: crate::controls::Controls,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Starts the engine thread. Inputs and outputs are opened (WAV files read, devices
    /// opened) before this returns, so a bad `--input` fails here, before any call.
    pub fn spawn(config: EngineConfig, outgoing: tokio::sync::mpsc::Sender<OwnedMedia>) -> Result<Self, String> {
        config.params.validate()?;
        let initial_controls = crate::controls::Controls {
            push_to_talk: config.push_to_talk,
            ..crate::controls::Controls::new(config.start_muted)
        };
        let (commands, rx) = crossbeam_channel::bounded(COMMAND_QUEUE);
        let (status_tx, status) = tokio::sync::watch::channel(EngineStatus::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("viz-engine".into())
            .spawn(move || {
                crate::realtime::raise_current_thread("audio engine");
                // Devices are opened on this thread and live and die with it.
                let engine = match Engine::new(config, outgoing, rx, status_tx) {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(()));
                        e
                    }
                    Err(msg) => {
                        let _ = ready_tx.send(Err(msg.clone()));
                        return EngineReport { error: Some(msg), ..Default::default() };
                    }
                };
                engine.run()
            })
            .map_err(|e| format!("cannot start the audio engine thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {
                Ok(Self { commands, thread: Some(thread), status, dropped: Default::default(), initial_controls })
            }
            Ok(Err(msg)) => {
                let _ = thread.join();
                Err(msg)
            }
            Err(_) => Err("the audio engine thread died while starting".into()),
        }
    }

    /// The call is established: start capture and playback (idempotent).
    pub fn start(&self) {
        let _ = self.commands.send(Command::Start);
    }

    /// Hands over a received media packet with its arrival time.
    pub fn deliver(&self, arrival: Instant, media: OwnedMedia) {
        if let Err(TrySendError::Full(_)) = self.commands.try_send(Command::Media(arrival, media)) {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The far end's loss, in percent, for the encoder's FEC.
    pub fn set_loss_hint(&self, percent: u8) {
        let _ = self.commands.try_send(Command::LossHint(percent));
    }

    pub fn set_muted(&self, muted: bool) {
        let _ = self.commands.send(Command::Mute(muted));
    }

    /// The mute and deafen keys' state the engine started with (muted with `--muted`).
    pub fn initial_controls(&self) -> crate::controls::Controls {
        self.initial_controls
    }

    /// The mute and deafen keys' state: the microphone closed when either is on, and
    /// nothing played while deafened.
    pub fn set_controls(&self, controls: crate::controls::Controls) {
        let _ = self.commands.send(Command::Mute(controls.mic_off()));
        let _ = self.commands.send(Command::Deafen(controls.deafened));
    }

    /// Scales everything played (linear, 0.0..=2.0): in a call of two, the one other
    /// person's volume. (In a room, each person's volume is applied by the room.)
    pub fn set_playback_gain(&self, gain: f32) {
        let _ = self.commands.send(Command::PlaybackGain(gain.clamp(0.0, 2.0)));
    }

    pub fn status(&self) -> EngineStatus {
        let mut s = self.status.borrow().clone();
        s.dropped_commands = self.dropped.load(std::sync::atomic::Ordering::Relaxed);
        s
    }

    /// Stops the engine, finalizes outputs and returns its report.
    pub fn stop(mut self) -> EngineReport {
        self.shutdown()
    }

    fn shutdown(&mut self) -> EngineReport {
        let _ = self.commands.send(Command::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => report,
            Some(Err(_)) => {
                EngineReport { error: Some("the audio engine thread panicked".into()), ..Default::default() }
            }
            None => EngineReport::default(),
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}

struct Engine {
    tick: Duration,
    source: Source,
    sink: Option<Sink>,
    sender: MediaSender<tokio::sync::mpsc::Sender<OwnedMedia>>,
    jitter: JitterBuffer,
    commands: Receiver<Command>,
    status_tx: tokio::sync::watch::Sender<EngineStatus>,
    captured: Vec<f32>,
    denoiser: Option<Denoiser>,
    /// What the denoiser made of `captured`.
    denoised: Vec<f32>,
    agc: Option<Agc>,
    /// What the gain control made of it.
    leveled: Vec<f32>,
    gate: Option<VoiceGate>,
    /// What the gate let through.
    gated: Vec<f32>,
    fifo: VecDeque<f32>,
    scratch: Vec<f32>,
    out_chunk: Vec<f32>,
    started: Option<Instant>,
    muted: bool,
    /// Playing nothing (the deafen key).
    deafened: bool,
    /// Everything played is scaled by this (a two-person call's volume key).
    playback_gain: f32,
    input_level: f32,
    output_level: f32,
    late_ticks: u64,
    notice: Option<(u64, String)>,
    /// When to act as if the devices were unplugged (see [`simulated_unplug`]).
    unplug_at: Option<Instant>,
    input_finished_logged: bool,
}

impl Engine {
    fn new(
        config: EngineConfig,
        outgoing: tokio::sync::mpsc::Sender<OwnedMedia>,
        commands: Receiver<Command>,
        status_tx: tokio::sync::watch::Sender<EngineStatus>,
    ) -> Result<Self, String> {
        let tick = tick_for(config.params.frame);
        let source = Source::open(&config.input, config.loop_input).map_err(|e| format!("input: {e}"))?;
        let sink = Sink::open(&config.output, tick).map_err(|e| format!("output: {e}"))?;
        let stream: u8 = rand::random();
        let mut sender =
            MediaSender::new(config.params, config.batch, stream, rand::random(), rand::random(), outgoing)
                .map_err(|e| e.to_string())?;
        sender.set_muted(config.start_muted || config.push_to_talk);
        let jitter = JitterBuffer::new(config.jitter).map_err(|e| e.to_string())?;
        Ok(Self {
            tick,
            source,
            sink: Some(sink),
            sender,
            jitter,
            commands,
            status_tx,
            captured: Vec::with_capacity(48_000),
            denoiser: config.denoise.then(Denoiser::new),
            denoised: Vec::with_capacity(48_000),
            agc: config.agc.then(Agc::new),
            leveled: Vec::with_capacity(48_000),
            gate: config.voice_gate.map(VoiceGate::new),
            gated: Vec::with_capacity(48_000),
            fifo: VecDeque::with_capacity(48_000),
            scratch: vec![0.0; MAX_PACKET_SAMPLES],
            out_chunk: Vec::with_capacity(48_000),
            started: None,
            muted: config.start_muted || config.push_to_talk,
            deafened: false,
            playback_gain: 1.0,
            input_level: -120.0,
            output_level: -120.0,
            late_ticks: 0,
            notice: None,
            unplug_at: std::env::var(UNPLUG_VAR)
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map(|ms| Instant::now() + Duration::from_millis(ms)),
            input_finished_logged: false,
        })
    }

    fn run(mut self) -> EngineReport {
        let tick = self.tick;
        let mut next_tick = Instant::now() + tick;
        let mut next_status = Instant::now();
        let mut error = None;
        'run: loop {
            // Sleep to the absolute deadline. Received packets carry the time the
            // network thread stamped on them, so they need not wake us: they are taken
            // from the queue at the tick, before playout needs them.
            let wait = next_tick.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break 'run,
                    Ok(cmd) => self.handle(cmd),
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            if let Err(e) = self.tick(now) {
                tracing::error!("audio output failed: {e}");
                error = Some(e);
                break;
            }
            next_tick += tick;
            if now > next_tick {
                self.late_ticks += 1;
                if now > next_tick + 20 * tick {
                    // Stalled (suspend, debugger): resynchronise instead of racing.
                    next_tick = now + tick;
                }
            }
            if now >= next_status {
                next_status = now + Duration::from_millis(250);
                self.replace_lost_devices();
                self.publish();
            }
        }
        self.sender.flush();
        self.publish();
        let status = self.status_tx.borrow().clone();
        let sink = self.sink.take();
        let output_samples = sink.as_ref().map_or(0, Sink::written);
        if let Some(sink) = sink
            && let Err(e) = sink.finish()
        {
            error.get_or_insert(e);
        }
        EngineReport {
            status,
            started: self.started,
            output_samples,
            cpu_time: crate::cpu::thread_cpu_time(),
            running: self.started.map_or(Duration::ZERO, |s| s.elapsed()),
            late_ticks: self.late_ticks,
            error,
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Start => {
                if self.started.is_none() {
                    let now = Instant::now();
                    self.started = Some(now);
                    self.source.start(now);
                    if let Some(sink) = &mut self.sink {
                        sink.start(now);
                    }
                }
            }
            Command::Media(arrival, media) => {
                if let Some(frame) = media.as_frame() {
                    let packet = PacketRef {
                        stream: frame.stream,
                        seq: frame.seq,
                        timestamp: frame.timestamp,
                        frames: frame.frames(),
                    };
                    self.jitter.push(arrival, packet);
                }
            }
            Command::LossHint(p) => self.sender.set_loss_hint(p),
            Command::Mute(m) => {
                self.muted = m;
                self.sender.set_muted(m);
            }
            Command::Deafen(d) => self.deafened = d,
            Command::PlaybackGain(g) => self.playback_gain = g,
            Command::Stop => {}
        }
    }

    fn tick(&mut self, now: Instant) -> Result<(), String> {
        self.captured.clear();
        self.source.read(now, &mut self.captured);
        if self.started.is_none() {
            return Ok(());
        }
        let mut sent: &[f32] = &self.captured;
        if let Some(d) = &mut self.denoiser {
            self.denoised.clear();
            d.process(sent, &mut self.denoised);
            sent = &self.denoised;
        }
        if let Some(a) = &mut self.agc {
            self.leveled.clear();
            a.process(sent, &mut self.leveled);
            sent = &self.leveled;
        }
        if let Some(g) = &mut self.gate {
            self.gated.clear();
            g.process(sent, &mut self.gated);
            sent = &self.gated;
        }
        if !sent.is_empty() {
            self.input_level = analysis::rms_dbfs(sent);
        }
        self.sender.push(sent);
        if self.source.finished() && !self.input_finished_logged {
            self.input_finished_logged = true;
            tracing::info!("input file finished; sending silence from now on");
        }

        let Some(sink) = &mut self.sink else { return Ok(()) };
        let wanted = sink.wanted(now);
        while self.fifo.len() < wanted {
            match self.jitter.pop(now, self.fifo.len(), &mut self.scratch) {
                Playout::Idle => self.fifo.extend(std::iter::repeat_n(0.0, wanted - self.fifo.len())),
                Playout::Audio { samples, .. } => self.fifo.extend(&self.scratch[..samples]),
            }
        }
        if wanted > 0 {
            self.out_chunk.clear();
            self.out_chunk.extend(self.fifo.drain(..wanted));
            if self.deafened {
                // Played as silence; the jitter buffer keeps its pace for when it ends.
                self.out_chunk.fill(0.0);
            } else if self.playback_gain != 1.0 {
                let g = self.playback_gain;
                self.out_chunk.iter_mut().for_each(|s| *s = (*s * g).clamp(-1.0, 1.0));
            }
            self.output_level = analysis::rms_dbfs(&self.out_chunk);
            sink.write(&self.out_chunk)?;
        }
        Ok(())
    }

    /// A device that went away mid-call is replaced by the default one, and the user
    /// is told. If even that fails, it is tried again at the next status.
    fn replace_lost_devices(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut said = Vec::new();
        if simulated_unplug(&mut self.unplug_at) {
            for c in [self.source.device_counters(), self.sink.as_ref().and_then(Sink::device_counters)]
                .into_iter()
                .flatten()
            {
                c.lost.store(true, Relaxed);
            }
        }
        if self.source.device_counters().is_some_and(|c| c.lost.load(Relaxed)) {
            let gone = self.source.device_name().unwrap_or_default();
            // Let go of the dead stream first: the default may be the same device.
            self.source = Source::Silence { start: self.started.map(|_| Instant::now()), delivered: 0 };
            let text = match Source::open(&InputSpec::Device(None), false) {
                Ok(mut source) => {
                    if let Some(started) = self.started {
                        source.start(started);
                    }
                    self.source = source;
                    format!(
                        "The microphone '{gone}' went away; using the default, '{}'.",
                        self.source.device_name().unwrap_or_default()
                    )
                }
                Err(e) => format!(
                    "The microphone '{gone}' went away, and the default cannot be opened ({e}); the call goes on without a microphone."
                ),
            };
            said.push(text);
        }
        if self.sink.as_ref().and_then(Sink::device_counters).is_some_and(|c| c.lost.load(Relaxed)) {
            let gone = self.sink.as_ref().and_then(Sink::device_name).unwrap_or_default();
            self.sink = Sink::open(&OutputSpec::Null, self.tick).ok();
            if let (Some(sink), Some(started)) = (self.sink.as_mut(), self.started) {
                sink.start(started);
            }
            let text = match Sink::open(&OutputSpec::Device(None), self.tick) {
                Ok(sink) => {
                    self.sink = Some(sink);
                    format!(
                        "The speakers '{gone}' went away; playing on the default, '{}'.",
                        self.sink.as_ref().and_then(Sink::device_name).unwrap_or_default()
                    )
                }
                Err(e) => format!(
                    "The speakers '{gone}' went away, and the default cannot be opened ({e}); the call goes on without sound."
                ),
            };
            said.push(text);
        }
        if !said.is_empty() {
            self.tell(said.join("\n"));
        }
    }

    fn tell(&mut self, text: String) {
        tracing::info!("{text}");
        let n = self.notice.as_ref().map_or(1, |(n, _)| n + 1);
        self.notice = Some((n, text));
    }

    fn publish(&mut self) {
        let counters = self.sink.as_ref().and_then(Sink::device_counters);
        let underruns = counters.map_or(0, |c| c.underruns.load(std::sync::atomic::Ordering::Relaxed));
        let overflows =
            self.source.device_counters().map_or(0, |c| c.overflows.load(std::sync::atomic::Ordering::Relaxed));
        let status = EngineStatus {
            started: self.started.is_some(),
            muted: self.muted,
            sender: self.sender.stats(),
            jitter: self.jitter.stats(),
            target_delay: self.jitter.target_delay(),
            input_level_dbfs: self.input_level,
            output_level_dbfs: self.output_level,
            input_finished: self.source.finished(),
            device_underruns: underruns,
            device_overflows: overflows,
            dropped_commands: 0,
            notice: self.notice.clone(),
        };
        self.status_tx.send_replace(status);
    }
}

/// Test hook: no device can be unplugged on a machine without sound hardware, so with
/// this variable set to N, the engine's devices are treated as gone N ms after it
/// starts (once), to test the fallback end to end with real cpal devices.
const UNPLUG_VAR: &str = "VIZ_TEST_UNPLUG_DEVICES_AFTER_MS";

fn simulated_unplug(at: &mut Option<Instant>) -> bool {
    at.is_some_and(|t| Instant::now() >= t) && at.take().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_a_quarter_frame_at_most_five_ms() {
        assert_eq!(tick_for(FrameDuration::Ms10), Duration::from_micros(2500));
        for f in [FrameDuration::Ms20, FrameDuration::Ms40, FrameDuration::Ms60] {
            assert_eq!(tick_for(f), MAX_TICK);
        }
    }
}
