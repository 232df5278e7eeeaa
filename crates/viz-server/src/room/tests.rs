//! The room's core driven in simulated time: no sockets, no sleeping. Real native
//! clients (`viz-proto`'s handshake and session) and real browsers' messages go in as
//! events at an instant the test chooses; what the room sends comes back out of its
//! outbox and the browsers' channels. The real mixer thread runs beside it (its output
//! is not read here). These are the adversarial cases of `crates/viz/tests/adversary`
//! that need no process: each runs in milliseconds and the same way every time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use viz_proto::password::JoinerPassword;
use viz_proto::{
    AdminOp, ByeReason, Connection, ControlMessage, Event, HostKeyPolicy, Initiator, Keypair, MAX_DATAGRAM,
    SessionConfig,
};

use super::outbox::NetOp;
use super::ratelimit::{MAX_FAILURES, WINDOW};
use super::*;
use crate::web::messages::{AdminError, ApiReply, ApiRequest, BrowserFrame, BrowserIn, WebEvent};

const PASSWORD: &str = "correct horse";

struct Harness {
    room: Room<'static>,
    now: Instant,
    clients: Vec<Client>,
    browsers: Vec<(u64, mpsc::Receiver<BrowserFrame>)>,
    _mix_rx: mpsc::UnboundedReceiver<FromMixer>,
    _dir: tempfile::TempDir,
}

/// A native client at `addr`, as `viz join` runs it, minus the audio.
struct Client {
    addr: SocketAddr,
    keypair: Keypair,
    handshake: Option<Initiator>,
    conn: Option<Connection>,
    events: Vec<Event>,
    /// Datagrams the client sent and received once its session was up.
    sent: usize,
    received: usize,
}

impl Client {
    fn path(&self) -> Path {
        Path::Udp(self.addr)
    }

    fn control(&mut self, msg: ControlMessage) {
        self.conn.as_mut().expect("the handshake is done").send_control(msg);
    }

    /// The goodbye the room sent this client, if any.
    fn bye(&self) -> Option<ByeReason> {
        self.events.iter().find_map(|e| match e {
            Event::PeerLeft(reason) => Some(*reason),
            _ => None,
        })
    }

    fn got_password_reply(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Control(ControlMessage::PasswordReply { .. })))
    }

    /// The room's Hello: the client is in.
    fn admitted(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Control(ControlMessage::Hello(h)) if h.room))
    }

    fn heard_left(&self, id: ParticipantId) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Control(ControlMessage::Left { id: left, .. }) if *left == id))
    }
}

fn room_config(dir: &std::path::Path, password: Option<&str>) -> RoomConfig {
    RoomConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        websocket: false,
        keypair: Keypair::generate().unwrap(),
        room_name: "simulated".into(),
        params: viz_audio::AudioParams::default(),
        jitter: viz_audio::JitterConfig::default(),
        session: SessionConfig::default(),
        password: password.map(|p| Zeroizing::new(p.to_owned())),
        admin_token: generate_admin_token(),
        state_dir: dir.to_path_buf(),
        test_source: false,
        pass_through: false,
        http: None,
        web: Default::default(),
        tls: web::TlsMode::Off,
        stats_interval: Duration::from_secs(3600),
        duration: None,
        announce: false,
        send_threads: 0,
        media: MediaOptions::default(),
    }
}

impl Harness {
    fn new(password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = room_config(dir.path(), password);
        let (mix_tx, mix_rx) = mpsc::unbounded_channel();
        let mixer = mixing::spawn(viz_audio::mixer::MixerConfig::new(cfg.params), false, mix_tx).unwrap();
        let settings = SettingsStore::open(dir.path()).unwrap();
        let snapshot = Arc::new(Mutex::new(metrics::Snapshot::default()));
        let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let room = Room::new(cfg, local, mixer, settings, snapshot, Limiters::default());
        let now = room.started;
        Self { room, now, clients: Vec::new(), browsers: Vec::new(), _mix_rx: mix_rx, _dir: dir }
    }

