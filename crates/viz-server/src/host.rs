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
use viz_client::controls::Controls;
use viz_client::engine::EngineHandle;
use viz_client::join::{UserCommand, hello_message};
use viz_client::people::People;
use viz_client::roster::Roster;
use viz_client::status::{Console, LossHint, RateMeter, status_line};
use viz_client::view::{self, Panel, screen};
use viz_client::volumes::Volumes;
use viz_proto::{
    ByeReason, ConnectionStats, ControlMessage, Endpoint, Event, Input, Keypair, MAX_DATAGRAM, OwnedMedia,
    SessionConfig,
};

use crate::listener::{BindError, Listener, Path, WsEvent, canonical};

/// How long shutting down waits for goodbyes to be acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

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
    /// How loud the host hears each caller, remembered per identity.
    pub volumes: Volumes,
}

#[derive(Debug, Clone, Default)]
pub struct HostSummary {
    pub calls: u32,
    pub refused_busy: u32,
    pub call_time: Duration,
    pub datagrams_dropped: u64,
    /// Session counters of the last call, when it ended.
    pub last_call_stats: Option<ConnectionStats>,
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
    /// Known once their Hello arrived; until then the call has not started.
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
    let listener = Listener::bind(cfg.bind, cfg.websocket).await?;
    let mut host = Host::new(cfg, engine, listener, console);
    host.announce();
    if let Some(r) = ready {
        let _ = r.send(host.listener.local);
    }
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let wake = host.next_wake(Instant::now());
        tokio::select! {
            r = host.listener.udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => host.on_datagram(Path::Udp(from), Instant::now(), &buf[..n]).await,
                Err(e) => tracing::debug!("udp receive error: {e}"),
            },
            Some(ev) = host.listener.ws_events.recv() => {
                host.listener.track(&ev);
                if let WsEvent::Datagram { id, at, data } = ev {
                    host.on_datagram(Path::Ws(id), at, &data).await;
                }
            },
            Some(media) = outgoing.recv() => host.send_media(&media).await,
            Some(cmd) = commands.recv() => host.on_command(cmd),
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        host.endpoint.handle_timeout(now);
        host.service_sessions(now).await;
        if host.finished(now) {
            return Ok(host.summary());
        }
        host.on_timers(now);
    }
}

struct Host<'a> {
    cfg: HostConfig,
    engine: &'a EngineHandle,
    listener: Listener,
    endpoint: Endpoint<Path>,
    console: Console,
    call: Option<Call>,
    summary: HostSummary,
    /// When the first call started (the engine starts then; `--duration` counts from it).
    first_start: Option<Instant>,
    shutting_down: Option<Instant>,
    controls: Controls,
    loss_hint: LossHint,
    next_status: Instant,
    next_hint: Instant,
    hello: ControlMessage,
    /// The caller, as the live view lists them, and the host's volume for them.
    roster: Roster,
    people: People,
    connection_line: String,
    next_draw: Instant,
    notices: viz_client::status::Notices,
    plain: Vec<u8>,
    reply: Vec<u8>,
    out: Vec<u8>,
}

impl<'a> Host<'a> {
    fn new(cfg: HostConfig, engine: &'a EngineHandle, listener: Listener, console: Console) -> Self {
        let now = Instant::now();
        Self {
            endpoint: Endpoint::new(cfg.keypair.clone(), cfg.session, rand::random()),
            hello: hello_message(&cfg.name, &cfg.params),
            roster: Roster::default(),
            people: People::new(cfg.volumes.clone()),
            connection_line: "waiting for someone to join".into(),
            next_draw: now,
            notices: Default::default(),
            next_status: now + view::status_interval(cfg.status_interval),
            next_hint: now + Duration::from_secs(1),
            cfg,
            engine,
            listener,
            console,
            call: None,
            summary: HostSummary::default(),
            first_start: None,
            shutting_down: None,
            controls: engine.initial_controls(),
            loss_hint: LossHint::default(),
            plain: vec![0u8; MAX_DATAGRAM],
            reply: vec![0u8; MAX_DATAGRAM],
            out: vec![0u8; MAX_DATAGRAM],
        }
    }

