//! `viz join`: find the host, authenticate it, and run the call until someone leaves.
//!
//! A bare address tries UDP first; if no handshake answer comes within `udp_wait`
//! (3 s), or the host's machine refuses UDP outright, it tries a WebSocket to the same
//! host and port, and says which one it uses. Every failure ends with one message that
//! says what was tried and what happened, within about five seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use viz_audio::AudioParams;
use viz_proto::password::JoinerPassword;
use viz_proto::{
    ByeReason, Connection, ControlMessage, Established, Event, HandshakeError, Hello, HostKeyPolicy, Initiator,
    Keypair, MAX_DATAGRAM, OwnedMedia, PROTOCOL_VERSION, Received, Sas, SessionConfig,
};
use zeroize::Zeroizing;

use crate::address::{JoinAddress, TransportChoice};
use crate::controls::Controls;
use crate::engine::EngineHandle;
use crate::people::{People, VolumeChange};
use crate::roster::Roster;
use crate::status::{Console, LossHint, RateMeter, status_line};
use crate::store::KnownHosts;
use crate::transport::{Kind, Transport};
use crate::view::{self, Panel, screen};
use crate::volumes::Volumes;

#[derive(Debug, Clone)]
pub struct JoinConfig {
    pub address: JoinAddress,
    pub keypair: Keypair,
    pub known_hosts: PathBuf,
    pub name: String,
    pub params: AudioParams,
    pub session: SessionConfig,
    /// How long UDP may stay unanswered before falling back to WebSocket.
    pub udp_wait: Duration,
    /// Time allowed to open a WebSocket and complete the handshake over it.
    pub ws_wait: Duration,
    /// End the call cleanly this long after it starts.
    pub duration: Option<Duration>,
    pub status_interval: Duration,
    /// Room password, proven with CPace (never sent).
    pub password: Option<Zeroizing<String>>,
    pub sends: bool,
    pub receives: bool,
    /// Ask the server for its echo service instead of the room.
    pub echo_test: bool,
    /// Reconnect after the call started, if the connection breaks.
    pub reconnect: bool,
    /// Ask a room for everyone's level (for the live view).
    pub levels: bool,
    /// How loud you hear each person, remembered per identity.
    pub volumes: Volumes,
}

impl JoinConfig {
    pub fn new(address: JoinAddress, keypair: Keypair, known_hosts: PathBuf) -> Self {
        Self {
            address,
            keypair,
            known_hosts,
            name: default_name(),
            params: AudioParams::default(),
            session: SessionConfig::default(),
            udp_wait: Duration::from_secs(3),
            ws_wait: Duration::from_secs(2),
            duration: None,
            status_interval: Duration::from_secs(5),
            password: None,
            sends: true,
            receives: true,
            echo_test: false,
            reconnect: true,
            levels: false,
            volumes: Volumes::default(),
        }
    }
}

/// The name others see when `--name` is not given: the login name, else this
/// machine's name (so that people without `$USER`, in a service or a container, are
/// not all called the same), else "viz".
pub fn default_name() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
        .or_else(machine_name)
        .unwrap_or_else(|| "viz".into())
}

/// This machine's host name, if it has one (`/etc/hostname`, or Windows'
/// `COMPUTERNAME`).
pub fn machine_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The greeting each side sends first: who it is and what audio it sends.
pub fn hello_message(name: &str, params: &AudioParams) -> ControlMessage {
    ControlMessage::Hello(hello(name, params))
}

/// A Hello that sends and receives audio; callers adjust the role flags.
pub fn hello(name: &str, params: &AudioParams) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        name: name.to_owned(),
        frame_ms: params.frame.millis() as u8,
        bitrate: params.bitrate,
        fec: params.fec,
        dtx: params.dtx,
        sends_audio: true,
        receives_audio: true,
        echo_test: false,
        room: false,
        levels: false,
    }
}