    /// Advances simulated time by `step`, running the room's timers.
    fn advance(&mut self, step: Duration) {
        let end = self.now + step;
        while self.now < end {
            self.now = self.room.poll_timeout().clamp(self.now + Duration::from_millis(1), end);
            self.pump();
        }
    }

    /// A new client from `ip`, handshake done; returns its index.
    fn connect(&mut self, ip: IpAddr) -> usize {
        self.connect_as(ip, Keypair::generate().unwrap())
    }

    fn connect_as(&mut self, ip: IpAddr, keypair: Keypair) -> usize {
        let port = 10_000 + self.clients.len() as u16;
        let handshake = Initiator::new(
            &keypair,
            HostKeyPolicy::FirstUse,
            self.clients.len() as u32 + 1,
            self.now,
            SessionConfig::default(),
        )
        .unwrap();
        let client = Client {
            addr: SocketAddr::new(ip, port),
            keypair,
            handshake: Some(handshake),
            conn: None,
            events: Vec::new(),
            sent: 0,
            received: 0,
        };
        self.clients.push(client);
        self.pump();
        let i = self.clients.len() - 1;
        assert!(self.clients[i].conn.is_some(), "the handshake did not complete");
        i
    }

    /// Moves datagrams both ways until nothing moves, at the current instant.
    fn pump(&mut self) {
        let (mut out, mut plain) = (vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM]);
        for _ in 0..100 {
            let mut moved = false;
            for c in &mut self.clients {
                let path = c.path();
                if let Some(h) = c.handshake.as_mut()
                    && let Some(init) = h.poll_transmit(self.now)
                {
                    let init = init.to_vec();
                    self.room.on_datagram(path, Some(c.addr), self.now, &init);
                    moved = true;
                }
                if let Some(conn) = c.conn.as_mut() {
                    conn.handle_timeout(self.now);
                    while let Some(n) = conn.poll_transmit(self.now, &mut out) {
                        self.room.on_datagram(path, Some(c.addr), self.now, &out[..n]);
                        c.sent += 1;
                        moved = true;
                    }
                    while let Some(e) = conn.poll_event() {
                        c.events.push(e);
                    }
                }
            }
            self.room.handle_timeout(self.now);
            for (op, bytes) in self.room.media.ops().chain(self.room.outbox.ops()) {
                let NetOp::Send(path, _) = op else { continue };
                let Some(c) = self.clients.iter_mut().find(|c| c.path() == *path) else { continue };
                moved = true;
                if let Some(h) = c.handshake.as_mut() {
                    if let Ok(Some(est)) = h.handle_datagram(self.now, bytes) {
                        c.conn = Some(est.connection);
                        c.handshake = None;
                    }
                } else if let Some(conn) = c.conn.as_mut() {
                    c.received += 1;
                    let _ = conn.handle_datagram(self.now, bytes, &mut plain);
                }
            }
            self.room.media.clear();
            self.room.outbox.clear();
            if !moved {
                return;
            }
        }
    }

    /// The room's session id for client `i`.
    fn session_of(&self, i: usize) -> u32 {
        let addr = self.clients[i].addr;
        self.room.members.values().find(|m| m.peer == Some(addr)).expect("the room has the session").session
    }

    /// A wrong (or right) password guess from client `i`, and the room's answer.
    fn guess(&mut self, i: usize, password: &str) -> JoinerPassword {
        let hash = self.clients[i].conn.as_ref().unwrap().handshake_hash();
        let (exchange, start) = JoinerPassword::start(password, hash).unwrap();
        self.clients[i].control(ControlMessage::PasswordStart(start));
        self.pump();
        exchange
    }

    /// The real client's way in: password (if any), proof, Hello.
    fn join(&mut self, i: usize, name: &str, password: Option<&str>) {
        let exchange = password.map(|p| self.guess(i, p));
        let hello = viz_client::join::hello_message(name, &viz_audio::AudioParams::default());
        self.clients[i].control(hello);
        self.pump();
        if let Some(exchange) = exchange {
            let reply = self.clients[i].events.iter().find_map(|e| match e {
                Event::Control(ControlMessage::PasswordReply { reply, proof }) => Some((*reply, *proof)),
                _ => None,
            });
            let (reply, proof) = reply.expect("a password reply");
            let joiner_proof = exchange.finish(&reply, &proof).expect("the right password");
            self.clients[i].control(ControlMessage::PasswordProof(joiner_proof));
            self.pump();
        }
    }

    /// A page's WebSocket from `peer` says hello with `password`; returns its number.
    fn browser(&mut self, peer: SocketAddr, password: Option<&str>) -> u64 {
        let conn = 1 + self.browsers.len() as u64;
        let (tx, rx) = mpsc::channel(64);
        self.room.on_web(WebEvent::BrowserOpen { conn, peer, tx }, self.now);
        let hello = BrowserIn::Hello {
            name: format!("page {conn}"),
            identity: format!("identity-{conn}"),
            sends: true,
            receives: true,
            echo: false,
            password: password.map(str::to_owned),
        };
        self.room.on_web(WebEvent::BrowserControl { conn, msg: hello }, self.now);
        self.browsers.push((conn, rx));
        self.pump();
        conn
    }

    /// The texts a page was sent (JSON and close frames).
    fn browser_texts(&mut self, conn: u64) -> Vec<String> {
        let (_, rx) = self.browsers.iter_mut().find(|(c, _)| *c == conn).unwrap();
        let mut texts = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            match frame {
                BrowserFrame::Text(t) | BrowserFrame::Close(t) => texts.push(t),
                BrowserFrame::Binary(_) => {}
            }
        }
        texts
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

