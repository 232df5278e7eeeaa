//! Participants on the network side: admission (password), the roster, admin
//! operations and leaving. The same operations will back the web page and REST API.

use std::net::IpAddr;
use std::time::Instant;

use viz_audio::mixer::{ParticipantId, Role};
use viz_proto::control::{MAX_GAIN_PERCENT, MAX_ROSTER_ENTRIES};
use viz_proto::password::ServerPassword;
use viz_proto::{AdminOp, AdminRequest, ByeReason, ControlMessage, Hello, PROTOCOL_VERSION, PublicKey, RosterEntry};

use super::mixing::{TEST_SOURCE_ID, ToMixer};
use super::{Link, Room};
use crate::web::messages::{AdminError, BrowserOut, BrowserRosterEntry};

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

/// The participant id of a session not admitted (yet).
pub(crate) const NOT_ADMITTED: ParticipantId = 0;

pub(crate) struct Member {
    pub session: u32,
    pub pid: ParticipantId,
    pub key: PublicKey,
    pub ip: Option<IpAddr>,
    pub via: String,
    pub admission: Admission,
    /// Name the client asked for (an admin-set name overrides it).
    pub client_name: String,
    pub name: String,
    pub role: Role,
    pub self_muted: bool,
    pub since: Instant,
}

impl Member {
    pub(crate) fn new(session: u32, pid: ParticipantId, key: PublicKey, ip: Option<IpAddr>, via: String) -> Self {
        Self {
            session,
            pid,
            key,
            ip,
            via,
            admission: Admission::Fresh,
            client_name: String::new(),
            name: String::new(),
            role: Role::SPEAKER,
            self_muted: false,
            since: Instant::now(),
        }
    }

    pub(crate) fn is_admitted(&self) -> bool {
        matches!(self.admission, Admission::Admitted)
    }

    /// Admitted participants (not echo tests) and admins see the roster.
    pub(crate) fn gets_roster(&self) -> bool {
        (self.is_admitted() && !self.role.echo) || matches!(self.admission, Admission::Admin)
    }
}

