//! # viz-client
//!
//! The runtime around a Viz participant: the audio [`engine`] (devices through `cpal`
//! with lock-free rings, or WAV files and generated signals at real-time pace), the
//! client side of the transports (UDP, WebSocket) and the [`join`] driver that runs a
//! call, plus identity and known-hosts storage. Protocol and DSP live in `viz-proto`
//! and `viz-audio`; this crate does the I/O.

pub mod address;
pub mod controls;
pub mod cpu;
pub mod device;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod join;
pub mod people;
pub mod ptt;
pub mod realtime;
pub mod roster;
pub mod status;
pub mod store;
pub mod transport;
pub mod view;
pub mod volumes;
