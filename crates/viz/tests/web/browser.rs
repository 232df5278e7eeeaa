//! Real headless Chromium as a room participant and as the admin.

use std::time::Duration;

use serde_json::Value;
use viz_audio::{analysis, wav};

use super::chrome::{Chrome, decode_pcm16};
use super::{ADMIN_TOKEN, api_call, artifacts_dir, serve, speech_wav, tone_in, wait_participant};
use crate::common::viz;

/// Dumps the page's recordings: (input start frame, input), (output start, output).
async fn recordings(page: &Chrome) -> ((i64, Vec<f32>), (i64, Vec<f32>)) {
    let r = page.eval("return await window.vizTest.recordings();").await;
    let take = |v: &Value| {
        assert!(!v.is_null(), "the page recorded nothing: {r}");
        (v["start"].as_i64().unwrap(), decode_pcm16(v["pcm"].as_str().unwrap()))
    };
    let input = if r["input"].is_null() { (0, Vec::new()) } else { take(&r["input"]) };
    (input, take(&r["output"]))
}

/// The browser talks (a speech WAV as its microphone) and a native client records
/// it; then a native client sends a tone and the browser plays it. `codec` picks
/// WebCodecs or the WebAssembly fallback.
async fn browser_and_native_hear_each_other(codec: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (speech_path, speech) = speech_wav(dir.path());
    let server = serve(&dir.path().join("server"), &[]);
    let page = Chrome::start(Some(&speech_path)).await;
    let wasm = if codec == "wasm" { "&codec=wasm" } else { "" };
    page.goto(&format!("{}/?record=60{wasm}", server.web)).await;
    page.type_into("#name", "web-ann").await;
    page.click("#join").await;
    page.wait_for("return window.vizTest.state().state === 'connected';", Duration::from_secs(15), "joining").await;
    let state = page.eval("return window.vizTest.state();").await;
    let expected = if codec == "wasm" { "WebAssembly" } else { "WebCodecs" };
    assert_eq!((state["encoder"].as_str(), state["decoder"].as_str()), (Some(expected), Some(expected)), "{state}");
    let me = wait_participant(&server, "web-ann", Duration::from_secs(5));
    assert_eq!((me["kind"].as_str(), me["transport"].as_str()), (Some("browser"), Some("browser WebSocket")), "{me}");

    // Browser → native.
    let rec = dir.path().join("rec.wav");
    let mut recorder = viz(
        &dir.path().join("rec"),
        &["join", &server.join, "--name", "rec", "--listen-only", "--output", super::s(&rec), "--duration", "12"],
    );
    page.wait_for(
        "return window.vizTest.state().roster.some(e => e.name === 'rec' && !e.sends);",
        Duration::from_secs(10),
        "the native listener in the browser's roster",
    )
    .await;
    let (status, out) = recorder.finish(Duration::from_secs(30));
    assert!(status.success(), "{out}");
    let heard = wav::read_mono_48k(&rec).unwrap();
    let heard = &heard[heard.len().min(48_000 * 2)..];
    let d = analysis::find_delay(&speech, heard, 48_000).expect("the native recording is silent");
    let level = analysis::rms_dbfs(heard);
    println!(
        "[{codec}] browser → native: correlation {:.3}, level {level:.1} dBFS, gain {:.1} dB",
        d.correlation, d.gain_db
    );
    assert!(d.correlation > 0.5, "the native recording does not match the browser's speech: {d:?}");

    // Mix-minus: the browser must not have heard itself.
    let (_, (_, before)) = recordings(&page).await;
    let own = analysis::rms_dbfs(&before[before.len().min(48_000)..]);
    println!("[{codec}] browser's own speech in its output: {own:.1} dBFS");
    assert!(own < -55.0, "the browser heard its own voice ({own:.1} dBFS)");

    // Native → browser.
    let mut toner = viz(
        &dir.path().join("toner"),
        &["join", &server.join, "--name", "toner", "--input", "tone:1000", "--output", "null", "--duration", "6"],
    );
    let (status, out) = toner.finish(Duration::from_secs(30));
    assert!(status.success(), "{out}");
    let (_, (_, after)) = recordings(&page).await;
    let new = &after[before.len()..];
    // The loudest 3 s of what was played since then.
    let win = 48_000 * 3;
    assert!(new.len() > win, "only {} new samples played", new.len());
    let best = (0..=(new.len() - win) / 4800)
        .map(|i| &new[i * 4800..i * 4800 + win])
        .max_by(|a, b| analysis::rms(a).total_cmp(&analysis::rms(b)))
        .unwrap();
    let (share, level) = tone_in(best, 1000.0);
    println!("[{codec}] native → browser: 1 kHz share {share:.3}, level {level:.1} dBFS");
    assert!(share > 0.8 && level > -40.0, "the browser did not play the native tone: share {share}, {level} dBFS");
    let state = page.eval("return window.vizTest.state();").await;
    println!("[{codec}] page: {state}");
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_with_webcodecs_and_native_client_hear_each_other() {
    browser_and_native_hear_each_other("webcodecs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_with_wasm_opus_and_native_client_hear_each_other() {
    browser_and_native_hear_each_other("wasm").await;
}

/// The browser's echo test: what the microphone gave against what the speakers
/// played, both on the page's audio clock. Prints the round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_echo_test_measures_the_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (speech_path, _) = speech_wav(dir.path());
    let server = serve(&dir.path().join("server"), &[]);
    let page = Chrome::start(Some(&speech_path)).await;
    page.goto(&format!("{}/?record=30", server.web)).await;
    page.click("#echo").await;
    page.wait_for("return window.vizTest.state().state === 'connected';", Duration::from_secs(15), "the echo test")
        .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let ((in_start, input), (out_start, output)) = recordings(&page).await;
    // output[j] was played at frame out_start + j, input[i] captured at in_start + i:
    // an echo after R frames sits at j = i + R - offset. Windows of 2 s, skipping the
    // first 2 s (the jitter buffers settle), each give their own round trip.
    let offset = out_start - in_start;
    if let Ok(d) = std::env::var("VIZ_DEBUG_DIR") {
        wav::write_mono_48k(&std::path::Path::new(&d).join("echo-in.wav"), &input).unwrap();
        wav::write_mono_48k(&std::path::Path::new(&d).join("echo-out.wav"), &output).unwrap();
        println!("starts: in {in_start} out {out_start}");
    }
    const SKIP: i64 = 96_000;
    let (lo, hi) = (SKIP - offset, SKIP + 48_000 - offset);
    let windows = analysis::windowed_delays(&input[SKIP as usize..], &output, 96_000, lo, hi, 0.01);
    let mut rtts: Vec<(f64, f32)> = windows
        .iter()
        .map(|w| ((w.estimate.lag_samples + offset - SKIP) as f64 / 48.0, w.estimate.correlation))
        .collect();
    let playback = page.eval("return window.vizTest.state().playback;").await;
    println!("browser echo round trips per 2 s window (ms, correlation): {rtts:.1?}; playback buffer {playback}");
    rtts.retain(|(_, c)| *c > 0.5);
    assert!(rtts.len() >= 2, "no clear echo in the page's recordings");
    rtts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = rtts[rtts.len() / 2].0;
    println!("browser echo round trip: median {median:.1} ms over {} windows", rtts.len());
    assert!(median > 0.0 && median < 1000.0, "the echo is not where an echo can be: {median} ms");
    page.close().await;
}

/// The admin page changes a volume, mutes, renames and kicks through its controls;
/// the API and the native client see each change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_controls_a_native_participant() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--test-source"]);
    let mut nat = viz(
        &dir.path().join("nat"),
        &["join", &server.join, "--name", "nat", "--input", "tone:440", "--output", "null"],
    );
    let id = wait_participant(&server, "nat", Duration::from_secs(15))["id"].as_u64().unwrap();
    let row = format!("tr[data-id=\"{id}\"]");
    let get = || api_call(&server, "GET", &format!("/api/participants/{id}"), None, Some(ADMIN_TOKEN)).1;

    let page = Chrome::start(None).await;
    page.goto(&format!("{}/admin", server.web)).await;
    page.type_into("#token", ADMIN_TOKEN).await;
    page.click("#login-button").await;
    page.wait_for(&format!("return !!document.querySelector('{row}');"), Duration::from_secs(10), "nat's row").await;

    // Volume: ten steps of 5 % down with the keyboard on the slider.
    let slider = page.client.find(fantoccini::Locator::Css(&format!("{row} input.volume"))).await.unwrap();
    slider.send_keys(&"\u{E012}".repeat(10)).await.unwrap(); // ArrowLeft
    nat.expect_line("An admin set your volume to 50 %", Duration::from_secs(10));
    assert_eq!(get()["gain_percent"], 50);

    page.click(&format!("{row} button.mute")).await;
    nat.expect_line("An admin muted", Duration::from_secs(10));
    assert_eq!(get()["muted"], true);

    page.type_into(&format!("{row} input.rename-input"), "Natalie").await;
    page.click(&format!("{row} button.rename")).await;
    nat.expect_line("An admin renamed you to Natalie", Duration::from_secs(10));
    assert_eq!(get()["name"], "Natalie");

    // Let the graphs gather a few seconds, then keep a picture of the page.
    tokio::time::sleep(Duration::from_secs(4)).await;
    page.wait_for(
        &format!("return document.querySelector('{row}').innerText.includes('Unmute');"),
        Duration::from_secs(5),
        "the table to show the mute",
    )
    .await;
    let shot = artifacts_dir().join("admin-page.png");
    page.screenshot(&shot).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "the screenshot is suspiciously small");
    println!("admin page screenshot: {}", shot.display());

    page.click(&format!("{row} button.kick")).await;
    page.click(&format!("{row} button.kick")).await; // "Really kick?"
    nat.expect_line("You were removed from the room by an admin", Duration::from_secs(10));
    let (status, _) = api_call(&server, "GET", &format!("/api/participants/{id}"), None, Some(ADMIN_TOKEN));
    assert_eq!(status, 404);
    let stored = std::fs::read_to_string(server.dir.join("participants.json")).unwrap();
    assert!(stored.contains("Natalie") && stored.contains("\"gain_percent\": 50"), "{stored}");
    page.close().await;
}

