//! One port number, two transports: a UDP socket and a TCP listener that accepts
//! WebSocket upgrades on any path. Each WebSocket binary message is one datagram.
//! Datagrams from both arrive on one channel with their return [`Path`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use viz_proto::MAX_DATAGRAM;

use crate::limits::{ConnectionSlot, ConnectionTable};

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    Udp(SocketAddr),
    Ws(u64),
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Udp(a) => write!(f, "UDP {a}"),
            Path::Ws(id) => write!(f, "WebSocket #{id}"),
        }
    }
}

impl viz_proto::endpoint::ReturnPath for Path {
    fn source(&self) -> viz_proto::endpoint::Source {
        match *self {
            Path::Udp(a) => viz_proto::endpoint::Source::Address(canonical(a)),
            Path::Ws(id) => viz_proto::endpoint::Source::Connection(id),
        }
    }
}

/// `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) shown as `1.2.3.4`.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// What the WebSocket side reports to the main loop.
#[derive(Debug)]
pub enum WsEvent {
    Open { id: u64, peer: SocketAddr, outgoing: mpsc::Sender<Vec<u8>>, authenticated: Arc<AtomicBool> },
    Datagram { id: u64, at: Instant, data: Vec<u8> },
    Closed { id: u64 },
}

/// How long a TCP client may take to complete the WebSocket upgrade.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an upgraded connection may go without carrying an authenticated session
/// (a completed handshake): silent or stalled connections are closed after this.
pub const AUTH_DEADLINE: Duration = Duration::from_secs(10);
/// Connections from one address not yet carrying an authenticated session. A joiner
/// needs one for a few round trips; a flood of idle ones from one address stops here
/// instead of filling [`MAX_TCP_CONNECTIONS`] for everyone.
pub const MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 32;
/// Outgoing datagrams queued per WebSocket before new ones are dropped.
const WS_SEND_QUEUE: usize = 256;
/// TCP connections (upgrading or open) at once; more are closed at accept, so a flood
/// of idle connections cannot exhaust the host.
const MAX_TCP_CONNECTIONS: usize = 512;

pub struct Listener {
    pub udp: Arc<UdpSocket>,
    pub local: SocketAddr,
    pub ws_events: mpsc::Receiver<WsEvent>,
    ws_senders: HashMap<u64, WsConnection>,
    acceptor: Option<tokio::task::JoinHandle<()>>,
}

/// An open WebSocket as the main loop sees it.
struct WsConnection {
    peer: SocketAddr,
    outgoing: mpsc::Sender<Vec<u8>>,
    /// Set once a session on it is authenticated; until then [`AUTH_DEADLINE`] runs.
    authenticated: Arc<AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(a) = &self.acceptor {
            a.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    #[error("cannot listen on UDP {addr}: {error}")]
    Udp { addr: SocketAddr, error: std::io::Error },
    #[error("cannot listen on TCP {addr} for WebSocket: {error} (use --no-websocket to host over UDP only)")]
    Tcp { addr: SocketAddr, error: std::io::Error },
}

impl Listener {
    /// Binds UDP and (unless `websocket` is false) TCP on the same port. With port 0
    /// the system picks a port free for both. `[::]` means IPv6 and IPv4; on a machine
    /// without IPv6 it falls back to `0.0.0.0`.
    pub async fn bind(addr: SocketAddr, websocket: bool) -> Result<Self, BindError> {
        Self::bind_with(addr, websocket, false).await
    }

    /// As [`Listener::bind`]; with `trust_proxy`, a WebSocket from this machine speaks
    /// for the visitor its upgrade request names (`CF-Connecting-IP`, `X-Forwarded-For`):
    /// limits and the room see that address (`--trust-proxy`, for a tunnel such as
    /// cloudflared in front of the native port).
    pub async fn bind_with(addr: SocketAddr, websocket: bool, trust_proxy: bool) -> Result<Self, BindError> {
        match Self::bind_exact(addr, websocket, trust_proxy).await {
            Err(BindError::Udp { error, .. })
                if addr.ip() == std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                    && (matches!(
                        error.kind(),
                        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
                    ) || is_no_ipv6(&error)) =>
            {
                tracing::debug!("no IPv6 here ({error}); listening on IPv4 only");
                let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
                Self::bind_exact(any, websocket, trust_proxy).await
            }
            other => other,
        }
    }

