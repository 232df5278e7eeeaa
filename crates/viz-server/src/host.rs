//! `viz host`: a call whose first participant is the host's own audio engine,
//! connected in-process (no socket, no crypto on that hop), and whose second is the
//! friend who joins over UDP or WebSocket.
//!
//! With two people every mix is exactly one source at unity gain, so the room forwards
//! packets unchanged both ways: no second encode, no added codec delay. A third joiner
//! completes the handshake (so the refusal is authenticated) and is told the host is
//! busy. When the friend leaves, the host keeps listening for the next one.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use viz_audio::AudioParams;
use viz_client::engine::EngineHandle;
use viz_client::join::UserCommand;
use viz_client::status::{Console, LossHint, RateMeter, status_line};
use viz_proto::{
    ByeReason, ControlMessage, Endpoint, Event, Hello, Input, Keypair, MAX_DATAGRAM, OwnedMedia, PROTOCOL_VERSION,
    SessionConfig,
};

use crate::listener::{BindError, Listener, Path, WsEvent};

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub bind: SocketAddr,
    pub websocket: bool,
    pub keypair: Keypair,
    pub name: String,
    pub params: AudioParams,
    pub session: SessionConfig,
    /// Ends the host this long after the first call starts.
    pub duration: Option<Duration>,
    pub status_interval: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct HostSummary {
    pub calls: u32,
    pub refused_busy: u32,
    pub call_time: Duration,
    pub datagrams_dropped: u64,
    /// Session counters of the last call, when it ended.
    pub last_call_stats: Option<viz_proto::ConnectionStats>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// The joiner currently in the call.
struct Call {
    id: u32,
    name: Option<String>,
    rates: RateMeter,
    started: Instant,
}

/// Picks the address other machines most likely reach this one at (the source address
/// of the default route; no packet is sent), for the printed join line.
pub fn guess_local_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    s.local_addr().ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}

