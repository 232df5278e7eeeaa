//! An established session: one peer, two directions of keys, and everything that runs
//! over them — media, reliable control messages, receiver reports (RTT, loss, jitter,
//! keepalive), idle timeout and a clean goodbye.
//!
//! Driven like quinn-proto's `Connection`: feed datagrams with
//! [`Connection::handle_datagram`], send media with [`Connection::send_media`], and after
//! every input drain [`Connection::poll_transmit`] and [`Connection::poll_event`], then
//! sleep until [`Connection::poll_timeout`] and call [`Connection::handle_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::control::{ByeReason, ControlMessage};
use crate::crypto::{Receiver, RekeyPolicy, Sender};
use crate::error::{DropCounters, DropReason, SendError};
use crate::handshake::{Binding, FINAL_RETRY};
use crate::identity::{PublicKey, Sas};
use crate::payload::{self, MediaFrame, Payload, Report};
use crate::reliable::{ReliableReceiver, ReliableSender};
use crate::wire::{self, Datagram, TRANSPORT_HEADER_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub rekey: RekeyPolicy,
    /// The session ends when nothing authentic arrived for this long.
    pub idle_timeout: Duration,
    /// Receiver reports (and so keepalives) are sent this often.
    pub report_interval: Duration,
    /// How long a closing session waits for its goodbye to be acknowledged.
    pub close_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            rekey: RekeyPolicy::default(),
            idle_timeout: Duration::from_secs(10),
            report_interval: Duration::from_secs(1),
            close_timeout: Duration::from_secs(1),
        }
    }
}

