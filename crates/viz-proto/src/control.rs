//! Control messages, carried reliably and in order (see [`crate::reliable`]).
//!
//! ```text
//! Hello  0x01 | version u8 | name_len u8 | name (UTF-8) | frame_ms u8 | bitrate u32 | flags u8
//!        flags: bit 0 FEC, bit 1 DTX, bit 2 sends audio, bit 3 receives audio
//! Mute   0x02 | muted u8
//! Bye    0x03 | reason u8
//! ```
//!
//! Unknown message types are acknowledged and ignored, and fields appended by a later
//! version are skipped, so that old and new peers can still talk.

use crate::error::DropReason;

pub const MSG_HELLO: u8 = 0x01;
pub const MSG_MUTE: u8 = 0x02;
pub const MSG_BYE: u8 = 0x03;

/// Longest display name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;

/// Audio a participant sends and what it wants to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u8,
    pub name: String,
    pub frame_ms: u8,
    pub bitrate: u32,
    pub fec: bool,
    pub dtx: bool,
    pub sends_audio: bool,
    pub receives_audio: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByeReason {
    /// The user left (Ctrl-C, `--duration` over).
    Leaving,
    /// The host is in a call already and takes no one else.
    Busy,
    /// The host or server is shutting down.
    ShuttingDown,
    /// An admin removed this participant.
    Kicked,
    Other(u8),
}

impl ByeReason {
    fn code(self) -> u8 {
        match self {
            Self::Leaving => 0,
            Self::Busy => 1,
            Self::ShuttingDown => 2,
            Self::Kicked => 3,
            Self::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Leaving,
            1 => Self::Busy,
            2 => Self::ShuttingDown,
            3 => Self::Kicked,
            c => Self::Other(c),
        }
    }
}

impl std::fmt::Display for ByeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Leaving => f.write_str("left"),
            Self::Busy => f.write_str("is busy in another call"),
            Self::ShuttingDown => f.write_str("shut down"),
            Self::Kicked => f.write_str("was removed by an admin"),
            Self::Other(c) => write!(f, "left (reason {c})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    Hello(Hello),
    Mute {
        muted: bool,
    },
    Bye {
        reason: ByeReason,
    },
    /// A message type this version does not know.
    Unknown(u8),
}

/// Makes a display name safe to print: no control characters, at most
/// [`MAX_NAME_LEN`] bytes, cut at a character boundary.
pub fn sanitize_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > MAX_NAME_LEN {
            break;
        }
        out.push(c);
    }
    out.trim().to_owned()
}

impl ControlMessage {
    /// Encodes the message body (without the control frame's id). Names are sanitized.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello(h) => {
                let name = sanitize_name(&h.name);
                out.push(MSG_HELLO);
                out.push(h.version);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                out.push(h.frame_ms);
                out.extend_from_slice(&h.bitrate.to_be_bytes());
                let flags = u8::from(h.fec)
                    | u8::from(h.dtx) << 1
                    | u8::from(h.sends_audio) << 2
                    | u8::from(h.receives_audio) << 3;
                out.push(flags);
            }
            Self::Mute { muted } => out.extend_from_slice(&[MSG_MUTE, u8::from(*muted)]),
            Self::Bye { reason } => out.extend_from_slice(&[MSG_BYE, reason.code()]),
            Self::Unknown(t) => out.push(*t),
        }
    }

    pub fn parse(b: &[u8]) -> Result<Self, DropReason> {
        let (&ty, body) = b.split_first().ok_or(DropReason::Malformed)?;
        match ty {
            MSG_HELLO => {
                let version = *body.first().ok_or(DropReason::Malformed)?;
                let name_len = usize::from(*body.get(1).ok_or(DropReason::Malformed)?);
                let name = body.get(2..2 + name_len).ok_or(DropReason::Malformed)?;
                let rest = body.get(2 + name_len..2 + name_len + 6).ok_or(DropReason::Malformed)?;
                let flags = rest[5];
                Ok(Self::Hello(Hello {
                    version,
                    name: sanitize_name(&String::from_utf8_lossy(name)),
                    frame_ms: rest[0],
                    bitrate: u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]),
                    fec: flags & 1 != 0,
                    dtx: flags & 2 != 0,
                    sends_audio: flags & 4 != 0,
                    receives_audio: flags & 8 != 0,
                }))
            }
            MSG_MUTE => Ok(Self::Mute { muted: *body.first().ok_or(DropReason::Malformed)? != 0 }),
            MSG_BYE => Ok(Self::Bye { reason: ByeReason::from_code(*body.first().ok_or(DropReason::Malformed)?) }),
            other => Ok(Self::Unknown(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello(name: &str) -> ControlMessage {
        ControlMessage::Hello(Hello {
            version: 1,
            name: name.into(),
            frame_ms: 20,
            bitrate: 32_000,
            fec: true,
            dtx: false,
            sends_audio: true,
            receives_audio: true,
        })
    }

    #[test]
    fn round_trips() {
        for m in [
            hello("alice"),
            hello(""),
            ControlMessage::Mute { muted: true },
            ControlMessage::Mute { muted: false },
            ControlMessage::Bye { reason: ByeReason::Busy },
            ControlMessage::Bye { reason: ByeReason::Other(99) },
            ControlMessage::Unknown(0x7f),
        ] {
            let mut b = Vec::new();
            m.encode(&mut b);
            assert_eq!(ControlMessage::parse(&b).unwrap(), m);
            // Extra trailing bytes from a newer version are ignored.
            b.extend_from_slice(&[1, 2, 3]);
            assert_eq!(ControlMessage::parse(&b).unwrap(), m);
        }
    }

    #[test]
    fn names_are_sanitized_both_ways() {
        assert_eq!(sanitize_name("bob\u{1b}[31m\n"), "bob [31m");
        let long = "é".repeat(100);
        let s = sanitize_name(&long);
        assert!(s.len() <= MAX_NAME_LEN && s.chars().all(|c| c == 'é'));
        let mut b = Vec::new();
        hello(&long).encode(&mut b);
        let ControlMessage::Hello(h) = ControlMessage::parse(&b).unwrap() else { panic!() };
        assert_eq!(h.name, s);
        // Invalid UTF-8 on the wire becomes replacement characters, not an error.
        let raw = [MSG_HELLO, 1, 2, 0xff, 0xfe, 20, 0, 0, 125, 0, 0];
        let ControlMessage::Hello(h) = ControlMessage::parse(&raw).unwrap() else { panic!() };
        assert_eq!(h.name, "\u{fffd}\u{fffd}");
    }

    #[test]
    fn truncations_are_errors() {
        let mut b = Vec::new();
        hello("carol").encode(&mut b);
        for len in 0..b.len() {
            let r = ControlMessage::parse(&b[..len]);
            assert!(r.is_err(), "len {len}: {r:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ControlMessage::parse(&data);
        }
    }
}
