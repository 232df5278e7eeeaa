//! Return routability before work, under load (after WireGuard's cookie reply, and in
//! the spirit of QUIC's Retry).
//!
//! Answering a HandshakeInit costs the host two Diffie-Hellman operations and a
//! pending-handshake slot, and an Init needs no answer to do harm: a flood from forged
//! addresses fills the table and locks real joiners out. So while many handshakes are
//! pending the host answers an Init without a valid cookie MAC with a
//! [`crate::wire::Datagram::CookieReply`]: a 16-byte cookie, a keyed hash of the source
//! address under a secret that changes every [`ROTATION`]. Only someone who receives at
//! that address learns it; the joiner resends its Init with a MAC under the cookie, and
//! the host, checking one keyed hash, does the handshake's work only for addresses that
//! can receive. A flood from forged addresses costs a hash per datagram and no state.
//!
//! The cookie travels in clear, unlike WireGuard's (which needs the host's public key
//! in advance, and Viz's trust on first use has none): someone who can read traffic to
//! an address can receive there anyway.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use blake2::Blake2sMac;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};

pub const COOKIE_LEN: usize = 16;
/// The MAC at the end of a HandshakeInit (all zero: none).
pub const MAC_LEN: usize = 16;
/// The host's secret changes this often; a cookie is good for up to twice as long.
pub const ROTATION: Duration = Duration::from_secs(120);

pub type Cookie = [u8; COOKIE_LEN];

/// The MAC a joiner puts at the end of its Init: a keyed hash of the Init before it.
pub fn init_mac(cookie: &Cookie, init_without_mac: &[u8]) -> [u8; MAC_LEN] {
    keyed_hash(cookie, &[init_without_mac])
}

fn keyed_hash(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // A 16- or 32-byte key is always a valid BLAKE2s key.
    let Ok(mut h) = <Blake2sMac<U16> as KeyInit>::new_from_slice(key) else { return [0; 16] };
    for p in parts {
        h.update(p);
    }
    h.finalize().into_bytes().into()
}

/// What a cookie is bound to: the source address and port, IPv4 as IPv4-mapped IPv6.
fn subject(source: SocketAddr) -> [u8; 18] {
    let ip = match source.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut s = [0u8; 18];
    s[..16].copy_from_slice(&ip.octets());
    s[16..].copy_from_slice(&source.port().to_be_bytes());
    s
}

/// The host's side: makes cookies and checks the MACs made with them.
pub struct CookieJar {
    current: [u8; 32],
    previous: [u8; 32],
    rotated: Instant,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar").field("rotated", &self.rotated).finish_non_exhaustive()
    }
}

impl CookieJar {
    /// `secret` must be random (a new one per host run).
    pub fn new(secret: [u8; 32], now: Instant) -> Self {
        Self { current: secret, previous: secret, rotated: now }
    }

    /// Whether the current secret is [`ROTATION`] old.
    pub fn rotation_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.rotated) >= ROTATION
    }

    /// Moves to `fresh` (random) as the current secret; the current one stays valid as
    /// the previous.
    pub fn rotate(&mut self, now: Instant, fresh: [u8; 32]) {
        self.previous = self.current;
        self.current = fresh;
        self.rotated = now;
    }

    /// The cookie for `source` now.
    pub fn cookie_for(&self, source: SocketAddr) -> Cookie {
        keyed_hash(&self.current, &[&subject(source)])
    }

    /// Whether `mac` on `init_without_mac` was made with a cookie this jar gave to
    /// `source` (under the current or the previous secret). Constant time per check.
    pub fn verify(&self, source: SocketAddr, init_without_mac: &[u8], mac: &[u8; MAC_LEN]) -> bool {
        let subject = subject(source);
        [&self.current, &self.previous].into_iter().any(|secret| {
            let cookie = keyed_hash(secret, &[&subject]);
            let Ok(mut h) = <Blake2sMac<U16> as KeyInit>::new_from_slice(&cookie) else { return false };
            h.update(init_without_mac);
            h.verify_slice(mac).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_proves_the_address_it_was_sent_to_and_outlives_one_rotation() {
        let t = Instant::now();
        let mut jar = CookieJar::new([7; 32], t);
        let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5001".parse().unwrap();
        let init = [1u8; 100];
        let cookie = jar.cookie_for(a);
        let mac = init_mac(&cookie, &init);
        assert!(jar.verify(a, &init, &mac));
        assert!(!jar.verify(b, &init, &mac), "another port");
        assert!(!jar.verify(a, &[2u8; 100], &mac), "another Init");
        assert!(!jar.verify(a, &init, &[0; MAC_LEN]), "no MAC");
        assert!(!jar.rotation_due(t + ROTATION / 2));
        assert!(jar.rotation_due(t + ROTATION));
        jar.rotate(t + ROTATION, [8; 32]);
        assert!(jar.verify(a, &init, &mac), "the previous secret still counts");
        assert_ne!(jar.cookie_for(a), cookie);
        jar.rotate(t + ROTATION * 2, [9; 32]);
        assert!(!jar.verify(a, &init, &mac), "two rotations later it is stale");
    }
}
