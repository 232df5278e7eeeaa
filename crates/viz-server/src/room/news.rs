//! What everyone is told about the room, gathered and sent together: roster changes,
//! departures, who is talking, levels, and how often to report.
//!
//! A join, a mute or a change of speaker is queued, and every [`flush_interval`] the
//! queue goes out: roster changes and departures as a few reliable messages, who is
//! talking and levels as notices (not acknowledged; the next one replaces them). So a
//! member of a room of 2000 gets a few messages a second however many join, instead
//! of one message, and an acknowledgement back, per join and per change of speaker.

use std::time::{Duration, Instant};

use viz_audio::mixer::ParticipantId;
use viz_proto::control::MAX_ROSTER_ENTRIES;
use viz_proto::{ByeReason, ControlMessage, RosterEntry};

use super::Room;
use super::participants::Link;

/// Who is talking is sent once more this long after it last changed, so that a lost
/// notice does not show someone talking for good.
const TALKING_REPEAT: Duration = Duration::from_secs(1);

/// How long news waits before it goes out: 250 ms in a room of up to 500, growing
/// with the room to 1 s at 2000, so that a member's acknowledgements of roster
/// changes stay near one a second per member while thousands join.
pub(crate) fn flush_interval(audience: usize) -> Duration {
    Duration::from_micros((audience as u64 * 500).clamp(250_000, 1_000_000))
}

#[derive(Debug)]
enum Change {
    Entry(RosterEntry),
    Left { id: ParticipantId, reason: ByeReason },
}

#[derive(Debug)]
pub(crate) struct News {
    /// Roster changes in the order they happened, one per participant.
    changes: Vec<Change>,
    talking_changed: bool,
    talking_repeat_at: Option<Instant>,
    levels: Option<Vec<(ParticipantId, u8)>>,
    next_flush: Instant,
    /// The report interval members were last asked for.
    report_interval: Duration,
}

impl News {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            changes: Vec::new(),
            talking_changed: false,
            talking_repeat_at: None,
            levels: None,
            next_flush: now,
            report_interval: viz_proto::report_interval_for_room(0),
        }
    }

    pub(crate) fn next_flush(&self) -> Instant {
        self.next_flush
    }

    /// True when members are asked to report less often than a session does by default.
    pub(crate) fn pacing(&self) -> bool {
        self.report_interval != viz_proto::report_interval_for_room(0)
    }

    /// Only the latest line of a participant matters; a departure replaces its lines.
    fn forget(&mut self, id: ParticipantId) {
        self.changes.retain(|c| !matches!(c, Change::Entry(e) if e.id == id));
    }
}

impl Room<'_> {
    /// Queues a new or changed roster line for everyone.
    pub(crate) fn announce_entry(&mut self, entry: Option<RosterEntry>) {
        if let Some(entry) = entry {
            self.news.forget(entry.id);
            self.news.changes.push(Change::Entry(entry));
        }
    }

    /// Queues a departure for everyone.
    pub(crate) fn announce_left(&mut self, id: ParticipantId, reason: ByeReason) {
        self.news.forget(id);
        self.news.changes.push(Change::Left { id, reason });
    }

    /// The mixer says who is audible now.
    pub(crate) fn talking_changed(&mut self, ids: Vec<ParticipantId>) {
        self.talking = ids;
        self.news.talking_changed = true;
    }

    /// The mixer measured everyone audible; the latest measurement goes out.
    pub(crate) fn levels_measured(&mut self, levels: Vec<(ParticipantId, u8)>) {
        self.news.levels = Some(levels);
    }

    /// Sends what is queued, if it is time.
    pub(crate) fn flush_news(&mut self, now: Instant) {
        if now < self.news.next_flush {
            return;
        }
        let audience = self.audience();
        self.news.next_flush = now + flush_interval(audience.len());
        let mut lines = Vec::new();
        for change in std::mem::take(&mut self.news.changes) {
            match change {
                Change::Entry(e) => lines.push(e),
                Change::Left { id, reason } => {
                    self.send_lines(&audience, &mut lines);
                    let left = ControlMessage::Left { id, reason };
                    for &link in &audience {
                        self.tell(link, &left);
                    }
                }
            }
        }
        self.send_lines(&audience, &mut lines);
        let repeat = self.news.talking_repeat_at.is_some_and(|t| now >= t);
        if self.news.talking_changed || repeat {
            self.news.talking_repeat_at = self.news.talking_changed.then_some(now + TALKING_REPEAT);
            self.news.talking_changed = false;
            let talking = ControlMessage::Talking(self.talking.clone());
            for &link in &audience {
                self.notify(link, &talking, now);
            }
        }
        if let Some(levels) = self.news.levels.take() {
            let levels = ControlMessage::Levels(levels);
            let to: Vec<Link> =
                self.participants.in_roster().filter(|p| p.wants_levels && p.role.receives).map(|p| p.link).collect();
            for link in to {
                self.notify(link, &levels, now);
            }
        }
    }

    /// Sends queued roster lines to everyone, in messages of up to
    /// [`MAX_ROSTER_ENTRIES`].
    fn send_lines(&mut self, audience: &[Link], lines: &mut Vec<RosterEntry>) {
        for chunk in lines.chunks(MAX_ROSTER_ENTRIES) {
            let msg = ControlMessage::Roster(chunk.to_vec());
            for &link in audience {
                self.tell(link, &msg);
            }
        }
        lines.clear();
    }

    /// Like [`Room::tell`], but a native session gets it as a notice: sent now, once,
    /// not acknowledged. For state the next message replaces.
    fn notify(&mut self, link: Link, msg: &ControlMessage, now: Instant) {
        let Link::Native(sid) = link else {
            self.tell(link, msg);
            return;
        };
        let Some(path) = self.endpoint.path(sid) else { return };
        let Some(session) = self.endpoint.session_mut(sid).filter(|s| s.is_open()) else { return };
        if let Ok(n) = session.send_notice(now, msg, &mut self.out) {
            self.net.datagrams_out += 1;
            self.outbox.send(path, &self.out[..n]);
        }
    }

    /// Asks every native session to report as often as the room's size calls for, when
    /// that changes; the room's own reports follow the same pace.
    pub(crate) fn pace_reports(&mut self, now: Instant) {
        // Native sessions are what report: participants, those still joining, admins.
        let interval = viz_proto::report_interval_for_room(self.members.len());
        if interval == self.news.report_interval {
            return;
        }
        self.news.report_interval = interval;
        for sid in self.endpoint.session_ids() {
            self.pace_session(sid, now);
        }
    }

    /// Tells one session how often to report (a newcomer, or everyone on a change).
    pub(crate) fn pace_session(&mut self, sid: u32, now: Instant) {
        let ms = u16::try_from(self.news.report_interval.as_millis()).unwrap_or(u16::MAX);
        if let Some(s) = self.endpoint.session_mut(sid) {
            s.set_report_interval(now, Duration::from_millis(u64::from(ms)));
            s.send_control(ControlMessage::ReportEvery(ms));
            self.dirty.push(sid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_waits_longer_in_a_larger_room() {
        assert_eq!(flush_interval(0), Duration::from_millis(250));
        assert_eq!(flush_interval(500), Duration::from_millis(250));
        assert_eq!(flush_interval(1000), Duration::from_millis(500));
        assert_eq!(flush_interval(2000), Duration::from_secs(1));
        assert_eq!(flush_interval(10_000), Duration::from_secs(1));
    }
}
