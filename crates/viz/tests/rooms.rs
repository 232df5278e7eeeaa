//! End to end: `viz serve` with real `viz join`, `viz admin` and `viz loadtest`
//! processes on loopback.

use std::path::Path;
use std::time::Duration;

use viz_audio::{analysis, wav};

mod common;
use common::{Proc, s, viz};

const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

/// Starts a room server; returns it, its port and the join address.
/// The load test starts dozens of clients; the three-way call measures what each
/// participant hears. Side by side on two cores the first starves the second's clients
/// (once: a recording with nothing of one speaker in it), so they take turns.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn serve(config: &Path, extra: &[&str]) -> (Proc, u16, String) {
    let token = config.join("admin-token");
    std::fs::create_dir_all(config).unwrap();
    std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut args = vec![
        "serve",
        "--port",
        "0",
        "--http",
        "127.0.0.1:0",
        "--admin-token-file",
        s(&token),
        "--state-dir",
        s(config),
    ];
    args.extend_from_slice(extra);
    serve_with(config, &args)
}

fn serve_with(config: &Path, args: &[&str]) -> (Proc, u16, String) {
    let mut p = viz(config, args);
    let line = p.expect_line("on port", Duration::from_secs(10));
    let port: u16 = line
        .split("on port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let fp = line.rsplit(' ').next().unwrap().to_owned();
    (p, port, format!("viz://127.0.0.1:{port}#{fp}"))
}

fn admin(config: &Path, addr: &str, token_file: &Path, action: &[&str]) -> (bool, String) {
    let mut args = vec!["admin", addr, "--token-file", s(token_file)];
    args.extend_from_slice(action);
    let mut p = viz(config, &args);
    let (status, out) = p.finish(Duration::from_secs(15));
    (status.success(), out)
}

/// Fraction of the recording's energy near `hz`, after the first `skip_s` seconds.
fn tone_share(path: &Path, hz: f32, skip_s: usize) -> f32 {
    let x = wav::read_mono_48k(path).unwrap();
    assert!(x.len() > 48_000 * (skip_s + 1), "{} is only {} samples", path.display(), x.len());
    analysis::band_energy_fraction(&x[48_000 * skip_s..], 48_000, hz, 40.0)
}

#[test]
fn three_participants_each_hear_the_other_two_and_not_themselves() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (_server, _, addr) = serve(&dir.path().join("server"), &[]);
    let tones = [("ann", 440.0f32), ("ben", 660.0), ("cat", 880.0)];
    let mut clients: Vec<Proc> = tones
        .iter()
        .map(|(name, hz)| {
            let out = dir.path().join(format!("{name}.wav"));
            let input = format!("tone:{hz}");
            viz(
                &dir.path().join(name),
                &["join", &addr, "--name", name, "--input", &input, "--output", s(&out), "--duration", "7"],
            )
        })
        .collect();
    for c in &mut clients {
        c.expect_line("Joined room", Duration::from_secs(10));
    }
    // The status line lists who is in the room and who talks.
    let status = clients[0].expect_line("Room 'viz':", Duration::from_secs(10));
    for (name, _) in &tones {
        assert!(status.contains(name), "{status}");
    }
    assert!(status.contains("ann (you, talking)") && status.contains("ben (talking)"), "{status}");
    for c in &mut clients {
        let (st, out) = c.finish(Duration::from_secs(20));
        assert!(st.success(), "{out}");
    }
    for (name, own) in &tones {
        let path = dir.path().join(format!("{name}.wav"));
        let mine = tone_share(&path, *own, 2);
        assert!(mine < 0.01, "{name} hears their own {own} Hz: {mine}");
        for (other, hz) in &tones {
            if other != name {
                let share = tone_share(&path, *hz, 2);
                let levels: Vec<i32> = wav::read_mono_48k(&path)
                    .unwrap()
                    .chunks(24_000)
                    .map(|c| analysis::rms_dbfs(c).round() as i32)
                    .collect();
                assert!(
                    share > 0.3,
                    "{name} hears {other}'s {hz} Hz at only {share}; levels per half second: {levels:?}"
                );
            }
        }
    }
}

#[test]
fn a_password_room_admits_the_right_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let (_server, _, addr) = serve(&dir.path().join("server"), &["--password-file", s(&pw), "--test-source"]);
    let join = |args: &[&str]| {
        let mut full = vec!["join", &addr, "--listen-only", "--output", "null", "--duration", "2"];
        full.extend_from_slice(args);
        let mut p = viz(&dir.path().join("joiner"), &full);
        p.finish(Duration::from_secs(15))
    };
    let (st, out) = join(&[]);
    assert!(!st.success() && out.contains("this room needs a password"), "{out}");
    assert!(!out.contains("Joined room"), "{out}");
    let (st, out) = join(&["--password", "battery staple"]);
    assert!(!st.success() && out.contains("wrong password"), "{out}");
    assert!(!out.contains("Joined room"), "{out}");
    let (st, out) = join(&["--password-file", s(&pw)]);
    assert!(st.success(), "{out}");
    assert!(out.contains("Joined room") && out.contains("Test source (music)"), "{out}");
}

