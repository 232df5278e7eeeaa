//! The admin API refusing a change must leave everything as it was.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use viz_proto::{ControlMessage, Event};

use crate::common::room::{ADMIN_TOKEN, api_call, serve, wait_participant};
use crate::native::{Session, address};

/// Finding 12: `PATCH {"gain_percent":7,"muted":true,"name":"   "}` answered 422 yet
/// applied and saved the gain and the mute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_patch_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    let mut s = Session::open(address(&server.join), IpAddr::V4(Ipv4Addr::LOCALHOST), Duration::from_secs(5))
        .await
        .expect("handshake");
    s.hello("victim");
    let e = s.answer(Duration::from_secs(5)).await;
    assert!(matches!(e, Some(Event::Control(ControlMessage::Hello(_)))), "{e:?}");
    let id = wait_participant(&server, "victim", Duration::from_secs(5))["id"].as_u64().unwrap();
    let path = format!("/api/participants/{id}");

    let body = r#"{"gain_percent":7,"muted":true,"name":"   "}"#;
    let (status, reply) = api_call(&server, "PATCH", &path, Some(body), Some(ADMIN_TOKEN));
    assert_eq!(status, 422, "{reply}");
    let body = r#"{"gain_percent":700,"muted":true,"name":"Mallory"}"#;
    let (status, reply) = api_call(&server, "PATCH", &path, Some(body), Some(ADMIN_TOKEN));
    assert_eq!(status, 422, "{reply}");
    let (_, now) = api_call(&server, "GET", &path, None, Some(ADMIN_TOKEN));
    assert_eq!(
        (now["gain_percent"].as_u64(), now["muted"].as_bool(), now["name"].as_str()),
        (Some(100), Some(false), Some("victim")),
        "{now}"
    );
    let saved = std::fs::read_dir(&server.dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect::<String>();
    assert!(!saved.contains("Mallory") && !saved.contains("\"gain_percent\": 7"), "saved: {saved}");

    // A valid change still applies all of its parts.
    let body = r#"{"gain_percent":70,"muted":true,"name":"Victor"}"#;
    let (status, reply) = api_call(&server, "PATCH", &path, Some(body), Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["gain_percent"].as_u64(), reply["muted"].as_bool(), reply["name"].as_str()),
        (Some(70), Some(true), Some("Victor")),
        "{reply}"
    );
}
