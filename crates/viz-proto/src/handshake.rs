//! The Noise XX handshake (`Noise_XX_25519_ChaChaPoly_BLAKE2s`) through `snow`.
//!
//! ```text
//! initiator (joiner)                         responder (host)
//!   HandshakeInit  -> e                      (padded to 192 bytes, resent every second)
//!                  <- e, ee, s, es           HandshakeResp (cached; resent for a duplicate Init)
//!   HandshakeFinal -> s, se                  (resent every 500 ms until the host's first
//!                                             transport datagram arrives)
//! ```
//!
//! XX hides both static keys from passive observers and authenticates both. The
//! joiner checks the host's static key against a pinned fingerprint or its known-hosts
//! entry *before* sending its own identity; the host learns the joiner's key in the
//! third message. The prologue binds the protocol name and version into the handshake
//! hash, so a peer speaking anything else fails to authenticate message two.

use std::time::{Duration, Instant};

use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

use crate::error::{DropReason, HandshakeError};
use crate::identity::{Fingerprint, Keypair, PublicKey, Sas};
use crate::session::{Connection, Role, SessionConfig, SessionKeys};
use crate::wire::{self, Datagram, MAX_DATAGRAM};

pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
pub const PROTOCOL_VERSION: u8 = 1;
const PROLOGUE: &[u8] = b"viz/1 voice";

/// How often the joiner resends its HandshakeInit while no answer comes.
pub const INIT_RETRY: Duration = Duration::from_secs(1);
/// How often the joiner resends its HandshakeFinal until the host confirms.
pub const FINAL_RETRY: Duration = Duration::from_millis(500);

/// How the joiner decides whether to trust the host's static key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The address carried a fingerprint: the key must match it.
    Pinned(Fingerprint),
    /// The known-hosts file has a key for this address: it must match exactly.
    Known(PublicKey),
    /// Never seen: accept and let the runtime remember it (trust on first use).
    FirstUse,
}

fn builder(keypair: &Keypair) -> Result<Builder<'_>, snow::Error> {
    let params = NOISE_PARAMS.parse()?;
    Builder::new(params).local_private_key(keypair.private_bytes())?.prologue(PROLOGUE)
}

fn noise_err(e: snow::Error) -> HandshakeError {
    HandshakeError::Noise(e.to_string())
}

/// What a finished handshake proves about this one session: the short authentication
/// string people compare, and the Noise handshake hash that later proofs (the room
/// password) bind to, so that they cannot be replayed into another session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub sas: Sas,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding").field("sas", &self.sas).finish_non_exhaustive()
    }
}

/// Session keys and facts from a finished handshake.
pub(crate) fn finish(state: &mut HandshakeState, role: Role) -> Option<(SessionKeys, PublicKey, Binding)> {
    let remote: [u8; 32] = state.get_remote_static()?.try_into().ok()?;
    let hash: [u8; 32] = state.get_handshake_hash().try_into().ok()?;
    let binding = Binding { sas: Sas::from_handshake_hash(&hash), hash };
    let (i2r, r2i) = state.dangerously_get_raw_split();
    let (i2r, r2i) = (Zeroizing::new(i2r), Zeroizing::new(r2i));
    let keys = match role {
        Role::Initiator => SessionKeys { send: i2r, receive: r2i },
        Role::Responder => SessionKeys { send: r2i, receive: i2r },
    };
    Some((keys, PublicKey(remote), binding))
}

/// The joiner's side of the handshake.
pub struct Initiator {
    state: Option<HandshakeState>,
    local_index: u32,
    init: Vec<u8>,
    policy: HostKeyPolicy,
    next_send: Instant,
    /// When the Init last went out: a cookie reply brings the next one forward, but not
    /// closer than [`COOKIE_RESEND_GAP`] (forged replies cannot make us a flood).
    last_sent: Option<Instant>,
    config: SessionConfig,
    drops: crate::error::DropCounters,
}

/// The least time between two Inits when cookie replies ask for them.
pub const COOKIE_RESEND_GAP: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("local_index", &self.local_index)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A completed handshake.
#[derive(Debug)]
pub struct Established {
    pub connection: Connection,
    pub host_key: PublicKey,
    /// The host was not known before (trust on first use): remember `host_key`.
    pub first_use: bool,
}

impl Initiator {
    /// `local_index` should be random; it identifies the session in the host's replies.
    pub fn new(
        keypair: &Keypair,
        policy: HostKeyPolicy,
        local_index: u32,
        now: Instant,
        config: SessionConfig,
    ) -> Result<Self, HandshakeError> {
        let mut state = builder(keypair).and_then(|b| b.build_initiator()).map_err(noise_err)?;
        let mut msg = [0u8; 128];
        let n = state.write_message(&[PROTOCOL_VERSION], &mut msg).map_err(noise_err)?;
        let mut init = vec![0u8; MAX_DATAGRAM];
        let len = wire::write_init(&mut init, local_index, &msg[..n]);
        init.truncate(len);
        Ok(Self {
            state: Some(state),
            local_index,
            init,
            policy,
            next_send: now,
            last_sent: None,
            config,
            drops: Default::default(),
        })
    }

    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    pub fn drops(&self) -> crate::error::DropCounters {
        self.drops
    }

