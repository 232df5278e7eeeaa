//! Plain RTP/Opus senders (RFC 3550 + RFC 7587) as room participants: ffmpeg,
//! GStreamer, VLC, hardware encoders, Remote Audio Aggregation's client, `viz send --rtp`.
//!
//! Datagrams arrive on the RTP port (RTCP on the next one, or multiplexed onto the RTP
//! port, RFC 5761). Each is parsed by `viz_proto::rtp`; anything malformed, of another
//! payload type or not an Opus packet is dropped and counted. The SSRC names the
//! sender. An SSRC the [`AllowList`] does not allow is *pending*: counted and shown to
//! the admin with its address, never mixed. An allowed one is mixed only from its
//! address, joins the room on its first packets (RFC 3550 A.1 probation: two in
//! sequence) and leaves after [`RTP_IDLE`] without RTP or RTCP, or on an RTCP BYE.
//! A sender that restarts (a jump in its sequence numbers, confirmed by the next
//! packet) gets a new stream id, so the mixer's jitter buffer starts over instead of
//! waiting for timestamps from its previous life.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};
use serde::Serialize;
use tokio::net::UdpSocket;
use viz_audio::mixer::{ParticipantId, Role};
use viz_proto::rtcp::{RtcpCompound, RtcpPacket, SDES_CNAME, SDES_NAME};
use viz_proto::rtp::{InterarrivalJitter, RtpError, RtpPacket, SeqVerdict, SequenceState, is_rtcp};
use viz_proto::{ByeReason, OwnedMedia, PublicKey};

use super::Room;
use super::admission::Arrival;
use super::mixing::ToMixer;
use super::participants::Link;
use super::rtp_allow::{AllowList, AllowRule, AllowedFrom};
use super::rtp_pending::PendingIndex;
use crate::listener::canonical;

/// An RTP participant with neither RTP nor RTCP for this long has left.
pub const RTP_IDLE: Duration = Duration::from_secs(30);
/// A pending sender not heard from for this long is forgotten.
const PENDING_FORGET: Duration = Duration::from_secs(300);
/// Pending senders tracked at most: a flood of random SSRCs cannot grow the table
/// beyond this, and when it is full the oldest pending one makes way. Accepted senders
/// are never refused a place (the allow list, which only admins change, bounds them).
pub const MAX_PENDING: usize = 1024;
/// Pending senders tracked per source address: one address sending random SSRCs
/// pushes out only its own.
pub const MAX_PENDING_PER_ADDRESS: usize = 16;
/// Addresses remembered per pending sender, for the admin to choose from.
const MAX_ADDRESSES_SEEN: usize = 4;

#[derive(Debug, Clone)]
pub struct RtpInputConfig {
    /// The RTP port; RTCP is on the next one.
    pub bind: SocketAddr,
    pub payload_type: u8,
    pub allow: Vec<AllowRule>,
    /// Admit every SSRC (a trusted LAN).
    pub open: bool,
}

/// Why RTP datagrams were dropped, and how many came.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RtpCounters {
    pub datagrams: u64,
    pub mixed: u64,
    pub too_short: u64,
    pub bad_version: u64,
    pub csrc_past_end: u64,
    pub extension_past_end: u64,
    pub bad_padding: u64,
    pub wrong_payload_type: u64,
    pub not_opus: u64,
    pub pending: u64,
    pub wrong_address: u64,
    pub probation: u64,
    pub table_full: u64,
    pub rtcp: u64,
    pub rtcp_malformed: u64,
}

impl RtpCounters {
    fn malformed(&mut self, e: RtpError) {
        match e {
            RtpError::TooShort => self.too_short += 1,
            RtpError::Version => self.bad_version += 1,
            RtpError::CsrcPastEnd => self.csrc_past_end += 1,
            RtpError::ExtensionPastEnd => self.extension_past_end += 1,
            RtpError::BadPadding => self.bad_padding += 1,
            _ => self.rtcp_malformed += 1,
        }
    }

    /// Every datagram that was dropped, for the metrics.
    pub fn dropped(&self) -> u64 {
        self.too_short
            + self.bad_version
            + self.csrc_past_end
            + self.extension_past_end
            + self.bad_padding
            + self.wrong_payload_type
            + self.not_opus
            + self.pending
            + self.wrong_address
            + self.table_full
            + self.rtcp_malformed
    }
}

