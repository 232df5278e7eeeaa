//! One continuous outgoing stream per listener, whatever feeds it.
//!
//! A listener hears, over time, forwarded packets of one speaker, then a mix, then
//! another speaker. Each source has its own sequence numbers and timestamps; passing
//! them through would make the listener's jitter buffer see a new stream (or a jump
//! of minutes) at every switch and restart. Instead each listener's packets are
//! renumbered the way an SFU rewrites RTP: within one source the offsets are fixed
//! (so the source's own loss, reordering and silences show through unchanged), and at
//! a switch the new source continues where the last packet ended, plus the wall time
//! that passed, with the marker bit set like the start of a talk spurt.

use std::time::Instant;

use super::{MixKey, ParticipantId};

/// Which stream a listener's packet comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKey {
    Forward(ParticipantId),
    Mix(MixKey),
}

/// Header of one outgoing packet for one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub listener: ParticipantId,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
}

/// A packet's numbering as its source sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceHeader {
    pub seq: u16,
    pub timestamp: u32,
    /// Samples the packet lasts.
    pub duration: u32,
    pub marker: bool,
}

/// Smallest timestamp step at a switch: 2.5 ms, the Opus concealment quantum.
const GAP_QUANTUM: u32 = 120;

#[derive(Debug, Clone, Default)]
pub(crate) struct OutStream {
    current: Option<StreamKey>,
    seq_offset: u16,
    ts_offset: u32,
    next_seq: u16,
    next_ts: u32,
    /// The newest packet sent: its (output) timestamp and when it was sent.
    newest: Option<(u32, Instant)>,
}

impl OutStream {
    /// Starts the stream at a random-looking point, as RTP recommends (RFC 3550 §5.1).
    pub(crate) fn new(seed: u32) -> Self {
        Self { next_seq: seed as u16, next_ts: seed.rotate_left(13), ..Self::default() }
    }

    /// The next packet of the listener's current source is a new stream (its sender
    /// restarted): renumber it like a switch.
    pub(crate) fn reset_source(&mut self, key: StreamKey) {
        if self.current == Some(key) {
            self.current = None;
        }
    }

    /// Header for listener `listener` of a packet from `key` with the source's header.
    pub(crate) fn map(
        &mut self,
        listener: ParticipantId,
        key: StreamKey,
        now: Instant,
        source: SourceHeader,
    ) -> Delivery {
        let SourceHeader { seq, timestamp, duration, mut marker } = source;
        if self.current != Some(key) {
            // The new source starts where the wall clock says, measured from the
            // newest packet sent, and never overlaps what was already sent. (Counting
            // from the *end* of that packet would add one packet's duration at every
            // switch, which the listener's jitter buffer would take for jitter.)
            let start = match self.newest {
                Some((ts, at)) => {
                    let samples = now.saturating_duration_since(at).as_micros() as u64 * 48 / 1000;
                    let elapsed = (samples.min(u64::from(u32::MAX / 2)) as u32) / GAP_QUANTUM * GAP_QUANTUM;
                    let by_clock = ts.wrapping_add(elapsed);
                    if (by_clock.wrapping_sub(self.next_ts) as i32) < 0 { self.next_ts } else { by_clock }
                }
                None => self.next_ts,
            };
            self.ts_offset = start.wrapping_sub(timestamp);
            self.seq_offset = self.next_seq.wrapping_sub(seq);
            self.current = Some(key);
            marker = true;
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = timestamp.wrapping_add(self.ts_offset);
        // A late (reordered) packet must not pull the continuation point backwards.
        if (out_seq.wrapping_sub(self.next_seq) as i16) >= 0 {
            self.next_seq = out_seq.wrapping_add(1);
        }
        let end = out_ts.wrapping_add(duration);
        if (end.wrapping_sub(self.next_ts) as i32) > 0 {
            self.next_ts = end;
            self.newest = Some((out_ts, now));
        }
        Delivery { listener, seq: out_seq, timestamp: out_ts, marker }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn h(seq: u16, timestamp: u32, duration: u32, marker: bool) -> SourceHeader {
        SourceHeader { seq, timestamp, duration, marker }
    }

    #[test]
    fn switching_sources_keeps_sequence_and_time_continuous() {
        let t0 = Instant::now();
        let mut s = OutStream::new(12345);
        let a = StreamKey::Forward(1);
        let b = StreamKey::Mix(MixKey::Everyone);
        let d0 = s.map(9, a, t0, h(500, 1_000_000, 960, false));
        assert!(d0.marker, "a new stream starts with the marker");
        let d1 = s.map(9, a, t0 + Duration::from_millis(20), h(501, 1_000_960, 960, false));
        assert_eq!((d1.seq, d1.timestamp, d1.marker), (d0.seq.wrapping_add(1), d0.timestamp.wrapping_add(960), false));
        // Loss in the source shows through: seq 503 after 501.
        let d3 = s.map(9, a, t0 + Duration::from_millis(60), h(503, 1_002_880, 960, false));
        assert_eq!(d3.seq, d0.seq.wrapping_add(3));
        // Switch to a mix with unrelated numbering 40 ms after the last packet was
        // sent: its audio starts 40 ms after that packet's.
        let m = s.map(9, b, t0 + Duration::from_millis(100), h(7, 42, 960, false));
        assert!(m.marker);
        assert_eq!(m.seq, d3.seq.wrapping_add(1));
        assert_eq!(m.timestamp, d3.timestamp.wrapping_add(40 * 48));
        let m2 = s.map(9, b, t0 + Duration::from_millis(120), h(8, 1002, 960, false));
        assert_eq!((m2.seq, m2.timestamp), (m.seq.wrapping_add(1), m.timestamp.wrapping_add(960)));
        // A switch sooner than one packet later never overlaps the packet sent.
        let c = s.map(9, a, t0 + Duration::from_millis(125), h(600, 5, 960, false));
        assert_eq!(c.timestamp, m2.timestamp.wrapping_add(960));
    }

    #[test]
    fn late_packets_do_not_move_the_continuation_point_and_wrap_is_seamless() {
        let t0 = Instant::now();
        let mut s = OutStream::new(u32::MAX - 100);
        let a = StreamKey::Forward(1);
        let first = s.map(1, a, t0, h(65535, u32::MAX - 500, 960, false));
        let second = s.map(1, a, t0, h(1, 1420, 960, false)); // two later, across the wrap
        let late = s.map(1, a, t0, h(0, 460, 960, false));
        assert_eq!(second.seq, first.seq.wrapping_add(2));
        assert_eq!(late.seq, first.seq.wrapping_add(1));
        let b = s.map(1, StreamKey::Forward(2), t0, h(9, 9, 960, false));
        assert_eq!(b.seq, second.seq.wrapping_add(1), "continues after the newest, not the late one");
        assert_eq!(b.timestamp, second.timestamp.wrapping_add(960));
    }
}