/// What the person at the keyboard asks for during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCommand {
    ToggleMute,
    /// Hear nothing (and close the microphone), or hear again.
    ToggleDeafen,
    /// Select the person above or below in the live view.
    SelectPrevious,
    SelectNext,
    /// The selected person louder or quieter, for you only.
    VolumeUp,
    VolumeDown,
    /// Silence the selected person for you, or bring them back.
    ToggleSilence,
    /// The push-to-talk key went down (true) or its tail after release ended (false).
    PushToTalk(bool),
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// We left (Ctrl-C, `q`).
    Left,
    /// `--duration` was reached.
    DurationReached,
    PeerLeft(ByeReason),
}

#[derive(Debug, Clone)]
pub struct JoinSummary {
    pub transport: Kind,
    pub peer_name: String,
    pub sas: Sas,
    pub call_time: Duration,
    pub stats: viz_proto::ConnectionStats,
    pub ended: EndReason,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    #[error("cannot resolve '{host}': {reason}")]
    Resolve { host: String, reason: String },
    #[error("no Viz host answered at {target}: {tried}")]
    NoAnswer { target: String, tried: String },
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("the host is busy: it is already in a call with someone else")]
    Busy,
    #[error("this room needs a password: give it with --password-file FILE or VIZ_PASSWORD")]
    PasswordRequired,
    #[error("wrong password: the room refused it (or someone in between does not know it)")]
    WrongPassword,
    #[error(
        "the room refuses this address for now: too many failed password or admin-token attempts; try again in a minute"
    )]
    TooManyAttempts,
    #[error("the host {0} before the call started")]
    Refused(ByeReason),
    #[error("connection lost: nothing heard from the host for {0} s")]
    Lost(u64),
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("you left before the host answered")]
    LeftBeforeAnswer,
    #[error("stopped while reconnecting (the connection was lost: {0})")]
    GaveUp(String),
    #[error("the {0} connection to the host closed")]
    TransportClosed(Kind),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot save the host's key in {path}: {reason}")]
    KnownHosts { path: PathBuf, reason: String },
}

async fn resolve(addr: &JoinAddress) -> Result<SocketAddr, JoinError> {
    let target = addr.socket_target();
    let lookup = tokio::time::timeout(Duration::from_secs(3), tokio::net::lookup_host(target.clone())).await;
    let err = |reason: String| JoinError::Resolve { host: addr.host.clone(), reason };
    match lookup {
        Err(_) => Err(err("DNS lookup timed out".into())),
        Ok(Err(e)) => Err(err(e.to_string())),
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| err("no addresses".into())),
    }
}

