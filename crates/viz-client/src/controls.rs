//! The mute and deafen keys and push to talk, one state for `viz join`, `viz host` and
//! the host's own audio in a room. Deafening (hear nothing) also closes the
//! microphone, as in other voice apps, so nobody talks to someone who cannot hear the
//! answer; others see that as muted. Muting while deafened ends both. Push to talk
//! opens the microphone only while its key is held; others do not see that as a mute
//! (they just hear nothing, as from someone silent).

use crate::join::UserCommand;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    pub muted: bool,
    pub deafened: bool,
    /// Push to talk is on (`--ptt`): the microphone needs the key held.
    pub push_to_talk: bool,
    pub ptt_held: bool,
}

impl Controls {
    pub fn new(muted: bool) -> Self {
        Self { muted, ..Self::default() }
    }

    /// Whether the microphone is closed (muted, deafened, or push to talk not held).
    pub fn mic_off(&self) -> bool {
        self.shown_muted() || (self.push_to_talk && !self.ptt_held)
    }

    /// Whether others see this participant muted (push to talk is not a mute).
    pub fn shown_muted(&self) -> bool {
        self.muted || self.deafened
    }

    /// What others are told: muted, and deafened.
    pub fn shown(&self) -> (bool, bool) {
        (self.shown_muted(), self.deafened)
    }

    /// The message that tells them.
    pub fn mute_message(&self) -> viz_proto::ControlMessage {
        viz_proto::ControlMessage::Mute { muted: self.shown_muted(), deafened: self.deafened }
    }

    /// Applies a mute or deafen key and returns the line that says what changed;
    /// `None` for other commands.
    pub fn apply(&mut self, cmd: UserCommand) -> Option<&'static str> {
        match cmd {
            UserCommand::ToggleMute if self.deafened => {
                (self.muted, self.deafened) = (false, false);
                Some("Hearing again, microphone on")
            }
            UserCommand::PushToTalk(held) => {
                self.ptt_held = held;
                None
            }
            UserCommand::ToggleMute => {
                self.muted = !self.muted;
                Some(if self.muted { "Microphone muted (m to unmute)" } else { "Microphone on" })
            }
            UserCommand::ToggleDeafen => {
                self.deafened = !self.deafened;
                Some(match (self.deafened, self.muted) {
                    (true, _) => "Deafened: you hear nothing and your microphone is off (d to undo)",
                    (false, true) => "Hearing again (microphone still muted: m to unmute)",
                    (false, false) => "Hearing again, microphone on",
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deafen_closes_the_microphone_and_undeafen_restores_the_mute_before() {
        let mut c = Controls::new(false);
        c.apply(UserCommand::ToggleDeafen);
        assert!(c.deafened && c.mic_off());
        c.apply(UserCommand::ToggleDeafen);
        assert!(!c.deafened && !c.mic_off(), "the microphone was on before deafening");
        c.apply(UserCommand::ToggleMute);
        c.apply(UserCommand::ToggleDeafen);
        c.apply(UserCommand::ToggleDeafen);
        assert!(c.mic_off(), "the microphone was muted before deafening");
        c.apply(UserCommand::ToggleDeafen);
        assert_eq!(c.apply(UserCommand::ToggleMute), Some("Hearing again, microphone on"));
        assert_eq!(c, Controls::default());
        assert_eq!(c.apply(UserCommand::Leave), None);
    }
}
