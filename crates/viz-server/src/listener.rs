//! One port number, two transports: a UDP socket and a TCP listener that accepts
//! WebSocket upgrades on any path. Each WebSocket binary message is one datagram.
//! Datagrams from both arrive on one channel with their return [`Path`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use viz_proto::MAX_DATAGRAM;

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

/// `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) shown as `1.2.3.4`.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// What the WebSocket side reports to the main loop.
#[derive(Debug)]
pub enum WsEvent {
    Open { id: u64, peer: SocketAddr, outgoing: mpsc::Sender<Vec<u8>> },
    Datagram { id: u64, at: Instant, data: Vec<u8> },
    Closed { id: u64 },
}

/// How long a TCP client may take to complete the WebSocket upgrade.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(5);
/// Outgoing datagrams queued per WebSocket before new ones are dropped.
const WS_SEND_QUEUE: usize = 256;
/// TCP connections (upgrading or open) at once; more are closed at accept, so a flood
/// of idle connections cannot exhaust the host.
const MAX_TCP_CONNECTIONS: usize = 512;

pub struct Listener {
    pub udp: Arc<UdpSocket>,
    pub local: SocketAddr,
    pub ws_events: mpsc::Receiver<WsEvent>,
    ws_senders: HashMap<u64, (SocketAddr, mpsc::Sender<Vec<u8>>)>,
    acceptor: Option<tokio::task::JoinHandle<()>>,
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
        match Self::bind_exact(addr, websocket).await {
            Err(BindError::Udp { error, .. })
                if addr.ip() == std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                    && (matches!(
                        error.kind(),
                        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
                    ) || is_no_ipv6(&error)) =>
            {
                tracing::debug!("no IPv6 here ({error}); listening on IPv4 only");
                Self::bind_exact(SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port()), websocket).await
            }
            other => other,
        }
    }

    async fn bind_exact(addr: SocketAddr, websocket: bool) -> Result<Self, BindError> {
        let mut last_err = None;
        for _ in 0..10 {
            let udp = UdpSocket::bind(addr).await.map_err(|error| BindError::Udp { addr, error })?;
            let local = udp.local_addr().map_err(|error| BindError::Udp { addr, error })?;
            if !websocket {
                return Ok(Self::new(udp, local, None));
            }
            match TcpListener::bind(local).await {
                Ok(tcp) => return Ok(Self::new(udp, local, Some(tcp))),
                // The UDP port the system picked is taken on TCP: pick again.
                Err(error) if addr.port() == 0 => last_err = Some(BindError::Tcp { addr: local, error }),
                Err(error) => return Err(BindError::Tcp { addr: local, error }),
            }
        }
        Err(last_err.unwrap_or_else(|| BindError::Tcp { addr, error: std::io::Error::other("no free port") }))
    }

    fn new(udp: UdpSocket, local: SocketAddr, tcp: Option<TcpListener>) -> Self {
        let (events_tx, ws_events) = mpsc::channel(1024);
        let acceptor = tcp.map(|tcp| tokio::spawn(accept_loop(tcp, events_tx)));
        Self { udp: Arc::new(udp), local, ws_events, ws_senders: HashMap::new(), acceptor }
    }

    pub fn websocket_enabled(&self) -> bool {
        self.acceptor.is_some()
    }

    /// Registers or forgets WebSocket connections as their events arrive.
    pub fn track(&mut self, event: &WsEvent) {
        match event {
            WsEvent::Open { id, peer, outgoing } => {
                self.ws_senders.insert(*id, (*peer, outgoing.clone()));
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
        match self.peer_addr(path) {
            Some(a) if matches!(path, Path::Udp(_)) => format!("UDP {}", canonical(a)),
            Some(a) => format!("WebSocket {}", canonical(a)),
            None => path.to_string(),
        }
    }

    pub fn peer_addr(&self, path: Path) -> Option<SocketAddr> {
        match path {
            Path::Udp(a) => Some(a),
            Path::Ws(id) => self.ws_senders.get(&id).map(|(a, _)| *a),
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
                if let Some((_, tx)) = self.ws_senders.get(&id) {
                    let _ = tx.try_send(data.to_vec());
                }
            }
        }
    }
}

/// Counts a live TCP connection for as long as it exists.
struct ConnectionCount(Arc<std::sync::atomic::AtomicUsize>);

impl ConnectionCount {
    fn new(live: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(live)
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// EAFNOSUPPORT: the kernel has no IPv6.
fn is_no_ipv6(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(97)
}

async fn accept_loop(tcp: TcpListener, events: mpsc::Sender<WsEvent>) {
    let mut next_id = 1u64;
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if live.load(std::sync::atomic::Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
            tracing::warn!(%peer, "too many TCP connections; refusing");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let id = next_id;
        next_id += 1;
        let events = events.clone();
        let guard = ConnectionCount::new(live.clone());
        tokio::spawn(async move {
            let _guard = guard;
            let ws = match tokio::time::timeout(UPGRADE_TIMEOUT, tokio_tungstenite::accept_async(stream)).await {
                Ok(Ok(ws)) => ws,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "not a WebSocket upgrade: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "WebSocket upgrade timed out");
                    return;
                }
            };
            tracing::debug!(%peer, id, "websocket open");
            let (mut sink, mut stream) = ws.split();
            let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(WS_SEND_QUEUE);
            if events.send(WsEvent::Open { id, peer, outgoing: out_tx }).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(Ok(Message::Binary(data))) => {
                            if data.len() <= MAX_DATAGRAM
                                && events.send(WsEvent::Datagram { id, at: Instant::now(), data: data.to_vec() }).await.is_err()
                            {
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
                        None => break,
                    },
                }
            }
            let _ = sink.close().await;
            let _ = events.send(WsEvent::Closed { id }).await;
        });
    }
}
