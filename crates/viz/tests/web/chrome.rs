//! Real headless Chromium for the browser tests, driven through WebDriver
//! (Debian's `chromium-driver`) with fantoccini.
//!
//! Why WebDriver from Rust rather than Playwright: the tests stay in `cargo test` with
//! no Node toolchain or npm download at test time, and WebDriver is a W3C standard
//! that chromedriver (packaged by Debian beside chromium, same version) implements.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// At most this many browsers run at once. Each plays and records real-time audio; on
/// a 2-core CI machine, seven at once starved their audio threads (a page stopped
/// playing, a recording lost its timing), which made the tests measure the machine.
static BROWSER_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

pub struct Chrome {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

impl Drop for Chrome {
    /// chromedriver leaves Chromium running when it dies, and a failed test never
    /// reaches `close`: end every process that uses this test's profile directory.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let profile = self._profile.path().to_string_lossy().into_owned();
        let Ok(procs) = std::fs::read_dir("/proc") else { return };
        for p in procs.flatten() {
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else { continue };
            if String::from_utf8_lossy(&cmdline).contains(&profile) {
                let _ = Command::new("kill").arg("-9").arg(p.file_name()).status();
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Chrome {
    /// Starts chromedriver and a fresh headless Chromium whose fake microphone plays
    /// `microphone` (a WAV file, looped), if given.
    pub async fn start(microphone: Option<&Path>) -> Chrome {
        Self::launch(microphone, false).await
    }

    /// A browser that accepts the server's self-signed certificate, as a user who
    /// checked its fingerprint would.
    pub async fn start_insecure_tls() -> Chrome {
        Self::launch(None, true).await
    }

    async fn launch(microphone: Option<&Path>, accept_any_certificate: bool) -> Chrome {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        let slot = BROWSER_SLOTS.acquire().await.expect("the browser semaphore is never closed");
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--use-fake-device-for-media-stream".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if accept_any_certificate {
            args.push("--ignore-certificate-errors".into());
        }
        if let Some(wav) = microphone {
            args.push(format!("--use-file-for-fake-audio-capture={}", wav.display()));
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start Chromium through chromedriver: {e}"),
            }
        };
        Chrome { client, driver, _profile: profile, _slot: slot }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` (a function body; `return` gives the value), awaiting promises.
    pub async fn eval(&self, script: &str) -> Value {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1];\
             Promise.resolve((async () => {{ {script} }})()).then(done, (e) => done({{ __error: String(e) }}));"
        );
        let v = self.client.execute_async(&wrapped, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}"));
        if let Some(err) = v.get("__error") {
            panic!("script threw: {err}");
        }
        v
    }

    /// Polls `script` until it returns true; panics with `what` and the page state.
    pub async fn wait_for(&self, script: &str, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let state =
                    self.eval("return window.vizTest ? window.vizTest.state() : document.body.innerText;").await;
                panic!("timed out waiting for {what}; page state: {state}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}")).click().await.unwrap();
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// A 16-bit PCM recording from the page's test hook, as samples in -1..1.
pub fn decode_pcm16(b64: &str) -> Vec<f32> {
    let bytes = data_encoding::BASE64.decode(b64.as_bytes()).expect("base64 from the page");
    bytes.chunks_exact(2).map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0).collect()
}