/// Runs the handshake on an open transport until `deadline`. `Ok(None)`: no answer.
async fn handshake(
    transport: &mut Transport,
    cfg: &JoinConfig,
    policy: HostKeyPolicy,
    deadline: Instant,
) -> Result<Option<Established>, JoinError> {
    let mut initiator =
        Initiator::new(&cfg.keypair, policy, rand::random::<u32>().max(1), Instant::now(), cfg.session)?;
    loop {
        let now = Instant::now();
        if let Some(d) = initiator.poll_transmit(now) {
            let d = d.to_vec();
            transport.send(&d).await?;
        }
        if now >= deadline {
            return Ok(None);
        }
        // An ICMP "port unreachable" means nobody listens on UDP: no point waiting.
        if transport.kind == Kind::Udp && transport.refused() {
            return Ok(None);
        }
        let wake = initiator.poll_timeout().min(deadline).min(now + Duration::from_millis(100));
        tokio::select! {
            got = transport.rx.recv() => match got {
                Some((at, data)) => {
                    if let Some(est) = initiator.handle_datagram(at, &data)? {
                        return Ok(Some(est));
                    }
                }
                None => return Ok(None),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Finds the host over the right transport and completes the handshake.
async fn connect(
    cfg: &JoinConfig,
    policy: HostKeyPolicy,
    console: &Console,
) -> Result<(Transport, Established), JoinError> {
    let addr = &cfg.address;
    let mut tried = Vec::new();
    if matches!(addr.transport, TransportChoice::Auto | TransportChoice::Udp) {
        let sock = resolve(addr).await?;
        console.line(format!("Connecting to {addr} over UDP ({sock})..."));
        let mut t = Transport::udp(sock).await?;
        if let Some(est) = handshake(&mut t, cfg, policy.clone(), Instant::now() + cfg.udp_wait).await? {
            return Ok((t, est));
        }
        tried.push(if t.refused() {
            format!("UDP {sock}: nothing listening (port unreachable)")
        } else {
            format!("UDP {sock}: no answer within {} s", cfg.udp_wait.as_secs_f32())
        });
        if addr.transport == TransportChoice::Udp {
            return Err(JoinError::NoAnswer { target: addr.socket_target(), tried: tried.join("; ") });
        }
        console.line(format!("{}; trying WebSocket {}", tried[0], addr.websocket_url()));
    }
    let url = addr.websocket_url();
    if tried.is_empty() {
        console.line(format!("Connecting to {url} over WebSocket..."));
    }
    let deadline = Instant::now() + cfg.ws_wait.max(Duration::from_secs(1)) * if tried.is_empty() { 2 } else { 1 };
    let opened = tokio::time::timeout_at(deadline.into(), Transport::websocket(&url)).await;
    let mut t = match opened {
        Err(_) => {
            tried.push(format!("WebSocket {url}: timed out"));
            return Err(JoinError::NoAnswer { target: addr.socket_target(), tried: tried.join("; ") });
        }
        Ok(Err(e)) => {
            tried.push(format!("WebSocket {url}: {e}"));
            return Err(JoinError::NoAnswer { target: addr.socket_target(), tried: tried.join("; ") });
        }
        Ok(Ok(t)) => t,
    };
    match handshake(&mut t, cfg, policy, deadline.max(Instant::now() + Duration::from_secs(1))).await? {
        Some(est) => Ok((t, est)),
        None => {
            tried.push(format!("WebSocket {url}: connected, but no Viz handshake answer"));
            Err(JoinError::NoAnswer { target: addr.socket_target(), tried: tried.join("; ") })
        }
    }
}

async fn send_all(conn: &mut Connection, transport: &mut Transport, buf: &mut [u8]) -> std::io::Result<()> {
    let now = Instant::now();
    while let Some(n) = conn.poll_transmit(now, buf) {
        transport.send(&buf[..n]).await?;
    }
    Ok(())
}

/// What one connection ended with.
enum Outcome {
    /// The call is over for good.
    Ended(Box<JoinSummary>),
    /// The connection broke after the call had started: worth reconnecting.
    Lost(String),
}

/// What survives a reconnect.
struct CallState {
    engine_started: bool,
    controls: Controls,
    call_time: Duration,
    roster: Roster,
    /// Who is selected in the live view and how loud you hear each person.
    people: People,
    /// The latest status line, for the live view.
    connection_line: String,
    notices: crate::status::Notices,
    /// The last connection got as far as the call (so a new loss starts a new count).
    admitted: bool,
}

/// In a room, the server reports every second; this long without a word means the
/// connection is gone (a restarted server silently drops the old session's packets).
pub const STALE_AFTER: Duration = Duration::from_secs(4);

/// Delay before reconnect attempt `n` (from 0): 250 ms doubling, at most 2 s.
pub fn reconnect_backoff(n: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << n.min(3))).min(Duration::from_secs(2))
}

/// Joins a call or room. The engine must already be spawned (so input errors came
/// first); `outgoing` is the engine's packet stream. Returns when the call ends. Once
/// the call has started, a broken connection (server restart, network drop) is retried
/// with backoff up to 2 s, keeping the identity, until it comes back or the user quits.
pub async fn join(
    cfg: JoinConfig,
    engine: &EngineHandle,
    mut outgoing: mpsc::Receiver<OwnedMedia>,
    mut commands: mpsc::Receiver<UserCommand>,
    console: Console,
) -> Result<JoinSummary, JoinError> {
    let mut state = CallState {
        engine_started: false,
        controls: engine.initial_controls(),
        call_time: Duration::ZERO,
        roster: Roster::default(),
        people: People::new(cfg.volumes.clone()),
        connection_line: "connecting…".into(),
        notices: Default::default(),
        admitted: false,
    };
    let started = Instant::now();
    let mut attempt = 0u32;
    let mut reconnecting = false;
    // Why the call was first lost, for the message when the user stops reconnecting.
    let mut lost_because = String::new();
    loop {
        state.admitted = false;
        let result = connect_and_run(&cfg, engine, &mut outgoing, &mut commands, &console, &mut state).await;
        let reason = match result {
            Ok(Outcome::Ended(mut summary)) => {
                summary.call_time = state.call_time;
                return Ok(*summary);
            }
            Ok(Outcome::Lost(reason)) if cfg.reconnect => reason,
            Ok(Outcome::Lost(reason)) => return Err(JoinError::ConnectionLost(reason)),
            Err(e) if state.engine_started && cfg.reconnect && e.is_transient() => e.to_string(),
            Err(JoinError::LeftBeforeAnswer) if reconnecting => return Err(JoinError::GaveUp(lost_because)),
            Err(e) => return Err(e),
        };
        // A connection that got back into the call and was lost again starts afresh.
        if !reconnecting || state.admitted {
            attempt = 0;
            console.line(format!("Connection lost: {reason}. Reconnecting..."));
            lost_because = reason.clone();
        }
        reconnecting = true;
        let wait = reconnect_backoff(attempt);
        attempt += 1;
        if attempt > 1 {
            console.line(format!("Still reconnecting (attempt {attempt}, next in {:.2} s)...", wait.as_secs_f32()));
        }
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => break,
                Some(_) = outgoing.recv() => {} // nothing to send it to while disconnected
                Some(cmd) = commands.recv() => if cmd == UserCommand::Leave {
                    return Err(JoinError::GaveUp(reason));
                }
            }
        }
        if let Some(d) = cfg.duration
            && started.elapsed() >= d
        {
            return Err(JoinError::GaveUp(reason));
        }
    }
}

