//! Errors. What a peer sends us never produces an error value the caller must handle:
//! a bad datagram is *dropped* with a [`DropReason`] (counted, logged at debug level by
//! the runtime) and nothing is ever answered. Errors proper are for local mistakes and
//! for handshakes that fail in a way the user must hear about.

use crate::identity::Fingerprint;

/// Why an incoming datagram was dropped. Coarse on purpose: it goes into counters and
/// debug logs, never back to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    TooShort,
    TooLong,
    UnknownType,
    Malformed,
    /// No session or pending handshake has this receiver index.
    UnknownReceiver,
    /// The counter was already seen (a replay or a network duplicate).
    Replayed,
    /// The counter is older than the replay window.
    TooOld,
    /// Authentication failed: corrupted, forged, reflected, or for another key.
    Decrypt,
    /// The handshake message did not verify or was not expected now.
    Handshake,
    /// Too many handshakes in progress.
    Busy,
    /// The session is closed.
    Closed,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        Self::TooShort,
        Self::TooLong,
        Self::UnknownType,
        Self::Malformed,
        Self::UnknownReceiver,
        Self::Replayed,
        Self::TooOld,
        Self::Decrypt,
        Self::Handshake,
        Self::Busy,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::UnknownType => "unknown_type",
            Self::Malformed => "malformed",
            Self::UnknownReceiver => "unknown_receiver",
            Self::Replayed => "replayed",
            Self::TooOld => "too_old",
            Self::Decrypt => "decrypt",
            Self::Handshake => "handshake",
            Self::Busy => "busy",
            Self::Closed => "closed",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

/// Per-reason drop counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn count(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    pub fn add(&mut self, other: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// A handshake the initiator cannot complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error(
        "the host's key does not match the expected one: expected fingerprint {expected}, \
         the host presented {presented}. Someone may be intercepting the connection, or the \
         host got a new key; if you trust the new key, check it with the host and join with \
         #{presented} in the address"
    )]
    HostKeyMismatch { expected: Fingerprint, presented: Fingerprint },
    #[error("the host speaks protocol version {0}, this viz speaks version {1}")]
    Version(u8, u8),
    #[error("handshake failed: {0}")]
    Noise(String),
}

/// A local misuse when sending (never caused by the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("payload of {0} bytes does not fit in one datagram")]
    TooLarge(usize),
    #[error("output buffer too small")]
    BufferTooSmall,
    #[error("the session is closed")]
    Closed,
    #[error("the session has used up its counters and must be re-established")]
    Exhausted,
}