#[test]
fn settings_survive_kill_9_and_clients_reconnect_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    let (mut server, port, addr) = serve(&server_dir, &[]);
    let token = server_dir.join("admin-token");
    let bob_wav = dir.path().join("bob.wav");
    let mut alice = viz(
        &dir.path().join("alice"),
        &["join", &addr, "--name", "alice", "--input", "tone:500", "--output", "null", "--duration", "30"],
    );
    let mut bob = viz(
        &dir.path().join("bob"),
        &["join", &addr, "--name", "bob", "--listen-only", "--output", s(&bob_wav), "--duration", "30"],
    );
    alice.expect_line("Joined room", Duration::from_secs(10));
    bob.expect_line("Joined room", Duration::from_secs(10));

    let admin_dir = dir.path().join("admin");
    let bad = dir.path().join("bad-token");
    std::fs::write(&bad, "not-the-admin-token-at-all").unwrap();
    let (ok, out) = admin(&admin_dir, &addr, &bad, &["gain", "alice", "50"]);
    assert!(!ok && out.contains("bad admin token"), "{out}");
    let (ok, out) = admin(&admin_dir, &addr, &token, &["gain", "alice", "150"]);
    assert!(ok && out.contains("alice: gain 150 %"), "{out}");
    let (ok, out) = admin(&admin_dir, &addr, &token, &["rename", "alice", "Alicia"]);
    assert!(ok && out.contains("alice is now Alicia"), "{out}");
    bob.expect_line("alice is now called Alicia", Duration::from_secs(5));
    alice.expect_line("An admin renamed you to Alicia", Duration::from_secs(5));
    let (ok, out) = admin(&admin_dir, &addr, &token, &["gain", "nobody", "100"]);
    assert!(!ok && out.contains("nobody in the room matches"), "{out}");

    // Kill the server without a chance to save anything, and start it again.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let port_s = port.to_string();
    let restart = [
        "serve",
        "--port",
        &port_s,
        "--http",
        "127.0.0.1:0",
        "--admin-token-file",
        s(&token),
        "--state-dir",
        s(&server_dir),
    ];
    let (_server2, _, addr2) = serve_with(&server_dir, &restart);
    assert_eq!(addr2, addr, "same port and identity");
    alice.expect_line("Connection lost", Duration::from_secs(10));
    alice.expect_line("Reconnected to room", Duration::from_secs(15));
    bob.expect_line("Reconnected to room", Duration::from_secs(15));

    let (ok, out) = admin(&admin_dir, &addr, &token, &["list"]);
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("Alicia") || l.contains("alice")).collect();
    assert_eq!(rows.len(), 1, "one entry for alice after the restart:\n{out}");
    assert!(rows[0].contains("Alicia") && rows[0].contains("150%"), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains(" bob ")).count(), 1, "{out}");

    // Audio flows again after the reconnect: bob hears alice's tone at the end.
    std::thread::sleep(Duration::from_secs(2));
    let (ok, out) = admin(&admin_dir, &addr, &token, &["kick", "bob"]);
    assert!(ok, "{out}");
    let (_, out) = bob.finish(Duration::from_secs(10));
    assert!(out.contains("You were removed from the room by an admin"), "{out}");
    let heard = wav::read_mono_48k(&bob_wav).unwrap();
    let tail = &heard[heard.len().saturating_sub(48_000)..];
    let share = analysis::band_energy_fraction(tail, 48_000, 500.0, 40.0);
    assert!(share > 0.5 && analysis::rms(tail) > 0.05, "bob's last second: 500 Hz share {share}");
}

#[test]
fn echo_test_prints_the_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _, addr) = serve(&dir.path().join("server"), &[]);
    let mut p = viz(&dir.path().join("joiner"), &["join", &addr, "--echo-test"]);
    let (st, out) = p.finish(Duration::from_secs(20));
    assert!(st.success(), "{out}");
    let line = out.lines().find(|l| l.starts_with("Echo round trip:")).unwrap_or_else(|| panic!("{out}"));
    let ms: f64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!((5.0..300.0).contains(&ms), "{line}");
}

#[test]
fn loadtest_joins_every_client_and_measures_latency() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (_server, _, addr) = serve(&dir.path().join("server"), &[]);
    let mut p = viz(
        &dir.path().join("load"),
        &["loadtest", &addr, "--clients", "24", "--speakers", "3", "--ramp", "1", "--duration", "4", "--json"],
    );
    let (st, out) = p.finish(Duration::from_secs(40));
    assert!(st.success(), "{out}");
    let json = &out[out.find('{').unwrap()..=out.rfind('}').unwrap()];
    let r: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(r["joined"], 24, "{out}");
    assert_eq!(r["failed"], 0, "{out}");
    assert!(r["media_received"].as_u64().unwrap() > 1000, "{out}");
    // Measured for the whole --duration after the last join, and loss counted there.
    assert_eq!(r["window_s"], 4.0, "{out}");
    assert!(r["loss_to_clients_percent"].as_f64().unwrap() < 1.0, "{out}");
    let lat = r["latency_ms"].as_array().unwrap();
    assert!(!lat.is_empty(), "{out}");
    for l in lat {
        let ms = l.as_f64().unwrap();
        assert!((1.0..300.0).contains(&ms), "{out}");
    }
}