impl JoinError {
    /// Failures a reconnect may cure (as opposed to refusals and wrong keys).
    fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::NoAnswer { .. }
                | Self::Lost(_)
                | Self::ConnectionLost(_)
                | Self::TransportClosed(_)
                | Self::Io(_)
                | Self::Resolve { .. }
                // A room in its last seconds refuses newcomers; one that restarts
                // comes back. Found running `viz serve --duration` with `viz join` in
                // tmux: the joiner, reconnecting, stopped with "the host shut down
                // before the call started" and exit code 1.
                | Self::Refused(ByeReason::ShuttingDown)
        )
    }
}

/// A completed handshake with the host.
pub struct Connected {
    pub transport: Transport,
    pub conn: viz_proto::Connection,
    /// What to tell the user about the connection and the host's key, once the host
    /// has let us in (a busy or refusing host is reported without a "Connected" first).
    pub introduction: Vec<String>,
}

/// Finds the host, checks its key (pinned, known or first use, remembering it) and
/// completes the handshake.
pub async fn establish(cfg: &JoinConfig, console: &Console) -> Result<Connected, JoinError> {
    let mut known = KnownHosts::load(&cfg.known_hosts)
        .map_err(|e| JoinError::KnownHosts { path: cfg.known_hosts.clone(), reason: e.to_string() })?;
    let host_key_name = cfg.address.known_hosts_key();
    let policy = match (&cfg.address.fingerprint, known.lookup(&host_key_name)) {
        (Some(fp), _) => HostKeyPolicy::Pinned(fp.clone()),
        (None, Some(key)) => HostKeyPolicy::Known(key),
        (None, None) => HostKeyPolicy::FirstUse,
    };
    let (transport, est) = connect(cfg, policy.clone(), console).await?;
    let conn = est.connection;
    let fp = est.host_key.fingerprint();
    let mut introduction = vec![format!("Connected over {} to {}", transport.kind, transport.peer)];
    introduction.push(match policy {
        HostKeyPolicy::FirstUse => format!(
            "Host fingerprint {fp} (first connection: remembered in {}; check it with the host)",
            known.path().display()
        ),
        HostKeyPolicy::Pinned(_) => format!("Host fingerprint {fp} matches the address"),
        HostKeyPolicy::Known(_) => format!("Host fingerprint {fp} (known host)"),
    });
    if !matches!(policy, HostKeyPolicy::Known(_)) {
        known
            .remember(&host_key_name, est.host_key)
            .map_err(|e| JoinError::KnownHosts { path: cfg.known_hosts.clone(), reason: e.to_string() })?;
    }
    introduction
        .push(format!("Security code: {}  (the host shows the same code unless someone is in between)", conn.sas()));
    Ok(Connected { transport, conn, introduction })
}

