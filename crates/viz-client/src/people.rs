//! The other people in a call as the live view lists them, which one is selected, and
//! the keys that change how loud you hear them: ↑/↓ select, `+`/`-` change the
//! selected person's volume by 10 % (0–200 %), `0` silences them for you and brings
//! them back. The change is yours alone; the caller applies it (in a room, by asking
//! the room for a personal mix; in a call of two, on playback) and it is remembered
//! per identity ([`Volumes`]).

use viz_proto::RosterEntry;
use viz_proto::control::MAX_GAIN_PERCENT;

use crate::join::UserCommand;
use crate::roster::Roster;
use crate::volumes::Volumes;

/// One `+` or `-`.
pub const VOLUME_STEP: u16 = 10;

/// A person's new volume, to apply and to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeChange {
    pub id: u32,
    /// Their identity's fingerprint (empty for the test source).
    pub key: String,
    pub name: String,
    pub percent: u16,
}

impl VolumeChange {
    /// What the console says about it.
    pub fn line(&self) -> String {
        match self.percent {
            0 => format!("{} silenced for you (0 to bring back)", self.name),
            p => format!("You hear {} at {p} %", self.name),
        }
    }
}

#[derive(Debug, Default)]
pub struct People {
    /// Position in [`People::others`].
    selected: usize,
    pub volumes: Volumes,
    /// Volumes before `0` silenced someone, by key, to bring them back to.
    before_silence: std::collections::BTreeMap<String, u16>,
}

impl People {
    pub fn new(volumes: Volumes) -> Self {
        Self { volumes, ..Self::default() }
    }

    /// Everybody but you, in the roster's order (by id: who came first).
    pub fn others(roster: &Roster) -> Vec<&RosterEntry> {
        roster.entries().filter(|e| !e.you).collect()
    }

    /// The selected person's id, if anybody else is there.
    pub fn selected_id(&self, roster: &Roster) -> Option<u32> {
        let others = Self::others(roster);
        others.get(self.selected.min(others.len().saturating_sub(1))).map(|e| e.id)
    }

    /// How loud you hear `entry`, in percent.
    pub fn volume(&self, entry: &RosterEntry) -> u16 {
        self.volumes.get(&entry.key)
    }

    /// Applies a selection or volume key. Returns the volume to apply, if one changed;
    /// an error writing it to the config file is returned with it (the change holds
    /// for this call anyway).
    pub fn apply(&mut self, cmd: UserCommand, roster: &Roster) -> Option<(VolumeChange, Option<String>)> {
        let others = Self::others(roster);
        if others.is_empty() {
            return None;
        }
        self.selected = self.selected.min(others.len() - 1);
        let entry = others[self.selected];
        let now = self.volumes.get(&entry.key);
        let percent = match cmd {
            UserCommand::SelectPrevious => {
                self.selected = self.selected.checked_sub(1).unwrap_or(others.len() - 1);
                return None;
            }
            UserCommand::SelectNext => {
                self.selected = (self.selected + 1) % others.len();
                return None;
            }
            UserCommand::VolumeUp => (now + VOLUME_STEP).min(MAX_GAIN_PERCENT),
            UserCommand::VolumeDown => now.saturating_sub(VOLUME_STEP),
            UserCommand::ToggleSilence if now == 0 => self.before_silence.remove(&entry.key).unwrap_or(100),
            UserCommand::ToggleSilence => {
                self.before_silence.insert(entry.key.clone(), now);
                0
            }
            _ => return None,
        };
        if percent == now {
            return None;
        }
        let error = self.volumes.set(&entry.key, &entry.name, percent).err();
        let change = VolumeChange { id: entry.id, key: entry.key.clone(), name: entry.name.clone(), percent };
        Some((change, error))
    }

    /// The volumes to ask for when `entry` appears (it joined, or we reconnected):
    /// what was remembered for its identity, if not 100 %.
    pub fn remembered(&self, entry: &RosterEntry) -> Option<VolumeChange> {
        let percent = self.volumes.get(&entry.key);
        (percent != 100 && !entry.you).then(|| VolumeChange {
            id: entry.id,
            key: entry.key.clone(),
            name: entry.name.clone(),
            percent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viz_proto::ControlMessage;

    fn entry(id: u32, name: &str, you: bool) -> RosterEntry {
        RosterEntry { you, ..RosterEntry::new(id, name, format!("key-{name}")) }
    }

    fn roster() -> Roster {
        let mut r = Roster::default();
        r.apply(&ControlMessage::Roster(vec![
            entry(100, "me", true),
            entry(101, "bob", false),
            entry(102, "dan", false),
        ]));
        r
    }

    #[test]
    fn keys_select_and_change_the_selected_persons_volume() {
        let r = roster();
        let mut p = People::default();
        assert_eq!(p.selected_id(&r), Some(101), "the first other person is selected, never you");
        let (c, err) = p.apply(UserCommand::VolumeDown, &r).unwrap();
        assert_eq!((c.id, c.percent, err), (101, 90, None));
        assert_eq!(p.apply(UserCommand::SelectNext, &r), None);
        assert_eq!(p.selected_id(&r), Some(102));
        for _ in 0..15 {
            p.apply(UserCommand::VolumeUp, &r);
        }
        assert_eq!(p.volumes.get("key-dan"), 200, "at most 200 %");
        assert_eq!(p.apply(UserCommand::VolumeUp, &r), None, "no change at the top");
        p.apply(UserCommand::SelectNext, &r);
        assert_eq!(p.selected_id(&r), Some(101), "selection wraps");
        p.apply(UserCommand::SelectPrevious, &r);
        assert_eq!(p.selected_id(&r), Some(102));
        // 0 silences and brings back what was there.
        assert_eq!(p.apply(UserCommand::ToggleSilence, &r).unwrap().0.percent, 0);
        assert_eq!(p.apply(UserCommand::ToggleSilence, &r).unwrap().0.percent, 200);
        // Remembered volumes are asked for again when the person appears.
        assert_eq!(p.remembered(&entry(105, "bob", false)).map(|c| c.percent), Some(90));
        assert_eq!(p.remembered(&entry(106, "eve", false)), None);
    }

    #[test]
    fn alone_nothing_is_selected() {
        let mut r = Roster::default();
        r.apply(&ControlMessage::Roster(vec![entry(100, "me", true)]));
        let mut p = People::default();
        assert_eq!(p.selected_id(&r), None);
        assert_eq!(p.apply(UserCommand::VolumeUp, &r), None);
    }
}
