//! RTCP (RFC 3550 §6): what a plain-RTP sender tells us about itself, and what Viz's own
//! RTP senders say.
//!
//! [`RtcpCompound::parse`] checks a whole compound datagram (every packet's version
//! and length, padding only on the last one) before [`RtcpCompound::packets`] yields
//! sender reports, receiver reports, source descriptions (CNAME, NAME) and BYEs.
//! The writers build the minimal compound a sender owes (SR + SDES, then BYE).

/// RFC 3550 §12.1 packet types.
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
/// RFC 3550 §6.5: SDES item types Viz reads.
pub const SDES_CNAME: u8 = 1;
pub const SDES_NAME: u8 = 2;
/// One report block (§6.4.1).
const REPORT_BLOCK_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than one RTCP header, or a length past the end.
    Truncated,
    /// The version field is not 2.
    Version,
    /// Padding on a packet that is not the last, or a padding count that does not fit.
    BadPadding,
    /// A packet's body does not match its type (report blocks, SDES items past the end).
    Malformed,
}

impl RtcpError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Version => "bad_version",
            Self::BadPadding => "bad_padding",
            Self::Malformed => "malformed",
        }
    }
}

/// A sender report's sender information (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// NTP timestamp: seconds since 1900 in the high 32 bits, fraction in the low.
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub report_count: u8,
}

/// One packet of a compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport),
    ReceiverReport {
        ssrc: u32,
        report_count: u8,
    },
    /// Chunks of (SSRC, items); iterate with [`SdesItems`].
    SourceDescription(SdesItems<'a>),
    /// Sources leaving, with an optional reason.
    Bye {
        ssrcs: SsrcList<'a>,
        reason: Option<&'a [u8]>,
    },
    /// APP and types this parser does not know: skipped.
    Other {
        packet_type: u8,
    },
}

/// A list of 32-bit SSRCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsrcList<'a>(&'a [u8]);

impl<'a> Iterator for SsrcList<'a> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }
}

/// One SDES item: (SSRC of its chunk, item type, text).
pub type SdesItem<'a> = (u32, u8, &'a [u8]);

/// The items of an SDES packet, validated: yields (SSRC, item type, text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItems<'a> {
    body: &'a [u8],
    /// Length of the whole packet body: chunks are word-aligned relative to its start.
    total: usize,
    chunks_left: u8,
    /// Inside a chunk: its SSRC and where its next item starts.
    current: Option<u32>,
}

impl<'a> SdesItems<'a> {
    /// Walks the chunks once; `Err` if any item or chunk runs past the end.
    fn validate(body: &'a [u8], chunks: u8) -> Result<Self, RtcpError> {
        let items = Self { body, total: body.len(), chunks_left: chunks, current: None };
        let mut check = items;
        while check.step()?.is_some() {}
        Ok(items)
    }

    /// The next item, or `None` at the end. Each chunk is an SSRC, items of
    /// (type, length, text), a zero type, then zero padding to a 4-byte boundary.
    fn step(&mut self) -> Result<Option<SdesItem<'a>>, RtcpError> {
        loop {
            let ssrc = match self.current {
                Some(s) => s,
                None => {
                    if self.chunks_left == 0 {
                        return Ok(None);
                    }
                    let (head, rest) = self.body.split_first_chunk::<4>().ok_or(RtcpError::Malformed)?;
                    self.body = rest;
                    self.chunks_left -= 1;
                    let s = u32::from_be_bytes(*head);
                    self.current = Some(s);
                    s
                }
            };
            let item_type = *self.body.first().ok_or(RtcpError::Malformed)?;
            if item_type == 0 {
                // End of the chunk: the null item and zeros up to the next word.
                let consumed = self.total - self.body.len();
                let skip = 4 - consumed % 4;
                self.body = self.body.get(skip..).ok_or(RtcpError::Malformed)?;
                self.current = None;
                continue;
            }
            let len = usize::from(*self.body.get(1).ok_or(RtcpError::Malformed)?);
            let text = self.body.get(2..2 + len).ok_or(RtcpError::Malformed)?;
            self.body = &self.body[2 + len..];
            return Ok(Some((ssrc, item_type, text)));
        }
    }
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step().ok().flatten()
    }
}

/// A validated compound RTCP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpCompound<'a> {
    data: &'a [u8],
}

