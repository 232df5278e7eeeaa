//! End to end: `viz host` and `viz join` as real processes on loopback, with WAV input
//! and output, checking what was heard against what was said.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use viz_audio::{analysis, signals, wav};

mod common;
use common::{Proc, s, viz};

/// Starts a host on a free port; returns it and the port.
fn host(config: &Path, extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["host", "--port", "0"];
    args.extend_from_slice(extra);
    let mut p = viz(config, &args);
    let line = p.expect_line("Hosting on port", Duration::from_secs(10));
    let port =
        line.split_whitespace().nth(3).and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("no port in {line:?}"));
    (p, port)
}

fn write_speech(path: &Path, seed: u64, seconds: usize) -> Vec<f32> {
    let s = signals::speech_like(seed, 48_000 * seconds);
    wav::write_mono_48k(path, &s).unwrap();
    s
}

/// Checks that `heard` contains the first `spoke_secs` of `said`: one clear delay,
/// similar waveform and level in every second of speech.
fn assert_heard(said: &[f32], spoke_secs: usize, heard_path: &Path, what: &str) {
    let heard = wav::read_mono_48k(heard_path).unwrap();
    assert!(heard.len() > 48_000 * 2, "{what}: recording is only {} samples", heard.len());
    // The two recordings start a few milliseconds apart (each side starts when it is
    // greeted), so the lag is latency plus a small offset either way. The last second
    // is left out: the call ends somewhere in it.
    let spoken = said.len().min(heard.len()).min(48_000 * (spoke_secs - 1));
    let windows = analysis::windowed_delays(&said[..spoken], &heard, 48_000, -4_800, 24_000, 0.02);
    assert!(windows.len() >= 2, "{what}: no speech found in the recording");
    let mut corr: Vec<f32> = windows.iter().map(|w| w.estimate.correlation).collect();
    corr.sort_by(f32::total_cmp);
    let median = corr[corr.len() / 2];
    assert!(median > 0.6, "{what}: waveform correlation {median} (windows {corr:?})");
    for w in &windows {
        let ms = w.estimate.lag_ms(48_000);
        assert!((-50.0..300.0).contains(&ms), "{what}: delay {ms} ms at {} s", w.start / 48_000);
        assert!(w.estimate.gain_db.abs() < 6.0, "{what}: level off by {} dB", w.estimate.gain_db);
    }
}

#[test]
fn host_and_join_hear_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (a_in, b_in) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let (a_out, b_out) = (dir.path().join("a_heard.wav"), dir.path().join("b_heard.wav"));
    let a_said = write_speech(&a_in, 21, 8);
    let b_said = write_speech(&b_in, 22, 8);
    let (mut h, port) = host(
        &dir.path().join("h"),
        &["--input", s(&a_in), "--output", s(&a_out), "--name", "alice", "--duration", "6"],
    );
    let addr = format!("127.0.0.1:{port}");
    let mut j = viz(
        &dir.path().join("j"),
        &["join", &addr, "--input", s(&b_in), "--output", s(&b_out), "--name", "bob", "--duration", "5"],
    );
    j.expect_line("Connected over UDP", Duration::from_secs(10));
    let sas_j = j.expect_line("Security code:", Duration::from_secs(5));
    let sas_h = h.expect_line("bob joined", Duration::from_secs(5));
    let code = |l: &str| l.split("Security code: ").nth(1).unwrap()[..7].to_owned();
    assert_eq!(code(&sas_j), code(&sas_h), "the two sides show different security codes");
    let (status, out) = j.finish(Duration::from_secs(20));
    assert!(status.success(), "join failed:\n{out}");
    assert!(out.contains("In a call with alice"), "{out}");
    h.expect_line("bob left", Duration::from_secs(5));
    let (status, out) = h.finish(Duration::from_secs(20));
    assert!(status.success(), "host failed:\n{out}");
    assert_heard(&a_said, 5, &b_out, "alice -> bob");
    assert_heard(&b_said, 5, &a_out, "bob -> alice");
}

