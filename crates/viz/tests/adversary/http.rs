//! The web port (page, REST API, browser WebSocket): slowloris.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::room::{ADMIN_TOKEN, api_call, serve};
use crate::tcp::rss_kib;

pub fn web_addr(web: &str) -> SocketAddr {
    web.trim_start_matches("http://").parse().unwrap()
}

pub async fn connect_from(target: SocketAddr, from: IpAddr) -> Option<TcpStream> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(from, 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(3), sock.connect(target)).await.ok()?.ok()
}

/// Sends a request's first line and then one header line a second, never finishing;
/// returns how long the server kept the connection (`None`: still open at `give_up`,
/// or refused before the first line could be answered).
pub async fn trickle(mut conn: TcpStream, give_up: Duration) -> Option<Duration> {
    let began = Instant::now();
    if conn.write_all(b"GET / HTTP/1.1\r\nHost: victim\r\n").await.is_err() {
        return Some(began.elapsed());
    }
    let mut buf = [0u8; 256];
    while began.elapsed() < give_up {
        match tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(began.elapsed()),
            Ok(Ok(_)) => {} // an error page is fine; the close is what counts
            Err(_) => {
                if conn.write_all(b"X-Slow: yes\r\n").await.is_err() {
                    return Some(began.elapsed());
                }
            }
        }
    }
    None
}

/// Finding 4: no header timeout, so about 1000 hanging connections (at the usual
/// 1024-descriptor limit) took down the page, the API and saving settings, and 10 000
/// took the process from 11 to 162 MB. Now one address holds at most 32 connections,
/// each for at most the 10 s header timeout, and the page answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_bounded_per_address_and_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    let target = web_addr(&server.web);
    let pid = server.proc.child.id();
    let before = rss_kib(pid);
    let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let mut tasks = Vec::new();
    for _ in 0..300 {
        if let Some(conn) = connect_from(target, attacker).await {
            tasks.push(tokio::spawn(trickle(conn, Duration::from_secs(20))));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_kib(pid);
    // The page and the API answer another address meanwhile.
    let web = server.web.clone();
    let page = tokio::task::spawn_blocking(move || ureq::get(&web).call().map(|r| r.status().as_u16()));
    assert_eq!(page.await.unwrap().expect("the page during the flood"), 200);
    let (st, _) = api_call(&server, "GET", "/api/participants", None, Some(ADMIN_TOKEN));
    assert_eq!(st, 200);

    let mut held = Vec::new();
    for t in tasks {
        held.push(t.await.unwrap());
    }
    let after = rss_kib(pid);
    let still_open = held.iter().filter(|h| h.is_none()).count();
    let mut kept: Vec<f64> = held.iter().flatten().map(Duration::as_secs_f64).collect();
    kept.sort_by(f64::total_cmp);
    let longer_than_a_second = kept.iter().filter(|k| **k > 1.0).count();
    println!(
        "300 slow connections from one address: {longer_than_a_second} held more than 1 s, the longest {:.1} s, {still_open} still open at 20 s; server RSS {before} → {during} → {after} KiB",
        kept.last().copied().unwrap_or(0.0)
    );
    assert_eq!(still_open, 0, "connections trickling a header were never closed");
    assert!(longer_than_a_second <= 32, "{longer_than_a_second} connections held from one address");
}
