//! Framing, encoding and packetizing: captured samples in, media packets out.
//!
//! Samples are cut into frames of the configured duration and Opus-encoded; frames
//! DTX decides not to send are skipped. Consecutive frames are packed `batch` to a
//! packet (1 by default: lowest delay), and a packet is sent early when a DTX gap
//! starts or it would grow past [`MAX_MEDIA_BYTES`]. The first packet after a gap
//! carries the marker bit. Timestamps advance with every frame, sent or not, so the
//! receiver can tell silence from loss; sequence numbers advance per packet.

use viz_audio::codec::{Encoded, Encoder, MAX_PACKET};
use viz_audio::{AudioParams, CodecError};
use viz_proto::OwnedMedia;

/// A frame whose peak is below this (-80 dBFS) is digital silence (a muted or gated
/// microphone, an idle file). With DTX on it is encoded, to keep the encoder's state,
/// but not sent: libopus would otherwise still send a comfort-noise refresh every
/// 400 ms, and for silence the receiver's concealment produces the same thing.
pub const DIGITAL_SILENCE_PEAK: f32 = 1e-4;

/// Opus bytes per packet before it is sent early (keeps datagrams under ~1200 bytes,
/// safe for tunnels with small MTUs).
pub const MAX_MEDIA_BYTES: usize = 1100;

/// Where finished packets go; returns false if the packet had to be dropped.
pub trait PacketSink {
    fn send(&mut self, packet: OwnedMedia) -> bool;
}

impl PacketSink for tokio::sync::mpsc::Sender<OwnedMedia> {
    fn send(&mut self, packet: OwnedMedia) -> bool {
        self.try_send(packet).is_ok()
    }
}

impl PacketSink for Vec<OwnedMedia> {
    fn send(&mut self, packet: OwnedMedia) -> bool {
        self.push(packet);
        true
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub frames_encoded: u64,
    pub frames_dtx: u64,
    pub frames_muted: u64,
    pub packets_sent: u64,
    /// Packets the network side could not take in time (queue full).
    pub packets_dropped: u64,
    pub opus_bytes: u64,
}

pub struct MediaSender<S> {
    encoder: Encoder,
    params: AudioParams,
    batch: usize,
    stream: u8,
    seq: u16,
    timestamp: u32,
    framer: Vec<f32>,
    pending: Option<OwnedMedia>,
    marker: bool,
    muted: bool,
    scratch: Box<[u8; MAX_PACKET]>,
    sink: S,
    stats: SenderStats,
}

impl<S: PacketSink> MediaSender<S> {
    /// `stream`, `first_seq` and `first_timestamp` should be random per start, so a
    /// restarted sender is recognised as a new stream.
    pub fn new(
        params: AudioParams,
        batch: usize,
        stream: u8,
        first_seq: u16,
        first_timestamp: u32,
        sink: S,
    ) -> Result<Self, CodecError> {
        Ok(Self {
            encoder: Encoder::new(params)?,
            params,
            batch: batch.clamp(1, viz_proto::payload::MAX_FRAMES),
            stream,
            seq: first_seq,
            timestamp: first_timestamp,
            framer: Vec::with_capacity(params.frame.samples() * 2),
            pending: None,
            marker: true,
            muted: false,
            scratch: Box::new([0; MAX_PACKET]),
            sink,
            stats: SenderStats::default(),
        })
    }

    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    pub fn params(&self) -> AudioParams {
        self.params
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    pub fn set_loss_hint(&mut self, percent: u8) {
        if let Err(e) = self.encoder.set_loss_hint(percent) {
            tracing::warn!("cannot set the encoder's loss hint: {e}");
        }
    }

    pub fn set_muted(&mut self, muted: bool) {
        if muted && !self.muted {
            self.flush();
        }
        self.muted = muted;
    }

    /// Takes captured 48 kHz mono samples; encodes and sends whole frames.
    pub fn push(&mut self, samples: &[f32]) {
        let n = self.params.frame.samples();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (n - self.framer.len()).min(rest.len());
            self.framer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.framer.len() == n {
                self.encode_frame();
                self.framer.clear();
            }
        }
    }

    fn encode_frame(&mut self) {
        let frame_ts = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(self.params.frame.samples() as u32);
        if self.muted {
            self.stats.frames_muted += 1;
            self.marker = true;
            return;
        }
        let silent = self.params.dtx && self.framer.iter().all(|s| s.abs() < DIGITAL_SILENCE_PEAK);
        match self.encoder.encode(&self.framer, &mut self.scratch[..]) {
            Ok(Encoded::Packet(_)) if silent => {
                self.stats.frames_dtx += 1;
                self.flush();
                self.marker = true;
            }
            Ok(Encoded::Packet(len)) => {
                self.stats.frames_encoded += 1;
                self.stats.opus_bytes += len as u64;
                let too_big = self.pending.as_ref().is_some_and(|p| p.payload_len() + len > MAX_MEDIA_BYTES);
                if too_big {
                    self.flush();
                }
                let pending = self.pending.get_or_insert_with(|| {
                    let marker = std::mem::replace(&mut self.marker, false);
                    OwnedMedia::new(self.stream, self.seq, frame_ts, marker)
                });
                pending.push_frame(&self.scratch[..len]);
                if pending.frame_count() >= self.batch {
                    self.flush();
                }
            }
            Ok(Encoded::Dtx) => {
                self.stats.frames_dtx += 1;
                self.flush();
                self.marker = true;
            }
            Err(e) => {
                // Cannot happen with a frame of the configured size; never take the
                // call down for it.
                tracing::warn!("encoding failed: {e}");
            }
        }
    }

