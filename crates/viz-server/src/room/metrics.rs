//! Prometheus text exposition of the room's figures (served at `/metrics` by
//! [`crate::web`]), from a snapshot the room refreshes every second.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::NetCounters;
use super::mixing::MixStats;

#[derive(Debug, Clone)]
pub struct ParticipantRow {
    pub id: u32,
    pub name: String,
    pub loss: f64,
    pub jitter_ms: f64,
    pub talking: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub mix: MixStats,
    /// Whole ticks: mix, encrypt and send.
    pub whole_tick: super::mixing::Timing,
    /// The kernel's UDP drop counters (Linux), read each second.
    pub kernel_udp: Option<crate::kernel_udp::KernelUdpDrops>,
    /// Bytes of datagrams the room socket may queue.
    pub receive_buffer: Option<usize>,
    pub net: NetCounters,
    pub participants: Vec<ParticipantRow>,
    pub failed_attempts_refused: u64,
    /// With RTP input: its counters and how many senders wait for an admin.
    pub rtp: Option<(super::rtp_in::RtpCounters, usize)>,
    pub recorder_dropped: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ParticipantLabels {
    id: String,
    name: String,
}

/// Without `--metrics-names`: who is present and when each person talks is nobody's
/// business but the room's, so participants are numbers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ParticipantId {
    id: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = FloatGauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// A running total since the room started. Exported as `NAME_total` with type
/// `counter`, so that `rate()` and counter resets work as Prometheus expects.
fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// Escapes a label value as the text format requires (backslash, quote, newline).
/// prometheus-client 0.24 writes label values verbatim, and names come from users.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The snapshot in Prometheus text format; participants' names are labels only with
/// `names`.
pub fn render(s: &Snapshot, names: bool) -> String {
    let mut r = Registry::with_prefix("viz_room");
    gauge(&mut r, "mix_cycle_mean_ms", "Mixer tick duration, mean over the last 5 s", s.mix.cycle_mean_ms);
    gauge(&mut r, "mix_cycle_p99_ms", "Mixer tick duration, 99th percentile over the last 5 s", s.mix.cycle_p99_ms);
    gauge(&mut r, "mix_cycle_max_ms", "Mixer tick duration, maximum over the last 5 s", s.mix.cycle_max_ms);
    counter(&mut r, "mix_ticks", "Mixer ticks since start", s.mix.ticks);
    let tick = &s.whole_tick;
    gauge(
        &mut r,
        "tick_mean_ms",
        "Whole tick (mix, encrypt, send to the kernel), mean over the last 5 s",
        tick.mean_ms,
    );
    gauge(&mut r, "tick_p99_ms", "Whole tick (mix, encrypt, send), 99th percentile over the last 5 s", tick.p99_ms);
    gauge(&mut r, "tick_max_ms", "Whole tick (mix, encrypt, send), maximum over the last 5 s", tick.max_ms);
    if let Some(k) = &s.kernel_udp {
        counter(
            &mut r,
            "kernel_udp_receive_buffer_errors",
            "Datagrams the kernel dropped because a UDP receive buffer was full, all sockets of this network \
             namespace (/proc/net/snmp RcvbufErrors, IPv4 and IPv6)",
            k.receive_buffer_errors,
        );
        counter(
            &mut r,
            "kernel_udp_in_errors",
            "UDP datagrams the kernel dropped for any reason, all sockets of this network namespace",
            k.in_errors,
        );
    }
    if let Some(bytes) = s.receive_buffer {
        gauge(&mut r, "udp_receive_buffer_bytes", "Bytes of datagrams the room's UDP socket may queue", bytes as f64);
    }
    counter(&mut r, "mix_late_ticks", "Ticks that started more than a frame late", s.mix.late_ticks);
    gauge(&mut r, "participants", "Participants in the room", s.participants.len() as f64);
    gauge(&mut r, "active_sources", "Sources sending audio now", s.mix.active_sources as f64);
    gauge(&mut r, "encodes_per_tick", "Opus encodes per mixer tick, last second", s.mix.encodes_per_tick);
    counter(
        &mut r,
        "datagrams_in",
        "Native datagrams received: media, control, acknowledgements, reports, handshakes",
        s.net.datagrams_in,
    );
    counter(&mut r, "datagrams_out", "Native datagrams sent", s.net.datagrams_out);
    counter(&mut r, "media_packets_in", "Media packets received", s.net.media_in);
    counter(&mut r, "media_packets_out", "Media packets sent", s.net.media_out);
    counter(&mut r, "datagrams_dropped", "Datagrams dropped before a session", s.net.dropped);
    counter(&mut r, "forwarded_packets", "Packets passed through unchanged", s.mix.forwarded_packets);
    counter(&mut r, "mixer_inbox_dropped", "Media dropped because the mixer fell behind", s.mix.inbox_dropped);
    counter(&mut r, "refused_attempts", "Sessions refused after too many failures", s.failed_attempts_refused);
    if let Some((c, pending)) = &s.rtp {
        counter(&mut r, "rtp_datagrams", "Datagrams received on the RTP port", c.datagrams);
        counter(&mut r, "rtp_mixed", "RTP packets passed to the mixer", c.mixed);
        counter(
            &mut r,
            "rtp_dropped",
            "RTP datagrams dropped (malformed, wrong payload type, not Opus, pending, wrong address, table full)",
            c.dropped(),
        );
        counter(
            &mut r,
            "rtp_malformed",
            "RTP datagrams that did not parse",
            c.too_short + c.bad_version + c.csrc_past_end + c.extension_past_end + c.bad_padding,
        );
        counter(&mut r, "rtp_pending_dropped", "RTP packets from senders not accepted", c.pending);
        counter(&mut r, "rtp_wrong_address", "RTP packets of an accepted SSRC from another address", c.wrong_address);
        gauge(&mut r, "rtp_pending_senders", "RTP senders waiting for an admin", *pending as f64);
        counter(&mut r, "rtcp_packets", "RTCP datagrams received", c.rtcp);
    }
    counter(
        &mut r,
        "recorder_dropped",
        "Packets the recorder dropped because the disk fell behind",
        s.recorder_dropped,
    );
    if names {
        participant_families(&mut r, &s.participants, |p| ParticipantLabels {
            id: p.id.to_string(),
            name: escape_label(&p.name),
        });
    } else {
        participant_families(&mut r, &s.participants, |p| ParticipantId { id: p.id.to_string() });
    }
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}

fn participant_families<L>(r: &mut Registry, rows: &[ParticipantRow], labels: impl Fn(&ParticipantRow) -> L)
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let loss = Family::<L, FloatGauge>::default();
    let jitter = Family::<L, FloatGauge>::default();
    let talking = Family::<L, FloatGauge>::default();
    for p in rows {
        let l = labels(p);
        loss.get_or_create(&l).set(p.loss);
        jitter.get_or_create(&l).set(p.jitter_ms);
        talking.get_or_create(&l).set(if p.talking { 1.0 } else { 0.0 });
    }
    r.register("participant_loss_ratio", "Fraction of the participant's packets lost on the way in", loss);
    r.register("participant_jitter_ms", "Interarrival jitter of the participant's packets", jitter);
    r.register("participant_talking", "1 while the participant is heard", talking);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_participant_labels() {
        let snap = Snapshot {
            mix: MixStats { cycle_p99_ms: 1.25, active_sources: 2, ticks: 4321, ..Default::default() },
            whole_tick: super::super::mixing::Timing { mean_ms: 1.0, p99_ms: 3.5, max_ms: 4.0 },
            kernel_udp: Some(crate::kernel_udp::KernelUdpDrops { receive_buffer_errors: 17, in_errors: 20 }),
            participants: vec![ParticipantRow {
                id: 100,
                name: "alice \"a\"".into(),
                loss: 0.02,
                jitter_ms: 3.5,
                talking: true,
            }],
            ..Default::default()
        };
        let text = render(&snap, true);
        assert!(text.contains("viz_room_mix_cycle_p99_ms 1.25"), "{text}");
        assert!(text.contains("viz_room_tick_p99_ms 3.5"), "{text}");
        assert!(text.lines().any(|l| l == "viz_room_kernel_udp_receive_buffer_errors_total 17"), "{text}");
        assert!(text.contains("viz_room_active_sources 2.0"), "{text}");
        // Running totals are counters, not gauges.
        assert!(text.contains("# TYPE viz_room_mix_ticks counter\nviz_room_mix_ticks_total 4321\n"), "{text}");
        assert!(text.contains("# TYPE viz_room_media_packets_in counter"), "{text}");
        assert!(text.lines().any(|l| l == "viz_room_media_packets_in_total 0"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("viz_room_media_packets_in ")), "{text}");
        assert!(text.contains(r#"viz_room_participant_loss_ratio{id="100",name="alice \"a\""} 0.02"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
        // Without names the participant is a number only.
        let text = render(&snap, false);
        assert!(text.contains(r#"viz_room_participant_talking{id="100"} 1.0"#), "{text}");
        assert!(!text.contains("alice"), "{text}");
    }
}
