//! Where the room's audio goes besides its participants: recordings and RTP forwards.
//!
//! Each output is a listener in the mixer with an id of its own (from
//! [`OUTPUT_ID_BASE`], never a participant's): the mix output hears what a listener
//! who is not talking hears; a participant output is a mixer *tap* that gets that
//! participant's packets unchanged. Nobody sees outputs in the roster.
//!
//! Joining and leaving the mixer goes through [`Room::join_mixer`] and
//! [`Room::leave_mixer`] for every kind of participant, which is where per-participant
//! recordings start and stop and per-participant forwards follow their source.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use viz_audio::mixer::{Delivery, ParticipantId, Role};

use super::Room;
use super::mixing::ToMixer;
use super::recorder::{RecordMsg, file_part, timestamps};
use super::rtp_out::RtpForward;
use crate::web::messages::AdminError;

/// Mixer ids of outputs start here, far above any participant id.
pub const OUTPUT_ID_BASE: ParticipantId = 1 << 30;

/// What an output carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputSource {
    /// What everyone who is not talking hears.
    Mix,
    /// One participant's own packets.
    Participant(ParticipantId),
}

pub(crate) enum OutputKind {
    Forward { id: u32, forward: RtpForward },
    Recording { file: u64, path: PathBuf },
}

pub(crate) struct Output {
    pub source: OutputSource,
    pub kind: OutputKind,
    pub since: Instant,
    pub packets: u64,
}

#[derive(Default)]
pub(crate) struct Outputs {
    /// By mixer id.
    pub by_id: BTreeMap<ParticipantId, Output>,
    next_id: ParticipantId,
    next_forward: u32,
    next_file: u64,
}

impl Outputs {
    fn allocate(&mut self) -> ParticipantId {
        let id = OUTPUT_ID_BASE + self.next_id;
        self.next_id += 1;
        id
    }

    /// Mixer ids of the outputs that follow participant `pid`.
    fn of_participant(&self, pid: ParticipantId) -> Vec<ParticipantId> {
        self.by_id.iter().filter(|(_, o)| o.source == OutputSource::Participant(pid)).map(|(&id, _)| id).collect()
    }

    pub(crate) fn forward_by_id(&self, id: u32) -> Option<(ParticipantId, &Output)> {
        self.by_id.iter().find_map(|(&mid, o)| match o.kind {
            OutputKind::Forward { id: f, .. } if f == id => Some((mid, o)),
            _ => None,
        })
    }
}

