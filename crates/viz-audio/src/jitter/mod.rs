//! Adaptive jitter buffer with Opus decoding, FEC recovery and loss concealment.
//!
//! Frames are indexed by their 48 kHz RTP-style timestamp. The buffer learns how late
//! frames arrive and plays each one a *target delay* after the fastest frames would
//! allow, so that almost every frame is there in time:
//!
//! * For every arriving frame it records `r = arrival_time − timestamp` (both in samples;
//!   the clocks' offset cancels out). Over a window of recent arrivals, `min(r)` is the
//!   fastest path and `quantile(r) − min(r)` the jitter. The playout point is held at
//!   `timestamp + min(r) + jitter + guard`, so the target delay (arrival of the fastest
//!   frame to the end of its playout) is one frame plus the jitter: the floor is one
//!   frame, and it never exceeds `max_delay`. While packets are being lost and the
//!   sender sends FEC, one more frame is added so the next frame (which carries the
//!   FEC) is usually there when a lost one is due.
//! * The consumer calls [`JitterBuffer::pop`] whenever its output needs more audio.
//!   The delay follows the target by time-scale modification of the frames being
//!   played (NetEq's accelerate and preemptive expand, [`stretch`]): while playout runs
//!   *ahead* of the target a frame is lengthened by one pitch period, while it runs
//!   *behind*, shortened by one, so the delay moves while someone talks without a hold
//!   or a dropped frame. Silent gaps are shortened outright. Only a frame that is
//!   missing while playout is ahead is waited for with concealment (a hold): it may
//!   still come. A sender whose clock runs fast or slow is followed the same way.
//! * A missing frame is rebuilt, best first, from the FEC data in the following frame
//!   when that frame is already here (RFC 6716 §2.1.7, LBRR: the frame itself, coded
//!   again at lower quality), else from the deep redundancy (DRED) of the nearest later
//!   frame that is here and reaches back far enough, else by the decoder's concealment
//!   (neural deep PLC at decoder complexity 5 and up). This is libopus's own order
//!   (`opus_demo`). Gaps that the sender's sequence numbers show were DTX silence are
//!   filled with comfort noise and not counted as loss.
//! * Frames that arrive after their playout time are dropped and counted as late (one
//!   that began before playout but ends after it is played from its start: its
//!   timestamps are on a grid shifted from the last source's, as after a room switches
//!   what a listener hears);
//!   duplicates are dropped; timestamps and sequence numbers are unwrapped, so a wrap of
//!   either is seamless; a new stream id or an impossible timestamp jump restarts the
//!   buffer (the sender restarted).
//!
//! Pure computation: time is an argument, no clock is read and nothing allocates after
//! construction.

use std::time::{Duration, Instant};

use crate::codec::{self, CodecError, Decoder, MAX_PACKET, MAX_PACKET_SAMPLES};
use crate::params::SAMPLE_RATE;

mod stretch;
mod track;
use track::{DelayWindow, SeqTracker, Unwrapper};

/// Most Opus frames one media packet may carry (Viz's `--batch` limit).
pub const MAX_FRAMES_PER_PACKET: usize = 16;

/// Frames the buffer holds at most: 1.2 s of 20 ms frames, well beyond `max_delay`.
const CAPACITY: usize = 64;

/// Smallest unit libopus can conceal: 2.5 ms.
const CONCEAL_QUANTUM: i64 = 120;

/// Deep redundancy is coded in chunks of 40 ms.
const DRED_CHUNK: i64 = 40 * 48;

/// A timestamp further than this from where the stream should be is a sender restart.
const RESTART_JUMP_SAMPLES: i64 = 2 * SAMPLE_RATE as i64;

/// Playout must lag the target by more than this (5 ms) before a gap is shortened, so
/// that a target moving by a millisecond does not make playout oscillate.
const SKIP_HYSTERESIS: i64 = 240;

