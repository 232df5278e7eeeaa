//! Whole sessions through a simulated network: a host `Endpoint` and a joiner
//! (`Initiator`, then `Connection`) exchange real datagrams over two seeded
//! `viz-netsim` links, in virtual time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use viz_netsim::{Impairment, Link};
use viz_proto::crypto::RekeyPolicy;
use viz_proto::{
    ByeReason, Connection, ControlMessage, DropReason, Endpoint, Event, HandshakeError, Hello, HostKeyPolicy,
    Initiator, Input, Keypair, MAX_DATAGRAM, MediaFrame, Received, SessionConfig,
};

/// Paths the host can see the joiner on: 0 normally, 1 after a NAT rebinding.
type Path = u8;

struct World {
    now: Instant,
    t0: Instant,
    up: Link<Vec<u8>>,
    down: Link<Vec<u8>>,
    host: Endpoint<Path>,
    host_id: Option<u32>,
    host_events: Vec<Event>,
    host_media: BTreeSet<u16>,
    joiner_key: Keypair,
    initiator: Option<Initiator>,
    joiner: Option<Connection>,
    joiner_events: Vec<Event>,
    joiner_media: BTreeSet<u16>,
    handshake_error: Option<HandshakeError>,
    /// Path the joiner's datagrams currently arrive on.
    joiner_path: Path,
    /// Every datagram the joiner sent, for replay tests.
    joiner_sent: Vec<Vec<u8>>,
    host_sent: Vec<(Path, Vec<u8>)>,
    host_drops: Vec<DropReason>,
    media_seq: u16,
    plain: Vec<u8>,
    buf: Vec<u8>,
    reply: Vec<u8>,
}

fn config() -> SessionConfig {
    SessionConfig::default()
}

impl World {
    fn new(imp: Impairment, seed: u64, policy: impl FnOnce(&Keypair) -> HostKeyPolicy, config: SessionConfig) -> Self {
        let t0 = Instant::now();
        let host_key = Keypair::from_private([seed as u8 ^ 0x55; 32]);
        let joiner_key = Keypair::from_private([seed as u8 ^ 0xaa; 32]);
        let policy = policy(&host_key);
        let initiator = Initiator::new(&joiner_key, policy, 0x1234_5678 ^ seed as u32, t0, config).unwrap();
        Self {
            now: t0,
            t0,
            up: Link::new(imp, seed),
            down: Link::new(imp, seed.wrapping_mul(31).wrapping_add(7)),
            host: Endpoint::new(host_key, config, seed),
            host_id: None,
            host_events: Vec::new(),
            host_media: BTreeSet::new(),
            joiner_key,
            initiator: Some(initiator),
            joiner: None,
            joiner_events: Vec::new(),
            joiner_media: BTreeSet::new(),
            handshake_error: None,
            joiner_path: 0,
            joiner_sent: Vec::new(),
            host_sent: Vec::new(),
            host_drops: Vec::new(),
            media_seq: 0,
            plain: vec![0; MAX_DATAGRAM],
            buf: vec![0; MAX_DATAGRAM],
            reply: vec![0; MAX_DATAGRAM],
        }
    }

    fn joiner_send(&mut self, d: Vec<u8>) {
        self.joiner_sent.push(d.clone());
        self.up.send(self.now, d);
    }

    fn host_send(&mut self, path: Path, d: Vec<u8>) {
        self.host_sent.push((path, d.clone()));
        // Whatever path the host replies on reaches the joiner (it is the same NAT).
        self.down.send(self.now, d);
    }

    /// Lets both sides transmit everything due now and collects their events.
    fn flush(&mut self) {
        if let Some(init) = &mut self.initiator
            && let Some(d) = init.poll_transmit(self.now)
        {
            let d = d.to_vec();
            self.joiner_send(d);
        }
        if let Some(conn) = &mut self.joiner {
            while let Some(n) = conn.poll_transmit(self.now, &mut self.buf) {
                let d = self.buf[..n].to_vec();
                self.joiner_sent.push(d.clone());
                self.up.send(self.now, d);
            }
            while let Some(e) = conn.poll_event() {
                self.joiner_events.push(e);
            }
        }
        if let Some(id) = self.host_id {
            let path = self.host.path(id).unwrap_or(0);
            let mut out = Vec::new();
            if let Some(conn) = self.host.session_mut(id) {
                while let Some(n) = conn.poll_transmit(self.now, &mut self.buf) {
                    out.push(self.buf[..n].to_vec());
                }
                while let Some(e) = conn.poll_event() {
                    self.host_events.push(e);
                }
            }
            for d in out {
                self.host_send(path, d);
            }
        }
    }

