//! What the HTTP side and the room task say to each other, and the JSON the browser
//! speaks over its WebSocket.
//!
//! The browser's WebSocket carries two kinds of message: text frames are JSON control
//! messages ([`BrowserIn`] / [`BrowserOut`]), binary frames are media packets in the
//! native payload format (`viz_proto::payload`: kind 0x01, stream, seq, timestamp,
//! flags, Opus frames), parsed by the same fuzzed parser as native media.

use std::net::SocketAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
pub use viz_proto::browser::{BrowserIn, BrowserOut, BrowserRosterEntry, MAX_BROWSER_TEXT};
use viz_proto::{AdminOp, OwnedMedia};

/// What a browser's WebSocket task sends to the room.
#[derive(Debug)]
pub enum WebEvent {
    BrowserOpen { conn: u64, peer: SocketAddr, tx: mpsc::Sender<BrowserFrame> },
    BrowserControl { conn: u64, msg: BrowserIn },
    BrowserMedia { conn: u64, at: Instant, media: OwnedMedia },
    BrowserClosed { conn: u64 },
    Api { request: ApiRequest, reply: oneshot::Sender<ApiReply> },
}

/// What the room sends down a browser's WebSocket.
#[derive(Debug)]
pub enum BrowserFrame {
    Text(String),
    Binary(Vec<u8>),
    /// Send this text, then close.
    Close(String),
}

/// A REST call the room answers.
#[derive(Debug)]
pub enum ApiRequest {
    Room,
    Participants,
    Participant(u32),
    Admin(AdminOp),
    /// A participant's gain, mute and name, changed together or not at all.
    ChangeParticipant {
        target: u32,
        change: crate::room::admin::Change,
    },
    SetRoom(RoomPatch),
    Stats,
    /// The RTP door: input, senders, forwards.
    Rtp,
    /// Allow (accept) an RTP sender, from an address (`None`: where it was seen).
    RtpAllow {
        ssrc: u32,
        from: Option<String>,
        name: Option<String>,
    },
    RtpRevoke(u32),
    AddForward {
        target: SocketAddr,
        source: Option<u32>,
        payload_type: Option<u8>,
    },
    RemoveForward(u32),
    ForwardSdp(u32),
    Recordings,
}

#[derive(Debug)]
pub enum ApiReply {
    Room(RoomInfo),
    Participants(Vec<ParticipantInfo>),
    Participant(Option<ParticipantInfo>),
    Done(Result<String, AdminError>),
    Stats(StatsInfo),
    Rtp(RtpInfo),
    Sender(Result<RtpSenderInfo, AdminError>),
    Forward(Result<ForwardInfo, AdminError>),
    Sdp(Option<String>),
    Recordings(Vec<RecordingInfo>),
}

/// Why a room operation failed; the HTTP status follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// No such participant (404).
    NotFound(String),
    /// The request names something that cannot be done (422).
    Invalid(String),
    /// Saving the change failed (500: the server's disk, not the request).
    Storage(String),
    /// The server is not set up for this, or the request must say more (409): RTP
    /// input is off; a sender seen from several addresses is accepted without one.
    Conflict(String),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound(m) | Self::Invalid(m) | Self::Storage(m) | Self::Conflict(m) => f.write_str(m),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomPatch {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomInfo {
    pub name: String,
    pub password_required: bool,
    pub participants: usize,
    pub sample_rate: u32,
    pub frame_ms: u32,
    pub bitrate: u32,
    pub fec: bool,
    pub dtx: bool,
    pub pass_through: bool,
    pub jitter_max_ms: u32,
    pub test_source: bool,
    pub udp_port: u16,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantInfo {
    pub id: u32,
    pub name: String,
    /// native, browser or test source
    pub kind: &'static str,
    pub address: String,
    pub transport: String,
    pub key: String,
    pub talking: bool,
    pub level_dbfs: f32,
    pub loss_percent: f32,
    pub jitter_ms: f32,
    pub gain_percent: u16,
    pub muted: bool,
    pub self_muted: bool,
    pub deafened: bool,
    pub sends: bool,
    pub receives: bool,
    pub connected_s: u64,
}

/// One second of the room, for the admin page's graphs.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StatsPoint {
    /// Seconds since the server started.
    pub t: u64,
    pub mix_mean_ms: f32,
    pub mix_p99_ms: f32,
    pub mix_max_ms: f32,
    pub participants: u32,
    pub active_sources: u32,
    /// Worst inbound loss of any participant, percent.
    pub loss_max_percent: f32,
    /// Mean inbound loss over participants, percent.
    pub loss_mean_percent: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsInfo {
    pub uptime_s: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub late_ticks: u64,
    pub history: Vec<StatsPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RtpInfo {
    /// `None` when the server has no RTP input (`--rtp-port`).
    pub input: Option<RtpInputInfo>,
    pub senders: Vec<RtpSenderInfo>,
    pub forwards: Vec<ForwardInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RtpInputInfo {
    pub port: u16,
    pub rtcp_port: u16,
    pub payload_type: u8,
    /// `--rtp-open`: every SSRC is admitted.
    pub open: bool,
    pub counters: crate::room::rtp_in::RtpCounters,
}

#[derive(Debug, Clone, Serialize)]
pub struct RtpSenderInfo {
    pub ssrc: u32,
    /// The SSRC as 0x-hex, as tools print it.
    pub ssrc_hex: String,
    /// `pending` (not mixed until accepted) or `accepted`.
    pub state: &'static str,
    /// Where it may send from: "" (where it was first seen), "IP", "IP:PORT" or "*".
    pub allowed_from: String,
    /// Where its last packet came from ("" if never seen).
    pub address: String,
    /// Its participant id while it is in the room.
    pub participant_id: Option<u32>,
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
    /// Seconds since its last packet (RTP or RTCP); `None` if never seen.
    pub last_seen_s: Option<f64>,
    /// Packets refused because they came from another address.
    pub wrong_address_packets: u64,
    pub last_wrong_address: Option<String>,
    /// While pending: every address its packets came from (the first few), to accept
    /// one of them by name.
    pub seen_from: Vec<String>,
    /// What its RTCP sender reports say it sent.
    pub reported_packets: Option<u32>,
    pub loss_percent: f32,
    pub jitter_ms: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForwardInfo {
    pub id: u32,
    pub target: String,
    /// "mix", or the participant id it follows.
    pub source: serde_json::Value,
    pub payload_type: u8,
    pub ssrc: u32,
    pub packets: u64,
    /// Where the SDP describing the stream is served.
    pub sdp: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    /// The file being written (after a failure, the next one).
    pub path: String,
    /// "mix", or the participant id.
    pub source: serde_json::Value,
    pub seconds: u64,
    /// Packets handed to the recorder.
    pub packets: u64,
    /// Packets on disk.
    pub written: u64,
    /// Packets lost because no file could be written.
    pub lost: u64,
    /// Why it is not being written now (it retries every few seconds), if it is not.
    pub error: Option<String>,
}
