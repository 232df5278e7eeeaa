//! The one-port listener: UDP datagrams and WebSocket messages arrive with the right
//! return path, one datagram per binary message, and replies go back the same way.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use viz_server::listener::{AUTH_DEADLINE, Listener, Path, WsEvent};

async fn next_event(l: &mut Listener) -> WsEvent {
    let ev = tokio::time::timeout(Duration::from_secs(5), l.ws_events.recv()).await.expect("no event").expect("closed");
    l.track(&ev);
    ev
}

#[tokio::test]
async fn udp_and_websocket_on_one_port() {
    let mut l = Listener::bind("127.0.0.1:0".parse().unwrap(), true).await.unwrap();
    let port = l.local.port();

    // UDP: a datagram in, a reply out to the same address.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"ping", ("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = l.udp.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"ping");
    l.send(Path::Udp(from), b"pong").await;
    let n = udp.recv(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"pong");

    // WebSocket on the same port number, any path.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/any/path")).await.unwrap();
    let WsEvent::Open { id, .. } = next_event(&mut l).await else { panic!("expected open") };
    for msg in [vec![1u8; 1], vec![2u8; 600], vec![3u8; 1452]] {
        ws.send(Message::Binary(msg.clone().into())).await.unwrap();
        match next_event(&mut l).await {
            WsEvent::Datagram { id: got, data, .. } => {
                assert_eq!(got, id);
                assert_eq!(data, msg, "one message must be exactly one datagram");
            }
            other => panic!("{other:?}"),
        }
    }
    // Text frames are not datagrams.
    ws.send(Message::Text("hello".into())).await.unwrap();
    ws.send(Message::Binary(vec![9u8; 3].into())).await.unwrap();
    match next_event(&mut l).await {
        WsEvent::Datagram { data, .. } => assert_eq!(data, vec![9u8; 3]),
        other => panic!("{other:?}"),
    }
    l.send(Path::Ws(id), b"back").await;
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(reply, Message::Binary(b"back".to_vec().into()));
    assert!(l.peer_addr(Path::Ws(id)).is_some());
    ws.close(None).await.unwrap();
    assert!(matches!(next_event(&mut l).await, WsEvent::Closed { id: c } if c == id));
    assert!(l.peer_addr(Path::Ws(id)).is_none());

    // A message longer than a datagram is no native client's: the connection closes
    // (rather than the library buffering up to its default 64 MiB).
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/")).await.unwrap();
    let WsEvent::Open { id, .. } = next_event(&mut l).await else { panic!("expected open") };
    ws.send(Message::Binary(vec![0u8; 1453].into())).await.unwrap();
    assert!(matches!(next_event(&mut l).await, WsEvent::Closed { id: c } if c == id));
}

/// An upgraded connection that carries no authenticated session is closed after
/// [`AUTH_DEADLINE`]; one the room marks as authenticated stays, and closes when the
/// room says its session is over.
#[tokio::test]
async fn a_websocket_must_authenticate_in_time_and_closes_with_its_session() {
    let mut l = Listener::bind("127.0.0.1:0".parse().unwrap(), true).await.unwrap();
    let port = l.local.port();
    let (_silent, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/")).await.unwrap();
    let WsEvent::Open { id: silent, .. } = next_event(&mut l).await else { panic!("expected open") };
    let (mut joiner, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/")).await.unwrap();
    let WsEvent::Open { id: joined, .. } = next_event(&mut l).await else { panic!("expected open") };
    l.authenticated(Path::Ws(joined));
    tokio::time::sleep(AUTH_DEADLINE + Duration::from_secs(1)).await;
    let ev = next_event(&mut l).await;
    assert!(matches!(ev, WsEvent::Closed { id } if id == silent), "{ev:?}");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), l.ws_events.recv()).await.is_err(),
        "the authenticated connection was closed too"
    );
    l.send(Path::Ws(joined), b"bye").await;
    l.close(Path::Ws(joined));
    let got = joiner.next().await.unwrap().unwrap();
    assert_eq!(got, Message::Binary(b"bye".to_vec().into()), "what was queued is sent before the close");
    assert!(matches!(next_event(&mut l).await, WsEvent::Closed { id } if id == joined));
}

#[tokio::test]
async fn plain_http_is_not_a_connection() {
    let mut l = Listener::bind("127.0.0.1:0".parse().unwrap(), true).await.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(l.local).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), l.ws_events.recv()).await.is_err(),
        "a plain HTTP request produced a WebSocket event"
    );
}

#[tokio::test]
async fn udp_only_when_websocket_is_off() {
    let l = Listener::bind("127.0.0.1:0".parse().unwrap(), false).await.unwrap();
    assert!(!l.websocket_enabled());
    assert!(tokio::net::TcpStream::connect(l.local).await.is_err());
}