    fn deliver_up(&mut self, d: &[u8]) {
        let path = self.joiner_path;
        let input = self.host.handle_datagram(self.now, path, d, &mut self.plain, &mut self.reply);
        match input {
            Input::Reply(n) => {
                assert!(n <= d.len(), "reply larger than request");
                let r = self.reply[..n].to_vec();
                self.host_send(path, r);
            }
            Input::Accepted(id) => {
                assert!(self.host_id.is_none() || self.host_id == Some(id));
                self.host_id = Some(id);
            }
            Input::Media(_, m) => {
                self.host_media.insert(m.seq);
            }
            Input::Handled(_) => {}
            Input::Dropped(r) => self.host_drops.push(r),
        }
    }

    fn deliver_down(&mut self, d: &[u8]) {
        if let Some(init) = &mut self.initiator {
            match init.handle_datagram(self.now, d) {
                Ok(Some(est)) => {
                    assert_eq!(est.host_key, self.host.keypair().public());
                    self.joiner = Some(est.connection);
                    self.initiator = None;
                }
                Ok(None) => {}
                Err(e) => {
                    self.handshake_error = Some(e);
                    self.initiator = None;
                }
            }
        } else if let Some(conn) = &mut self.joiner
            && let Ok(Received::Media(m)) = conn.handle_datagram(self.now, d, &mut self.plain)
        {
            self.joiner_media.insert(m.seq);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t = [self.up.next_due(), self.down.next_due()].into_iter().flatten().min();
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        consider(self.initiator.as_ref().map(Initiator::poll_timeout));
        consider(self.joiner.as_ref().and_then(Connection::poll_timeout));
        consider(self.host.poll_timeout());
        t
    }

    /// Runs the world until `until`, sending one media packet each way every 20 ms
    /// while `media` is on.
    fn run_until(&mut self, until: Instant, media: bool) {
        let mut next_media = self.now;
        loop {
            self.flush();
            let mut next = self.next_deadline().unwrap_or(until).min(until);
            if media {
                next = next.min(next_media);
            }
            if next > until || (next == until && self.now == until) {
                break;
            }
            self.now = next.max(self.now);
            while let Some(d) = self.up.poll(self.now) {
                self.deliver_up(&d);
            }
            while let Some(d) = self.down.poll(self.now) {
                self.deliver_down(&d);
            }
            if let Some(c) = &mut self.joiner {
                c.handle_timeout(self.now);
            }
            self.host.handle_timeout(self.now);
            if media && self.now >= next_media {
                next_media += Duration::from_millis(20);
                self.send_media(self.media_seq);
                self.media_seq = self.media_seq.wrapping_add(1);
            }
            if self.now >= until {
                self.flush();
                break;
            }
        }
    }

    fn send_media(&mut self, seq: u16) {
        let opus = [0x78u8, 1, 2, 3, 4, 5, 6, 7];
        let frame = MediaFrame::new(1, seq, u32::from(seq) * 960, false, &[&opus]).unwrap();
        if let Some(c) = &mut self.joiner
            && c.is_open()
            && let Ok(n) = c.send_media(self.now, &frame, &mut self.buf)
        {
            let d = self.buf[..n].to_vec();
            self.joiner_send(d);
        }
        if let Some(id) = self.host_id {
            let path = self.host.path(id).unwrap_or(0);
            if let Some(c) = self.host.session_mut(id)
                && c.is_open()
                && let Ok(n) = c.send_media(self.now, &frame, &mut self.buf)
            {
                let d = self.buf[..n].to_vec();
                self.host_send(path, d);
            }
        }
    }

    fn secs(&self, s: f64) -> Instant {
        self.now + Duration::from_secs_f64(s)
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn host_conn(&self) -> &Connection {
        self.host.session(self.host_id.expect("no session on the host")).unwrap()
    }
}

fn first_use(_: &Keypair) -> HostKeyPolicy {
    HostKeyPolicy::FirstUse
}

fn lossy(loss: f64, jitter_ms: u64) -> Impairment {
    Impairment {
        loss,
        jitter: Duration::from_millis(jitter_ms),
        delay: Duration::from_millis(15),
        duplicate: 0.02,
        ..Default::default()
    }
}

#[test]
fn handshake_completes_across_loss_rates_and_both_sides_agree() {
    for (i, loss) in [0.0, 0.05, 0.1, 0.2, 0.3].into_iter().enumerate() {
        for seed in 0..4u64 {
            let mut w = World::new(lossy(loss, 30), seed * 10 + i as u64, first_use, config());
            let deadline = w.secs(20.0);
            w.run_until(deadline, false);
            let joiner =
                w.joiner.as_ref().unwrap_or_else(|| panic!("loss {loss} seed {seed}: handshake did not finish"));
            let host = w.host_conn();
            assert_eq!(joiner.sas(), host.sas(), "SAS differ");
            assert_eq!(host.remote_static(), w.joiner_key.public());
            assert!(joiner.is_confirmed(), "loss {loss} seed {seed}: Final never confirmed");
            assert!(w.host.pending_handshakes() == 0);
        }
    }
}

#[test]
fn control_messages_arrive_once_and_in_order_under_heavy_impairment() {
    let mut w = World::new(lossy(0.3, 80), 3, first_use, config());
    let t = w.secs(10.0);
    w.run_until(t, false);
    let hello = ControlMessage::Hello(Hello {
        version: 1,
        name: "alice".into(),
        frame_ms: 20,
        bitrate: 32_000,
        fec: true,
        dtx: true,
        sends_audio: true,
        receives_audio: true,
        echo_test: false,
        room: false,
        levels: true,
    });
    let sent: Vec<ControlMessage> = std::iter::once(hello)
        .chain((0..20).map(|i| ControlMessage::Mute { muted: i % 2 == 0, deafened: false }))
        .collect();
    for m in &sent {
        w.joiner.as_mut().unwrap().send_control(m.clone());
    }
    let t = w.secs(30.0);
    w.run_until(t, false);
    let got: Vec<ControlMessage> =
        w.host_events.iter().filter_map(|e| if let Event::Control(c) = e { Some(c.clone()) } else { None }).collect();
    assert_eq!(got, sent);
    assert!(w.joiner.as_ref().unwrap().stats().control_retransmissions > 0);
}

#[test]
fn media_flows_both_ways_each_packet_at_most_once() {
    for loss in [0.0, 0.1, 0.3] {
        let mut w = World::new(lossy(loss, 40), 5, first_use, config());
        let t = w.secs(5.0);
        w.run_until(t, false);
        let t = w.secs(10.0);
        w.run_until(t, true);
        let sent = 500.0;
        for (who, got) in [("host", w.host_media.len()), ("joiner", w.joiner_media.len())] {
            let ratio = got as f64 / sent;
            assert!((ratio - (1.0 - loss)).abs() < 0.06, "loss {loss}: {who} got {got} of {sent}");
        }
        // Network duplicates were dropped as replays, never delivered twice.
        let replays = w.host_conn().stats().dropped.get(DropReason::Replayed);
        assert!(loss == 0.0 || replays > 0, "no duplicate was ever seen");
    }
}

#[test]
fn reports_measure_rtt_loss_and_jitter() {
    let imp = Impairment {
        loss: 0.1,
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(10),
        ..Default::default()
    };
    let mut w = World::new(imp, 6, first_use, config());
    let t = w.secs(3.0);
    w.run_until(t, false);
    let t = w.secs(20.0);
    w.run_until(t, true);
    for stats in [w.joiner.as_ref().unwrap().stats(), w.host_conn().stats()] {
        let rtt = stats.rtt.expect("no RTT").as_secs_f64() * 1000.0;
        assert!((60.0..=80.0).contains(&rtt), "rtt {rtt} ms");
        assert!((0.0..0.3).contains(&stats.loss), "{stats:?}");
        assert!(stats.remote_loss > 0.0 || stats.loss > 0.0, "{stats:?}");
        let jitter = stats.jitter.as_secs_f64() * 1000.0;
        assert!((1.0..10.0).contains(&jitter), "jitter {jitter} ms");
    }
}

#[test]
fn goodbye_is_reported_at_once_and_closes_both_sides() {
    let mut w = World::new(lossy(0.1, 20), 7, first_use, config());
    let t = w.secs(3.0);
    w.run_until(t, false);
    let left_at = w.now;
    w.joiner.as_mut().unwrap().close(w.now, ByeReason::Leaving);
    let t = w.secs(5.0);
    w.run_until(t, false);
    assert!(w.host_events.contains(&Event::PeerLeft(ByeReason::Leaving)), "{:?}", w.host_events);
    assert!(w.joiner_events.contains(&Event::Closed), "{:?}", w.joiner_events);
    assert!(w.joiner.as_ref().unwrap().is_closed());
    assert!(w.host_conn().is_closed());
    // Reported within the time of a few retransmissions, not an idle timeout.
    assert!(w.now - left_at <= Duration::from_secs(5));
}

#[test]
fn silence_on_the_path_times_out_both_sides() {
    let mut w = World::new(lossy(0.0, 0), 8, first_use, config());
    let t = w.secs(2.0);
    w.run_until(t, false);
    let cut = w.now;
    w.up.set_impairment(Impairment { loss: 1.0, ..Default::default() });
    w.down.set_impairment(Impairment { loss: 1.0, ..Default::default() });
    let t = w.secs(15.0);
    w.run_until(t, false);
    assert!(w.joiner_events.contains(&Event::TimedOut));
    assert!(w.host_events.contains(&Event::TimedOut));
    assert!(w.elapsed() >= cut - w.t0 + Duration::from_secs(10));
}

#[test]
fn nat_rebinding_moves_the_reply_path_and_keeps_the_call() {
    let mut w = World::new(lossy(0.0, 5), 9, first_use, config());
    let t = w.secs(2.0);
    w.run_until(t, true);
    let id = w.host_id.unwrap();
    assert_eq!(w.host.path(id), Some(0));
    w.joiner_path = 1;
    let before = w.host_media.len();
    let t = w.secs(2.0);
    w.run_until(t, true);
    assert_eq!(w.host.path(id), Some(1), "host still replies to the old address");
    assert!(w.host_media.len() > before + 80);
    assert!(w.host_sent.iter().rev().take(10).all(|(p, _)| *p == 1));
}

#[test]
fn replayed_and_reflected_datagrams_are_rejected() {
    let mut w = World::new(lossy(0.0, 0), 10, first_use, config());
    let t = w.secs(2.0);
    w.run_until(t, true);
    // Let everything in flight arrive, so that what follows are true replays.
    let t = w.secs(0.5);
    w.run_until(t, false);
    let id = w.host_id.unwrap();
    let media_before = w.host_media.len();
    let drops_before = w.host_conn().stats().dropped.get(DropReason::Replayed);
    // Replay every transport datagram the joiner ever sent.
    let old: Vec<Vec<u8>> = w.joiner_sent.iter().filter(|d| d[0] >= 4).cloned().collect();
    for d in &old {
        let input = w.host.handle_datagram(w.now, 0, d, &mut w.plain, &mut w.reply);
        assert!(matches!(input, Input::Dropped(DropReason::Replayed | DropReason::TooOld)), "{input:?}");
    }
    assert_eq!(w.host_media.len(), media_before);
    assert_eq!(w.host_conn().stats().dropped.get(DropReason::Replayed), drops_before + old.len() as u64);
    // Reflect the host's own datagrams back at it, and the joiner's back at the joiner.
    let host_out: Vec<Vec<u8>> = w.host_sent.iter().map(|(_, d)| d.clone()).filter(|d| d[0] >= 4).collect();
    for d in &host_out {
        let input = w.host.handle_datagram(w.now, 0, d, &mut w.plain, &mut w.reply);
        assert!(matches!(input, Input::Dropped(_)), "{input:?}");
    }
    let joiner = w.joiner.as_mut().unwrap();
    for d in &old {
        assert!(joiner.handle_datagram(w.now, d, &mut w.plain).is_err());
    }
    assert!(w.host.session(id).unwrap().is_open());
}

#[test]
fn pinned_fingerprint_is_enforced() {
    // Right pin: works.
    let mut w = World::new(lossy(0.0, 0), 11, |k| HostKeyPolicy::Pinned(k.fingerprint()), config());
    let t = w.secs(2.0);
    w.run_until(t, false);
    assert!(w.joiner.is_some());
    // Wrong pin: refused with both fingerprints, before the joiner reveals itself.
    let wrong = Keypair::from_private([1; 32]).fingerprint();
    let mut w = World::new(lossy(0.0, 0), 12, |_| HostKeyPolicy::Pinned(wrong.clone()), config());
    let t = w.secs(2.0);
    w.run_until(t, false);
    match w.handshake_error.clone() {
        Some(HandshakeError::HostKeyMismatch { expected, presented }) => {
            assert_eq!(expected, wrong);
            assert_eq!(presented, w.host.keypair().fingerprint());
            let text = HandshakeError::HostKeyMismatch { expected, presented }.to_string();
            assert!(text.contains(&wrong.to_string()) && text.contains(&w.host.keypair().fingerprint().to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert!(w.joiner.is_none());
    assert!(w.host_id.is_none(), "the host must not get a session");
    // A changed known key: refused too.
    let stale = Keypair::from_private([2; 32]).public();
    let mut w = World::new(lossy(0.0, 0), 13, |_| HostKeyPolicy::Known(stale), config());
    let t = w.secs(2.0);
    w.run_until(t, false);
    assert!(matches!(w.handshake_error, Some(HandshakeError::HostKeyMismatch { .. })));
}

#[test]
fn rekeying_under_loss_keeps_media_flowing() {
    let cfg = SessionConfig { rekey: RekeyPolicy { after: Duration::from_secs(3), messages: 40 }, ..config() };
    let mut w = World::new(lossy(0.1, 30), 14, first_use, cfg);
    let t = w.secs(2.0);
    w.run_until(t, false);
    let t = w.secs(20.0);
    w.run_until(t, true);
    let host = w.host_conn().stats();
    let joiner = w.joiner.as_ref().unwrap().stats();
    assert!(host.rekeys_sent >= 20 && joiner.rekeys_sent >= 20, "{host:?}");
    assert!(host.rekeys_received >= 20 && joiner.rekeys_received >= 20, "{joiner:?}");
    assert!(w.host_media.len() > 800 && w.joiner_media.len() > 800, "{} {}", w.host_media.len(), w.joiner_media.len());
    assert!(w.host_conn().is_open() && w.joiner.as_ref().unwrap().is_open());
}

#[test]
fn the_joiner_ignores_answers_that_are_not_from_a_viz_host() {
    let mut w = World::new(lossy(0.0, 0), 15, first_use, config());
    let init = w.initiator.as_mut().unwrap();
    let own = init.poll_transmit(w.now).unwrap().to_vec();
    // An echo server sends our own Init back; a random peer sends junk.
    for junk in [own.clone(), vec![2; 100], vec![0xff; 10], Vec::new()] {
        assert!(matches!(init.handle_datagram(w.now, &junk), Ok(None)));
    }
    // A well-formed HandshakeResp to our index but from a different Noise peer.
    let mut fake = own.clone();
    fake[0] = 2;
    fake[5..9].copy_from_slice(&init.local_index().to_be_bytes());
    assert!(matches!(init.handle_datagram(w.now, &fake[..120]), Ok(None)));
    // ...and the real handshake still works afterwards.
    let t = w.secs(3.0);
    w.run_until(t, false);
    assert!(w.joiner.is_some());
}

#[test]
fn a_burst_of_control_messages_costs_one_acknowledgement_and_notices_none() {
    // Reports every 30 s: the only datagrams the joiner sends in the window are acks.
    let quiet =
        SessionConfig { idle_timeout: Duration::from_secs(90), report_interval: Duration::from_secs(30), ..config() };
    let imp = Impairment { delay: Duration::from_millis(15), ..Default::default() };
    let mut w = World::new(imp, 8, first_use, quiet);
    let t = w.secs(2.0);
    w.run_until(t, false);
    let id = w.host_id.expect("joined");
    let (sent_before, events_before) = (w.joiner_sent.len(), w.joiner_events.len());
    let burst: Vec<ControlMessage> =
        (0..5).map(|i| ControlMessage::Mute { muted: i % 2 == 0, deafened: false }).collect();
    // Sent 5 ms apart, as a room's flush of roster, talking and levels arrives.
    for m in &burst {
        w.host.session_mut(id).unwrap().send_control(m.clone());
        let t = w.secs(0.005);
        w.run_until(t, false);
    }
    let t = w.secs(1.0);
    w.run_until(t, false);
    let got: Vec<&ControlMessage> = w.joiner_events[events_before..]
        .iter()
        .filter_map(|e| if let Event::Control(c) = e { Some(c) } else { None })
        .collect();
    assert_eq!(got, burst.iter().collect::<Vec<_>>());
    assert_eq!(w.joiner_sent.len() - sent_before, 1, "five messages at once are acknowledged once");
    assert_eq!(w.host_conn().stats().control_retransmissions, 0, "the delayed ack came in time");

    // Notices: delivered, never acknowledged; a notice may only carry replaceable state.
    let (sent_before, events_before) = (w.joiner_sent.len(), w.joiner_events.len());
    let path = w.host.path(id).unwrap();
    let talking = ControlMessage::Talking(vec![3, 7]);
    let mut buf = vec![0; MAX_DATAGRAM];
    for message in [&talking, &ControlMessage::Mute { muted: true, deafened: false }, &talking] {
        let n = w.host.session_mut(id).unwrap().send_notice(w.now, message, &mut buf).unwrap();
        w.host_send(path, buf[..n].to_vec());
    }
    let t = w.secs(1.0);
    w.run_until(t, false);
    let got: Vec<&Event> = w.joiner_events[events_before..].iter().collect();
    assert_eq!(
        got,
        vec![&Event::Control(talking.clone()), &Event::Control(talking.clone())],
        "the Mute notice is dropped"
    );
    assert_eq!(w.joiner_sent.len(), sent_before, "notices are not acknowledged");
}

#[test]
fn a_room_paces_its_joiners_reports_and_a_joiner_cannot_pace_the_room() {
    let mut w = World::new(Impairment::default(), 9, first_use, config());
    let t = w.secs(2.0);
    w.run_until(t, false);
    let id = w.host_id.expect("joined");
    assert_eq!(viz_proto::report_interval_for_room(10), Duration::from_secs(1));
    assert_eq!(viz_proto::report_interval_for_room(1200), Duration::from_millis(1500));
    assert_eq!(viz_proto::report_interval_for_room(2000), Duration::from_secs(2));
    assert_eq!(viz_proto::report_interval_for_room(10_000), Duration::from_secs(3));
    w.host.session_mut(id).unwrap().send_control(ControlMessage::ReportEvery(3000));
    w.joiner.as_mut().unwrap().send_control(ControlMessage::ReportEvery(250));
    let t = w.secs(1.0);
    w.run_until(t, false);
    assert_eq!(w.joiner.as_ref().unwrap().report_interval(), Duration::from_secs(3));
    assert_eq!(w.host_conn().report_interval(), Duration::from_secs(1), "the joiner's request is ignored");
    assert!(
        !w.joiner_events
            .iter()
            .chain(&w.host_events)
            .any(|e| matches!(e, Event::Control(ControlMessage::ReportEvery(_)))),
        "the session applies it and does not pass it on"
    );
    // Over 30 s the joiner now sends 10 reports, and the session stays up.
    let before = w.joiner_sent.len();
    let t = w.secs(30.0);
    w.run_until(t, false);
    let reports = w.joiner_sent.len() - before;
    assert!((9..=11).contains(&reports), "{reports} datagrams in 30 s");
    assert!(w.joiner.as_ref().unwrap().is_open());
    // Asking for more than a third of the idle timeout gets a third.
    w.host.session_mut(id).unwrap().send_control(ControlMessage::ReportEvery(60_000));
    let t = w.secs(1.0);
    w.run_until(t, false);
    assert_eq!(w.joiner.as_ref().unwrap().report_interval(), config().idle_timeout / 3);
}
