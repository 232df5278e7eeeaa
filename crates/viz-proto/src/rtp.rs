//! Plain RTP (RFC 3550) carrying Opus (RFC 7587): the one unencrypted door of a room,
//! for standard senders (ffmpeg, GStreamer, VLC, hardware encoders) and receivers.
//!
//! * [`RtpPacket::parse`] reads a datagram: fixed header, CSRC list, header extension
//!   (RFC 3550 §5.3.1) and padding, each checked against the datagram's length.
//! * [`RtpHeader::write`] builds one (no CSRCs, no extension, no padding).
//! * [`SequenceState`] is RFC 3550 Appendix A.1's per-source sequence bookkeeping:
//!   extended sequence numbers across wraps, loss counting, and the "two in a row after
//!   a jump" rule that tells a restarted sender from a stray packet.
//! * [`InterarrivalJitter`] is Appendix A.8's jitter estimate.
//!
//! RTCP is in [`crate::rtcp`]. Like the rest of this crate: no sockets, no clock;
//! arrival times come in as arguments.

/// RFC 3550 §5.1: the version field is always 2.
pub const RTP_VERSION: u8 = 2;
/// The fixed header: V/P/X/CC, M/PT, sequence, timestamp, SSRC.
pub const FIXED_HEADER_LEN: usize = 12;
/// The dynamic payload type Opus is usually given (RFC 7587 leaves it to signalling;
/// WebRTC, ffmpeg's SDPs and Remote Audio Aggregation use 111).
pub const DEFAULT_OPUS_PAYLOAD_TYPE: u8 = 111;
/// RFC 7587 §4.1: the Opus RTP clock is 48 kHz whatever the audio bandwidth.
pub const OPUS_CLOCK_RATE: u32 = 48_000;

/// Why a datagram is not a usable RTP packet. Coarse: it goes into counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the fixed header.
    TooShort,
    /// The version field is not 2.
    Version,
    /// The CSRC count points past the end.
    CsrcPastEnd,
    /// The header extension's length points past the end.
    ExtensionPastEnd,
    /// The padding count is zero or longer than what follows the header.
    BadPadding,
    /// An RTCP packet (RFC 5761 §4: payload types 64..=95 with the marker bit are RTCP).
    Rtcp,
}

impl RtpError {
    pub const ALL: [RtpError; 6] =
        [Self::TooShort, Self::Version, Self::CsrcPastEnd, Self::ExtensionPastEnd, Self::BadPadding, Self::Rtcp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::Version => "bad_version",
            Self::CsrcPastEnd => "csrc_past_end",
            Self::ExtensionPastEnd => "extension_past_end",
            Self::BadPadding => "bad_padding",
            Self::Rtcp => "rtcp",
        }
    }
}

impl std::fmt::Display for RtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header fields Viz reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the fixed header and `payload` into `out`; `None` if `out` is too small or
    /// the payload type does not fit in 7 bits.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        if self.payload_type > 0x7f {
            return None;
        }
        let len = FIXED_HEADER_LEN + payload.len();
        let out = out.get_mut(..len)?;
        out[0] = RTP_VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | self.payload_type;
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        out[FIXED_HEADER_LEN..].copy_from_slice(payload);
        Some(len)
    }
}

/// A header extension (RFC 3550 §5.3.1): 16 bits defined by profile, then data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// A parsed RTP packet, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub csrc_count: u8,
    pub extension: Option<RtpExtension<'a>>,
    /// The payload, padding removed (may be empty).
    pub payload: &'a [u8],
    /// Padding bytes removed from the end (0 without the P bit).
    pub padding: u8,
}

/// Whether a datagram on the RTP port is RTCP multiplexed onto it (RFC 5761 §4): the
/// second byte is an RTCP packet type, 192..=223.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