/// Runs the host until Ctrl-C (a `Leave` command) or `duration`. `ready` receives the
/// bound address once listening.
pub async fn run(
    cfg: HostConfig,
    engine: &EngineHandle,
    mut outgoing: mpsc::Receiver<OwnedMedia>,
    mut commands: mpsc::Receiver<UserCommand>,
    console: Console,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<HostSummary, HostError> {
    let mut listener = Listener::bind(cfg.bind, cfg.websocket).await?;
    let local = listener.local;
    let fingerprint = cfg.keypair.fingerprint();
    let shown_ip = if local.ip().is_unspecified() { guess_local_ip().unwrap_or(local.ip()) } else { local.ip() };
    let shown = SocketAddr::new(shown_ip, local.port());
    console.line(format!(
        "Hosting on port {} ({}). Host fingerprint: {fingerprint}",
        local.port(),
        if listener.websocket_enabled() { "UDP, and WebSocket over TCP" } else { "UDP" }
    ));
    console.line(format!("Friends join with:  viz join viz://{shown}#{fingerprint}"));
    console.line(format!("Through a tunnel:   viz join <tunnel address>#{fingerprint}   (wss://... for HTTP tunnels)"));
    if let Some(r) = ready {
        let _ = r.send(local);
    }

    let mut endpoint: Endpoint<Path> = Endpoint::new(cfg.keypair.clone(), cfg.session, rand::random());
    let mut call: Option<Call> = None;
    let mut summary = HostSummary::default();
    let mut first_start: Option<Instant> = None;
    let mut shutting_down: Option<Instant> = None;
    let mut muted = false;
    let (mut plain, mut reply, mut buf) =
        (vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM], vec![0u8; MAX_DATAGRAM + 1]);
    let mut out = vec![0u8; MAX_DATAGRAM];
    let mut next_status = Instant::now() + cfg.status_interval;
    let mut next_hint = Instant::now() + Duration::from_secs(1);
    let mut loss_hint = LossHint::default();
    let hello = ControlMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        name: cfg.name.clone(),
        frame_ms: cfg.params.frame.millis() as u8,
        bitrate: cfg.params.bitrate,
        fec: cfg.params.fec,
        dtx: cfg.params.dtx,
        sends_audio: true,
        receives_audio: true,
    });

    loop {
        let now = Instant::now();
        let mut wake = endpoint.poll_timeout().unwrap_or(now + Duration::from_secs(1)).min(next_status).min(next_hint);
        if let (Some(s), Some(d)) = (first_start, cfg.duration) {
            wake = wake.min(s + d);
        }
        if let Some(t) = shutting_down {
            wake = wake.min(t + Duration::from_millis(1500));
        }
        let mut incoming: Option<(Path, Instant, Vec<u8>)> = None;
        tokio::select! {
            r = listener.udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => incoming = Some((Path::Udp(from), Instant::now(), buf[..n].to_vec())),
                Err(e) => tracing::debug!("udp receive error: {e}"),
            },
            Some(ev) = listener.ws_events.recv() => {
                listener.track(&ev);
                if let WsEvent::Datagram { id, at, data } = ev {
                    incoming = Some((Path::Ws(id), at, data));
                }
            },
            Some(media) = outgoing.recv() => {
                if let Some(c) = &call
                    && let Some(path) = endpoint.path(c.id)
                    && let Some(session) = endpoint.session_mut(c.id)
                    && session.is_open()
                    && let Some(frame) = media.as_frame()
                {
                    match session.send_media(Instant::now(), &frame, &mut out) {
                        Ok(n) => listener.send(path, &out[..n]).await,
                        Err(e) => tracing::debug!("media not sent: {e}"),
                    }
                }
            },
            Some(cmd) = commands.recv() => match cmd {
                UserCommand::ToggleMute => {
                    muted = !muted;
                    engine.set_muted(muted);
                    if let Some(s) = call.as_ref().and_then(|c| endpoint.session_mut(c.id)) {
                        s.send_control(ControlMessage::Mute { muted });
                    }
                    console.line(if muted { "Microphone muted (m to unmute)" } else { "Microphone on" });
                }
                UserCommand::Leave => {
                    if shutting_down.is_none() {
                        shutting_down = Some(Instant::now());
                        for id in endpoint.session_ids() {
                            if let Some(s) = endpoint.session_mut(id) {
                                s.close(Instant::now(), ByeReason::ShuttingDown);
                            }
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }

        if let Some((path, at, data)) = incoming {
            match endpoint.handle_datagram(at, path, &data, &mut plain, &mut reply) {
                Input::Reply(n) => listener.send(path, &reply[..n]).await,
                Input::Accepted(id) => {
                    let busy = shutting_down.is_some()
                        || call.as_ref().is_some_and(|c| endpoint.session(c.id).is_some_and(|s| s.is_open()));
                    let peer = listener.peer_addr(path).map_or_else(|| path.to_string(), |a| canonical(a).to_string());
                    if let Some(s) = endpoint.session_mut(id) {
                        if busy {
                            s.close(
                                at,
                                if shutting_down.is_some() { ByeReason::ShuttingDown } else { ByeReason::Busy },
                            );
                            summary.refused_busy += 1;
                            console.line(format!("Refused a second caller from {peer}: already in a call"));
                        } else {
                            s.send_control(hello.clone());
                            tracing::info!(%peer, key = %s.remote_static().fingerprint(), "joiner authenticated");
                            let mut rates = RateMeter::new(header_overhead(path, &listener));
                            rates.rates(at, &s.stats());
                            call = Some(Call { id, name: None, rates, started: at });
                        }
                    }
                }
                Input::Media(id, m) => {
                    if call.as_ref().is_some_and(|c| c.id == id) {
                        engine.deliver(at, OwnedMedia::from_frame(&m));
                    }
                }
                Input::Handled(_) => {}
                Input::Dropped(reason) => tracing::debug!(%path, reason = reason.as_str(), "datagram dropped"),
            }
        }

        let now = Instant::now();
        endpoint.handle_timeout(now);
        for id in endpoint.session_ids() {
            let Some(session) = endpoint.session_mut(id) else { continue };
            let in_call = call.as_ref().is_some_and(|c| c.id == id);
            let mut events = Vec::new();
            while let Some(e) = session.poll_event() {
                events.push(e);
            }
            let sas = session.sas();
            let key = session.remote_static().fingerprint();
            for event in events {
                match (event, in_call) {
                    (Event::Control(ControlMessage::Hello(h)), true) => {
                        let c = call.as_mut().expect("in_call");
                        let name = if h.name.is_empty() { "guest".to_owned() } else { h.name };
                        if c.name.is_none() {
                            summary.calls += 1;
                            c.started = now;
                            console.line(format!("{name} joined (their key {key}). Security code: {sas}  (they see the same code unless someone is in between)"));
                            console.line("Type m + Enter to mute, q + Enter or Ctrl-C to stop hosting.");
                            if first_start.is_none() {
                                first_start = Some(now);
                                engine.start();
                            }
                        }
                        c.name = Some(name);
                    }
                    (Event::Control(ControlMessage::Mute { muted }), true) => {
                        let name = call.as_ref().and_then(|c| c.name.clone()).unwrap_or_default();
                        console.line(format!("{name} {}", if muted { "muted their microphone" } else { "unmuted" }));
                    }
                    (Event::PeerLeft(reason), true) => {
                        summary.last_call_stats = endpoint.session(id).map(|s| s.stats());
                        let c = call.take().expect("in_call");
                        summary.call_time += now - c.started;
                        console.line(format!(
                            "{} {reason}. Waiting for someone to join...",
                            c.name.unwrap_or_else(|| "The caller".into())
                        ));
                    }
                    (Event::TimedOut, true) => {
                        summary.last_call_stats = endpoint.session(id).map(|s| s.stats());
                        let c = call.take().expect("in_call");
                        summary.call_time += now - c.started;
                        console.line(format!(
                            "Lost {}: nothing heard for {} s. Waiting for someone to join...",
                            c.name.unwrap_or_else(|| "the caller".into()),
                            cfg.session.idle_timeout.as_secs()
                        ));
                    }
                    _ => {}
                }
            }
            let Some(path) = endpoint.path(id) else { continue };
            let Some(session) = endpoint.session_mut(id) else { continue };
            let mut datagrams = Vec::new();
            while let Some(n) = session.poll_transmit(now, &mut out) {
                datagrams.push(out[..n].to_vec());
            }
            for d in datagrams {
                listener.send(path, &d).await;
            }
            if session.is_closed() {
                summary.datagrams_dropped += session.stats().dropped.total();
                if call.as_ref().is_some_and(|c| c.id == id) {
                    summary.last_call_stats = Some(session.stats());
                    call = None;
                }
                endpoint.remove(id);
            }
        }

        if let Some(t) = shutting_down
            && (endpoint.session_ids().is_empty() || now >= t + Duration::from_millis(1500))
        {
            if let Some(c) = call.take() {
                summary.call_time += now - c.started;
                summary.last_call_stats = endpoint.session(c.id).map(|s| s.stats());
            }
            summary.datagrams_dropped += endpoint.drops().total();
            return Ok(summary);
        }
        if let (Some(s), Some(d)) = (first_start, cfg.duration)
            && now >= s + d
            && shutting_down.is_none()
        {
            shutting_down = Some(now);
            for id in endpoint.session_ids() {
                if let Some(s) = endpoint.session_mut(id) {
                    s.close(now, ByeReason::ShuttingDown);
                }
            }
        }
        if now >= next_hint {
            next_hint = now + Duration::from_secs(1);
            if let Some(s) = call.as_ref().and_then(|c| endpoint.session(c.id)) {
                engine.set_loss_hint(loss_hint.update(s.stats().remote_loss));
            }
        }
        if now >= next_status {
            next_status = now + cfg.status_interval;
            if let Some(c) = &mut call
                && let Some(name) = c.name.clone()
                && let Some(s) = endpoint.session(c.id)
            {
                let stats = s.stats();
                let rates = c.rates.rates(now, &stats);
                let via = endpoint.path(c.id).map_or_else(String::new, |p| match listener.peer_addr(p) {
                    Some(a) if matches!(p, Path::Udp(_)) => format!("UDP {}", canonical(a)),
                    Some(a) => format!("WebSocket {}", canonical(a)),
                    None => p.to_string(),
                });
                console.line(status_line(&name, &via, &stats, &engine.status(), rates));
            }
        }
    }
}

/// `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) shown as `1.2.3.4`.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn header_overhead(path: Path, listener: &Listener) -> usize {
    match path {
        Path::Udp(a) => viz_client::transport::udp_overhead(&canonical(a)),
        Path::Ws(_) => viz_client::transport::ws_overhead(listener.peer_addr(path).as_ref()),
    }
}