    fn announce(&self) {
        let local = self.listener.local;
        let fingerprint = self.cfg.keypair.fingerprint();
        let shown_ip = if local.ip().is_unspecified() { guess_local_ip().unwrap_or(local.ip()) } else { local.ip() };
        let shown = SocketAddr::new(shown_ip, local.port());
        let transports = if self.listener.websocket_enabled() { "UDP, and WebSocket over TCP" } else { "UDP" };
        self.console.line(format!("Hosting on port {} ({transports}). Host fingerprint: {fingerprint}", local.port()));
        self.console.line(format!("Friends join with:  viz join viz://{shown}#{fingerprint}"));
        self.console.line(format!(
            "Through a tunnel:   viz join <tunnel address>#{fingerprint}   (wss://... for HTTP tunnels)"
        ));
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = self
            .endpoint
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(1))
            .min(self.next_status)
            .min(self.next_hint);
        if screen::is_on() {
            wake = wake.min(self.next_draw);
        }
        if let (Some(s), Some(d)) = (self.first_start, self.cfg.duration) {
            wake = wake.min(s + d);
        }
        if let Some(t) = self.shutting_down {
            wake = wake.min(t + SHUTDOWN_GRACE);
        }
        wake
    }

    fn in_call(&self, id: u32) -> bool {
        self.call.as_ref().is_some_and(|c| c.id == id)
    }

    fn peer_text(&self, path: Path) -> String {
        self.listener.describe(path)
    }

    async fn on_datagram(&mut self, path: Path, at: Instant, data: &[u8]) {
        match self.endpoint.handle_datagram(at, path, data, &mut self.plain, &mut self.reply) {
            Input::Reply(n) => self.listener.send(path, &self.reply[..n]).await,
            Input::Accepted(id) => {
                self.listener.authenticated(path);
                self.on_accepted(id, path, at);
            }
            Input::Media(id, m) => {
                if self.call.as_ref().is_some_and(|c| c.id == id) {
                    self.engine.deliver(at, OwnedMedia::from_frame(&m));
                }
            }
            Input::Handled(_) => {}
            Input::Dropped(reason) => tracing::debug!(%path, reason = reason.as_str(), "datagram dropped"),
        }
    }

    /// A joiner finished the handshake: take them into the call, or tell them no.
    fn on_accepted(&mut self, id: u32, path: Path, at: Instant) {
        let busy = self.shutting_down.is_some()
            || self.call.as_ref().is_some_and(|c| self.endpoint.session(c.id).is_some_and(|s| s.is_open()));
        let peer = self.peer_text(path);
        let overhead = match path {
            Path::Udp(a) => viz_client::transport::udp_overhead(&canonical(a)),
            Path::Ws(_) => viz_client::transport::ws_overhead(self.listener.peer_addr(path).as_ref()),
        };
        let Some(session) = self.endpoint.session_mut(id) else { return };
        if busy {
            let reason = if self.shutting_down.is_some() { ByeReason::ShuttingDown } else { ByeReason::Busy };
            session.close(at, reason);
            self.summary.refused_busy += 1;
            self.console.line(format!("Refused a second caller from {peer}: already in a call"));
            return;
        }
        session.send_control(self.hello.clone());
        tracing::info!(%peer, key = %session.remote_static().fingerprint(), "joiner authenticated");
        let mut rates = RateMeter::new(overhead);
        rates.rates(at, &session.stats());
        self.call = Some(Call { id, name: None, rates, started: at });
    }

    async fn send_media(&mut self, media: &OwnedMedia) {
        let Some(id) = self.call.as_ref().map(|c| c.id) else { return };
        let (Some(path), Some(frame)) = (self.endpoint.path(id), media.as_frame()) else { return };
        let Some(session) = self.endpoint.session_mut(id).filter(|s| s.is_open()) else { return };
        match session.send_media(Instant::now(), &frame, &mut self.out) {
            Ok(n) => self.listener.send(path, &self.out[..n]).await,
            Err(e) => tracing::debug!("media not sent: {e}"),
        }
    }

    fn on_command(&mut self, cmd: UserCommand) {
        match cmd {
            UserCommand::ToggleMute | UserCommand::ToggleDeafen | UserCommand::PushToTalk(_) => {
                let was = self.controls.shown();
                let line = self.controls.apply(cmd);
                self.engine.set_controls(self.controls);
                if self.controls.shown() != was
                    && let Some(s) = self.call.as_ref().map(|c| c.id).and_then(|id| self.endpoint.session_mut(id))
                {
                    s.send_control(self.controls.mute_message());
                }
                if let Some(line) = line {
                    self.console.line(line);
                }
            }
            UserCommand::Leave => self.begin_shutdown(Instant::now()),
            UserCommand::SelectPrevious
            | UserCommand::SelectNext
            | UserCommand::VolumeUp
            | UserCommand::VolumeDown
            | UserCommand::ToggleSilence => {
                if let Some((change, error)) = self.people.apply(cmd, &self.roster) {
                    // A call of two: the caller is everything played.
                    self.engine.set_playback_gain(f32::from(change.percent) / 100.0);
                    self.console.line(change.line());
                    if let Some(e) = error {
                        self.console.line(format!("Note: the volume is not remembered: {e}"));
                    }
                }
            }
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutting_down.is_some() {
            return;
        }
        self.shutting_down = Some(now);
        for id in self.endpoint.session_ids() {
            if let Some(s) = self.endpoint.session_mut(id) {
                s.close(now, ByeReason::ShuttingDown);
            }
        }
    }

    /// Handles every session's events, sends what each has to send, and forgets the
    /// sessions that are over.
    async fn service_sessions(&mut self, now: Instant) {
        for id in self.endpoint.session_ids() {
            let mut events = Vec::new();
            if let Some(session) = self.endpoint.session_mut(id) {
                while let Some(e) = session.poll_event() {
                    events.push(e);
                }
            }
            for event in events {
                self.on_session_event(id, event, now);
            }
            let (Some(path), Some(session)) = (self.endpoint.path(id), self.endpoint.session_mut(id)) else { continue };
            while let Some(n) = session.poll_transmit(now, &mut self.out) {
                self.listener.send(path, &self.out[..n]).await;
            }
            let closed = session.is_closed();
            let stats = session.stats();
            if closed {
                self.summary.datagrams_dropped += stats.dropped.total();
                if self.in_call(id) {
                    self.end_call(now, stats);
                }
                self.listener.close(path);
                self.endpoint.remove(id);
            }
        }
    }

    fn on_session_event(&mut self, id: u32, event: Event, now: Instant) {
        if !self.in_call(id) {
            return; // a refused caller's session: nothing to tell anyone
        }
        let Some(session) = self.endpoint.session(id) else { return };
        let (sas, key, stats) = (session.sas(), session.remote_static().fingerprint(), session.stats());
        match event {
            Event::Control(ControlMessage::Hello(h)) => {
                let name = h.display_name();
                let Some(call) = self.call.as_mut() else { return };
                if call.name.is_none() {
                    self.summary.calls += 1;
                    call.started = now;
                    self.console.line(format!(
                        "{name} joined (their key {key}). Security code: {sas}  (they see the same code unless someone is in between)"
                    ));
                    self.console.line(self.console.keys_hint("stop hosting"));
                    if self.first_start.is_none() {
                        self.first_start = Some(now);
                        self.engine.start();
                    }
                }
                let caller = view::other_in_two(&name, &session.remote_static());
                let gain = self.people.volume(&caller);
                self.engine.set_playback_gain(f32::from(gain) / 100.0);
                self.roster.clear();
                self.roster.apply(&ControlMessage::Roster(vec![caller]));
                call.name = Some(name);
            }
            Event::Control(ControlMessage::Mute { muted, deafened }) => {
                let name = self.call.as_ref().and_then(|c| c.name.clone()).unwrap_or_default();
                self.console.line(format!("{name} {}", viz_client::roster::mute_words(muted, deafened)));
                self.roster.other_in_two_muted(muted, deafened);
            }
            Event::Control(_) | Event::Closed => {}
            Event::PeerLeft(reason) => {
                let name = self.end_call(now, stats);
                self.console.line(format!("{name} {reason}. Waiting for someone to join..."));
            }
            Event::TimedOut => {
                let name = self.end_call(now, stats);
                self.console.line(format!(
                    "Lost {name}: nothing heard for {} s. Waiting for someone to join...",
                    self.cfg.session.idle_timeout.as_secs()
                ));
            }
        }
    }

    /// Ends the current call; returns the caller's name for messages.
    fn end_call(&mut self, now: Instant, stats: ConnectionStats) -> String {
        let Some(call) = self.call.take() else { return String::new() };
        self.roster.clear();
        self.engine.set_playback_gain(1.0);
        self.connection_line = "waiting for someone to join".into();
        if call.name.is_some() {
            self.summary.call_time += now - call.started;
        }
        self.summary.last_call_stats = Some(stats);
        call.name.unwrap_or_else(|| "The caller".into())
    }

    /// Shutdown is complete when every goodbye was acknowledged or the grace is over.
    fn finished(&mut self, now: Instant) -> bool {
        let Some(t) = self.shutting_down else { return false };
        if !self.endpoint.session_ids().is_empty() && now < t + SHUTDOWN_GRACE {
            return false;
        }
        if let Some(stats) = self.call.as_ref().and_then(|c| self.endpoint.session(c.id)).map(|s| s.stats()) {
            self.end_call(now, stats);
        }
        self.summary.datagrams_dropped += self.endpoint.drops().total();
        true
    }

    fn summary(&self) -> HostSummary {
        self.summary.clone()
    }

    fn on_timers(&mut self, now: Instant) {
        if let (Some(s), Some(d)) = (self.first_start, self.cfg.duration)
            && now >= s + d
        {
            self.begin_shutdown(now);
        }
        let session = self.call.as_ref().and_then(|c| self.endpoint.session(c.id));
        if now >= self.next_hint {
            self.next_hint = now + Duration::from_secs(1);
            if let Some(s) = session {
                self.engine.set_loss_hint(self.loss_hint.update(s.stats().remote_loss));
            }
            self.notices.print_new(&self.engine.status(), &self.console);
        }
        if now >= self.next_status {
            self.next_status = now + view::status_interval(self.cfg.status_interval);
            let via = self.call.as_ref().and_then(|c| self.endpoint.path(c.id)).map(|p| self.peer_text(p));
            let stats = self.call.as_ref().and_then(|c| self.endpoint.session(c.id)).map(|s| s.stats());
            if let (Some(call), Some(via), Some(stats)) = (self.call.as_mut(), via, stats)
                && let Some(name) = &call.name
            {
                let rates = call.rates.rates(now, &stats);
                let line = status_line(name, &via, &stats, &self.engine.status(), rates);
                if screen::is_on() {
                    self.connection_line = line;
                } else {
                    self.console.line(line);
                }
            }
        }
        if screen::is_on() && now >= self.next_draw {
            self.next_draw = now + view::REDRAW;
            let status = self.engine.status();
            let title = match self.call.as_ref().and_then(|c| c.name.as_deref()) {
                Some(name) => format!("Call with {name}"),
                None => format!("Hosting on port {}", self.listener.local.port()),
            };
            screen::draw(&Panel {
                title,
                people: view::rows_in_two(&self.roster, &self.people, &status),
                you: self.cfg.name.clone(),
                your_level_dbfs: status.input_level_dbfs,
                controls: self.controls,
                sends: true,
                connection: self.connection_line.clone(),
                keys: view::keys_line("stop hosting"),
            });
        }
    }
}
