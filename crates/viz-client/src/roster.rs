//! The joiner's view of the room: who is in it and who is talking.

use std::collections::BTreeMap;

use viz_proto::{ControlMessage, RosterEntry};

/// What others are told when somebody mutes or deafens ("bob deafened").
pub fn mute_words(muted: bool, deafened: bool) -> &'static str {
    match (muted, deafened) {
        (_, true) => "deafened (hears nothing)",
        (true, false) => "muted their microphone",
        (false, false) => "unmuted",
    }
}

#[derive(Debug, Default, Clone)]
pub struct Roster {
    entries: BTreeMap<u32, RosterEntry>,
    talking: Vec<u32>,
    /// The level of those talking (dBFS + 100), when the room sends levels.
    levels: BTreeMap<u32, u8>,
    /// The first full roster has arrived (later additions are announced one by one).
    settled: bool,
}

impl Roster {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<&RosterEntry> {
        self.entries.get(&id)
    }

    pub fn entries(&self) -> impl Iterator<Item = &RosterEntry> {
        self.entries.values()
    }

    pub fn find_by_name(&self, name: &str) -> Vec<&RosterEntry> {
        self.entries.values().filter(|e| e.name.eq_ignore_ascii_case(name)).collect()
    }

    pub fn me(&self) -> Option<&RosterEntry> {
        self.entries.values().find(|e| e.you)
    }

    pub fn is_talking(&self, id: u32) -> bool {
        self.talking.contains(&id)
    }

    /// How loud `id` is now (dBFS + 100; 0 when silent or not known).
    pub fn level(&self, id: u32) -> u8 {
        if self.is_talking(id) { self.levels.get(&id).copied().unwrap_or(0) } else { 0 }
    }

    /// In a call of two, the other person muted, unmuted or deafened: their one line
    /// shows it.
    pub fn other_in_two_muted(&mut self, muted: bool, deafened: bool) {
        if let Some(other) = self.entries.values_mut().next() {
            (other.self_muted, other.deafened) = (muted, deafened);
        }
    }

    /// Starts over (a reconnect brings a fresh roster).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Marks the initial roster as received; returns the line that introduces the room.
    pub fn settle(&mut self) -> Option<String> {
        if self.settled {
            return None;
        }
        self.settled = true;
        Some(format!("In the room: {}", self.summary()))
    }

    /// Applies a roster message; returns a line worth printing, if any.
    pub fn apply(&mut self, msg: &ControlMessage) -> Option<String> {
        match msg {
            ControlMessage::Roster(list) => {
                let mut lines = Vec::new();
                for e in list {
                    let before = self.entries.insert(e.id, e.clone());
                    if !self.settled {
                        continue;
                    }
                    if e.you {
                        // Only an admin changes these; the user should know.
                        match before {
                            Some(b) if b.name != e.name => lines.push(format!("An admin renamed you to {}", e.name)),
                            Some(b) if b.admin_muted != e.admin_muted => lines.push(format!(
                                "An admin {} you",
                                if e.admin_muted { "muted: nobody hears" } else { "unmuted" }
                            )),
                            Some(b) if b.gain_percent != e.gain_percent => {
                                lines.push(format!("An admin set your volume to {} %", e.gain_percent))
                            }
                            _ => {}
                        }
                        continue;
                    }
                    match before {
                        None => lines.push(format!("{} joined", e.name)),
                        Some(b) if b.name != e.name => lines.push(format!("{} is now called {}", b.name, e.name)),
                        Some(b) if b.admin_muted != e.admin_muted => lines.push(format!(
                            "{} was {} by an admin",
                            e.name,
                            if e.admin_muted { "muted" } else { "unmuted" }
                        )),
                        Some(b) if b.gain_percent != e.gain_percent => {
                            lines.push(format!("{}'s volume set to {} %", e.name, e.gain_percent))
                        }
                        Some(b) if (b.self_muted, b.deafened) != (e.self_muted, e.deafened) => {
                            lines.push(format!("{} {}", e.name, mute_words(e.self_muted, e.deafened)))
                        }
                        Some(_) => {}
                    }
                }
                (!lines.is_empty()).then(|| lines.join("\n"))
            }
            ControlMessage::Left { id, reason } => {
                let e = self.entries.remove(id)?;
                self.talking.retain(|t| t != id);
                Some(format!("{} {reason}", e.name))
            }
            ControlMessage::Talking(ids) => {
                self.talking.clone_from(ids);
                self.levels.retain(|id, _| ids.contains(id));
                None
            }
            ControlMessage::Levels(levels) => {
                self.levels.clear();
                self.levels.extend(levels.iter().copied());
                None
            }
            _ => None,
        }
    }

    /// "alice (talking), bob, carol (you, muted)".
    pub fn summary(&self) -> String {
        if self.entries.is_empty() {
            return "nobody".into();
        }
        self.entries
            .values()
            .map(|e| {
                let mut tags = Vec::new();
                if e.you {
                    tags.push("you");
                }
                if self.is_talking(e.id) {
                    tags.push("talking");
                }
                if e.deafened {
                    tags.push("deafened");
                } else if e.self_muted || e.admin_muted {
                    tags.push("muted");
                }
                if !e.sends && e.receives {
                    tags.push("listening");
                }
                if e.test_source {
                    tags.push("test source");
                }
                if e.gain_percent != 100 {
                    tags.push("gain");
                }
                let gain = if e.gain_percent != 100 { format!(" {} %", e.gain_percent) } else { String::new() };
                let tags: Vec<String> =
                    tags.into_iter().map(|t| if t == "gain" { gain.trim().to_owned() } else { t.to_owned() }).collect();
                if tags.is_empty() { e.name.clone() } else { format!("{} ({})", e.name, tags.join(", ")) }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viz_proto::ByeReason;

    fn entry(id: u32, name: &str, you: bool) -> RosterEntry {
        RosterEntry { you, ..RosterEntry::new(id, name, "") }
    }

    #[test]
    fn tracks_joins_leaves_talking_and_changes() {
        let mut r = Roster::default();
        assert_eq!(r.apply(&ControlMessage::Roster(vec![entry(1, "alice", false), entry(2, "me", true)])), None);
        assert_eq!(r.settle().as_deref(), Some("In the room: alice, me (you)"));
        assert_eq!(r.apply(&ControlMessage::Roster(vec![entry(3, "bob", false)])).as_deref(), Some("bob joined"));
        r.apply(&ControlMessage::Talking(vec![1, 3]));
        assert_eq!(r.summary(), "alice (talking), me (you), bob (talking)");
        let mut muted = entry(3, "bob", false);
        muted.admin_muted = true;
        assert_eq!(r.apply(&ControlMessage::Roster(vec![muted])).as_deref(), Some("bob was muted by an admin"));
        let left = r.apply(&ControlMessage::Left { id: 1, reason: ByeReason::Leaving });
        assert_eq!(left.as_deref(), Some("alice left"));
        assert!(!r.is_talking(1));
        assert_eq!(r.summary(), "me (you), bob (talking, muted)");
        assert_eq!(r.apply(&ControlMessage::Left { id: 99, reason: ByeReason::Leaving }), None);
    }
}
