//! Control messages, carried reliably and in order (see [`crate::reliable`]).
//!
//! ```text
//! Hello    0x01 | version u8 | name_len u8 | name (UTF-8) | frame_ms u8 | bitrate u32 | flags u8
//!          flags: bit 0 FEC, bit 1 DTX, bit 2 sends audio, bit 3 receives audio,
//!                 bit 4 echo test (joiner), bit 5 this is a room (server)
//! Mute     0x02 | muted u8
//! Bye      0x03 | reason u8
//! Roster   0x04 | count u8 | count × entry             (server → joiner: added or changed)
//!          entry: id u32 | flags u8 | gain % u16 | name_len u8 | name | key_len u8 | key fingerprint
//!          flags: bit 0 this is you, bit 1 self-muted, bit 2 muted by an admin, bit 3 sends
//!                 audio, bit 4 receives audio, bit 5 test source
//! Left     0x05 | id u32 | reason u8                    (server → joiner)
//! Talking  0x06 | count u8 | count × id u32             (server → joiner: who talks now)
//! PwStart  0x07 | CPace message (48)                    (see `crate::password`)
//! PwReply  0x08 | CPace message (32) | server proof (32)
//! PwProof  0x09 | joiner proof (32)
//! Admin    0x0A | request u32 | token_len u8 | token | op u8 | target u32 | argument
//!          op: 0 log in (no argument), 1 gain (u16 %), 2 mute (u8), 3 rename (len u8, name), 4 kick
//! AdminRe  0x0B | request u32 | ok u8 | len u16 | message (UTF-8)
//! Volume   0x0C | target u32 | percent u16             (joiner → server: for me only)
//! Levels   0x0D | count u8 | count × (id u32 | level u8)   (server → joiner)
//! Report   0x0E | interval_ms u16                       (server → joiner: report this often)
//! ```
//!
//! Talking and Levels may also come as notices (see [`crate::payload`]): unreliable,
//! since the next one replaces them.
//!
//! Unknown message types are acknowledged and ignored, and fields appended by a later
//! version are skipped, so that old and new peers can still talk.

use crate::error::DropReason;

pub const MSG_HELLO: u8 = 0x01;
pub const MSG_MUTE: u8 = 0x02;
pub const MSG_BYE: u8 = 0x03;
pub const MSG_ROSTER: u8 = 0x04;
pub const MSG_LEFT: u8 = 0x05;
pub const MSG_TALKING: u8 = 0x06;
pub const MSG_PW_START: u8 = 0x07;
pub const MSG_PW_REPLY: u8 = 0x08;
pub const MSG_PW_PROOF: u8 = 0x09;
pub const MSG_ADMIN: u8 = 0x0A;
pub const MSG_ADMIN_RESULT: u8 = 0x0B;
pub const MSG_VOLUME: u8 = 0x0C;
pub const MSG_LEVELS: u8 = 0x0D;
pub const MSG_REPORT_EVERY: u8 = 0x0E;

/// Most entries in one roster message (keeps it well inside one datagram).
pub const MAX_ROSTER_ENTRIES: usize = 12;
/// Most ids in one talking message.
pub const MAX_TALKING: usize = 64;
/// Longest admin token, in bytes.
pub const MAX_TOKEN_LEN: usize = 128;
/// Longest admin result message, in bytes.
pub const MAX_RESULT_LEN: usize = 1000;
/// Highest gain an admin can set, in percent.
pub const MAX_GAIN_PERCENT: u16 = 200;

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
    /// Joiner: connect me to the echo service instead of the room.
    pub echo_test: bool,
    /// Server: this is a room (expect roster messages), not a two-person call.
    pub room: bool,
    /// Joiner: send me everyone's level while people talk (a live view shows them).
    pub levels: bool,
}

impl Hello {
    /// The name to show: what the peer gave, or "guest".
    pub fn display_name(&self) -> String {
        if self.name.is_empty() { "guest".to_owned() } else { self.name.clone() }
    }
}

/// One participant as the roster shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub id: u32,
    pub name: String,
    /// The participant's key fingerprint (compact form).
    pub key: String,
    pub gain_percent: u16,
    pub you: bool,
    pub self_muted: bool,
    /// Hears nothing (and so is muted too).
    pub deafened: bool,
    pub admin_muted: bool,
    pub sends: bool,
    pub receives: bool,
    pub test_source: bool,
}

impl RosterEntry {
    /// Someone who sends and receives at full volume, with nothing muted or marked.
    pub fn new(id: u32, name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            key: key.into(),
            gain_percent: 100,
            you: false,
            self_muted: false,
            deafened: false,
            admin_muted: false,
            sends: true,
            receives: true,
            test_source: false,
        }
    }
}

