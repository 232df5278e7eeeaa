//! The room's answers to the REST API about plain RTP (senders, forwards) and
//! recordings.

use std::time::Instant;

use viz_proto::ByeReason;

use super::Room;
use super::outputs::{OutputKind, OutputSource};
use super::participants::Link;
use super::rtp_allow::AllowedFrom;
use super::rtp_in::rtp_key;
use crate::web::messages::{AdminError, ApiReply, ForwardInfo, RecordingInfo, RtpInfo, RtpInputInfo, RtpSenderInfo};

fn source_json(source: OutputSource) -> serde_json::Value {
    match source {
        OutputSource::Mix => "mix".into(),
        OutputSource::Participant(pid) => pid.into(),
    }
}

impl Room<'_> {
    fn rtp_off() -> AdminError {
        AdminError::Conflict("RTP input is off: start the server with --rtp-port".into())
    }

    pub(crate) fn rtp_sender_info(&self, ssrc: u32, now: Instant) -> Option<RtpSenderInfo> {
        let rtp = self.rtp.as_ref()?;
        let rule = rtp.allow.rule(ssrc);
        let seen = rtp.senders.get(&ssrc);
        if rule.is_none() && seen.is_none() {
            return None;
        }
        let in_room = self.participants.of_link(Link::Rtp(ssrc));
        let name = in_room.map_or_else(|| self.rtp_name(ssrc), |p| p.name.clone());
        Some(RtpSenderInfo {
            ssrc,
            ssrc_hex: format!("{ssrc:#010x}"),
            state: if rule.is_some() { "accepted" } else { "pending" },
            allowed_from: match (rule, seen.and_then(|s| s.bound)) {
                (Some(AllowedFrom::FirstSeen), Some(bound)) => bound.to_string(),
                (Some(AllowedFrom::FirstSeenHost), Some(bound)) => bound.ip().to_string(),
                (Some(r), _) => r.to_text(),
                (None, _) => String::new(),
            },
            address: seen.map(|s| s.from.to_string()).unwrap_or_default(),
            participant_id: in_room.map(|p| p.id),
            name,
            packets: seen.map_or(0, |s| s.packets),
            bytes: seen.map_or(0, |s| s.bytes),
            last_seen_s: seen.map(|s| now.saturating_duration_since(s.last_seen).as_secs_f64()),
            wrong_address_packets: seen.map_or(0, |s| s.wrong_address),
            last_wrong_address: seen.and_then(|s| s.last_wrong_address).map(|a| a.to_string()),
            seen_from: match (rule, seen) {
                (None, Some(s)) => s.seen_from.iter().map(ToString::to_string).collect(),
                _ => Vec::new(),
            },
            reported_packets: seen.and_then(|s| s.sender_packets),
            loss_percent: seen.map_or(0.0, |s| s.loss * 100.0),
            jitter_ms: seen.map_or(0.0, |s| s.jitter_ms()),
        })
    }

    fn forward_infos(&self) -> Vec<ForwardInfo> {
        self.outputs
            .by_id
            .values()
            .filter_map(|o| match &o.kind {
                OutputKind::Forward { id, forward } => Some(ForwardInfo {
                    id: *id,
                    target: forward.target.to_string(),
                    source: source_json(o.source),
                    payload_type: forward.payload_type,
                    ssrc: forward.ssrc,
                    packets: forward.packets,
                    sdp: format!("/api/rtp/forwards/{id}/sdp"),
                }),
                OutputKind::Recording { .. } => None,
            })
            .collect()
    }

    pub(crate) fn answer_rtp(&mut self, request: crate::web::messages::ApiRequest, now: Instant) -> ApiReply {
        use crate::web::messages::ApiRequest as R;
        match request {
            R::Rtp => {
                let input = self.rtp.as_ref().map(|r| RtpInputInfo {
                    port: r.port,
                    rtcp_port: r.port.wrapping_add(1),
                    payload_type: r.payload_type,
                    open: r.allow.is_open(),
                    counters: r.counters,
                });
                let mut ssrcs: Vec<u32> =
                    self.rtp.as_ref().map(|r| r.senders.keys().copied().collect()).unwrap_or_default();
                ssrcs.sort_unstable();
                let senders = ssrcs.into_iter().filter_map(|s| self.rtp_sender_info(s, now)).collect();
                ApiReply::Rtp(RtpInfo { input, senders, forwards: self.forward_infos() })
            }
            R::RtpAllow { ssrc, from, name } => ApiReply::Sender(self.rtp_allow(ssrc, from, name, now)),
            R::RtpRevoke(ssrc) => ApiReply::Done(self.rtp_revoke(ssrc)),
            R::AddForward { target, source, payload_type } => {
                let source = source.map_or(OutputSource::Mix, OutputSource::Participant);
                let pt = payload_type.unwrap_or(self.cfg.media.rtp_payload_type);
                let added = self.add_forward(target, source, pt).and_then(|id| {
                    self.forward_infos()
                        .into_iter()
                        .find(|f| f.id == id)
                        .ok_or_else(|| AdminError::Storage("the forward vanished".into()))
                });
                ApiReply::Forward(added)
            }
            R::RemoveForward(id) => ApiReply::Done(self.remove_forward(id)),
            R::ForwardSdp(id) => ApiReply::Sdp(self.forward_sdp(id)),
            R::Recordings => {
                let board = self.recorder.as_ref().map(|r| r.status.lock().unwrap_or_else(|p| p.into_inner()).clone());
                ApiReply::Recordings(
                    self.outputs
                        .by_id
                        .values()
                        .filter_map(|o| match &o.kind {
                            OutputKind::Recording { file, path } => {
                                let status = board.as_ref().and_then(|b| b.get(file)).cloned().unwrap_or_default();
                                let current = if status.path.as_os_str().is_empty() { path } else { &status.path };
                                Some(RecordingInfo {
                                    path: current.display().to_string(),
                                    source: source_json(o.source),
                                    seconds: now.saturating_duration_since(o.since).as_secs(),
                                    packets: o.packets,
                                    written: status.written,
                                    lost: status.lost,
                                    error: status.error,
                                })
                            }
                            OutputKind::Forward { .. } => None,
                        })
                        .collect(),
                )
            }
            _ => ApiReply::Done(Err(AdminError::Invalid("not an RTP request".into()))),
        }
    }

    /// Accepts (or pre-allows) `ssrc`, durably; by default from where it was seen.
    fn rtp_allow(
        &mut self,
        ssrc: u32,
        from: Option<String>,
        name: Option<String>,
        now: Instant,
    ) -> Result<RtpSenderInfo, AdminError> {
        let rtp = self.rtp.as_mut().ok_or_else(Self::rtp_off)?;
        let from = match from.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => AllowedFrom::parse(text).map_err(AdminError::Invalid)?,
            // The address the admin saw, never a later one: with several, ask which.
            _ => match rtp.senders.get(&ssrc).map(|s| s.seen_from.as_slice()) {
                Some([only]) => AllowedFrom::Exact(*only),
                Some(many @ [_, _, ..]) => {
                    let list: Vec<String> = many.iter().map(ToString::to_string).collect();
                    return Err(AdminError::Conflict(format!(
                        "RTP sender {ssrc:#010x} was seen from {}: say which to accept (\"address\")",
                        list.join(", ")
                    )));
                }
                _ => AllowedFrom::FirstSeen,
            },
        };
        if let Some(n) = &name {
            let n = viz_proto::control::sanitize_name(n);
            if n.is_empty() {
                return Err(AdminError::Invalid("a name cannot be empty".into()));
            }
            self.settings
                .update(&rtp_key(ssrc), |s| s.name = Some(n.clone()))
                .map_err(|e| AdminError::Storage(e.to_string()))?;
        }
        let rtp = self.rtp.as_mut().ok_or_else(Self::rtp_off)?;
        rtp.accept(ssrc, from).map_err(|e| AdminError::Storage(e.to_string()))?;
        tracing::info!(
            "RTP sender {ssrc:#010x} accepted (from {})",
            if from.to_text().is_empty() { "where it first sends".to_owned() } else { from.to_text() }
        );
        self.rtp_sender_info(ssrc, now).ok_or_else(|| AdminError::Storage("the sender vanished".into()))
    }

    fn rtp_revoke(&mut self, ssrc: u32) -> Result<String, AdminError> {
        let rtp = self.rtp.as_mut().ok_or_else(Self::rtp_off)?;
        let known = rtp.senders.contains_key(&ssrc);
        if rtp.allow.rule(ssrc).is_none() {
            if known {
                rtp.forget(ssrc);
                return Ok(format!("pending RTP sender {ssrc:#010x} forgotten"));
            }
            return Err(AdminError::NotFound(format!("no RTP sender {ssrc:#010x}")));
        }
        rtp.revoke(ssrc).map_err(|e| AdminError::Storage(e.to_string()))?;
        self.rtp_leave(ssrc, ByeReason::Kicked);
        tracing::info!("RTP sender {ssrc:#010x} revoked");
        Ok(format!("RTP sender {ssrc:#010x} is no longer mixed"))
    }
}