/// Pops of concealment with nothing buffered after which a gap that sounds (its first
/// concealment is above -50 dBFS) fades to silence: a sender that stopped mid-sound
/// (muted, push to talk let go, gone) would otherwise be "continued" by the decoder's
/// concealment for as long as it stays away (measured: a muted 440 Hz tone went on at
/// -28 dBFS for seconds), and loss bursts longer than this are not worth guessing at.
/// A quiet gap is left alone: that is a pause in DTX, whose comfort noise (the
/// sender's background, refreshed every 400 ms) goes on as the sender meant it to.
const CONCEAL_BEFORE_SILENCE: u64 = 5;

/// Recent loss above which the buffer keeps one extra frame so FEC or DRED can be used
/// (1 %).
const REDUNDANCY_LOSS_THRESHOLD: f32 = 0.01;

/// A sender counts as sending redundancy if one of its last this many packets carried
/// some (the comfort-noise frames around silences carry none).
const REDUNDANCY_MEMORY: i64 = 50;

/// Weight of one packet in the recent-loss average (about the last 100 packets).
const LOSS_EMA_WEIGHT: f32 = 1.0 / 64.0;

/// At most one frame is dropped to shrink the delay per this many pops.
const DROP_SPACING: u32 = 5;

/// Playout this far behind the target (10 ms) shortens the frame being played.
const ACCELERATE_AFTER: i64 = 480;

/// What a consumer that pops when its queue runs low may still have queued (5 ms, a
/// device period) without that queue holding an earlier expansion.
const QUEUE_ALLOWANCE: i64 = 240;

/// Playout this far ahead of the target (1 ms) lengthens the frame being played: less
/// than the guard, so the delay grows before a frame arrives too late for it.
const EXPAND_BEFORE: i64 = 48;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// Upper bound of the target delay.
    pub max_delay: Duration,
    /// Quantile of recent arrival delays the buffer waits for (0.5..1.0).
    pub quantile: f32,
    /// How many recent frame arrivals the estimate looks at.
    pub window: usize,
    /// Safety margin for scheduling noise on top of the measured jitter.
    pub guard: Duration,
    /// libopus decoder complexity: 5 and up conceal with deep PLC, 6 and up enhance
    /// speech with OSCE (see [`Decoder`]). Costs CPU on every frame.
    pub decoder_complexity: u8,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            max_delay: Duration::from_millis(300),
            quantile: 0.98,
            window: 256,
            guard: Duration::from_millis(2),
            decoder_complexity: 0,
        }
    }
}

/// One received media packet, as the depacketizer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct PacketRef<'a> {
    pub stream: u8,
    pub seq: u16,
    /// Timestamp of the first frame, 48 kHz units.
    pub timestamp: u32,
    /// The Opus packets it carries, consecutive in time.
    pub frames: &'a [&'a [u8]],
}

/// What [`JitterBuffer::pop`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// Nothing to play yet (no stream, or still filling the initial delay).
    Idle,
    /// `samples` of audio were written.
    Audio { samples: usize, kind: PlayKind },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayKind {
    /// A received frame, decoded.
    Decoded,
    /// A lost frame rebuilt from the next frame's FEC data.
    Fec,
    /// A lost frame rebuilt from the deep redundancy of a later frame.
    Dred,
    /// A lost or late frame replaced by decoder PLC.
    Concealed,
    /// Comfort noise in a DTX gap (the sender was silent).
    ComfortNoise,
    /// Concealment inserted to grow the delay while the frame due may still arrive.
    Inserted,
}

/// Counters since the buffer was created (restarts do not clear them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Unique media packets received.
    pub packets_received: u64,
    /// Packets expected from sequence numbers but never received (RFC 3550 §6.4.1).
    pub packets_lost: u64,
    pub frames_decoded: u64,
    pub frames_fec: u64,
    pub frames_dred: u64,
    pub frames_concealed: u64,
    pub frames_comfort_noise: u64,
    pub frames_inserted: u64,
    pub frames_late: u64,
    pub frames_duplicate: u64,
    /// Frames discarded to bring the delay down.
    pub frames_dropped: u64,
    /// Frames shortened by a pitch period to bring the delay down.
    pub frames_accelerated: u64,
    /// Frames lengthened by a pitch period to bring the delay up.
    pub frames_expanded: u64,
    /// Frames that did not parse as Opus or failed to decode.
    pub frames_invalid: u64,
    pub stream_restarts: u64,
}