impl<'a> RtcpCompound<'a> {
    /// Checks every packet of the compound. Never panics.
    pub fn parse(data: &'a [u8]) -> Result<Self, RtcpError> {
        if data.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let mut rest = data;
        while !rest.is_empty() {
            let (packet, tail) = split_packet(rest)?;
            if packet.padded && !tail.is_empty() {
                return Err(RtcpError::BadPadding);
            }
            packet.decode()?;
            rest = tail;
        }
        Ok(Self { data })
    }

    /// The packets, in order.
    pub fn packets(&self) -> impl Iterator<Item = RtcpPacket<'a>> + 'a {
        let mut rest = self.data;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (packet, tail) = split_packet(rest).ok()?;
            rest = tail;
            packet.decode().ok()
        })
    }
}

struct RawPacket<'a> {
    count: u8,
    packet_type: u8,
    padded: bool,
    /// After the 4-byte header, padding removed.
    body: &'a [u8],
}

fn split_packet(b: &[u8]) -> Result<(RawPacket<'_>, &[u8]), RtcpError> {
    let head = b.get(..4).ok_or(RtcpError::Truncated)?;
    if head[0] >> 6 != 2 {
        return Err(RtcpError::Version);
    }
    let len = 4 * (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1);
    let packet = b.get(..len).ok_or(RtcpError::Truncated)?;
    let padded = head[0] & 0x20 != 0;
    let mut body = &packet[4..];
    if padded {
        let p = usize::from(*packet.last().ok_or(RtcpError::Truncated)?);
        if p == 0 || p > body.len() {
            return Err(RtcpError::BadPadding);
        }
        body = &body[..body.len() - p];
    }
    Ok((RawPacket { count: head[0] & 0x1f, packet_type: head[1], padded, body }, &b[len..]))
}

fn be32(b: &[u8], at: usize) -> Result<u32, RtcpError> {
    b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]])).ok_or(RtcpError::Malformed)
}

impl<'a> RawPacket<'a> {
    fn decode(&self) -> Result<RtcpPacket<'a>, RtcpError> {
        let b = self.body;
        let reports = usize::from(self.count) * REPORT_BLOCK_LEN;
        Ok(match self.packet_type {
            PT_SR => {
                if b.len() < 24 + reports {
                    return Err(RtcpError::Malformed);
                }
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: be32(b, 0)?,
                    ntp: (u64::from(be32(b, 4)?) << 32) | u64::from(be32(b, 8)?),
                    rtp_timestamp: be32(b, 12)?,
                    packet_count: be32(b, 16)?,
                    octet_count: be32(b, 20)?,
                    report_count: self.count,
                })
            }
            PT_RR => {
                if b.len() < 4 + reports {
                    return Err(RtcpError::Malformed);
                }
                RtcpPacket::ReceiverReport { ssrc: be32(b, 0)?, report_count: self.count }
            }
            PT_SDES => RtcpPacket::SourceDescription(SdesItems::validate(b, self.count)?),
            PT_BYE => {
                let n = 4 * usize::from(self.count);
                let ssrcs = b.get(..n).ok_or(RtcpError::Malformed)?;
                let reason = match b.get(n) {
                    Some(&len) => Some(b.get(n + 1..n + 1 + usize::from(len)).ok_or(RtcpError::Malformed)?),
                    None => None,
                };
                RtcpPacket::Bye { ssrcs: SsrcList(ssrcs), reason }
            }
            other => RtcpPacket::Other { packet_type: other },
        })
    }
}

/// Appends an RTCP header for a body of `body_len` bytes (a multiple of 4).
fn header(out: &mut Vec<u8>, count: u8, packet_type: u8, body_len: usize) {
    let words = (body_len / 4) as u16;
    out.push(0x80 | (count & 0x1f));
    out.push(packet_type);
    out.extend_from_slice(&words.to_be_bytes());
}

/// A sender report with no report blocks (Viz's senders receive nothing).
pub fn write_sender_report(out: &mut Vec<u8>, sr: &SenderReport) {
    header(out, 0, PT_SR, 24);
    out.extend_from_slice(&sr.ssrc.to_be_bytes());
    out.extend_from_slice(&sr.ntp.to_be_bytes());
    out.extend_from_slice(&sr.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&sr.packet_count.to_be_bytes());
    out.extend_from_slice(&sr.octet_count.to_be_bytes());
}

