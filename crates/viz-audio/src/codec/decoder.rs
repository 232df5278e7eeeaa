//! Opus decoder over libopus's C API, with every way libopus has to fill a lost frame:
//! in-band FEC (LBRR) from the next packet, deep redundancy (DRED) from any later
//! packet, and concealment (neural "deep PLC" from complexity 5 up).
//!
//! `opusic-c`'s decoder keeps its libopus state private, and its DRED helper can only
//! rebuild the frame right before a packet. Rebuilding a frame that lies further back
//! (the first of two lost in a row, or a loss the jitter buffer sees two packets late)
//! needs `opus_decoder_dred_decode_float` with an offset on the *same* decoder state,
//! so this wraps libopus directly. Everything is allocated in [`Decoder::new`]; decoding
//! allocates nothing.
//!
//! Complexity (libopus 1.5+, `OPUS_SET_COMPLEXITY` on the decoder): 0-4 is classic
//! libopus; 5 adds deep PLC (FARGAN); 6 adds LACE and 7+ NoLACE, the OSCE speech
//! enhancement of low-bitrate SILK frames. Measured costs are in `viz bench codec`.

use std::ptr::NonNull;

use opusic_c::sys;

use super::CodecError;
use crate::params::SAMPLE_RATE;

/// DRED history this many samples back is never asked for (1 s, libopus's own limit).
const MAX_DRED_SAMPLES: usize = SAMPLE_RATE as usize;

fn check(code: i32) -> Result<usize, CodecError> {
    if code < 0 { Err(opusic_c::ErrorCode::from(code).into()) } else { Ok(code as usize) }
}

pub struct Decoder {
    state: NonNull<sys::OpusDecoder>,
    dred_decoder: NonNull<sys::OpusDREDDecoder>,
    /// The redundancy last parsed by [`Decoder::parse_dred`].
    dred: NonNull<sys::OpusDRED>,
    /// Whether `dred` holds a successful parse ([`Decoder::decode_dred`] needs one).
    dred_parsed: bool,
    complexity: u8,
}

// SAFETY: the three libopus objects are plain memory owned by this value alone; libopus
// keeps no thread-local or global state for them.
unsafe impl Send for Decoder {}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("complexity", &self.complexity).finish_non_exhaustive()
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: each pointer came from its libopus constructor and is freed once.
        unsafe {
            sys::opus_decoder_destroy(self.state.as_ptr());
            sys::opus_dred_decoder_destroy(self.dred_decoder.as_ptr());
            sys::opus_dred_free(self.dred.as_ptr());
        }
    }
}

impl Decoder {
    /// A decoder at complexity 0 (classic libopus: cheapest, no neural models).
    pub fn new() -> Result<Self, CodecError> {
        let mut error = 0;
        // SAFETY: plain constructors; each returns null (with `error` set) on failure.
        let state = NonNull::new(unsafe { sys::opus_decoder_create(SAMPLE_RATE as i32, 1, &mut error) });
        let Some(state) = state else { return Err(opusic_c::ErrorCode::from(error).into()) };
        let dred_decoder = NonNull::new(unsafe { sys::opus_dred_decoder_create(&mut error) });
        let Some(dred_decoder) = dred_decoder else {
            unsafe { sys::opus_decoder_destroy(state.as_ptr()) };
            return Err(opusic_c::ErrorCode::from(error).into());
        };
        let dred = NonNull::new(unsafe { sys::opus_dred_alloc(&mut error) });
        let Some(dred) = dred else {
            unsafe {
                sys::opus_decoder_destroy(state.as_ptr());
                sys::opus_dred_decoder_destroy(dred_decoder.as_ptr());
            }
            return Err(opusic_c::ErrorCode::from(error).into());
        };
        Ok(Self { state, dred_decoder, dred, dred_parsed: false, complexity: 0 })
    }

    /// A decoder at `complexity` (see the module documentation for what each level adds).
    pub fn with_complexity(complexity: u8) -> Result<Self, CodecError> {
        let mut decoder = Self::new()?;
        decoder.set_complexity(complexity)?;
        Ok(decoder)
    }

    pub fn set_complexity(&mut self, complexity: u8) -> Result<(), CodecError> {
        let complexity = complexity.min(10);
        // SAFETY: a valid decoder and a request that takes one int.
        check(unsafe {
            sys::opus_decoder_ctl(self.state.as_ptr(), sys::OPUS_SET_COMPLEXITY_REQUEST, i32::from(complexity))
        })?;
        self.complexity = complexity;
        Ok(())
    }

