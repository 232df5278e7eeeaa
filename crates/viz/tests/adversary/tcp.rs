//! The native port's TCP side (`viz join ws://…`): idle connections and huge messages.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::room::serve;
use crate::common::viz;
use crate::native::address;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket upgrade to `target` from a socket bound to `from`, or `None` if the
/// server refused or closed the connection.
pub async fn upgrade(target: SocketAddr, from: IpAddr) -> Option<Ws> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(from, 0)).ok()?;
    let stream = tokio::time::timeout(Duration::from_secs(3), sock.connect(target)).await.ok()?.ok()?;
    let url = format!("ws://{target}/");
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)),
    )
    .await
    .ok()?
    .ok()?;
    Some(ws)
}

/// A WebSocket upgrade from this machine on behalf of `visitor`, as a tunnel makes it
/// (`X-Forwarded-For`).
async fn upgrade_for(target: SocketAddr, visitor: &str) -> Option<Ws> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{target}/").into_client_request().ok()?;
    request.headers_mut().insert("x-forwarded-for", visitor.parse().ok()?);
    let stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(target)).await.ok()?.ok()?;
    let upgrade = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
    let (ws, _) = tokio::time::timeout(Duration::from_secs(3), upgrade).await.ok()?.ok()?;
    Some(ws)
}

/// How many of `tries` upgrades on behalf of `visitor` the server takes.
async fn upgrades_for(target: SocketAddr, visitor: &str, tries: usize, held: &mut Vec<Ws>) -> usize {
    let mut n = 0;
    for _ in 0..tries {
        if let Some(ws) = upgrade_for(target, visitor).await {
            held.push(ws);
            n += 1;
        }
    }
    n
}

/// Finding 13 on the native port: behind a tunnel every visitor of the native
/// WebSocket came from 127.0.0.1, so one visitor's idle connections used up the
/// address's share for all. With `--trust-proxy` each visitor the tunnel names has its
/// own share; without it the header is ignored (anyone can write it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_tunnel_each_native_websocket_visitor_has_its_own_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut held = Vec::new();
    let trusting = serve(&dir.path().join("trusting"), &["--trust-proxy"]);
    let target = address(&trusting.join);
    let first = upgrades_for(target, "203.0.113.5", 40, &mut held).await;
    let second = upgrades_for(target, "203.0.113.6", 1, &mut held).await;
    println!("--trust-proxy: 40 upgrades for one visitor, {first} taken; another visitor's: {second} taken");
    assert_eq!((first, second), (32, 1));

    let plain = serve(&dir.path().join("plain"), &[]);
    let target = address(&plain.join);
    let first = upgrades_for(target, "203.0.113.5", 40, &mut held).await;
    let second = upgrades_for(target, "203.0.113.6", 1, &mut held).await;
    println!("without it: 40 upgrades for one visitor, {first} taken; another visitor's: {second} taken");
    assert_eq!((first, second), (32, 0), "without --trust-proxy, 127.0.0.1 is one address");
}

/// Whether the server closed `ws` within `timeout`.
pub async fn closed_within(ws: &mut Ws, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn join_over_websocket(dir: &std::path::Path, join: &str) -> (std::process::ExitStatus, String) {
    let ws = join.replace("viz://", "ws://");
    let mut p =
        viz(dir, &["join", &ws, "--name", "real", "--input", "tone:440", "--output", "null", "--duration", "2"]);
    p.finish(Duration::from_secs(20))
}

/// Finding 3: 512 upgraded-but-silent connections stayed open for good, and every
/// `viz join ws://…` after them got "connection reset". Now one address gets a few
/// dozen connections that have not authenticated, each for ten seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websockets_from_one_address_neither_lock_out_joiners_nor_stay() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    let target = address(&server.join);
    let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..520 {
        match upgrade(target, attacker).await {
            Some(ws) => idle.push(ws),
            None => refused += 1,
        }
    }
    println!("520 silent WebSockets from one address: {} upgraded, {refused} refused", idle.len());
    assert!(idle.len() <= 32, "{} idle WebSockets from one address", idle.len());

    let (st, out) = join_over_websocket(&dir.path().join("real"), &server.join);
    assert!(st.success() && out.contains("Joined room"), "a real joiner during the flood: {out}");

    let began = Instant::now();
    for ws in &mut idle {
        assert!(
            closed_within(ws, Duration::from_secs(15)).await,
            "an idle WebSocket still open after {:?}",
            began.elapsed()
        );
    }
    println!("the idle ones were closed within {:.1} s", began.elapsed().as_secs_f64());
}

/// Finding 5: the library's default message limit (64 MiB) applied, and 8 connections
/// took the server from 450 to 799 MB. A native message is one datagram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_larger_than_a_datagram_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    let target = address(&server.join);
    let pid = server.proc.child.id();
    let before = rss_kib(pid);
    let mut closed = 0;
    for _ in 0..8 {
        let mut ws = upgrade(target, IpAddr::V4(Ipv4Addr::LOCALHOST)).await.expect("upgrade");
        // 8 MiB in one message; the server should give up on it at its header.
        let _ = ws.send(Message::Binary(vec![0x55u8; 8 << 20].into())).await;
        if closed_within(&mut ws, Duration::from_secs(5)).await {
            closed += 1;
        }
    }
    let after = rss_kib(pid);
    println!("8 messages of 8 MiB: {closed} connections closed; server RSS {before} → {after} KiB");
    assert_eq!(closed, 8);
    assert!(after < before + 16 * 1024, "the server grew from {before} to {after} KiB");
    let (st, out) = join_over_websocket(&dir.path().join("real"), &server.join);
    assert!(st.success(), "{out}");
}

/// Resident memory of a process, from /proc (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}
