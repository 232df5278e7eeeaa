//! The web port's doors: which pages may open the room's WebSocket, whose address a
//! tunnelled visitor has, and which limiter each kind of attempt counts against.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use viz_proto::{AdminOp, AdminRequest, ControlMessage, Event};

use crate::common::room::{ADMIN_TOKEN, Server, serve};
use crate::native::{Session, address, password_room};

/// The HTTP status of a WebSocket upgrade to the page's `/ws` sent with `origin`.
async fn ws_status(server: &Server, origin: Option<&str>) -> u16 {
    let url = format!("{}/ws", server.web.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// Finding 6: `/ws` welcomed a page from `https://evil.example` and streamed it the
/// room, so any page a LAN user opened could listen or spend their password attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_from_other_sites_cannot_open_the_room_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    assert_eq!(ws_status(&server, Some("https://evil.example")).await, 403);
    assert_eq!(ws_status(&server, Some("null")).await, 403);
    assert_eq!(ws_status(&server, Some(&server.web)).await, 101, "the page's own origin");
    assert_eq!(ws_status(&server, None).await, 101, "no Origin: not a browser");

    let allowed = serve(&dir.path().join("allowed"), &["--allow-origin", "https://friends.example"]);
    assert_eq!(ws_status(&allowed, Some("https://friends.example")).await, 101);
    assert_eq!(ws_status(&allowed, Some("https://evil.example")).await, 403);
}

/// GET /api/room with `token`, as a visitor the local tunnel names `visitor`.
fn api_as(server: &Server, visitor: &str, token: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    agent
        .get(format!("{}/api/participants", server.web))
        .header("Authorization", format!("Bearer {token}"))
        .header("X-Forwarded-For", visitor)
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// Finding 13: behind an HTTP tunnel every visitor is 127.0.0.1, so one visitor's five
/// wrong tries locked out everyone, the admin too. With `--trust-proxy` the tunnel's
/// X-Forwarded-For names the visitor.
#[test]
fn behind_a_trusted_tunnel_each_visitor_has_its_own_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--trust-proxy"]);
    for _ in 0..5 {
        assert_eq!(api_as(&server, "203.0.113.66", "guess"), 401);
    }
    assert_eq!(api_as(&server, "203.0.113.66", ADMIN_TOKEN), 429, "the guesser waits");
    assert_eq!(api_as(&server, "198.51.100.1", ADMIN_TOKEN), 200, "the admin, another visitor, does not");

    // Without --trust-proxy the header is the client's own word and means nothing.
    let plain = serve(&dir.path().join("plain"), &[]);
    for _ in 0..5 {
        assert_eq!(api_as(&plain, "203.0.113.66", "guess"), 401);
    }
    assert_eq!(api_as(&plain, "198.51.100.1", ADMIN_TOKEN), 429, "one address for all");
}

/// Asks for the room as an admin over a native session; `Ok(())` if logged in.
async fn native_admin(s: &mut Session, token: &str) -> Result<(), String> {
    s.conn.send_control(ControlMessage::Admin(AdminRequest { request: 7, token: token.into(), op: AdminOp::LogIn }));
    loop {
        match s.answer(Duration::from_secs(5)).await {
            Some(Event::Control(ControlMessage::AdminResult { ok: true, .. })) => return Ok(()),
            Some(Event::Control(ControlMessage::AdminResult { ok: false, message, .. })) => return Err(message),
            Some(Event::Control(_)) => {}
            other => return Err(format!("{other:?}")),
        }
    }
}

/// One limiter per purpose, shared by every door (finding 13: the native channel and
/// the REST API counted admin tokens apart; a password guesser locked out the admin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_attempt_has_one_limit_across_transports() {
    let dir = tempfile::tempdir().unwrap();
    let server = password_room(dir.path());
    let target = address(&server.join);
    let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // Five wrong passwords from this address...
    for i in 0..5 {
        let mut s = Session::open(target, here, Duration::from_secs(5)).await.unwrap();
        s.guess(&format!("wrong {i}"));
        let e = s.answer(Duration::from_secs(5)).await;
        assert!(matches!(e, Some(Event::Control(ControlMessage::PasswordReply { .. }))), "{e:?}");
    }
    // ...do not stop the admin token from this address.
    let mut admin = Session::open(target, here, Duration::from_secs(5)).await.unwrap();
    native_admin(&mut admin, ADMIN_TOKEN).await.expect("the admin logs in after someone else's wrong passwords");

    // Five wrong admin tokens over REST...
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let web = server.web.clone();
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..5 {
            let st =
                agent.get(format!("{web}/api/participants")).header("Authorization", "Bearer guess").call().unwrap();
            assert_eq!(st.status().as_u16(), 401);
        }
    });
    status.await.unwrap();
    // ...count for the native admin channel too.
    let mut s = Session::open(target, here, Duration::from_secs(5)).await.unwrap();
    let refused = native_admin(&mut s, ADMIN_TOKEN).await.expect_err("a REST token guesser tries the native channel");
    assert!(refused.contains("too many failed attempts"), "{refused}");
}