    async fn bind_exact(addr: SocketAddr, websocket: bool, trust_proxy: bool) -> Result<Self, BindError> {
        let mut last_err = None;
        for _ in 0..10 {
            let udp = UdpSocket::bind(addr).await.map_err(|error| BindError::Udp { addr, error })?;
            let local = udp.local_addr().map_err(|error| BindError::Udp { addr, error })?;
            if !websocket {
                return Ok(Self::new(udp, local, None, trust_proxy));
            }
            match TcpListener::bind(local).await {
                Ok(tcp) => return Ok(Self::new(udp, local, Some(tcp), trust_proxy)),
                // The UDP port the system picked is taken on TCP: pick again.
                Err(error) if addr.port() == 0 => last_err = Some(BindError::Tcp { addr: local, error }),
                Err(error) => return Err(BindError::Tcp { addr: local, error }),
            }
        }
        Err(last_err.unwrap_or_else(|| BindError::Tcp { addr, error: std::io::Error::other("no free port") }))
    }

    fn new(udp: UdpSocket, local: SocketAddr, tcp: Option<TcpListener>, trust_proxy: bool) -> Self {
        let (events_tx, ws_events) = mpsc::channel(1024);
        let acceptor = tcp.map(|tcp| tokio::spawn(accept_loop(tcp, events_tx, trust_proxy)));
        Self { udp: Arc::new(udp), local, ws_events, ws_senders: HashMap::new(), acceptor }
    }

    pub fn websocket_enabled(&self) -> bool {
        self.acceptor.is_some()
    }

    /// Registers or forgets WebSocket connections as their events arrive.
    pub fn track(&mut self, event: &WsEvent) {
        match event {
            WsEvent::Open { id, peer, outgoing, authenticated } => {
                let conn =
                    WsConnection { peer: *peer, outgoing: outgoing.clone(), authenticated: authenticated.clone() };
                self.ws_senders.insert(*id, conn);
            }
            WsEvent::Closed { id } => {
                self.ws_senders.remove(id);
            }
            WsEvent::Datagram { .. } => {}
        }
    }

    /// The remote address behind a path.
    /// "UDP 1.2.3.4:5" or "WebSocket 1.2.3.4:5", for messages and logs.
    pub fn describe(&self, path: Path) -> String {
        describe(path, self.peer_addr(path))
    }

    pub fn peer_addr(&self, path: Path) -> Option<SocketAddr> {
        match path {
            Path::Udp(a) => Some(a),
            Path::Ws(id) => self.ws_senders.get(&id).map(|c| c.peer),
        }
    }

    /// A session on `path` completed its handshake: a WebSocket stays open from now on
    /// for as long as the session lasts.
    pub fn authenticated(&self, path: Path) {
        if let Path::Ws(id) = path
            && let Some(c) = self.ws_senders.get(&id)
        {
            c.authenticated.store(true, Ordering::Relaxed);
        }
    }

    /// The session on `path` is over: a WebSocket closes once what is queued for it
    /// (the goodbye) is sent. A UDP path has nothing to close.
    pub fn close(&mut self, path: Path) {
        if let Path::Ws(id) = path {
            self.ws_senders.remove(&id);
        }
    }