impl Room<'_> {
    /// Puts a participant into the mixer (every kind joins through here).
    pub(crate) fn join_mixer(&mut self, pid: ParticipantId, role: Role, gain_percent: u16, muted: bool, name: &str) {
        self.mixer.send(ToMixer::Add { id: pid, role, gain: f32::from(gain_percent) / 100.0, muted });
        if role.echo || !role.sends {
            return;
        }
        if self.cfg.media.record.as_ref().is_some_and(|r| r.each) {
            self.open_recording(OutputSource::Participant(pid), &format!("{}-{pid}", file_part(name)));
        }
        for id in self.outputs.of_participant(pid) {
            self.mixer.send(ToMixer::AddTap { id, source: pid });
        }
    }

    /// Takes a participant out of the mixer: its recording ends, its forwards wait for
    /// it to come back.
    pub(crate) fn leave_mixer(&mut self, pid: ParticipantId) {
        self.mixer.send(ToMixer::Remove { id: pid });
        for id in self.outputs.of_participant(pid) {
            self.mixer.send(ToMixer::Remove { id });
            if let Some(Output { kind: OutputKind::Recording { file, .. }, .. }) = self.outputs.by_id.get(&id) {
                let file = *file;
                if let Some(r) = &self.recorder {
                    r.send(RecordMsg::Close { id: file });
                }
                self.outputs.by_id.remove(&id);
            }
        }
    }

    /// Starts a recording of `source`, named `<room>-<label>-<UTC time>.opus`.
    pub(crate) fn open_recording(&mut self, source: OutputSource, label: &str) {
        let (Some(cfg), Some(recorder)) = (self.cfg.media.record.as_ref(), self.recorder.as_ref()) else { return };
        let (stamp, iso) = timestamps();
        let path = cfg.dir.join(format!("{}-{label}-{stamp}.opus", file_part(&self.cfg.room_name)));
        let file = self.outputs.next_file;
        self.outputs.next_file += 1;
        let tags = vec![
            ("TITLE".to_owned(), format!("{} ({label})", self.cfg.room_name)),
            ("ROOM".to_owned(), self.cfg.room_name.clone()),
            ("PARTICIPANT".to_owned(), label.to_owned()),
            ("DATE".to_owned(), iso),
            ("ENCODER".to_owned(), concat!("viz ", env!("CARGO_PKG_VERSION")).to_owned()),
        ];
        recorder.send(RecordMsg::Open { id: file, path: path.clone(), tags });
        let id = self.outputs.allocate();
        self.subscribe(id, source);
        self.outputs.by_id.insert(
            id,
            Output { source, kind: OutputKind::Recording { file, path }, since: Instant::now(), packets: 0 },
        );
    }

    /// Forwards `source` as plain RTP to `target`; returns the forward's id.
    pub(crate) fn add_forward(
        &mut self,
        target: SocketAddr,
        source: OutputSource,
        payload_type: u8,
    ) -> Result<u32, AdminError> {
        if let OutputSource::Participant(pid) = source
            && !self.participants.contains(pid)
        {
            return Err(AdminError::NotFound(format!("no participant with id {pid}")));
        }
        if target.port() == 0 || target.ip().is_unspecified() {
            return Err(AdminError::Invalid(format!("{target} is not an address to send to")));
        }
        if self.forward_socket.is_none() {
            let any: std::net::IpAddr = if target.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            let bind = SocketAddr::new(any, 0);
            let sock = std::net::UdpSocket::bind(bind)
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .and_then(tokio::net::UdpSocket::from_std)
                .map_err(|e| AdminError::Storage(format!("cannot open a socket for RTP forwarding: {e}")))?;
            self.forward_socket = Some(sock);
        }
        let id = self.outputs.allocate();
        self.outputs.next_forward += 1;
        let forward_id = self.outputs.next_forward;
        let forward = RtpForward::new(target, payload_type, Instant::now());
        self.subscribe(id, source);
        self.outputs.by_id.insert(
            id,
            Output { source, kind: OutputKind::Forward { id: forward_id, forward }, since: Instant::now(), packets: 0 },
        );
        tracing::info!("RTP forward {forward_id}: {} to {target}", describe_source(source));
        Ok(forward_id)
    }

    pub(crate) fn remove_forward(&mut self, forward_id: u32) -> Result<String, AdminError> {
        let Some((id, _)) = self.outputs.forward_by_id(forward_id) else {
            return Err(AdminError::NotFound(format!("no RTP forward with id {forward_id}")));
        };
        self.mixer.send(ToMixer::Remove { id });
        let o = self.outputs.by_id.remove(&id);
        let target = match o.map(|o| o.kind) {
            Some(OutputKind::Forward { forward, .. }) => forward.target.to_string(),
            _ => String::new(),
        };
        tracing::info!("RTP forward {forward_id} to {target} removed");
        Ok(format!("RTP forward {forward_id} to {target} removed"))
    }

    /// Makes output `id` a mixer listener for `source`.
    fn subscribe(&mut self, id: ParticipantId, source: OutputSource) {
        match source {
            OutputSource::Mix => self.mixer.send(ToMixer::Add { id, role: Role::LISTENER, gain: 1.0, muted: false }),
            OutputSource::Participant(pid) => self.mixer.send(ToMixer::AddTap { id, source: pid }),
        }
    }

    /// A packet the mixer produced for output `id`.
    pub(crate) fn deliver_output(&mut self, d: &Delivery, frames: &[&[u8]], now: Instant) {
        let Some(o) = self.outputs.by_id.get_mut(&d.listener) else { return };
        o.packets += 1;
        match &mut o.kind {
            OutputKind::Recording { file, .. } => {
                let Some(r) = &self.recorder else { return };
                let mut ts = d.timestamp;
                for f in frames {
                    r.send(RecordMsg::Packet { id: *file, timestamp: ts, data: f.to_vec() });
                    ts = ts.wrapping_add(viz_audio::codec::packet_samples(f).unwrap_or(0) as u32);
                }
            }
            OutputKind::Forward { forward, .. } => {
                let Some(sock) = &self.forward_socket else { return };
                let mut ts = d.timestamp;
                for (i, f) in frames.iter().enumerate() {
                    if let Some(n) = forward.packetize(ts, d.marker && i == 0, f, now, &mut self.out)
                        && sock.try_send_to(&self.out[..n], forward.target).is_err()
                    {
                        self.net.forward_dropped += 1;
                    }
                    ts = ts.wrapping_add(viz_audio::codec::packet_samples(f).unwrap_or(0) as u32);
                }
            }
        }
    }

    /// Sender reports of the forwards, when due.
    pub(crate) fn forward_reports(&mut self, now: Instant) {
        let Some(sock) = &self.forward_socket else { return };
        let cname = format!("viz@{}", self.cfg.room_name);
        for o in self.outputs.by_id.values_mut() {
            if let OutputKind::Forward { forward, .. } = &mut o.kind
                && let Some(report) = forward.report_due(now, &cname)
            {
                let _ = sock.try_send_to(&report, forward.rtcp_target());
            }
        }
    }

    /// The SDP of forward `forward_id`.
    pub(crate) fn forward_sdp(&self, forward_id: u32) -> Option<String> {
        let (_, o) = self.outputs.forward_by_id(forward_id)?;
        let OutputKind::Forward { forward, .. } = &o.kind else { return None };
        let origin = match self.local_addr.ip() {
            ip if ip.is_unspecified() => crate::host::guess_local_ip().unwrap_or(ip),
            ip => ip,
        };
        let title = format!("Viz room '{}': {}", self.cfg.room_name, describe_source(o.source));
        Some(forward.sdp(&title, origin))
    }

    /// Closes every recording (the room is ending).
    pub(crate) fn close_recordings(&mut self) {
        let Some(r) = &self.recorder else { return };
        for o in self.outputs.by_id.values() {
            if let OutputKind::Recording { file, .. } = o.kind {
                r.send(RecordMsg::Close { id: file });
            }
        }
    }
}

pub(crate) fn describe_source(source: OutputSource) -> String {
    match source {
        OutputSource::Mix => "the room mix".into(),
        OutputSource::Participant(pid) => format!("participant {pid}"),
    }
}