#[test]
fn original_viz_forms_and_a_tone() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let mut h = viz(&dir.path().join("h"), &["-s", "0", "--input", "tone:1000", "--output", "null", "--duration", "5"]);
    let line = h.expect_line("Hosting on port", Duration::from_secs(10));
    let port: u16 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let mut j = viz(
        &dir.path().join("j"),
        &["-c", &format!("127.0.0.1:{port}"), "--input", "silence", "--output", s(&heard), "--duration", "3"],
    );
    let (status, out) = j.finish(Duration::from_secs(20));
    assert!(status.success(), "{out}");
    let audio = wav::read_mono_48k(&heard).unwrap();
    let tail = &audio[48_000..];
    assert!(analysis::rms(tail) > 0.05, "the tone did not arrive");
    assert!((analysis::dominant_frequency(tail, 48_000) - 1000.0).abs() < 5.0);
    assert!(analysis::band_energy_fraction(tail, 48_000, 1000.0, 50.0) > 0.9);
    drop(h);
}

/// A "tunnel" that carries TCP but silently drops UDP: a UDP socket that swallows
/// everything on port Q, and a TCP forwarder from Q to the host's port.
fn tcp_only_tunnel(host_port: u16) -> (u16, UdpSocket) {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = UdpSocket::bind(("127.0.0.1", port)).expect("udp black hole on the tunnel port");
    std::thread::spawn(move || {
        for client in tcp.incoming().map_while(Result::ok) {
            let upstream = TcpStream::connect(("127.0.0.1", host_port)).unwrap();
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c, mut u) = (client, upstream);
            std::thread::spawn(move || std::io::copy(&mut c, &mut u2));
            std::thread::spawn(move || std::io::copy(&mut u, &mut c2));
        }
    });
    (port, udp)
}

#[test]
fn falls_back_to_websocket_when_udp_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let (mut h, port) = host(&dir.path().join("h"), &["--input", "tone:700", "--output", "null", "--duration", "8"]);
    let (tunnel_port, _black_hole) = tcp_only_tunnel(port);
    let started = Instant::now();
    let mut j = viz(
        &dir.path().join("j"),
        &["join", &format!("127.0.0.1:{tunnel_port}"), "--input", "tone:300", "--output", s(&heard), "--duration", "3"],
    );
    j.expect_line("trying WebSocket", Duration::from_secs(6));
    j.expect_line("Connected over WebSocket", Duration::from_secs(6));
    assert!(started.elapsed() < Duration::from_secs(8));
    let (status, out) = j.finish(Duration::from_secs(20));
    assert!(status.success(), "{out}");
    let audio = wav::read_mono_48k(&heard).unwrap();
    assert!((analysis::dominant_frequency(&audio[48_000..], 48_000) - 700.0).abs() < 5.0);
    h.expect_line("left", Duration::from_secs(5));
}

#[test]
fn changed_or_wrong_host_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let joiner_cfg = dir.path().join("j");
    let (h1, port) = host(&dir.path().join("h1"), &["--input", "silence", "--output", "null"]);
    let fp1 = h1.seen.iter().find(|l| l.contains("Host fingerprint:")).unwrap().rsplit(' ').next().unwrap().to_owned();
    let addr = format!("127.0.0.1:{port}");
    let mut j = viz(&joiner_cfg, &["join", &addr, "--input", "silence", "--output", "null", "--duration", "1"]);
    let (status, out) = j.finish(Duration::from_secs(15));
    assert!(status.success() && out.contains("remembered"), "{out}");
    drop(h1);
    // Same address, new identity: the joiner must refuse, showing both fingerprints.
    let mut h2 =
        viz(&dir.path().join("h2"), &["host", "--port", &port.to_string(), "--input", "silence", "--output", "null"]);
    let fp2 = h2.expect_line("Host fingerprint:", Duration::from_secs(10)).rsplit(' ').next().unwrap().to_owned();
    let mut j = viz(&joiner_cfg, &["join", &addr, "--input", "silence", "--output", "null", "--duration", "1"]);
    let (status, out) = j.finish(Duration::from_secs(15));
    assert!(!status.success(), "{out}");
    assert!(out.contains("does not match") && out.contains(&fp1) && out.contains(&fp2), "{out}");
    assert!(!out.contains("In a call"), "{out}");
    // A wrong pinned fingerprint is refused too; the right one is accepted.
    let mut j = viz(
        &dir.path().join("k"),
        &["join", &format!("viz://{addr}#{fp1}"), "--input", "silence", "--output", "null", "--duration", "1"],
    );
    let (status, out) = j.finish(Duration::from_secs(15));
    assert!(!status.success() && out.contains(&fp2), "{out}");
    let mut j = viz(
        &dir.path().join("k"),
        &["join", &format!("viz://{addr}#{fp2}"), "--input", "silence", "--output", "null", "--duration", "1"],
    );
    let (status, out) = j.finish(Duration::from_secs(15));
    assert!(status.success() && out.contains("matches the address"), "{out}");
}