impl Room<'_> {
    pub(crate) fn on_control(&mut self, id: u32, msg: ControlMessage, now: Instant) {
        match msg {
            ControlMessage::PasswordStart(start) => self.on_password_start(id, &start, now),
            ControlMessage::PasswordProof(proof) => self.on_password_proof(id, &proof, now),
            ControlMessage::Hello(h) => self.on_hello(id, h, now),
            ControlMessage::Mute { muted } => {
                let Some(m) = self.members.get_mut(&id) else { return };
                m.self_muted = muted;
                if m.is_admitted() {
                    let pid = m.pid;
                    let entry = self.roster_entry(pid);
                    self.broadcast_roster(entry);
                }
            }
            ControlMessage::Admin(req) => self.on_admin(id, req, now),
            // Bye is turned into PeerLeft by the session; the rest is server → client.
            _ => {}
        }
    }

    fn on_password_start(&mut self, id: u32, start: &[u8; 48], now: Instant) {
        let Some(password) = self.cfg.password.clone() else { return }; // no password: Hello admits
        let Some(session) = self.endpoint.session_mut(id) else { return };
        let hash = session.handshake_hash();
        let Some(m) = self.members.get_mut(&id) else { return };
        if !matches!(m.admission, Admission::Fresh) {
            return;
        }
        // Checked at every attempt, not only when the session was accepted: sessions
        // opened before the first wrong guess would otherwise each get one answer.
        if m.ip.is_some_and(|ip| self.limiters.password.is_blocked(ip, now)) {
            tracing::info!(via = %m.via, "password attempt refused: too many failed attempts from this address");
            self.summary.refused += 1;
            session.close(now, ByeReason::TooManyAttempts);
            return;
        }
        match ServerPassword::respond(&password, hash, start) {
            Ok((exchange, reply, proof)) => {
                // Our reply lets the joiner test one guess: it counts as a failure
                // until the joiner's proof shows the guess was right.
                session.send_control(ControlMessage::PasswordReply { reply, proof });
                m.admission = Admission::Password { exchange, hello: None };
                if let Some(ip) = m.ip {
                    self.limiters.password.failed(ip, now);
                }
            }
            Err(e) => {
                tracing::info!(via = %m.via, "password exchange failed: {e}");
                let ip = m.ip;
                session.close(now, ByeReason::WrongPassword);
                if let Some(ip) = ip {
                    self.limiters.password.failed(ip, now);
                }
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
        if let Some(ip) = m.ip {
            self.limiters.password.forgive(ip);
        }
        if let Some(h) = hello {
            self.admit(id, h, now);
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
            Admission::Fresh | Admission::Proven => self.admit(id, h, now),
            Admission::Admitted | Admission::Admin => {}
        }
    }

    /// Takes a joiner into the room: replaces an older session of the same identity,
    /// applies stored settings, tells everyone.
    fn admit(&mut self, id: u32, h: Hello, now: Instant) {
        let Some(m) = self.members.get(&id) else { return };
        let key = m.key;
        let pid = self.pid_for(key);
        if let Some(m) = self.members.get_mut(&id) {
            m.pid = pid;
        }
        // The same identity still connected (its network dropped, it restarted): that
        // old session is over, and this one takes its place without a second entry.
        let mut resumed = false;
        if let Some(&old) = self.by_pid.get(&pid)
            && old != Link::Native(id)
        {
            resumed = true;
            self.end_link(old, ByeReason::Replaced, now);
        }
        let stored = self.settings.get(&key);
        let role = Role { sends: h.sends_audio, receives: h.receives_audio, echo: h.echo_test };
        let Some(m) = self.members.get_mut(&id) else { return };
        m.admission = super::members::Admission::Admitted;
        m.client_name = h.display_name();
        m.name = stored.name.clone().unwrap_or_else(|| m.client_name.clone());
        m.role = role;
        let (name, via) = (m.name.clone(), m.via.clone());
        self.by_pid.insert(pid, Link::Native(id));
        self.summary.joins += 1;
        self.join_mixer(pid, role, stored.gain_percent, stored.muted, &name);
        let greeting = ControlMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            name: self.cfg.room_name.clone(),
            frame_ms: self.cfg.params.frame.millis() as u8,
            bitrate: self.cfg.params.bitrate,
            fec: self.cfg.params.fec,
            dtx: self.cfg.params.dtx,
            sends_audio: true,
            receives_audio: true,
            echo_test: role.echo,
            room: true,
        });
        if let Some(s) = self.endpoint.session_mut(id) {
            s.send_control(greeting);
        }
        self.dirty.push(id);
        if role.echo {
            tracing::info!(%via, "echo test started");
            return;
        }
        let kind = match (role.sends, role.receives) {
            (true, true) => "",
            (true, false) => " (send-only)",
            (false, true) => " (listen-only)",
            (false, false) => " (no audio)",
        };
        tracing::info!(%via, key = %key.fingerprint(), "{name} {}{kind}", if resumed { "reconnected" } else { "joined" });
        self.send_full_roster(id);
        let entry = self.roster_entry(pid);
        self.broadcast_roster(entry);
        let count = self.by_pid.len();
        self.summary.peak_participants = self.summary.peak_participants.max(count);
    }

    /// A roster line for participant `pid` (with `you` unset; the receiver's copy sets it).
    pub(crate) fn roster_entry(&self, pid: ParticipantId) -> Option<RosterEntry> {
        let p = self.party(pid)?;
        let stored = self.settings.get(&p.key);
        Some(RosterEntry {
            id: pid,
            name: p.name.to_owned(),
            key: p.key.fingerprint().compact().to_owned(),
            gain_percent: stored.gain_percent,
            you: false,
            self_muted: p.self_muted,
            admin_muted: stored.muted,
            sends: p.role.sends,
            receives: p.role.receives,
            test_source: false,
        })
    }

    fn test_source_entry(&self) -> Option<RosterEntry> {
        self.cfg.test_source.then(|| RosterEntry {
            id: TEST_SOURCE_ID,
            name: "Test source (music)".into(),
            key: String::new(),
            gain_percent: 100,
            you: false,
            self_muted: false,
            admin_muted: false,
            sends: true,
            receives: false,
            test_source: true,
        })
    }

    /// Tells everyone in the room about one changed or new entry.
    pub(crate) fn broadcast_roster(&mut self, entry: Option<RosterEntry>) {
        let Some(entry) = entry else { return };
        let ids: Vec<u32> = self.members.values().filter(|m| m.gets_roster()).map(|m| m.session).collect();
        for sid in ids {
            let mine = self.members.get(&sid).is_some_and(|m| m.pid == entry.id);
            let e = RosterEntry { you: mine, ..entry.clone() };
            if let Some(s) = self.endpoint.session_mut(sid) {
                s.send_control(ControlMessage::Roster(vec![e]));
                self.dirty.push(sid);
            }
        }
        self.show_local(&ControlMessage::Roster(vec![entry.clone()]));
        let shown = self.browser_entry(&entry);
        for (&conn, b) in &self.browsers {
            let Some(j) = b.joined.as_ref().filter(|j| !j.role.echo) else { continue };
            let e = BrowserRosterEntry { you: j.pid == entry.id, ..shown.clone() };
            self.send_browser(conn, &BrowserOut::Roster { entries: vec![e] });
        }
    }

    /// Every admitted participant's roster line (and the test source), by id.
    pub(crate) fn full_roster(&self, for_pid: Option<ParticipantId>) -> Vec<RosterEntry> {
        let mut entries: Vec<RosterEntry> = self
            .by_pid
            .keys()
            .filter(|&&pid| self.party(pid).is_some_and(|p| !p.role.echo))
            .filter_map(|&pid| self.roster_entry(pid))
            .chain(self.test_source_entry())
            .map(|e| RosterEntry { you: Some(e.id) == for_pid, ..e })
            .collect();
        entries.sort_by_key(|e| e.id);
        entries
    }

    /// The whole roster, in messages of up to [`MAX_ROSTER_ENTRIES`].
    fn send_full_roster(&mut self, to: u32) {
        let my_pid = self.members.get(&to).map(|m| m.pid);
        let entries = self.full_roster(my_pid);
        let talking = ControlMessage::Talking(self.talking.clone());
        let Some(s) = self.endpoint.session_mut(to) else { return };
        for chunk in entries.chunks(MAX_ROSTER_ENTRIES) {
            s.send_control(ControlMessage::Roster(chunk.to_vec()));
        }
        s.send_control(talking);
        self.dirty.push(to);
    }

    /// A member left or was dropped: take them out of the mix and the roster.
    pub(crate) fn forget(&mut self, m: Member, reason: ByeReason) {
        if self.by_pid.get(&m.pid) != Some(&Link::Native(m.session)) {
            return; // never admitted, or already replaced by a newer session
        }
        self.by_pid.remove(&m.pid);
        self.leave_mixer(m.pid);
        if m.role.echo {
            return;
        }
        tracing::info!(id = m.pid, "{} {reason}", m.name);
        self.broadcast(&ControlMessage::Left { id: m.pid, reason });
    }

    fn on_admin(&mut self, id: u32, req: AdminRequest, now: Instant) {
        let Some(m) = self.members.get(&id) else { return };
        let (ip, via) = (m.ip, m.via.clone());
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
                self.send_full_roster(id);
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

    /// One room operation; the change is on disk before this returns `Ok`.
    pub(crate) fn apply_admin(&mut self, op: AdminOp, now: Instant) -> Result<String, AdminError> {
        match op {
            AdminOp::LogIn => Ok(String::new()),
            AdminOp::Gain { target, percent } => {
                self.change_participant(target, Change { gain_percent: Some(percent), ..Change::default() })
            }
            AdminOp::Mute { target, muted } => {
                self.change_participant(target, Change { muted: Some(muted), ..Change::default() })
            }
            AdminOp::Rename { target, name } => {
                self.change_participant(target, Change { name: Some(name), ..Change::default() })
            }
            AdminOp::Kick { target } => {
                let (link, name) = self.changeable(target)?;
                if link == Link::Local {
                    return Err(AdminError::Invalid("the host's own audio cannot be removed".into()));
                }
                self.end_link(link, ByeReason::Kicked, now);
                self.by_pid.remove(&target);
                self.leave_mixer(target);
                tracing::info!(id = target, "{name} {}", ByeReason::Kicked);
                self.broadcast(&ControlMessage::Left { id: target, reason: ByeReason::Kicked });
                Ok(format!("{name} was removed"))
            }
        }
    }

    /// The participant `target` as something an admin may change: its link and name.
    fn changeable(&self, target: u32) -> Result<(Link, String), AdminError> {
        if target == TEST_SOURCE_ID && self.cfg.test_source {
            return Err(AdminError::Invalid("the test source cannot be changed".into()));
        }
        let not_found = || AdminError::NotFound(format!("no participant with id {target}"));
        let link = *self.by_pid.get(&target).ok_or_else(not_found)?;
        let p = self.party(target).ok_or_else(not_found)?;
        Ok((link, p.name.to_owned()))
    }

    /// Changes a participant's gain, mute and name together: all of it is checked
    /// first, then saved in one write, then takes effect; a change that is refused
    /// leaves everything as it was.
    pub(crate) fn change_participant(&mut self, target: u32, change: Change) -> Result<String, AdminError> {
        let (link, old_name) = self.changeable(target)?;
        if change.gain_percent.is_none() && change.muted.is_none() && change.name.is_none() {
            return Err(AdminError::Invalid("nothing to change: give a gain, mute or name".into()));
        }
        if let Some(percent) = change.gain_percent
            && percent > MAX_GAIN_PERCENT
        {
            return Err(AdminError::Invalid(format!("gain {percent} % is outside 0..={MAX_GAIN_PERCENT}")));
        }
        let new_name = change.name.as_deref().map(viz_proto::control::sanitize_name);
        if new_name.as_ref().is_some_and(|n| n.is_empty()) {
            return Err(AdminError::Invalid("a name cannot be empty".into()));
        }
        let key = self
            .party(target)
            .map(|p| p.key)
            .ok_or_else(|| AdminError::NotFound(format!("no participant with id {target}")))?;
        self.settings
            .update(&key, |s| {
                if let Some(percent) = change.gain_percent {
                    s.gain_percent = percent;
                }
                if let Some(muted) = change.muted {
                    s.muted = muted;
                }
                if let Some(n) = &new_name {
                    s.name = Some(n.clone());
                }
            })
            .map_err(|e| AdminError::Storage(e.to_string()))?;
        let mut said = Vec::new();
        if let Some(percent) = change.gain_percent {
            self.mixer.send(ToMixer::Gain { id: target, gain: f32::from(percent) / 100.0 });
            said.push(format!("gain {percent} %"));
        }
        if let Some(muted) = change.muted {
            self.mixer.send(ToMixer::Mute { id: target, muted });
            said.push(if muted { "muted" } else { "unmuted" }.to_owned());
        }
        let text = match &new_name {
            Some(n) if said.is_empty() => format!("{old_name} is now {n}"),
            Some(n) => format!("{old_name}: {}, renamed to {n}", said.join(", ")),
            None => format!("{old_name}: {}", said.join(", ")),
        };
        if let Some(n) = new_name {
            self.set_name(link, n);
        }
        let entry = self.roster_entry(target);
        self.broadcast_roster(entry);
        Ok(text)
    }
}

/// What an admin changes about a participant; `None` leaves it as it is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    pub gain_percent: Option<u16>,
    pub muted: Option<bool>,
    pub name: Option<String>,
}
