//! The room mixer: per-participant jitter buffers in, one packet stream per listener out.
//!
//! Every tick (one frame), the mixer pops each *active* source's jitter buffer (a
//! source is active while its packets keep coming; DTX silence sends none, so a silent
//! participant costs nothing), applies its gain and mute, and builds only the mixes
//! somebody needs:
//!
//! * listeners who are not speaking share **one** mix of every audible source
//!   ([`MixKey::Everyone`]), encoded once however many they are;
//! * each speaker gets the mix of everybody *but themselves* ([`MixKey::Own`],
//!   "mix-minus"), so nobody hears their own voice come back; so does a listener who
//!   turned somebody up or down for themselves ([`Mixer::set_personal_gain`]), since
//!   that mix is theirs alone;
//! * a listener whose mix would be exactly one source at unity gain gets that source's
//!   Opus packets **forwarded unchanged** the moment they arrive ([`Route::Forward`]):
//!   no jitter buffer, no decode, no second encode, no added codec delay. That is what
//!   makes a call of two through a room as good as a direct one.
//!
//! Mixes are summed in float, limited by a soft [`limiter::Limiter`] and encoded at
//! the room's parameters, with FEC tuned to the worst loss reported by the listeners
//! sharing that encoder. Each listener's packets are renumbered into one continuous
//! stream ([`stream`]) so switching between forwarding and mixing never restarts the
//! listener's jitter buffer.
//!
//! Pure computation, like the rest of this crate: time comes in as an argument and
//! packets go out through a callback. After a participant joins, a tick allocates
//! nothing but the per-tick delivery list it reuses.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::codec::{self, CodecError, Encoded, Encoder, MAX_PACKET, MAX_PACKET_SAMPLES};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, PacketRef, Playout};
use crate::params::AudioParams;

pub mod limiter;
pub mod stream;

use limiter::Limiter;
pub use stream::{Delivery, StreamKey};
use stream::{OutStream, SourceHeader};

pub type ParticipantId = u32;

/// Which mix a listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MixKey {
    /// Every audible source: what all non-speaking listeners share.
    Everyone,
    /// The mix made for this listener alone: every audible source but the listener,
    /// with the listener's personal volumes applied.
    Own(ParticipantId),
}

/// How a listener is served right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Nobody audible: nothing is sent.
    Silent,
    /// Exactly one audible source at unity gain: its packets, unchanged.
    Forward(ParticipantId),
    Mix(MixKey),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixerConfig {
    pub params: AudioParams,
    pub jitter: JitterConfig,
    /// A source stays active this long after its last packet (covers jitter and the
    /// jitter buffer draining), then it is skipped until it sends again.
    pub hangover: Duration,
    /// Forward a lone unity-gain source's packets instead of mixing (on by default;
    /// off only to measure what it saves).
    pub pass_through: bool,
}

impl MixerConfig {
    pub fn new(params: AudioParams) -> Self {
        Self { params, jitter: JitterConfig::default(), hangover: Duration::from_millis(400), pass_through: true }
    }
}

/// How a participant takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    pub sends: bool,
    pub receives: bool,
    /// Echo test: hears only itself, is heard by nobody.
    pub echo: bool,
}

impl Role {
    pub const SPEAKER: Role = Role { sends: true, receives: true, echo: false };
    pub const LISTENER: Role = Role { sends: false, receives: true, echo: false };
    pub const SEND_ONLY: Role = Role { sends: true, receives: false, echo: false };
    pub const ECHO: Role = Role { sends: true, receives: true, echo: true };
}

/// A packet for several listeners, each with its own header.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub from: StreamKey,
    pub frames: &'a [&'a [u8]],
    pub deliveries: &'a [Delivery],
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickStats {
    /// Sources whose jitter buffer was popped (decoded, concealed or FEC).
    pub sources_decoded: u32,
    /// Sources that contributed audio to the mixes.
    pub sources_audible: u32,
    /// Opus encodes (one per distinct non-silent mix).
    pub encodes: u32,
    /// Listener deliveries of mixed packets.
    pub mixed_deliveries: u32,
}

