//! Outer datagram formats (what crosses UDP, or one WebSocket message).
//!
//! ```text
//! HandshakeInit   0x01 | sender u32 | noise_len u16 | noise msg 1 | zero padding | mac [16]
//! HandshakeResp   0x02 | sender u32 | receiver u32 | noise msg 2
//! HandshakeFinal  0x03 | sender u32 | receiver u32 | noise msg 3
//! Transport       0x04/0x05 | receiver u32 | counter u64 | AEAD(payload) incl. 16-byte tag
//! CookieReply     0x06 | receiver u32 | cookie [16]
//! ```
//!
//! An Init's last 16 bytes are a MAC under a cookie the host sent (all zero without
//! one); see [`crate::cookie`].
//!
//! All integers are big-endian. The transport header (13 bytes) is the AEAD's associated
//! data, so it cannot be altered without failing authentication; the low bit of its type
//! is the key phase (see [`crate::crypto`]). A HandshakeInit is padded to
//! [`INIT_MIN_LEN`], which is larger than any HandshakeResp, so a forged source address
//! never turns Viz into an amplifier: no answer is larger than what was received.

use crate::cookie::{COOKIE_LEN, Cookie, MAC_LEN};
use crate::error::DropReason;

pub const TYPE_INIT: u8 = 0x01;
pub const TYPE_RESP: u8 = 0x02;
pub const TYPE_FINAL: u8 = 0x03;
pub const TYPE_TRANSPORT_PHASE0: u8 = 0x04;
pub const TYPE_TRANSPORT_PHASE1: u8 = 0x05;
pub const TYPE_COOKIE: u8 = 0x06;
/// A CookieReply's length.
pub const COOKIE_REPLY_LEN: usize = 1 + 4 + COOKIE_LEN;

/// Transport header length: type, receiver index, counter.
pub const TRANSPORT_HEADER_LEN: usize = 1 + 4 + 8;
/// Poly1305 tag length (RFC 8439 §2.5).
pub const TAG_LEN: usize = 16;
/// A HandshakeInit is padded to at least this size and smaller ones are ignored.
pub const INIT_MIN_LEN: usize = 192;
/// Largest datagram Viz sends or accepts: 1500-byte Ethernet MTU minus IPv6 (40) and
/// UDP (8) headers.
pub const MAX_DATAGRAM: usize = 1452;
/// Largest plaintext that fits in one transport datagram.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - TRANSPORT_HEADER_LEN - TAG_LEN;

const INIT_HEADER_LEN: usize = 1 + 4 + 2;
const RESP_HEADER_LEN: usize = 1 + 4 + 4;

/// A parsed datagram borrowing from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// `mac` is all zero when the joiner has no cookie; `signed` is what it covers.
    HandshakeInit {
        sender: u32,
        noise: &'a [u8],
        mac: [u8; MAC_LEN],
        signed: &'a [u8],
    },
    HandshakeResp {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
    },
    HandshakeFinal {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
    },
    Transport {
        phase: u8,
        receiver: u32,
        counter: u64,
        header: &'a [u8],
        ciphertext: &'a [u8],
    },
    CookieReply {
        receiver: u32,
        cookie: Cookie,
    },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Datagram<'a> {
    /// Parses the outer framing. Never panics, whatever the input.
    pub fn parse(b: &'a [u8]) -> Result<Self, DropReason> {
        if b.len() > MAX_DATAGRAM {
            return Err(DropReason::TooLong);
        }
        let Some(&ty) = b.first() else { return Err(DropReason::TooShort) };
        match ty {
            TYPE_INIT => {
                if b.len() < INIT_MIN_LEN {
                    return Err(DropReason::TooShort);
                }
                let sender = u32_at(b, 1);
                let noise_len = usize::from(u16::from_be_bytes([b[5], b[6]]));
                let (signed, mac) = b.split_at(b.len() - MAC_LEN);
                let noise = signed.get(INIT_HEADER_LEN..INIT_HEADER_LEN + noise_len).ok_or(DropReason::Malformed)?;
                let mac = mac.try_into().map_err(|_| DropReason::Malformed)?;
                Ok(Self::HandshakeInit { sender, noise, mac, signed })
            }
            TYPE_RESP | TYPE_FINAL => {
                if b.len() <= RESP_HEADER_LEN {
                    return Err(DropReason::TooShort);
                }
                let (sender, receiver, noise) = (u32_at(b, 1), u32_at(b, 5), &b[RESP_HEADER_LEN..]);
                Ok(if ty == TYPE_RESP {
                    Self::HandshakeResp { sender, receiver, noise }
                } else {
                    Self::HandshakeFinal { sender, receiver, noise }
                })
            }
            TYPE_TRANSPORT_PHASE0 | TYPE_TRANSPORT_PHASE1 => {
                if b.len() < TRANSPORT_HEADER_LEN + TAG_LEN {
                    return Err(DropReason::TooShort);
                }
                let counter = u64::from_be_bytes(b[5..13].try_into().map_err(|_| DropReason::Malformed)?);
                Ok(Self::Transport {
                    phase: ty & 1,
                    receiver: u32_at(b, 1),
                    counter,
                    header: &b[..TRANSPORT_HEADER_LEN],
                    ciphertext: &b[TRANSPORT_HEADER_LEN..],
                })
            }
            TYPE_COOKIE => {
                if b.len() != COOKIE_REPLY_LEN {
                    return Err(DropReason::Malformed);
                }
                let cookie = b[5..].try_into().map_err(|_| DropReason::Malformed)?;
                Ok(Self::CookieReply { receiver: u32_at(b, 1), cookie })
            }
            _ => Err(DropReason::UnknownType),
        }
    }
}

