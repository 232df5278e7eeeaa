//! Opus encoder and decoder over libopus (`opusic-c`), mono at 48 kHz.
//!
//! The wrapper fixes what Viz never changes (48 kHz, mono, VOIP application) and exposes
//! what it tunes at run time: bitrate, complexity, DTX, in-band FEC, deep redundancy
//! (DRED) and the loss hint that sizes both.

use crate::params::{AudioParams, FrameDuration, SAMPLE_RATE};

mod decoder;
pub use decoder::Decoder;

/// How far back the redundancy reaches while receivers report loss, in libopus's 10 ms
/// units: 100 ms, five 20 ms frames, which covers the loss bursts a jitter buffer of
/// 40-100 ms can still play in time. libopus sizes the bits it spends on it from the
/// loss hint (and takes them from the bitrate, so the rate on the wire stays the same).
const DRED_DURATION_UNITS: u8 = 10;
use opusic_c::{Application, Bitrate, Channels, InbandFec, SampleRate, Signal};

/// Largest Opus packet: 1275 bytes per frame, at most 3 frames of 20 ms in a 60 ms
/// packet (RFC 6716 §3.2.1, §3.4 R5) plus framing bytes.
pub const MAX_PACKET: usize = 4000;

/// libopus returns packets of at most this many bytes for frames that DTX decided not to
/// send (opus_encode documentation: "if the return value is 2 bytes or less, then the
/// packet does not need to be transmitted (DTX)").
const DTX_MAX_LEN: usize = 2;

/// Longest duration one Opus packet can carry (RFC 6716 §3.2.5: 120 ms).
pub const MAX_PACKET_SAMPLES: usize = 120 * 48;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    #[error("libopus: {0}")]
    Opus(&'static str),
    #[error("expected {expected} samples per frame, got {got}")]
    FrameSize { expected: usize, got: usize },
    #[error("invalid audio parameters: {0}")]
    Params(String),
}

impl From<opusic_c::ErrorCode> for CodecError {
    fn from(code: opusic_c::ErrorCode) -> Self {
        CodecError::Opus(code.message())
    }
}

/// Result of encoding one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// A packet of this many bytes was written to the output buffer; send it.
    Packet(usize),
    /// DTX decided this frame is silence; send nothing.
    Dtx,
}

pub struct Encoder {
    inner: opusic_c::Encoder,
    params: AudioParams,
    loss_hint: u8,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("params", &self.params).field("loss_hint", &self.loss_hint).finish()
    }
}

impl Encoder {
    pub fn new(params: AudioParams) -> Result<Self, CodecError> {
        params.validate().map_err(CodecError::Params)?;
        let inner = opusic_c::Encoder::new(Channels::Mono, SampleRate::Hz48000, Application::Voip)?;
        let mut enc = Self { inner, params, loss_hint: 0 };
        enc.apply(params)?;
        Ok(enc)
    }

    fn apply(&mut self, p: AudioParams) -> Result<(), CodecError> {
        self.inner.set_bitrate(Bitrate::Value(p.bitrate))?;
        self.inner.set_complexity(p.complexity)?;
        self.inner.set_signal(Signal::Voice)?;
        self.inner.set_dtx(p.dtx)?;
        self.inner.set_inband_fec(if p.fec { InbandFec::Mode1 } else { InbandFec::Off })?;
        self.inner.set_packet_loss(self.loss_hint)?;
        self.params = p;
        self.apply_dred()
    }

    /// Redundancy only while there is loss to cover: a clean call pays nothing for it.
    fn apply_dred(&mut self) -> Result<(), CodecError> {
        let units = if self.params.dred && self.loss_hint > 0 { DRED_DURATION_UNITS } else { 0 };
        self.inner.set_dred_duration(units)?;
        Ok(())
    }

    pub fn params(&self) -> AudioParams {
        self.params
    }

    /// Changes bitrate, complexity, FEC or DTX without resetting the codec state. The frame
    /// duration is taken from `params` on the next call to [`Encoder::encode`].
    pub fn reconfigure(&mut self, params: AudioParams) -> Result<(), CodecError> {
        params.validate().map_err(CodecError::Params)?;
        self.apply(params)
    }

    /// Tells the encoder how much loss the far end measures, in percent (0..=100). With
    /// FEC and DRED on, libopus spends bits on redundancy in proportion to this hint.
    pub fn set_loss_hint(&mut self, percent: u8) -> Result<(), CodecError> {
        let percent = percent.min(100);
        if percent != self.loss_hint {
            self.inner.set_packet_loss(percent)?;
            self.loss_hint = percent;
            self.apply_dred()?;
        }
        Ok(())
    }

    pub fn loss_hint(&self) -> u8 {
        self.loss_hint
    }

