//! `viz loadtest --rtp HOST:PORT`: plain RTP/Opus senders, as Remote Audio Aggregation's
//! load test has them (40 clients, 10 speaking), plus the server's own figures.
//!
//! Each sender has its own UDP socket and SSRC, sends an RTCP sender report and source
//! description every 5 s, and a BYE at the end. Speakers send pre-encoded speech-like
//! audio every 20 ms on an absolute schedule (DTX pauses sent as nothing, as a real
//! sender does); the others send one second of it when they start, so that they are
//! in the room, then only RTCP: registered, connected, silent.
//!
//! A sender has joined when the room lists it as accepted and in the room: with
//! `--metrics` (and the admin token), [`watch_admission`] reads `/api/rtp` every
//! 250 ms for that. Without it nothing can say so, and a sender counts as joined once
//! it sends. What the room made of them is read from its `/metrics` (see
//! [`super::server`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::Result;
use tokio::net::UdpSocket;
use viz_proto::rtcp;
use viz_proto::rtp::RtpHeader;
use viz_server::room::rtp_out::sender_report;

use super::{ClientResult, ClientSpec, Voice, Window};
use zeroize::Zeroizing;

/// First SSRC of the load test's senders (then +1 each): easy to allow as a range.
pub const FIRST_SSRC: u32 = 0x7e57_0000;
/// Frames an idle sender sends when it starts (one second).
const IDLE_INTRO_FRAMES: usize = 50;

/// `verified`: [`watch_admission`] says when this sender joined; otherwise it counts
/// as joined once it sends.
pub(super) async fn sender(
    spec: ClientSpec,
    target: SocketAddr,
    payload_type: u8,
    voices: &[Voice],
    verified: bool,
) -> ClientResult {
    let mut r = ClientResult { voice: spec.speaker, settled: verified, ..Default::default() };
    tokio::time::sleep_until(spec.start_at.into()).await;
    if let Err(e) = run_sender(&spec, target, payload_type, voices, &mut r).await {
        r.failure = Some(e.to_string());
    }
    spec.settle(&mut r);
    r
}

async fn run_sender(
    spec: &ClientSpec,
    target: SocketAddr,
    payload_type: u8,
    voices: &[Voice],
    r: &mut ClientResult,
) -> Result<()> {
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let sock = UdpSocket::bind(bind).await?;
    let rtcp_target = SocketAddr::new(target.ip(), target.port().wrapping_add(1));
    let ssrc = FIRST_SSRC + spec.index as u32;
    let name = format!("load-{}", spec.index);
    // Idle senders use the first voice for their short introduction.
    let voice = &voices[spec.speaker.unwrap_or(0)];
    let frames = if spec.speaker.is_some() { usize::MAX } else { IDLE_INTRO_FRAMES };
    if !r.settled {
        r.joined = true;
        spec.settle(r);
    }
    let frame = Duration::from_millis(20);
    let mut next_frame = Instant::now();
    let mut next_rtcp = Instant::now() + Duration::from_millis(100 + (spec.index as u64 * 37) % 1000);
    let (mut k, mut seq, mut marker) = (0usize, spec.index as u16 * 1000, true);
    let (mut packets, mut octets) = (0u32, 0u32);
    let mut buf = vec![0u8; 1500];
    let mut report = Vec::with_capacity(128);
    loop {
        let now = Instant::now();
        if spec.window.over(now) {
            break;
        }
        while k < frames && now >= next_frame {
            let i = k % voice.packets.len();
            let ts = (k * 960) as u32;
            match &voice.packets[i] {
                Some(p) => {
                    let h = RtpHeader { marker, payload_type, sequence: seq, timestamp: ts, ssrc };
                    if let Some(n) = h.write(p, &mut buf) {
                        // Refused (nobody listening yet): the packet is lost, as on a network.
                        let _ = sock.send_to(&buf[..n], target).await;
                        r.media_sent += 1;
                        if spec.speaker.is_some() {
                            r.sent_frames.push((next_frame, i));
                        }
                        packets += 1;
                        octets += p.len() as u32;
                    }
                    seq = seq.wrapping_add(1);
                    marker = false;
                }
                None => marker = true,
            }
            k += 1;
            next_frame += frame;
        }
        if now >= next_rtcp {
            next_rtcp += Duration::from_secs(5);
            report.clear();
            compound(&mut report, ssrc, packets, octets, (k * 960) as u32, &name, false);
            let _ = sock.send_to(&report, rtcp_target).await;
        }
        let wake = if k < frames { next_frame.min(next_rtcp) } else { next_rtcp };
        // Until the window is known, look again every 200 ms.
        let stop = spec.window.stop_at().unwrap_or(now + Duration::from_millis(200));
        tokio::time::sleep_until(wake.min(stop).into()).await;
    }
    report.clear();
    compound(&mut report, ssrc, packets, octets, (k * 960) as u32, &name, true);
    let _ = sock.send_to(&report, rtcp_target).await;
    Ok(())
}

/// How long the room has to list a sender after its first packet.
pub(super) const LISTING_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the room's `/api/rtp` every 250 ms until every sender (SSRC `FIRST_SSRC + i`,
/// starting at `starts[i]`) is listed as accepted and in the room, or has had
/// [`LISTING_TIMEOUT`]; each is settled in the window then. Returns when each was
/// first seen listed.
pub(super) async fn watch_admission(
    api: String,
    token: Option<Zeroizing<String>>,
    starts: Vec<Instant>,
    window: Arc<Window>,
) -> Vec<Option<Instant>> {
    let n = starts.len();
    let (mut listed, mut settled) = (vec![None; n], vec![false; n]);
    let mut remaining = n;
    while remaining > 0 {
        let now = Instant::now();
        if let Ok(text) = super::server::fetch(&api, token.as_deref().map(String::as_str)).await
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            for s in v["senders"].as_array().into_iter().flatten() {
                let index = s["ssrc"].as_u64().and_then(|ssrc| ssrc.checked_sub(u64::from(FIRST_SSRC)));
                let Some(i) = index.and_then(|i| usize::try_from(i).ok()).filter(|&i| i < n) else { continue };
                if !settled[i] && s["state"] == "accepted" && !s["participant_id"].is_null() {
                    (listed[i], settled[i]) = (Some(now), true);
                    remaining -= 1;
                    window.settle(now);
                }
            }
        }
        for i in 0..n {
            if !settled[i] && now > starts[i] + LISTING_TIMEOUT {
                settled[i] = true;
                remaining -= 1;
                window.settle(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    listed
}

fn compound(out: &mut Vec<u8>, ssrc: u32, packets: u32, octets: u32, ts: u32, name: &str, bye: bool) {
    let now = Instant::now();
    let sr = sender_report(ssrc, packets, octets, Some((ts, now)), now);
    rtcp::write_sender_compound(out, &sr, name, Some(name), bye.then_some("load test over"));
}