/// What an admin asks the room to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOp {
    /// Check the token; the server answers and then sends the roster.
    LogIn,
    Gain {
        target: u32,
        percent: u16,
    },
    Mute {
        target: u32,
        muted: bool,
    },
    Rename {
        target: u32,
        name: String,
    },
    Kick {
        target: u32,
    },
}

impl AdminOp {
    /// The participant the operation is about (none for logging in).
    pub fn target(&self) -> Option<u32> {
        match self {
            Self::LogIn => None,
            Self::Gain { target, .. }
            | Self::Mute { target, .. }
            | Self::Rename { target, .. }
            | Self::Kick { target } => Some(*target),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct AdminRequest {
    pub request: u32,
    pub token: String,
    pub op: AdminOp,
}

impl std::fmt::Debug for AdminRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRequest")
            .field("request", &self.request)
            .field("token", &"<redacted>")
            .field("op", &self.op)
            .finish()
    }
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
    /// The room has a password and the joiner offered none.
    PasswordRequired,
    /// The password proof failed.
    WrongPassword,
    /// Too many failed attempts from this address; try again later.
    TooManyAttempts,
    /// The same identity connected again; this older session is over.
    Replaced,
    Other(u8),
}

impl ByeReason {
    fn code(self) -> u8 {
        match self {
            Self::Leaving => 0,
            Self::Busy => 1,
            Self::ShuttingDown => 2,
            Self::Kicked => 3,
            Self::PasswordRequired => 4,
            Self::WrongPassword => 5,
            Self::TooManyAttempts => 6,
            Self::Replaced => 7,
            Self::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Leaving,
            1 => Self::Busy,
            2 => Self::ShuttingDown,
            3 => Self::Kicked,
            4 => Self::PasswordRequired,
            5 => Self::WrongPassword,
            6 => Self::TooManyAttempts,
            7 => Self::Replaced,
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
            Self::PasswordRequired => f.write_str("needs a password (give it with --password-file or VIZ_PASSWORD)"),
            Self::WrongPassword => f.write_str("refused the password"),
            Self::TooManyAttempts => f.write_str("refused: too many failed attempts from this address, try later"),
            Self::Replaced => f.write_str("was replaced by a newer connection with the same identity"),
            Self::Other(c) => write!(f, "left (reason {c})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    Hello(Hello),
    /// My microphone is off (`muted`), and whether I hear nothing either.
    Mute {
        muted: bool,
        deafened: bool,
    },
    Bye {
        reason: ByeReason,
    },
    Roster(Vec<RosterEntry>),
    Left {
        id: u32,
        reason: ByeReason,
    },
    /// Everyone talking now (replaces the previous set).
    Talking(Vec<u32>),
    PasswordStart([u8; crate::password::START_LEN]),
    PasswordReply {
        reply: [u8; crate::password::REPLY_LEN],
        proof: [u8; crate::password::PROOF_LEN],
    },
    PasswordProof([u8; crate::password::PROOF_LEN]),
    Admin(AdminRequest),
    AdminResult {
        request: u32,
        ok: bool,
        message: String,
    },
    /// Joiner: how loud I want `target`, for me only (0..=200 %; the room and the
    /// others hear no change).
    Volume {
        target: u32,
        percent: u16,
    },
    /// Server: the level of everyone audible now, as (id, level); the level is dBFS
    /// + 100, so 0 is silence and 100 full scale. Only to joiners that asked.
    Levels(Vec<(u32, u8)>),
    /// Server: send reports (and so keepalives) this often, in milliseconds. A large
    /// room asks for fewer, so its inbound load does not grow with its size; the
    /// session applies it (clamped to what its idle timeout allows) and does not pass
    /// it on.
    ReportEvery(u16),
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

fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = truncate_utf8(s, 255);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Bounds-checked reading of a message body; every short read is `Malformed`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DropReason> {
        if self.0.len() < n {
            return Err(DropReason::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DropReason> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DropReason> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DropReason> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DropReason> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn string(&mut self) -> Result<String, DropReason> {
        let len = usize::from(self.u8()?);
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
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
                    | u8::from(h.receives_audio) << 3
                    | u8::from(h.echo_test) << 4
                    | u8::from(h.room) << 5
                    | u8::from(h.levels) << 6;
                out.push(flags);
            }
            Self::Mute { muted, deafened } => out.extend_from_slice(&[MSG_MUTE, u8::from(*muted), u8::from(*deafened)]),
            Self::Bye { reason } => out.extend_from_slice(&[MSG_BYE, reason.code()]),
            Self::Roster(entries) => {
                let entries = &entries[..entries.len().min(MAX_ROSTER_ENTRIES)];
                out.push(MSG_ROSTER);
                out.push(entries.len() as u8);
                for e in entries {
                    out.extend_from_slice(&e.id.to_be_bytes());
                    let flags = u8::from(e.you)
                        | u8::from(e.self_muted) << 1
                        | u8::from(e.admin_muted) << 2
                        | u8::from(e.sends) << 3
                        | u8::from(e.receives) << 4
                        | u8::from(e.test_source) << 5
                        | u8::from(e.deafened) << 6;
                    out.push(flags);
                    out.extend_from_slice(&e.gain_percent.to_be_bytes());
                    put_str(out, &sanitize_name(&e.name));
                    put_str(out, &sanitize_name(&e.key));
                }
            }
            Self::Left { id, reason } => {
                out.push(MSG_LEFT);
                out.extend_from_slice(&id.to_be_bytes());
                out.push(reason.code());
            }
            Self::Talking(ids) => {
                let ids = &ids[..ids.len().min(MAX_TALKING)];
                out.push(MSG_TALKING);
                out.push(ids.len() as u8);
                for id in ids {
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
            Self::PasswordStart(m) => {
                out.push(MSG_PW_START);
                out.extend_from_slice(m);
            }
            Self::PasswordReply { reply, proof } => {
                out.push(MSG_PW_REPLY);
                out.extend_from_slice(reply);
                out.extend_from_slice(proof);
            }
            Self::PasswordProof(p) => {
                out.push(MSG_PW_PROOF);
                out.extend_from_slice(p);
            }
            Self::Admin(r) => {
                out.push(MSG_ADMIN);
                out.extend_from_slice(&r.request.to_be_bytes());
                put_str(out, truncate_utf8(&r.token, MAX_TOKEN_LEN));
                let op = match &r.op {
                    AdminOp::LogIn => 0u8,
                    AdminOp::Gain { .. } => 1,
                    AdminOp::Mute { .. } => 2,
                    AdminOp::Rename { .. } => 3,
                    AdminOp::Kick { .. } => 4,
                };
                out.push(op);
                out.extend_from_slice(&r.op.target().unwrap_or(0).to_be_bytes());
                match &r.op {
                    AdminOp::Gain { percent, .. } => out.extend_from_slice(&percent.to_be_bytes()),
                    AdminOp::Mute { muted, .. } => out.push(u8::from(*muted)),
                    AdminOp::Rename { name, .. } => put_str(out, &sanitize_name(name)),
                    AdminOp::LogIn | AdminOp::Kick { .. } => {}
                }
            }
            Self::AdminResult { request, ok, message } => {
                out.push(MSG_ADMIN_RESULT);
                out.extend_from_slice(&request.to_be_bytes());
                out.push(u8::from(*ok));
                let m = truncate_utf8(message, MAX_RESULT_LEN);
                out.extend_from_slice(&(m.len() as u16).to_be_bytes());
                out.extend_from_slice(m.as_bytes());
            }
            Self::Volume { target, percent } => {
                out.push(MSG_VOLUME);
                out.extend_from_slice(&target.to_be_bytes());
                out.extend_from_slice(&(*percent).min(MAX_GAIN_PERCENT).to_be_bytes());
            }
            Self::Levels(levels) => {
                let levels = &levels[..levels.len().min(MAX_TALKING)];
                out.push(MSG_LEVELS);
                out.push(levels.len() as u8);
                for (id, level) in levels {
                    out.extend_from_slice(&id.to_be_bytes());
                    out.push(*level);
                }
            }
            Self::ReportEvery(ms) => {
                out.push(MSG_REPORT_EVERY);
                out.extend_from_slice(&ms.to_be_bytes());
            }
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
                    echo_test: flags & 16 != 0,
                    room: flags & 32 != 0,
                    levels: flags & 64 != 0,
                }))
            }
            // `deafened` came later: a peer that does not send it is not deafened.
            MSG_MUTE => Ok(Self::Mute {
                muted: *body.first().ok_or(DropReason::Malformed)? != 0,
                deafened: body.get(1).is_some_and(|&d| d != 0),
            }),
            MSG_BYE => Ok(Self::Bye { reason: ByeReason::from_code(*body.first().ok_or(DropReason::Malformed)?) }),
            MSG_ROSTER => {
                let mut r = Reader(body);
                let count = usize::from(r.u8()?);
                if count > MAX_ROSTER_ENTRIES {
                    return Err(DropReason::Malformed);
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let id = r.u32()?;
                    let flags = r.u8()?;
                    let gain_percent = r.u16()?.min(MAX_GAIN_PERCENT);
                    let name = sanitize_name(&r.string()?);
                    let key = sanitize_name(&r.string()?);
                    entries.push(RosterEntry {
                        id,
                        name,
                        key,
                        gain_percent,
                        you: flags & 1 != 0,
                        self_muted: flags & 2 != 0,
                        deafened: flags & 64 != 0,
                        admin_muted: flags & 4 != 0,
                        sends: flags & 8 != 0,
                        receives: flags & 16 != 0,
                        test_source: flags & 32 != 0,
                    });
                }
                Ok(Self::Roster(entries))
            }
            MSG_LEFT => {
                let mut r = Reader(body);
                Ok(Self::Left { id: r.u32()?, reason: ByeReason::from_code(r.u8()?) })
            }
            MSG_TALKING => {
                let mut r = Reader(body);
                let count = usize::from(r.u8()?);
                if count > MAX_TALKING {
                    return Err(DropReason::Malformed);
                }
                (0..count).map(|_| r.u32()).collect::<Result<Vec<_>, _>>().map(Self::Talking)
            }
            MSG_PW_START => Ok(Self::PasswordStart(Reader(body).array()?)),
            MSG_PW_REPLY => {
                let mut r = Reader(body);
                Ok(Self::PasswordReply { reply: r.array()?, proof: r.array()? })
            }
            MSG_PW_PROOF => Ok(Self::PasswordProof(Reader(body).array()?)),
            MSG_ADMIN => {
                let mut r = Reader(body);
                let request = r.u32()?;
                let token = r.string()?;
                if token.len() > MAX_TOKEN_LEN {
                    return Err(DropReason::Malformed);
                }
                let op = r.u8()?;
                let target = r.u32()?;
                let op = match op {
                    0 => AdminOp::LogIn,
                    1 => AdminOp::Gain { target, percent: r.u16()? },
                    2 => AdminOp::Mute { target, muted: r.u8()? != 0 },
                    3 => AdminOp::Rename { target, name: sanitize_name(&r.string()?) },
                    4 => AdminOp::Kick { target },
                    _ => return Err(DropReason::Malformed),
                };
                Ok(Self::Admin(AdminRequest { request, token, op }))
            }
            MSG_ADMIN_RESULT => {
                let mut r = Reader(body);
                let request = r.u32()?;
                let ok = r.u8()? != 0;
                let len = usize::from(r.u16()?);
                let message = String::from_utf8_lossy(r.take(len)?).replace(|c: char| c.is_control() && c != '\n', " ");
                let message = truncate_utf8(&message, MAX_RESULT_LEN).to_owned();
                Ok(Self::AdminResult { request, ok, message })
            }
            MSG_VOLUME => {
                let mut r = Reader(body);
                Ok(Self::Volume { target: r.u32()?, percent: r.u16()?.min(MAX_GAIN_PERCENT) })
            }
            MSG_LEVELS => {
                let mut r = Reader(body);
                let count = usize::from(r.u8()?);
                if count > MAX_TALKING {
                    return Err(DropReason::Malformed);
                }
                (0..count).map(|_| Ok((r.u32()?, r.u8()?))).collect::<Result<Vec<_>, _>>().map(Self::Levels)
            }
            MSG_REPORT_EVERY => Ok(Self::ReportEvery(Reader(body).u16()?)),
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
            echo_test: false,
            room: true,
            levels: name.len() % 2 == 1,
        })
    }

    fn entry(id: u32, name: &str) -> RosterEntry {
        RosterEntry {
            id,
            name: name.into(),
            key: "ABCD EFGH".into(),
            gain_percent: 150,
            you: id == 1,
            self_muted: true,
            deafened: id == 2,
            admin_muted: false,
            sends: true,
            receives: false,
            test_source: id == 3,
        }
    }

    fn room_messages() -> Vec<ControlMessage> {
        let admin = |op| ControlMessage::Admin(AdminRequest { request: 9, token: "secret".into(), op });
        vec![
            ControlMessage::Roster(vec![entry(1, "alice"), entry(2, "bob"), entry(3, "test")]),
            ControlMessage::Roster(vec![]),
            ControlMessage::Left { id: 7, reason: ByeReason::Kicked },
            ControlMessage::Talking(vec![1, 2, 0xffff_ffff]),
            ControlMessage::Talking(vec![]),
            ControlMessage::Volume { target: 7, percent: 25 },
            ControlMessage::Levels(vec![(1, 0), (0xffff_fffe, 100)]),
            ControlMessage::Levels(vec![]),
            ControlMessage::ReportEvery(3000),
            ControlMessage::PasswordStart([5; 48]),
            ControlMessage::PasswordReply { reply: [6; 32], proof: [7; 32] },
            ControlMessage::PasswordProof([8; 32]),
            admin(AdminOp::LogIn),
            admin(AdminOp::Gain { target: 3, percent: 200 }),
            admin(AdminOp::Mute { target: 4, muted: true }),
            admin(AdminOp::Rename { target: 5, name: "carol".into() }),
            admin(AdminOp::Kick { target: 6 }),
            ControlMessage::AdminResult { request: 9, ok: false, message: "no such participant".into() },
            ControlMessage::Bye { reason: ByeReason::WrongPassword },
            ControlMessage::Bye { reason: ByeReason::Replaced },
        ]
    }

    #[test]
    fn round_trips() {
        for m in [
            hello("alice"),
            hello(""),
            ControlMessage::Mute { muted: true, deafened: false },
            ControlMessage::Mute { muted: true, deafened: true },
            ControlMessage::Mute { muted: false, deafened: false },
            ControlMessage::Bye { reason: ByeReason::Busy },
            ControlMessage::Bye { reason: ByeReason::Other(99) },
            ControlMessage::Unknown(0x7f),
        ]
        .into_iter()
        .chain(room_messages())
        {
            let mut b = Vec::new();
            m.encode(&mut b);
            assert_eq!(ControlMessage::parse(&b).unwrap(), m);
            // Extra trailing bytes from a newer version are ignored.
            b.extend_from_slice(&[1, 2, 3]);
            assert_eq!(ControlMessage::parse(&b).unwrap(), m);
        }
    }

    #[test]
    fn a_mute_without_the_deafened_byte_is_not_deafened() {
        assert_eq!(
            ControlMessage::parse(&[MSG_MUTE, 1]).unwrap(),
            ControlMessage::Mute { muted: true, deafened: false }
        );
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
        for m in std::iter::once(hello("carol")).chain(room_messages()) {
            let mut b = Vec::new();
            m.encode(&mut b);
            for len in 0..b.len() {
                let r = ControlMessage::parse(&b[..len]);
                // An empty roster or talking list ends right after its count.
                let complete_prefix = matches!(&r, Ok(x) if *x == m);
                assert!(r.is_err() || complete_prefix, "{m:?} cut at {len}: {r:?}");
            }
        }
    }

    #[test]
    fn long_lists_are_capped_and_fit_a_datagram() {
        let many: Vec<RosterEntry> = (0..40).map(|i| entry(i, &"x".repeat(64))).collect();
        let mut b = Vec::new();
        ControlMessage::Roster(many).encode(&mut b);
        let ControlMessage::Roster(got) = ControlMessage::parse(&b).unwrap() else { panic!() };
        assert_eq!(got.len(), MAX_ROSTER_ENTRIES);
        assert!(b.len() < 1200, "{}", b.len());
        let mut b = Vec::new();
        ControlMessage::Talking((0..500).collect()).encode(&mut b);
        let ControlMessage::Talking(got) = ControlMessage::parse(&b).unwrap() else { panic!() };
        assert_eq!(got.len(), MAX_TALKING);
        // A count above the cap is refused rather than trusted.
        assert!(ControlMessage::parse(&[MSG_TALKING, 200]).is_err());
        assert!(ControlMessage::parse(&[MSG_LEVELS, 200]).is_err());
        let mut b = Vec::new();
        ControlMessage::Levels((0..500).map(|i| (i, 50)).collect()).encode(&mut b);
        let ControlMessage::Levels(got) = ControlMessage::parse(&b).unwrap() else { panic!() };
        assert_eq!(got.len(), MAX_TALKING);
        // A personal volume above 200 % from the wire is clamped.
        let ControlMessage::Volume { percent, .. } =
            ControlMessage::parse(&[MSG_VOLUME, 0, 0, 0, 1, 0xff, 0xff]).unwrap()
        else {
            panic!()
        };
        assert_eq!(percent, MAX_GAIN_PERCENT);
        // Gains above 200 % from the wire are clamped.
        let mut e = entry(1, "a");
        e.gain_percent = 999;
        let mut b = Vec::new();
        ControlMessage::Roster(vec![e]).encode(&mut b);
        let ControlMessage::Roster(got) = ControlMessage::parse(&b).unwrap() else { panic!() };
        assert_eq!(got[0].gain_percent, MAX_GAIN_PERCENT);
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ControlMessage::parse(&data);
        }
    }
}