impl<'a> RtpPacket<'a> {
    /// Bytes before the payload: fixed header, CSRCs, extension.
    pub fn header_len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count) + self.extension.map_or(0, |e| 4 + e.data.len())
    }

    /// Parses one datagram. Never panics; every length field is checked.
    pub fn parse(b: &'a [u8]) -> Result<Self, RtpError> {
        if b.len() < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        if b[0] >> 6 != RTP_VERSION {
            return Err(RtpError::Version);
        }
        if is_rtcp(b) {
            return Err(RtpError::Rtcp);
        }
        let has_padding = b[0] & 0x20 != 0;
        let has_extension = b[0] & 0x10 != 0;
        let csrc_count = b[0] & 0x0f;
        let header = RtpHeader {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7f,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        };
        let mut at = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if at > b.len() {
            return Err(RtpError::CsrcPastEnd);
        }
        let extension = if has_extension {
            let fixed = b.get(at..at + 4).ok_or(RtpError::ExtensionPastEnd)?;
            let profile = u16::from_be_bytes([fixed[0], fixed[1]]);
            let words = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
            let data = b.get(at + 4..at + 4 + 4 * words).ok_or(RtpError::ExtensionPastEnd)?;
            at += 4 + 4 * words;
            Some(RtpExtension { profile, data })
        } else {
            None
        };
        let mut end = b.len();
        let mut padding = 0;
        if has_padding {
            // RFC 3550 §5.1: the last octet counts the padding, itself included.
            padding = b[b.len() - 1];
            let p = usize::from(padding);
            if p == 0 || p > b.len() - at {
                return Err(RtpError::BadPadding);
            }
            end -= p;
        }
        Ok(Self { header, csrc_count, extension, payload: &b[at..end], padding })
    }
}

/// RFC 3550 Appendix A.1: a jump of more than this many sequence numbers ahead is not
/// loss but a sender that restarted (or a stray packet).
pub const MAX_DROPOUT: u16 = 3000;
/// A.1: this many behind is a late or duplicate packet; further behind is a jump.
pub const MAX_MISORDER: u16 = 100;
/// A.1: packets in sequence needed before a new source (or a restart) is believed.
pub const MIN_SEQUENTIAL: u32 = 2;
const RTP_SEQ_MOD: u64 = 1 << 16;

/// What [`SequenceState::update`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// In order, or a tolerable gap: use it.
    Valid,
    /// Late or duplicate (within [`MAX_MISORDER`] behind): usable by a jitter buffer,
    /// which will sort it out.
    Late,
    /// The source restarted (a jump, confirmed by the next packet following it):
    /// counters were reset; use the packet as the start of a new stream.
    Restarted,
    /// Not believed yet (a new source on probation, or the first packet after a jump).
    Probation,
}

/// Per-source sequence numbers, RFC 3550 Appendix A.1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceState {
    started: bool,
    max_seq: u16,
    /// Wraps of the sequence number, shifted (A.1's `cycles`).
    cycles: u64,
    base_seq: u64,
    /// After a jump: the sequence number that would confirm it.
    bad_seq: Option<u16>,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
}