#[test]
fn guesses_on_sessions_opened_in_advance_are_limited_per_attempt() {
    let mut h = Harness::new(Some(PASSWORD));
    // Finding 1: open every session first, then guess once on each.
    let guessers: Vec<usize> = (0..40).map(|_| h.connect(ip(7))).collect();
    assert_eq!(h.room.members.len(), guessers.len(), "the room has every session before the first guess");
    for &i in &guessers {
        h.guess(i, "wrong guess");
    }
    let answered = guessers.iter().filter(|&&i| h.clients[i].got_password_reply()).count();
    let refused = guessers.iter().filter(|&&i| h.clients[i].bye() == Some(ByeReason::TooManyAttempts)).count();
    assert_eq!(answered, MAX_FAILURES as usize, "guesses answered out of {}", guessers.len());
    assert_eq!(refused, guessers.len() - answered);
    // Nobody got in, so nobody is remembered (finding 10).
    assert_eq!(h.room.participants.remembered(), 0);

    // Another address is not affected; this one is, with the right password too.
    let other = h.connect(ip(8));
    h.join(other, "other", Some(PASSWORD));
    assert!(h.clients[other].admitted());
    let blocked = h.connect(ip(7));
    h.guess(blocked, PASSWORD);
    assert_eq!(h.clients[blocked].bye(), Some(ByeReason::TooManyAttempts));

    // A minute later the address may try again.
    h.advance(WINDOW + Duration::from_secs(1));
    let later = h.connect(ip(7));
    h.join(later, "later", Some(PASSWORD));
    assert!(h.clients[later].admitted(), "{:?}", h.clients[later].events);
}

#[test]
fn a_browser_and_a_native_joiner_share_one_password_limit() {
    let mut h = Harness::new(Some(PASSWORD));
    let page_addr = SocketAddr::new(ip(9), 40_000);
    for _ in 0..MAX_FAILURES {
        let conn = h.browser(page_addr, Some("wrong"));
        let said = h.browser_texts(conn).join("\n");
        assert!(said.contains("wrong password"), "{said}");
    }
    let conn = h.browser(page_addr, Some(PASSWORD));
    let said = h.browser_texts(conn).join("\n");
    assert!(said.contains("too many failed attempts"), "{said}");
    let native = h.connect(ip(9));
    h.guess(native, PASSWORD);
    assert_eq!(h.clients[native].bye(), Some(ByeReason::TooManyAttempts));
    assert_eq!(h.room.participants.in_roster().count(), 0);
}

