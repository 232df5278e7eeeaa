//! Native sessions (Noise over UDP or the WebSocket fallback) on their way into the
//! room: the password exchange (CPace), the joiner's Hello, and admins' control
//! sessions. Once a joiner is through, it is handed to [`Room::admit`] like every
//! other kind of participant; what stays here is the session's own state.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use viz_audio::mixer::Role;
use viz_proto::password::ServerPassword;
use viz_proto::{AdminOp, AdminRequest, ByeReason, ControlMessage, Hello, PublicKey};

use super::Room;
use super::admission::Arrival;
use super::participants::Link;

/// Where a session is in joining the room.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Authenticated by Noise; nothing said yet.
    Fresh,
    /// Password exchange running; the joiner's Hello may already be waiting.
    Password { exchange: ServerPassword, hello: Option<Hello> },
    /// Password proven (or none needed), Hello not yet received.
    Proven,
    /// In the room.
    Admitted,
    /// An admin's control-only session (no audio, not in the roster).
    Admin,
}

/// One authenticated native session. Not a participant until admitted: then the
/// participant table has it under [`Link::Native`].
pub(crate) struct Member {
    pub session: u32,
    pub key: PublicKey,
    /// Where it connects from (a WebSocket's connection address).
    pub peer: Option<SocketAddr>,
    pub via: String,
    pub admission: Admission,
}

impl Member {
    pub(crate) fn new(session: u32, key: PublicKey, peer: Option<SocketAddr>, via: String) -> Self {
        Self { session, key, peer, via, admission: Admission::Fresh }
    }

    /// The address its attempts count against.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.peer.map(|a| a.ip().to_canonical())
    }

    pub(crate) fn link(&self) -> Link {
        Link::Native(self.session)
    }
}

