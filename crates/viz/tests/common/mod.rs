//! Helpers shared by the end-to-end tests: run `viz` as a real process and read its
//! output line by line.

#![allow(dead_code)] // each test binary uses its own subset

pub mod room;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    /// Lines before this index were already matched by `expect_line`.
    cursor: usize,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn viz(config: &Path, args: &[&str]) -> Proc {
    spawn(Command::new(env!("CARGO_BIN_EXE_viz")).args(args), config)
}

/// Runs `viz` in its own user and mount namespaces (no root needed; `unshare` from
/// util-linux) after the shell commands `prelude`, which may mount file systems only
/// it sees. Its files are reachable from outside at `/proc/PID/root/…`.
pub fn viz_in_namespace(config: &Path, prelude: &str, args: &[&str]) -> Proc {
    let script = format!("{prelude} && exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c", &script, env!("CARGO_BIN_EXE_viz")]).args(args);
    spawn(&mut cmd, config)
}

/// Runs a command prepared by the caller (its own environment) like [`viz`].
pub fn spawn_command(cmd: &mut Command, config: &Path) -> Proc {
    spawn(cmd, config)
}

fn spawn(cmd: &mut Command, config: &Path) -> Proc {
    let mut child = cmd
        .env("VIZ_CONFIG_DIR", config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn viz");
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    Proc { child, lines, seen: Vec::new(), cursor: 0 }
}

impl Proc {
    /// Waits for a line containing `needle` after the last one matched; returns it.
    pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(i) = self.seen[self.cursor..].iter().position(|l| l.contains(needle)) {
            self.cursor += i + 1;
            return self.seen[self.cursor - 1].clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        self.cursor = self.seen.len();
                        return line;
                    }
                }
                Err(_) => {
                    panic!("no line containing {needle:?} within {timeout:?}; output so far:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// Waits for the process to exit; returns its status and everything it printed.
    pub fn finish(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                return (status, self.seen.join("\n"));
            }
            if Instant::now() > deadline {
                panic!("viz did not exit within {timeout:?}; output:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
