//! # viz-audio
//!
//! The audio core of Viz: everything that turns samples into Opus packets and back, with
//! no network, no devices and no clock. Time enters as an argument (`Instant`s handed in
//! by the caller), so the jitter buffer can be driven faster than real time by a
//! simulated network in tests.
//!
//! * [`codec`]: Opus encoder/decoder over libopus, 48 kHz mono, FEC, DTX, PLC.
//! * [`jitter`]: the adaptive jitter buffer (timestamp-indexed, FEC then PLC concealment).
//! * [`wav`], [`resample`]: file I/O and rate conversion for inputs that are not 48 kHz.
//! * [`ogg_opus`]: Ogg Opus recordings written as packets arrive (RFC 7845).
//! * [`signals`]: tone, silence and speech-like test signals.
//! * [`analysis`]: delay by cross-correlation, levels and spectra for measurements.

pub mod agc;
pub mod analysis;
mod blocks;
pub mod codec;
pub mod denoise;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod jitter;
pub mod mixer;
pub mod ogg_opus;
pub mod params;
pub mod resample;
pub mod signals;
pub mod wav;

pub use codec::{CodecError, Decoder, Encoded, Encoder};
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, PacketRef, PlayKind, Playout};
pub use params::{AudioParams, FrameDuration, SAMPLE_RATE};