#[test]
fn nothing_listening_fails_fast_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let mut j = viz(dir.path(), &["join", &format!("127.0.0.1:{free}"), "--input", "silence", "--output", "null"]);
    let (status, out) = j.finish(Duration::from_secs(10));
    assert!(!status.success());
    assert!(out.contains("no Viz host answered") && out.contains("connection refused"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[test]
fn a_bad_wav_is_reported_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"not a wav file at all").unwrap();
    for input in [PathBuf::from("/nonexistent/x.wav"), junk] {
        let mut j = viz(dir.path(), &["join", "127.0.0.1:9", "--input", s(&input), "--output", "null"]);
        let (status, out) = j.finish(Duration::from_secs(10));
        assert!(!status.success());
        assert!(out.contains("input:") && !out.contains("Connecting"), "{out}");
    }
}

#[test]
fn a_second_caller_is_told_the_host_is_busy_and_garbage_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, port) = host(&dir.path().join("h"), &["--input", "tone", "--output", "null", "--duration", "8"]);
    let addr = format!("127.0.0.1:{port}");
    let mut first =
        viz(&dir.path().join("a"), &["join", &addr, "--input", "silence", "--output", "null", "--duration", "5"]);
    first.expect_line("In a call", Duration::from_secs(10));
    // Garbage at the host's port gets no answer at all.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    for len in [0usize, 1, 13, 29, 100, 191, 192, 500, 1400] {
        let mut junk = vec![0x5au8; len];
        if let Some(b) = junk.first_mut() {
            *b = (len % 6) as u8;
        }
        probe.send_to(&junk, ("127.0.0.1", port)).unwrap();
    }
    let mut buf = [0u8; 2000];
    assert!(probe.recv_from(&mut buf).is_err(), "the host answered garbage");
    let mut second =
        viz(&dir.path().join("b"), &["join", &addr, "--input", "silence", "--output", "null", "--duration", "2"]);
    let (status, out) = second.finish(Duration::from_secs(15));
    assert!(!status.success() && out.contains("busy"), "{out}");
    let (status, out) = first.finish(Duration::from_secs(15));
    assert!(status.success(), "the first call suffered:\n{out}");
    h.expect_line("Refused a second caller", Duration::from_secs(1));
}

#[test]
fn demo_reports_a_call_over_an_impaired_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut p = viz(
        dir.path(),
        &["demo", "--duration", "6", "--loss", "5", "--jitter-ms", "10", "--seed", "5", "--json", "--out-dir", s(&out)],
    );
    let (status, text) = p.finish(Duration::from_secs(60));
    assert!(status.success(), "{text}");
    let json_start = text.find('{').expect("no JSON in the output");
    let report: serde_json::Value = serde_json::from_str(&text[json_start..]).unwrap_or_else(|e| panic!("{e}: {text}"));
    let directions = report["directions"].as_array().unwrap();
    assert_eq!(directions.len(), 2);
    for d in directions {
        let n = |k: &str| d[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {d}"));
        // Both ways: speech arrived, recognisably (no timing assertions: the machine
        // is shared; latency figures belong to benchmarks).
        assert!(n("latency_ms") > 0.0, "{d}");
        // Median waveform correlation of 2 s windows; at 5 % loss it runs 0.5-0.8,
        // unrelated or garbled audio gives about 0.
        assert!(n("correlation") > 0.4, "{d}");
        assert!(n("packets_sent") > 50.0 && n("frames_decoded") > 50.0, "{d}");
        // The impairment proxy dropped packets and the receiver repaired them.
        assert!(n("packets_lost_network") > 0.0, "{d}");
        assert!(n("frames_fec_recovered") + n("frames_concealed") > 0.0, "{d}");
        assert!(n("kbps_average") > 0.0 && n("kbps_talking") > n("kbps_control"), "{d}");
    }
    for file in ["joiner-heard-by-host.wav", "host-heard-by-joiner.wav"] {
        let audio = wav::read_mono_48k(&out.join(file)).unwrap();
        assert!(audio.len() >= 48_000 * 5, "{file}: {} samples", audio.len());
    }
    assert!(report["cpu_host_pct"].as_f64().unwrap() > 0.0);
}