/// Writes a padded HandshakeInit with an all-zero MAC; returns its length.
pub fn write_init(out: &mut [u8], sender: u32, noise: &[u8]) -> usize {
    let len = (INIT_HEADER_LEN + noise.len() + MAC_LEN).max(INIT_MIN_LEN);
    let out = &mut out[..len];
    out.fill(0);
    out[0] = TYPE_INIT;
    out[1..5].copy_from_slice(&sender.to_be_bytes());
    out[5..7].copy_from_slice(&(noise.len() as u16).to_be_bytes());
    out[INIT_HEADER_LEN..INIT_HEADER_LEN + noise.len()].copy_from_slice(noise);
    len
}

/// Puts the MAC under `cookie` at the end of a written Init.
pub fn sign_init(init: &mut [u8], cookie: &Cookie) {
    let (signed, mac) = init.split_at_mut(init.len() - MAC_LEN);
    mac.copy_from_slice(&crate::cookie::init_mac(cookie, signed));
}

/// Writes a CookieReply (shorter than any Init it answers); returns its length.
pub fn write_cookie_reply(out: &mut [u8], receiver: u32, cookie: &Cookie) -> usize {
    out[0] = TYPE_COOKIE;
    out[1..5].copy_from_slice(&receiver.to_be_bytes());
    out[5..COOKIE_REPLY_LEN].copy_from_slice(cookie);
    COOKIE_REPLY_LEN
}

/// Writes a HandshakeResp or HandshakeFinal; returns its length.
pub fn write_resp_or_final(out: &mut [u8], ty: u8, sender: u32, receiver: u32, noise: &[u8]) -> usize {
    out[0] = ty;
    out[1..5].copy_from_slice(&sender.to_be_bytes());
    out[5..9].copy_from_slice(&receiver.to_be_bytes());
    out[RESP_HEADER_LEN..RESP_HEADER_LEN + noise.len()].copy_from_slice(noise);
    RESP_HEADER_LEN + noise.len()
}

/// Writes a transport header into `out[..13]`.
pub fn write_transport_header(out: &mut [u8], phase: u8, receiver: u32, counter: u64) {
    out[0] = TYPE_TRANSPORT_PHASE0 | (phase & 1);
    out[1..5].copy_from_slice(&receiver.to_be_bytes());
    out[5..13].copy_from_slice(&counter.to_be_bytes());
}

/// The receiver index of a transport or handshake-reply datagram, without full parsing,
/// for runtimes that route datagrams to sessions.
pub fn peek_receiver(b: &[u8]) -> Option<u32> {
    match Datagram::parse(b).ok()? {
        Datagram::Transport { receiver, .. }
        | Datagram::HandshakeResp { receiver, .. }
        | Datagram::HandshakeFinal { receiver, .. } => Some(receiver),
        Datagram::HandshakeInit { .. } | Datagram::CookieReply { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = write_init(&mut buf, 7, &[9; 33]);
        assert_eq!(n, INIT_MIN_LEN);
        let signed = buf[..n - MAC_LEN].to_vec();
        assert_eq!(
            Datagram::parse(&buf[..n]),
            Ok(Datagram::HandshakeInit { sender: 7, noise: &[9; 33], mac: [0; MAC_LEN], signed: &signed })
        );
        sign_init(&mut buf[..n], &[3; COOKIE_LEN]);
        let Ok(Datagram::HandshakeInit { mac, signed, .. }) = Datagram::parse(&buf[..n]) else { panic!() };
        assert_eq!(mac, crate::cookie::init_mac(&[3; COOKIE_LEN], signed));

        let n = write_cookie_reply(&mut buf, 0xabcd, &[4; COOKIE_LEN]);
        assert!(n < INIT_MIN_LEN, "a cookie reply is smaller than the Init it answers");
        assert_eq!(Datagram::parse(&buf[..n]), Ok(Datagram::CookieReply { receiver: 0xabcd, cookie: [4; COOKIE_LEN] }));
        assert_eq!(Datagram::parse(&buf[..n + 1]), Err(DropReason::Malformed));

        let n = write_resp_or_final(&mut buf, TYPE_RESP, 1, 2, &[5; 90]);
        assert_eq!(Datagram::parse(&buf[..n]), Ok(Datagram::HandshakeResp { sender: 1, receiver: 2, noise: &[5; 90] }));
        assert_eq!(peek_receiver(&buf[..n]), Some(2));

        write_transport_header(&mut buf, 1, 0xdead_beef, 0x0102_0304_0506_0708);
        buf[13..29].fill(0xaa);
        match Datagram::parse(&buf[..29]).unwrap() {
            Datagram::Transport { phase, receiver, counter, header, ciphertext } => {
                assert_eq!((phase, receiver, counter), (1, 0xdead_beef, 0x0102_0304_0506_0708));
                assert_eq!(header.len(), 13);
                assert_eq!(ciphertext.len(), 16);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_length_of_every_type_parses_or_errors_without_panic() {
        for ty in 0u8..=255 {
            for len in 0..=MAX_DATAGRAM + 2 {
                let mut b = vec![0xffu8; len];
                if let Some(first) = b.first_mut() {
                    *first = ty;
                }
                let r = Datagram::parse(&b);
                if len > MAX_DATAGRAM {
                    assert_eq!(r, Err(DropReason::TooLong));
                }
                let _ = peek_receiver(&b);
            }
        }
    }

    #[test]
    fn short_inits_are_refused_so_replies_never_amplify() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = write_init(&mut buf, 1, &[1; 32]);
        assert_eq!(Datagram::parse(&buf[..n - 1]), Err(DropReason::TooShort));
        // A noise length pointing past the end is malformed, not a panic.
        buf[5..7].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(Datagram::parse(&buf[..n]), Err(DropReason::Malformed));
    }
}
