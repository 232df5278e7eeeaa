//! The room's one participant table. Every admitted participant (a native session over
//! UDP or WebSocket, a browser, a plain RTP sender, the host's own audio) is one entry
//! with the same fields and a [`Link`] that says how to reach it; the transports keep
//! only what is theirs (a session's crypto, a socket, RTP sequence state) and find
//! their participant through the link. The table is plain data: admission, limits and
//! removal over it are written once, in [`super::admission`].

use std::collections::HashMap;
use std::time::Instant;

use viz_audio::mixer::{ParticipantId, Role};
use viz_proto::PublicKey;

/// How an admitted participant is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Link {
    /// A Noise session (UDP or the native WebSocket fallback), by session id.
    Native(u32),
    /// A web page, by its WebSocket connection number.
    Browser(u64),
    /// The host's own audio, in process (`viz host --http`).
    Local,
    /// A plain RTP sender, by SSRC.
    Rtp(u32),
}

/// One admitted participant, however connected.
#[derive(Debug, Clone)]
pub(crate) struct Participant {
    pub id: ParticipantId,
    /// Its identity: a Noise static key, or a key derived from a browser's secret or an
    /// SSRC. Stored settings are kept under it.
    pub key: PublicKey,
    /// The key's fingerprint as shown (compact), worked out once: the admin page and
    /// `/metrics` list every participant every second.
    pub fingerprint: String,
    pub link: Link,
    /// The name it gave itself (hello, page, RTCP SDES); an admin's name overrides it.
    pub own_name: String,
    /// The name the room shows.
    pub name: String,
    pub role: Role,
    pub self_muted: bool,
    /// Hears nothing (and is muted).
    pub deafened: bool,
    pub since: Instant,
    /// Where it connects from, for the admin page ("UDP 1.2.3.4:5" and the like).
    pub via: String,
    /// It shows everyone's level (a live view, a page), so it gets them while people talk.
    pub wants_levels: bool,
}

impl Participant {
    /// An echo test is a participant of the mixer only: not in the roster, not counted.
    pub(crate) fn in_roster(&self) -> bool {
        !self.role.echo
    }
}

/// First participant id handed out (ids below are reserved: the test source, the host).
pub(crate) const FIRST_PARTICIPANT_ID: ParticipantId = 100;

/// Identities whose participant id the room remembers for when they come back. Each is
/// an admitted participant (in a password room, one who knew the password), but an open
/// room admits anyone, so the memory is bounded.
pub(crate) const MAX_REMEMBERED_IDENTITIES: usize = 10_000;

pub(crate) struct Participants {
    by_id: HashMap<ParticipantId, Participant>,
    by_link: HashMap<Link, ParticipantId>,
    /// Stable participant id per identity, so a returning participant keeps its id.
    remembered: HashMap<PublicKey, ParticipantId>,
    next_id: ParticipantId,
}

impl Default for Participants {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            by_link: HashMap::new(),
            remembered: HashMap::new(),
            next_id: FIRST_PARTICIPANT_ID,
        }
    }
}