/// One SSRC seen on the port.
pub(crate) struct RtpSender {
    /// Where its last packet came from.
    pub from: SocketAddr,
    /// While pending: the addresses its packets came from (the first few). An admin
    /// who accepts it without naming an address gets the one address seen, or is asked
    /// to choose when there were several (one may be an impostor).
    pub seen_from: Vec<SocketAddr>,
    /// With a first-seen rule: the address it is held to.
    pub bound: Option<SocketAddr>,
    pub last_seen: Instant,
    pub packets: u64,
    pub bytes: u64,
    pub wrong_address: u64,
    pub last_wrong_address: Option<SocketAddr>,
    seq: SequenceState,
    jitter: InterarrivalJitter,
    stream: u8,
    /// Loss over the last completed second, 0..=1.
    pub loss: f32,
    /// From its RTCP: SDES NAME or CNAME, and the last sender report's counts.
    pub sdes_name: Option<String>,
    pub sender_packets: Option<u32>,
}

impl RtpSender {
    fn new(from: SocketAddr, now: Instant) -> Self {
        Self {
            from,
            seen_from: vec![from],
            bound: None,
            last_seen: now,
            packets: 0,
            bytes: 0,
            wrong_address: 0,
            last_wrong_address: None,
            seq: SequenceState::default(),
            jitter: InterarrivalJitter::default(),
            stream: 0,
            loss: 0.0,
            sdes_name: None,
            sender_packets: None,
        }
    }

    /// Out of the room (left, timed out, kicked): what it sends next is a new stream
    /// for the jitter buffer.
    pub(crate) fn restart_stream(&mut self) {
        self.seq = SequenceState::default();
        self.stream = self.stream.wrapping_add(1);
    }

    pub fn jitter_ms(&self) -> f32 {
        (self.jitter.get() / 48.0) as f32
    }

    /// Whether `from` may speak for this sender under `rule`.
    fn admits(&mut self, rule: AllowedFrom, from: SocketAddr) -> bool {
        match rule {
            AllowedFrom::FirstSeen => *self.bound.get_or_insert(from) == from,
            AllowedFrom::FirstSeenHost => self.bound.get_or_insert(from).ip() == from.ip(),
            r => r.admits(from),
        }
    }

    /// Whether an RTCP packet from `from` may speak for this sender (rename it, say it
    /// left): from its RTP address or the port above it (RFC 3550 §11), or as its rule
    /// allows.
    fn rtcp_admits(&self, rule: Option<AllowedFrom>, from: SocketAddr) -> bool {
        let near = |a: SocketAddr| {
            let a = canonical(a);
            a.ip() == from.ip() && (a.port() == from.port() || a.port().wrapping_add(1) == from.port())
        };
        match rule {
            Some(AllowedFrom::Anywhere) => true,
            Some(r @ AllowedFrom::Host(_)) => r.admits(from),
            Some(AllowedFrom::FirstSeenHost) => self.bound.unwrap_or(self.from).ip() == from.ip(),
            Some(AllowedFrom::Exact(a)) => near(a),
            Some(AllowedFrom::FirstSeen) | None => near(self.bound.unwrap_or(self.from)),
        }
    }
}

/// The settings-file key of an SSRC.
pub(crate) fn rtp_key(ssrc: u32) -> PublicKey {
    let mut h = Blake2s256::new();
    h.update(b"viz rtp ssrc v1\0");
    h.update(ssrc.to_be_bytes());
    PublicKey(h.finalize().into())
}

/// The room's RTP door: the allowed senders and everyone seen. Its sockets are the
/// shell's ([`RtpSockets`]).
pub(crate) struct RtpInput {
    /// The RTP port (RTCP is the one above).
    pub port: u16,
    pub payload_type: u8,
    pub allow: AllowList,
    pub senders: HashMap<u32, RtpSender>,
    /// Which of `senders` wait for an admin, oldest first.
    pub pending: PendingIndex,
    pub counters: RtpCounters,
}