    /// Algorithmic delay of the encoder in samples at 48 kHz (6.5 ms for VOIP).
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        Ok(self.inner.get_look_ahead()? as usize)
    }

    /// Encodes exactly one frame of `params().frame.samples()` samples into `out`.
    pub fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<Encoded, CodecError> {
        let expected = self.params.frame.samples();
        if pcm.len() != expected {
            return Err(CodecError::FrameSize { expected, got: pcm.len() });
        }
        let len = self.inner.encode_float_to_slice(pcm, out)?;
        if self.params.dtx && len <= DTX_MAX_LEN { Ok(Encoded::Dtx) } else { Ok(Encoded::Packet(len)) }
    }

    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner.reset()?;
        Ok(())
    }
}

/// Duration of an Opus packet in samples at 48 kHz, read from its TOC byte and frame
/// count (RFC 6716 §3.1). Rejects empty and malformed packets.
pub fn packet_samples(packet: &[u8]) -> Result<usize, CodecError> {
    if packet.is_empty() {
        return Err(CodecError::Opus("empty packet"));
    }
    let n = opusic_c::utils::get_nb_samples(packet, SampleRate::Hz48000)?;
    if n == 0 || n > MAX_PACKET_SAMPLES {
        return Err(CodecError::Opus("invalid packet duration"));
    }
    Ok(n)
}

/// True when `packet` carries LBRR (in-band FEC) data for the frame before it.
pub fn packet_has_fec(packet: &[u8]) -> bool {
    let Ok(len) = i32::try_from(packet.len()) else { return false };
    if len == 0 {
        return false;
    }
    // SAFETY: libopus reads at most `len` bytes from the pointer, which is valid for them.
    let result = unsafe { opusic_c::sys::opus_packet_has_lbrr(packet.as_ptr(), len) };
    result == 1
}

/// True when `packet` has padding, which is where Opus 1.5+ puts extensions such as deep
/// redundancy (DRED): a code 3 packet whose frame count byte has the padding flag
/// (RFC 6716 §3.2.5). Cheap enough to call on every packet; whether the extension really
/// is DRED is only known when [`Decoder::parse_dred`] reads it.
pub fn packet_has_extensions(packet: &[u8]) -> bool {
    matches!(packet, [toc, count, ..] if toc & 0b11 == 3 && count & 0x40 != 0)
}

/// True when `packet` is a well-formed Opus packet of exactly one of Viz's frame durations.
pub fn packet_frame_duration(packet: &[u8]) -> Option<FrameDuration> {
    packet_samples(packet).ok().and_then(FrameDuration::from_samples)
}

