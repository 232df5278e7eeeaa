//! The pages as people see them, in real headless Chromium: what an open room's join
//! page shows and hides, a listener's controls, the admin page on a phone, and a page
//! opened over plain HTTP from another machine. Screenshots go to
//! `target/test-artifacts/` for people to look at.

use std::time::Duration;

use serde_json::Value;

use super::browser::BROWSERS;
use super::chrome::Chrome;
use super::{ADMIN_TOKEN, artifacts_dir, serve, wait_participant};
use crate::common::viz;

/// Whether the element with `id` takes up no space (hidden, or display none).
fn is_gone(id: &str) -> String {
    format!("return getComputedStyle(document.getElementById('{id}')).display === 'none';")
}

async fn shot(page: &Chrome, name: &str) {
    let path = artifacts_dir().join(name);
    page.screenshot(&path).await;
    assert!(std::fs::metadata(&path).unwrap().len() > 5_000, "{name} is suspiciously small");
    println!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_and_admin_pages_show_what_applies_on_a_desktop_and_a_phone() {
    let _shared = BROWSERS.read().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--test-source"]);
    let _nat = viz(
        &dir.path().join("nat"),
        &["join", &server.join, "--name", "nat", "--input", "tone:440", "--output", "null"],
    );
    let nat = wait_participant(&server, "nat", Duration::from_secs(15))["id"].as_u64().unwrap();

    let page = Chrome::start(None).await;
    page.goto(&server.web).await;
    page.wait_for("return document.title.includes('·');", Duration::from_secs(5), "the room's name").await;
    // An open room asks for no password; localhost needs no HTTPS; the icon exists.
    assert_eq!(page.eval(&is_gone("password-row")).await, Value::Bool(true), "a password field in an open room");
    assert_eq!(page.eval(&is_gone("https-needed")).await, Value::Bool(true), "the HTTPS warning on localhost");
    assert_eq!(page.eval("return (await fetch('/favicon.ico')).status;").await, 200);
    let icon = page.eval("return document.querySelector('link[rel=icon]').href;").await;
    assert_eq!(page.eval(&format!("return (await fetch({icon})).headers.get('content-type');")).await, "image/svg+xml");

    // A listener has no microphone: no level meter and no Mute, but Leave.
    page.click("#listen").await;
    page.wait_for(
        "return window.vizTest.state().state === 'connected';",
        Duration::from_secs(15),
        "listening to the room",
    )
    .await;
    assert_eq!(page.eval(&is_gone("level-row")).await, Value::Bool(true), "a level meter for a listener");
    assert_eq!(page.eval(&is_gone("mute")).await, Value::Bool(true), "a Mute button for a listener");
    assert_eq!(page.eval(&is_gone("leave")).await, Value::Bool(false));
    // The meter's gradient spans the meter, not the fill, so a quiet level is green.
    let size = page.eval("return getComputedStyle(document.getElementById('level')).backgroundSize;").await;
    assert_eq!(size, "220px 100%");
    page.wait_for(
        "return document.querySelectorAll('#roster li').length >= 3;",
        Duration::from_secs(10),
        "the roster: nat, the test source and this page",
    )
    .await;
    shot(&page, "join-page-listening.png").await;

    // The admin page at a phone's width: every person's controls on screen.
    page.client.set_window_size(390, 844).await.unwrap();
    page.goto(&format!("{}/admin", server.web)).await;
    page.type_into("#token", ADMIN_TOKEN).await;
    page.click("#login-button").await;
    let row = format!("tr[data-id=\"{nat}\"]");
    page.wait_for(&format!("return !!document.querySelector('{row}');"), Duration::from_secs(10), "nat's row").await;
    let count = page.eval("return document.getElementById('count').textContent;").await;
    assert_eq!(count, "(2 people and the test source)", "nat and the listening page, and the test source");
    for control in ["input.volume", "button.mute", "button.kick", "input.rename-input"] {
        let fits = page
            .eval(&format!(
                "const r = document.querySelector('{row} {control}').getBoundingClientRect(); \
                 return [r.width > 0 && r.left >= 0 && r.right <= window.innerWidth, r.right, window.innerWidth];"
            ))
            .await;
        assert_eq!(fits[0], true, "{control} is off-screen on a phone: right edge, width {fits}");
    }
    shot(&page, "admin-page-phone.png").await;
    page.close().await;
}

/// Over plain HTTP from another machine the browser refuses the microphone and the
/// audio worklets: the page says so before anyone clicks, and the server said it at
/// start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_over_plain_http_from_another_machine_says_it_needs_https() {
    let _shared = BROWSERS.read().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("server");
    std::fs::create_dir_all(&state).unwrap();
    let mut server = viz(&state, &["serve", "--port", "0", "--http", "0.0.0.0:0", "--state-dir", super::s(&state)]);
    // The address other machines use: the join line's, with the web port.
    let join = server.expect_line("Join with:", Duration::from_secs(10));
    let host = join.split("viz://").nth(1).and_then(|r| r.split(':').next()).unwrap().to_owned();
    let ip: std::net::IpAddr = host.parse().unwrap_or_else(|_| panic!("no address in {join:?}"));
    assert!(!ip.is_loopback(), "{join}: this test needs a non-loopback address");
    let local = server.expect_line("Web page:", Duration::from_secs(5)).split_whitespace().nth(2).unwrap().to_owned();
    let port = local.rsplit(':').next().unwrap().to_owned();
    let web = format!("http://{ip}:{port}/");
    let warning = server.expect_line("need HTTPS", Duration::from_secs(5));
    assert!(warning.contains("--tls-self-signed"), "{warning}");

    let page = Chrome::start(None).await;
    page.goto(&web).await;
    assert_eq!(page.eval(&is_gone("https-needed")).await, Value::Bool(false), "no HTTPS warning at {web}");
    let text = page.eval("return document.getElementById('https-needed').innerText;").await;
    assert!(text.as_str().unwrap().contains("viz serve --tls-self-signed"), "{text}");
    assert_eq!(page.eval("return document.getElementById('join').disabled;").await, Value::Bool(true));
    assert_eq!(page.eval("return document.getElementById('listen').disabled;").await, Value::Bool(true));
    shot(&page, "join-page-needs-https.png").await;
    page.close().await;
}

