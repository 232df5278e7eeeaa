//! Hostile input: every datagram type at every length, bit flips, and random bytes go
//! into the host endpoint, an established session and a waiting joiner. Nothing may
//! panic, nothing may be answered except a well-formed handshake, and no answer may be
//! larger than what provoked it.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use viz_proto::loopback;
use viz_proto::{HostKeyPolicy, Initiator, Input, Keypair, MAX_DATAGRAM, MediaFrame, SessionConfig};

/// One genuine datagram of every kind the protocol has.
fn samples() -> Vec<Vec<u8>> {
    let now = Instant::now();
    let mut pair = loopback::connect(now, 1, SessionConfig::default());
    let mut out = vec![0u8; MAX_DATAGRAM];
    let mut all = Vec::new();
    let joiner_key = Keypair::from_private([9; 32]);
    let mut init = Initiator::new(&joiner_key, HostKeyPolicy::FirstUse, 7, now, SessionConfig::default()).unwrap();
    all.push(init.poll_transmit(now).unwrap().to_vec());
    let media = MediaFrame::new(1, 2, 3, true, &[&[0x78, 1, 2], &[0x78, 3, 4, 5]]).unwrap();
    let n = pair.joiner.send_media(now, &media, &mut out).unwrap();
    all.push(out[..n].to_vec());
    pair.joiner.send_control(viz_proto::ControlMessage::Mute { muted: true, deafened: false });
    while let Some(n) = pair.joiner.poll_transmit(now, &mut out) {
        all.push(out[..n].to_vec());
    }
    let later = now + Duration::from_secs(2);
    while let Some(n) = pair.joiner.poll_transmit(later, &mut out) {
        all.push(out[..n].to_vec());
    }
    all
}

#[test]
fn truncations_and_bit_flips_of_every_datagram_type() {
    let now = Instant::now();
    let mut pair = loopback::connect(now, 2, SessionConfig::default());
    let (mut plain, mut reply) = (vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM]);
    for sample in samples() {
        for len in 0..=sample.len() {
            let d = &sample[..len];
            match pair.host.handle_datagram(now, 0, d, &mut plain, &mut reply) {
                Input::Reply(n) => assert!(n <= d.len(), "answer of {n} bytes to {len}"),
                Input::Accepted(_) => panic!("accepted a truncated datagram"),
                _ => {}
            }
            let _ = pair.joiner.handle_datagram(now, d, &mut plain);
        }
        for bit in 0..sample.len() * 8 {
            let mut d = sample.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            if let Input::Reply(n) = pair.host.handle_datagram(now, 0, &d, &mut plain, &mut reply) {
                assert!(n <= d.len());
            }
            assert!(pair.joiner.handle_datagram(now, &d, &mut plain).is_err(), "a flipped datagram was accepted");
        }
    }
    assert!(pair.host.session(pair.session_id).unwrap().is_open());
}

#[test]
fn oversized_datagrams_are_dropped() {
    let now = Instant::now();
    let mut pair = loopback::connect(now, 3, SessionConfig::default());
    let (mut plain, mut reply) = (vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM]);
    for ty in 0..=6u8 {
        let mut d = vec![0u8; 65_535];
        d[0] = ty;
        assert!(matches!(pair.host.handle_datagram(now, 0, &d, &mut plain, &mut reply), Input::Dropped(_)));
        assert!(pair.joiner.handle_datagram(now, &d, &mut plain).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_or_amplify(data in proptest::collection::vec(any::<u8>(), 0..1600), ty in 0u8..8) {
        let now = Instant::now();
        let mut pair = loopback::connect(now, 4, SessionConfig::default());
        let (mut plain, mut reply) = (vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM]);
        let mut d = data;
        if let Some(b) = d.first_mut() { *b = ty; }
        match pair.host.handle_datagram(now, 0, &d, &mut plain, &mut reply) {
            Input::Reply(n) => prop_assert!(n <= d.len()),
            Input::Accepted(_) | Input::Media(..) => prop_assert!(false, "random bytes authenticated"),
            _ => {}
        }
        prop_assert!(pair.joiner.handle_datagram(now, &d, &mut plain).is_err());
        let key = Keypair::from_private([5; 32]);
        let mut init = Initiator::new(&key, HostKeyPolicy::FirstUse, 1, now, SessionConfig::default()).unwrap();
        prop_assert!(matches!(init.handle_datagram(now, &d), Ok(None)));
    }
}

// The cargo-fuzz targets' entry points, on random input, in the normal suite.
proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_entry_datagram(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        viz_proto::fuzzing::datagram(&data);
    }

    #[test]
    fn fuzz_entry_payload(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        viz_proto::fuzzing::payload(&data);
    }

    #[test]
    fn fuzz_entry_rtp(data in proptest::collection::vec(any::<u8>(), 0..300), first in 0x80u8..0xc0, second: u8) {
        viz_proto::fuzzing::rtp(&data);
        // Mostly valid-looking headers, so the deeper paths are reached too.
        let mut d = data.clone();
        d.splice(0..0, [first, second]);
        viz_proto::fuzzing::rtp(&d);
    }

    #[test]
    fn fuzz_entry_browser_control(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        text in r#"\{"type":"(hello|mute|report)"[ -~]{0,80}"#,
    ) {
        viz_proto::fuzzing::browser_control(&data);
        viz_proto::fuzzing::browser_control(text.as_bytes());
    }

    #[test]
    fn fuzz_entry_identity(data in proptest::collection::vec(any::<u8>(), 0..200), text in "[a-z2-7 -]{0,40}") {
        viz_proto::fuzzing::identity(&data);
        viz_proto::fuzzing::identity(text.as_bytes());
        viz_proto::fuzzing::identity(format!("viz-identity-v1\n{text}").as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_entry_session(data in proptest::collection::vec(any::<u8>(), 0..4000)) {
        viz_proto::fuzzing::session(&data);
    }
}
