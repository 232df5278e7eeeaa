//! Ogg Opus files (RFC 7845) written as a stream arrives: the room's recordings.
//!
//! Packets are written as they come, with their own durations; time with no packet (a
//! DTX pause, nobody talking, a lost packet) is filled with Opus packets that carry
//! no audio (a TOC byte and an empty frame, RFC 6716 §3.2.1), which decoders play as
//! concealment fading to silence, so the file's timeline stays the wall clock's. A
//! page is closed every [`PACKETS_PER_PAGE`] packets and goes to the file at once
//! (no user-space buffer), so a process killed at any moment leaves a file that
//! plays up to the last page; [`OggOpusWriter::finish`] marks the end of stream.

use std::io::Write;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use crate::codec;

/// Pages are closed after this many audio packets: 200 ms of 20 ms packets, which is
/// what a crash can lose.
pub const PACKETS_PER_PAGE: u32 = 10;

/// RFC 7845 §4.2: a stream that starts without the encoder's first packets (a
/// recording that begins mid-call) should skip at least 80 ms while the decoder
/// converges.
pub const PRE_SKIP: u16 = 3840;

/// Longest gap filled in one go; longer jumps in the timestamps are a sender that
/// restarted, not silence, and are not bridged.
pub const MAX_FILL_SAMPLES: u64 = 48_000 * 60 * 10;

