//! The room's mixer thread: owns the [`Mixer`], ticks it on absolute deadlines and
//! measures every cycle.
//!
//! The network task sends it media and membership changes over a channel; it answers
//! with packets to send (forwarded at once, mixed at each tick), talking changes and,
//! once a second, statistics. Deadlines are absolute (`next += frame`): a late tick
//! does not push the following ones back, and after a stall longer than a frame the
//! schedule skips ahead instead of bursting.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tokio::sync::mpsc::UnboundedSender;
use viz_audio::codec::{Encoded, Encoder, MAX_PACKET};
use viz_audio::mixer::{Delivery, Mixer, MixerConfig, ParticipantId, Role, SourceStatus};
use viz_audio::{AudioParams, PacketRef, signals};
use viz_proto::OwnedMedia;

/// Participant id of the built-in test source.
pub const TEST_SOURCE_ID: ParticipantId = 1;
/// Queue between the network task and the mixer; beyond it media is dropped (counted).
const INBOX: usize = 8192;
/// Cycle times kept for the statistics (5 s of 20 ms ticks, rounded up).
const CYCLE_WINDOW: usize = 256;
/// Talking changes are sent at most this often.
const TALKING_INTERVAL: Duration = Duration::from_millis(100);
/// While anyone talks, everyone's level is sent this often (to those who show levels).
const LEVELS_INTERVAL: Duration = Duration::from_millis(200);

pub enum ToMixer {
    Media {
        id: ParticipantId,
        at: Instant,
        media: OwnedMedia,
    },
    Add {
        id: ParticipantId,
        role: Role,
        gain: f32,
        muted: bool,
    },
    /// An output that gets `source`'s packets unchanged (see `Mixer::add_tap`).
    AddTap {
        id: ParticipantId,
        source: ParticipantId,
    },
    Remove {
        id: ParticipantId,
    },
    Gain {
        id: ParticipantId,
        gain: f32,
    },
    Mute {
        id: ParticipantId,
        muted: bool,
    },
    /// The loss each listener reports, in percent: all of them in one message a
    /// second. One message per listener woke the real-time mixer thread a thousand
    /// times in a row in a room of 1000 and held the network thread up for ~25 ms.
    ListenerLoss(Vec<(ParticipantId, u8)>),
    /// How loud `listener` hears `source`, for that listener only.
    PersonalGain {
        listener: ParticipantId,
        source: ParticipantId,
        gain: f32,
    },
}

/// A packet for some listeners: the Opus frames once, a header for each listener.
#[derive(Debug)]
pub struct MixedPacket {
    pub frames: OwnedMedia,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone, Default)]
pub struct MixStats {
    pub ticks: u64,
    pub late_ticks: u64,
    pub cycle_mean_ms: f64,
    pub cycle_p99_ms: f64,
    pub cycle_max_ms: f64,
    pub participants: usize,
    pub active_sources: usize,
    pub encodes_per_tick: f64,
    pub forwarded_packets: u64,
    pub mixed_deliveries: u64,
    pub inbox_dropped: u64,
    /// Per participant: (id, status).
    pub sources: Vec<(ParticipantId, SourceStatus)>,
}

/// The last [`CYCLE_WINDOW`] durations of something done every tick, in ms.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimingWindow {
    took: Vec<f32>,
    at: usize,
}

/// Mean, 99th percentile and maximum of a [`TimingWindow`], ms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    pub mean_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl TimingWindow {
    pub(crate) fn push(&mut self, took: Duration) {
        let ms = took.as_secs_f32() * 1000.0;
        if self.took.len() < CYCLE_WINDOW {
            self.took.push(ms);
        } else {
            self.took[self.at] = ms;
        }
        self.at = (self.at + 1) % CYCLE_WINDOW;
    }

    pub(crate) fn summary(&self) -> Timing {
        let mut sorted = self.took.clone();
        sorted.sort_by(f32::total_cmp);
        let pick = |q: f64| sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        Timing {
            mean_ms: sorted.iter().map(|&c| f64::from(c)).sum::<f64>() / sorted.len().max(1) as f64,
            p99_ms: f64::from(pick(0.99)),
            max_ms: f64::from(sorted.last().copied().unwrap_or(0.0)),
        }
    }
}

pub enum FromMixer {
    Packet(MixedPacket),
    /// Everything one tick mixed, sent as one message so that the network task is
    /// woken once a tick rather than once a packet; it times the whole tick (mix,
    /// encrypt, send) from `began`.
    Tick {
        began: Instant,
        packets: Vec<MixedPacket>,
    },
    Talking(Vec<ParticipantId>),
    /// Everyone audible and their level (dBFS + 100, 0..=100).
    Levels(Vec<(ParticipantId, u8)>),
    Stats(Box<MixStats>),
}