#[test]
fn every_kind_of_participant_is_one_entry_admitted_replaced_and_removed_the_same_way() {
    let mut h = Harness::new(None);
    let alice = h.connect(ip(1));
    h.join(alice, "alice", None);
    let page = h.browser(SocketAddr::new(ip(2), 40_000), None);
    let browser_id = h.room.participants.id_of(Link::Browser(page)).expect("the page is in the table");
    let alice_session = h.session_of(alice);
    let alice_id = h.room.participants.id_of(Link::Native(alice_session)).expect("alice is in the table");
    assert_ne!(alice_id, browser_id);
    assert_eq!(h.room.participants.in_roster().count(), 2);
    assert_eq!(h.room.full_roster().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["alice", "page 1"]);

    // Alice's network drops and she comes back from elsewhere with the same key: one
    // entry, the same id, the old session told it was replaced.
    let keypair = h.clients[alice].keypair.clone();
    let again = h.connect_as(ip(3), keypair);
    let again_session = h.session_of(again);
    h.join(again, "alice", None);
    assert_eq!(h.clients[alice].bye(), Some(ByeReason::Replaced));
    assert!(h.clients[again].admitted());
    assert_eq!(h.room.participants.in_roster().count(), 2);
    let entry = h.room.participants.get(alice_id).expect("alice keeps her id");
    assert_eq!(entry.link, Link::Native(again_session));
    assert_eq!(h.room.participants.id_of(Link::Native(alice_session)), None, "the old session speaks for nobody");

    // An admin removes the page: out of the table, and alice hears it left.
    let done = h.room.apply_admin(AdminOp::Kick { target: browser_id }, h.now);
    assert!(done.is_ok(), "{done:?}");
    h.pump();
    assert!(h.room.participants.get(browser_id).is_none());
    // Departures go out with the room's next news, within a quarter of a second.
    h.advance(super::news::flush_interval(2));
    assert!(h.clients[again].heard_left(browser_id));
    assert!(h.browser_texts(page).join("\n").contains("an admin removed you"));

    // Alice leaves: the table is empty.
    h.clients[again].conn.as_mut().unwrap().close(h.now, ByeReason::Leaving);
    h.advance(Duration::from_millis(200));
    assert_eq!(h.room.participants.in_roster().count(), 0);
}