impl RtpInput {
    /// Binds the RTP port and the RTCP port above it. With port 0 the system picks a
    /// pair that is free.
    pub(crate) async fn bind(cfg: &RtpInputConfig, allow: AllowList) -> Result<(Self, RtpSockets), String> {
        let mut last = String::new();
        for _ in 0..20 {
            let rtp =
                bind_udp(cfg.bind).await.map_err(|e| format!("cannot listen for RTP on UDP {}: {e}", cfg.bind))?;
            let local = rtp.local_addr().map_err(|e| e.to_string())?;
            let rtcp_addr = SocketAddr::new(local.ip(), local.port().wrapping_add(1));
            match bind_udp(rtcp_addr).await {
                Ok(rtcp) if local.port() < u16::MAX => {
                    let input = Self {
                        port: local.port(),
                        payload_type: cfg.payload_type,
                        allow,
                        senders: HashMap::new(),
                        pending: PendingIndex::default(),
                        counters: RtpCounters::default(),
                    };
                    return Ok((input, RtpSockets { rtp, rtcp }));
                }
                Ok(_) => last = "the RTP port must be below 65535 (RTCP uses the next one)".into(),
                Err(e) => last = format!("cannot listen for RTCP on UDP {rtcp_addr}: {e}"),
            }
            if cfg.bind.port() != 0 {
                break;
            }
        }
        Err(last)
    }
}

/// The RTP and RTCP sockets, read by the room's shell.
pub(crate) struct RtpSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

/// Binds UDP; `[::]` takes IPv4 too, and falls back to `0.0.0.0` without IPv6.
async fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    match UdpSocket::bind(addr).await {
        Err(_) if addr.ip() == std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) => {
            UdpSocket::bind(SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port())).await
        }
        r => r,
    }
}

