//! What the room shows of its participants (the admin page, the REST API, metrics,
//! statistics), read from the participant table and each link's transport counters,
//! and the room's answers to the HTTP side.

use std::collections::HashMap;
use std::time::Instant;

use viz_audio::mixer::{ParticipantId, SourceStatus};

use super::mixing::TEST_SOURCE_ID;
use super::participants::Link;
use super::{HISTORY_SECONDS, Room};
use crate::listener::{Path, canonical};
use crate::web::messages::{
    AdminError, ApiReply, ApiRequest, ParticipantInfo, RoomInfo, StatsInfo, StatsPoint, WebEvent,
};

pub(crate) const KIND_NATIVE: &str = "native";
pub(crate) const KIND_BROWSER: &str = "browser";
pub(crate) const KIND_TEST_SOURCE: &str = "test source";
pub(crate) const KIND_HOST: &str = "host";
pub(crate) const KIND_RTP: &str = "RTP";

/// The test source's name in the roster and the API.
pub(crate) const TEST_SOURCE_NAME: &str = "Test source (music)";

impl Room<'_> {
    pub(crate) fn kind_of(&self, pid: ParticipantId) -> &'static str {
        match self.participants.get(pid).map(|p| p.link) {
            Some(Link::Native(_)) => KIND_NATIVE,
            Some(Link::Browser(_)) => KIND_BROWSER,
            Some(Link::Local) => KIND_HOST,
            Some(Link::Rtp(_)) => KIND_RTP,
            None if pid == TEST_SOURCE_ID && self.cfg.test_source => KIND_TEST_SOURCE,
            None => KIND_NATIVE,
        }
    }

    /// Participants in the room (not echo tests).
    pub(crate) fn admitted_count(&self) -> usize {
        self.participants.in_roster().count()
    }

    /// Participants in the room (not echo tests), with the test source, by id.
    /// Everyone's line. Sources are looked up in a map: a scan per participant made
    /// this 60 ms a second at 2000 participants, and held up every tick meanwhile.
    pub(crate) fn participant_infos(&self) -> Vec<ParticipantInfo> {
        let sources: HashMap<ParticipantId, &SourceStatus> =
            self.last_mix.sources.iter().map(|(id, s)| (*id, s)).collect();
        let info = |pid| self.participant_info_with(pid, sources.get(&pid).copied());
        let mut out: Vec<ParticipantInfo> = self.participants.in_roster().filter_map(|p| info(p.id)).collect();
        if let Some(t) = info(TEST_SOURCE_ID).filter(|_| self.cfg.test_source) {
            out.push(t);
        }
        out.sort_by_key(|p| p.id);
        out
    }

    pub(crate) fn participant_info(&self, pid: ParticipantId) -> Option<ParticipantInfo> {
        let status = self.last_mix.sources.iter().find(|(id, _)| *id == pid).map(|(_, s)| s);
        self.participant_info_with(pid, status)
    }

    fn participant_info_with(&self, pid: ParticipantId, status: Option<&SourceStatus>) -> Option<ParticipantInfo> {
        let level_dbfs = status.map_or(-100.0, |s| s.level_dbfs);
        let talking = self.talking.contains(&pid);
        if pid == TEST_SOURCE_ID && self.cfg.test_source && !self.participants.contains(pid) {
            return Some(ParticipantInfo {
                id: pid,
                name: TEST_SOURCE_NAME.into(),
                kind: KIND_TEST_SOURCE,
                address: String::new(),
                transport: "built in".into(),
                key: String::new(),
                talking,
                level_dbfs,
                loss_percent: 0.0,
                jitter_ms: 0.0,
                gain_percent: 100,
                muted: false,
                self_muted: false,
                deafened: false,
                sends: true,
                receives: false,
                connected_s: self.started.elapsed().as_secs(),
            });
        }
        let p = self.participants.get(pid).filter(|p| p.in_roster())?;
        let stored = self.settings.get(&p.key);
        let (address, transport, loss, jitter_ms) = match p.link {
            Link::Native(sid) => {
                let path = self.endpoint.path(sid)?;
                let stats = self.endpoint.session(sid)?.stats();
                let peer = self.members.get(&sid).and_then(|m| m.peer);
                let address = peer.map(|a| canonical(a).to_string()).unwrap_or_default();
                let transport = match path {
                    Path::Udp(_) => "UDP",
                    Path::Ws(_) => "WebSocket",
                };
                (address, transport, stats.loss, (stats.jitter.as_secs_f64() * 1000.0) as f32)
            }
            Link::Browser(conn) => {
                let b = self.browsers.get(&conn)?;
                (canonical(b.peer).to_string(), "browser WebSocket", b.inbound.loss, b.inbound.jitter_ms())
            }
            Link::Local => (String::new(), "in process", 0.0, 0.0),
            Link::Rtp(ssrc) => {
                let s = self.rtp.as_ref()?.senders.get(&ssrc)?;
                (s.from.to_string(), "RTP/UDP", s.loss, s.jitter_ms())
            }
        };
        Some(ParticipantInfo {
            id: pid,
            name: p.name.clone(),
            kind: self.kind_of(pid),
            address,
            transport: transport.into(),
            key: match p.link {
                Link::Rtp(ssrc) => format!("ssrc {ssrc:#010x}"),
                _ => p.fingerprint.clone(),
            },
            talking,
            level_dbfs,
            loss_percent: loss * 100.0,
            jitter_ms,
            gain_percent: stored.gain_percent,
            muted: stored.muted,
            self_muted: p.self_muted,
            deafened: p.deafened,
            sends: p.role.sends,
            receives: p.role.receives,
            connected_s: p.since.elapsed().as_secs(),
        })
    }

    pub(crate) fn stats_point(&self, infos: &[ParticipantInfo]) -> StatsPoint {
        let people: Vec<&ParticipantInfo> = infos.iter().filter(|p| p.kind != KIND_TEST_SOURCE).collect();
        let loss_max = people.iter().map(|p| p.loss_percent).fold(0.0f32, f32::max);
        let loss_mean = if people.is_empty() {
            0.0
        } else {
            people.iter().map(|p| p.loss_percent).sum::<f32>() / people.len() as f32
        };
        let mix = &self.last_mix;
        StatsPoint {
            t: self.started.elapsed().as_secs(),
            mix_mean_ms: mix.cycle_mean_ms as f32,
            mix_p99_ms: mix.cycle_p99_ms as f32,
            mix_max_ms: mix.cycle_max_ms as f32,
            participants: people.len() as u32,
            active_sources: mix.active_sources as u32,
            loss_max_percent: loss_max,
            loss_mean_percent: loss_mean,
        }
    }

    fn room_info(&self) -> RoomInfo {
        let p = &self.cfg.params;
        RoomInfo {
            name: self.cfg.room_name.clone(),
            password_required: self.cfg.password.is_some(),
            participants: self.admitted_count(),
            sample_rate: viz_audio::SAMPLE_RATE,
            frame_ms: p.frame.millis(),
            bitrate: p.bitrate,
            fec: p.fec,
            dtx: p.dtx,
            pass_through: self.cfg.pass_through,
            jitter_max_ms: self.cfg.jitter.max_delay.as_millis() as u32,
            test_source: self.cfg.test_source,
            udp_port: self.local_addr.port(),
            fingerprint: self.cfg.keypair.fingerprint().to_string(),
        }
    }

    /// Everything the HTTP side asks of the room arrives here, on the room's task.
    pub(crate) fn on_web(&mut self, ev: WebEvent, now: Instant) {
        match ev {
            WebEvent::BrowserOpen { conn, peer, tx } => self.on_browser_open(conn, peer, tx),
            WebEvent::BrowserControl { conn, msg } => self.on_browser_control(conn, msg, now),
            WebEvent::BrowserMedia { conn, at, media } => self.on_browser_media(conn, at, media),
            WebEvent::BrowserClosed { conn } => self.on_browser_closed(conn),
            WebEvent::Api { request, reply } => {
                let answer = self.answer(request, now);
                let _ = reply.send(answer);
            }
        }
    }

    pub(crate) fn answer(&mut self, request: ApiRequest, now: Instant) -> ApiReply {
        match request {
            ApiRequest::Room => ApiReply::Room(self.room_info()),
            ApiRequest::Participants => ApiReply::Participants(self.participant_infos()),
            ApiRequest::Participant(id) => ApiReply::Participant(
                self.participant_info(id).filter(|p| self.participants.contains(p.id) || p.kind == KIND_TEST_SOURCE),
            ),
            ApiRequest::Admin(op) => ApiReply::Done(logged_web_admin(self.apply_admin(op, now))),
            ApiRequest::ChangeParticipant { target, change } => {
                ApiReply::Done(logged_web_admin(self.change_participant(target, change)))
            }
            ApiRequest::SetRoom(patch) => ApiReply::Done(self.set_room(patch)),
            r @ (ApiRequest::Rtp
            | ApiRequest::RtpAllow { .. }
            | ApiRequest::RtpRevoke(_)
            | ApiRequest::AddForward { .. }
            | ApiRequest::RemoveForward(_)
            | ApiRequest::ForwardSdp(_)
            | ApiRequest::Recordings) => self.answer_rtp(r, now),
            ApiRequest::Stats => ApiReply::Stats(StatsInfo {
                uptime_s: self.started.elapsed().as_secs(),
                packets_in: self.net.media_in,
                packets_out: self.net.media_out,
                late_ticks: self.last_mix.late_ticks,
                history: self.history.iter().rev().take(HISTORY_SECONDS).rev().copied().collect(),
            }),
        }
    }

    fn set_room(&mut self, patch: crate::web::messages::RoomPatch) -> Result<String, AdminError> {
        let Some(name) = patch.name else { return Err(AdminError::Invalid("nothing to change".into())) };
        let name = viz_proto::control::sanitize_name(&name);
        if name.is_empty() {
            return Err(AdminError::Invalid("a room name cannot be empty".into()));
        }
        tracing::info!("room renamed from '{}' to '{name}'", self.cfg.room_name);
        self.cfg.room_name = name.clone();
        Ok(format!("the room is now called '{name}' (participants see it when they next join)"))
    }
}

fn logged_web_admin(result: Result<String, AdminError>) -> Result<String, AdminError> {
    match &result {
        Ok(t) => tracing::info!(ok = true, "admin (web): {t}"),
        Err(e) => tracing::info!(ok = false, "admin (web): {e}"),
    }
    result
}