impl SequenceState {
    fn init(&mut self, seq: u16) {
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.bad_seq = None;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Takes one packet's sequence number.
    pub fn update(&mut self, seq: u16) -> SeqVerdict {
        if !self.started {
            self.started = true;
            self.init(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // A new source is valid only after MIN_SEQUENTIAL packets in sequence.
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.received += 1;
                    return SeqVerdict::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqVerdict::Probation;
        }
        if udelta < MAX_DROPOUT {
            if udelta == 0 {
                self.received += 1;
                return SeqVerdict::Late; // a duplicate
            }
            if seq < self.max_seq {
                self.cycles += RTP_SEQ_MOD; // wrapped
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A big jump. Two packets in sequence after it: the source restarted.
            if self.bad_seq == Some(seq) {
                self.init(seq);
                self.received += 1;
                return SeqVerdict::Restarted;
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            return SeqVerdict::Probation;
        } else {
            self.received += 1;
            return SeqVerdict::Late; // duplicate or reordered
        }
        self.received += 1;
        SeqVerdict::Valid
    }

    /// Packets received since the last (re)start, duplicates included (as A.3 counts).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected since the last (re)start, from the sequence numbers.
    pub fn expected(&self) -> u64 {
        if self.received == 0 {
            return 0;
        }
        (self.cycles + u64::from(self.max_seq)).saturating_sub(self.base_seq) + 1
    }

    /// Cumulative loss (A.3): expected minus received, never negative.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Fraction lost since the previous call (A.3's interval loss), 0..=1.
    pub fn loss_since_last(&mut self) -> f32 {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        if expected_interval == 0 || received_interval >= expected_interval {
            0.0
        } else {
            (expected_interval - received_interval) as f32 / expected_interval as f32
        }
    }
}

/// RFC 3550 Appendix A.8: interarrival jitter in timestamp units, smoothed by 1/16.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InterarrivalJitter {
    last_transit: Option<i64>,
    jitter: f64,
}

impl InterarrivalJitter {
    /// One packet: `arrival` on any clock counted in the RTP clock's units.
    pub fn update(&mut self, arrival: i64, timestamp: u32) {
        let transit = arrival.wrapping_sub(i64::from(timestamp));
        if let Some(last) = self.last_transit {
            let d = transit.wrapping_sub(last);
            // A timestamp wrap moves transit by 2^32: that is not jitter.
            if d.unsigned_abs() < u64::from(u32::MAX / 2) {
                self.jitter += (d.unsigned_abs() as f64 - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
    }

    /// Forget the last transit (the source restarted: its timestamps start over).
    pub fn restart(&mut self) {
        self.last_transit = None;
    }

    /// In timestamp units.
    pub fn get(&self) -> f64 {
        self.jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, second: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![first, second, 0x12, 0x34, 0, 0, 0x03, 0xc0, 0xde, 0xad, 0xbe, 0xef];
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn write_then_parse_round_trips() {
        let h = RtpHeader { marker: true, payload_type: 111, sequence: 65535, timestamp: 0xfffffc40, ssrc: 7 };
        let mut out = [0u8; 64];
        let n = h.write(&[0xf8, 1, 2], &mut out).unwrap();
        let p = RtpPacket::parse(&out[..n]).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[0xf8, 1, 2]);
        assert_eq!((p.csrc_count, p.extension, p.padding), (0, None, 0));
        assert!(h.write(&[0; 60], &mut out).is_none(), "too small an output");
        assert!(RtpHeader { payload_type: 128, ..h }.write(&[], &mut out).is_none());
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        // V=2, P, X, CC=2; two CSRCs; extension of one word; payload; 3 bytes padding.
        let mut p = packet(0x80 | 0x20 | 0x10 | 2, 111, &[0, 0, 0, 1, 0, 0, 0, 2]);
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]);
        p.extend_from_slice(&[0xaa, 0xbb]);
        p.extend_from_slice(&[0, 0, 3]);
        let r = RtpPacket::parse(&p).unwrap();
        assert_eq!(r.csrc_count, 2);
        assert_eq!(r.extension, Some(RtpExtension { profile: 0xbede, data: &[9, 9, 9, 9] }));
        assert_eq!(r.payload, &[0xaa, 0xbb]);
        assert_eq!(r.padding, 3);
        assert_eq!(r.header.sequence, 0x1234);
        assert_eq!(r.header.timestamp, 0x3c0);
        assert_eq!(r.header.ssrc, 0xdeadbeef);
    }

    #[test]
    fn each_malformation_has_its_reason() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort));
        assert_eq!(RtpPacket::parse(&packet(0x40, 111, &[1])), Err(RtpError::Version));
        assert_eq!(RtpPacket::parse(&packet(0x00, 111, &[1])), Err(RtpError::Version));
        // CC = 3 but only 8 bytes follow.
        assert_eq!(RtpPacket::parse(&packet(0x83, 111, &[0; 8])), Err(RtpError::CsrcPastEnd));
        // Extension header cut short, and extension length past the end.
        assert_eq!(RtpPacket::parse(&packet(0x90, 111, &[0xbe, 0xde])), Err(RtpError::ExtensionPastEnd));
        assert_eq!(
            RtpPacket::parse(&packet(0x90, 111, &[0xbe, 0xde, 0, 2, 1, 2, 3, 4])),
            Err(RtpError::ExtensionPastEnd)
        );
        // Padding count zero, and longer than the payload.
        assert_eq!(RtpPacket::parse(&packet(0xa0, 111, &[1, 2, 0])), Err(RtpError::BadPadding));
        assert_eq!(RtpPacket::parse(&packet(0xa0, 111, &[1, 2, 4])), Err(RtpError::BadPadding));
        // Padding may take everything after the header (an empty payload).
        assert_eq!(RtpPacket::parse(&packet(0xa0, 111, &[0, 0, 3])).unwrap().payload, &[] as &[u8]);
        // RTCP sender report multiplexed onto the RTP port.
        assert_eq!(RtpPacket::parse(&packet(0x80, 200, &[])), Err(RtpError::Rtcp));
    }

    #[test]
    fn every_truncation_of_a_full_packet_is_refused_or_accounted_for() {
        let mut p = packet(0x80 | 0x20 | 0x10 | 1, 0x80 | 111, &[0, 0, 0, 1]);
        p.extend_from_slice(&[0x10, 0x00, 0, 1, 9, 9, 9, 9, 0xaa, 0xbb, 0xcc, 0, 2]);
        let full = RtpPacket::parse(&p).unwrap();
        assert_eq!(full.payload, &[0xaa, 0xbb, 0xcc]);
        let mut accepted = 0;
        for len in 0..=p.len() {
            if let Ok(r) = RtpPacket::parse(&p[..len]) {
                // Every byte is header, payload or padding, exactly once.
                assert_eq!(r.header_len() + r.payload.len() + usize::from(r.padding), len, "len {len}");
                accepted += 1;
            }
        }
        // Cut short, this packet's last byte is never a padding count that fits.
        assert_eq!(accepted, 1);
    }

    #[test]
    fn sequence_wraps_are_counted_not_lost() {
        let mut s = SequenceState::default();
        let mut verdicts = Vec::new();
        for i in 0..200u32 {
            verdicts.push(s.update((65500 + i) as u16));
        }
        assert_eq!(verdicts[0], SeqVerdict::Probation);
        assert!(verdicts[1..].iter().all(|v| *v == SeqVerdict::Valid));
        assert_eq!(s.expected(), 199);
        assert_eq!(s.received(), 199);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn gaps_count_as_loss_and_late_packets_are_late() {
        let mut s = SequenceState::default();
        for seq in [10u16, 11, 12, 15, 16] {
            s.update(seq);
        }
        assert_eq!(s.lost(), 2);
        assert_eq!(s.update(14), SeqVerdict::Late);
        assert_eq!(s.lost(), 1);
        // 10 was the probation packet: counting starts at 11, so 1 of 6 is missing.
        assert_eq!(s.loss_since_last(), 1.0 / 6.0);
        for seq in 17..=26u16 {
            s.update(seq);
        }
        assert_eq!(s.loss_since_last(), 0.0);
    }

    #[test]
    fn a_restart_needs_two_packets_in_sequence() {
        let mut s = SequenceState::default();
        for seq in 100..110u16 {
            s.update(seq);
        }
        // One stray packet far away is not believed...
        assert_eq!(s.update(40_000), SeqVerdict::Probation);
        assert_eq!(s.update(110), SeqVerdict::Valid);
        // ...but a sender that restarted keeps counting from its new place.
        assert_eq!(s.update(9_000), SeqVerdict::Probation);
        assert_eq!(s.update(9_001), SeqVerdict::Restarted);
        assert_eq!(s.update(9_002), SeqVerdict::Valid);
        assert_eq!((s.expected(), s.lost()), (2, 0));
        // A restart that jumps backwards by more than MAX_MISORDER too.
        assert_eq!(s.update(8_000), SeqVerdict::Probation);
        assert_eq!(s.update(8_001), SeqVerdict::Restarted);
    }

    #[test]
    fn jitter_follows_a8() {
        let mut j = InterarrivalJitter::default();
        // Perfectly paced: no jitter.
        for i in 0..50i64 {
            j.update(1000 + i * 960, (i * 960) as u32);
        }
        assert_eq!(j.get(), 0.0);
        // Every other packet 480 units late: jitter converges towards 480.
        for i in 50..400i64 {
            j.update(1000 + i * 960 + if i % 2 == 0 { 480 } else { 0 }, (i * 960) as u32);
        }
        assert!((j.get() - 480.0).abs() < 1.0, "{}", j.get());
        // A timestamp wrap is not jitter.
        let before = j.get();
        j.update(1000 + 400 * 960, u32::MAX - 10);
        j.update(1000 + 401 * 960, 949);
        assert!(j.get() <= before + 1.0);
    }
}