    /// Sends a partly filled batch now.
    pub fn flush(&mut self) {
        if let Some(packet) = self.pending.take() {
            self.seq = self.seq.wrapping_add(1);
            if self.sink.send(packet) {
                self.stats.packets_sent += 1;
            } else {
                self.stats.packets_dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viz_audio::{FrameDuration, signals};

    #[test]
    fn frames_become_packets_with_consecutive_timestamps() {
        let params = AudioParams::default();
        let mut s = MediaSender::new(params, 1, 7, 100, 5000, Vec::new()).unwrap();
        let tone = signals::tone(300.0, 0.5, 960 * 10 + 100);
        for chunk in tone.chunks(240) {
            s.push(chunk);
        }
        let packets = std::mem::take(s.sink_mut());
        assert_eq!(packets.len(), 10);
        for (i, p) in packets.iter().enumerate() {
            assert_eq!(p.seq, 100 + i as u16);
            assert_eq!(p.timestamp, 5000 + 960 * i as u32);
            assert_eq!(p.stream, 7);
            assert_eq!(p.marker, i == 0);
        }
    }

    #[test]
    fn batching_and_dtx_gaps() {
        let params = AudioParams { frame: FrameDuration::Ms10, ..Default::default() };
        let mut s = MediaSender::new(params, 4, 1, 0, 0, Vec::new()).unwrap();
        let mut pcm = signals::tone(300.0, 0.5, 480 * 10);
        pcm.extend(signals::silence(48_000));
        pcm.extend(signals::tone(300.0, 0.5, 480 * 4));
        s.push(&pcm);
        let packets = std::mem::take(s.sink_mut());
        let counts: Vec<usize> = packets.iter().map(OwnedMedia::frame_count).collect();
        // Full batches while sound is encoded; when DTX starts (libopus waits ~200 ms
        // of silence) the partial batch goes out at once.
        assert_eq!(counts[0], 4, "{counts:?}");
        let partial = counts.iter().position(|&c| c < 4).expect("no partial batch");
        let before_gap = &packets[partial];
        let after_gap = &packets[partial + 1];
        assert!(after_gap.marker, "{counts:?}");
        let gap = after_gap.timestamp - before_gap.timestamp;
        // (libopus still sends a comfort-noise frame every 400 ms during DTX.)
        assert!(gap > 480 * 30, "gap of {gap} samples");
        // Frames in a batch are consecutive: first timestamps step by whole batches.
        assert_eq!(packets[1].timestamp - packets[0].timestamp, 480 * 4);
        assert!(s.stats().frames_dtx > 50);
        // Sequence numbers have no holes even though timestamps jump.
        assert!(packets.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
    }

    #[test]
    fn digital_silence_sends_nothing_with_dtx_only() {
        let silence = signals::silence(48_000 * 2);
        let mut s = MediaSender::new(AudioParams::default(), 1, 1, 0, 0, Vec::new()).unwrap();
        s.push(&silence);
        assert!(s.sink_mut().is_empty(), "{} packets for digital silence", s.sink_mut().len());
        let no_dtx = AudioParams { dtx: false, ..Default::default() };
        let mut s = MediaSender::new(no_dtx, 1, 1, 0, 0, Vec::new()).unwrap();
        s.push(&silence);
        assert_eq!(s.sink_mut().len(), 100);
        // Quiet but not silent (room noise at -60 dBFS) still goes through DTX's own
        // decisions, comfort-noise refreshes included.
        let mut s = MediaSender::new(AudioParams::default(), 1, 1, 0, 0, Vec::new()).unwrap();
        s.push(&signals::tone(200.0, 0.001, 48_000 * 2));
        assert!(!s.sink_mut().is_empty());
    }

    #[test]
    fn muted_sends_nothing_but_time_runs_on() {
        let mut s = MediaSender::new(AudioParams::default(), 1, 1, 0, 0, Vec::new()).unwrap();
        let tone = signals::tone(300.0, 0.5, 960 * 5);
        s.push(&tone);
        s.set_muted(true);
        s.push(&tone);
        s.set_muted(false);
        s.push(&tone);
        let packets = std::mem::take(s.sink_mut());
        assert_eq!(packets.len(), 10);
        assert_eq!(packets[5].timestamp, 960 * 10);
        assert!(packets[5].marker);
        assert_eq!(s.stats().frames_muted, 5);
    }
}