/// Frame levels of a recording (20 ms frames, dBFS): the quiet tenth (the noise floor
/// between words) and the loud tenth (speech).
fn floor_and_speech_db(x: &[f32]) -> (f32, f32) {
    let mut levels: Vec<f32> = x.chunks_exact(960).map(analysis::rms_dbfs).collect();
    levels.sort_by(f32::total_cmp);
    (levels[levels.len() / 10], levels[levels.len() * 9 / 10])
}

/// What a friend hears of `input` sent by a host with `flags`: the recording's noise
/// floor and speech level.
fn heard_through_a_call(dir: &Path, input: &Path, flags: &[&str]) -> (f32, f32) {
    let label = flags.concat();
    let heard = dir.join(format!("heard{label}.wav"));
    let mut args = vec!["--input", s(input), "--loop", "--output", "null"];
    args.extend_from_slice(flags);
    let (mut h, port) = host(&dir.join(format!("h{label}")), &args);
    let mut j = viz(
        &dir.join(format!("j{label}")),
        &["join", &format!("127.0.0.1:{port}"), "--input", "silence", "--output", s(&heard), "--duration", "10"],
    );
    let (status, out) = j.finish(Duration::from_secs(30));
    assert!(status.success(), "{out}");
    h.child.kill().unwrap();
    let audio = wav::read_mono_48k(&heard).unwrap();
    // The first 3 s are left out: RNNoise learns the noise over a second or two.
    floor_and_speech_db(&audio[(48_000 * 3).min(audio.len())..])
}

/// Issue 13: a gamer's fan and keyboard under their voice. The host sends real speech
/// (espeak) over generated fan and typing noise 15 dB below it; with noise suppression
/// the friend hears a much lower floor between words and the voice at the same level.
#[test]
fn noise_suppression_takes_the_fan_and_keys_out_and_keeps_the_voice() {
    let dir = tempfile::tempdir().unwrap();
    let (_, speech) = common::room::speech_wav(dir.path());
    let speech_db = analysis::rms_dbfs(&speech);
    let noise = signals::fan_and_keyboard(speech_db - 15.0, speech.len(), 3);
    let noisy: Vec<f32> = speech.iter().zip(&noise).map(|(a, b)| a + b).collect();
    let input = dir.path().join("noisy.wav");
    wav::write_mono_48k(&input, &noisy).unwrap();

    let (floor_off, speech_off) = heard_through_a_call(dir.path(), &input, &["--no-denoise"]);
    let (floor_on, speech_on) = heard_through_a_call(dir.path(), &input, &["--denoise"]);
    println!(
        "noise floor between words {floor_off:.1} -> {floor_on:.1} dBFS, speech {speech_off:.1} -> {speech_on:.1} dBFS"
    );
    assert!(floor_on < floor_off - 15.0, "the floor only went from {floor_off:.1} to {floor_on:.1} dBFS");
    assert!((speech_on - speech_off).abs() < 3.0, "speech went from {speech_off:.1} to {speech_on:.1} dBFS");
}

/// Issue 13: what a user sets once. The joiner's config file gives its name, its
/// microphone and speakers and the address, so `viz join` alone joins; an option on
/// the command line wins over the file; a mistake in the file stops the call with the
/// file's line.
#[test]
fn the_config_file_sets_name_devices_and_address_and_options_win() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let (mut h, port) = host(&dir.path().join("h"), &["--input", "silence", "--output", s(&heard)]);
    let joiner = dir.path().join("j");
    std::fs::create_dir_all(&joiner).unwrap();
    let config = joiner.join("config.toml");
    std::fs::write(
        &config,
        format!("name = \"alice\"\ninput = \"tone:330\"\noutput = \"null\"\naddress = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut j = viz(&joiner, &["join", "--duration", "4"]);
    h.expect_line("alice joined", Duration::from_secs(10));
    let (status, out) = j.finish(Duration::from_secs(20));
    assert!(status.success(), "{out}");
    assert!(out.contains("you send 330 Hz tone") && out.contains("nothing (null output)"), "{out}");

    let mut j = viz(&joiner, &["join", "--name", "bob", "--duration", "2"]);
    h.expect_line("bob joined", Duration::from_secs(10));
    let (status, out) = j.finish(Duration::from_secs(20));
    assert!(status.success(), "{out}");
    // Ctrl-C, so that the host finishes its recording.
    // SAFETY: kill only sends a signal to the process we started.
    unsafe { libc::kill(h.child.id() as i32, libc::SIGINT) };
    let (status, out) = h.finish(Duration::from_secs(10));
    assert!(status.success(), "{out}");
    let audio = wav::read_mono_48k(&heard).unwrap();
    let (share, _) = common::room::tone_in(&audio, 330.0);
    assert!(share > 0.5, "the host heard 330 Hz as {share} of its recording");

    std::fs::write(&config, "name = \"alice\"\nvolume = 3\n").unwrap();
    let (status, out) = viz(&joiner, &["join"]).finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("config.toml line 2") && out.contains("volume"), "{out}");
}

