//! A HandshakeInit flood against the endpoint, in simulated time: from forged
//! addresses it costs a cookie reply each and no state; a real joiner still gets in;
//! one source cannot hold more than its share of the pending table.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use viz_proto::endpoint::{MAX_PENDING_PER_SOURCE, ReturnPath, Source, UNDER_LOAD};
use viz_proto::wire::{Datagram, MAX_DATAGRAM};
use viz_proto::{Endpoint, HostKeyPolicy, Initiator, Input, Keypair, SessionConfig};

/// A UDP source address, as the server's runtime sees one.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Udp(SocketAddr);

impl ReturnPath for Udp {
    fn source(&self) -> Source {
        Source::Address(self.0)
    }
}

fn addr(i: u32) -> Udp {
    let [a, b, c, d] = (0x0a00_0000u32 + i).to_be_bytes();
    Udp(SocketAddr::from(([a, b, c, d], 40_000)))
}

fn init(now: Instant) -> Initiator {
    Initiator::new(
        &Keypair::generate().unwrap(),
        HostKeyPolicy::FirstUse,
        rand::random::<u32>().max(1),
        now,
        SessionConfig::default(),
    )
    .unwrap()
}

struct Host {
    ep: Endpoint<Udp>,
    plain: Vec<u8>,
    reply: Vec<u8>,
}

impl Host {
    fn new() -> Self {
        Self {
            ep: Endpoint::new(Keypair::generate().unwrap(), SessionConfig::default(), 1),
            plain: vec![0; MAX_DATAGRAM],
            reply: vec![0; MAX_DATAGRAM],
        }
    }

    /// Feeds `data` from `from`; returns the reply, if any.
    fn feed(&mut self, now: Instant, from: Udp, data: &[u8]) -> Option<Vec<u8>> {
        match self.ep.handle_datagram(now, from, data, &mut self.plain, &mut self.reply) {
            Input::Reply(n) => Some(self.reply[..n].to_vec()),
            _ => None,
        }
    }
}

#[test]
fn forged_inits_get_cookies_and_no_state_and_a_real_joiner_gets_in() {
    let t0 = Instant::now();
    let mut host = Host::new();
    // A flood from 1000 addresses that never answer (forged sources).
    let mut cookie_replies = 0;
    for i in 0..1000 {
        let mut attacker = init(t0);
        let data = attacker.poll_transmit(t0).unwrap().to_vec();
        if let Some(r) = host.feed(t0, addr(i), &data) {
            match Datagram::parse(&r) {
                Ok(Datagram::CookieReply { .. }) => cookie_replies += 1,
                Ok(Datagram::HandshakeResp { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    println!("1000 forged Inits: {} pending, {cookie_replies} cookie replies", host.ep.pending_handshakes());
    assert_eq!(host.ep.pending_handshakes(), UNDER_LOAD, "state only until the host is under load");
    assert_eq!(cookie_replies, 1000 - UNDER_LOAD);

    // A real joiner: its first Init gets a cookie, its second (signed) a handshake.
    let me = addr(5000);
    let mut joiner = init(t0);
    let first = joiner.poll_transmit(t0).unwrap().to_vec();
    let cookie = host.feed(t0, me, &first).expect("a cookie reply");
    assert!(cookie.len() < first.len(), "never more bytes back than came in");
    assert!(joiner.handle_datagram(t0, &cookie).unwrap().is_none());
    let t1 = t0 + Duration::from_millis(100);
    let second = joiner.poll_transmit(t1).expect("sent again at once").to_vec();
    let resp = host.feed(t1, me, &second).expect("a handshake response");
    let est = joiner.handle_datagram(t1, &resp).unwrap().expect("established");
    let mut conn = est.connection;
    let mut out = vec![0u8; MAX_DATAGRAM];
    let fin = conn.poll_transmit(t1, &mut out).expect("final");
    let mut plain = vec![0u8; MAX_DATAGRAM];
    let mut reply = vec![0u8; MAX_DATAGRAM];
    let accepted = host.ep.handle_datagram(t1, me, &out[..fin], &mut plain, &mut reply);
    assert!(matches!(accepted, Input::Accepted(_)), "{accepted:?}");

    // The same signed Init from another address is not taken for the joiner's.
    let elsewhere = host
        .feed(t1, addr(6000), &second)
        .map(|r| Datagram::parse(&r).map(|d| matches!(d, Datagram::CookieReply { .. })));
    assert_eq!(elsewhere, Some(Ok(true)), "a cookie is good for its own address only");
}

/// Sends 200 Inits from `from`, answering cookie replies as a real joiner would;
/// returns how many handshakes the host started for it.
fn handshakes_from(host: &mut Host, t0: Instant, from: Udp) -> usize {
    let mut handshakes = 0;
    for _ in 0..200 {
        let mut attacker = init(t0);
        let data = attacker.poll_transmit(t0).unwrap().to_vec();
        let Some(mut r) = host.feed(t0, from, &data) else { continue };
        if let Ok(Datagram::CookieReply { .. }) = Datagram::parse(&r) {
            // This attacker does receive: it signs and sends again.
            attacker.handle_datagram(t0, &r).unwrap();
            let t = t0 + Duration::from_millis(100);
            let signed = attacker.poll_transmit(t).unwrap().to_vec();
            match host.feed(t, from, &signed) {
                Some(again) => r = again,
                None => continue,
            }
        }
        if let Ok(Datagram::HandshakeResp { .. }) = Datagram::parse(&r) {
            handshakes += 1;
        }
    }
    handshakes
}

#[test]
fn one_source_that_receives_cookies_holds_only_its_share() {
    let t0 = Instant::now();
    // Alone, one address starts handshakes until the host is under load, then no more.
    let mut host = Host::new();
    let alone = handshakes_from(&mut host, t0, addr(1));
    // Under load (64 pending from elsewhere), one address gets its share.
    let mut host = Host::new();
    for i in 0..UNDER_LOAD as u32 {
        let data = init(t0).poll_transmit(t0).unwrap().to_vec();
        host.feed(t0, addr(1000 + i), &data);
    }
    assert_eq!(host.ep.pending_handshakes(), UNDER_LOAD);
    let loaded = handshakes_from(&mut host, t0, addr(1));
    println!("200 Inits from one address that answers cookies: {alone} handshakes alone, {loaded} under load");
    assert_eq!(alone, UNDER_LOAD);
    assert_eq!(loaded, MAX_PENDING_PER_SOURCE);
}