/// Sets an input's value as a user would (and tells the page).
async fn set_value(page: &Chrome, css: &str, value: &str) {
    page.eval(&format!(
        "const el = document.querySelector('{css}'); el.value = {value:?}; \
         el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); return true;"
    ))
    .await;
}

/// Packets the page has sent so far.
async fn sent(page: &Chrome) -> u64 {
    page.eval("return window.vizTest.state().sent;").await.as_u64().unwrap()
}

/// The level (dBFS) of the last `seconds` the page played.
async fn played_level(page: &Chrome, seconds: usize) -> f32 {
    let r = page.eval("return await window.vizTest.recordings();").await;
    let out = super::chrome::decode_pcm16(r["output"]["pcm"].as_str().unwrap());
    assert!(out.len() > 48_000 * seconds, "the page played only {} samples", out.len());
    viz_audio::analysis::rms_dbfs(&out[out.len() - 48_000 * seconds..])
}

/// Issue 13 on the page: a participant picks a microphone, talks only while Space is
/// held (push to talk, with a short tail), turns what they hear down, and deafens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_picks_a_microphone_talks_with_push_to_talk_and_sets_the_volume() {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    const SPACE: char = '\u{E00D}';
    let _shared = BROWSERS.read().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--test-source"]);
    let page = Chrome::start(None).await;
    page.goto(&format!("{}/?record=40", server.web)).await;

    // Chromium's fake devices: more than one microphone, so the page offers a choice.
    page.wait_for(
        "return document.getElementById('input-device').options.length >= 2;",
        Duration::from_secs(5),
        "the microphone list",
    )
    .await;
    assert_eq!(page.eval(&is_gone("input-row")).await, Value::Bool(false));
    let second = page.eval("return document.getElementById('input-device').options[1].value;").await;
    let second = second.as_str().unwrap().to_owned();
    set_value(&page, "#input-device", &second).await;
    page.click("#join").await;
    page.wait_for("return window.vizTest.state().state === 'connected';", Duration::from_secs(15), "joining").await;
    let mic = page.eval("return window.vizTest.state().microphone;").await;
    assert_eq!(mic.as_str(), Some(second.as_str()), "the page opened another microphone than the one chosen");

    // Push to talk: nothing is sent until Space is held, and shortly after it is let go.
    page.click("#ptt").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sent(&page).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent(&page).await, before, "packets were sent with push to talk and no key held");
    page.client
        .perform_actions(KeyActions::new("keyboard".into()).then(KeyAction::Down { value: SPACE }))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = sent(&page).await - before;
    assert!(held >= 30, "only {held} packets in a second with Space held");
    assert!(
        page.eval("return document.getElementById('ptt-state').textContent;")
            .await
            .as_str()
            .unwrap()
            .contains("Talking")
    );
    page.client.perform_actions(KeyActions::new("keyboard".into()).then(KeyAction::Up { value: SPACE })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // past the 250 ms tail
    let after_release = sent(&page).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent(&page).await, after_release, "packets were sent after Space was let go");

    // Volume: what the page plays of the test source, at 100 % and at 25 % (-12 dB).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let full = played_level(&page, 2).await;
    set_value(&page, "#volume", "25").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quarter = played_level(&page, 2).await;
    println!(
        "push to talk: {held} packets a second held, none without; volume 100 % {full:.1} dBFS, 25 % {quarter:.1} dBFS"
    );
    assert!((full - quarter - 12.0).abs() < 3.0, "100 % played {full:.1} dBFS and 25 % {quarter:.1} dBFS");

    // Deafen: nothing is played, and the room sees this page muted; then back.
    page.click("#deafen").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let deafened = played_level(&page, 1).await;
    let me = page
        .eval("const me = window.vizTest.state().roster.find((e) => e.you); return [me.self_muted, me.deafened];")
        .await;
    assert_eq!(me, serde_json::json!([true, true]), "the room does not show the page deafened (and muted)");
    page.click("#deafen").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = played_level(&page, 1).await;
    println!("deafened {deafened:.1} dBFS, then {again:.1} dBFS");
    assert!(deafened < -80.0, "deafened, the page still played {deafened:.1} dBFS");
    assert!((again - quarter).abs() < 3.0, "after deafening the page played {again:.1} dBFS, before {quarter:.1}");
    shot(&page, "join-page-talking.png").await;
    page.close().await;
}

