//! `viz serve`: a room server with no local audio. Any number of participants join,
//! the mixer thread ([`mixing`]) gives each the mix they should hear, and admins change
//! gains, mutes and names over the same encrypted control channel.
//!
//! This module is the network side. [`Room`] is its core: one participant table for
//! every transport (`participants`), one way in and out with the limits on attempts
//! (`admission`), native sessions' password exchange and Hello ([`members`]), browsers
//! ([`browser`]), plain RTP ([`rtp_in`]), the roster (`roster`), admin operations
//! (`admin`), settings ([`settings`]) and statistics ([`metrics`]). It never waits;
//! [`run_with_local`] is the shell around it: sockets, the tokio loop, the HTTP side.
//! Audio work happens on the mixer thread only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use viz_audio::AudioParams;
use viz_audio::mixer::ParticipantId;
use viz_proto::{ByeReason, Endpoint, Event, Input, Keypair, MAX_DATAGRAM, MediaFrame, OwnedMedia, SessionConfig};
use zeroize::Zeroizing;

use crate::listener::{BindError, Listener, Path, WsEvent};
use crate::send_pool::SendPool;
use crate::web::messages::StatsPoint;
use crate::web::{self, TlsMode};

pub mod admin;
mod admission;
pub mod browser;
pub mod local;
pub mod members;
pub mod metrics;
pub mod mixing;
mod news;
mod outbox;
pub mod outputs;
mod participants;
mod parties;
pub mod ratelimit;
pub mod recorder;
mod roster;
pub mod rtp_allow;
mod rtp_api;
pub mod rtp_in;
pub mod rtp_out;
mod rtp_pending;
pub mod settings;
#[cfg(test)]
mod tests;

use members::Member;
use mixing::{FromMixer, MixStats, MixerHandle, ToMixer};
use outbox::NetOp;
use participants::{Link, Participants};
use ratelimit::Limiters;
use settings::SettingsStore;

/// How long shutting down waits for goodbyes to be acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// Session timers are serviced at this granularity (reports, retransmissions, idle).
const TIMER_STEP: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub struct RoomConfig {
    pub bind: SocketAddr,
    pub websocket: bool,
    pub keypair: Keypair,
    pub room_name: String,
    pub params: AudioParams,
    /// The jitter buffer in front of the mixer, per speaker.
    pub jitter: viz_audio::JitterConfig,
    pub session: SessionConfig,
    pub password: Option<Zeroizing<String>>,
    pub admin_token: Zeroizing<String>,
    pub state_dir: PathBuf,
    pub test_source: bool,
    /// Forward a lone unity-gain source unchanged (see `viz_audio::mixer`).
    pub pass_through: bool,
    /// The web page, REST API and metrics.
    pub http: Option<SocketAddr>,
    /// What the HTTP port gives out, and to whom.
    pub web: web::WebAccess,
    pub tls: TlsMode,
    pub stats_interval: Duration,
    pub duration: Option<Duration>,
    /// Print the join line, fingerprint and admin token on stdout at start.
    pub announce: bool,
    /// Plain RTP in and out, and recording.
    pub media: MediaOptions,
    /// Threads that send a large tick's datagrams beside the network thread
    /// ([`crate::send_pool`]); 0: the network thread sends alone.
    pub send_threads: usize,
}

/// Where audio enters and leaves the room besides its participants' sessions.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// Plain RTP/Opus input (`--rtp-port`), off when `None`.
    pub rtp: Option<rtp_in::RtpInputConfig>,
    /// Where the room mix is forwarded as plain RTP from the start (`--rtp-forward`).
    pub rtp_forwards: Vec<SocketAddr>,
    /// Payload type of forwarded RTP (the input's, by default 111).
    pub rtp_payload_type: u8,
    /// Recording (`--record DIR`, `--record-each`).
    pub record: Option<recorder::RecordConfig>,
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            rtp: None,
            rtp_forwards: Vec::new(),
            rtp_payload_type: viz_proto::rtp::DEFAULT_OPUS_PAYLOAD_TYPE,
            record: None,
        }
    }
}

impl std::fmt::Debug for RoomConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomConfig")
            .field("bind", &self.bind)
            .field("room_name", &self.room_name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default)]