/// Over HTTPS with a self-signed certificate: a listener is refused without the room
/// password, admitted with it, plays the room's test source, and comes back by itself
/// after its WebSocket drops (as one participant, not two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_listener_over_https_needs_the_password_and_reconnects_after_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "open sesame\n").unwrap();
    let mut server =
        serve(&server_dir, &["--test-source", "--tls-self-signed", "--password-file", super::s(&password)]);
    assert!(server.web.starts_with("https://"), "{}", server.web);
    let line = server.proc.expect_line("TLS certificate SHA-256:", Duration::from_secs(5));
    let printed = line.rsplit(' ').next().unwrap().to_owned();
    let pem = std::fs::read_to_string(server_dir.join("tls-cert.pem")).unwrap();
    assert_eq!(printed, super::pem_fingerprint(&pem), "the printed fingerprint is not the certificate's");

    let page = Chrome::start_insecure_tls().await;
    page.goto(&format!("{}/?record=60", server.web)).await;
    page.wait_for(
        "return !document.getElementById('password-row').hidden;",
        Duration::from_secs(5),
        "the password field",
    )
    .await;
    page.click("#listen").await;
    page.wait_for(
        "return document.getElementById('notice').textContent.includes('needs a password');",
        Duration::from_secs(10),
        "the refusal",
    )
    .await;
    page.type_into("#password", "wrong").await;
    page.click("#listen").await;
    page.wait_for(
        "return document.getElementById('notice').textContent.includes('wrong password');",
        Duration::from_secs(10),
        "the wrong-password refusal",
    )
    .await;
    page.type_into("#password", "open sesame").await;
    page.type_into("#name", "web-bob").await;
    page.click("#listen").await;
    page.wait_for("return window.vizTest.state().state === 'connected';", Duration::from_secs(10), "admission").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, (_, played)) = recordings(&page).await;
    let level = analysis::rms_dbfs(&played[played.len().saturating_sub(96_000)..]);
    println!("listener plays the test source at {level:.1} dBFS");
    assert!(level > -40.0, "the listener plays nothing ({level:.1} dBFS)");

    page.eval("window.vizTest.dropSocket(); return true;").await;
    page.wait_for(
        "return window.vizTest.state().state === 'reconnecting' || window.vizTest.state().state === 'connecting';",
        Duration::from_secs(5),
        "the page to notice the drop",
    )
    .await;
    page.wait_for("return window.vizTest.state().state === 'connected';", Duration::from_secs(15), "the reconnect")
        .await;
    // The API over HTTPS, from the page (the test's HTTP client speaks no TLS).
    let list = page
        .eval(&format!(
            "const r = await fetch('/api/participants', {{ headers: {{ Authorization: 'Bearer {ADMIN_TOKEN}' }} }}); \
             return await r.json();"
        ))
        .await;
    let browsers: Vec<&Value> = list.as_array().unwrap().iter().filter(|p| p["kind"] == "browser").collect();
    assert_eq!(browsers.len(), 1, "one browser participant after the reconnect: {list}");
    assert_eq!((browsers[0]["name"].as_str(), browsers[0]["sends"].as_bool()), (Some("web-bob"), Some(false)));
    page.close().await;
}
