//! The joiner's transports. Both carry whole datagrams: UDP natively, WebSocket as one
//! binary message per datagram (so HTTP-only tunnels such as cloudflared or `ngrok http`
//! can carry a call). A reader task timestamps each datagram as it arrives and queues
//! it for the call loop; sending goes straight to the socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use viz_proto::MAX_DATAGRAM;

/// Datagrams waiting for the call loop; more are dropped (the loop is stuck anyway).
const RECV_QUEUE: usize = 512;

/// A received datagram and when it arrived.
pub type Arrival = (Instant, Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Udp,
    WebSocket,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Udp => "UDP",
            Kind::WebSocket => "WebSocket",
        })
    }
}

type WsSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

enum Tx {
    Udp(Arc<UdpSocket>),
    Ws(WsSink),
}

/// One open transport to the host.
pub struct Transport {
    tx: Tx,
    pub rx: mpsc::Receiver<Arrival>,
    pub kind: Kind,
    /// Where the host is (for UDP, the resolved address).
    pub peer: String,
    /// Bytes of headers under each datagram on the wire (IP + UDP, or an estimate of
    /// IP + TCP + WebSocket framing), for bitrate accounting.
    pub header_overhead: usize,
    reader: tokio::task::JoinHandle<()>,
    /// Set when the reader saw the peer refuse (ICMP port unreachable, WS closed).
    pub closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// IPv4 + UDP header bytes, or IPv6 + UDP.
pub fn udp_overhead(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() { 28 } else { 48 }
}

/// IP + TCP (with timestamps) + WebSocket framing, per message, roughly.
pub fn ws_overhead(addr: Option<&SocketAddr>) -> usize {
    let ip = if addr.is_some_and(SocketAddr::is_ipv6) { 40 } else { 20 };
    ip + 32 + 4
}

impl Transport {
    /// A UDP socket connected to `addr` (so ICMP errors are reported to us).
    pub async fn udp(addr: SocketAddr) -> std::io::Result<Self> {
        let bind: SocketAddr =
            if addr.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.map_err(std::io::Error::other)?;
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        socket.connect(addr).await?;
        let (tx, rx) = mpsc::channel(RECV_QUEUE);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader_socket = socket.clone();
        let reader_closed = closed.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM + 1];
            loop {
                match reader_socket.recv(&mut buf).await {
                    Ok(n) => {
                        if tx.try_send((Instant::now(), buf[..n].to_vec())).is_err() && tx.is_closed() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        // Nothing listens on that UDP port (ICMP port unreachable). Keep
                        // reading: the host may be starting up.
                        reader_closed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::debug!("udp receive error: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(Self {
            tx: Tx::Udp(socket),
            rx,
            kind: Kind::Udp,
            peer: addr.to_string(),
            header_overhead: udp_overhead(&addr),
            reader,
            closed,
        })
    }

    /// A WebSocket to `url`; `wss://` uses TLS with the web's root certificates.
    pub async fn websocket(url: &str) -> Result<Self, String> {
        install_tls_provider();
        let request = url.into_client_request().map_err(|e| format!("invalid WebSocket URL {url}: {e}"))?;
        let (ws, response) = tokio_tungstenite::connect_async(request).await.map_err(describe_ws_error)?;
        tracing::debug!(status = %response.status(), "websocket connected");
        let peer_addr = match ws.get_ref() {
            tokio_tungstenite::MaybeTlsStream::Plain(s) => s.peer_addr().ok(),
            _ => None,
        };
        let (sink, mut stream) = ws.split();
        let (tx, rx) = mpsc::channel(RECV_QUEUE);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader_closed = closed.clone();
        let reader = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Binary(data)) => {
                        if data.len() <= MAX_DATAGRAM
                            && tx.try_send((Instant::now(), data.to_vec())).is_err()
                            && tx.is_closed()
                        {
                            return;
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            reader_closed.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        Ok(Self {
            tx: Tx::Ws(sink),
            rx,
            kind: Kind::WebSocket,
            peer: url.to_owned(),
            header_overhead: ws_overhead(peer_addr.as_ref()),
            reader,
            closed,
        })
    }

    pub async fn send(&mut self, datagram: &[u8]) -> std::io::Result<()> {
        match &mut self.tx {
            Tx::Udp(s) => match s.send(datagram).await {
                Ok(_) => Ok(()),
                // A refused UDP send is like a lost datagram: the protocol copes.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    self.closed.store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Tx::Ws(sink) => sink.send(Message::Binary(datagram.to_vec().into())).await.map_err(std::io::Error::other),
        }
    }

    /// Closes a WebSocket politely; nothing to do for UDP.
    pub async fn close(&mut self) {
        if let Tx::Ws(sink) = &mut self.tx {
            let _ = tokio::time::timeout(Duration::from_millis(500), sink.close()).await;
        }
    }

    pub fn refused(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// rustls needs one process-wide crypto provider; Viz uses *ring* (already linked for
/// Noise). Installing twice is harmless.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn describe_ws_error(e: tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(resp) => {
            format!("the server answered HTTP {} instead of a WebSocket (not a Viz host?)", resp.status())
        }
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listening on TCP)".into()
        }
        Error::Io(io) => io.to_string(),
        Error::Tls(t) => format!("TLS error: {t}"),
        Error::Url(u) => format!("bad URL: {u}"),
        Error::Protocol(p) => format!("the server does not speak WebSocket ({p}); not a Viz host?"),
        other => other.to_string(),
    }
}