/// Opus packets with no audio, by duration: CELT-only fullband configurations 31, 30,
/// 29 and 28 (20, 10, 5 and 2.5 ms; RFC 6716 §3.1), mono, one frame of length zero.
const EMPTY_PACKETS: [(u32, u8); 4] = [(960, 31 << 3), (480, 30 << 3), (240, 29 << 3), (120, 28 << 3)];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OggError {
    #[error("cannot write the recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an Opus packet: {0}")]
    Packet(#[from] codec::CodecError),
}

/// An Ogg Opus stream being written.
pub struct OggOpusWriter<W: Write> {
    ogg: PacketWriter<'static, W>,
    serial: u32,
    /// Samples of audio (and filled gaps) written, pre-skip not included.
    written: u64,
    /// Timestamp (48 kHz) where the next packet is expected; `None` before the first.
    next_ts: Option<u32>,
    in_page: u32,
    packets: u64,
    filled_samples: u64,
}

impl<W: Write> OggOpusWriter<W> {
    /// Writes the identification and comment headers (each on its own page).
    /// `tags` are `KEY=value` comments (RFC 7845 §5.2).
    pub fn new(out: W, serial: u32, tags: &[(&str, &str)]) -> Result<Self, OggError> {
        let mut ogg = PacketWriter::new(out);
        ogg.write_packet(id_header(), serial, PacketWriteEndInfo::EndPage, 0)?;
        ogg.write_packet(comment_header(tags), serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(Self { ogg, serial, written: 0, next_ts: None, in_page: 0, packets: 0, filled_samples: 0 })
    }

    /// Writes one Opus packet whose audio starts at `timestamp` (48 kHz, wrapping).
    /// A gap since the previous packet is filled first; a packet that overlaps what is
    /// already written (reordered, duplicated) is dropped, returning `Ok(false)`.
    pub fn write(&mut self, timestamp: u32, packet: &[u8]) -> Result<bool, OggError> {
        let duration = codec::packet_samples(packet)? as u32;
        if let Some(next) = self.next_ts {
            let ahead = timestamp.wrapping_sub(next);
            if ahead >= 1 << 31 {
                return Ok(false); // behind: already covered
            }
            if u64::from(ahead) <= MAX_FILL_SAMPLES {
                self.fill(u64::from(ahead))?;
            }
        }
        self.next_ts = Some(timestamp.wrapping_add(duration));
        self.put(packet.to_vec(), duration)?;
        Ok(true)
    }

    /// Fills `samples` of silence (rounded down to 2.5 ms), as when time passes with
    /// nothing to record.
    pub fn fill(&mut self, samples: u64) -> Result<(), OggError> {
        let mut left = samples;
        while left >= 120 {
            let (d, toc) = EMPTY_PACKETS.iter().copied().find(|&(d, _)| u64::from(d) <= left).unwrap_or((120, 28 << 3));
            self.put(vec![toc], d)?;
            self.filled_samples += u64::from(d);
            left -= u64::from(d);
        }
        if let Some(next) = self.next_ts.as_mut() {
            *next = next.wrapping_add((samples - left) as u32);
        }
        Ok(())
    }

    fn put(&mut self, packet: Vec<u8>, duration: u32) -> Result<(), OggError> {
        self.written += u64::from(duration);
        self.packets += 1;
        self.in_page += 1;
        let end = if self.in_page >= PACKETS_PER_PAGE {
            self.in_page = 0;
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        let granule = u64::from(PRE_SKIP) + self.written;
        self.ogg.write_packet(packet, self.serial, end, granule)?;
        Ok(())
    }

    /// Samples on the timeline so far (audio and filled gaps), pre-skip not included.
    pub fn samples(&self) -> u64 {
        self.written
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn filled_samples(&self) -> u64 {
        self.filled_samples
    }

    /// Ends the stream (an end-of-stream page) and returns the writer.
    pub fn finish(mut self) -> Result<W, OggError> {
        // The last page must end a packet: an empty 2.5 ms packet carries the flag.
        self.written += 120;
        let granule = u64::from(PRE_SKIP) + self.written;
        self.ogg.write_packet(vec![28 << 3], self.serial, PacketWriteEndInfo::EndStream, granule)?;
        let mut out = self.ogg.into_inner();
        out.flush()?;
        Ok(out)
    }
}

/// RFC 7845 §5.1: "OpusHead", version 1, one channel, pre-skip, the input rate (48
/// kHz), no output gain, channel mapping family 0.
fn id_header() -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1);
    h.push(1);
    h.extend_from_slice(&PRE_SKIP.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// RFC 7845 §5.2: "OpusTags", vendor string, user comments.
fn comment_header(tags: &[(&str, &str)]) -> Vec<u8> {
    let vendor = concat!("viz ", env!("CARGO_PKG_VERSION"));
    let mut h = Vec::new();
    h.extend_from_slice(b"OpusTags");
    h.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    h.extend_from_slice(vendor.as_bytes());
    h.extend_from_slice(&(tags.len() as u32).to_le_bytes());
    for (k, v) in tags {
        let c = format!("{k}={v}");
        h.extend_from_slice(&(c.len() as u32).to_le_bytes());
        h.extend_from_slice(c.as_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Decoder, Encoded, Encoder};
    use crate::{AudioParams, signals};

    /// Reads back (packets, last granule, end-of-stream seen) with the ogg crate.
    fn read_back(bytes: &[u8]) -> (Vec<Vec<u8>>, u64, bool) {
        let mut r = ogg::reading::PacketReader::new(std::io::Cursor::new(bytes));
        let (mut packets, mut granule, mut eos) = (Vec::new(), 0, false);
        while let Ok(Some(p)) = r.read_packet() {
            granule = p.absgp_page();
            eos |= p.last_in_stream();
            packets.push(p.data);
        }
        (packets, granule, eos)
    }

    #[test]
    fn headers_audio_and_gaps_add_up_to_the_timeline() {
        let mut enc = Encoder::new(AudioParams { dtx: false, ..AudioParams::default() }).unwrap();
        let tone = signals::tone(440.0, 0.3, 960 * 30);
        let mut w = OggOpusWriter::new(Vec::new(), 7, &[("ROOM", "lobby")]).unwrap();
        let mut buf = vec![0u8; codec::MAX_PACKET];
        let mut ts = 1_000_000u32;
        for (i, chunk) in tone.chunks(960).enumerate() {
            let Encoded::Packet(n) = enc.encode(chunk, &mut buf).unwrap() else { panic!() };
            // Frames 10..15 never arrive (DTX or loss): 100 ms of gap.
            if !(10..15).contains(&i) {
                assert!(w.write(ts, &buf[..n]).unwrap());
            }
            ts = ts.wrapping_add(960);
        }
        // A reordered packet from the past is dropped, not written twice.
        assert!(!w.write(1_000_000, &buf[..3]).unwrap());
        assert_eq!(w.samples(), 960 * 30);
        assert_eq!(w.filled_samples(), 960 * 5);
        let bytes = w.finish().unwrap();
        let (packets, granule, eos) = read_back(&bytes);
        assert!(eos);
        assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
        assert!(String::from_utf8_lossy(&packets[1]).contains("ROOM=lobby"));
        assert_eq!(granule, u64::from(PRE_SKIP) + 960 * 30 + 120);
        // Every audio packet decodes; their durations add up to the granule.
        let mut dec = Decoder::new().unwrap();
        let mut pcm = vec![0.0; codec::MAX_PACKET_SAMPLES];
        let total: usize = packets[2..].iter().map(|p| dec.decode(p, &mut pcm).unwrap()).sum();
        assert_eq!(total as u64 + u64::from(PRE_SKIP), granule);
    }

    #[test]
    fn a_file_cut_at_the_last_page_still_reads() {
        let mut w = OggOpusWriter::new(Vec::new(), 1, &[]).unwrap();
        for i in 0..25u32 {
            w.write(i * 960, &[31 << 3]).unwrap();
        }
        // Without finish (a crash): two full pages of ten packets reached the writer.
        let partial = w.ogg.inner().clone();
        let (packets, granule, eos) = read_back(&partial);
        assert!(!eos);
        assert_eq!(packets.len(), 2 + 20);
        assert_eq!(granule, u64::from(PRE_SKIP) + 20 * 960);
    }

    #[test]
    fn gaps_use_the_largest_empty_packets_and_huge_jumps_are_not_filled() {
        let mut w = OggOpusWriter::new(Vec::new(), 1, &[]).unwrap();
        w.write(0, &[31 << 3]).unwrap();
        // 20 + 10 + 2.5 ms of gap.
        w.write(960 + 960 + 480 + 120, &[31 << 3]).unwrap();
        assert_eq!(w.filled_samples(), 960 + 480 + 120);
        // A jump of an hour is a restarted sender: continue without filling.
        w.write(960 * 4 + 48_000 * 3600, &[31 << 3]).unwrap();
        assert_eq!(w.filled_samples(), 960 + 480 + 120);
        assert!(w.write(0, &[]).is_err(), "an empty packet is no Opus packet");
    }
}