impl Participants {
    /// The participant id of an identity: the same when it comes back, for the room's
    /// lifetime or until [`MAX_REMEMBERED_IDENTITIES`] others came after it while it was
    /// away. Asked only at admission, so identities that never get in leave nothing.
    pub(crate) fn id_for(&mut self, key: PublicKey) -> ParticipantId {
        if let Some(&id) = self.remembered.get(&key) {
            return id;
        }
        if self.remembered.len() >= MAX_REMEMBERED_IDENTITIES {
            // Forget the longest-known identity that is not here now.
            let by_id = &self.by_id;
            let oldest_away =
                self.remembered.iter().filter(|(_, id)| !by_id.contains_key(id)).min_by_key(|(_, id)| **id);
            if let Some((&gone, _)) = oldest_away {
                self.remembered.remove(&gone);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.remembered.insert(key, id);
        id
    }

    /// Puts `p` in the table. Returns the entry it replaces: the same identity under the
    /// same id, still connected through another link (its network dropped, it rejoined
    /// from another tab).
    pub(crate) fn insert(&mut self, p: Participant) -> Option<Participant> {
        let replaced = self.remove(p.id);
        self.by_link.insert(p.link, p.id);
        self.by_id.insert(p.id, p);
        replaced
    }

    pub(crate) fn remove(&mut self, id: ParticipantId) -> Option<Participant> {
        let p = self.by_id.remove(&id)?;
        self.by_link.remove(&p.link);
        Some(p)
    }

    pub(crate) fn get(&self, id: ParticipantId) -> Option<&Participant> {
        self.by_id.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: ParticipantId) -> Option<&mut Participant> {
        self.by_id.get_mut(&id)
    }

    /// The participant a link speaks for, if it is (still) admitted.
    pub(crate) fn id_of(&self, link: Link) -> Option<ParticipantId> {
        self.by_link.get(&link).copied()
    }

    pub(crate) fn of_link(&self, link: Link) -> Option<&Participant> {
        self.by_id.get(self.by_link.get(&link)?)
    }

    pub(crate) fn of_link_mut(&mut self, link: Link) -> Option<&mut Participant> {
        self.by_id.get_mut(self.by_link.get(&link)?)
    }

    pub(crate) fn contains(&self, id: ParticipantId) -> bool {
        self.by_id.contains_key(&id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Participant> {
        self.by_id.values()
    }

    /// Participants in the roster (echo tests are not).
    pub(crate) fn in_roster(&self) -> impl Iterator<Item = &Participant> {
        self.by_id.values().filter(|p| p.in_roster())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.remembered.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> PublicKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_le_bytes());
        PublicKey(k)
    }

    fn entry(id: ParticipantId, link: Link) -> Participant {
        Participant {
            id,
            key: key(id),
            fingerprint: String::new(),
            link,
            own_name: String::new(),
            name: format!("p{id}"),
            role: Role::SPEAKER,
            self_muted: false,
            deafened: false,
            since: Instant::now(),
            via: String::new(),
            wants_levels: false,
        }
    }

    #[test]
    fn an_identity_keeps_its_id_and_new_ones_get_new_ids() {
        let mut t = Participants::default();
        let a = t.id_for(key(1));
        let b = t.id_for(key(2));
        assert_eq!(a, FIRST_PARTICIPANT_ID);
        assert_eq!(b, FIRST_PARTICIPANT_ID + 1);
        assert_eq!(t.id_for(key(1)), a);
    }

    #[test]
    fn a_rejoin_replaces_the_old_link_and_the_old_link_speaks_for_nobody() {
        let mut t = Participants::default();
        assert!(t.insert(entry(100, Link::Native(7))).is_none());
        let old = t.insert(entry(100, Link::Browser(3))).map(|p| p.link);
        assert_eq!(old, Some(Link::Native(7)));
        assert_eq!(t.id_of(Link::Native(7)), None);
        assert_eq!(t.id_of(Link::Browser(3)), Some(100));
        assert_eq!(t.len(), 1);
        assert!(t.remove(100).is_some());
        assert_eq!(t.id_of(Link::Browser(3)), None);
        assert!(t.remove(100).is_none());
    }

    #[test]
    fn remembered_identities_are_bounded_and_present_ones_are_kept() {
        let mut t = Participants::default();
        let here = t.id_for(key(0));
        t.insert(Participant { key: key(0), ..entry(here, Link::Rtp(1)) });
        for n in 1..=MAX_REMEMBERED_IDENTITIES as u32 + 50 {
            t.id_for(key(n));
        }
        assert_eq!(t.remembered(), MAX_REMEMBERED_IDENTITIES);
        assert_eq!(t.id_for(key(0)), here, "a participant in the room keeps its id");
        assert_ne!(t.id_for(key(1)), FIRST_PARTICIPANT_ID + 1, "the oldest absent identity was forgotten");
    }
}