    /// Sends one datagram on a path. Failures are logged, never fatal: to the protocol
    /// they are just loss.
    pub async fn send(&self, path: Path, data: &[u8]) {
        match path {
            Path::Udp(addr) => {
                if let Err(e) = self.udp.send_to(data, addr).await {
                    tracing::debug!(%addr, "udp send failed: {e}");
                }
            }
            Path::Ws(id) => {
                if let Some(c) = self.ws_senders.get(&id) {
                    let _ = c.outgoing.try_send(data.to_vec());
                }
            }
        }
    }
}

/// "UDP 1.2.3.4:5" or "WebSocket 1.2.3.4:5": a path and the address behind it.
pub fn describe(path: Path, peer: Option<SocketAddr>) -> String {
    match peer {
        Some(a) if matches!(path, Path::Udp(_)) => format!("UDP {}", canonical(a)),
        Some(a) => format!("WebSocket {}", canonical(a)),
        None => path.to_string(),
    }
}

/// EAFNOSUPPORT: the kernel has no IPv6.
fn is_no_ipv6(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(97)
}

async fn accept_loop(tcp: TcpListener, events: mpsc::Sender<WsEvent>, trust_proxy: bool) {
    let mut next_id = 1u64;
    let table = ConnectionTable::new(MAX_TCP_CONNECTIONS, MAX_UNAUTHENTICATED_PER_ADDRESS, trust_proxy);
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match ConnectionSlot::take(&table, peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(%peer, "refused: {why}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = next_id;
        next_id += 1;
        tokio::spawn(serve_connection(stream, peer, trust_proxy, id, slot, events.clone()));
    }
}

/// One native WebSocket: each binary message is one datagram, at most
/// [`MAX_DATAGRAM`] long (the library's default would buffer 64 MiB per message).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    tcp_peer: SocketAddr,
    trust_proxy: bool,
    id: u64,
    mut slot: ConnectionSlot,
    events: mpsc::Sender<WsEvent>,
) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_DATAGRAM))
        .max_frame_size(Some(MAX_DATAGRAM))
        .read_buffer_size(MAX_DATAGRAM * 2);
    // Behind a trusted tunnel on this machine, the visitor is the one it names, and
    // the connection counts against that visitor's address (429 when it is full).
    let mut peer = tcp_peer;
    #[allow(clippy::result_large_err)] // the error type is tungstenite's
    let name_visitor = |request: &Request, response: Response| {
        peer = crate::web::client::client_addr(request.headers(), tcp_peer, trust_proxy);
        if peer == tcp_peer {
            return Ok(response);
        }
        match slot.count_against(peer.ip()) {
            Ok(()) => Ok(response),
            Err(why) => {
                tracing::debug!(%peer, "refused: {why}");
                let mut refusal = ErrorResponse::new(Some(why.to_owned()));
                *refusal.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                Err(refusal)
            }
        }
    };
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, name_visitor, Some(config));
    let upgraded = tokio::time::timeout(UPGRADE_TIMEOUT, upgrade).await;
    let ws = match upgraded {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(peer = %tcp_peer, "not a WebSocket upgrade: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %tcp_peer, "WebSocket upgrade timed out");
            return;
        }
    };
    tracing::debug!(%peer, id, "websocket open");
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(WS_SEND_QUEUE);
    let authenticated = Arc::new(AtomicBool::new(false));
    let open = WsEvent::Open { id, peer, outgoing: out_tx, authenticated: authenticated.clone() };
    if events.send(open).await.is_err() {
        return;
    }
    let deadline = tokio::time::sleep(AUTH_DEADLINE);
    tokio::pin!(deadline);
    let mut waiting_for_auth = true;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if events.send(WsEvent::Datagram { id, at: Instant::now(), data: data.to_vec() }).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            out = out_rx.recv() => match out {
                Some(data) => {
                    if sink.send(Message::Binary(data.into())).await.is_err() {
                        break;
                    }
                }
                None => break, // the session is over and its goodbye sent
            },
            () = &mut deadline, if waiting_for_auth => {
                if !authenticated.load(Ordering::Relaxed) {
                    tracing::debug!(%peer, id, "websocket closed: no authenticated session within {} s", AUTH_DEADLINE.as_secs());
                    break;
                }
                waiting_for_auth = false;
            }
        }
        if waiting_for_auth && authenticated.load(Ordering::Relaxed) {
            waiting_for_auth = false;
            slot.vouched_for();
        }
    }
    let _ = sink.close().await;
    let _ = events.send(WsEvent::Closed { id }).await;
}
