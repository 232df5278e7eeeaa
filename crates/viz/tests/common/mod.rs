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
    let mut child = Command::new(env!("CARGO_BIN_EXE_viz"))
        .args(args)
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
