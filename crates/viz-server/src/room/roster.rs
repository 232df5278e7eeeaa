//! Who is in the room, told to everyone in their transport's words: native sessions
//! get control messages, browsers JSON, the host's console a line; RTP senders hear
//! nothing. Everything the room tells its participants goes through [`Room::tell`];
//! what it tells everyone waits in [`super::news`] to go out together.

use viz_audio::mixer::ParticipantId;
use viz_proto::control::MAX_ROSTER_ENTRIES;
use viz_proto::{ControlMessage, RosterEntry};

use super::members::Admission;
use super::mixing::{TEST_SOURCE_ID, ToMixer};
use super::participants::Link;
use super::{Room, parties};
use crate::web::messages::{BrowserOut, BrowserRosterEntry};

impl Room<'_> {
    /// Sends `msg` over one link. A roster line about the receiver itself is marked
    /// `you`.
    pub(crate) fn tell(&mut self, link: Link, msg: &ControlMessage) {
        let me = self.participants.id_of(link);
        match link {
            Link::Native(sid) => {
                let Some(s) = self.endpoint.session_mut(sid) else { return };
                // Only a roster with the receiver's own line is copied (to mark it).
                match msg {
                    ControlMessage::Roster(entries) if entries.iter().any(|e| Some(e.id) == me) => {
                        s.send_control(ControlMessage::Roster(
                            entries.iter().map(|e| RosterEntry { you: Some(e.id) == me, ..e.clone() }).collect(),
                        ));
                    }
                    other => s.send_control(other),
                }
                self.dirty.push(sid);
            }
            Link::Browser(conn) => {
                let shown = match msg {
                    ControlMessage::Roster(entries) => BrowserOut::Roster {
                        entries: entries
                            .iter()
                            .map(|e| BrowserRosterEntry { you: Some(e.id) == me, ..self.browser_entry(e) })
                            .collect(),
                    },
                    ControlMessage::Talking(ids) => BrowserOut::Talking { ids: ids.clone() },
                    ControlMessage::Levels(levels) => BrowserOut::Levels { levels: levels.clone() },
                    ControlMessage::Left { id, reason } => BrowserOut::Left { id: *id, reason: reason.to_string() },
                    _ => return,
                };
                self.send_browser(conn, &shown);
            }
            Link::Local => self.show_local(msg),
            Link::Rtp(_) => {}
        }
    }

    /// Everyone who sees the roster: participants (not echo tests, not RTP senders)
    /// and admins' control sessions.
    pub(crate) fn audience(&self) -> Vec<Link> {
        let participants = self.participants.in_roster().map(|p| p.link).filter(|l| !matches!(l, Link::Rtp(_)));
        let admins = self.members.values().filter(|m| matches!(m.admission, Admission::Admin)).map(|m| m.link());
        participants.chain(admins).collect()
    }

    /// Sends the whole roster (in messages of up to [`MAX_ROSTER_ENTRIES`]) and who is
    /// talking to one link.
    pub(crate) fn send_full_roster(&mut self, to: Link) {
        let entries = self.full_roster();
        for chunk in entries.chunks(MAX_ROSTER_ENTRIES) {
            self.tell(to, &ControlMessage::Roster(chunk.to_vec()));
        }
        let talking = ControlMessage::Talking(self.talking.clone());
        self.tell(to, &talking);
    }

    /// A participant wants to hear `target` louder or quieter, for itself only. Nobody
    /// else is told: it changes that participant's own mix and nothing in the roster.
    pub(crate) fn personal_volume(&mut self, link: Link, target: ParticipantId, percent: u16) {
        let Some(listener) = self.participants.id_of(link) else { return };
        let percent = percent.min(viz_proto::control::MAX_GAIN_PERCENT);
        self.mixer.send(ToMixer::PersonalGain { listener, source: target, gain: f32::from(percent) / 100.0 });
    }

    /// A participant muted or unmuted its own microphone, or deafened: everyone sees it.
    pub(crate) fn self_muted(&mut self, link: Link, muted: bool, deafened: bool) {
        let Some(p) = self.participants.of_link_mut(link) else { return };
        p.self_muted = muted || deafened;
        p.deafened = deafened;
        let id = p.id;
        let entry = self.roster_entry(id);
        self.announce_entry(entry);
    }

    /// A roster line for participant `id` (with `you` unset; [`Room::tell`] sets it).
    pub(crate) fn roster_entry(&self, id: ParticipantId) -> Option<RosterEntry> {
        let p = self.participants.get(id)?;
        let stored = self.settings.get(&p.key);
        Some(RosterEntry {
            id,
            name: p.name.clone(),
            key: p.fingerprint.clone(),
            gain_percent: stored.gain_percent,
            you: false,
            self_muted: p.self_muted,
            deafened: p.deafened,
            admin_muted: stored.muted,
            sends: p.role.sends,
            receives: p.role.receives,
            test_source: false,
        })
    }

    fn test_source_entry(&self) -> Option<RosterEntry> {
        self.cfg.test_source.then(|| RosterEntry {
            receives: false,
            test_source: true,
            ..RosterEntry::new(TEST_SOURCE_ID, parties::TEST_SOURCE_NAME, "")
        })
    }

    /// Every participant's roster line (and the test source's), by id.
    pub(crate) fn full_roster(&self) -> Vec<RosterEntry> {
        let mut entries: Vec<RosterEntry> = self
            .participants
            .in_roster()
            .filter_map(|p| self.roster_entry(p.id))
            .chain(self.test_source_entry())
            .collect();
        entries.sort_by_key(|e| e.id);
        entries
    }

    /// A native roster line in the browser's JSON shape.
    pub(crate) fn browser_entry(&self, e: &RosterEntry) -> BrowserRosterEntry {
        BrowserRosterEntry {
            id: e.id,
            name: e.name.clone(),
            key: e.key.clone(),
            kind: self.kind_of(e.id),
            you: e.you,
            self_muted: e.self_muted,
            deafened: e.deafened,
            admin_muted: e.admin_muted,
            gain_percent: e.gain_percent,
            sends: e.sends,
            receives: e.receives,
        }
    }
}
