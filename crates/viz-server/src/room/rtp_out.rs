//! Plain RTP/Opus out of the room (`viz serve --rtp-forward HOST:PORT`, or the API):
//! the room mix, or one participant, to any RTP receiver (ffmpeg, VLC, GStreamer, a
//! Janus-style bridge), described by an SDP that those tools open directly.
//!
//! The packets are the Opus packets the room's listeners get (no second encode); each
//! becomes one RTP packet (RFC 7587 §4.2), with the forward's own SSRC and sequence
//! numbers and the listener stream's timestamps, which follow the wall clock through
//! silences and source switches. An RTCP sender report goes to the port above every
//! [`SR_INTERVAL`] so receivers can map RTP time to wall time.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use viz_proto::rtcp::{SenderReport, ntp_from_unix, write_sender_compound};
use viz_proto::rtp::RtpHeader;

/// RFC 3550 §6.2 suggests 5 s as the minimum RTCP interval.
pub const SR_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) struct RtpForward {
    pub target: SocketAddr,
    pub ssrc: u32,
    pub payload_type: u8,
    seq: u16,
    pub packets: u64,
    pub octets: u64,
    /// The newest packet's timestamp and when it went out, for sender reports.
    last: Option<(u32, Instant)>,
    next_report: Instant,
}

impl RtpForward {
    pub(crate) fn new(target: SocketAddr, payload_type: u8, now: Instant) -> Self {
        Self {
            target,
            ssrc: rand::random(),
            payload_type,
            seq: rand::random(),
            packets: 0,
            octets: 0,
            last: None,
            next_report: now + Duration::from_secs(1),
        }
    }

    /// Writes the RTP packet for one Opus packet into `out`, returning its length.
    pub(crate) fn packetize(
        &mut self,
        timestamp: u32,
        marker: bool,
        opus: &[u8],
        now: Instant,
        out: &mut [u8],
    ) -> Option<usize> {
        let header =
            RtpHeader { marker, payload_type: self.payload_type, sequence: self.seq, timestamp, ssrc: self.ssrc };
        let n = header.write(opus, out)?;
        self.seq = self.seq.wrapping_add(1);
        self.packets += 1;
        self.octets += opus.len() as u64;
        self.last = Some((timestamp, now));
        Some(n)
    }

    /// A sender report and SDES compound when one is due (and something was sent).
    pub(crate) fn report_due(&mut self, now: Instant, cname: &str) -> Option<Vec<u8>> {
        if now < self.next_report {
            return None;
        }
        self.next_report = now + SR_INTERVAL;
        self.last?;
        let mut out = Vec::with_capacity(64);
        let sr = sender_report(self.ssrc, self.packets as u32, self.octets as u32, self.last, now);
        write_sender_compound(&mut out, &sr, cname, None, None);
        Some(out)
    }

    /// Where the sender reports go: the port above the RTP port (RFC 3550 §11).
    pub(crate) fn rtcp_target(&self) -> SocketAddr {
        SocketAddr::new(self.target.ip(), self.target.port().wrapping_add(1))
    }

    /// An SDP (RFC 8866) a receiver opens to play this stream, e.g.
    /// `ffmpeg -protocol_whitelist file,udp,rtp -i forward.sdp`.
    pub(crate) fn sdp(&self, title: &str, origin: std::net::IpAddr) -> String {
        let ip = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(v4) => format!("IP4 {v4}"),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("IP4 {v4}"),
                None => format!("IP6 {v6}"),
            },
        };
        let pt = self.payload_type;
        let title: String = title.chars().filter(|c| !c.is_control()).collect();
        // RFC 7587 §7: the rtpmap is always opus/48000/2; the stream itself is mono.
        format!(
            "v=0\r\no=- {id} 1 IN {origin}\r\ns={title}\r\nc=IN {target}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\n\
             a=fmtp:{pt} useinbandfec=1;stereo=0;sprop-stereo=0\r\na=ptime:20\r\na=recvonly\r\n",
            id = self.ssrc,
            origin = ip(origin),
            target = ip(self.target.ip()),
            port = self.target.port(),
        )
    }
}

/// A sender report for now: NTP from the system clock, and the RTP time that
/// corresponds to it, extrapolated from the newest packet sent (timestamp, when).
pub fn sender_report(ssrc: u32, packets: u32, octets: u32, last: Option<(u32, Instant)>, now: Instant) -> SenderReport {
    let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let rtp_timestamp =
        last.map_or(0, |(ts, at)| ts.wrapping_add((now.saturating_duration_since(at).as_secs_f64() * 48_000.0) as u32));
    SenderReport {
        ssrc,
        ntp: ntp_from_unix(unix),
        rtp_timestamp,
        packet_count: packets,
        octet_count: octets,
        report_count: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viz_proto::rtcp::{RtcpCompound, RtcpPacket};
    use viz_proto::rtp::RtpPacket;

    #[test]
    fn packets_number_on_and_reports_follow() {
        let t0 = Instant::now();
        let mut f = RtpForward::new("127.0.0.1:5004".parse().unwrap(), 111, t0);
        let mut out = [0u8; 1500];
        let mut seqs = Vec::new();
        for i in 0..3u32 {
            let n = f.packetize(1000 + i * 960, i == 0, &[0xf8, 1, 2], t0, &mut out).unwrap();
            let p = RtpPacket::parse(&out[..n]).unwrap();
            assert_eq!((p.header.payload_type, p.header.ssrc, p.header.timestamp), (111, f.ssrc, 1000 + i * 960));
            assert_eq!(p.header.marker, i == 0);
            assert_eq!(p.payload, &[0xf8, 1, 2]);
            seqs.push(p.header.sequence);
        }
        assert_eq!(seqs[1], seqs[0].wrapping_add(1));
        assert!(f.report_due(t0, "viz").is_none(), "not due yet");
        let r = f.report_due(t0 + Duration::from_secs(2), "viz@room").unwrap();
        let c = RtcpCompound::parse(&r).unwrap();
        let Some(RtcpPacket::SenderReport(sr)) = c.packets().next() else { panic!() };
        assert_eq!((sr.ssrc, sr.packet_count, sr.octet_count), (f.ssrc, 3, 9));
        // Two seconds after the last packet: its timestamp plus 2 s of 48 kHz.
        assert_eq!(sr.rtp_timestamp, 1000 + 2 * 960 + 96_000);
        assert_eq!(f.rtcp_target(), "127.0.0.1:5005".parse().unwrap());
    }

    #[test]
    fn the_sdp_names_the_target_and_opus() {
        let f = RtpForward::new("[::ffff:10.0.0.9]:6000".parse().unwrap(), 96, Instant::now());
        let sdp = f.sdp("Viz room 'lobby': mix", "10.0.0.1".parse().unwrap());
        assert!(sdp.contains("c=IN IP4 10.0.0.9\r\n"), "{sdp}");
        assert!(sdp.contains("m=audio 6000 RTP/AVP 96\r\n"));
        assert!(sdp.contains("a=rtpmap:96 opus/48000/2\r\n"));
        let v6 = RtpForward::new("[2001:db8::1]:6000".parse().unwrap(), 111, Instant::now());
        assert!(v6.sdp("x", "::1".parse().unwrap()).contains("c=IN IP6 2001:db8::1"));
    }
}
