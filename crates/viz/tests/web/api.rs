//! Every REST endpoint, with each kind of bad input, against a real `viz serve` with
//! a real native participant.

use std::time::Duration;

use serde_json::Value;

use super::{ADMIN_TOKEN, api_call, serve, wait_participant};
use crate::common::viz;

const T: Option<&str> = Some(ADMIN_TOKEN);

fn error_of(v: &Value) -> String {
    v["error"].as_str().unwrap_or_else(|| panic!("no error message in {v}")).to_owned()
}

#[test]
fn rest_api_endpoints_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--test-source"]);
    let _nat = viz(
        &dir.path().join("nat"),
        &["join", &server.join, "--name", "nat", "--input", "tone:440", "--output", "null"],
    );
    let nat = wait_participant(&server, "nat", Duration::from_secs(15));
    let id = nat["id"].as_u64().unwrap();
    assert_eq!(nat["kind"], "native");
    assert_eq!(nat["transport"], "UDP");
    assert!(nat["address"].as_str().unwrap().starts_with("127.0.0.1:"), "{nat}");
    assert_eq!(nat["gain_percent"], 100);
    let p = |suffix: &str| format!("/api/participants/{id}{suffix}");

    // Public room information.
    let (st, room) = api_call(&server, "GET", "/api/room", None, None);
    assert_eq!(st, 200, "{room}");
    assert_eq!(room["password_required"], false);
    assert_eq!(room["frame_ms"], 20);
    assert_eq!(room["test_source"], true);

    // Authentication: none, wrong, right.
    let (st, body) = api_call(&server, "GET", "/api/participants", None, None);
    assert_eq!(st, 401);
    assert!(error_of(&body).contains("Bearer"), "{body}");
    let (st, body) = api_call(&server, "GET", "/api/participants", None, Some("wrong-token"));
    assert_eq!(st, 401);
    assert_eq!(error_of(&body), "wrong admin token");
    let (st, list) = api_call(&server, "GET", "/api/participants", None, T);
    assert_eq!(st, 200);
    let kinds: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["test source", "native"], "{list}");

    // One participant; unknown and malformed ids.
    let (st, one) = api_call(&server, "GET", &p(""), None, T);
    assert_eq!((st, one["name"].as_str()), (200, Some("nat")));
    let (st, body) = api_call(&server, "GET", "/api/participants/99999", None, T);
    assert_eq!(st, 404);
    assert!(error_of(&body).contains("99999"), "{body}");
    let (st, body) = api_call(&server, "GET", "/api/participants/abc", None, T);
    assert_eq!(st, 400, "{body}");

    // Changes: volume, mute, rename, each visible at once.
    let (st, after) = api_call(&server, "PATCH", &p(""), Some(r#"{"gain_percent": 150}"#), T);
    assert_eq!((st, after["gain_percent"].as_u64()), (200, Some(150)), "{after}");
    let (st, after) = api_call(&server, "PATCH", &p(""), Some(r#"{"muted": true, "name": "Natalie"}"#), T);
    assert_eq!(st, 200, "{after}");
    assert_eq!((after["muted"].as_bool(), after["name"].as_str()), (Some(true), Some("Natalie")));
    let stored = std::fs::read_to_string(server.dir.join("participants.json")).unwrap();
    assert!(stored.contains("Natalie") && stored.contains("150"), "settings not on disk: {stored}");

    // Bad bodies: out of range, wrong type, unknown field, nothing, not JSON, no type.
    for (body, status, needle) in [
        (r#"{"gain_percent": 201}"#, 422, "outside 0..=200"),
        (r#"{"gain_percent": -1}"#, 422, "outside 0..=200"),
        (r#"{"gain_percent": "loud"}"#, 422, "gain_percent"),
        (r#"{"volume": 50}"#, 422, "volume"),
        (r#"{}"#, 422, "nothing to change"),
        (r#"{"name": "   "}"#, 422, "empty"),
        (r#"{"gain_percent": 50"#, 400, "JSON"),
    ] {
        let (st, resp) = api_call(&server, "PATCH", &p(""), Some(body), T);
        assert_eq!(st, status, "{body} → {resp}");
        assert!(error_of(&resp).contains(needle), "{body} → {resp}");
    }
    let (st, resp) = api_call(&server, "PATCH", &p(""), None, T);
    assert_eq!(st, 415, "a body without a JSON content type: {resp}");
    let (st, resp) = api_call(&server, "PATCH", "/api/participants/99999", Some(r#"{"muted": true}"#), T);
    assert_eq!(st, 404, "{resp}");
    let (st, resp) = api_call(&server, "PATCH", "/api/participants/1", Some(r#"{"muted": true}"#), T);
    assert_eq!(st, 422, "the test source: {resp}");
    let (st, _) = api_call(&server, "PATCH", &p(""), Some(r#"{"muted": false}"#), None);
    assert_eq!(st, 401);
    let (_, unchanged) = api_call(&server, "GET", &p(""), None, T);
    assert_eq!((unchanged["gain_percent"].as_u64(), unchanged["muted"].as_bool()), (Some(150), Some(true)));

    // Room settings.
    let (st, room) = api_call(&server, "PATCH", "/api/room", Some(r#"{"name": "Lobby"}"#), T);
    assert_eq!((st, room["name"].as_str()), (200, Some("Lobby")), "{room}");
    let (st, resp) = api_call(&server, "PATCH", "/api/room", Some(r#"{"name": ""}"#), T);
    assert_eq!(st, 422, "{resp}");
    let (st, resp) = api_call(&server, "PATCH", "/api/room", Some(r#"{"colour": "red"}"#), T);
    assert_eq!(st, 422, "{resp}");
    let (st, _) = api_call(&server, "PATCH", "/api/room", Some(r#"{"name": "x"}"#), None);
    assert_eq!(st, 401);

    // Statistics for the graphs, and Prometheus metrics.
    std::thread::sleep(Duration::from_millis(1200));
    let (st, stats) = api_call(&server, "GET", "/api/stats", None, T);
    assert_eq!(st, 200);
    let history = stats["history"].as_array().unwrap();
    assert!(!history.is_empty(), "{stats}");
    assert_eq!(history.last().unwrap()["participants"], 1, "{stats}");
    let (st, _) = api_call(&server, "GET", "/api/stats", None, None);
    assert_eq!(st, 401);
    // Metrics tell who is present and talking: the admin token, and numbers, not names.
    let (st, _) = api_call(&server, "GET", "/metrics", None, None);
    assert_eq!(st, 401);
    let (st, metrics) = api_call(&server, "GET", "/metrics", None, T);
    assert_eq!(st, 200);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("viz_room_participants 1"), "{text}");
    assert!(text.contains("viz_room_participant_talking{id="), "{text}");
    assert!(!text.contains("Natalie"), "{text}");

    // Unknown endpoint.
    let (st, resp) = api_call(&server, "GET", "/api/nothing-here", None, T);
    assert_eq!(st, 404);
    assert!(error_of(&resp).contains("no such API endpoint"));

    // Kick, then the participant is gone.
    let (st, resp) = api_call(&server, "DELETE", &p(""), None, T);
    assert_eq!(st, 200, "{resp}");
    assert!(resp["message"].as_str().unwrap().contains("removed"), "{resp}");
    let (st, _) = api_call(&server, "DELETE", &p(""), None, T);
    assert_eq!(st, 404);
    let (st, _) = api_call(&server, "GET", &p(""), None, T);
    assert_eq!(st, 404);

    // Too many wrong tokens from one address: refused for a while, even the right one.
    for _ in 0..5 {
        api_call(&server, "GET", "/api/participants", None, Some("guess"));
    }
    let (st, resp) = api_call(&server, "GET", "/api/participants", None, T);
    assert_eq!(st, 429, "{resp}");
}