/// An RTP packet of payload type 111 with a one-byte Opus packet (silent, valid).
/// Finding (issue 14): every join sent each member a roster message and every change
/// of speaker a talking message, each acknowledged by its own datagram: at 1000
/// members, ~7800 acknowledgements a second reached the server. Now joins are
/// gathered into the room's news, and talking goes out as unacknowledged notices.
#[test]
fn joins_and_changes_of_speaker_reach_each_member_gathered_and_cost_no_acknowledgement_storm() {
    let mut h = Harness::new(None);
    let first = h.connect(ip(1));
    h.join(first, "first", None);
    h.advance(Duration::from_millis(300));
    let (sent_before, received_before) = (h.clients[first].sent, h.clients[first].received);
    let rosters_before = h.clients[first].events.len();
    // 59 more join over 590 ms.
    for i in 0..59u8 {
        let c = h.connect(IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)));
        h.join(c, &format!("member {i}"), None);
        h.advance(Duration::from_millis(10));
    }
    h.advance(Duration::from_millis(600));
    let news: Vec<&ControlMessage> = h.clients[first].events[rosters_before..]
        .iter()
        .filter_map(|e| if let Event::Control(m @ ControlMessage::Roster(_)) = e { Some(m) } else { None })
        .collect();
    let seen: std::collections::BTreeSet<ParticipantId> = news
        .iter()
        .flat_map(|m| if let ControlMessage::Roster(l) = m { l.iter().map(|e| e.id).collect() } else { vec![] })
        .collect();
    assert_eq!(seen.len(), 59, "the first member hears of every newcomer");
    // In 1.2 s: a few flushes of up to 12 lines each, not 59 messages.
    assert!(news.len() <= 12, "{} roster messages for 59 joins", news.len());
    let (sent, received) = (h.clients[first].sent - sent_before, h.clients[first].received - received_before);
    println!(
        "first member during 59 joins in 1.2 s: {received} datagrams in, {sent} out, {} roster messages",
        news.len()
    );
    assert!(sent <= 8, "{sent} datagrams sent back (acknowledgements and reports) for 59 joins");

    // The speaker changes every 100 ms for a second: each member hears who is talking
    // a few times a second, and acknowledges none of it.
    let ids: Vec<ParticipantId> = h.room.participants.in_roster().map(|p| p.id).collect();
    let sent_before: Vec<usize> = h.clients.iter().map(|c| c.sent).collect();
    let events_before = h.clients[first].events.len();
    for id in &ids[..10] {
        h.room.on_mixer(FromMixer::Talking(vec![*id]), h.now);
        h.advance(Duration::from_millis(100));
    }
    h.advance(Duration::from_millis(1500));
    let talking: Vec<&Vec<ParticipantId>> = h.clients[first].events[events_before..]
        .iter()
        .filter_map(|e| if let Event::Control(ControlMessage::Talking(t)) = e { Some(t) } else { None })
        .collect();
    assert!((4..=7).contains(&talking.len()), "{} talking updates in 2.5 s", talking.len());
    assert_eq!(talking.last().map(|t| t.as_slice()), Some(&[ids[9]][..]), "the last speaker is the one shown");
    let most_sent = h.clients.iter().zip(&sent_before).map(|(c, b)| c.sent - b).max().unwrap();
    // Reports only: one a second each.
    assert!(most_sent <= 3, "a member sent {most_sent} datagrams in 2.5 s of speaker changes");
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.push(0xf8);
    p
}

impl Harness {
    /// Opens the plain RTP door, nobody allowed yet.
    fn with_rtp(mut self) -> Self {
        let allow = rtp_allow::AllowList::open(self._dir.path(), &[], false).unwrap();
        self.room.rtp = Some(rtp_in::RtpInput {
            port: 4010,
            payload_type: 111,
            allow,
            senders: HashMap::new(),
            pending: Default::default(),
            counters: Default::default(),
        });
        self
    }

    fn rtp_packet(&mut self, from: SocketAddr, ssrc: u32, seq: u16) {
        self.room.on_rtp(from, self.now, &rtp(ssrc, seq));
    }

    /// Senders waiting for an admin, counted the slow way; the door's index must agree.
    fn pending(&self) -> usize {
        let rtp = self.room.rtp.as_ref().unwrap();
        let slow: Vec<u32> = rtp.senders.keys().copied().filter(|&s| rtp.allow.rule(s).is_none()).collect();
        assert!(slow.iter().all(|&s| rtp.pending.contains(s)), "a pending sender the index does not know");
        assert_eq!(rtp.pending.len(), slow.len(), "the index counts senders that are not pending");
        slow.len()
    }

    fn api(&mut self, request: ApiRequest) -> ApiReply {
        self.room.answer(request, self.now)
    }
}

