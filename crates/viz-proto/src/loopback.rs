//! Test support: a handshake completed in memory, without a network: a host
//! [`Endpoint`] with one joiner's session, and the joiner's [`Connection`]. For tests,
//! fuzz targets and benchmarks that need an established session to feed. It uses fixed
//! keys and never sees outside input, so its `expect`s state invariants of the
//! protocol, not error handling.

use std::time::Instant;

use crate::endpoint::{Endpoint, Input};
use crate::handshake::{HostKeyPolicy, Initiator};
use crate::identity::Keypair;
use crate::session::{Connection, SessionConfig};
use crate::wire::MAX_DATAGRAM;

/// An established pair: the host endpoint (with the session id) and the joiner.
pub struct Pair {
    pub host: Endpoint<u8>,
    pub session_id: u32,
    pub joiner: Connection,
}

/// Runs the three handshake messages through memory. Deterministic keys from `seed`.
pub fn connect(now: Instant, seed: u8, config: SessionConfig) -> Pair {
    let host_key = Keypair::from_private([seed ^ 0x11; 32]);
    let joiner_key = Keypair::from_private([seed ^ 0x22; 32]);
    let mut host = Endpoint::new(host_key, config, u64::from(seed));
    let mut initiator = Initiator::new(&joiner_key, HostKeyPolicy::FirstUse, 0x0102_0304, now, config)
        .expect("handshake setup with valid keys");
    let (mut plain, mut reply) = (vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM]);
    let init = initiator.poll_transmit(now).expect("init due at once").to_vec();
    let Input::Reply(n) = host.handle_datagram(now, 0, &init, &mut plain, &mut reply) else {
        unreachable!("a valid init is answered")
    };
    let established = initiator.handle_datagram(now, &reply[..n]).ok().flatten().expect("a valid response completes");
    let mut joiner = established.connection;
    let mut out = vec![0u8; MAX_DATAGRAM];
    let n = joiner.poll_transmit(now, &mut out).expect("final due at once");
    let Input::Accepted(session_id) = host.handle_datagram(now, 0, &out[..n], &mut plain, &mut reply) else {
        unreachable!("a valid final is accepted")
    };
    Pair { host, session_id, joiner }
}