/// Issue 13: voice activation. The host sends speech with long pauses and a quiet hiss
/// all through (-60 dBFS, under the -45 dBFS threshold; noise suppression off, so the
/// hiss stays): without --vad the friend hears the hiss in the pauses, with it silence,
/// and the words at the same level.
#[test]
fn voice_activation_sends_the_words_and_not_the_hiss_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut speech) = common::room::speech_wav(dir.path());
    speech.extend(signals::silence(48_000 * 3 / 2));
    let hiss = signals::white_noise(0.0017, speech.len(), 9);
    let input = dir.path().join("speech-and-hiss.wav");
    let with_hiss: Vec<f32> = speech.iter().zip(&hiss).map(|(a, b)| a + b).collect();
    wav::write_mono_48k(&input, &with_hiss).unwrap();

    let (floor_off, speech_off) = heard_through_a_call(dir.path(), &input, &["--no-denoise"]);
    let (floor_on, speech_on) = heard_through_a_call(dir.path(), &input, &["--no-denoise", "--vad"]);
    println!("pauses {floor_off:.1} -> {floor_on:.1} dBFS, speech {speech_off:.1} -> {speech_on:.1} dBFS");
    assert!(floor_on < floor_off - 20.0, "the pauses went from {floor_off:.1} only to {floor_on:.1} dBFS");
    assert!((speech_on - speech_off).abs() < 3.0, "speech went from {speech_off:.1} to {speech_on:.1} dBFS");
}

/// Issue 13: a quiet microphone. The host sends speech 26 dB below normal (about -45
/// dBFS while talking); with --agc the friend hears it brought up by more than 10 dB.
#[test]
fn gain_control_brings_a_quiet_microphone_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_, speech) = common::room::speech_wav(dir.path());
    let quiet: Vec<f32> = speech.iter().map(|x| x * 0.05).collect();
    let input = dir.path().join("quiet.wav");
    wav::write_mono_48k(&input, &quiet).unwrap();
    let (_, plain) = heard_through_a_call(dir.path(), &input, &["--no-denoise"]);
    let (_, raised) = heard_through_a_call(dir.path(), &input, &["--no-denoise", "--agc"]);
    println!("quiet speech heard at {plain:.1} dBFS, with --agc {raised:.1} dBFS");
    assert!(raised > plain + 10.0, "--agc took quiet speech from {plain:.1} only to {raised:.1} dBFS");
}

/// A microphone and speakers that go away mid-call are replaced by the default ones,
/// the user is told, and the call goes on. No device can be unplugged on a machine
/// without sound hardware: the engine's test hook marks the devices gone after 1.5 s,
/// and everything else is real (cpal opening ALSA devices: the null device by index,
/// then the default, which an `.asoundrc` in a scratch HOME points at the null device).
#[cfg(target_os = "linux")]
#[test]
fn devices_that_go_away_mid_call_fall_back_to_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".asoundrc"), "pcm.!default {\n  type null\n}\n").unwrap();
    let (_host, port) = host(&dir.path().join("host"), &["--input", "tone", "--output", "null"]);
    let address = format!("127.0.0.1:{port}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_viz"));
    cmd.args(["join", &address, "--input", "0", "--output", "0", "--duration", "4"])
        .env("HOME", &home)
        .env("VIZ_TEST_UNPLUG_DEVICES_AFTER_MS", "1500");
    let mut joiner = common::spawn_command(&mut cmd, &dir.path().join("join"));
    joiner.expect_line("In a call", Duration::from_secs(10));
    let mic = joiner.expect_line("The microphone", Duration::from_secs(5));
    assert!(mic.contains("went away; using the default, 'Default Audio Device'"), "{mic}");
    let speakers = joiner.expect_line("The speakers", Duration::from_secs(1));
    assert!(speakers.contains("went away; playing on the default, 'Default Audio Device'"), "{speakers}");
    let (status, output) = joiner.finish(Duration::from_secs(10));
    assert!(status.success(), "{output}");
    assert!(output.contains("the duration was reached"), "the call went on to its end:\n{output}");
}