#[derive(Clone)]
struct Slot {
    ts: i64,
    seq: i64,
    duration: i64,
    len: usize,
    data: [u8; MAX_PACKET],
}

pub struct JitterBuffer {
    config: JitterConfig,
    decoder: Decoder,
    slots: Vec<Slot>,
    /// Indices into `slots`, sorted by timestamp; the rest are free.
    order: [u8; CAPACITY],
    used: usize,
    epoch: Option<Instant>,
    stream: Option<u8>,
    ts_unwrap: Unwrapper<32>,
    seq_unwrap: Unwrapper<16>,
    seq: SeqTracker,
    delays: DelayWindow,
    /// Next timestamp to play; `None` until playout starts.
    playout: Option<i64>,
    /// Sequence number of the last frame played.
    last_seq: Option<i64>,
    /// Where the stream's newest frame was, for restart detection: (ts end, arrival).
    newest: Option<(i64, i64)>,
    last_duration: i64,
    /// Consecutive concealments whose cause (loss or DTX) is not known yet.
    unresolved_gap: u64,
    /// The unresolved gap is a quiet one (comfort noise), concealed however long it is.
    quiet_gap: bool,
    pops_since_drop: u32,
    stats: JitterStats,
    lost_before_restart: u64,
    /// Exponential average of per-packet loss (0..=1).
    loss_ema: f32,
    /// Audio inserted by holds at one instant: (instant in samples, samples inserted).
    held: Option<(i64, i64)>,
    /// Sequence number of the last packet that carried FEC or deep redundancy.
    last_redundant_seq: Option<i64>,
    /// Timestamp of the frame whose deep redundancy the decoder holds, and how many
    /// samples before that frame it reaches (0: it carried none).
    dred_parsed: Option<(i64, i64)>,
    /// When the last frame was stretched (samples).
    last_stretch: Option<i64>,
    /// The last frame played was quiet (a pause): holds there are not heard.
    in_pause: bool,
    /// Room for the faded period [`stretch::expand`] inserts.
    stretch_scratch: Box<[f32]>,
}

