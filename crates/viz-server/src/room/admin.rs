//! What an admin may do to a participant, the same over the native admin channel,
//! the web page and the REST API: change gain, mute and name (checked whole, saved in
//! one write, then applied) and remove.

use std::time::Instant;

use viz_proto::control::MAX_GAIN_PERCENT;
use viz_proto::{AdminOp, ByeReason};

use super::Room;
use super::mixing::{TEST_SOURCE_ID, ToMixer};
use super::participants::Link;
use crate::web::messages::AdminError;

impl Room<'_> {
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
                self.remove_participant(target, ByeReason::Kicked);
                Ok(format!("{name} was removed"))
            }
        }
    }

    /// The participant `target` as something an admin may change: its link and name.
    fn changeable(&self, target: u32) -> Result<(Link, String), AdminError> {
        if target == TEST_SOURCE_ID && self.cfg.test_source {
            return Err(AdminError::Invalid("the test source cannot be changed".into()));
        }
        let p = self
            .participants
            .get(target)
            .filter(|p| p.in_roster())
            .ok_or_else(|| AdminError::NotFound(format!("no participant with id {target}")))?;
        Ok((p.link, p.name.clone()))
    }

    /// Changes a participant's gain, mute and name together: all of it is checked
    /// first, then saved in one write, then takes effect; a change that is refused
    /// leaves everything as it was.
    pub(crate) fn change_participant(&mut self, target: u32, change: Change) -> Result<String, AdminError> {
        let (_, old_name) = self.changeable(target)?;
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
            .participants
            .get(target)
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
        if let Some((n, p)) = new_name.zip(self.participants.get_mut(target)) {
            p.name = n;
        }
        let entry = self.roster_entry(target);
        self.announce_entry(entry);
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
