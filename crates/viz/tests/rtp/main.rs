//! Plain RTP in and out of a room, and its recordings, with real peers: ffmpeg and
//! GStreamer send speech in, ffmpeg plays the forward through its SDP, opusinfo and
//! ffprobe check the recordings (also after SIGKILL), and malformed datagrams are
//! thrown at the port.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use viz_audio::{analysis, wav};

#[path = "../common/mod.rs"]
mod common;

use common::room::{
    ADMIN_TOKEN, Server, api_call, free_udp_port, serve, speech_match, speech_wav, tone_in, wait_participant,
};
use common::{s, viz};

const T: Option<&str> = Some(ADMIN_TOKEN);

fn rtp_state(server: &Server) -> Value {
    let (st, v) = api_call(server, "GET", "/api/rtp", None, T);
    assert_eq!(st, 200, "{v}");
    v
}

fn counter(server: &Server, name: &str) -> u64 {
    let v = rtp_state(server);
    v["input"]["counters"][name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {v}"))
}

/// Runs a tool that must exist (CI installs it); returns its status and output.
fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed for the RTP tests ({e}); see .ci/run"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A native listener recording the room for `seconds`.
fn record(server: &Server, dir: &Path, name: &str, seconds: u32) -> common::Proc {
    let wav = dir.join(format!("{name}.wav"));
    let secs = seconds.to_string();
    viz(
        &dir.join(name),
        &["join", &server.join, "--name", name, "--listen-only", "--output", s(&wav), "--duration", &secs],
    )
}

fn recorded(dir: &Path, name: &str, rec: &mut common::Proc) -> Vec<f32> {
    let (st, out) = rec.finish(Duration::from_secs(40));
    assert!(st.success(), "{out}");
    wav::read_mono_48k(&dir.join(format!("{name}.wav"))).unwrap()
}

/// A standard tool sends the speech WAV as RTP/Opus into the room; a native client's
/// recording must be that speech.
fn standard_sender_is_heard(sender: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (speech_path, speech) = speech_wav(dir.path());
    let ssrc = "305419896"; // 0x12345678
    let server = serve(&dir.path().join("server"), &["--rtp-port", "0", "--rtp-allow", "0x12345678@127.0.0.1"]);
    let port = server.rtp_port.unwrap().to_string();
    let mut rec = record(&server, dir.path(), "rec", 10);
    std::thread::sleep(Duration::from_secs(2));
    let target = format!("rtp://127.0.0.1:{port}");
    let (ok, out) = match sender {
        "ffmpeg" => tool(
            "ffmpeg",
            &[
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-i",
                s(&speech_path),
                "-c:a",
                "libopus",
                "-b:a",
                "48k",
                "-payload_type",
                "111",
                "-ssrc",
                ssrc,
                "-f",
                "rtp",
                &target,
            ],
        ),
        _ => tool(
            "gst-launch-1.0",
            &[
                "-q",
                "filesrc",
                &format!("location={}", s(&speech_path)),
                "!",
                "wavparse",
                "!",
                "audioconvert",
                "!",
                "audioresample",
                "!",
                "opusenc",
                "bitrate=48000",
                "!",
                "rtpopuspay",
                "pt=111",
                &format!("ssrc={ssrc}"),
                "!",
                "udpsink",
                "host=127.0.0.1",
                &format!("port={port}"),
            ],
        ),
    };
    assert!(ok, "{sender} failed: {out}");
    let heard = recorded(dir.path(), "rec", &mut rec);
    let c = speech_match(&speech, &heard);
    let level = analysis::rms_dbfs(&heard);
    assert!(c.len() >= 6, "only {} voiced half seconds in the recording ({level:.1} dBFS)", c.len());
    let median = c[c.len() / 2];
    println!(
        "[{sender}] RTP -> room -> native: median correlation {median:.3} over {} voiced seconds, {level:.1} dBFS",
        c.len()
    );
    assert!(median > 0.6, "the recording does not match {sender}'s speech: {c:?}");
    let v = rtp_state(&server);
    let sender_row = &v["senders"][0];
    assert_eq!(
        (sender_row["ssrc"].as_u64(), sender_row["state"].as_str()),
        (Some(0x12345678), Some("accepted")),
        "{v}"
    );
    assert!(sender_row["packets"].as_u64().unwrap() > 200, "{v}");
    assert_eq!(v["input"]["counters"]["wrong_payload_type"], 0, "{v}");
}

#[test]
fn ffmpeg_sends_speech_into_a_room() {
    standard_sender_is_heard("ffmpeg");
}

#[test]
fn gstreamer_sends_speech_into_a_room() {
    standard_sender_is_heard("gstreamer");
}

/// `viz send --rtp` with a tone: pending (not heard), then accepted (heard), then an
/// impostor with the same SSRC from another port (not heard).
#[test]
fn unknown_ssrcs_wait_for_an_admin_and_accepted_ones_are_held_to_their_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--rtp-port", "0"]);
    let target = format!("127.0.0.1:{}", server.rtp_port.unwrap());
    let send = |name: &str, tone: &str, secs: &str| {
        viz(
            &dir.path().join(name),
            &["send", &target, "--rtp", "--ssrc", "0xabc", "--name", name, "--input", tone, "--duration", secs],
        )
    };
    let _legit = send("legit", "tone:700", "30");
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&server, "pending") < 50 {
        assert!(Instant::now() < deadline, "the sender never showed up as pending: {}", rtp_state(&server));
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = rtp_state(&server);
    assert_eq!(v["senders"][0]["state"], "pending", "{v}");
    assert!(v["senders"][0]["address"].as_str().unwrap().starts_with("127.0.0.1:"), "{v}");
    let (_, people) = api_call(&server, "GET", "/api/participants", None, T);
    assert_eq!(people.as_array().unwrap().len(), 0, "a pending sender is no participant: {people}");
    let mut rec = record(&server, dir.path(), "before", 3);
    let before = recorded(dir.path(), "before", &mut rec);
    let level = analysis::rms_dbfs(&before);
    println!("pending sender: the room plays {level:.1} dBFS");
    assert!(level < -60.0, "a pending sender was heard ({level:.1} dBFS)");

    // Accepted through the API: from the address it was seen at.
    let (st, row) = api_call(&server, "PUT", "/api/rtp/senders/0xabc", Some(r#"{"name": "Tone PC"}"#), T);
    assert_eq!(st, 200, "{row}");
    assert_eq!(row["state"], "accepted");
    assert_eq!(row["allowed_from"], v["senders"][0]["address"], "{row}");
    let me = wait_participant(&server, "Tone PC", Duration::from_secs(5));
    assert_eq!((me["kind"].as_str(), me["transport"].as_str()), (Some("RTP"), Some("RTP/UDP")), "{me}");

    // The same SSRC from another port: refused, counted, not heard.
    let _impostor = send("impostor", "tone:1500", "30");
    let mut rec = record(&server, dir.path(), "after", 5);
    let after = recorded(dir.path(), "after", &mut rec);
    let tail = &after[after.len() / 3..];
    let (share_700, level) = tone_in(tail, 700.0);
    let (share_1500, _) = tone_in(tail, 1500.0);
    println!(
        "accepted sender: 700 Hz share {share_700:.3} at {level:.1} dBFS; impostor's 1500 Hz share {share_1500:.4}"
    );
    assert!(share_700 > 0.8 && level > -40.0, "the accepted sender is not heard: {share_700} {level}");
    assert!(share_1500 < 0.01, "the impostor was heard: {share_1500}");
    let v = rtp_state(&server);
    let row = &v["senders"][0];
    assert!(row["wrong_address_packets"].as_u64().unwrap() > 20, "{v}");
    assert_ne!(row["last_wrong_address"], row["address"], "{v}");

    // Revoked: no longer a participant, pending again.
    let (st, msg) = api_call(&server, "DELETE", "/api/rtp/senders/0xabc", None, T);
    assert_eq!(st, 200, "{msg}");
    let (_, people) = api_call(&server, "GET", "/api/participants", None, T);
    assert!(people.as_array().unwrap().iter().all(|p| p["kind"] != "RTP"), "{people}");
    assert_eq!(rtp_state(&server)["senders"][0]["state"], "pending");
}

/// The room mix goes out as RTP; ffmpeg plays it from the SDP file and what it decodes
/// is what an encrypted `viz send` said.
#[test]
fn ffmpeg_plays_the_rtp_forward_through_its_sdp() {
    let dir = tempfile::tempdir().unwrap();
    let (speech_path, speech) = speech_wav(dir.path());
    let port = free_udp_port();
    let target = format!("127.0.0.1:{port}");
    let mut server = serve(&dir.path().join("server"), &["--rtp-forward", &target]);
    let line = server.proc.expect_line("RTP forward:", Duration::from_secs(5));
    let sdp_path = line.split("SDP: ").nth(1).unwrap().trim_end_matches(')').to_owned();
    let sdp = std::fs::read_to_string(&sdp_path).unwrap();
    assert!(sdp.contains(&format!("m=audio {port} RTP/AVP 111")), "{sdp}");
    let played = dir.path().join("played.wav");
    #[rustfmt::skip]
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner", "-nostats", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp", "-i", &sdp_path,
            // 8 s of audio; gaps (nobody talking) filled with silence by timestamp.
            "-t", "8", "-af", "aresample=async=1", "-ar", "48000", "-ac", "1", "-y", s(&played),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("ffmpeg.log")).unwrap())
        .spawn()
        .expect("ffmpeg is needed for the RTP tests");
    std::thread::sleep(Duration::from_millis(1500));
    // The speech, looped for longer than ffmpeg records: ffmpeg ends by itself after
    // 8 s of audio (the stream pauses when nobody talks, and it would wait forever).
    let mut sender = viz(
        &dir.path().join("sender"),
        &["send", &server.join, "--name", "talker", "--input", s(&speech_path), "--loop", "--duration", "15"],
    );
    let deadline = Instant::now() + Duration::from_secs(25);
    let status = loop {
        if let Some(st) = ffmpeg.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "ffmpeg did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (st, out) = sender.finish(Duration::from_secs(30));
    assert!(st.success(), "viz send: {out}");
    let log = std::fs::read_to_string(dir.path().join("ffmpeg.log")).unwrap_or_default();
    assert!(status.success(), "ffmpeg failed to play the forward: {log}");
    let heard = wav::read_mono_48k(&played).unwrap_or_else(|e| panic!("{e}; ffmpeg said: {log}"));
    let c = speech_match(&speech, &heard);
    assert!(c.len() >= 6, "only {} voiced half seconds played ({:.1} dBFS)", c.len(), analysis::rms_dbfs(&heard));
    let median = c[c.len() / 2];
    println!(
        "native -> room -> RTP forward -> ffmpeg: median correlation {median:.3} over {} voiced seconds {c:?}",
        c.len()
    );
    assert!(median > 0.6, "ffmpeg did not play the speech: {c:?}");

    // The API: the forward is listed, one of a participant is added, its SDP served,
    // and removed.
    let (st, list) = api_call(&server, "GET", "/api/rtp/forwards", None, T);
    assert_eq!(st, 200);
    assert_eq!(list[0]["target"], target.as_str(), "{list}");
    assert!(list[0]["packets"].as_u64().unwrap() > 100, "{list}");
    let (st, e) =
        api_call(&server, "POST", "/api/rtp/forwards", Some(r#"{"target": "127.0.0.1:9", "source": 4242}"#), T);
    assert_eq!(st, 404, "a forward of nobody: {e}");
    let (st, added) =
        api_call(&server, "POST", "/api/rtp/forwards", Some(r#"{"target": "localhost:9", "payload_type": 100}"#), T);
    assert_eq!(st, 201, "{added}");
    let id = added["id"].as_u64().unwrap();
    let (st, sdp) = api_call(&server, "GET", &format!("/api/rtp/forwards/{id}/sdp"), None, T);
    assert_eq!(st, 200);
    assert!(sdp.as_str().unwrap().contains("m=audio 9 RTP/AVP 100"), "{sdp}");
    let (st, _) = api_call(&server, "DELETE", &format!("/api/rtp/forwards/{id}"), None, T);
    assert_eq!(st, 200);
    let (st, _) = api_call(&server, "DELETE", &format!("/api/rtp/forwards/{id}"), None, T);
    assert_eq!(st, 404);
    for (body, status) in [
        (r#"{"target": "nowhere"}"#, 422),
        (r#"{"target": "127.0.0.1:9", "payload_type": 300}"#, 422),
        (r#"{"target": "127.0.0.1:9", "source": "everyone"}"#, 422),
        (r#"{"target": 5}"#, 422),
        (r#"{"target": "127.0.0.1:9""#, 400),
    ] {
        let (st, e) = api_call(&server, "POST", "/api/rtp/forwards", Some(body), T);
        assert_eq!(st, status, "{body}: {e}");
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{body}: {e}");
    }
}

/// `opusinfo` must pass a recording with no warnings but, for a file of a killed
/// server, the missing end of stream.
fn opusinfo_ok(path: &Path, killed: bool) -> String {
    let (ok, out) = tool("opusinfo", &[s(path)]);
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("WARNING") || l.contains("ERROR"))
        .filter(|l| !(killed && l.contains("EOS not set")))
        .collect();
    assert!(warnings.is_empty(), "{}: {out}", path.display());
    assert!(ok || killed, "{}: {out}", path.display());
    out
}

fn ffprobe_seconds(path: &Path) -> f64 {
    let (ok, out) = tool("ffprobe", &["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", s(path)]);
    assert!(ok, "ffprobe rejects {}: {out}", path.display());
    out.trim().parse().unwrap_or_else(|_| panic!("ffprobe said {out:?}"))
}

#[test]
fn recordings_play_in_standard_tools_even_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    for (round, killed) in [(1, true), (2, false)] {
        let rec_dir = dir.path().join(format!("rec{round}"));
        let mut server = serve(&dir.path().join(format!("server{round}")), &["--record", s(&rec_dir), "--record-each"]);
        let mut sender = viz(
            &dir.path().join(format!("sender{round}")),
            &["send", &server.join, "--name", "Ann B.", "--input", "tone:440", "--duration", "8"],
        );
        wait_participant(&server, "Ann B.", Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(4));
        let (st, list) = api_call(&server, "GET", "/api/recordings", None, T);
        assert_eq!(st, 200);
        assert_eq!(list.as_array().unwrap().len(), 2, "the mix and Ann: {list}");
        if killed {
            server.proc.child.kill().unwrap();
        } else {
            // SIGTERM: a clean shutdown closes every stream.
            let ok = Command::new("kill").arg(server.proc.child.id().to_string()).status().unwrap().success();
            assert!(ok);
        }
        server.proc.child.wait().unwrap();
        let _ = sender.child.kill();
        let mut files: Vec<_> = std::fs::read_dir(&rec_dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(files.len(), 2, "{names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("viz-Ann_B-100-")) && names.iter().any(|n| n.starts_with("viz-mix-")),
            "{names:?}"
        );
        for f in &files {
            let info = opusinfo_ok(f, killed);
            assert!(info.contains("ROOM=viz"), "{info}");
            let seconds = ffprobe_seconds(f);
            println!("{} ({}): {seconds:.2} s", f.display(), if killed { "SIGKILL" } else { "SIGTERM" });
            assert!((2.5..10.0).contains(&seconds), "{}: {seconds} s", f.display());
            // What the file plays is the tone.
            let decoded = dir.path().join("decoded.wav");
            let (ok, out) = tool("ffmpeg", &["-v", "error", "-y", "-i", s(f), "-ar", "48000", "-ac", "1", s(&decoded)]);
            assert!(ok, "{out}");
            let pcm = wav::read_mono_48k(&decoded).unwrap();
            let (share, level) = tone_in(&pcm[pcm.len() / 4..], 440.0);
            assert!(share > 0.8 && level > -30.0, "{}: 440 Hz share {share}, {level} dBFS", f.display());
        }
    }
}

fn rtp_packet(first: u8, pt: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![first, pt, 0, 1, 0, 0, 3, 0xc0, 0, 0, 0x0a, 0xbc];
    p.extend_from_slice(rest);
    p
}

#[test]
fn malformed_rtp_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--rtp-port", "0", "--rtp-open"]);
    let port = server.rtp_port.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    let opus = [0xf8u8, 0xff, 0xfe];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad_version", rtp_packet(0x40, 111, &opus)),
        ("csrc_past_end", rtp_packet(0x8f, 111, &opus)),
        ("extension_past_end", rtp_packet(0x90, 111, &[0xbe, 0xde, 0x00, 0x09, 1, 2, 3, 4])),
        ("bad_padding", rtp_packet(0xa0, 111, &[0xf8, 0xff, 0x09])),
        ("wrong_payload_type", rtp_packet(0x80, 96, &opus)),
        ("not_opus", rtp_packet(0x80, 111, &[])),
        ("too_short", vec![0x80, 111, 0, 1]),
    ];
    for (_, d) in &cases {
        sock.send_to(d, &to).unwrap();
    }
    // A valid packet with CSRCs, an extension and padding, cut at every length.
    let mut full = rtp_packet(0x80 | 0x20 | 0x10 | 1, 111, &[0, 0, 0, 7, 0xbe, 0xde, 0, 1, 9, 9, 9, 9]);
    full.extend_from_slice(&[0xf8, 0xff, 0xfe, 0, 2]);
    for len in 0..full.len() {
        sock.send_to(&full[..len], &to).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    // RTCP that is not RTCP, on both ports.
    sock.send_to(&[0x80, 200, 0, 9, 1, 2], &to).unwrap();
    sock.send_to(&[0x81, 201, 0, 1, 0, 0, 0, 1], format!("127.0.0.1:{}", port + 1)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let v = rtp_state(&server);
    let c = &v["input"]["counters"];
    println!("counters after {} malformed datagrams: {c}", cases.len() + full.len() + 2);
    for (name, _) in &cases {
        assert!(c[name].as_u64().unwrap() >= 1, "{name} not counted: {c}");
    }
    assert!(c["rtcp_malformed"].as_u64().unwrap() >= 2, "{c}");
    assert_eq!(c["mixed"], 0, "nothing malformed reaches the mixer: {c}");
    // Still serving: a real sender is mixed after all that. Then it restarts (a new
    // socket, new sequence numbers and timestamps, the same SSRC): heard again, and
    // the jitter buffer starts over rather than waiting for the old timeline.
    let send = |name: &str, tone: &str| {
        viz(&dir.path().join(name), &["send", &to, "--rtp", "--ssrc", "77", "--input", tone, "--duration", "6"])
    };
    let mut first = send("s1", "tone:600");
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&server, "mixed") < 20 {
        assert!(Instant::now() < deadline, "no RTP mixed after the garbage: {}", rtp_state(&server));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Killed: no BYE, so the room sees the same SSRC jump to a new sequence.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let _second = send("s2", "tone:900");
    let mut rec = record(&server, dir.path(), "restarted", 4);
    let heard = recorded(dir.path(), "restarted", &mut rec);
    let (share, level) = tone_in(&heard[heard.len() / 2..], 900.0);
    println!("after a restart with a new port and sequence: 900 Hz share {share:.3} at {level:.1} dBFS");
    assert!(share > 0.8 && level > -40.0, "the restarted sender is not heard: {share} {level}");
    let v = rtp_state(&server);
    assert_eq!(v["input"]["counters"]["wrong_address"], 0, "under --rtp-open a new port of the host is fine: {v}");
    assert_eq!(v["senders"].as_array().unwrap().len(), 1, "one sender, not two: {v}");
}

#[test]
fn rtp_load_test_reports_the_servers_mix_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--rtp-port", "0", "--rtp-open"]);
    let target = format!("127.0.0.1:{}", server.rtp_port.unwrap());
    let metrics = format!("{}/metrics", server.web);
    let token = server.dir.join("admin-token");
    let pid = server.proc.child.id().to_string();
    let mut load = viz(
        &dir.path().join("load"),
        &[
            "loadtest",
            &server.join,
            "--rtp",
            &target,
            "--clients",
            "8",
            "--speakers",
            "3",
            "--ramp",
            "1",
            "--duration",
            "11",
            "--metrics",
            &metrics,
            "--metrics-token-file",
            token.to_str().unwrap(),
            "--server-pid",
            &pid,
            "--json",
        ],
    );
    let (st, out) = load.finish(Duration::from_secs(60));
    assert!(st.success(), "{out}");
    let json = &out[out.find('{').unwrap()..=out.rfind('}').unwrap()];
    let r: Value = serde_json::from_str(json).unwrap();
    assert_eq!((r["joined"].as_u64(), r["failed"].as_u64()), (Some(9), Some(0)), "{out}");
    let f = &r["server"];
    assert!(!f["windows"].as_array().unwrap().is_empty(), "{out}");
    assert!(f["participants_max"].as_f64().unwrap() >= 9.0, "8 senders and the listener: {out}");
    assert!(f["mix_mean_ms"].as_f64().unwrap() > 0.0 && f["cpu_percent"].as_f64().unwrap() > 0.0, "{out}");
    // The whole tick (mix, encrypt, send) is at least the mixer's part of it.
    assert!(f["tick_mean_ms"].as_f64().unwrap() >= f["mix_mean_ms"].as_f64().unwrap() * 0.9, "{out}");
    // Senders joined when the room listed them (polled every 250 ms), not when they sent.
    let join_ms = r["join_ms_median"].as_f64().unwrap();
    assert!(join_ms > 0.0 && join_ms < 5000.0, "{out}");
    // Every RTP packet sent reached the room's port (loopback), as its counters show.
    assert!(f["rtp_in"].as_u64().unwrap() > 0, "{out}");
    assert!(r["loss_to_server_percent"].as_f64().unwrap() < 1.0, "{out}");
    assert!(f["kernel_drops"].is_u64(), "{out}");
    assert!(f["datagrams_in_per_s"].as_f64().is_some(), "{out}");
    assert!(r["media_received"].as_u64().unwrap() > 300, "the listener heard the mix: {out}");
}