impl std::fmt::Debug for JitterBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("buffered", &self.used)
            .field("playout", &self.playout)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Result<Self, CodecError> {
        let empty = Slot { ts: 0, seq: 0, duration: 0, len: 0, data: [0; MAX_PACKET] };
        let mut order = [0u8; CAPACITY];
        for (i, o) in order.iter_mut().enumerate() {
            *o = i as u8;
        }
        Ok(Self {
            config,
            decoder: Decoder::with_complexity(config.decoder_complexity)?,
            slots: vec![empty; CAPACITY],
            order,
            used: 0,
            epoch: None,
            stream: None,
            ts_unwrap: Unwrapper::default(),
            seq_unwrap: Unwrapper::default(),
            seq: SeqTracker::default(),
            delays: DelayWindow::new(config.window),
            playout: None,
            last_seq: None,
            newest: None,
            last_duration: 960,
            unresolved_gap: 0,
            quiet_gap: false,
            pops_since_drop: DROP_SPACING,
            stats: JitterStats::default(),
            lost_before_restart: 0,
            loss_ema: 0.0,
            last_redundant_seq: None,
            held: None,
            dred_parsed: None,
            in_pause: true,
            last_stretch: None,
            stretch_scratch: vec![0.0; MAX_PACKET_SAMPLES].into_boxed_slice(),
        })
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats { packets_lost: self.lost_before_restart + self.seq.lost(), ..self.stats }
    }

    /// Frames waiting to be played.
    pub fn buffered_frames(&self) -> usize {
        self.used
    }

    /// The delay the buffer currently aims for: arrival of the fastest frames to the end
    /// of their playout (one frame plus the measured jitter and guard).
    pub fn target_delay(&mut self) -> Duration {
        let spread = self.delays.spread(self.config.quantile);
        samples_to_duration(self.target_extra(spread) + self.last_duration)
    }

    fn now_samples(&mut self, now: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(now);
        let ns = now.saturating_duration_since(epoch).as_nanos() as i128;
        (ns * i128::from(SAMPLE_RATE) / 1_000_000_000) as i64
    }

    /// The delay beyond the fastest path that playout aims for, from the delay window's
    /// `(minimum, quantile)`.
    fn target_extra(&self, spread: Option<(i64, i64)>) -> i64 {
        let guard = duration_to_samples(self.config.guard);
        let max_extra = (duration_to_samples(self.config.max_delay) - self.last_duration).max(0);
        let jitter = spread.map_or(0, |(min, q)| q - min);
        // Redundancy for a lost frame travels in later frames, which are just as
        // jittered, so it can only be used if the buffer waits one more frame on top of
        // the jitter. Pay that frame only while packets are actually lost and the sender
        // sends redundancy (FEC or DRED).
        (jitter + self.redundancy_wait() + guard).clamp(0, max_extra)
    }

    /// The frame the target adds so that redundancy in later frames arrives in time.
    fn redundancy_wait(&self) -> i64 {
        let redundancy_seen = self.last_redundant_seq.is_some_and(|s| self.seq.highest - s < REDUNDANCY_MEMORY);
        if redundancy_seen && self.loss_ema > REDUNDANCY_LOSS_THRESHOLD { self.last_duration } else { 0 }
    }

    fn restart(&mut self) {
        self.lost_before_restart += self.seq.lost();
        self.last_redundant_seq = None;
        self.used = 0;
        self.ts_unwrap = Unwrapper::default();
        self.seq_unwrap = Unwrapper::default();
        self.seq = SeqTracker::default();
        self.delays.clear();
        self.playout = None;
        self.last_seq = None;
        self.newest = None;
        self.unresolved_gap = 0;
        self.dred_parsed = None;
        // A new stream is a new encoder: decoder state from the old one would only smear.
        let _ = self.decoder.reset();
    }

    /// Accepts one received media packet. Invalid frames are counted and skipped.
    pub fn push(&mut self, now: Instant, packet: PacketRef<'_>) {
        let now_s = self.now_samples(now);
        if self.stream.is_some_and(|s| s != packet.stream) {
            self.stats.stream_restarts += 1;
            self.restart();
        }
        self.stream = Some(packet.stream);

        let mut ts = self.ts_unwrap.unwrap(u64::from(packet.timestamp));
        if let Some((newest_end, newest_arrival)) = self.newest {
            let expected = newest_end + (now_s - newest_arrival);
            if (ts - expected).abs() > RESTART_JUMP_SAMPLES {
                self.stats.stream_restarts += 1;
                self.restart();
                ts = self.ts_unwrap.unwrap(u64::from(packet.timestamp));
            }
        }
        let seq = self.seq_unwrap.unwrap(u64::from(packet.seq));
        let highest_before = self.seq.base.map(|_| self.seq.highest);
        if !self.seq.record(seq) {
            self.stats.frames_duplicate += packet.frames.len() as u64;
            return;
        }
        self.stats.packets_received += 1;
        self.resolve_gap(seq, ts);
        // Packets skipped over count as losses now; a late straggler only as a receipt.
        let missing = highest_before.map_or(0, |h| (seq - h - 1).clamp(0, 64));
        for _ in 0..missing {
            self.loss_ema += LOSS_EMA_WEIGHT * (1.0 - self.loss_ema);
        }
        self.loss_ema -= LOSS_EMA_WEIGHT * self.loss_ema;
        if packet.frames.first().is_some_and(|f| codec::packet_has_fec(f) || codec::packet_has_extensions(f)) {
            self.last_redundant_seq = Some(seq);
        }

        for frame in packet.frames.iter().take(MAX_FRAMES_PER_PACKET) {
            let Ok(duration) = codec::packet_samples(frame) else {
                self.stats.frames_invalid += 1;
                continue;
            };
            let duration = duration as i64;
            self.delays.push(now_s - ts);
            if self.newest.is_none_or(|(end, _)| ts + duration > end) {
                self.newest = Some((ts + duration, now_s));
            }
            // Late only if it ends before playout: a frame that overlaps it lies on a
            // grid shifted from the one playout followed (a room switched this
            // listener's source) and is played from its start (see `pop`).
            if self.playout.is_some_and(|p| ts + duration <= p) {
                self.stats.frames_late += 1;
            } else if frame.len() > MAX_PACKET {
                self.stats.frames_invalid += 1;
            } else {
                self.insert(ts, seq, duration, frame);
            }
            ts += duration;
        }
    }

    /// A concealment run ended by a packet. The sequence numbers say how many packets
    /// went missing in it; that many concealed frames were loss, the rest of the run
    /// was the sender's silence (DTX).
    fn resolve_gap(&mut self, seq: i64, ts: i64) {
        if self.unresolved_gap == 0 {
            return;
        }
        let late = self.playout.is_some_and(|p| ts < p);
        let missing = match self.last_seq {
            Some(last) if !late => (seq - last - 1).max(0) as u64,
            _ => self.unresolved_gap,
        };
        let lost = missing.min(self.unresolved_gap);
        self.stats.frames_concealed += lost;
        self.stats.frames_comfort_noise += self.unresolved_gap - lost;
        self.unresolved_gap = 0;
    }

    fn insert(&mut self, ts: i64, seq: i64, duration: i64, data: &[u8]) {
        let pos = self.order[..self.used].partition_point(|&i| self.slots[i as usize].ts < ts);
        if pos < self.used && self.slots[self.order[pos] as usize].ts == ts {
            self.stats.frames_duplicate += 1;
            return;
        }
        if self.used == CAPACITY {
            // Full: the oldest frame goes, it is the one least likely to still be played.
            if pos == 0 {
                self.stats.frames_dropped += 1;
                return;
            }
            self.order[..self.used].rotate_left(1);
            self.used -= 1;
            self.stats.frames_dropped += 1;
            return self.insert(ts, seq, duration, data);
        }
        let slot_index = self.order[self.used];
        self.order.copy_within(pos..self.used, pos + 1);
        self.order[pos] = slot_index;
        self.used += 1;
        let slot = &mut self.slots[slot_index as usize];
        slot.ts = ts;
        slot.seq = seq;
        slot.duration = duration;
        slot.len = data.len();
        slot.data[..data.len()].copy_from_slice(data);
    }

    fn front(&self) -> Option<&Slot> {
        (self.used > 0).then(|| &self.slots[self.order[0] as usize])
    }

    fn remove_front(&mut self) {
        if self.used > 0 {
            self.order[..self.used].rotate_left(1);
            self.used -= 1;
        }
    }

    /// Drops frames whose time has passed (they can never be played).
    fn discard_stale(&mut self, playout: i64) {
        while let Some(f) = self.front() {
            if f.ts + f.duration > playout {
                break;
            }
            self.stats.frames_late += 1;
            self.remove_front();
        }
    }

    /// Writes the next piece of audio into `out` (at least [`MAX_PACKET_SAMPLES`] long)
    /// and says what it was. Call it whenever the output needs more samples, and as
    /// late as the output allows: a frame is decoded when it is popped, so that is its
    /// deadline. `queued` is how many samples the caller still has ahead of what this
    /// call returns (its own FIFO): time-stretched frames are longer or shorter than a
    /// frame, the caller queues more or less of them, and the delay listeners hear is
    /// the buffer's plus that queue, so stretching is decided on the sum.
    pub fn pop(&mut self, now: Instant, queued: usize, out: &mut [f32]) -> Playout {
        debug_assert!(out.len() >= MAX_PACKET_SAMPLES);
        let now_s = self.now_samples(now);
        if self.held.is_some_and(|(at, _)| at != now_s) {
            self.held = None;
        }
        // One pass over the delay window per pop (it is sorted to find the quantile).
        let spread = self.delays.spread(self.config.quantile);
        let min_delay = spread.map_or(0, |(min, _)| min);
        let desired_offset = min_delay + self.target_extra(spread);

        let playout = match self.playout {
            Some(p) => p,
            None => {
                let Some(first) = self.front() else { return Playout::Idle };
                if now_s - first.ts < desired_offset {
                    return Playout::Idle;
                }
                let ts = first.ts;
                self.playout = Some(ts);
                ts
            }
        };
        self.pops_since_drop = self.pops_since_drop.saturating_add(1);
        // > 0: playing later than needed (too much delay); < 0: earlier than safe. Audio
        // inserted by holds at this same instant already counts: the caller will only
        // need the next frame after playing it.
        let held = self.held.map_or(0, |(_, h)| h);
        let mut err = (now_s - playout) - desired_offset + held;
        let mut playout = playout;

        // Far too late (a long stall, a burst after an outage): jump to the frames that
        // are due now instead of playing stale audio for seconds.
        if err > duration_to_samples(self.config.max_delay) {
            let target = now_s - desired_offset;
            let whole_frames = (target - playout) / self.last_duration * self.last_duration;
            let skip_to = self.frames_from(target).unwrap_or(playout + whole_frames);
            let skipped = self.count_before(skip_to);
            self.stats.frames_dropped += skipped as u64;
            for _ in 0..skipped {
                self.remove_front();
            }
            err -= skip_to - playout;
            playout = skip_to;
        }
        self.discard_stale(playout);

        // A frame that began before playout but ends after it comes from a source whose
        // timestamps are on a shifted grid (a room switched this listener from a mix to
        // one speaker's packets, `mixer::stream`). Playout steps back to its start: the
        // audio concealed since then is heard as a little more delay, instead of every
        // frame of the new grid arriving a few samples after playout passed its start
        // and being dropped as late, for as long as the source lasts.
        if let Some(ts) = self.front().map(|f| f.ts).filter(|&ts| ts < playout) {
            err += playout - ts;
            playout = ts;
        }
        let due = self.front().filter(|f| f.ts == playout).map(|f| f.duration);
        let Some(duration) = due else {
            return self.pop_missing(now_s, playout, err, out);
        };
        let next_is_adjacent = self.used > 1 && self.slots[self.order[1] as usize].ts == playout + duration;
        self.playout = Some(playout);
        if err > 4 * duration && next_is_adjacent && self.pops_since_drop >= DROP_SPACING {
            // Far too deep while talking and nothing could be shortened (loud
            // non-periodic audio): decode and discard one frame (keeping the decoder
            // state continuous), then play the next. Rare; the last resort before the
            // jump above.
            self.decode_front(out);
            self.stats.frames_dropped += 1;
            self.pops_since_drop = 0;
            self.playout = Some(playout + duration);
        }
        let played = self.pop_due(out);
        let Playout::Audio { samples, kind: PlayKind::Decoded } = played else { return played };
        // What the listener hears late or early: this buffer's error plus what the caller
        // still has queued (earlier stretches sit there until they are played).
        // A consumer that pops on a fixed tick (the room mixer) keeps an expansion in its
        // queue without popping later, so `err` alone would not see it; one that pops
        // when its queue runs low (a sound card) pops later. Either way, one stretch is
        // only followed by the next once two frames have played.
        let heard_err = err + queued as i64;
        let settled = self.last_stretch.is_none_or(|at| now_s - at >= 2 * self.last_duration);
        let stretched = if !settled {
            None
        } else if heard_err > ACCELERATE_AFTER {
            stretch::accelerate(out, samples).inspect(|_| self.stats.frames_accelerated += 1)
        } else if err < -EXPAND_BEFORE && heard_err < QUEUE_ALLOWANCE {
            stretch::expand(out, samples, &mut self.stretch_scratch).inspect(|_| self.stats.frames_expanded += 1)
        } else {
            None
        };
        let Some(len) = stretched else { return played };
        self.last_stretch = Some(now_s);
        // Audio added or removed at this instant counts like a hold's (see `held`).
        let before = self.held.map_or(0, |(_, h)| h);
        self.held = Some((now_s, before + len as i64 - samples as i64));
        Playout::Audio { samples: len, kind: PlayKind::Decoded }
    }

    /// First buffered timestamp at or after `ts`.
    fn frames_from(&self, ts: i64) -> Option<i64> {
        self.order[..self.used].iter().map(|&i| self.slots[i as usize].ts).find(|&t| t >= ts)
    }

    fn count_before(&self, ts: i64) -> usize {
        self.order[..self.used].iter().take_while(|&&i| self.slots[i as usize].ts < ts).count()
    }

    /// Decodes the frame at the front and removes it; returns its length, sequence
    /// number and whether it decoded (a corrupt frame is concealed instead).
    fn decode_front(&mut self, out: &mut [f32]) -> (usize, i64, bool) {
        let idx = self.order[0] as usize;
        let (duration, seq, len) = {
            let s = &self.slots[idx];
            (s.duration as usize, s.seq, s.len)
        };
        let out = &mut out[..duration];
        let ok = self.decoder.decode(&self.slots[idx].data[..len], out).is_ok_and(|n| n == duration);
        if !ok {
            self.conceal(out);
        }
        self.remove_front();
        (duration, seq, ok)
    }

    fn pop_due(&mut self, out: &mut [f32]) -> Playout {
        let (duration, seq, ok) = self.decode_front(out);
        if ok {
            self.stats.frames_decoded += 1;
        } else {
            self.stats.frames_invalid += 1;
        }
        self.last_duration = duration as i64;
        self.last_seq = Some(seq);
        self.playout = self.playout.map(|p| p + duration as i64);
        // Only asked while the buffer keeps a frame for redundancy (see `pop_missing`);
        // the rest of the time the mixer's many sources need not pay for it.
        self.in_pause = self.redundancy_wait() > 0 && stretch::is_quiet(&out[..duration]);
        Playout::Audio { samples: duration, kind: if ok { PlayKind::Decoded } else { PlayKind::Concealed } }
    }

    fn pop_missing(&mut self, now_s: i64, playout: i64, err: i64, out: &mut [f32]) -> Playout {
        let next = self.front().map(|f| (f.ts, f.seq, f.duration));
        // How much to conceal: one frame, or up to the next frame if that is sooner.
        let mut span = self.last_duration;
        if let Some((ts, _, _)) = next {
            span = span.min(ts - playout);
        }
        span = (span / CONCEAL_QUANTUM * CONCEAL_QUANTUM).clamp(CONCEAL_QUANTUM, MAX_PACKET_SAMPLES as i64);

        let was_dtx = match (next, self.last_seq) {
            (Some((_, next_seq, _)), Some(last)) => next_seq <= last + 1,
            _ => false,
        };
        // A later frame of the same talk spurt is already here: the frame due was lost
        // (or is so reordered that it is as good as lost). Rebuild or conceal it now and
        // let the following frames' time-stretching grow the delay; holding here would
        // put a hold into speech.
        let lost_in_speech = next.is_some() && !was_dtx;
        // Waiting for a late frame is worth it up to the jitter the target covers. The
        // extra frame the target keeps for redundancy is grown into by a hold only in a
        // pause, where it is inaudible; in speech, by time-stretching the next frames.
        let late_err = if self.in_pause { err } else { err + self.redundancy_wait() };
        if late_err < 0 && !lost_in_speech {
            // Ahead of the target: the frame may still come. Conceal just enough (in
            // 2.5 ms steps) to reach the target, without advancing.
            let hold = ((-late_err + CONCEAL_QUANTUM - 1) / CONCEAL_QUANTUM * CONCEAL_QUANTUM).min(span);
            self.conceal(&mut out[..hold as usize]);
            self.stats.frames_inserted += 1;
            let before = self.held.map_or(0, |(_, h)| h);
            self.held = Some((now_s, before + hold));
            return Playout::Audio { samples: hold as usize, kind: PlayKind::Inserted };
        }
        // Deeper than needed: shorten this concealment (silence, or audio that is lost
        // anyway) in 2.5 ms steps. Playout still advances by the whole span, so it stays
        // on the sender's frame grid.
        let skip = ((err - SKIP_HYSTERESIS) / CONCEAL_QUANTUM * CONCEAL_QUANTUM).clamp(0, span - CONCEAL_QUANTUM);
        let concealed_len = (span - skip) as usize;

        let kind = match next {
            Some((ts, _, duration)) if !was_dtx => {
                // A later frame is here: it may carry FEC (if it is the very next one) or
                // deep redundancy for the one we miss.
                let rebuilt = if ts == playout + span && duration == span && self.rebuild_from_fec(span, out) {
                    self.stats.frames_fec += 1;
                    Some(PlayKind::Fec)
                } else if self.rebuild_from_dred(playout, span, out) {
                    self.stats.frames_dred += 1;
                    Some(PlayKind::Dred)
                } else {
                    None
                };
                if let Some(kind) = rebuilt {
                    // Rebuilt audio plays whole: shortening it would cut real speech.
                    self.playout = Some(playout + span);
                    return Playout::Audio { samples: span as usize, kind };
                }
                self.conceal(&mut out[..concealed_len]);
                self.stats.frames_concealed += 1;
                PlayKind::Concealed
            }
            Some(_) => {
                self.conceal(&mut out[..concealed_len]);
                self.stats.frames_comfort_noise += 1;
                self.in_pause = true;
                PlayKind::ComfortNoise
            }
            None => {
                // Nothing buffered: DTX or loss, decided when the next packet arrives.
                // A short gap is concealed, and so is a quiet one however long; a gap
                // that still sounds after CONCEAL_BEFORE_SILENCE pops fades out, and
                // from then on silence is played until the sender is back.
                // Whether the gap is quiet is judged by its first concealment, which
                // continues what was playing: later ones decay, and a stopped tone's
                // concealment measured -60 dBFS by the fifth.
                let out = &mut out[..concealed_len];
                if self.unresolved_gap < CONCEAL_BEFORE_SILENCE || self.quiet_gap {
                    self.conceal(out);
                    if self.unresolved_gap == 0 {
                        self.quiet_gap = stretch::is_quiet(out);
                    }
                    if self.unresolved_gap + 1 == CONCEAL_BEFORE_SILENCE && !self.quiet_gap {
                        let step = 1.0 / out.len() as f32;
                        for (i, s) in out.iter_mut().enumerate() {
                            *s *= 1.0 - i as f32 * step;
                        }
                    }
                } else {
                    out.fill(0.0);
                }
                self.unresolved_gap += 1;
                PlayKind::Concealed
            }
        };
        self.playout = Some(playout + span);
        Playout::Audio { samples: (span - skip) as usize, kind }
    }

    /// Rebuilds the `span` samples due from the LBRR data of the next frame (at the front).
    fn rebuild_from_fec(&mut self, span: i64, out: &mut [f32]) -> bool {
        let idx = self.order[0] as usize;
        let packet = &self.slots[idx].data[..self.slots[idx].len];
        codec::packet_has_fec(packet)
            && self.decoder.decode_fec(packet, &mut out[..span as usize]).is_ok_and(|n| n == span as usize)
    }

    /// Rebuilds the `span` samples due at `playout` from the deep redundancy of the
    /// nearest later frame (at the front), parsing it once for all the frames it covers.
    fn rebuild_from_dred(&mut self, playout: i64, span: i64, out: &mut [f32]) -> bool {
        let idx = self.order[0] as usize;
        let ts = self.slots[idx].ts;
        // How far before that frame's start the audio due begins.
        let offset = ts - playout;
        let reach = match self.dred_parsed {
            Some((parsed_ts, reach)) if parsed_ts == ts => reach,
            _ => {
                let packet = &self.slots[idx].data[..self.slots[idx].len];
                // Redundancy comes in 40 ms chunks; ask for enough of them to reach the
                // frame due (asking for exactly `offset` can stop a chunk short).
                let wanted = (offset + DRED_CHUNK) as usize;
                let reach = self.decoder.parse_dred(packet, wanted) as i64;
                self.dred_parsed = Some((ts, reach));
                reach
            }
        };
        offset >= span
            && reach >= offset
            && self.decoder.decode_dred(offset as usize, &mut out[..span as usize]).is_ok_and(|n| n == span as usize)
    }

    fn conceal(&mut self, out: &mut [f32]) {
        if self.decoder.conceal(out).is_err() {
            out.fill(0.0);
        }
    }
}

fn duration_to_samples(d: Duration) -> i64 {
    (d.as_nanos() * u128::from(SAMPLE_RATE) / 1_000_000_000) as i64
}

fn samples_to_duration(s: i64) -> Duration {
    Duration::from_nanos((s.max(0) as u64) * 1_000_000_000 / u64::from(SAMPLE_RATE))
}
