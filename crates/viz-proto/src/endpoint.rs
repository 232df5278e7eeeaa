//! The host's side: answers handshakes and routes datagrams to sessions by receiver
//! index, whatever address they come from.
//!
//! `P` is the runtime's notion of a return path (a UDP socket address, a WebSocket
//! connection id). A session's path follows the newest authenticated datagram, so a
//! joiner whose NAT mapping changes, or who moves from one network to another, keeps
//! its call; nothing unauthenticated can move it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snow::HandshakeState;

use crate::cookie::{CookieJar, MAC_LEN};
use crate::error::{DropCounters, DropReason};
use crate::handshake;
use crate::identity::Keypair;
use crate::payload::MediaFrame;
use crate::session::{Connection, Received, Role, SessionConfig};
use crate::wire::Datagram;

/// A pending handshake is forgotten after this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many handshakes are pending at once; beyond it Inits are dropped.
pub const MAX_PENDING: usize = 1024;
/// With this many pending, an Init from a datagram address must carry a cookie MAC
/// (see [`crate::cookie`]); a real joiner's costs one more round trip.
pub const UNDER_LOAD: usize = 64;
/// Pending handshakes per source (an IPv4 address, an IPv6 /64, a connection) while
/// under load: one that can receive cookies still cannot hold the table. (Below
/// [`UNDER_LOAD`] a burst of joins from one place, a LAN behind one NAT or a load
/// test, is not held back.)
pub const MAX_PENDING_PER_SOURCE: usize = 8;

/// Where a datagram came from, as far as cookies and limits are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A datagram's source address: anyone can write it, so it proves nothing until a
    /// cookie sent there comes back.
    Address(SocketAddr),
    /// A connection (TCP, under a WebSocket) that showed by connecting that its peer
    /// receives where it sends from; pending handshakes are counted per connection.
    Connection(u64),
}

/// A runtime's return path, which knows its [`Source`].
pub trait ReturnPath: Copy + PartialEq + std::fmt::Debug {
    fn source(&self) -> Source;
}

/// The in-memory pair of [`crate::loopback`] and the simulations: numbered paths.
impl ReturnPath for u8 {
    fn source(&self) -> Source {
        Source::Connection(u64::from(*self))
    }
}

/// What pending handshakes are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// An IPv4 address (as mapped IPv6) or an IPv6 /64: one host's share.
    Network(u128),
    Connection(u64),
}

fn group(source: Source) -> Group {
    match source {
        Source::Address(a) => {
            let bits = match a.ip() {
                IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => u128::from(v4.to_ipv6_mapped()),
                    None => u128::from(v6) & !u128::from(u64::MAX),
                },
            };
            Group::Network(bits)
        }
        Source::Connection(id) => Group::Connection(id),
    }
}

struct Pending {
    state: HandshakeState,
    initiator_index: u32,
    ephemeral: [u8; 32],
    response: Vec<u8>,
    created: Instant,
    group: Group,
}

struct Slot<P> {
    connection: Connection,
    path: P,
}

/// What an incoming datagram did.
// Returned by value once per datagram: boxing the media view would allocate per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input<'b> {
    /// Send `reply[..n]` back on the path it came from (a handshake response).
    Reply(usize),
    /// A joiner completed the handshake; a session with this id now exists.
    Accepted(u32),
    /// Media from session `id`.
    Media(u32, MediaFrame<'b>),
    /// Something for session `id` that it handled itself; poll it.
    Handled(u32),
    Dropped(DropReason),
}

pub struct Endpoint<P> {
    keypair: Keypair,
    config: SessionConfig,
    rng: StdRng,
    pending: HashMap<u32, Pending>,
    pending_by_init: HashMap<(u32, [u8; 32]), u32>,
    sessions: HashMap<u32, Slot<P>>,
    drops: DropCounters,
    cookies: CookieJar,
    cookie_replies: u64,
}

