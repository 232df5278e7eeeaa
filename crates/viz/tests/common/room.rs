//! A room server for the end-to-end tests, its REST API, and speech to feed it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use viz_audio::{analysis, wav};

use super::{Proc, s, viz};

pub const ADMIN_TOKEN: &str = "web-admin-token-0123456789";

pub struct Server {
    pub proc: Proc,
    /// viz://127.0.0.1:PORT#fingerprint
    pub join: String,
    /// http://127.0.0.1:PORT
    pub web: String,
    pub dir: PathBuf,
    /// With `--rtp-port`: the RTP port it listens on.
    pub rtp_port: Option<u16>,
}

/// Starts `viz serve` on free ports with a known admin token.
pub fn serve(dir: &Path, extra: &[&str]) -> Server {
    serve_by(dir, extra, viz)
}

/// [`serve`], started by `start` (given the config directory and the arguments).
pub fn serve_by(dir: &Path, extra: &[&str], start: impl FnOnce(&Path, &[&str]) -> Proc) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let token = dir.join("admin-token");
    std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut args =
        vec!["serve", "--port", "0", "--http", "127.0.0.1:0", "--admin-token-file", s(&token), "--state-dir", s(dir)];
    args.extend_from_slice(extra);
    let mut proc = start(dir, &args);
    let line = proc.expect_line("on port", Duration::from_secs(10));
    let port = line.split("on port ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_owned();
    let fp = line.rsplit(' ').next().unwrap().to_owned();
    let web_line = proc.expect_line("Web page:", Duration::from_secs(5));
    let web = web_line.split_whitespace().nth(2).unwrap().to_owned();
    let rtp_port = extra.contains(&"--rtp-port").then(|| {
        let line = proc.expect_line("RTP input:", Duration::from_secs(5));
        line.split("UDP ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|p| p.parse().ok()).unwrap()
    });
    Server { proc, join: format!("viz://127.0.0.1:{port}#{fp}"), web, dir: dir.to_owned(), rtp_port }
}

/// A UDP port nobody uses right now (for a receiver the test starts).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Real speech: espeak-ng's voice, resampled to 48 kHz mono 16-bit by sox, with half a
/// second of silence after it (Chromium loops the file).
pub fn speech_wav(dir: &Path) -> (PathBuf, Vec<f32>) {
    let raw = dir.join("speech-raw.wav");
    let out = dir.join("speech.wav");
    let text = "Viz carries voices across the room. Seven quick brown foxes jump over the lazy dog, \
                and the mixer keeps everyone in time.";
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "en", "-s", "165", "-w", s(&raw), text])
        .status()
        .expect("espeak-ng is needed for the end-to-end tests (apt-get install espeak-ng)");
    assert!(ok.success(), "espeak-ng failed");
    let ok = std::process::Command::new("sox")
        .args([s(&raw), "-r", "48000", "-c", "1", "-b", "16", s(&out), "norm", "-3", "pad", "0", "0.5"])
        .status()
        .expect("sox is needed for the end-to-end tests (apt-get install sox)");
    assert!(ok.success(), "sox failed");
    let samples = wav::read_mono_48k(&out).unwrap();
    (out, samples)
}

/// The admin API with the token, returning (status, JSON body).
pub fn api_call(server: &Server, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}{path}", server.web);
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut resp = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = agent.delete(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        (m, b) => {
            let mut r = match m {
                "PATCH" => agent.patch(&url),
                "PUT" => agent.put(&url),
                _ => agent.post(&url),
            };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            match b {
                Some(b) => r.content_type("application/json").send(b),
                None => r.send_empty(),
            }
        }
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The participant called `name`, as the admin API lists it.
pub fn participant_named(server: &Server, name: &str) -> Option<Value> {
    let (status, list) = api_call(server, "GET", "/api/participants", None, Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().iter().find(|p| p["name"] == name).cloned()
}

/// Polls until the participant called `name` is listed.
pub fn wait_participant(server: &Server, name: &str, timeout: Duration) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(p) = participant_named(server, name) {
            return p;
        }
        assert!(std::time::Instant::now() < deadline, "{name} never joined");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Energy share near `hz` and level of `x`.
pub fn tone_in(x: &[f32], hz: f32) -> (f32, f32) {
    (analysis::band_energy_fraction(x, 48_000, hz, 40.0), analysis::rms_dbfs(x))
}

/// How well a recording of looped speech matches the speech: each voiced half second of
/// the recording is looked up in two back-to-back copies of the speech (a loop boundary
/// can fall anywhere), so a delay that drifts, as adaptive jitter buffers make it, does
/// not blur the match. Half seconds, because the jitter buffer changes its delay by
/// time-stretching voiced frames a pitch period at a time, and a longer window that
/// holds such a step reads it as a mismatch. Returns the correlations, sorted.
pub fn speech_match(speech: &[f32], heard: &[f32]) -> Vec<f32> {
    let twice: Vec<f32> = speech.iter().chain(speech).copied().collect();
    let mut c: Vec<f32> =
        analysis::windowed_delays(heard, &twice, 24_000, -(heard.len() as i64), twice.len() as i64, 0.01)
            .iter()
            .map(|w| w.estimate.correlation)
            .collect();
    c.sort_by(f32::total_cmp);
    c
}
