//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the property tests of
//! the normal test suite, so both exercise exactly the same code. Each takes
//! arbitrary bytes and panics only if an invariant is broken.

use std::time::{Duration, Instant};

use crate::control::ControlMessage;
use crate::endpoint::Input;
use crate::handshake::{HostKeyPolicy, Initiator};
use crate::identity::{Fingerprint, Keypair};
use crate::payload::{MediaFrame, Payload};
use crate::session::SessionConfig;
use crate::wire::{self, Datagram, MAX_DATAGRAM};

/// The outer datagram parser.
pub fn datagram(data: &[u8]) {
    let parsed = Datagram::parse(data);
    let peeked = wire::peek_receiver(data);
    if parsed.is_err() {
        assert!(peeked.is_none());
    }
}

/// Decrypted payloads: media, control, acks, reports. A media frame that parses
/// re-encodes to something that parses to the same frame.
pub fn payload(data: &[u8]) {
    if let Ok(Payload::Media(m)) = Payload::parse(data) {
        let mut buf = vec![0u8; m.encoded_len()];
        assert_eq!(m.encode(&mut buf), Some(buf.len()));
        assert_eq!(MediaFrame::parse(&buf), Ok(m));
    }
    // A control message that parses survives a round trip unchanged (what the parser
    // accepts, the encoder can say).
    if let Ok(m) = ControlMessage::parse(data) {
        let mut again = Vec::new();
        m.encode(&mut again);
        assert_eq!(ControlMessage::parse(&again), Ok(m));
    }
}

/// A stream of datagrams (each prefixed by a 2-byte length) thrown at a host with an
/// established session, at that session's joiner and at a joiner still handshaking.
/// Nothing random may authenticate, and no answer may exceed what provoked it.
pub fn session(data: &[u8]) {
    let now = Instant::now();
    let mut pair = crate::loopback::connect(now, 7, SessionConfig::default());
    let key = Keypair::from_private([3; 32]);
    let mut initiator = match Initiator::new(&key, HostKeyPolicy::FirstUse, 99, now, SessionConfig::default()) {
        Ok(i) => i,
        Err(_) => return,
    };
    let (mut plain, mut reply, mut out) = (vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM]);
    let mut rest = data;
    let mut t = now;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let d = &rest[2..2 + len];
        rest = &rest[2 + len..];
        t += Duration::from_millis(7);
        match pair.host.handle_datagram(t, 0, d, &mut plain, &mut reply) {
            Input::Reply(n) => assert!(n <= d.len(), "answer larger than the request"),
            Input::Media(..) => panic!("forged media authenticated"),
            _ => {}
        }
        assert!(pair.joiner.handle_datagram(t, d, &mut plain).is_err(), "forged datagram accepted by the joiner");
        assert!(matches!(initiator.handle_datagram(t, d), Ok(None)), "random bytes completed a handshake");
        pair.host.handle_timeout(t);
        pair.joiner.handle_timeout(t);
        while pair.joiner.poll_transmit(t, &mut out).is_some() {}
    }
}

/// Identity files and fingerprints as typed by people.
pub fn identity(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = Keypair::from_file_contents(&text) {
        let again = Keypair::from_file_contents(&k.to_file_contents()).expect("a saved key reloads");
        assert_eq!(again.public(), k.public());
    }
    if let Some(fp) = Fingerprint::parse(&text) {
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
    }
}

/// A browser's control message: any text parses to a message or an error, never a
/// panic, and nothing longer than the limit is accepted.
pub fn browser_control(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = crate::browser::BrowserIn::parse(text);
    assert!(parsed.is_err() || text.len() <= crate::browser::MAX_BROWSER_TEXT);
}

/// Plain RTP and RTCP as they arrive on the room's RTP ports. Whatever parses is fully
/// accounted for (header, payload and padding add up to the datagram), re-writes to
/// the same header, and feeds the sequence bookkeeping without breaking its counts.
pub fn rtp(data: &[u8]) {
    use crate::rtcp::{RtcpCompound, RtcpPacket};
    use crate::rtp::{RtpPacket, SequenceState};
    match RtpPacket::parse(data) {
        Ok(p) => {
            assert_eq!(p.header_len() + p.payload.len() + usize::from(p.padding), data.len());
            let mut out = vec![0u8; data.len() + 12];
            let n = p.header.write(p.payload, &mut out).expect("a parsed header re-writes");
            let again = RtpPacket::parse(&out[..n]).expect("a written packet parses");
            assert_eq!((again.header, again.payload), (p.header, p.payload));
        }
        Err(crate::rtp::RtpError::Rtcp) => assert!(crate::rtp::is_rtcp(data)),
        Err(_) => {}
    }
    if let Ok(c) = RtcpCompound::parse(data) {
        for packet in c.packets() {
            if let RtcpPacket::SourceDescription(items) = packet {
                for (_, _, text) in items {
                    assert!(text.len() <= 255);
                }
            }
        }
    }
    // The bytes as a run of sequence numbers: counts stay consistent.
    let mut seq = SequenceState::default();
    for pair in data.chunks_exact(2) {
        let verdict = seq.update(u16::from_be_bytes([pair[0], pair[1]]));
        if verdict != crate::rtp::SeqVerdict::Probation {
            assert!(seq.received() >= 1 && seq.expected() >= 1, "{verdict:?} {seq:?}");
        }
        let loss = seq.loss_since_last();
        assert!((0.0..=1.0).contains(&loss));
    }
}