impl<P> std::fmt::Debug for Endpoint<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("identity", &self.keypair.fingerprint())
            .field("pending", &self.pending.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl<P: ReturnPath> Endpoint<P> {
    /// `seed` feeds the generator of session indices (random in production, fixed in
    /// tests); Noise draws its own ephemeral keys from the OS.
    pub fn new(keypair: Keypair, config: SessionConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let cookies = CookieJar::new(rng.random(), Instant::now());
        Self {
            keypair,
            config,
            rng,
            pending: HashMap::new(),
            pending_by_init: HashMap::new(),
            sessions: HashMap::new(),
            drops: DropCounters::default(),
            cookies,
            cookie_replies: 0,
        }
    }

    /// Inits answered with a cookie instead of a handshake (the host was under load).
    pub fn cookie_replies(&self) -> u64 {
        self.cookie_replies
    }

    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// Datagrams dropped before reaching a session (sessions count their own).
    pub fn drops(&self) -> DropCounters {
        self.drops
    }

    pub fn pending_handshakes(&self) -> usize {
        self.pending.len()
    }

    pub fn session_ids(&self) -> Vec<u32> {
        self.sessions.keys().copied().collect()
    }

    pub fn session(&self, id: u32) -> Option<&Connection> {
        self.sessions.get(&id).map(|s| &s.connection)
    }

    pub fn session_mut(&mut self, id: u32) -> Option<&mut Connection> {
        self.sessions.get_mut(&id).map(|s| &mut s.connection)
    }

    /// Where replies for session `id` go now.
    pub fn path(&self, id: u32) -> Option<P> {
        self.sessions.get(&id).map(|s| s.path)
    }

    pub fn remove(&mut self, id: u32) -> Option<Connection> {
        self.sessions.remove(&id).map(|s| s.connection)
    }

    fn fresh_index(&mut self) -> u32 {
        loop {
            let i: u32 = self.rng.random();
            if i != 0 && !self.pending.contains_key(&i) && !self.sessions.contains_key(&i) {
                return i;
            }
        }
    }

    fn drop(&mut self, reason: DropReason) -> Input<'static> {
        self.drops.count(reason);
        Input::Dropped(reason)
    }

    /// Handles one datagram from `path`. `plain` must hold [`crate::wire::MAX_DATAGRAM`]
    /// bytes (decrypted payloads), `reply` too (handshake responses).
    pub fn handle_datagram<'b>(
        &mut self,
        now: Instant,
        path: P,
        data: &[u8],
        plain: &'b mut [u8],
        reply: &mut [u8],
    ) -> Input<'b> {
        let datagram = match Datagram::parse(data) {
            Ok(d) => d,
            Err(reason) => return self.drop(reason),
        };
        match datagram {
            Datagram::HandshakeInit { sender, noise, mac, signed } => {
                self.on_init(now, path.source(), InitFields { sender, noise, mac, signed }, data.len(), reply)
            }
            Datagram::CookieReply { .. } => self.drop(DropReason::UnknownType),
            Datagram::HandshakeFinal { sender, receiver, noise } => self.on_final(now, path, sender, receiver, noise),
            Datagram::HandshakeResp { .. } => self.drop(DropReason::UnknownType),
            Datagram::Transport { receiver, .. } => {
                let Some(slot) = self.sessions.get_mut(&receiver) else {
                    return self.drop(DropReason::UnknownReceiver);
                };
                match slot.connection.handle_datagram(now, data, plain) {
                    Ok(received) => {
                        if slot.connection.last_was_newest() && slot.path != path {
                            slot.path = path;
                        }
                        match received {
                            Received::Media(m) => Input::Media(receiver, m),
                            Received::Other => Input::Handled(receiver),
                        }
                    }
                    Err(reason) => Input::Dropped(reason),
                }
            }
        }
    }

    fn on_init(
        &mut self,
        now: Instant,
        source: Source,
        init: InitFields<'_>,
        received_len: usize,
        reply: &mut [u8],
    ) -> Input<'static> {
        let InitFields { sender, noise, mac, signed } = init;
        let Some(ephemeral) = noise.get(..32).and_then(|e| <[u8; 32]>::try_from(e).ok()) else {
            return self.drop(DropReason::Malformed);
        };
        // A retransmitted Init gets the same answer, not a second handshake.
        if let Some(p) = self.pending_by_init.get(&(sender, ephemeral)).and_then(|i| self.pending.get(i)) {
            return Self::reply_with(&p.response, received_len, reply);
        }
        self.expire_handshakes(now);
        if self.cookies.rotation_due(now) {
            let fresh = self.rng.random();
            self.cookies.rotate(now, fresh);
        }
        // Under load, an address must show it receives before it costs a handshake.
        if self.pending.len() >= UNDER_LOAD
            && let Source::Address(addr) = source
            && !self.cookies.verify(addr, signed, &mac)
        {
            self.cookie_replies += 1;
            let n = crate::wire::write_cookie_reply(reply, sender, &self.cookies.cookie_for(addr));
            return Input::Reply(n);
        }
        if self.pending.len() >= MAX_PENDING {
            return self.drop(DropReason::Busy);
        }
        let group = group(source);
        if self.pending.len() >= UNDER_LOAD
            && self.pending.values().filter(|p| p.group == group).count() >= MAX_PENDING_PER_SOURCE
        {
            return self.drop(DropReason::Busy);
        }
        let local = self.fresh_index();
        let response = match handshake::respond(&self.keypair, noise, sender, local) {
            Ok(r) => r,
            Err(reason) => return self.drop(reason),
        };
        let out = Self::reply_with(&response.datagram, received_len, reply);
        self.pending_by_init.insert((sender, ephemeral), local);
        self.pending.insert(
            local,
            Pending {
                state: response.state,
                initiator_index: sender,
                ephemeral,
                response: response.datagram,
                created: now,
                group,
            },
        );
        out
    }

    /// Never answers with more bytes than were received (no amplification).
    fn reply_with(response: &[u8], received_len: usize, reply: &mut [u8]) -> Input<'static> {
        if response.len() > received_len || response.len() > reply.len() {
            return Input::Dropped(DropReason::Malformed);
        }
        reply[..response.len()].copy_from_slice(response);
        Input::Reply(response.len())
    }

    fn on_final(&mut self, now: Instant, path: P, sender: u32, receiver: u32, noise: &[u8]) -> Input<'static> {
        if self.sessions.contains_key(&receiver) {
            // The joiner resends its Final until it hears from us; we already have it.
            return self.drop(DropReason::Handshake);
        }
        let Some(mut pending) = self.pending.remove(&receiver) else {
            return self.drop(DropReason::UnknownReceiver);
        };
        if pending.initiator_index != sender {
            self.pending.insert(receiver, pending);
            return self.drop(DropReason::Handshake);
        }
        match handshake::complete(&mut pending.state, noise) {
            Ok((keys, remote, binding)) => {
                self.pending_by_init.remove(&(pending.initiator_index, pending.ephemeral));
                let connection =
                    Connection::new(Role::Responder, receiver, sender, keys, remote, binding, now, self.config, None);
                self.sessions.insert(receiver, Slot { connection, path });
                Input::Accepted(receiver)
            }
            Err(reason) => {
                // A forged Final must not destroy the genuine joiner's handshake.
                self.pending.insert(receiver, pending);
                self.drop(reason)
            }
        }
    }

    /// Forgets handshakes that did not finish in time. [`Endpoint::handle_timeout`]
    /// does this too; a caller that runs each session's timers itself calls this.
    pub fn expire_handshakes(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|_, p| now.saturating_duration_since(p.created) < HANDSHAKE_TIMEOUT);
        if self.pending.len() != before {
            let pending = &self.pending;
            self.pending_by_init.retain(|_, idx| pending.contains_key(idx));
        }
    }

    /// Earliest deadline among sessions and pending handshakes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sessions = self.sessions.values().filter_map(|s| s.connection.poll_timeout()).min();
        let handshakes = self.pending.values().map(|p| p.created + HANDSHAKE_TIMEOUT).min();
        [sessions, handshakes].into_iter().flatten().min()
    }

    /// Runs timers of every session and expires stale handshakes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_handshakes(now);
        for slot in self.sessions.values_mut() {
            if slot.connection.poll_timeout().is_some_and(|t| t <= now) {
                slot.connection.handle_timeout(now);
            }
        }
    }
}

/// A HandshakeInit's parts, as [`Datagram::parse`] found them.
struct InitFields<'a> {
    sender: u32,
    noise: &'a [u8],
    mac: [u8; MAC_LEN],
    signed: &'a [u8],
}
