//! The one way into the room and the one way out, for every transport. A transport
//! authenticates its joiner its own way (a Noise handshake and CPace, a browser's
//! secret and password, an allow-listed SSRC), then hands the room an [`Arrival`];
//! [`Room::admit`] gives it its id, replaces an older link of the same identity, applies
//! stored settings, joins the mixer and tells everyone. [`Room::remove_participant`]
//! undoes all of that whatever the transport. The limits on attempts live here too, so
//! a native joiner and a browser from the same address share one count.

use std::net::IpAddr;
use std::time::Instant;

use viz_audio::mixer::{ParticipantId, Role};
use viz_proto::{ByeReason, ControlMessage, Hello, PROTOCOL_VERSION, PublicKey};

use super::Room;
use super::local::LOCAL_ID;
use super::participants::{Link, Participant};
use crate::web::messages::BrowserOut;

/// A joiner its transport has authenticated, as it presents itself.
pub(crate) struct Arrival {
    pub key: PublicKey,
    pub link: Link,
    /// The name it gave (sanitised by its transport).
    pub own_name: String,
    pub role: Role,
    /// Where it connects from, for logs and the admin page.
    pub via: String,
    /// It shows everyone's level (see [`Participant::wants_levels`]).
    pub wants_levels: bool,
}

impl Room<'_> {
    /// Takes a joiner into the room and returns its participant id.
    pub(crate) fn admit(&mut self, arrival: Arrival, now: Instant) -> ParticipantId {
        let Arrival { key, link, own_name, role, via, wants_levels } = arrival;
        let id = if link == Link::Local { LOCAL_ID } else { self.participants.id_for(key) };
        let stored = self.settings.get(&key);
        let name = stored.name.clone().unwrap_or_else(|| own_name.clone());
        let entry = Participant {
            id,
            key,
            fingerprint: key.fingerprint().compact().to_owned(),
            link,
            own_name,
            name: name.clone(),
            role,
            self_muted: false,
            deafened: false,
            since: now,
            via: via.clone(),
            wants_levels,
        };
        // The same identity still connected (its network dropped, it restarted, another
        // tab): that old link is over, and this one takes its place under the same id.
        let replaced = self.participants.insert(entry);
        if let Some(old) = &replaced {
            self.end_link(old.link, ByeReason::Replaced, now);
            self.leave_mixer(id);
        }
        self.summary.joins += 1;
        self.join_mixer(id, role, stored.gain_percent, stored.muted, &name);
        self.greet(link, id, role);
        if role.echo {
            tracing::info!(%via, "echo test started");
            return id;
        }
        let kind = match (role.sends, role.receives) {
            (true, true) => "",
            (true, false) => " (send-only)",
            (false, true) => " (listen-only)",
            (false, false) => " (no audio)",
        };
        let verb = if replaced.is_some() { "reconnected" } else { "joined" };
        tracing::info!(id, %via, key = %key.fingerprint(), "{name} {verb}{kind}");
        let roster_line = self.roster_entry(id);
        self.announce_entry(roster_line);
        let count = self.participants.in_roster().count();
        self.summary.peak_participants = self.summary.peak_participants.max(count);
        id
    }

    /// What a newcomer is told first: the room's settings in its transport's words,
    /// then who is here.
    fn greet(&mut self, link: Link, id: ParticipantId, role: Role) {
        match link {
            Link::Native(sid) => {
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
                    levels: false,
                });
                if let Some(s) = self.endpoint.session_mut(sid) {
                    s.send_control(greeting);
                }
                self.dirty.push(sid);
            }
            Link::Browser(conn) => {
                let welcome = BrowserOut::Welcome {
                    room: self.cfg.room_name.clone(),
                    you: id,
                    frame_ms: self.cfg.params.frame.millis(),
                    bitrate: self.cfg.params.bitrate,
                    echo: role.echo,
                };
                self.send_browser(conn, &welcome);
            }
            Link::Local | Link::Rtp(_) => {}
        }
        if !role.echo {
            self.send_full_roster(link);
        }
    }

    /// Takes a participant out of the table and the mix and tells everyone; its link
    /// is already over or is ended by the caller ([`Room::end_link`]).
    pub(crate) fn remove_participant(&mut self, id: ParticipantId, reason: ByeReason) -> Option<Participant> {
        let p = self.participants.remove(id)?;
        self.leave_mixer(id);
        if p.in_roster() {
            tracing::info!(id, via = %p.via, "{} {reason}", p.name);
            self.announce_left(id, reason);
        }
        Some(p)
    }

    /// A transport says one of its links ended: the participant it carried (if it still
    /// carries one) leaves.
    pub(crate) fn link_ended(&mut self, link: Link, reason: ByeReason) {
        if let Some(id) = self.participants.id_of(link) {
            self.remove_participant(id, reason);
        }
    }

    /// Ends a link in its transport's words (a Bye, a close frame, a revoked SSRC)
    /// without touching the table: the caller removes or replaces the participant.
    pub(crate) fn end_link(&mut self, link: Link, reason: ByeReason, now: Instant) {
        match link {
            Link::Native(sid) => {
                self.members.remove(&sid);
                if let Some(s) = self.endpoint.session_mut(sid) {
                    s.close(now, reason);
                    self.dirty.push(sid);
                }
            }
            Link::Browser(conn) => {
                let (text, reconnect) = super::browser::bye_text(reason);
                self.end_browser(conn, text, reconnect);
            }
            Link::Local => {} // the host's audio ends with the room
            Link::Rtp(ssrc) => {
                // Plain RTP cannot be told to stop: removing a sender revokes it, so
                // what it keeps sending is pending again until an admin accepts it.
                if let Some(rtp) = self.rtp.as_mut()
                    && let Err(e) = rtp.revoke(ssrc)
                {
                    tracing::error!("RTP sender {ssrc:#010x} removed, but not for good: {e}");
                }
            }
        }
    }

    /// One password attempt from `ip`, native or browser, before it is checked:
    /// refused while the address is blocked, and otherwise counted as a failure until
    /// [`Room::password_proven`] takes it back (a native joiner learns whether its
    /// guess was right from our reply, before it proves anything).
    pub(crate) fn password_attempt(&mut self, ip: Option<IpAddr>, now: Instant) -> Result<(), ByeReason> {
        let Some(ip) = ip else { return Ok(()) };
        if self.limiters.password.is_blocked(ip, now) {
            self.summary.refused += 1;
            return Err(ByeReason::TooManyAttempts);
        }
        self.limiters.password.failed(ip, now);
        Ok(())
    }

    /// The attempt from `ip` was right: it no longer counts against the address.
    pub(crate) fn password_proven(&mut self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.limiters.password.forgive(ip);
        }
    }
}