/// The level (dBFS) of one tone in the last `seconds` the page played.
async fn played_tone(page: &Chrome, seconds: usize, hz: f32) -> f32 {
    let r = page.eval("return await window.vizTest.recordings();").await;
    let out = super::chrome::decode_pcm16(r["output"]["pcm"].as_str().unwrap());
    assert!(out.len() > 48_000 * seconds, "the page played only {} samples", out.len());
    let x = &out[out.len() - 48_000 * seconds..];
    let share = viz_audio::analysis::band_energy_fraction(x, 48_000, hz, 40.0);
    viz_audio::analysis::rms_dbfs(x) + 10.0 * share.max(1e-9).log10()
}

/// Issue 13 on the page: a listener sees each person's level and turns one person down
/// or off for itself only, remembered across a reload; the speakers can be chosen where
/// the browser allows it. Two native senders play 440 Hz (bob) and 1100 Hz (dan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_sets_each_persons_volume_and_sees_their_levels() {
    let _shared = BROWSERS.read().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    let sender = |name: &str, tone: &str| {
        let mut p = viz(
            &dir.path().join(name),
            &["join", &server.join, "--name", name, "--input", tone, "--output", "null", "--duration", "60"],
        );
        p.expect_line("Joined room", Duration::from_secs(10));
        p
    };
    let _bob = sender("bob", "tone:440");
    let _dan = sender("dan", "tone:1100");
    let page = Chrome::start(None).await;
    page.goto(&format!("{}/?record=40", server.web)).await;
    page.click("#listen").await;
    page.wait_for("return window.vizTest.state().state === 'connected';", Duration::from_secs(15), "listening").await;
    let slider = |name: &str| {
        format!(
            "[...document.querySelectorAll('#roster li')].find((li) => li.textContent.includes('{name}'))?.querySelector('.person-volume')"
        )
    };
    page.wait_for(&format!("return !!({});", slider("dan")), Duration::from_secs(5), "dan's volume slider").await;
    // Others' levels: both meters move while they talk.
    page.wait_for(
        "return [...document.querySelectorAll('#roster .person-level .meter-fill')].filter((f) => parseFloat(f.style.width) > 20).length === 2;",
        Duration::from_secs(5),
        "both level meters",
    )
    .await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let gap = |bob: f32, dan: f32| bob - dan;
    let both = gap(played_tone(&page, 2, 440.0).await, played_tone(&page, 2, 1100.0).await);
    let set = |v: &str| {
        format!("const el = {}; el.value = '{v}'; el.dispatchEvent(new Event('input')); return true;", slider("bob"))
    };
    page.eval(&set("50")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let half = gap(played_tone(&page, 2, 440.0).await, played_tone(&page, 2, 1100.0).await);
    page.eval(&set("0")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let off = gap(played_tone(&page, 2, 440.0).await, played_tone(&page, 2, 1100.0).await);
    println!("bob - dan on the page: {both:.1} dB at 100 %, {half:.1} dB at 50 %, {off:.1} dB at 0 %");
    assert!(both.abs() < 3.0, "at 100 % both are played alike: {both:.1} dB");
    assert!((half - both + 6.0).abs() < 2.0, "at 50 %: {half:.1} dB");
    assert!(off < -30.0, "at 0 %, bob is still played: {off:.1} dB");
    shot(&page, "join-page-person-volumes.png").await;

    // Remembered: after a reload the slider is where it was, and bob stays silent.
    page.goto(&format!("{}/?record=40", server.web)).await;
    page.click("#listen").await;
    page.wait_for(&format!("return !!({});", slider("bob")), Duration::from_secs(15), "bob's slider again").await;
    assert_eq!(page.eval(&format!("return {}.value;", slider("bob"))).await, Value::String("0".into()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = gap(played_tone(&page, 2, 440.0).await, played_tone(&page, 2, 1100.0).await);
    println!("after a reload: {again:.1} dB");
    assert!(again < -30.0, "after a reload bob is played again: {again:.1} dB");

    // Speakers: offered when the browser has more than one and lets a page choose.
    let outputs = page
        .eval(
            "return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audiooutput').length;",
        )
        .await;
    let hidden = page.eval(&is_gone("output-row")).await;
    println!("audio outputs Chromium lists: {outputs}; speaker choice hidden: {hidden}");
    assert_eq!(hidden, Value::Bool(outputs.as_u64().unwrap_or(0) < 2));
    if hidden == Value::Bool(false) {
        let second = page.eval("return document.getElementById('output-device').options[1].value;").await;
        let second = second.as_str().unwrap().to_owned();
        set_value(&page, "#output-device", &second).await;
        page.wait_for(
            &format!("return window.vizTest.state().speakers === {second:?};"),
            Duration::from_secs(5),
            "the page playing on the chosen speakers",
        )
        .await;
    }
    page.close().await;
}
