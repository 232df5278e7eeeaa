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
use viz_proto::{
    ByeReason, Connection, ControlMessage, Established, Event, HandshakeError, Hello, HostKeyPolicy, Initiator,
    Keypair, MAX_DATAGRAM, OwnedMedia, PROTOCOL_VERSION, Received, Sas, SessionConfig,
};

use crate::address::{JoinAddress, TransportChoice};
use crate::engine::EngineHandle;
use crate::status::{Console, LossHint, RateMeter, status_line};
use crate::store::KnownHosts;
use crate::transport::{Kind, Transport};

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
        }
    }
}

/// The user's login name, or "viz".
pub fn default_name() -> String {
    std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "viz".into())
}

/// The greeting each side sends first: who it is and what audio it sends.
pub fn hello_message(name: &str, params: &AudioParams) -> ControlMessage {
    ControlMessage::Hello(Hello {
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
    })
}

/// What the person at the keyboard asks for during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCommand {
    ToggleMute,
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
    #[error("the host {0} before the call started")]
    Refused(ByeReason),
    #[error("connection lost: nothing heard from the host for {0} s")]
    Lost(u64),
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

/// Joins a call. The engine must already be spawned (so input errors came first);
/// `outgoing` is the engine's packet stream. Returns when the call ends.
pub async fn join(
    cfg: JoinConfig,
    engine: &EngineHandle,
    mut outgoing: mpsc::Receiver<OwnedMedia>,
    mut commands: mpsc::Receiver<UserCommand>,
    console: Console,
) -> Result<JoinSummary, JoinError> {
    let mut known = KnownHosts::load(&cfg.known_hosts)
        .map_err(|e| JoinError::KnownHosts { path: cfg.known_hosts.clone(), reason: e.to_string() })?;
    let host_key_name = cfg.address.known_hosts_key();
    let policy = match (&cfg.address.fingerprint, known.lookup(&host_key_name)) {
        (Some(fp), _) => HostKeyPolicy::Pinned(fp.clone()),
        (None, Some(key)) => HostKeyPolicy::Known(key),
        (None, None) => HostKeyPolicy::FirstUse,
    };
    let (mut transport, est) = connect(&cfg, policy.clone(), &console).await?;
    let mut conn = est.connection;
    let fp = est.host_key.fingerprint();
    console.line(format!("Connected over {} to {}", transport.kind, transport.peer));
    match policy {
        HostKeyPolicy::FirstUse => console.line(format!(
            "Host fingerprint {fp} (first connection: remembered in {}; check it with the host)",
            known.path().display()
        )),
        HostKeyPolicy::Pinned(_) => console.line(format!("Host fingerprint {fp} matches the address")),
        HostKeyPolicy::Known(_) => console.line(format!("Host fingerprint {fp} (known host)")),
    }
    if !matches!(policy, HostKeyPolicy::Known(_)) {
        known
            .remember(&host_key_name, est.host_key)
            .map_err(|e| JoinError::KnownHosts { path: cfg.known_hosts.clone(), reason: e.to_string() })?;
    }
    console.line(format!("Security code: {}  (the host shows the same code unless someone is in between)", conn.sas()));

    conn.send_control(hello_message(&cfg.name, &cfg.params));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut plain = vec![0u8; MAX_DATAGRAM];
    send_all(&mut conn, &mut transport, &mut buf).await?;

    let connected_at = Instant::now();
    let greet_deadline = connected_at + Duration::from_secs(5);
    let mut call_started: Option<Instant> = None;
    let mut peer_name = String::from("host");
    let mut leaving: Option<EndReason> = None;
    let mut ended: Option<EndReason> = None;
    let mut muted = false;
    let mut rates = RateMeter::new(transport.header_overhead);
    let mut next_status = Instant::now() + cfg.status_interval;
    let mut next_hint = Instant::now() + Duration::from_secs(1);
    let mut loss_hint = LossHint::default();
    rates.rates(Instant::now(), &conn.stats());

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
        if let (Some(start), Some(d)) = (call_started, cfg.duration) {
            wake = wake.min(start + d);
        }
        tokio::select! {
            got = transport.rx.recv() => match got {
                Some((at, data)) => {
                    if let Ok(Received::Media(m)) = conn.handle_datagram(at, &data, &mut plain) {
                        engine.deliver(at, OwnedMedia::from_frame(&m));
                    }
                }
                None => return Err(JoinError::TransportClosed(transport.kind)),
            },
            Some(media) = outgoing.recv() => {
                if conn.is_open() && let Some(frame) = media.as_frame() {
                    match conn.send_media(Instant::now(), &frame, &mut buf) {
                        Ok(n) => transport.send(&buf[..n]).await?,
                        Err(e) => tracing::debug!("media not sent: {e}"),
                    }
                }
            },
            Some(cmd) = commands.recv() => match cmd {
                UserCommand::ToggleMute => {
                    muted = !muted;
                    engine.set_muted(muted);
                    conn.send_control(ControlMessage::Mute { muted });
                    console.line(if muted { "Microphone muted (m to unmute)" } else { "Microphone on" });
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
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Control(ControlMessage::Hello(h)) => {
                    peer_name = if h.name.is_empty() { "host".into() } else { h.name };
                    if call_started.is_none() {
                        call_started = Some(now);
                        engine.start();
                        console.line(format!(
                            "In a call with {peer_name}. Type m + Enter to mute, q + Enter or Ctrl-C to leave."
                        ));
                    }
                }
                Event::Control(ControlMessage::Mute { muted }) => {
                    console.line(format!("{peer_name} {}", if muted { "muted their microphone" } else { "unmuted" }));
                }
                Event::Control(_) => {}
                Event::PeerLeft(reason) => {
                    if call_started.is_none() {
                        send_all(&mut conn, &mut transport, &mut buf).await.ok();
                        return Err(if reason == ByeReason::Busy {
                            JoinError::Busy
                        } else {
                            JoinError::Refused(reason)
                        });
                    }
                    console.line(format!("{peer_name} {reason}"));
                    ended = Some(EndReason::PeerLeft(reason));
                }
                Event::TimedOut => return Err(JoinError::Lost(cfg.session.idle_timeout.as_secs())),
                Event::Closed => ended = leaving,
            }
        }
        send_all(&mut conn, &mut transport, &mut buf).await?;
        if let Some(reason) = ended {
            transport.close().await;
            return Ok(JoinSummary {
                transport: transport.kind,
                peer_name,
                sas: conn.sas(),
                call_time: call_started.map_or(Duration::ZERO, |s| now - s),
                stats: conn.stats(),
                ended: reason,
            });
        }
        if let (Some(start), Some(d)) = (call_started, cfg.duration)
            && now >= start + d
            && leaving.is_none()
        {
            leaving = Some(EndReason::DurationReached);
            conn.close(now, ByeReason::Leaving);
            send_all(&mut conn, &mut transport, &mut buf).await?;
        }
        if now >= next_hint {
            next_hint = now + Duration::from_secs(1);
            engine.set_loss_hint(loss_hint.update(conn.stats().remote_loss));
        }
        if now >= next_status {
            next_status = now + cfg.status_interval;
            let stats = conn.stats();
            let r = rates.rates(now, &stats);
            if call_started.is_some() {
                console.line(status_line(
                    &peer_name,
                    &format!("{} {}", transport.kind, transport.peer),
                    &stats,
                    &engine.status(),
                    r,
                ));
            }
        }
    }
}