const _: () = assert!(SAMPLE_RATE == 48_000);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals;

    fn encode_all(params: AudioParams, pcm: &[f32]) -> Vec<Option<Vec<u8>>> {
        let mut enc = Encoder::new(params).unwrap();
        let n = params.frame.samples();
        let mut out = [0u8; MAX_PACKET];
        pcm.chunks_exact(n)
            .map(|frame| match enc.encode(frame, &mut out).unwrap() {
                Encoded::Packet(len) => Some(out[..len].to_vec()),
                Encoded::Dtx => None,
            })
            .collect()
    }

    #[test]
    fn round_trip_every_frame_size_keeps_the_tone() {
        for frame in FrameDuration::ALL {
            let params = AudioParams { frame, ..Default::default() };
            let pcm = signals::tone(440.0, 0.5, 48_000);
            let packets = encode_all(params, &pcm);
            let mut dec = Decoder::new().unwrap();
            let mut decoded = Vec::new();
            let mut buf = vec![0f32; frame.samples()];
            for p in packets.iter().flatten() {
                assert_eq!(packet_samples(p).unwrap(), frame.samples());
                assert_eq!(packet_frame_duration(p), Some(frame));
                let n = dec.decode(p, &mut buf).unwrap();
                decoded.extend_from_slice(&buf[..n]);
            }
            // A steady tone is never DTX-silent, so every frame was sent.
            assert_eq!(packets.iter().flatten().count(), packets.len(), "{frame}");
            let f = crate::analysis::dominant_frequency(&decoded[4800..], 48_000);
            assert!((f - 440.0).abs() < 5.0, "{frame}: got {f} Hz");
        }
    }

    #[test]
    fn dtx_skips_silence_and_nothing_else() {
        let params = AudioParams::default();
        let mut pcm = signals::tone(300.0, 0.3, 48_000);
        pcm.extend(signals::silence(48_000 * 2));
        let packets = encode_all(params, &pcm);
        let first_second_sent = packets[..50].iter().filter(|p| p.is_some()).count();
        let last_second_sent = packets[100..].iter().filter(|p| p.is_some()).count();
        assert_eq!(first_second_sent, 50);
        // libopus sends one comfort-noise update every 400 ms during DTX.
        assert!(last_second_sent <= 5, "{last_second_sent} packets sent in silence");

        let no_dtx = encode_all(AudioParams { dtx: false, ..params }, &pcm);
        assert!(no_dtx.iter().all(Option::is_some));
    }

    #[test]
    fn fec_recovers_a_lost_frame_better_than_plc() {
        let params = AudioParams::default();
        let pcm = signals::speech_like(7, 48_000 * 3);
        let mut enc = Encoder::new(params).unwrap();
        enc.set_loss_hint(20).unwrap();
        let n = params.frame.samples();
        let mut out = [0u8; MAX_PACKET];
        let packets: Vec<Vec<u8>> = pcm
            .chunks_exact(n)
            .map(|f| match enc.encode(f, &mut out).unwrap() {
                Encoded::Packet(len) => out[..len].to_vec(),
                Encoded::Dtx => Vec::new(),
            })
            .collect();
        // Reference decode without loss.
        let mut reference = vec![0f32; n * packets.len()];
        let mut dec = Decoder::new().unwrap();
        for (i, p) in packets.iter().enumerate() {
            let dst = &mut reference[i * n..(i + 1) * n];
            if p.is_empty() {
                dec.conceal(dst).unwrap();
            } else {
                dec.decode(p, dst).unwrap();
            }
        }
        // Lose every 10th voiced frame; recover it with FEC in one decoder, PLC in another.
        let mut err_fec = 0f64;
        let mut err_plc = 0f64;
        let (mut dec_fec, mut dec_plc) = (Decoder::new().unwrap(), Decoder::new().unwrap());
        let mut buf = vec![0f32; n];
        for i in 0..packets.len() {
            let lost = i % 10 == 5 && !packets[i].is_empty() && packets.get(i + 1).is_some_and(|p| !p.is_empty());
            let want = &reference[i * n..(i + 1) * n];
            for (dec, err, fec) in [(&mut dec_fec, &mut err_fec, true), (&mut dec_plc, &mut err_plc, false)] {
                if lost && fec {
                    dec.decode_fec(&packets[i + 1], &mut buf).unwrap();
                } else if lost || packets[i].is_empty() {
                    dec.conceal(&mut buf).unwrap();
                } else {
                    dec.decode(&packets[i], &mut buf).unwrap();
                }
                if lost {
                    *err += want.iter().zip(&buf).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>();
                }
            }
        }
        assert!(err_fec < err_plc * 0.8, "FEC error {err_fec:.3} vs PLC error {err_plc:.3}");
    }

    #[test]
    fn wrong_frame_size_is_an_error_not_a_panic() {
        let mut enc = Encoder::new(AudioParams::default()).unwrap();
        let mut out = [0u8; MAX_PACKET];
        assert_eq!(enc.encode(&[0.0; 100], &mut out), Err(CodecError::FrameSize { expected: 960, got: 100 }));
    }

    #[test]
    fn packet_samples_rejects_garbage_of_every_short_length() {
        assert!(packet_samples(&[]).is_err());
        // Code 3 packet (TOC low bits 0b11) with a frame count byte of 0 is invalid.
        assert!(packet_samples(&[0b0000_0011, 0]).is_err());
        for len in 0..64usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = packet_samples(&data);
            let _ = packet_frame_duration(&data);
        }
    }

    #[test]
    fn fec_data_is_sent_only_when_loss_is_hinted() {
        let pcm = signals::speech_like(3, 48_000 * 3);
        let count = |hint: u8| {
            let mut enc = Encoder::new(AudioParams::default()).unwrap();
            enc.set_loss_hint(hint).unwrap();
            let mut out = [0u8; MAX_PACKET];
            let (mut sent, mut with_fec) = (0, 0);
            for frame in pcm.chunks_exact(960) {
                if let Encoded::Packet(len) = enc.encode(frame, &mut out).unwrap() {
                    sent += 1;
                    with_fec += usize::from(packet_has_fec(&out[..len]));
                }
            }
            (sent, with_fec)
        };
        assert_eq!(count(0).1, 0);
        let (sent, with_fec) = count(10);
        assert!(with_fec * 10 > sent * 6, "{with_fec} of {sent} packets carry FEC");
        let no_fec = AudioParams { fec: false, ..Default::default() };
        let mut enc = Encoder::new(no_fec).unwrap();
        enc.set_loss_hint(10).unwrap();
        let mut out = [0u8; MAX_PACKET];
        for frame in pcm.chunks_exact(960) {
            if let Encoded::Packet(len) = enc.encode(frame, &mut out).unwrap() {
                assert!(!packet_has_fec(&out[..len]));
            }
        }
        assert!(!packet_has_fec(&[]));
    }

    #[test]
    fn loss_hint_is_clamped() {
        let mut enc = Encoder::new(AudioParams::default()).unwrap();
        enc.set_loss_hint(250).unwrap();
        assert_eq!(enc.loss_hint(), 100);
        assert!(enc.lookahead().unwrap() > 0);
    }
}