pub struct RoomSummary {
    pub joins: u64,
    pub refused: u64,
    pub peak_participants: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("cannot start the mixer: {0}")]
    Mixer(String),
    #[error("cannot serve HTTP on {addr}: {reason} (choose another port with --http PORT, or --no-http)")]
    Http { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Tls(#[from] web::tls::TlsError),
    #[error("{0} (choose another port with --rtp-port)")]
    Rtp(String),
    #[error(transparent)]
    RtpSenders(#[from] rtp_allow::AllowError),
    #[error("{0}")]
    Record(String),
    #[error("cannot start the send threads: {0}")]
    SendThreads(std::io::Error),
}

/// Counters of the network side.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetCounters {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub media_in: u64,
    pub media_out: u64,
    pub dropped: u64,
    /// Media for browsers dropped because their WebSocket was full.
    pub browser_dropped: u64,
    /// RTP forward packets the socket would not take.
    pub forward_dropped: u64,
}

/// Seconds of one-second points the admin page's graphs can show.
const HISTORY_SECONDS: usize = 600;

/// The room's core: every decision, as `&mut self` methods that take the time as an
/// argument and leave what is to be sent in [`Room::outbox`] (native datagrams) or in
/// non-blocking channels (the mixer thread, browsers' sockets, the recorder, the
/// host's engine). It never waits and reads no socket; the one socket it holds is the
/// RTP forwards', written without waiting. [`run_with_local`] is the shell that feeds
/// it events and carries out what it asks, and `tests.rs` drives it in simulated time.
pub(crate) struct Room<'a> {
    cfg: RoomConfig,
    /// Where the native transport listens (for the API, SDP files and the join line).
    local_addr: SocketAddr,
    outbox: outbox::Outbox,
    /// The mixed tick's datagrams to native listeners, sent ahead of [`Room::outbox`].
    media: outbox::Outbox,
    endpoint: Endpoint<Path>,
    mixer: MixerHandle,
    settings: SettingsStore,
    limiters: Limiters,
    /// Everyone admitted, however connected.
    participants: Participants,
    /// Authenticated native sessions (joining, admitted, or admins'), by session id.
    members: HashMap<u32, Member>,
    /// Browser WebSockets, by connection number.
    browsers: HashMap<u64, browser::Browser>,
    talking: Vec<ParticipantId>,
    /// Roster changes, talking and levels waiting to go out together.
    news: news::News,
    net: NetCounters,
    /// Media packets in and out, and participants, at the last statistics line: an
    /// idle room logs nothing.
    logged_activity: (u64, u64, usize),
    last_mix: Arc<MixStats>,
    /// Whole ticks: from the mixer's start to the last datagram handed to the kernel.
    whole_ticks: mixing::TimingWindow,
    /// The start of each tick whose datagrams are in [`Room::media`] now (two, when
    /// one finished while the other waited behind news).
    ticks_began: Vec<Instant>,
    /// The native socket's receive buffer (bytes of data it may queue), for `/metrics`.
    receive_buffer: Option<usize>,
    snapshot: Arc<Mutex<metrics::Snapshot>>,
    summary: RoomSummary,
    shutting_down: Option<Instant>,
    started: Instant,
    local: Option<local::Local<'a>>,
    history: std::collections::VecDeque<StatsPoint>,
    rtp: Option<rtp_in::RtpInput>,
    outputs: outputs::Outputs,
    recorder: Option<recorder::Recorder>,
    /// Sends the RTP forwards (opened with the first one).
    forward_socket: Option<tokio::net::UdpSocket>,
    /// Sessions touched since they were last serviced.
    dirty: Vec<u32>,
    /// Each session's next deadline, as it said when last serviced.
    session_timers: HashMap<u32, Instant>,
    /// When session timers are next serviced, the next one-second point, the next
    /// statistics line.
    next_timers: Instant,
    next_second: Instant,
    next_log: Instant,
    plain: Vec<u8>,
    reply: Vec<u8>,
    out: Vec<u8>,
}