/// One SDES chunk for `ssrc` with the given items (each text cut to 255 bytes).
pub fn write_sdes(out: &mut Vec<u8>, ssrc: u32, items: &[(u8, &[u8])]) {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&ssrc.to_be_bytes());
    for &(kind, text) in items {
        let text = &text[..text.len().min(255)];
        body.push(kind);
        body.push(text.len() as u8);
        body.extend_from_slice(text);
    }
    // The null item, then zeros to the next word (at least one zero byte).
    body.push(0);
    while body.len() % 4 != 0 {
        body.push(0);
    }
    header(out, 1, PT_SDES, body.len());
    out.extend_from_slice(&body);
}

/// A BYE for `ssrc`, with a reason (cut to 255 bytes).
pub fn write_bye(out: &mut Vec<u8>, ssrc: u32, reason: &[u8]) {
    let reason = &reason[..reason.len().min(255)];
    let mut body = Vec::with_capacity(8 + reason.len());
    body.extend_from_slice(&ssrc.to_be_bytes());
    if !reason.is_empty() {
        body.push(reason.len() as u8);
        body.extend_from_slice(reason);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    header(out, 1, PT_BYE, body.len());
    out.extend_from_slice(&body);
}

/// The compound an RTP sender sends every few seconds (RFC 3550 §6.1: a sender report,
/// then an SDES with its CNAME, here also its NAME), ending with a BYE when it leaves.
pub fn write_sender_compound(out: &mut Vec<u8>, sr: &SenderReport, cname: &str, name: Option<&str>, bye: Option<&str>) {
    write_sender_report(out, sr);
    match name {
        Some(n) => write_sdes(out, sr.ssrc, &[(SDES_CNAME, cname.as_bytes()), (SDES_NAME, n.as_bytes())]),
        None => write_sdes(out, sr.ssrc, &[(SDES_CNAME, cname.as_bytes())]),
    }
    if let Some(reason) = bye {
        write_bye(out, sr.ssrc, reason.as_bytes());
    }
}

/// NTP time (RFC 5905 short form used by RTCP) of a Unix time.
pub fn ntp_from_unix(since_epoch: std::time::Duration) -> u64 {
    const UNIX_TO_NTP_SECONDS: u64 = 2_208_988_800;
    let secs = since_epoch.as_secs() + UNIX_TO_NTP_SECONDS;
    let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_compound() -> Vec<u8> {
        let mut out = Vec::new();
        let sr = SenderReport {
            ssrc: 0x1234,
            ntp: 0xdead_beef_0000_0001,
            rtp_timestamp: 960,
            packet_count: 50,
            octet_count: 4000,
            report_count: 0,
        };
        write_sender_compound(&mut out, &sr, "ann@studio", Some("Ann"), Some("done"));
        out
    }

    #[test]
    fn written_compounds_parse_back() {
        let data = sample_compound();
        let c = RtcpCompound::parse(&data).unwrap();
        let packets: Vec<RtcpPacket> = c.packets().collect();
        assert_eq!(packets.len(), 3);
        let RtcpPacket::SenderReport(sr) = packets[0] else { panic!("{packets:?}") };
        assert_eq!((sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count), (0x1234, 960, 50, 4000));
        assert_eq!(sr.ntp, 0xdead_beef_0000_0001);
        let RtcpPacket::SourceDescription(items) = packets[1] else { panic!() };
        let items: Vec<_> = items.collect();
        assert_eq!(items, vec![(0x1234, SDES_CNAME, &b"ann@studio"[..]), (0x1234, SDES_NAME, &b"Ann"[..])]);
        let RtcpPacket::Bye { ssrcs, reason } = packets[2] else { panic!() };
        assert_eq!(ssrcs.collect::<Vec<_>>(), vec![0x1234]);
        assert_eq!(reason, Some(&b"done"[..]));
    }

    #[test]
    fn sdes_chunk_alignment_for_every_text_length() {
        for n in 0..12 {
            let text = vec![b'x'; n];
            let mut out = Vec::new();
            write_sdes(&mut out, 9, &[(SDES_CNAME, &text)]);
            assert_eq!(out.len() % 4, 0);
            // Two chunks in one packet: the second must be found after the first's padding.
            let mut two = out.clone();
            let mut second = Vec::new();
            write_sdes(&mut second, 10, &[(SDES_NAME, b"b")]);
            two.extend_from_slice(&second[4..]);
            two[0] = 0x82;
            let words = (two.len() / 4 - 1) as u16;
            two[2..4].copy_from_slice(&words.to_be_bytes());
            let c = RtcpCompound::parse(&two).unwrap();
            let Some(RtcpPacket::SourceDescription(items)) = c.packets().next() else { panic!() };
            let items: Vec<_> = items.collect();
            assert_eq!(items, vec![(9, SDES_CNAME, &text[..]), (10, SDES_NAME, &b"b"[..])], "text length {n}");
        }
    }

    #[test]
    fn ffmpeg_style_sender_report_with_report_block_and_padding() {
        // SR with one report block, then a padded SDES as the last packet.
        let mut d = vec![0x81, PT_SR, 0, 12];
        d.extend_from_slice(&[0, 0, 0, 5]);
        d.extend_from_slice(&[0; 20]);
        d.extend_from_slice(&[0; REPORT_BLOCK_LEN]);
        d.extend_from_slice(&[0xa1, PT_SDES, 0, 3, 0, 0, 0, 5, 1, 1, b'a', 0, 0, 0, 0, 4]);
        let c = RtcpCompound::parse(&d).unwrap();
        let p: Vec<_> = c.packets().collect();
        assert!(matches!(p[0], RtcpPacket::SenderReport(SenderReport { ssrc: 5, report_count: 1, .. })));
        let RtcpPacket::SourceDescription(items) = p[1] else { panic!() };
        assert_eq!(items.collect::<Vec<_>>(), vec![(5, SDES_CNAME, &b"a"[..])]);
    }

    #[test]
    fn malformed_compounds_are_refused() {
        assert_eq!(RtcpCompound::parse(&[0x80, PT_RR, 0]), Err(RtcpError::Truncated));
        assert_eq!(RtcpCompound::parse(&[0x40, PT_RR, 0, 1, 0, 0, 0, 1]), Err(RtcpError::Version));
        // Length past the end.
        assert_eq!(RtcpCompound::parse(&[0x80, PT_RR, 0, 2, 0, 0, 0, 1]), Err(RtcpError::Truncated));
        // Report count larger than the body.
        assert_eq!(RtcpCompound::parse(&[0x81, PT_RR, 0, 1, 0, 0, 0, 1]), Err(RtcpError::Malformed));
        // An SR too short for its sender info.
        assert_eq!(RtcpCompound::parse(&[0x80, PT_SR, 0, 1, 0, 0, 0, 1]), Err(RtcpError::Malformed));
        // SDES item length past the end.
        assert_eq!(
            RtcpCompound::parse(&[0x81, PT_SDES, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b']),
            Err(RtcpError::Malformed)
        );
        // BYE count past the end, and reason past the end.
        assert_eq!(RtcpCompound::parse(&[0x82, PT_BYE, 0, 1, 0, 0, 0, 1]), Err(RtcpError::Malformed));
        assert_eq!(RtcpCompound::parse(&[0x81, PT_BYE, 0, 2, 0, 0, 0, 1, 9, b'a', 0, 0]), Err(RtcpError::Malformed));
        // Padding on a packet that is not the last; padding count zero.
        let mut d = vec![0xa0, PT_RR, 0, 1, 0, 0, 0, 4];
        d.extend_from_slice(&[0x80, PT_RR, 0, 1, 0, 0, 0, 1]);
        assert_eq!(RtcpCompound::parse(&d), Err(RtcpError::BadPadding));
        assert_eq!(RtcpCompound::parse(&[0xa0, PT_RR, 0, 1, 0, 0, 0, 0]), Err(RtcpError::BadPadding));
    }

    #[test]
    fn every_truncation_is_refused_and_never_panics() {
        let data = sample_compound();
        // Where the SR and the SDES end: a compound cut there is whole.
        let packet_len = |at: usize| 4 * (usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]])) + 1);
        let first = packet_len(0);
        let boundaries = [first, first + packet_len(first)];
        for len in 0..data.len() {
            let r = RtcpCompound::parse(&data[..len]);
            let boundary = boundaries.contains(&len);
            assert_eq!(r.is_ok(), boundary, "len {len}: {r:?}");
        }
    }

    #[test]
    fn ntp_time_of_the_unix_epoch() {
        assert_eq!(ntp_from_unix(std::time::Duration::ZERO) >> 32, 2_208_988_800);
        assert_eq!(ntp_from_unix(std::time::Duration::from_millis(500)) & 0xffff_ffff, 1 << 31);
    }
}