impl Room<'_> {
    pub(crate) fn on_control(&mut self, id: u32, msg: ControlMessage, now: Instant) {
        match msg {
            ControlMessage::PasswordStart(start) => self.on_password_start(id, &start, now),
            ControlMessage::PasswordProof(proof) => self.on_password_proof(id, &proof, now),
            ControlMessage::Hello(h) => self.on_hello(id, h, now),
            ControlMessage::Mute { muted, deafened } => self.self_muted(Link::Native(id), muted, deafened),
            ControlMessage::Volume { target, percent } => self.personal_volume(Link::Native(id), target, percent),
            ControlMessage::Admin(req) => self.on_admin(id, req, now),
            // Bye is turned into PeerLeft by the session; the rest is server → client.
            _ => {}
        }
    }

    fn on_password_start(&mut self, id: u32, start: &[u8; 48], now: Instant) {
        let Some(password) = self.cfg.password.clone() else { return }; // no password: Hello admits
        let Some(session) = self.endpoint.session_mut(id) else { return };
        let hash = session.handshake_hash();
        let Some(m) = self.members.get(&id) else { return };
        if !matches!(m.admission, Admission::Fresh) {
            return;
        }
        let (ip, via) = (m.ip(), m.via.clone());
        // Checked at every attempt, not only when the session was accepted: sessions
        // opened before the first wrong guess would otherwise each get one answer.
        // Our reply lets the joiner test one guess, so it counts from here on.
        if let Err(reason) = self.password_attempt(ip, now) {
            tracing::info!(%via, "password attempt refused: too many failed attempts from this address");
            if let Some(s) = self.endpoint.session_mut(id) {
                s.close(now, reason);
            }
            return;
        }
        let Some(session) = self.endpoint.session_mut(id) else { return };
        match ServerPassword::respond(&password, hash, start) {
            Ok((exchange, reply, proof)) => {
                session.send_control(ControlMessage::PasswordReply { reply, proof });
                if let Some(m) = self.members.get_mut(&id) {
                    m.admission = Admission::Password { exchange, hello: None };
                }
            }
            Err(e) => {
                tracing::info!(%via, "password exchange failed: {e}");
                session.close(now, ByeReason::WrongPassword);
            }
        }
    }

    fn on_password_proof(&mut self, id: u32, proof: &[u8; 32], now: Instant) {
        let Some(m) = self.members.get_mut(&id) else { return };
        let Admission::Password { exchange, hello } = std::mem::replace(&mut m.admission, Admission::Proven) else {
            return;
        };
        if exchange.verify(proof).is_err() {
            tracing::info!(via = %m.via, key = %m.key.fingerprint(), "wrong room password");
            m.admission = Admission::Fresh;
            self.summary.refused += 1;
            if let Some(s) = self.endpoint.session_mut(id) {
                s.close(now, ByeReason::WrongPassword);
            }
            return;
        }
        let ip = m.ip();
        self.password_proven(ip);
        if let Some(h) = hello {
            self.admit_session(id, h, now);
        }
    }

    fn on_hello(&mut self, id: u32, h: Hello, now: Instant) {
        let needs_password = self.cfg.password.is_some();
        let Some(m) = self.members.get_mut(&id) else { return };
        match &mut m.admission {
            Admission::Fresh if needs_password => {
                tracing::info!(via = %m.via, "joiner offered no password");
                self.summary.refused += 1;
                if let Some(s) = self.endpoint.session_mut(id) {
                    s.close(now, ByeReason::PasswordRequired);
                }
            }
            Admission::Password { hello, .. } => *hello = Some(h),
            Admission::Fresh | Admission::Proven => self.admit_session(id, h, now),
            Admission::Admitted | Admission::Admin => {}
        }
    }

    /// The session proved what it had to: it joins the room as a participant.
    fn admit_session(&mut self, id: u32, h: Hello, now: Instant) {
        let Some(m) = self.members.get_mut(&id) else { return };
        m.admission = Admission::Admitted;
        let arrival = Arrival {
            key: m.key,
            link: m.link(),
            own_name: h.display_name(),
            role: Role { sends: h.sends_audio, receives: h.receives_audio, echo: h.echo_test },
            via: m.via.clone(),
            wants_levels: h.levels,
        };
        self.admit(arrival, now);
    }

    fn on_admin(&mut self, id: u32, req: AdminRequest, now: Instant) {
        let Some(m) = self.members.get(&id) else { return };
        let (ip, via) = (m.ip(), m.via.clone());
        if ip.is_some_and(|ip| self.limiters.admin_token.is_blocked(ip, now)) {
            self.admin_reply(id, req.request, false, "too many failed attempts from this address; try later".into());
            return;
        }
        // Compare in constant time: the token is a secret.
        let expected = self.cfg.admin_token.as_bytes();
        let given = req.token.as_bytes();
        let ok =
            expected.len() == given.len() && expected.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !ok {
            tracing::warn!(%via, "bad admin token");
            if let Some(ip) = ip {
                self.limiters.admin_token.failed(ip, now);
            }
            self.admin_reply(id, req.request, false, "bad admin token".into());
            return;
        }
        if let Some(m) = self.members.get_mut(&id)
            && matches!(m.admission, Admission::Fresh | Admission::Proven)
        {
            m.admission = Admission::Admin;
        }
        let result = match req.op {
            AdminOp::LogIn => {
                self.admin_reply(id, req.request, true, format!("logged in to room '{}'", self.cfg.room_name));
                self.send_full_roster(Link::Native(id));
                return;
            }
            op => self.apply_admin(op, now).map_err(|e| e.to_string()),
        };
        tracing::info!(%via, ok = result.is_ok(), "admin: {}", result.as_ref().unwrap_or_else(|e| e));
        let (ok, text) = match result {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        self.admin_reply(id, req.request, ok, text);
    }

    fn admin_reply(&mut self, id: u32, request: u32, ok: bool, message: String) {
        if let Some(s) = self.endpoint.session_mut(id) {
            s.send_control(ControlMessage::AdminResult { request, ok, message });
            self.dirty.push(id);
        }
    }
}