/// Waits for a datagram on a socket that may not exist (then forever).
pub(crate) async fn recv_on(sock: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl RtpInput {
    /// Whether a new pending sender from `from` may be tracked, after pushing out the
    /// oldest pending one of that address, or of all, if their share is full.
    fn make_room_for_pending(&mut self, from: SocketAddr) -> bool {
        let ip = from.ip();
        let oldest = if self.pending.of_address(ip) >= MAX_PENDING_PER_ADDRESS {
            self.pending.oldest(Some(ip))
        } else if self.pending.len() >= MAX_PENDING {
            self.pending.oldest(None)
        } else {
            return true;
        };
        match oldest {
            Some(ssrc) => {
                self.forget(ssrc);
                true
            }
            None => false,
        }
    }

    /// Forgets a sender altogether.
    pub(crate) fn forget(&mut self, ssrc: u32) {
        self.senders.remove(&ssrc);
        self.pending.remove(ssrc);
    }

    /// An admin accepted `ssrc` (durably): it is no longer pending.
    pub(crate) fn accept(&mut self, ssrc: u32, from: AllowedFrom) -> Result<(), super::rtp_allow::AllowError> {
        self.allow.allow(ssrc, from)?;
        self.pending.remove(ssrc);
        if let Some(s) = self.senders.get_mut(&ssrc) {
            // A new binding replaces the first-seen one.
            s.bound = None;
        }
        Ok(())
    }

    /// An admin revoked `ssrc` (durably): what it sends is pending again, and it stops
    /// being a new stream's continuation.
    pub(crate) fn revoke(&mut self, ssrc: u32) -> Result<(), super::rtp_allow::AllowError> {
        let revoked = self.allow.revoke(ssrc);
        if let Some(s) = self.senders.get_mut(&ssrc) {
            s.restart_stream();
            if self.allow.rule(ssrc).is_none() {
                self.pending.add(ssrc, s.from.ip());
            }
        }
        revoked
    }
}

impl Room<'_> {
    /// One datagram on the RTP port.
    pub(crate) fn on_rtp(&mut self, from: SocketAddr, at: Instant, data: &[u8]) {
        let from = canonical(from);
        let Some(rtp) = self.rtp.as_mut() else { return };
        rtp.counters.datagrams += 1;
        if is_rtcp(data) {
            self.on_rtcp(from, at, data);
            return;
        }
        let p = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => {
                rtp.counters.malformed(e);
                tracing::debug!(%from, reason = e.as_str(), "RTP datagram dropped");
                return;
            }
        };
        if p.header.payload_type != rtp.payload_type {
            rtp.counters.wrong_payload_type += 1;
            return;
        }
        if p.payload.len() > viz_proto::payload::MAX_FRAME_LEN || viz_audio::codec::packet_samples(p.payload).is_err() {
            rtp.counters.not_opus += 1;
            return;
        }
        let ssrc = p.header.ssrc;
        let rule = rtp.allow.rule(ssrc);
        if rule.is_none() && !rtp.senders.contains_key(&ssrc) && !rtp.make_room_for_pending(from) {
            rtp.counters.table_full += 1;
            return;
        }
        let pending = &mut rtp.pending;
        let sender = rtp.senders.entry(ssrc).or_insert_with(|| {
            if rule.is_none() {
                pending.add(ssrc, from.ip());
                tracing::info!(
                    "RTP sender {ssrc:#010x} from {from} is pending: accept it on the admin page, with the API, or --rtp-allow {ssrc}"
                );
            }
            RtpSender::new(from, at)
        });
        sender.packets += 1;
        sender.bytes += p.payload.len() as u64;
        let Some(rule) = rule else {
            sender.last_seen = at;
            sender.from = from;
            if sender.seen_from.len() < MAX_ADDRESSES_SEEN && !sender.seen_from.contains(&from) {
                sender.seen_from.push(from);
            }
            rtp.counters.pending += 1;
            return;
        };
        if !sender.admits(rule, from) {
            rtp.counters.wrong_address += 1;
            sender.wrong_address += 1;
            if sender.last_wrong_address != Some(from) {
                tracing::warn!("RTP sender {ssrc:#010x}: packets from {from} refused (it is held to another address)");
            }
            sender.last_wrong_address = Some(from);
            return;
        }
        sender.last_seen = at;
        sender.from = from;
        match sender.seq.update(p.header.sequence) {
            SeqVerdict::Probation => {
                rtp.counters.probation += 1;
                return;
            }
            SeqVerdict::Restarted => {
                sender.stream = sender.stream.wrapping_add(1);
                sender.jitter.restart();
                tracing::info!("RTP sender {ssrc:#010x} restarted its stream");
            }
            SeqVerdict::Valid | SeqVerdict::Late => {}
        }
        let arrival = at.saturating_duration_since(self.started).as_micros() as i64 * 48 / 1000;
        sender.jitter.update(arrival, p.header.timestamp);
        rtp.counters.mixed += 1;
        let mut media = OwnedMedia::new(sender.stream, p.header.sequence, p.header.timestamp, p.header.marker);
        media.push_frame(p.payload);
        let from = sender.from;
        let pid = match self.participants.id_of(Link::Rtp(ssrc)) {
            Some(pid) => pid,
            None => self.rtp_join(ssrc, from, at),
        };
        self.net.media_in += 1;
        self.mixer.send(ToMixer::Media { id: pid, at, media });
    }

    /// One datagram on the RTCP port (or RTCP multiplexed onto the RTP port).
    pub(crate) fn on_rtcp(&mut self, from: SocketAddr, at: Instant, data: &[u8]) {
        let from = canonical(from);
        let Some(rtp) = self.rtp.as_mut() else { return };
        rtp.counters.rtcp += 1;
        let Ok(compound) = RtcpCompound::parse(data) else {
            rtp.counters.rtcp_malformed += 1;
            return;
        };
        let mut renamed = Vec::new();
        let mut left = Vec::new();
        for packet in compound.packets() {
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    let rule = rtp.allow.rule(sr.ssrc);
                    if let Some(s) = rtp.senders.get_mut(&sr.ssrc).filter(|s| s.rtcp_admits(rule, from)) {
                        s.sender_packets = Some(sr.packet_count);
                        s.last_seen = at;
                    }
                }
                RtcpPacket::SourceDescription(items) => {
                    for (ssrc, kind, text) in items {
                        let rule = rtp.allow.rule(ssrc);
                        let Some(s) = rtp.senders.get_mut(&ssrc).filter(|s| s.rtcp_admits(rule, from)) else {
                            continue;
                        };
                        if kind != SDES_NAME && !(kind == SDES_CNAME && s.sdes_name.is_none()) {
                            continue;
                        }
                        let name = viz_proto::control::sanitize_name(&String::from_utf8_lossy(text));
                        if !name.is_empty() && s.sdes_name.as_deref() != Some(&name) {
                            s.sdes_name = Some(name);
                            renamed.push(ssrc);
                        }
                    }
                }
                RtcpPacket::Bye { ssrcs, .. } => {
                    for ssrc in ssrcs {
                        let rule = rtp.allow.rule(ssrc);
                        if rtp.senders.get(&ssrc).is_some_and(|s| s.rtcp_admits(rule, from)) {
                            left.push(ssrc);
                        }
                    }
                }
                RtcpPacket::ReceiverReport { .. } | RtcpPacket::Other { .. } => {}
            }
        }
        for ssrc in renamed {
            self.rtp_sdes_renamed(ssrc);
        }
        for ssrc in left {
            self.rtp_leave(ssrc, ByeReason::Leaving);
        }
    }

    /// The name an RTP sender gives itself: its SDES NAME or CNAME, or its SSRC.
    fn rtp_own_name(&self, ssrc: u32) -> String {
        let sdes = self.rtp.as_ref().and_then(|r| r.senders.get(&ssrc)).and_then(|s| s.sdes_name.clone());
        sdes.unwrap_or_else(|| format!("RTP {ssrc:08x}"))
    }

    /// The name an RTP sender goes by: an admin's, or its own.
    pub(crate) fn rtp_name(&self, ssrc: u32) -> String {
        self.settings.get(&rtp_key(ssrc)).name.unwrap_or_else(|| self.rtp_own_name(ssrc))
    }

    fn rtp_sdes_renamed(&mut self, ssrc: u32) {
        let (own_name, name) = (self.rtp_own_name(ssrc), self.rtp_name(ssrc));
        let Some(p) = self.participants.of_link_mut(Link::Rtp(ssrc)) else { return };
        p.own_name = own_name;
        if p.name != name {
            p.name = name;
            let id = p.id;
            let entry = self.roster_entry(id);
            self.announce_entry(entry);
        }
    }

    /// An allowed sender's first packets: it becomes a participant.
    fn rtp_join(&mut self, ssrc: u32, from: SocketAddr, now: Instant) -> ParticipantId {
        let arrival = Arrival {
            key: rtp_key(ssrc),
            link: Link::Rtp(ssrc),
            own_name: self.rtp_own_name(ssrc),
            role: Role::SEND_ONLY,
            via: format!("RTP {ssrc:#010x} from {from}"),
            wants_levels: false,
        };
        self.admit(arrival, now)
    }

    /// An RTP participant leaves the room (BYE, silence, revoked); the sender stays
    /// known and rejoins if it sends again while allowed.
    pub(crate) fn rtp_leave(&mut self, ssrc: u32, reason: ByeReason) {
        if let Some(s) = self.rtp.as_mut().and_then(|r| r.senders.get_mut(&ssrc)) {
            s.restart_stream();
        }
        self.link_ended(Link::Rtp(ssrc), reason);
    }

    /// Once a second: loss per sender, idle senders leave, stale pending ones go.
    pub(crate) fn rtp_every_second(&mut self, now: Instant) {
        let Some(rtp) = self.rtp.as_mut() else { return };
        let participants = &self.participants;
        let mut idle = Vec::new();
        let pending = &mut rtp.pending;
        rtp.senders.retain(|&ssrc, s| {
            s.loss = s.seq.loss_since_last();
            let quiet = now.saturating_duration_since(s.last_seen);
            let in_room = participants.id_of(Link::Rtp(ssrc)).is_some();
            if in_room && quiet >= RTP_IDLE {
                idle.push(ssrc);
            }
            let keep = in_room || quiet < PENDING_FORGET;
            if !keep {
                pending.remove(ssrc);
            }
            keep
        });
        for ssrc in idle {
            self.rtp_leave(ssrc, ByeReason::Other(0xff));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_keys_differ_per_ssrc_and_from_browser_keys() {
        assert_eq!(rtp_key(1), rtp_key(1));
        assert_ne!(rtp_key(1), rtp_key(2));
        assert_ne!(rtp_key(1), super::super::browser::browser_key("1"));
    }

    #[test]
    fn a_first_seen_rule_holds_the_sender_to_its_first_address() {
        let now = Instant::now();
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let mut s = RtpSender::new(a, now);
        assert!(s.admits(AllowedFrom::FirstSeen, a));
        assert!(!s.admits(AllowedFrom::FirstSeen, b));
        assert!(s.admits(AllowedFrom::Anywhere, b));
        let mut open = RtpSender::new(a, now);
        assert!(open.admits(AllowedFrom::FirstSeenHost, a));
        assert!(open.admits(AllowedFrom::FirstSeenHost, "10.0.0.1:7000".parse().unwrap()), "a new port of the host");
        assert!(!open.admits(AllowedFrom::FirstSeenHost, b));
        // RTCP from the RTP port or the one above it; not from elsewhere on the host.
        let rule = Some(AllowedFrom::FirstSeen);
        assert!(s.rtcp_admits(rule, a) && s.rtcp_admits(rule, "10.0.0.1:5001".parse().unwrap()));
        assert!(!s.rtcp_admits(rule, "10.0.0.1:6000".parse().unwrap()) && !s.rtcp_admits(rule, b));
        assert!(s.rtcp_admits(Some(AllowedFrom::Host("10.0.0.1".parse().unwrap())), "10.0.0.1:6000".parse().unwrap()));
    }
}