pub struct MixerHandle {
    pub tx: Sender<ToMixer>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl MixerHandle {
    /// Queues a message; media is dropped (and counted) rather than blocking the
    /// network task if the mixer falls behind.
    pub fn send(&self, msg: ToMixer) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(ToMixer::Media { .. })) => {
                self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // Membership changes must arrive: wait for room in the queue.
            Err(TrySendError::Full(msg)) => {
                let _ = self.tx.send(msg);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Ends the thread (dropping the sender ends its loop) and waits for it.
    pub fn stop(mut self) {
        let (tx, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the mixer thread.
pub fn spawn(
    config: MixerConfig,
    test_source: bool,
    out: UnboundedSender<FromMixer>,
) -> Result<MixerHandle, viz_audio::CodecError> {
    let params = config.params;
    let mut mixer = Mixer::new(config)?;
    let test = if test_source {
        mixer.add(TEST_SOURCE_ID, Role::SEND_ONLY, 1.0, false)?;
        Some(TestSource::new(params)?)
    } else {
        None
    };
    let (tx, rx) = crossbeam_channel::bounded(INBOX);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d = dropped.clone();
    let thread = std::thread::Builder::new()
        .name("viz-mixer".into())
        .spawn(move || {
            // The mixer's deadline is every frame: preempted by the network thread or
            // other processes, it shows up directly as late ticks.
            viz_client::realtime::raise_current_thread("mixer");
            MixerLoop::new(mixer, test, out, d).run(rx)
        })
        .map_err(|e| viz_audio::CodecError::Params(format!("cannot start the mixer thread: {e}")))?;
    Ok(MixerHandle { tx, dropped, thread: Some(thread) })
}

/// A virtual participant looping a music-like signal.
struct TestSource {
    samples: Vec<f32>,
    at: usize,
    encoder: Encoder,
    seq: u16,
    ts: u32,
    out: Box<[u8]>,
}

impl TestSource {
    fn new(params: AudioParams) -> Result<Self, viz_audio::CodecError> {
        let params = AudioParams { dtx: false, ..params };
        Ok(Self {
            samples: signals::music_like(8 * 48_000),
            at: 0,
            encoder: Encoder::new(params)?,
            seq: 0,
            ts: 0,
            out: vec![0u8; MAX_PACKET].into_boxed_slice(),
        })
    }

    /// The next frame, encoded, as if it had just arrived.
    fn next(&mut self, frame: usize) -> Option<(u16, u32, usize)> {
        let mut pcm = [0.0f32; 2880];
        let pcm = &mut pcm[..frame];
        for s in pcm.iter_mut() {
            *s = self.samples[self.at];
            self.at = (self.at + 1) % self.samples.len();
        }
        let (seq, ts) = (self.seq, self.ts);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(frame as u32);
        match self.encoder.encode(pcm, &mut self.out) {
            Ok(Encoded::Packet(n)) => Some((seq, ts, n)),
            _ => None,
        }
    }
}

struct MixerLoop {
    mixer: Mixer,
    test: Option<TestSource>,
    out: UnboundedSender<FromMixer>,
    inbox_dropped: Arc<std::sync::atomic::AtomicU64>,
    frame: Duration,
    cycles: TimingWindow,
    late_ticks: u64,
    talking: Vec<ParticipantId>,
    talking_sent_at: Option<Instant>,
    levels_sent_at: Option<Instant>,
    encodes_since_stats: u64,
    ticks_since_stats: u64,
}

fn emit(out: &UnboundedSender<FromMixer>, o: viz_audio::mixer::Outgoing<'_>) {
    let _ = out.send(FromMixer::Packet(packet(o)));
}

fn packet(o: viz_audio::mixer::Outgoing<'_>) -> MixedPacket {
    let mut frames = OwnedMedia::new(0, 0, 0, false);
    for f in o.frames {
        frames.push_frame(f);
    }
    MixedPacket { frames, deliveries: o.deliveries.to_vec() }
}

impl MixerLoop {
    fn new(
        mixer: Mixer,
        test: Option<TestSource>,
        out: UnboundedSender<FromMixer>,
        inbox_dropped: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let frame = mixer.config().params.frame.duration();
        Self {
            mixer,
            test,
            out,
            inbox_dropped,
            frame,
            cycles: TimingWindow::default(),
            late_ticks: 0,
            talking: Vec::new(),
            talking_sent_at: None,
            levels_sent_at: None,
            encodes_since_stats: 0,
            ticks_since_stats: 0,
        }
    }

    fn run(mut self, rx: Receiver<ToMixer>) {
        let start = Instant::now();
        let mut next_tick = start + self.frame;
        let mut next_stats = start + Duration::from_secs(1);
        loop {
            match rx.recv_deadline(next_tick) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now < next_tick {
                continue;
            }
            self.tick(now);
            next_tick += self.frame;
            if now > next_tick {
                // More than a frame behind (the machine stalled): skip, do not burst.
                self.late_ticks += 1;
                while next_tick <= now {
                    next_tick += self.frame;
                }
            }
            if now >= next_stats {
                next_stats += Duration::from_secs(1);
                self.send_stats();
            }
        }
    }

    fn handle(&mut self, msg: ToMixer) {
        let out = &self.out;
        match msg {
            ToMixer::Media { id, at, media } => {
                let Some(frame) = media.as_frame() else { return };
                let frames = frame.frames();
                let packet = PacketRef { stream: frame.stream, seq: frame.seq, timestamp: frame.timestamp, frames };
                self.mixer.push(at, id, packet, frame.marker, &mut |o| emit(out, o));
            }
            ToMixer::Add { id, role, gain, muted } => {
                if let Err(e) = self.mixer.add(id, role, gain, muted) {
                    tracing::error!("cannot add participant {id} to the mixer: {e}");
                }
            }
            ToMixer::AddTap { id, source } => {
                if let Err(e) = self.mixer.add_tap(id, source) {
                    tracing::error!("cannot add output {id} to the mixer: {e}");
                }
            }
            ToMixer::Remove { id } => {
                self.mixer.remove(id);
            }
            ToMixer::Gain { id, gain } => self.mixer.set_gain(id, gain),
            ToMixer::Mute { id, muted } => self.mixer.set_muted(id, muted),
            ToMixer::ListenerLoss(losses) => {
                for (id, percent) in losses {
                    self.mixer.set_listener_loss(id, percent);
                }
            }
            ToMixer::PersonalGain { listener, source, gain } => {
                self.mixer.set_personal_gain(listener, source, gain);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let began = Instant::now();
        let out = &self.out;
        if let Some(test) = self.test.as_mut() {
            let frame = self.mixer.config().params.frame.samples();
            if let Some((seq, ts, n)) = test.next(frame) {
                let frames: [&[u8]; 1] = [&test.out[..n]];
                let packet = PacketRef { stream: 0, seq, timestamp: ts, frames: &frames };
                self.mixer.push(now, TEST_SOURCE_ID, packet, false, &mut |o| emit(out, o));
            }
        }
        let mut packets = Vec::new();
        let stats = self.mixer.tick(now, &mut |o| packets.push(packet(o)));
        self.cycles.push(began.elapsed());
        let _ = self.out.send(FromMixer::Tick { began, packets });
        self.encodes_since_stats += u64::from(stats.encodes);
        self.ticks_since_stats += 1;

        let audible = self.mixer.audible();
        let due = self.talking_sent_at.is_none_or(|t| now.saturating_duration_since(t) >= TALKING_INTERVAL);
        if audible != self.talking.as_slice() && due {
            self.talking.clear();
            self.talking.extend_from_slice(audible);
            self.talking_sent_at = Some(now);
            let _ = self.out.send(FromMixer::Talking(self.talking.clone()));
        }
        let levels_due = self.levels_sent_at.is_none_or(|t| now.saturating_duration_since(t) >= LEVELS_INTERVAL);
        if !self.talking.is_empty() && levels_due {
            self.levels_sent_at = Some(now);
            let levels = self
                .talking
                .iter()
                .filter_map(|&id| self.mixer.status(id).map(|s| (id, (s.level_dbfs + 100.0).clamp(0.0, 100.0) as u8)))
                .collect();
            let _ = self.out.send(FromMixer::Levels(levels));
        }
    }

    fn send_stats(&mut self) {
        let cycle = self.cycles.summary();
        let totals = self.mixer.totals();
        let ids: Vec<ParticipantId> = self.mixer_ids();
        let sources: Vec<(ParticipantId, SourceStatus)> =
            ids.into_iter().filter_map(|id| self.mixer.status(id).map(|s| (id, s))).collect();
        let stats = MixStats {
            ticks: totals.ticks,
            late_ticks: self.late_ticks,
            cycle_mean_ms: cycle.mean_ms,
            cycle_p99_ms: cycle.p99_ms,
            cycle_max_ms: cycle.max_ms,
            participants: self.mixer.len(),
            active_sources: sources.iter().filter(|(_, s)| s.active).count(),
            encodes_per_tick: self.encodes_since_stats as f64 / self.ticks_since_stats.max(1) as f64,
            forwarded_packets: totals.forwarded_packets,
            mixed_deliveries: totals.mixed_deliveries,
            inbox_dropped: self.inbox_dropped.load(std::sync::atomic::Ordering::Relaxed),
            sources,
        };
        self.encodes_since_stats = 0;
        self.ticks_since_stats = 0;
        let _ = self.out.send(FromMixer::Stats(Box::new(stats)));
    }

    fn mixer_ids(&self) -> Vec<ParticipantId> {
        self.mixer.ids().collect()
    }
}