    /// The HandshakeInit when it is due (at once, then every [`INIT_RETRY`]).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        if self.state.is_none() || now < self.next_send {
            return None;
        }
        self.next_send = now + INIT_RETRY;
        self.last_sent = Some(now);
        Some(&self.init)
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_send
    }

    /// Feeds a datagram from the host. `Ok(None)` means it was not a valid answer and
    /// was dropped (garbage, or someone else's); keep waiting. An error ends the attempt.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) -> Result<Option<Established>, HandshakeError> {
        let (sender, noise) = match Datagram::parse(data) {
            Ok(Datagram::HandshakeResp { sender, receiver, noise }) if receiver == self.local_index => (sender, noise),
            Ok(Datagram::CookieReply { receiver, cookie }) if receiver == self.local_index => {
                // The host is busy and wants to see that we receive here: sign the
                // Init with its cookie and send it again soon.
                wire::sign_init(&mut self.init, &cookie);
                let soonest = self.last_sent.map_or(now, |t| t + COOKIE_RESEND_GAP).max(now);
                self.next_send = self.next_send.min(soonest);
                return Ok(None);
            }
            Ok(_) => {
                self.drops.count(DropReason::UnknownReceiver);
                return Ok(None);
            }
            Err(reason) => {
                self.drops.count(reason);
                return Ok(None);
            }
        };
        let Some(mut state) = self.state.take() else { return Ok(None) };
        let mut payload = [0u8; MAX_DATAGRAM];
        let n = match state.read_message(noise, &mut payload) {
            Ok(n) => n,
            Err(_) => {
                // Not from the host we are talking to (or corrupted): keep waiting for
                // the genuine answer with a fresh copy of our state.
                self.drops.count(DropReason::Handshake);
                self.state = Some(state);
                return Ok(None);
            }
        };
        let version = payload[..n].first().copied().unwrap_or(0);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version(version, PROTOCOL_VERSION));
        }
        let presented: [u8; 32] = state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| HandshakeError::Noise("host sent no static key".into()))?;
        let presented = PublicKey(presented);
        let first_use = match &self.policy {
            HostKeyPolicy::Pinned(fp) if *fp != presented.fingerprint() => {
                return Err(HandshakeError::HostKeyMismatch {
                    expected: fp.clone(),
                    presented: presented.fingerprint(),
                });
            }
            HostKeyPolicy::Known(key) if *key != presented => {
                return Err(HandshakeError::HostKeyMismatch {
                    expected: key.fingerprint(),
                    presented: presented.fingerprint(),
                });
            }
            HostKeyPolicy::FirstUse => true,
            _ => false,
        };
        let mut msg = [0u8; 256];
        let m = state.write_message(&[PROTOCOL_VERSION], &mut msg).map_err(noise_err)?;
        let mut fin = vec![0u8; MAX_DATAGRAM];
        let len = wire::write_resp_or_final(&mut fin, wire::TYPE_FINAL, self.local_index, sender, &msg[..m]);
        fin.truncate(len);
        let (keys, host_key, binding) =
            finish(&mut state, Role::Initiator).ok_or_else(|| HandshakeError::Noise("no session keys".into()))?;
        let connection = Connection::new(
            Role::Initiator,
            self.local_index,
            sender,
            keys,
            host_key,
            binding,
            now,
            self.config,
            Some(fin),
        );
        Ok(Some(Established { connection, host_key, first_use }))
    }
}

/// The responder's answer to a HandshakeInit: its state and the reply datagram.
pub(crate) struct Response {
    pub state: HandshakeState,
    pub datagram: Vec<u8>,
}

pub(crate) fn respond(
    keypair: &Keypair,
    noise: &[u8],
    initiator_index: u32,
    local_index: u32,
) -> Result<Response, DropReason> {
    let mut state = builder(keypair).and_then(|b| b.build_responder()).map_err(|_| DropReason::Handshake)?;
    let mut payload = [0u8; MAX_DATAGRAM];
    let n = state.read_message(noise, &mut payload).map_err(|_| DropReason::Handshake)?;
    if payload[..n].first() != Some(&PROTOCOL_VERSION) {
        return Err(DropReason::Handshake);
    }
    let mut msg = [0u8; 256];
    let m = state.write_message(&[PROTOCOL_VERSION], &mut msg).map_err(|_| DropReason::Handshake)?;
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let len = wire::write_resp_or_final(&mut datagram, wire::TYPE_RESP, local_index, initiator_index, &msg[..m]);
    datagram.truncate(len);
    Ok(Response { state, datagram })
}

/// Reads HandshakeFinal; returns the session facts on success.
pub(crate) fn complete(
    state: &mut HandshakeState,
    noise: &[u8],
) -> Result<(SessionKeys, PublicKey, Binding), DropReason> {
    let mut payload = [0u8; MAX_DATAGRAM];
    let n = state.read_message(noise, &mut payload).map_err(|_| DropReason::Handshake)?;
    if payload[..n].first() != Some(&PROTOCOL_VERSION) {
        return Err(DropReason::Handshake);
    }
    finish(state, Role::Responder).ok_or(DropReason::Handshake)
}