/// Running totals since the mixer started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixerTotals {
    pub ticks: u64,
    pub encodes: u64,
    pub forwarded_packets: u64,
    pub forwarded_deliveries: u64,
    pub mixed_deliveries: u64,
    pub route_changes: u64,
    pub limited_samples: u64,
}

/// A participant as the mixer sees it, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceStatus {
    pub active: bool,
    pub audible: bool,
    /// RMS of the last mixed frame, dBFS (-100 when silent).
    pub level_dbfs: f32,
    pub jitter: JitterStats,
    pub route: Route,
}

/// The encoder side of one mix: its own codec state, limiter and numbering.
struct MixChannel {
    encoder: Encoder,
    limiter: Limiter,
    seq: u16,
    timestamp: u32,
    marker: bool,
}

impl MixChannel {
    fn new(params: AudioParams) -> Result<Self, CodecError> {
        Ok(Self { encoder: Encoder::new(params)?, limiter: Limiter::new(), seq: 0, timestamp: 0, marker: true })
    }
}

struct Participant {
    role: Role,
    gain: f32,
    muted: bool,
    jitter: Option<JitterBuffer>,
    last_arrival: Option<Instant>,
    active: bool,
    /// This tick's audio (one room frame) and whether there was any.
    pcm: Box<[f32]>,
    has_audio: bool,
    /// Decoded samples beyond this tick's frame (sources with longer frames).
    carry: Box<[f32]>,
    carry_len: usize,
    level_dbfs: f32,
    route: Route,
    out: OutStream,
    loss_percent: u8,
    /// This participant's own-mix encoder, made the first time they need one.
    minus: Option<MixChannel>,
    /// How loud this listener wants some sources, for themselves only (linear gain,
    /// not 1), sorted by source. At most one entry per other participant.
    personal: Vec<(ParticipantId, f32)>,
    /// A tap: hears exactly this source's packets, forwarded whatever its gain or mute
    /// (a per-participant recording or RTP forward).
    tap: Option<ParticipantId>,
}