/// Runs the room until `stop` resolves (or `duration` passes). `ready` receives the
/// bound address once listening.
pub async fn run(
    cfg: RoomConfig,
    stop: impl std::future::Future<Output = ()>,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<RoomSummary, RoomError> {
    run_with_local(cfg, None, stop, ready).await
}

/// Waits on a receiver that may not exist (then forever).
async fn recv_or_pending<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Queued datagrams sent before the shell looks for a mixed tick waiting behind them:
/// the news for a room of 2000 is ~4000 datagrams (~18 ms of sending here), and a tick
/// held behind it was late for every listener.
const SEND_SLICE: usize = 256;

/// Carries out what the core asked of the native transport, in order. Consecutive
/// UDP datagrams (a mix for every listener) go out in batches.
/// With `shared`, a run of many UDP datagrams goes out from the send threads too (for
/// media: order across them does not matter).
async fn carry_out(
    outbox: &outbox::Outbox,
    range: std::ops::Range<usize>,
    listener: &mut Listener,
    shared: Option<&SendPool>,
) {
    async fn send_udp(listener: &Listener, shared: Option<&SendPool>, udp: &[(SocketAddr, &[u8])]) {
        if !shared.is_some_and(|pool| pool.send(&listener.udp, udp)) {
            crate::batch_send::send_all(&listener.udp, udp).await;
        }
    }
    let mut udp: Vec<(SocketAddr, &[u8])> = Vec::new();
    for (op, bytes) in outbox.slice(range) {
        if let NetOp::Send(Path::Udp(addr), _) = op {
            udp.push((*addr, bytes));
            continue;
        }
        send_udp(listener, shared, &udp).await;
        udp.clear();
        match op {
            NetOp::Send(path, _) => listener.send(*path, bytes).await,
            NetOp::Authenticated(path) => listener.authenticated(*path),
            NetOp::Close(path) => listener.close(*path),
        }
    }
    send_udp(listener, shared, &udp).await;
}

/// Sends the mixed tick's datagrams and times the whole tick.
async fn carry_out_tick(room: &mut Room<'_>, listener: &mut Listener, pool: &SendPool) {
    if !room.media.is_empty() {
        carry_out(&room.media, 0..room.media.len(), listener, Some(pool)).await;
        room.media.clear();
    }
    for began in room.ticks_began.drain(..) {
        room.whole_ticks.push(began.elapsed());
    }
}

/// Carries out everything queued: the tick's media first, then the rest in slices of
/// [`SEND_SLICE`], taking any tick the mixer finished meanwhile ahead of what is left.
async fn carry_out_all(
    room: &mut Room<'_>,
    listener: &mut Listener,
    pool: &SendPool,
    mix_rx: &mut mpsc::UnboundedReceiver<FromMixer>,
) {
    carry_out_tick(room, listener, pool).await;
    let total = room.outbox.len();
    let mut from = 0;
    while from < total {
        let to = (from + SEND_SLICE).min(total);
        carry_out(&room.outbox, from..to, listener, None).await;
        from = to;
        if from < total {
            while let Ok(msg) = mix_rx.try_recv() {
                room.on_mixer(msg, Instant::now());
            }
            carry_out_tick(room, listener, pool).await;
        }
    }
    room.outbox.clear();
}

/// As [`run`], with the host's own audio as a participant when `local` is given
/// (`viz host --http`); its Leave command ends the room like `stop`.
pub async fn run_with_local(
    cfg: RoomConfig,
    local: Option<local::LocalAudio<'_>>,
    stop: impl std::future::Future<Output = ()>,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<RoomSummary, RoomError> {
    let listener = Listener::bind_with(cfg.bind, cfg.websocket, cfg.web.trust_proxy).await?;
    let settings = SettingsStore::open(&cfg.state_dir)?;
    let (mix_tx, mut mix_rx) = mpsc::unbounded_channel();
    let mixer = mixing::spawn(
        viz_audio::mixer::MixerConfig {
            pass_through: cfg.pass_through,
            jitter: cfg.jitter,
            ..viz_audio::mixer::MixerConfig::new(cfg.params)
        },
        cfg.test_source,
        mix_tx,
    )
    .map_err(|e| RoomError::Mixer(e.to_string()))?;
    let snapshot = Arc::new(Mutex::new(metrics::Snapshot::default()));
    let limiters = Limiters::default();
    let (web_tx, mut web_rx) = mpsc::channel(web::EVENT_QUEUE);
    let http = match cfg.http {
        Some(addr) => {
            let state = web::WebState::new(
                web_tx,
                snapshot.clone(),
                cfg.admin_token.clone(),
                limiters.admin_token.clone(),
                cfg.web.clone(),
            );
            Some(web::serve(addr, &cfg.tls, state, cfg.web.trust_proxy).await?)
        }
        None => None,
    };
    let rtp = match &cfg.media.rtp {
        Some(r) => {
            let allow = rtp_allow::AllowList::open(&cfg.state_dir, &r.allow, r.open)?;
            Some(rtp_in::RtpInput::bind(r, allow).await.map_err(RoomError::Rtp)?)
        }
        None => None,
    };
    let recorder = match &cfg.media.record {
        Some(r) => Some(recorder::Recorder::spawn(&r.dir).map_err(RoomError::Record)?),
        None => None,
    };
    let mut listener = listener;
    let send_pool = SendPool::new(cfg.send_threads).map_err(RoomError::SendThreads)?;
    let receive_buffer = crate::kernel_udp::set_receive_buffer(
        socket2::SockRef::from(&*listener.udp),
        crate::kernel_udp::ROOM_RECEIVE_BUFFER,
    );
    let mut room = Room::new(cfg, listener.local, mixer, settings, snapshot, limiters);
    match receive_buffer {
        Ok(b) => {
            room.receive_buffer = Some(b.usable());
            if b.capped() {
                tracing::warn!(
                    "the system caps UDP receive buffers: asked for {} KiB, got {} KiB. Under load the kernel \
                     drops datagrams; raise the cap with: sysctl -w net.core.rmem_max={}",
                    b.asked >> 10,
                    b.usable() >> 10,
                    b.asked
                );
            }
        }
        Err(e) => tracing::warn!("cannot size the UDP receive buffer: {e}"),
    }
    let (rtp, rtp_sockets) = rtp.unzip();
    room.rtp = rtp;
    room.recorder = recorder;
    let sdp_files = room.start_outputs()?;
    if room.cfg.announce {
        room.announce(&listener, http.as_ref(), &sdp_files);
    }
    let (mut local_media, mut local_commands) = (None, None);
    if let Some(l) = local {
        local_media = Some(l.outgoing);
        local_commands = Some(l.commands);
        let local = local::Local {
            engine: l.engine,
            console: l.console,
            roster: Default::default(),
            controls: l.engine.initial_controls(),
            people: viz_client::people::People::new(l.volumes),
            next_draw: Instant::now(),
            notices: Default::default(),
        };
        room.add_local(local, l.name, Instant::now());
    }
    if let Some(r) = ready {
        let _ = r.send(listener.local);
    }
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut rtp_buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut rtcp_buf = vec![0u8; MAX_DATAGRAM + 1];
    tokio::pin!(stop);
    let mut stop_requested = false;
    let mut next_memory_return = Instant::now() + crate::limits::RETURN_MEMORY_EVERY;
    loop {
        tokio::select! {
            r = listener.udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => room.on_datagram(Path::Udp(from), Some(from), Instant::now(), &buf[..n]),
                Err(e) => tracing::debug!("udp receive error: {e}"),
            },
            Some(ev) = listener.ws_events.recv() => {
                listener.track(&ev);
                if let WsEvent::Datagram { id, at, data } = ev {
                    let peer = listener.peer_addr(Path::Ws(id));
                    room.on_datagram(Path::Ws(id), peer, at, &data);
                }
            },
            r = rtp_in::recv_on(rtp_sockets.as_ref().map(|s| &s.rtp), &mut rtp_buf) => match r {
                Ok((n, from)) => room.on_rtp(from, Instant::now(), &rtp_buf[..n]),
                Err(e) => tracing::debug!("RTP receive error: {e}"),
            },
            r = rtp_in::recv_on(rtp_sockets.as_ref().map(|s| &s.rtcp), &mut rtcp_buf) => match r {
                Ok((n, from)) => room.on_rtcp(from, Instant::now(), &rtcp_buf[..n]),
                Err(e) => tracing::debug!("RTCP receive error: {e}"),
            },
            Some(msg) = mix_rx.recv() => room.on_mixer(msg, Instant::now()),
            Some(ev) = web_rx.recv() => room.on_web(ev, Instant::now()),
            m = recv_or_pending(&mut local_media) => match m {
                Some(media) => room.on_local_media(media),
                None => local_media = None,
            },
            c = recv_or_pending(&mut local_commands) => match c {
                Some(cmd) => room.on_local_command(cmd, Instant::now()),
                None => local_commands = None,
            },
            _ = &mut stop, if !stop_requested => {
                stop_requested = true;
                room.begin_shutdown(Instant::now());
            },
            _ = tokio::time::sleep_until(room.poll_timeout().into()) => {}
        }
        let now = Instant::now();
        let finished = room.handle_timeout(now);
        carry_out_all(&mut room, &mut listener, &send_pool, &mut mix_rx).await;
        if now >= next_memory_return {
            next_memory_return = now + crate::limits::RETURN_MEMORY_EVERY;
            crate::limits::return_freed_memory();
        }
        if finished {
            break;
        }
    }
    room.close_recordings();
    let summary = room.summary.clone();
    let Room { mixer, recorder, .. } = room;
    mixer.stop();
    if let Some(r) = recorder {
        r.stop();
    }
    Ok(summary)
}

impl<'a> Room<'a> {
    fn new(
        cfg: RoomConfig,
        local_addr: SocketAddr,
        mixer: MixerHandle,
        settings: SettingsStore,
        snapshot: Arc<Mutex<metrics::Snapshot>>,
        limiters: Limiters,
    ) -> Self {
        let now = Instant::now();
        Self {
            endpoint: Endpoint::new(cfg.keypair.clone(), cfg.session, rand::random()),
            next_timers: now + TIMER_STEP,
            next_second: now + Duration::from_secs(1),
            next_log: now + cfg.stats_interval,
            cfg,
            local_addr,
            outbox: outbox::Outbox::default(),
            media: outbox::Outbox::default(),
            mixer,
            settings,
            limiters,
            participants: Participants::default(),
            members: HashMap::new(),
            browsers: HashMap::new(),
            talking: Vec::new(),
            news: news::News::new(now),
            net: NetCounters::default(),
            logged_activity: (0, 0, 0),
            last_mix: Arc::new(MixStats::default()),
            whole_ticks: mixing::TimingWindow::default(),
            ticks_began: Vec::new(),
            receive_buffer: None,
            snapshot,
            summary: RoomSummary::default(),
            shutting_down: None,
            started: now,
            local: None,
            history: std::collections::VecDeque::with_capacity(HISTORY_SECONDS),
            rtp: None,
            outputs: outputs::Outputs::default(),
            recorder: None,
            forward_socket: None,
            dirty: Vec::new(),
            session_timers: HashMap::new(),
            plain: vec![0u8; MAX_DATAGRAM],
            reply: vec![0u8; MAX_DATAGRAM],
            out: vec![0u8; MAX_DATAGRAM],
        }
    }

    /// The mix recording and the command line's forwards, from the start. Returns the
    /// SDP file written for each forward.
    fn start_outputs(&mut self) -> Result<Vec<(SocketAddr, PathBuf)>, RoomError> {
        if self.recorder.is_some() {
            self.open_recording(outputs::OutputSource::Mix, "mix");
        }
        let mut sdp_files = Vec::new();
        for target in self.cfg.media.rtp_forwards.clone() {
            let id = self
                .add_forward(target, outputs::OutputSource::Mix, self.cfg.media.rtp_payload_type)
                .map_err(|e| RoomError::Rtp(format!("--rtp-forward {target}: {e}")))?;
            if let Some(sdp) = self.forward_sdp(id) {
                let path = self.cfg.state_dir.join(format!("rtp-forward-{id}.sdp"));
                std::fs::write(&path, sdp)
                    .map_err(|e| RoomError::Record(format!("cannot write {}: {e}", path.display())))?;
                sdp_files.push((target, path));
            }
        }
        Ok(sdp_files)
    }

    fn announce(&self, listener: &Listener, http: Option<&web::Served>, sdp_files: &[(SocketAddr, PathBuf)]) {
        let local = self.local_addr;
        let fp = self.cfg.keypair.fingerprint();
        let shown_ip =
            if local.ip().is_unspecified() { crate::host::guess_local_ip().unwrap_or(local.ip()) } else { local.ip() };
        let transports = if listener.websocket_enabled() { "UDP, and WebSocket over TCP" } else { "UDP" };
        println!("Room '{}' on port {} ({transports}). Server fingerprint: {fp}", self.cfg.room_name, local.port());
        println!("Join with:   viz join viz://{}#{fp}", SocketAddr::new(shown_ip, local.port()));
        println!(
            "Password:    {}",
            if self.cfg.password.is_some() { "required (proven with CPace, never sent)" } else { "none" }
        );
        println!("Admin token: {}", self.cfg.admin_token.as_str());
        println!("Settings:    {}", self.settings.path().display());
        if let Some(bytes) = self.receive_buffer {
            println!("UDP buffer:  {} KiB for receiving", bytes >> 10);
        }
        match self.cfg.send_threads {
            0 => println!("Sending:     from the network thread (--send-threads to add helpers)"),
            n => println!(
                "Sending:     ticks of {}+ datagrams from the network thread and {n} more",
                crate::send_pool::MIN_SHARED
            ),
        }
        if let Some(h) = http {
            println!("Web page:    {}  (admin page: {}/admin)", h.url, h.url);
            if let Some(fp) = &h.cert_fingerprint {
                println!("TLS certificate SHA-256: {fp}");
            }
            if h.needs_tls_for_lan {
                println!(
                    "             (browsers on other machines need HTTPS for audio: --tls-self-signed, or an https tunnel)"
                );
            }
        }
        if self.cfg.test_source {
            println!("Test source: on (a music loop; listen to it with: viz join ... --listen-only)");
        }
        if let Some(rtp) = &self.rtp {
            let who = if rtp.allow.is_open() {
                "every SSRC (--rtp-open)".to_owned()
            } else {
                "allowed SSRCs only; others wait for an admin".to_owned()
            };
            println!(
                "RTP input:   UDP {} (RTCP {}), Opus payload type {}, {who}",
                rtp.port,
                rtp.port.wrapping_add(1),
                rtp.payload_type
            );
        }
        for (target, path) in sdp_files {
            println!("RTP forward: the room mix to {target}  (SDP: {})", path.display());
        }
        if let Some(r) = &self.cfg.media.record {
            let what = if r.each { "the mix and each participant" } else { "the mix" };
            println!("Recording:   {what}, Ogg Opus files in {}", r.dir.display());
        }
    }

    /// One datagram of the native transport from `peer` (for a WebSocket path, the
    /// address of its connection).
    pub(crate) fn on_datagram(&mut self, path: Path, peer: Option<SocketAddr>, at: Instant, data: &[u8]) {
        self.net.datagrams_in += 1;
        match self.endpoint.handle_datagram(at, path, data, &mut self.plain, &mut self.reply) {
            Input::Reply(n) => {
                self.net.datagrams_out += 1;
                self.outbox.send(path, &self.reply[..n]);
            }
            Input::Accepted(id) => {
                self.outbox.push(NetOp::Authenticated(path));
                self.on_accepted(id, path, peer, at);
                self.dirty.push(id);
            }
            Input::Media(id, m) => {
                if let Some(p) = self.participants.of_link(Link::Native(id)).filter(|p| p.role.sends) {
                    self.net.media_in += 1;
                    let media = OwnedMedia::from_frame(&m);
                    self.mixer.send(ToMixer::Media { id: p.id, at, media });
                }
                self.dirty.push(id);
            }
            Input::Handled(id) => self.dirty.push(id),
            Input::Dropped(reason) => {
                self.net.dropped += 1;
                tracing::debug!(%path, reason = reason.as_str(), "datagram dropped");
            }
        }
    }

    fn on_accepted(&mut self, id: u32, path: Path, peer: Option<SocketAddr>, at: Instant) {
        let via = crate::listener::describe(path, peer);
        let Some(session) = self.endpoint.session_mut(id) else { return };
        if self.shutting_down.is_some() {
            session.close(at, ByeReason::ShuttingDown);
            return;
        }
        // Limits apply to each attempt (a password, an admin token), not here: an
        // address that guessed wrong may still bring the admin token.
        let key = session.remote_static();
        tracing::debug!(%via, key = %key.fingerprint(), "session authenticated");
        // Not a participant yet: its id is given when it is admitted, so identities
        // that never get in leave nothing behind (finding: 125 000 fresh identities
        // grew the id table by 47 MB before any password was asked).
        self.members.insert(id, Member::new(id, key, peer.map(crate::listener::canonical), via));
        if self.news.pacing() {
            self.pace_session(id, at);
        }
    }

    pub(crate) fn on_mixer(&mut self, msg: FromMixer, now: Instant) {
        match msg {
            FromMixer::Packet(p) => self.deliver(&p, now),
            FromMixer::Tick { began, packets } => {
                for p in &packets {
                    self.deliver(p, now);
                }
                // The datagrams go out when this returns: the shell carries out the
                // media first, and the whole tick is timed after that.
                self.ticks_began.push(began);
            }
            FromMixer::Talking(ids) => self.talking_changed(ids),
            FromMixer::Levels(levels) => self.levels_measured(levels),
            FromMixer::Stats(s) => self.last_mix = Arc::new(*s),
        }
    }

    /// Encrypts one mixed (or forwarded) packet for each of its listeners.
    fn deliver(&mut self, p: &mixing::MixedPacket, now: Instant) {
        let Some(src) = p.frames.as_frame() else { return };
        // The frames are checked once; each listener's copy differs only in its
        // stream's sequence number, timestamp and marker.
        let Some(template) = MediaFrame::new(0, 0, 0, false, src.frames()) else { return };
        for d in &p.deliveries {
            let mut frame = template;
            (frame.seq, frame.timestamp, frame.marker) = (d.seq, d.timestamp, d.marker);
            let sid = match self.participants.get(d.listener).map(|p| p.link) {
                Some(Link::Native(sid)) => sid,
                Some(Link::Browser(conn)) => {
                    self.send_browser_media(conn, &frame);
                    continue;
                }
                Some(Link::Local) => {
                    self.deliver_local(&frame, now);
                    continue;
                }
                // RTP senders hear nothing.
                Some(Link::Rtp(_)) => continue,
                None => {
                    self.deliver_output(d, src.frames(), now);
                    continue;
                }
            };
            let Some(path) = self.endpoint.path(sid) else { continue };
            let Some(session) = self.endpoint.session_mut(sid).filter(|s| s.is_open()) else { continue };
            if let Ok(n) = session.send_media(now, &frame, &mut self.out) {
                self.net.media_out += 1;
                self.net.datagrams_out += 1;
                self.media.send(path, &self.out[..n]);
            }
        }
    }

    /// Everything due by `now`: sessions touched since the last call, session timers,
    /// the one-second work and the statistics line, the end of `--duration`. Returns
    /// whether the room has finished shutting down.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        self.flush_news(now);
        self.service_dirty(now);
        if now >= self.next_timers {
            self.next_timers = now + TIMER_STEP;
            self.endpoint.expire_handshakes(now);
            self.service_due(now);
            if let Some(d) = self.cfg.duration
                && now >= self.started + d
            {
                self.begin_shutdown(now);
            }
            if let Some(t) = self.shutting_down
                && ((self.members.is_empty() && self.browsers.is_empty()) || now >= t + SHUTDOWN_GRACE)
            {
                return true;
            }
        }
        if now >= self.next_second {
            self.next_second += Duration::from_secs(1);
            self.every_second(now);
            self.local_notices();
        }
        if now >= self.next_log {
            self.next_log += self.cfg.stats_interval;
            self.log_stats();
        }
        self.redraw_local(now);
        false
    }

    /// When [`Room::handle_timeout`] next has work.
    pub(crate) fn poll_timeout(&self) -> Instant {
        let next = self.next_timers.min(self.next_second).min(self.next_log).min(self.news.next_flush());
        self.local_next_draw().map_or(next, |t| next.min(t))
    }

    fn service_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for id in dirty.drain(..) {
            self.service(id, now);
        }
        // Events may have touched more sessions (broadcasts): serve them next round.
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Runs the timers of the sessions whose deadline has come, and serves those
    /// touched since. Visiting every session every 10 ms cost a fifth of a core at 2000.
    fn service_due(&mut self, now: Instant) {
        let due: Vec<u32> = self.session_timers.iter().filter(|&(_, t)| *t <= now).map(|(id, _)| *id).collect();
        for id in due {
            let Some(s) = self.endpoint.session_mut(id) else {
                self.session_timers.remove(&id);
                continue;
            };
            s.handle_timeout(now);
            self.service(id, now);
        }
        let d = std::mem::take(&mut self.dirty);
        for id in d {
            self.service(id, now);
        }
    }

    /// Handles one session's events, sends what it has to send, forgets it when over.
    fn service(&mut self, id: u32, now: Instant) {
        let mut events = Vec::new();
        if let Some(session) = self.endpoint.session_mut(id) {
            while let Some(e) = session.poll_event() {
                events.push(e);
            }
        }
        for event in events {
            self.on_event(id, event, now);
        }
        let (Some(path), Some(session)) = (self.endpoint.path(id), self.endpoint.session_mut(id)) else { return };
        while let Some(n) = session.poll_transmit(now, &mut self.out) {
            self.net.datagrams_out += 1;
            self.outbox.send(path, &self.out[..n]);
        }
        match session.poll_timeout() {
            Some(t) => self.session_timers.insert(id, t),
            None => self.session_timers.remove(&id),
        };
        if session.is_closed() {
            self.drop_session(id);
            self.members.remove(&id);
            self.link_ended(Link::Native(id), ByeReason::Leaving);
        }
    }

    /// Forgets a finished session; a WebSocket that carried it closes.
    fn drop_session(&mut self, id: u32) {
        self.session_timers.remove(&id);
        if let Some(path) = self.endpoint.path(id) {
            self.outbox.push(NetOp::Close(path));
        }
        self.endpoint.remove(id);
    }

    fn on_event(&mut self, id: u32, event: Event, now: Instant) {
        match event {
            Event::Control(msg) => self.on_control(id, msg, now),
            Event::PeerLeft(reason) => {
                self.members.remove(&id);
                self.link_ended(Link::Native(id), reason);
            }
            Event::TimedOut => {
                if let Some(m) = self.members.remove(&id) {
                    tracing::info!(via = %m.via, "session timed out");
                }
                self.link_ended(Link::Native(id), ByeReason::Other(0xff));
                self.drop_session(id);
            }
            Event::Closed => {}
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutting_down.is_some() {
            return;
        }
        self.shutting_down = Some(now);
        tracing::info!("shutting down: telling {} participants", self.members.len() + self.browsers.len());
        // A room server going down is likely back soon (a restart): clients wait for it.
        // A host ending its call (`viz host --http`) is not coming back.
        let reason = if self.local.is_some() { ByeReason::Leaving } else { ByeReason::ShuttingDown };
        let conns: Vec<u64> = self.browsers.keys().copied().collect();
        for conn in conns {
            let (text, reconnect) = browser::bye_text(reason);
            self.end_browser(conn, text, reconnect);
        }
        for id in self.endpoint.session_ids() {
            if let Some(s) = self.endpoint.session_mut(id) {
                s.close(now, reason);
            }
            self.dirty.push(id);
        }
    }

    fn every_second(&mut self, now: Instant) {
        self.pace_reports(now);
        self.rtp_every_second(now);
        self.forward_reports(now);
        for b in self.browsers.values_mut() {
            b.inbound.roll();
        }
        // FEC of each mix follows the loss its listeners report.
        let losses: Vec<(ParticipantId, u8)> = self
            .participants
            .iter()
            .filter(|p| p.role.receives)
            .filter_map(|p| {
                let loss = match p.link {
                    Link::Native(sid) => self.endpoint.session(sid).map(|s| s.stats().remote_loss),
                    Link::Browser(conn) => self.browsers.get(&conn).map(|b| b.reported_loss),
                    Link::Local | Link::Rtp(_) => None,
                }?;
                Some((p.id, (loss * 100.0).round().clamp(0.0, 100.0) as u8))
            })
            .collect();
        if !losses.is_empty() {
            self.mixer.send(ToMixer::ListenerLoss(losses));
        }
        let infos = self.participant_infos();
        let point = self.stats_point(&infos);
        if self.history.len() == HISTORY_SECONDS {
            self.history.pop_front();
        }
        self.history.push_back(point);
        let snap = self.snapshot(infos);
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snap;
        }
    }

    /// The periodic statistics log: one room line and, for participants losing
    /// packets, one line each (worst first, ten at most; the others at debug level).
    /// Nothing when no packet moved and nobody came or went since the last line.
    fn log_stats(&mut self) {
        self.local_status();
        let admitted = self.admitted_count();
        let activity = (self.net.media_in, self.net.media_out, admitted);
        if activity == self.logged_activity {
            return;
        }
        self.logged_activity = activity;
        let mix = &self.last_mix;
        tracing::info!(
            target: "viz::room",
            mix_mean_ms = format_args!("{:.3}", mix.cycle_mean_ms),
            mix_p99_ms = format_args!("{:.3}", mix.cycle_p99_ms),
            mix_max_ms = format_args!("{:.3}", mix.cycle_max_ms),
            participants = admitted,
            active_sources = mix.active_sources,
            encodes_per_tick = format_args!("{:.2}", mix.encodes_per_tick),
            packets_in = self.net.media_in,
            packets_out = self.net.media_out,
            late_ticks = mix.late_ticks,
            "room statistics"
        );
        // Per participant, worst loss first; a big room logs its ten worst.
        let mut rows = self.participant_infos();
        rows.sort_by(|a, b| b.loss_percent.total_cmp(&a.loss_percent));
        for (rank, p) in rows.iter().filter(|p| p.kind != parties::KIND_TEST_SOURCE).enumerate() {
            let (loss, jitter) = (format!("{:.1}", p.loss_percent), format!("{:.1}", p.jitter_ms));
            if p.loss_percent > 0.0 && rank < 10 {
                tracing::info!(target: "viz::room", participant = %p.name, id = p.id, loss_percent = %loss, jitter_ms = %jitter, "participant");
            } else {
                tracing::debug!(target: "viz::room", participant = %p.name, id = p.id, loss_percent = %loss, jitter_ms = %jitter, "participant");
            }
        }
    }

    fn snapshot(&self, infos: Vec<crate::web::messages::ParticipantInfo>) -> metrics::Snapshot {
        let mix = (*self.last_mix).clone();
        let participants = infos
            .into_iter()
            .filter(|p| p.kind != parties::KIND_TEST_SOURCE)
            .map(|p| metrics::ParticipantRow {
                id: p.id,
                name: p.name,
                loss: f64::from(p.loss_percent) / 100.0,
                jitter_ms: f64::from(p.jitter_ms),
                talking: p.talking,
            })
            .collect();
        let rtp = self.rtp.as_ref().map(|r| (r.counters, r.pending.len()));
        let recorder_dropped =
            self.recorder.as_ref().map_or(0, |r| r.dropped.load(std::sync::atomic::Ordering::Relaxed));
        metrics::Snapshot {
            mix,
            whole_tick: self.whole_ticks.summary(),
            kernel_udp: crate::kernel_udp::drops(),
            receive_buffer: self.receive_buffer,
            net: self.net,
            participants,
            failed_attempts_refused: self.limiters.password.refused() + self.limiters.admin_token.refused(),
            rtp,
            recorder_dropped,
        }
    }
}

/// A fresh admin token: 128 random bits, base32.
pub fn generate_admin_token() -> Zeroizing<String> {
    let bytes: [u8; 16] = rand::random();
    Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}