    pub fn complexity(&self) -> u8 {
        self.complexity
    }

    fn decode_float(&mut self, packet: Option<&[u8]>, out: &mut [f32], fec: bool) -> Result<usize, CodecError> {
        let (data, len) = match packet {
            Some(p) => (p.as_ptr(), i32::try_from(p.len()).map_err(|_| CodecError::Opus("packet too long"))?),
            None => (std::ptr::null(), 0),
        };
        let frame_size = i32::try_from(out.len()).map_err(|_| CodecError::Opus("buffer too long"))?;
        // SAFETY: `data` is valid for `len` bytes (or null with 0), `out` for
        // `frame_size` floats of one channel, which is all libopus writes.
        check(unsafe {
            sys::opus_decode_float(self.state.as_ptr(), data, len, out.as_mut_ptr(), frame_size, i32::from(fec))
        })
    }

    /// Decodes one packet into `out` (which must hold the packet's duration) and returns
    /// the number of samples written.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        if packet.is_empty() {
            // An empty input means "lost" to libopus; callers ask for that explicitly.
            return Err(CodecError::Opus("empty packet"));
        }
        self.decode_float(Some(packet), out, false)
    }

    /// Reconstructs the frame *before* `next_packet` from the LBRR (FEC) data that
    /// `next_packet` carries. `out.len()` must be the duration of the missing frame. When
    /// the packet carries no FEC data libopus falls back to concealment, so this never
    /// leaves a gap.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        if next_packet.is_empty() {
            return Err(CodecError::Opus("empty packet"));
        }
        self.decode_float(Some(next_packet), out, true)
    }

    /// Packet loss concealment (or comfort noise after DTX) for `out.len()` samples, which
    /// must be a multiple of 2.5 ms.
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<usize, CodecError> {
        self.decode_float(None, out, false)
    }

    /// Reads the deep redundancy `packet` carries about the audio before it, decoding at
    /// most `wanted` samples of it (the decoding is a neural network; only what may be
    /// used is worth running). Replaces what an earlier call parsed. Returns how many
    /// samples before the packet's start the redundancy reaches (0: it carries none).
    pub fn parse_dred(&mut self, packet: &[u8], wanted: usize) -> usize {
        let Ok(len) = i32::try_from(packet.len()) else { return 0 };
        if len == 0 {
            return 0;
        }
        let wanted = wanted.min(MAX_DRED_SAMPLES) as i32;
        let mut silence_at_end = 0;
        // SAFETY: `packet` is valid for `len` bytes; both DRED objects are initialised.
        let samples = unsafe {
            sys::opus_dred_parse(
                self.dred_decoder.as_ptr(),
                self.dred.as_ptr(),
                packet.as_ptr(),
                len,
                wanted,
                SAMPLE_RATE as i32,
                &mut silence_at_end,
                0,
            )
        };
        self.dred_parsed = samples > 0;
        samples.max(0) as usize
    }

    /// Rebuilds `out.len()` samples that started `offset` samples before the start of the
    /// packet last given to [`Decoder::parse_dred`], from its redundancy. Call it in time
    /// order, as if the lost frames had arrived, then decode that packet as usual.
    pub fn decode_dred(&mut self, offset: usize, out: &mut [f32]) -> Result<usize, CodecError> {
        if !self.dred_parsed {
            return Err(CodecError::Opus("no redundancy parsed"));
        }
        let offset = i32::try_from(offset).map_err(|_| CodecError::Opus("offset too long"))?;
        let frame_size = i32::try_from(out.len()).map_err(|_| CodecError::Opus("buffer too long"))?;
        // SAFETY: `out` holds `frame_size` floats of one channel; `dred` holds a parse.
        check(unsafe {
            sys::opus_decoder_dred_decode_float(
                self.state.as_ptr(),
                self.dred.as_ptr(),
                offset,
                out.as_mut_ptr(),
                frame_size,
            )
        })
    }

    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.dred_parsed = false;
        // SAFETY: a valid decoder; OPUS_RESET_STATE takes no argument.
        check(unsafe { sys::opus_decoder_ctl(self.state.as_ptr(), sys::OPUS_RESET_STATE) })?;
        Ok(())
    }
}