#[test]
fn an_ssrc_flood_neither_grows_the_table_nor_keeps_an_accepted_sender_out() {
    use crate::room::rtp_in::{MAX_PENDING, MAX_PENDING_PER_ADDRESS};
    let mut h = Harness::new(None).with_rtp();
    let real = SocketAddr::new(ip(50), 5004);
    h.rtp_packet(real, 0xabc, 1);
    // Finding 8: thousands of random SSRCs from 100 addresses (more than the table's
    // 1024 and than 16 per address), then the admin accepts 0xabc.
    for n in 0..4_000u32 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, (n % 100) as u8, 1)), 5004);
        h.rtp_packet(from, rand_ssrc(n), 1);
    }
    assert!(h.pending() <= MAX_PENDING, "{} pending", h.pending());
    let mut per_address: HashMap<IpAddr, usize> = HashMap::new();
    for s in h.room.rtp.as_ref().unwrap().senders.values() {
        *per_address.entry(s.from.ip()).or_default() += 1;
    }
    assert!(per_address.values().all(|&n| n <= MAX_PENDING_PER_ADDRESS), "{per_address:?}");
    let accepted = h.api(ApiRequest::RtpAllow { ssrc: 0xabc, from: Some(real.to_string()), name: None });
    assert!(matches!(accepted, ApiReply::Sender(Ok(_))), "{accepted:?}");
    for n in 4_000..8_000u32 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 2, (n % 100) as u8, 1)), 5004);
        h.rtp_packet(from, rand_ssrc(n), 1);
    }
    for seq in 2..6 {
        h.rtp_packet(real, 0xabc, seq); // past the RTP sequence probation
    }
    let id = h.room.participants.id_of(Link::Rtp(0xabc)).expect("the accepted sender is in the room");
    assert_eq!(h.room.participants.get(id).map(|p| p.role.sends), Some(true));
    assert!(h.pending() <= MAX_PENDING);

    // Finding 9: an impostor sends the same SSRC as a pending one; accepting it without
    // naming an address must ask which, and bind only the one named.
    let (honest, impostor) = (SocketAddr::new(ip(60), 5004), SocketAddr::new(ip(61), 5004));
    h.rtp_packet(honest, 0x5150, 1);
    h.rtp_packet(impostor, 0x5150, 1);
    let ask = h.api(ApiRequest::RtpAllow { ssrc: 0x5150, from: None, name: None });
    assert!(matches!(ask, ApiReply::Sender(Err(AdminError::Conflict(_)))), "{ask:?}");
    let chosen = h.api(ApiRequest::RtpAllow { ssrc: 0x5150, from: Some(honest.to_string()), name: None });
    assert!(matches!(chosen, ApiReply::Sender(Ok(_))), "{chosen:?}");
    for seq in 2..6 {
        h.rtp_packet(impostor, 0x5150, seq);
    }
    assert_eq!(h.room.participants.id_of(Link::Rtp(0x5150)), None, "the impostor got in");
    for seq in 2..6 {
        h.rtp_packet(honest, 0x5150, seq);
    }
    assert!(h.room.participants.id_of(Link::Rtp(0x5150)).is_some(), "the chosen sender is refused");
}

/// A spread of SSRCs that are not 0xabc or 0x5150, the same every run.
fn rand_ssrc(n: u32) -> u32 {
    n.wrapping_mul(2_654_435_761).wrapping_add(0x1000_0000) | 1
}

/// A benchmark, not run by `cargo test`: what a packet of a new SSRC costs the room
/// when the pending table is full, as in a flood of random SSRCs. Run it with
/// `cargo test --release -p viz-server --lib bench_ -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: run it in a release build"]
fn bench_new_ssrc_packet_with_a_full_pending_table() {
    use crate::room::rtp_in::MAX_PENDING;
    let mut h = Harness::new(None).with_rtp();
    let from = |n: u32| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, (n % 100) as u8, 1)), 5004);
    for n in 0..5_000u32 {
        h.rtp_packet(from(n), rand_ssrc(n), 1);
    }
    let packets = 100_000u32;
    let began = Instant::now();
    for n in 5_000..5_000 + packets {
        h.rtp_packet(from(n), rand_ssrc(n), 1);
    }
    let per_packet = began.elapsed().as_secs_f64() / f64::from(packets);
    println!(
        "a new-SSRC packet with {} pending: {:.2} µs ({:.0} packets a second on one core)",
        h.pending(),
        per_packet * 1e6,
        1.0 / per_packet
    );
    assert_eq!(h.pending(), MAX_PENDING);
}