/// The shortest report interval a peer may ask for with [`ControlMessage::ReportEvery`].
const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// How often the members of a room of `members` should report: once a second up to
/// 1000 members, then less often so that the room receives about 1000 reports a
/// second, at most every 3 s (a third of the default idle timeout). Rounded to
/// 500 ms so that a room changes it only a few times as it grows.
pub fn report_interval_for_room(members: usize) -> Duration {
    let ms = (members as u64).clamp(1000, 3000).div_ceil(500) * 500;
    Duration::from_millis(ms)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

pub(crate) struct SessionKeys {
    pub send: Zeroizing<[u8; 32]>,
    pub receive: Zeroizing<[u8; 32]>,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A control message from the peer (never `Bye`: that is [`Event::PeerLeft`]).
    Control(ControlMessage),
    /// The peer said goodbye.
    PeerLeft(ByeReason),
    /// Nothing was heard from the peer for the idle timeout.
    TimedOut,
    /// Our own [`Connection::close`] finished.
    Closed,
}

/// What an accepted datagram carried, as far as the caller needs to know.
// Returned by value once per datagram: boxing the media view would allocate per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    Media(MediaFrame<'a>),
    /// Control, acknowledgement or report: handled inside; check events.
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConnectionStats {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub datagrams_received: u64,
    pub bytes_received: u64,
    pub media_sent: u64,
    /// Bytes of the media datagrams among `bytes_sent`.
    pub media_bytes_sent: u64,
    pub media_received: u64,
    pub dropped: DropCounters,
    /// Smoothed round-trip time.
    pub rtt: Option<Duration>,
    /// Fraction of the peer's datagrams we missed over the last report interval.
    pub loss: f32,
    /// Fraction of our datagrams the peer missed, as it last reported.
    pub remote_loss: f32,
    /// Interarrival jitter of the peer's media as we receive it (RFC 3550).
    pub jitter: Duration,
    /// Interarrival jitter of our media as the peer reports it.
    pub remote_jitter: Duration,
    pub rekeys_sent: u32,
    pub rekeys_received: u32,
    pub control_retransmissions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// We said goodbye and wait for the acknowledgement.
    Closing {
        deadline: Instant,
    },
    /// The peer said goodbye; we only acknowledge its retransmissions.
    Draining {
        until: Instant,
    },
    Closed,
}

/// RFC 3550 §6.4.1 interarrival jitter, in 48 kHz timestamp units.
#[derive(Debug, Clone, Copy, Default)]
pub struct JitterEstimator {
    last: Option<(u8, i64)>,
    jitter: f64,
}

impl JitterEstimator {
    /// One media packet of `stream` with RTP-style `timestamp`, arriving at
    /// `arrival_samples` (any 48 kHz clock).
    pub fn on_media(&mut self, stream: u8, arrival_samples: i64, timestamp: u32) {
        let transit = arrival_samples - i64::from(timestamp);
        if let Some((s, last_transit)) = self.last
            && s == stream
        {
            // Wrapping timestamps make `transit` jump by 2³²; such a jump is not jitter.
            let d = (transit - last_transit) as f64;
            if d.abs() < f64::from(u32::MAX / 2) {
                self.jitter += (d.abs() - self.jitter) / 16.0;
            }
        }
        self.last = Some((stream, transit));
    }

    pub fn get(&self) -> Duration {
        Duration::from_secs_f64(self.jitter.max(0.0) / 48_000.0)
    }
}

pub struct Connection {
    role: Role,
    local_index: u32,
    remote_index: u32,
    sender: Sender,
    receiver: Receiver,
    config: SessionConfig,
    started: Instant,
    latest_now: Instant,
    last_received: Instant,
    next_report: Instant,
    /// The peer's last report: (its `sent_at_ms`, when we got it).
    peer_report: Option<(u32, Instant)>,
    reliable_tx: ReliableSender,
    reliable_rx: ReliableReceiver,
    /// When the pending acknowledgement goes out (see [`crate::reliable::ACK_DELAY`]).
    ack_at: Option<Instant>,
    /// Scratch for encoding notices; keeps its capacity.
    notice: Vec<u8>,
    delivered: Vec<ControlMessage>,
    events: VecDeque<Event>,
    /// Initiator only: the HandshakeFinal, resent until the responder confirms.
    pending_final: Option<(Vec<u8>, Instant)>,
    state: State,
    stats: ConnectionStats,
    remote_static: PublicKey,
    binding: Binding,
    /// Loss measurement since the last report: highest counter then, datagrams since.
    interval_base: Option<u64>,
    interval_received: u64,
    jitter: JitterEstimator,
    last_was_newest: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("state", &self.state)
            .field("remote", &self.remote_static)
            .finish_non_exhaustive()
    }
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        role: Role,
        local_index: u32,
        remote_index: u32,
        keys: SessionKeys,
        remote_static: PublicKey,
        binding: Binding,
        now: Instant,
        config: SessionConfig,
        pending_final: Option<Vec<u8>>,
    ) -> Self {
        Self {
            role,
            local_index,
            remote_index,
            sender: Sender::new(keys.send, now, config.rekey),
            receiver: Receiver::new(keys.receive),
            config,
            started: now,
            latest_now: now,
            last_received: now,
            next_report: now,
            peer_report: None,
            reliable_tx: ReliableSender::default(),
            reliable_rx: ReliableReceiver::default(),
            ack_at: None,
            notice: Vec::new(),
            delivered: Vec::new(),
            events: VecDeque::new(),
            pending_final: pending_final.map(|f| (f, now)),
            state: State::Open,
            stats: ConnectionStats::default(),
            remote_static,
            binding,
            interval_base: None,
            interval_received: 0,
            jitter: JitterEstimator::default(),
            last_was_newest: false,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Our receiver index: the id of this session on our side.
    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    /// The peer's static key (its identity).
    pub fn remote_static(&self) -> PublicKey {
        self.remote_static
    }

    /// The short authentication string both sides display.
    pub fn sas(&self) -> Sas {
        self.binding.sas
    }

    /// The Noise handshake hash of this session, for channel-bound proofs.
    pub fn handshake_hash(&self) -> [u8; 32] {
        self.binding.hash
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Initiator: the responder has proven it completed the handshake.
    pub fn is_confirmed(&self) -> bool {
        self.pending_final.is_none()
    }

    /// Whether the last accepted datagram was the newest so far (the runtime moves its
    /// reply address only on those, so a NAT rebinding is followed and a reordered
    /// old datagram cannot move it back).
    pub fn last_was_newest(&self) -> bool {
        self.last_was_newest
    }

    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            rtt: self.reliable_tx.srtt(),
            jitter: self.jitter.get(),
            rekeys_sent: self.sender.rekeys(),
            rekeys_received: self.receiver.rekeys(),
            control_retransmissions: self.reliable_tx.retransmissions(),
            ..self.stats
        }
    }

    fn session_ms(&self, now: Instant) -> u32 {
        // +1 so that 0 can mean "nothing to echo".
        (now.saturating_duration_since(self.started).as_millis() as u32).wrapping_add(1)
    }

    /// Queues a control message for reliable delivery.
    /// Queues a control message (by value or by reference: a room sends the same one
    /// to thousands).
    pub fn send_control(&mut self, message: impl std::borrow::Borrow<ControlMessage>) {
        if self.state == State::Open {
            self.reliable_tx.push(message.borrow());
        }
    }

    /// Says goodbye: the peer is told at once; the session is closed when it
    /// acknowledges or after the close timeout.
    pub fn close(&mut self, now: Instant, reason: ByeReason) {
        self.latest_now = now;
        if self.state == State::Open {
            self.reliable_tx.push(&ControlMessage::Bye { reason });
            self.state = State::Closing { deadline: now + self.config.close_timeout };
        }
    }

    /// Encrypts one media packet into `out`; returns the datagram length.
    pub fn send_media(&mut self, now: Instant, media: &MediaFrame<'_>, out: &mut [u8]) -> Result<usize, SendError> {
        self.latest_now = now;
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        let body = out.get_mut(TRANSPORT_HEADER_LEN..).ok_or(SendError::BufferTooSmall)?;
        let n = media.encode(body).ok_or(SendError::BufferTooSmall)?;
        let len = self.seal(now, out, n)?;
        self.stats.media_sent += 1;
        self.stats.media_bytes_sent += len as u64;
        Ok(len)
    }

    /// Encrypts `message` as a notice (sent once, not acknowledged) into `out`; returns
    /// the datagram length. For state the next notice replaces: who is talking, levels.
    pub fn send_notice(&mut self, now: Instant, message: &ControlMessage, out: &mut [u8]) -> Result<usize, SendError> {
        self.latest_now = now;
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        self.notice.clear();
        message.encode(&mut self.notice);
        let body = out.get_mut(TRANSPORT_HEADER_LEN..).ok_or(SendError::BufferTooSmall)?;
        let n = payload::encode_notice(&self.notice, body).ok_or(SendError::BufferTooSmall)?;
        self.seal(now, out, n)
    }

    /// Changes how often reports (and so keepalives) are sent: a large room asks for
    /// fewer so that its inbound load does not grow with its size.
    pub fn set_report_interval(&mut self, now: Instant, interval: Duration) {
        self.config.report_interval = interval;
        self.next_report = self.next_report.min(now + interval);
    }

    pub fn report_interval(&self) -> Duration {
        self.config.report_interval
    }

    fn seal(&mut self, now: Instant, out: &mut [u8], payload_len: usize) -> Result<usize, SendError> {
        let len = self.sender.seal(now, self.remote_index, out, payload_len)?;
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += len as u64;
        Ok(len)
    }

    /// Processes one datagram addressed to this session. `plain` receives the
    /// decrypted payload (give it [`wire::MAX_DATAGRAM`] bytes); media borrows from it.
    pub fn handle_datagram<'b>(
        &mut self,
        now: Instant,
        data: &[u8],
        plain: &'b mut [u8],
    ) -> Result<Received<'b>, DropReason> {
        self.latest_now = now;
        let result = self.handle_inner(now, data, plain);
        if let Err(reason) = result {
            self.stats.dropped.count(reason);
        }
        result
    }

    fn handle_inner<'b>(&mut self, now: Instant, data: &[u8], plain: &'b mut [u8]) -> Result<Received<'b>, DropReason> {
        if self.state == State::Closed {
            return Err(DropReason::Closed);
        }
        let (phase, counter, header, ciphertext) = match Datagram::parse(data)? {
            Datagram::Transport { phase, receiver, counter, header, ciphertext } if receiver == self.local_index => {
                (phase, counter, header, ciphertext)
            }
            Datagram::Transport { .. } => return Err(DropReason::UnknownReceiver),
            // Duplicates of handshake messages after the handshake: harmless, ignored.
            _ => return Err(DropReason::Handshake),
        };
        let opened = self.receiver.open(now, phase, counter, header, ciphertext, plain)?;
        self.last_was_newest = opened.newest;
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += data.len() as u64;
        self.last_received = now;
        self.interval_received += 1;
        if self.interval_base.is_none() {
            self.interval_base = Some(counter.saturating_sub(1));
        }
        if self.role == Role::Initiator {
            self.pending_final = None;
        }
        let plain: &'b [u8] = plain;
        match Payload::parse(&plain[..opened.payload_len])? {
            Payload::Media(media) => {
                if self.state != State::Open {
                    return Ok(Received::Other);
                }
                let arrival = (now.saturating_duration_since(self.started).as_nanos() * 48 / 1_000_000) as i64;
                self.jitter.on_media(media.stream, arrival, media.timestamp);
                self.stats.media_received += 1;
                return Ok(Received::Media(media));
            }
            Payload::Control { id, message } => {
                let mut paced = None;
                let fresh = self.reliable_rx.on_message(id, message, &mut self.delivered);
                let ack_by = if fresh { now + crate::reliable::ACK_DELAY } else { now };
                self.ack_at = Some(self.ack_at.map_or(ack_by, |t| t.min(ack_by)));
                for message in self.delivered.drain(..) {
                    match message {
                        ControlMessage::Bye { reason } => {
                            if matches!(self.state, State::Open | State::Closing { .. }) {
                                self.state = State::Draining { until: now + self.config.close_timeout * 2 };
                                self.events.push_back(Event::PeerLeft(reason));
                            }
                        }
                        // Only the host paces: a joiner cannot make a room report more.
                        ControlMessage::ReportEvery(ms) => paced = (self.role == Role::Initiator).then_some(ms),
                        other => self.events.push_back(Event::Control(other)),
                    }
                }
                if let Some(ms) = paced {
                    // At most a third of the idle timeout, so that two lost reports in
                    // a row do not end the session.
                    let most = (self.config.idle_timeout / 3).max(MIN_REPORT_INTERVAL);
                    let asked = Duration::from_millis(u64::from(ms)).clamp(MIN_REPORT_INTERVAL, most);
                    self.set_report_interval(now, asked);
                }
            }
            Payload::Ack { up_to } => {
                self.reliable_tx.on_ack(now, up_to);
                if matches!(self.state, State::Closing { .. }) && self.reliable_tx.is_idle() {
                    self.state = State::Closed;
                    self.events.push_back(Event::Closed);
                }
            }
            Payload::Report(report) => self.on_report(now, report),
            // Only state that the next notice replaces may come unreliably.
            Payload::Notice(message @ (ControlMessage::Talking(_) | ControlMessage::Levels(_))) => {
                if self.state == State::Open {
                    self.events.push_back(Event::Control(message));
                }
            }
            Payload::Notice(_) => return Err(DropReason::Malformed),
        }
        Ok(Received::Other)
    }

    fn on_report(&mut self, now: Instant, r: Report) {
        if r.echo_ms != 0 {
            let rtt_ms = self.session_ms(now).wrapping_sub(r.echo_ms).wrapping_sub(r.echo_delay_ms);
            // A report older than a minute, or from a confused peer, is not a sample.
            if rtt_ms < 60_000 {
                self.reliable_tx.observe_rtt(Duration::from_millis(u64::from(rtt_ms)));
            }
        }
        self.stats.remote_loss = f32::from(r.loss_permille) / 1000.0;
        self.stats.remote_jitter = Duration::from_micros(u64::from(r.jitter_us));
        self.peer_report = Some((r.sent_at_ms, now));
    }

    fn make_report(&mut self, now: Instant) -> Report {
        let highest = self.receiver.highest_counter();
        let loss = match (self.interval_base, highest) {
            (Some(base), Some(high)) if high > base => {
                let expected = high - base;
                1.0 - (self.interval_received.min(expected) as f32 / expected as f32)
            }
            _ => 0.0,
        };
        self.stats.loss = loss;
        self.interval_base = highest;
        self.interval_received = 0;
        let (echo_ms, echo_delay_ms) = match self.peer_report {
            Some((sent_at, at)) => (sent_at, now.saturating_duration_since(at).as_millis() as u32),
            None => (0, 0),
        };
        Report {
            sent_at_ms: self.session_ms(now),
            echo_ms,
            echo_delay_ms,
            loss_permille: (loss * 1000.0).round() as u16,
            jitter_us: self.jitter.get().as_micros().min(u128::from(u32::MAX)) as u32,
        }
    }

    /// The next datagram to send, if any is due: HandshakeFinal retries, acks,
    /// control messages, reports.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        self.latest_now = now;
        if self.state == State::Closed || out.len() < wire::MAX_DATAGRAM {
            return None;
        }
        if let Some((fin, next)) = &mut self.pending_final
            && now >= *next
        {
            *next = now + FINAL_RETRY;
            out[..fin.len()].copy_from_slice(fin);
            return Some(fin.len());
        }
        let body = TRANSPORT_HEADER_LEN;
        if self.ack_at.is_some_and(|t| now >= t) {
            self.ack_at = None;
            let n = payload::encode_ack(self.reliable_rx.ack(), &mut out[body..])?;
            return self.seal(now, out, n).ok();
        }
        if matches!(self.state, State::Draining { .. }) {
            return None;
        }
        if let Some((id, message)) = self.reliable_tx.poll_transmit(now) {
            let message = message.to_vec();
            let n = payload::encode_control(id, &message, &mut out[body..])?;
            return self.seal(now, out, n).ok();
        }
        if now >= self.next_report {
            self.next_report = now + self.config.report_interval;
            let report = self.make_report(now);
            let n = report.encode(&mut out[body..])?;
            return self.seal(now, out, n).ok();
        }
        None
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let immediate = self.reliable_tx.has_unsent() || !self.events.is_empty();
        let candidates = [
            immediate.then_some(self.latest_now),
            self.ack_at,
            self.pending_final.as_ref().map(|(_, t)| *t),
            self.reliable_tx.poll_timeout(),
            match self.state {
                State::Open => Some(self.next_report.min(self.last_received + self.config.idle_timeout)),
                State::Closing { deadline } => Some(deadline.min(self.next_report)),
                State::Draining { until } => Some(until),
                State::Closed => None,
            },
        ];
        if self.state == State::Closed {
            return None;
        }
        candidates.into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.latest_now = now;
        match self.state {
            State::Open if now >= self.last_received + self.config.idle_timeout => {
                self.state = State::Closed;
                self.events.push_back(Event::TimedOut);
            }
            State::Closing { deadline } if now >= deadline => {
                self.state = State::Closed;
                self.events.push_back(Event::Closed);
            }
            State::Draining { until } if now >= until => self.state = State::Closed,
            _ => {}
        }
    }
}