/// Sends everything the session has queued.
pub async fn flush(conn: &mut viz_proto::Connection, transport: &mut Transport, buf: &mut [u8]) -> std::io::Result<()> {
    send_all(conn, transport, buf).await
}

async fn connect_and_run(
    cfg: &JoinConfig,
    engine: &EngineHandle,
    outgoing: &mut mpsc::Receiver<OwnedMedia>,
    commands: &mut mpsc::Receiver<UserCommand>,
    console: &Console,
    state: &mut CallState,
) -> Result<Outcome, JoinError> {
    let reconnecting = state.engine_started;
    // Leaving while the host is still being looked for ends it at once. A reconnect
    // attempt's progress ("Connecting…", the WebSocket fallback) is not shown: the
    // reconnect loop says one line per attempt.
    let progress = Console { quiet: console.quiet || reconnecting, ..*console };
    let Connected { mut transport, mut conn, introduction } = tokio::select! {
        connected = establish(cfg, &progress) => connected?,
        () = wait_for_leave(commands, engine, state) => return Err(JoinError::LeftBeforeAnswer),
    };

    // With a password, the proof goes first; the Hello follows in order, and the
    // server holds it until the proof checks out.
    let mut password = None;
    if let Some(pw) = &cfg.password {
        let (exchange, start) = JoinerPassword::start(pw, conn.handshake_hash())
            .map_err(|e| JoinError::Handshake(HandshakeError::Noise(e.to_string())))?;
        conn.send_control(ControlMessage::PasswordStart(start));
        password = Some(exchange);
    }
    conn.send_control(hello_message_for(cfg));
    if state.controls.shown_muted() {
        conn.send_control(state.controls.mute_message());
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut plain = vec![0u8; MAX_DATAGRAM];
    send_all(&mut conn, &mut transport, &mut buf).await?;

    let connected_at = Instant::now();
    let greet_deadline = connected_at + Duration::from_secs(5);
    let mut call_started: Option<Instant> = None;
    let mut peer_name = String::from("host");
    let mut in_room = false;
    let mut leaving: Option<EndReason> = None;
    let mut ended: Option<EndReason> = None;
    let mut rates = RateMeter::new(transport.header_overhead);
    let live = screen::is_on();
    let status_interval = view::status_interval(cfg.status_interval);
    let mut next_status = Instant::now() + status_interval;
    let mut next_draw = Instant::now();
    let mut next_hint = Instant::now() + Duration::from_secs(1);
    let mut loss_hint = LossHint::default();
    let mut roster_settle_at: Option<Instant> = None;
    let mut last_heard = Instant::now();
    state.roster.clear();
    rates.rates(Instant::now(), &conn.stats());

    let finish = |conn: &viz_proto::Connection, transport: &Transport, peer_name: String, reason| JoinSummary {
        transport: transport.kind,
        peer_name,
        sas: conn.sas(),
        call_time: Duration::ZERO,
        stats: conn.stats(),
        ended: reason,
    };

    loop {
        let now = Instant::now();
        if call_started.is_none() && now >= greet_deadline && leaving.is_none() {
            return Err(JoinError::NoAnswer {
                target: cfg.address.socket_target(),
                tried:
                    "the handshake completed but the host never greeted (not a Viz host, or an incompatible version)"
                        .into(),
            });
        }
        let mut wake = conn.poll_timeout().unwrap_or(now + Duration::from_secs(1)).min(next_status).min(next_hint);
        if live {
            wake = wake.min(next_draw);
        }
        if let Some(d) = cfg.duration {
            wake = wake.min(connected_at + d.saturating_sub(state.call_time));
        }
        if let Some(t) = roster_settle_at {
            wake = wake.min(t);
        }
        let may_reconnect = in_room && cfg.reconnect && call_started.is_some() && leaving.is_none();
        if may_reconnect {
            wake = wake.min(last_heard + STALE_AFTER);
        }
        tokio::select! {
            got = transport.rx.recv() => match got {
                Some((at, data)) => {
                    let received = conn.handle_datagram(at, &data, &mut plain);
                    if received.is_ok() {
                        last_heard = at;
                    }
                    if let Ok(Received::Media(m)) = received
                        && call_started.is_some()
                        && cfg.receives
                    {
                        engine.deliver(at, OwnedMedia::from_frame(&m));
                    }
                }
                None if call_started.is_some() => return Ok(Outcome::Lost(format!("the {} connection closed", transport.kind))),
                None => return Err(JoinError::TransportClosed(transport.kind)),
            },
            Some(media) = outgoing.recv() => {
                if conn.is_open() && call_started.is_some() && cfg.sends && let Some(frame) = media.as_frame() {
                    match conn.send_media(Instant::now(), &frame, &mut buf) {
                        Ok(n) => transport.send(&buf[..n]).await?,
                        Err(e) => tracing::debug!("media not sent: {e}"),
                    }
                }
            },
            Some(cmd) = commands.recv() => match cmd {
                UserCommand::ToggleMute | UserCommand::ToggleDeafen | UserCommand::PushToTalk(_) => {
                    let was = state.controls.shown();
                    let line = state.controls.apply(cmd);
                    engine.set_controls(state.controls);
                    if state.controls.shown() != was {
                        conn.send_control(state.controls.mute_message());
                    }
                    if let Some(line) = line {
                        console.line(line);
                    }
                }
                UserCommand::SelectPrevious
                | UserCommand::SelectNext
                | UserCommand::VolumeUp
                | UserCommand::VolumeDown
                | UserCommand::ToggleSilence => {
                    if let Some((change, error)) = state.people.apply(cmd, &state.roster) {
                        apply_volume(&mut conn, engine, in_room, &change);
                        console.line(change.line());
                        if let Some(e) = error {
                            console.line(format!("Note: the volume is not remembered: {e}"));
                        }
                    }
                }
                UserCommand::Leave => {
                    if leaving.is_none() {
                        leaving = Some(EndReason::Left);
                        conn.close(Instant::now(), ByeReason::Leaving);
                    }
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        conn.handle_timeout(now);
        if may_reconnect && now >= last_heard + STALE_AFTER {
            if let Some(start) = call_started {
                state.call_time += now - start;
            }
            return Ok(Outcome::Lost(format!("nothing heard from the host for {} s", STALE_AFTER.as_secs())));
        }
        if roster_settle_at.is_some_and(|t| now >= t) {
            roster_settle_at = None;
            if let Some(line) = state.roster.settle() {
                console.line(line);
            }
        }
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Control(ControlMessage::PasswordReply { reply, proof }) => {
                    let Some(exchange) = password.take() else { continue };
                    match exchange.finish(&reply, &proof) {
                        Ok(mine) => conn.send_control(ControlMessage::PasswordProof(mine)),
                        Err(_) => {
                            conn.close(now, ByeReason::WrongPassword);
                            send_all(&mut conn, &mut transport, &mut buf).await.ok();
                            return Err(JoinError::WrongPassword);
                        }
                    }
                }
                Event::Control(ControlMessage::Hello(h)) => {
                    peer_name = if h.name.is_empty() { "host".into() } else { h.name };
                    in_room = h.room;
                    if !in_room && !cfg.echo_test {
                        // A call of two: the host is the one person in the view.
                        let host = view::other_in_two(&peer_name, &conn.remote_static());
                        if let Some(change) = state.people.remembered(&host) {
                            apply_volume(&mut conn, engine, false, &change);
                        }
                        state.roster.apply(&ControlMessage::Roster(vec![host]));
                    }
                    if password.is_some() && in_room {
                        console.line("Note: this room has no password; yours was not needed");
                        password = None;
                    }
                    if call_started.is_none() {
                        if !reconnecting {
                            introduction.iter().for_each(|line| console.line(line));
                        }
                        call_started = Some(now);
                        state.admitted = true;
                        if !state.engine_started {
                            state.engine_started = true;
                            engine.start();
                        }
                        let keys = console.keys_hint("leave");
                        let what = match (in_room, cfg.echo_test, reconnecting) {
                            (_, true, _) => format!("Echo test on {peer_name}: you hear yourself back. {keys}"),
                            (true, _, false) => format!("Joined room '{peer_name}'. {keys}"),
                            (true, _, true) => format!("Reconnected to room '{peer_name}'."),
                            (false, _, false) => format!("In a call with {peer_name}. {keys}"),
                            (false, _, true) => format!("Reconnected to {peer_name}."),
                        };
                        console.line(what);
                        if in_room && !cfg.echo_test {
                            // The roster follows the greeting; introduce the room once it is in.
                            roster_settle_at = Some(now + Duration::from_millis(300));
                        }
                    }
                }
                Event::Control(
                    msg @ (ControlMessage::Roster(_)
                    | ControlMessage::Left { .. }
                    | ControlMessage::Talking(_)
                    | ControlMessage::Levels(_)),
                ) => {
                    // Somebody new (or everyone, after a reconnect): ask for the volume
                    // remembered for them.
                    if let ControlMessage::Roster(entries) = &msg {
                        for e in entries.iter().filter(|e| state.roster.get(e.id).is_none()) {
                            if let Some(change) = state.people.remembered(e) {
                                apply_volume(&mut conn, engine, true, &change);
                            }
                        }
                    }
                    if let Some(line) = state.roster.apply(&msg) {
                        console.line(line);
                    }
                }
                Event::Control(ControlMessage::Mute { muted, deafened }) if !in_room => {
                    console.line(format!("{peer_name} {}", crate::roster::mute_words(muted, deafened)));
                    // The live view's one line for the host shows it too.
                    state.roster.other_in_two_muted(muted, deafened);
                }
                Event::Control(_) => {}
                Event::PeerLeft(reason) => {
                    if call_started.is_none() {
                        send_all(&mut conn, &mut transport, &mut buf).await.ok();
                        return Err(match reason {
                            ByeReason::Busy => JoinError::Busy,
                            ByeReason::PasswordRequired => JoinError::PasswordRequired,
                            ByeReason::WrongPassword => JoinError::WrongPassword,
                            ByeReason::TooManyAttempts => JoinError::TooManyAttempts,
                            r => JoinError::Refused(r),
                        });
                    }
                    send_all(&mut conn, &mut transport, &mut buf).await.ok();
                    if let Some(start) = call_started {
                        state.call_time += now - start;
                    }
                    if reason == ByeReason::ShuttingDown && in_room && cfg.reconnect {
                        return Ok(Outcome::Lost(format!("{peer_name} shut down")));
                    }
                    console.line(match reason {
                        ByeReason::Kicked => "You were removed from the room by an admin".to_owned(),
                        ByeReason::Replaced => {
                            "This identity joined again from elsewhere; this connection is over".to_owned()
                        }
                        r => format!("{peer_name} {r}"),
                    });
                    ended = Some(EndReason::PeerLeft(reason));
                }
                Event::TimedOut => {
                    if let Some(start) = call_started {
                        state.call_time += now - start;
                        return Ok(Outcome::Lost(format!(
                            "nothing heard from the host for {} s",
                            cfg.session.idle_timeout.as_secs()
                        )));
                    }
                    return Err(JoinError::Lost(cfg.session.idle_timeout.as_secs()));
                }
                Event::Closed => ended = leaving,
            }
        }
        send_all(&mut conn, &mut transport, &mut buf).await?;
        if let Some(reason) = ended {
            if let (Some(start), false) = (call_started, matches!(reason, EndReason::PeerLeft(_))) {
                state.call_time += now - start;
            }
            transport.close().await;
            return Ok(Outcome::Ended(Box::new(finish(&conn, &transport, peer_name, reason))));
        }
        if let (Some(start), Some(d)) = (call_started, cfg.duration)
            && state.call_time + (now - start) >= d
            && leaving.is_none()
        {
            leaving = Some(EndReason::DurationReached);
            conn.close(now, ByeReason::Leaving);
            send_all(&mut conn, &mut transport, &mut buf).await?;
        }
        if now >= next_hint {
            next_hint = now + Duration::from_secs(1);
            engine.set_loss_hint(loss_hint.update(conn.stats().remote_loss));
            state.notices.print_new(&engine.status(), console);
        }
        if now >= next_status {
            next_status = now + status_interval;
            let stats = conn.stats();
            let r = rates.rates(now, &stats);
            if call_started.is_some() {
                let who = if in_room && !cfg.echo_test {
                    format!("Room '{peer_name}': {}\n  ", state.roster.summary())
                } else {
                    String::new()
                };
                let line = status_line(
                    if in_room { "server" } else { &peer_name },
                    &format!("{} {}", transport.kind, transport.peer),
                    &stats,
                    &engine.status(),
                    r,
                );
                if live {
                    state.connection_line = line;
                } else {
                    console.line(format!("{who}{line}"));
                }
            }
        }
        if live && now >= next_draw {
            next_draw = now + view::REDRAW;
            screen::draw(&panel(cfg, state, &peer_name, in_room, engine));
        }
    }
}

/// Applies a volume: in a room, the room makes your mix; in a call of two, the host's
/// voice is all you hear, so it is your playback's gain.
fn apply_volume(conn: &mut viz_proto::Connection, engine: &EngineHandle, in_room: bool, change: &VolumeChange) {
    if in_room {
        conn.send_control(ControlMessage::Volume { target: change.id, percent: change.percent });
    } else {
        engine.set_playback_gain(f32::from(change.percent) / 100.0);
    }
}

/// What the live view shows now.
fn panel(cfg: &JoinConfig, state: &CallState, peer_name: &str, in_room: bool, engine: &EngineHandle) -> Panel {
    let status = engine.status();
    let people = if in_room {
        view::rows(&state.roster, &state.people)
    } else {
        view::rows_in_two(&state.roster, &state.people, &status)
    };
    Panel {
        title: if in_room { format!("Room '{peer_name}'") } else { format!("Call with {peer_name}") },
        people,
        you: cfg.name.clone(),
        your_level_dbfs: status.input_level_dbfs,
        controls: state.controls,
        sends: cfg.sends,
        connection: state.connection_line.clone(),
        keys: view::keys_line("leave"),
    }
}

/// Returns when the user asks to leave; a mute toggle meanwhile takes effect.
async fn wait_for_leave(commands: &mut mpsc::Receiver<UserCommand>, engine: &EngineHandle, state: &mut CallState) {
    while let Some(cmd) = commands.recv().await {
        match cmd {
            UserCommand::Leave => return,
            UserCommand::ToggleMute | UserCommand::ToggleDeafen | UserCommand::PushToTalk(_) => {
                state.controls.apply(cmd);
                engine.set_controls(state.controls);
            }
            _ => {}
        }
    }
    std::future::pending().await
}

/// The Hello this joiner sends, with its role and echo-test wish.
fn hello_message_for(cfg: &JoinConfig) -> ControlMessage {
    let mut h = hello(&cfg.name, &cfg.params);
    h.sends_audio = cfg.sends;
    h.receives_audio = cfg.receives;
    h.echo_test = cfg.echo_test;
    h.levels = cfg.levels;
    ControlMessage::Hello(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_shutting_down_is_worth_reconnecting_to_but_a_refusal_is_not() {
        assert!(JoinError::Refused(ByeReason::ShuttingDown).is_transient());
        assert!(!JoinError::Refused(ByeReason::Kicked).is_transient());
        assert!(!JoinError::WrongPassword.is_transient());
    }

    #[test]
    fn backoff_doubles_to_two_seconds() {
        let waits: Vec<u64> = (0..6).map(|n| reconnect_backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000]);
    }
}
