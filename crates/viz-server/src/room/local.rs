//! The host's own audio as a room participant (`viz host --http`): its engine's
//! packets go straight into the mixer and its mix straight into the engine, in
//! process (no socket, no crypto on that hop). With one friend, every mix is one
//! unity-gain source, so both directions are forwarded unchanged, as in a direct call.

use std::time::Instant;

use tokio::sync::mpsc;
use viz_audio::mixer::{ParticipantId, Role};
use viz_client::controls::Controls;
use viz_client::engine::EngineHandle;
use viz_client::join::UserCommand;
use viz_client::people::People;
use viz_client::roster::Roster;
use viz_client::status::Console;
use viz_client::view::{self, Panel, screen};
use viz_client::volumes::Volumes;
use viz_proto::{ControlMessage, MediaFrame, OwnedMedia, RosterEntry};

use super::Room;
use super::admission::Arrival;
use super::mixing::ToMixer;
use super::participants::Link;

/// Participant id of the host's own audio (ids below 100 are reserved).
pub const LOCAL_ID: ParticipantId = 2;

/// What `viz host` hands the room: its engine and the user's commands.
pub struct LocalAudio<'a> {
    pub engine: &'a EngineHandle,
    pub outgoing: mpsc::Receiver<OwnedMedia>,
    pub commands: mpsc::Receiver<UserCommand>,
    pub console: Console,
    pub name: String,
    /// How loud the host hears each person, remembered per identity.
    pub volumes: Volumes,
}

/// The host's side of its link: its audio engine and console. Its name and mute are
/// in the participant table like everyone's.
pub(crate) struct Local<'a> {
    pub engine: &'a EngineHandle,
    pub console: Console,
    /// The host's view of the room, as a native joiner keeps it, for its console lines.
    pub roster: Roster,
    pub controls: Controls,
    /// The host's selection and volumes in the live view.
    pub people: People,
    pub next_draw: Instant,
    pub notices: viz_client::status::Notices,
}

impl<'a> Room<'a> {
    /// Takes the host into the room and starts its audio.
    pub(crate) fn add_local(&mut self, local: Local<'a>, name: String, now: Instant) {
        local.engine.start();
        self.local = Some(local);
        let arrival = Arrival {
            key: self.cfg.keypair.public(),
            link: Link::Local,
            own_name: name,
            role: Role::SPEAKER,
            via: "this machine".into(),
            wants_levels: true,
        };
        self.admit(arrival, now);
        if let Some(l) = self.local.as_mut() {
            if let Some(line) = l.roster.settle() {
                l.console.line(line);
            }
            l.console.line(l.console.keys_hint("stop hosting"));
        }
    }

    pub(crate) fn on_local_media(&mut self, media: OwnedMedia) {
        if self.local.is_some() && self.shutting_down.is_none() {
            self.net.media_in += 1;
            self.mixer.send(ToMixer::Media { id: LOCAL_ID, at: Instant::now(), media });
        }
    }

    pub(crate) fn deliver_local(&mut self, frame: &MediaFrame<'_>, now: Instant) {
        if let Some(l) = &self.local {
            l.engine.deliver(now, OwnedMedia::from_frame(frame));
            self.net.media_out += 1;
        }
    }

    pub(crate) fn on_local_command(&mut self, cmd: UserCommand, now: Instant) {
        match cmd {
            UserCommand::ToggleMute | UserCommand::ToggleDeafen | UserCommand::PushToTalk(_) => {
                let Some(l) = self.local.as_mut() else { return };
                let was = l.controls.shown();
                let line = l.controls.apply(cmd);
                l.engine.set_controls(l.controls);
                if let Some(line) = line {
                    l.console.line(line);
                }
                let (muted, deafened) = l.controls.shown();
                if (muted, deafened) != was {
                    self.self_muted(Link::Local, muted, deafened);
                }
            }
            UserCommand::Leave => self.begin_shutdown(now),
            UserCommand::SelectPrevious
            | UserCommand::SelectNext
            | UserCommand::VolumeUp
            | UserCommand::VolumeDown
            | UserCommand::ToggleSilence => {
                let Some(l) = self.local.as_mut() else { return };
                let Some((change, error)) = l.people.apply(cmd, &l.roster) else { return };
                l.console.line(change.line());
                if let Some(e) = error {
                    l.console.line(format!("Note: the volume is not remembered: {e}"));
                }
                self.personal_volume(Link::Local, change.id, change.percent);
            }
        }
    }

    /// When the host's live view is next redrawn (none without one).
    pub(crate) fn local_next_draw(&self) -> Option<Instant> {
        self.local.as_ref().filter(|_| screen::is_on()).map(|l| l.next_draw)
    }

    /// Redraws the host's live view when due.
    pub(crate) fn redraw_local(&mut self, now: Instant) {
        let room_name = self.cfg.room_name.clone();
        let stats = self.last_mix.clone();
        let Some(l) = self.local.as_mut().filter(|l| screen::is_on() && now >= l.next_draw) else { return };
        l.next_draw = now + view::REDRAW;
        let status = l.engine.status();
        let name = l.roster.me().map(|e| e.name.clone()).unwrap_or_default();
        screen::draw(&Panel {
            title: format!("Room '{room_name}' (you host it)"),
            people: view::rows(&l.roster, &l.people),
            you: name,
            your_level_dbfs: status.input_level_dbfs,
            controls: l.controls,
            sends: true,
            connection: format!(
                "mixing: {} participants, cycle mean {:.2} ms, p99 {:.2} ms",
                stats.participants, stats.cycle_mean_ms, stats.cycle_p99_ms
            ),
            keys: view::keys_line("stop hosting"),
        });
    }

    /// Feeds a room message to the host's roster view and prints what it says.
    pub(crate) fn show_local(&mut self, msg: &ControlMessage) {
        let Some(l) = self.local.as_mut() else { return };
        let msg = match msg {
            ControlMessage::Roster(entries) => ControlMessage::Roster(
                entries.iter().map(|e| RosterEntry { you: e.id == LOCAL_ID, ..e.clone() }).collect(),
            ),
            other => other.clone(),
        };
        // Somebody new: the volume remembered for them.
        let mut remembered = Vec::new();
        if let ControlMessage::Roster(entries) = &msg {
            remembered
                .extend(entries.iter().filter(|e| l.roster.get(e.id).is_none()).filter_map(|e| l.people.remembered(e)));
        }
        if let Some(line) = l.roster.apply(&msg) {
            l.console.line(line);
        }
        for change in remembered {
            self.personal_volume(Link::Local, change.id, change.percent);
        }
    }

    /// Once a second: what the host's audio engine has to say (a device went away).
    pub(crate) fn local_notices(&mut self) {
        if let Some(l) = self.local.as_mut() {
            l.notices.print_new(&l.engine.status(), &l.console);
        }
    }

    /// The host's periodic line: who is in the room (the live view shows it already).
    pub(crate) fn local_status(&self) {
        if let Some(l) = self.local.as_ref().filter(|_| !screen::is_on()) {
            l.console.line(format!("Room '{}': {}", self.cfg.room_name, l.roster.summary()));
        }
    }
}
