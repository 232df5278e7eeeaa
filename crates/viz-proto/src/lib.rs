//! # viz-proto
//!
//! Viz's protocol core, **sans-IO**: it parses and produces datagrams and keeps session
//! state, but owns no socket, starts no thread and never reads the clock. Time comes in
//! as an argument (`now: Instant`), datagrams come in as byte slices, and what to send
//! comes out of `poll_transmit`, in the style of quinn-proto and str0m. That is what
//! lets the tests run whole calls through a simulated lossy network, deterministically
//! and faster than real time.
//!
//! * [`wire`] — the outer datagram formats and their parser.
//! * [`handshake`] — Noise XX through `snow`; the joiner's [`handshake::Initiator`].
//! * [`endpoint`] — the host: answers handshakes, routes datagrams to sessions by
//!   receiver index (not by address, so NAT rebinding keeps the call).
//! * [`session`] — an established [`session::Connection`]: transport encryption with
//!   replay protection and rekeying ([`crypto`], [`replay`]), media, reliable control
//!   messages ([`reliable`], [`control`]), receiver reports ([`payload`]), idle timeout.
//! * [`identity`] — static keys, fingerprints, short authentication strings.
//! * [`rtp`], [`rtcp`] — plain RTP/Opus and RTCP for standard senders and receivers
//!   (the room's one unencrypted door), with RFC 3550's sequence and jitter bookkeeping.
//!
//! Anything a peer sends is parsed defensively: a malformed, replayed or forged
//! datagram is dropped and counted ([`error::DropReason`]), never answered, and never
//! panics (see the length-sweep tests, the property tests and `fuzz/`).

pub mod browser;
pub mod control;
pub mod cookie;
pub mod crypto;
pub mod endpoint;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod identity;
#[doc(hidden)]
pub mod loopback;
pub mod password;
pub mod payload;
pub mod reliable;
pub mod replay;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod wire;

pub use control::{AdminOp, AdminRequest, ByeReason, ControlMessage, Hello, RosterEntry};
pub use endpoint::{Endpoint, Input};
pub use error::{DropCounters, DropReason, HandshakeError, SendError};
pub use handshake::{Established, HostKeyPolicy, Initiator, PROTOCOL_VERSION};
pub use identity::{Fingerprint, Keypair, PublicKey, Sas};
pub use payload::{MediaFrame, OwnedMedia};
pub use session::{
    Connection, ConnectionStats, Event, JitterEstimator, Received, SessionConfig, report_interval_for_room,
};
pub use wire::MAX_DATAGRAM;