pub struct Mixer {
    config: MixerConfig,
    frame: usize,
    participants: BTreeMap<ParticipantId, Participant>,
    everyone: MixChannel,
    /// Sources heard by the room right now, ascending.
    audible: Vec<ParticipantId>,
    /// For each of `audible`: its gain is exactly 1 (so it may be forwarded).
    audible_unity: Vec<bool>,
    /// Listeners currently on [`Route::Forward`], per source.
    forwarding: HashMap<ParticipantId, u32>,
    /// Participants with an own mix (routed to it now, or with its encoder from before).
    own_mixes: Vec<ParticipantId>,
    scratch: Box<[f32]>,
    sum: Box<[f32]>,
    mix: Box<[f32]>,
    packet: Box<[u8]>,
    deliveries: Vec<Delivery>,
    totals: MixerTotals,
    routes_dirty: bool,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("participants", &self.participants.len())
            .field("audible", &self.audible)
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

fn rms_dbfs(samples: &[f32]) -> f32 {
    let mean = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
    if mean <= 1e-10 { -100.0 } else { 10.0 * mean.log10() }
}

fn packet_duration(frames: &[&[u8]]) -> u32 {
    frames.iter().map(|f| codec::packet_samples(f).unwrap_or(0) as u32).sum()
}

impl Mixer {
    pub fn new(config: MixerConfig) -> Result<Self, CodecError> {
        let frame = config.params.frame.samples();
        Ok(Self {
            everyone: MixChannel::new(config.params)?,
            config,
            frame,
            participants: BTreeMap::new(),
            audible: Vec::new(),
            audible_unity: Vec::new(),
            forwarding: HashMap::new(),
            own_mixes: Vec::new(),
            scratch: vec![0.0; MAX_PACKET_SAMPLES].into_boxed_slice(),
            sum: vec![0.0; frame].into_boxed_slice(),
            mix: vec![0.0; frame].into_boxed_slice(),
            packet: vec![0u8; MAX_PACKET].into_boxed_slice(),
            deliveries: Vec::new(),
            totals: MixerTotals::default(),
            routes_dirty: false,
        })
    }

    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    pub fn totals(&self) -> MixerTotals {
        MixerTotals {
            limited_samples: self.everyone.limiter.limited_samples()
                + self
                    .participants
                    .values()
                    .filter_map(|p| p.minus.as_ref())
                    .map(|m| m.limiter.limited_samples())
                    .sum::<u64>(),
            ..self.totals
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Adds (or re-adds, resetting its audio state) a participant. `gain` is linear,
    /// 0.0..=2.0.
    pub fn add(&mut self, id: ParticipantId, role: Role, gain: f32, muted: bool) -> Result<(), CodecError> {
        self.remove(id);
        let jitter = if role.sends { Some(JitterBuffer::new(self.config.jitter)?) } else { None };
        let frame = self.frame;
        self.participants.insert(
            id,
            Participant {
                role,
                gain: gain.clamp(0.0, 2.0),
                muted,
                jitter,
                last_arrival: None,
                active: false,
                pcm: vec![0.0; frame].into_boxed_slice(),
                has_audio: false,
                carry: vec![0.0; MAX_PACKET_SAMPLES + frame].into_boxed_slice(),
                carry_len: 0,
                level_dbfs: -100.0,
                route: Route::Silent,
                out: OutStream::new(id.wrapping_mul(2_654_435_761)),
                loss_percent: 0,
                minus: None,
                personal: Vec::new(),
                tap: None,
            },
        );
        self.routes_dirty = true;
        Ok(())
    }

    /// Adds a tap `id` that receives every packet `source` sends, unchanged, as they
    /// arrive: not mixed, not affected by the source's gain or mute (an admin muting
    /// someone for the room does not stop their own recording). It is no source
    /// itself and nobody hears it.
    pub fn add_tap(&mut self, id: ParticipantId, source: ParticipantId) -> Result<(), CodecError> {
        self.add(id, Role::LISTENER, 1.0, false)?;
        if let Some(p) = self.participants.get_mut(&id) {
            p.tap = Some(source);
        }
        self.update_routes();
        Ok(())
    }

    pub fn remove(&mut self, id: ParticipantId) -> bool {
        let removed = self.participants.remove(&id).is_some();
        if removed {
            for p in self.participants.values_mut() {
                p.out.reset_source(StreamKey::Forward(id));
                p.personal.retain(|&(s, _)| s != id);
            }
            self.routes_dirty = true;
            self.update_routes();
        }
        removed
    }

    pub fn set_gain(&mut self, id: ParticipantId, gain: f32) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.gain = gain.clamp(0.0, 2.0);
            self.routes_dirty = true;
        }
    }

    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.muted = muted;
            self.routes_dirty = true;
        }
    }

    /// How loud `listener` hears `source`, for that listener only (linear, 0.0..=2.0;
    /// 1.0 is as the room hears it). Both must be participants, and not the same.
    pub fn set_personal_gain(&mut self, listener: ParticipantId, source: ParticipantId, gain: f32) -> bool {
        if listener == source || !self.participants.contains_key(&source) {
            return false;
        }
        let Some(p) = self.participants.get_mut(&listener) else { return false };
        let gain = if gain.is_finite() { gain.clamp(0.0, 2.0) } else { 1.0 };
        match (p.personal.binary_search_by_key(&source, |&(s, _)| s), gain == 1.0) {
            (Ok(i), true) => {
                p.personal.remove(i);
            }
            (Ok(i), false) => p.personal[i].1 = gain,
            (Err(_), true) => {}
            (Err(i), false) => p.personal.insert(i, (source, gain)),
        }
        self.routes_dirty = true;
        self.update_routes();
        true
    }

    /// The gain `listener` set for `source` for themselves (1.0 when none).
    pub fn personal_gain(&self, listener: ParticipantId, source: ParticipantId) -> f32 {
        self.participants.get(&listener).map_or(1.0, |p| personal_gain(&p.personal, source))
    }

    /// Loss the listener reports (percent), for the FEC of the mix it hears.
    pub fn set_listener_loss(&mut self, id: ParticipantId, percent: u8) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.loss_percent = percent.min(100);
        }
    }

    pub fn route(&self, id: ParticipantId) -> Option<Route> {
        self.participants.get(&id).map(|p| p.route)
    }

    /// Sources heard by the room right now (talking, not muted, gain above zero).
    pub fn audible(&self) -> &[ParticipantId] {
        &self.audible
    }

    pub fn status(&self, id: ParticipantId) -> Option<SourceStatus> {
        self.participants.get(&id).map(|p| SourceStatus {
            active: p.active,
            audible: self.audible.binary_search(&id).is_ok(),
            level_dbfs: p.level_dbfs,
            jitter: p.jitter.as_ref().map(|j| j.stats()).unwrap_or_default(),
            route: p.route,
        })
    }

    /// A media packet from participant `id` arrived at `now`. Listeners to whom this
    /// source is forwarded get it through `emit` at once.
    pub fn push(
        &mut self,
        now: Instant,
        id: ParticipantId,
        packet: PacketRef<'_>,
        marker: bool,
        emit: &mut impl FnMut(Outgoing<'_>),
    ) {
        let Some(p) = self.participants.get_mut(&id) else { return };
        let Some(jitter) = p.jitter.as_mut() else { return };
        jitter.push(now, packet);
        p.last_arrival = Some(now);
        if !p.active {
            p.active = true;
            self.routes_dirty = true;
        }
        self.update_routes();
        if self.forwarding.get(&id).copied().unwrap_or(0) == 0 {
            return;
        }
        let header = SourceHeader {
            seq: packet.seq,
            timestamp: packet.timestamp,
            duration: packet_duration(packet.frames),
            marker,
        };
        let key = StreamKey::Forward(id);
        self.deliveries.clear();
        for (&lid, l) in self.participants.iter_mut() {
            if l.route == Route::Forward(id) {
                self.deliveries.push(l.out.map(lid, key, now, header));
            }
        }
        self.totals.forwarded_packets += 1;
        self.totals.forwarded_deliveries += self.deliveries.len() as u64;
        emit(Outgoing { from: key, frames: packet.frames, deliveries: &self.deliveries });
    }

    /// Recomputes who is audible and every listener's route, if anything changed.
    fn update_routes(&mut self) {
        if !self.routes_dirty {
            return;
        }
        self.routes_dirty = false;
        self.audible.clear();
        self.audible_unity.clear();
        for (&id, p) in &self.participants {
            if p.role.sends && !p.role.echo && p.active && !p.muted && p.gain > 0.0 {
                self.audible.push(id);
                self.audible_unity.push(p.gain == 1.0);
            }
        }
        self.forwarding.clear();
        self.own_mixes.clear();
        for (&id, p) in self.participants.iter_mut() {
            let route = if let Some(source) = p.tap {
                Route::Forward(source)
            } else if !p.role.receives {
                Route::Silent
            } else if p.role.echo {
                if p.active { Route::Forward(id) } else { Route::Silent }
            } else {
                listener_route(id, &p.personal, &self.audible, &self.audible_unity, self.config.pass_through)
            };
            if route != p.route {
                p.route = route;
                self.totals.route_changes += 1;
            }
            if let Route::Forward(s) = route {
                *self.forwarding.entry(s).or_default() += 1;
            }
            if route == Route::Mix(MixKey::Own(id)) || p.minus.is_some() {
                self.own_mixes.push(id);
            }
        }
    }

    /// Produces one frame: pops active sources, builds the mixes listeners need,
    /// encodes each once and hands the packets to `emit`. Call once per frame, on an
    /// absolute schedule.
    pub fn tick(&mut self, now: Instant, emit: &mut impl FnMut(Outgoing<'_>)) -> TickStats {
        let mut stats = TickStats::default();
        self.totals.ticks += 1;
        let frame = self.frame;
        let hangover = self.config.hangover;

        // 1. Pop every source that is sending, into its `pcm`.
        self.sum.fill(0.0);
        for p in self.participants.values_mut() {
            p.has_audio = false;
            let Some(jitter) = p.jitter.as_mut() else { continue };
            let recent = p.last_arrival.is_some_and(|t| now.saturating_duration_since(t) < hangover);
            if p.active && !recent && jitter.buffered_frames() == 0 {
                p.active = false;
                p.carry_len = 0;
                p.level_dbfs = -100.0;
                self.routes_dirty = true;
            }
            if !p.active {
                continue;
            }
            stats.sources_decoded += 1;
            while p.carry_len < frame {
                match jitter.pop(now, p.carry_len, &mut self.scratch) {
                    Playout::Idle => break,
                    Playout::Audio { samples, .. } => {
                        let n = samples.min(p.carry.len() - p.carry_len);
                        p.carry[p.carry_len..p.carry_len + n].copy_from_slice(&self.scratch[..n]);
                        p.carry_len += n;
                    }
                }
            }
            if p.carry_len == 0 {
                continue;
            }
            let take = p.carry_len.min(frame);
            p.pcm[..take].copy_from_slice(&p.carry[..take]);
            p.pcm[take..].fill(0.0);
            p.carry.copy_within(take..p.carry_len, 0);
            p.carry_len -= take;
            p.has_audio = true;
            p.level_dbfs = rms_dbfs(&p.pcm);
        }
        self.update_routes();

        // 2. The sum of everything audible, with gains.
        for (&id, p) in &self.participants {
            if p.has_audio && !p.muted && p.gain > 0.0 && !p.role.echo && self.audible.binary_search(&id).is_ok() {
                stats.sources_audible += 1;
                for (s, x) in self.sum.iter_mut().zip(p.pcm.iter()) {
                    *s += p.gain * x;
                }
            }
        }

        // 3. One encode per distinct mix somebody listens to.
        let any_audio = stats.sources_audible > 0;
        let mut everyone_wanted = false;
        let mut everyone_loss = 0u8;
        for p in self.participants.values() {
            if p.route == Route::Mix(MixKey::Everyone) {
                everyone_wanted = true;
                everyone_loss = everyone_loss.max(p.loss_percent);
            }
        }
        if everyone_wanted && any_audio {
            self.mix.copy_from_slice(&self.sum);
            let key = MixKey::Everyone;
            encode_and_emit(
                &mut self.everyone,
                key,
                everyone_loss,
                &mut self.mix,
                &mut self.packet,
                now,
                &mut self.participants,
                &mut self.deliveries,
                &mut stats,
                emit,
            );
        } else {
            advance_silent(&mut self.everyone, frame);
        }
        for i in 0..self.own_mixes.len() {
            let id = self.own_mixes[i];
            let Some(p) = self.participants.get_mut(&id) else { continue };
            if p.route != Route::Mix(MixKey::Own(id)) {
                if let Some(m) = p.minus.as_mut() {
                    advance_silent(m, frame);
                }
                continue;
            }
            // Everyone else: the sum less this listener's own contribution...
            self.mix.copy_from_slice(&self.sum);
            let own_counted = p.has_audio && !p.muted && p.gain > 0.0 && !p.role.echo;
            if own_counted {
                for (m, x) in self.mix.iter_mut().zip(p.pcm.iter()) {
                    *m -= p.gain * x;
                }
            }
            // ...with the sources they turned up or down changed by the difference.
            let personal = std::mem::take(&mut p.personal);
            let mut heard_audio = stats.sources_audible > u32::from(own_counted);
            if !personal.is_empty() {
                heard_audio = false;
                for &sid in &self.audible {
                    let Some(s) = self.participants.get(&sid) else { continue };
                    if sid == id || !s.has_audio || s.muted || s.gain <= 0.0 || s.role.echo {
                        continue;
                    }
                    let mine = personal_gain(&personal, sid);
                    heard_audio |= mine > 0.0;
                    if mine != 1.0 {
                        let delta = (mine - 1.0) * s.gain;
                        for (m, x) in self.mix.iter_mut().zip(s.pcm.iter()) {
                            *m += delta * x;
                        }
                    }
                }
            }
            let Some(p) = self.participants.get_mut(&id) else { continue };
            p.personal = personal;
            let loss = p.loss_percent;
            if p.minus.is_none() {
                match MixChannel::new(self.config.params) {
                    Ok(m) => p.minus = Some(m),
                    Err(_) => continue,
                }
            }
            let Some(mut channel) = p.minus.take() else { continue };
            if heard_audio {
                encode_and_emit(
                    &mut channel,
                    MixKey::Own(id),
                    loss,
                    &mut self.mix,
                    &mut self.packet,
                    now,
                    &mut self.participants,
                    &mut self.deliveries,
                    &mut stats,
                    emit,
                );
            } else {
                advance_silent(&mut channel, frame);
            }
            if let Some(p) = self.participants.get_mut(&id) {
                p.minus = Some(channel);
            }
        }
        self.totals.encodes += u64::from(stats.encodes);
        self.totals.mixed_deliveries += u64::from(stats.mixed_deliveries);
        stats
    }
}

fn personal_gain(personal: &[(ParticipantId, f32)], source: ParticipantId) -> f32 {
    personal.binary_search_by_key(&source, |&(s, _)| s).map_or(1.0, |i| personal[i].1)
}

/// What a listener hears, given who is audible (ascending, with whether each is at
/// unity gain for the room) and the listener's personal volumes.
fn listener_route(
    id: ParticipantId,
    personal: &[(ParticipantId, f32)],
    audible: &[ParticipantId],
    audible_unity: &[bool],
    pass_through: bool,
) -> Route {
    let me = audible.binary_search(&id).is_ok();
    // Usually nobody has personal volumes: count without looking at each source.
    let (heard, changed, only) = if personal.is_empty() {
        let only = audible.iter().position(|&s| s != id);
        (audible.len() - usize::from(me), false, only)
    } else {
        let mut heard = 0;
        let mut changed = false;
        let mut only = None;
        for (i, &s) in audible.iter().enumerate() {
            let g = personal_gain(personal, s);
            if s == id || g == 0.0 {
                continue;
            }
            heard += 1;
            changed |= g != 1.0;
            only.get_or_insert(i);
        }
        // Someone turned to zero is left out of the mix: that is a change too.
        changed |= heard != audible.len() - usize::from(me);
        (heard, changed, only)
    };
    match (heard, only) {
        (0, _) => Route::Silent,
        (1, Some(i)) if audible_unity[i] && pass_through && personal_gain(personal, audible[i]) == 1.0 => {
            Route::Forward(audible[i])
        }
        _ if me || changed => Route::Mix(MixKey::Own(id)),
        _ => Route::Mix(MixKey::Everyone),
    }
}

/// A mix with nothing in it this tick: no encode, no packet; time moves on and the
/// next packet starts a talk spurt.
fn advance_silent(channel: &mut MixChannel, frame: usize) {
    channel.timestamp = channel.timestamp.wrapping_add(frame as u32);
    channel.marker = true;
}

#[allow(clippy::too_many_arguments)]
fn encode_and_emit(
    channel: &mut MixChannel,
    key: MixKey,
    loss: u8,
    mix: &mut [f32],
    packet: &mut [u8],
    now: Instant,
    participants: &mut BTreeMap<ParticipantId, Participant>,
    deliveries: &mut Vec<Delivery>,
    stats: &mut TickStats,
    emit: &mut impl FnMut(Outgoing<'_>),
) {
    let frame = mix.len() as u32;
    let ts = channel.timestamp;
    channel.timestamp = channel.timestamp.wrapping_add(frame);
    channel.limiter.process(mix);
    let _ = channel.encoder.set_loss_hint(loss);
    stats.encodes += 1;
    let len = match channel.encoder.encode(mix, packet) {
        Ok(Encoded::Packet(len)) => len,
        Ok(Encoded::Dtx) | Err(_) => {
            channel.marker = true;
            return;
        }
    };
    let marker = std::mem::replace(&mut channel.marker, false);
    let seq = channel.seq;
    channel.seq = channel.seq.wrapping_add(1);
    let from = StreamKey::Mix(key);
    deliveries.clear();
    for (&lid, l) in participants.iter_mut() {
        if l.route == Route::Mix(key) {
            deliveries.push(l.out.map(lid, from, now, SourceHeader { seq, timestamp: ts, duration: frame, marker }));
        }
    }
    stats.mixed_deliveries += deliveries.len() as u32;
    emit(Outgoing { from, frames: &[&packet[..len]], deliveries });
}
