//! The web side of `viz serve` end to end: the REST API over real HTTP, and real
//! headless Chromium joining, listening, running the echo test and driving the admin
//! page, with real native `viz join` processes on the other end.

use std::path::{Path, PathBuf};

mod api;
mod browser;
mod chrome;
#[path = "../common/mod.rs"]
mod common;
mod pages;

pub use common::room::*;
pub use common::s;

/// Where CI keeps what the tests leave for people to look at (the admin screenshot).
pub fn artifacts_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// SHA-256 of a PEM certificate's DER, as `viz serve` prints it (AA:BB:...).
pub fn pem_fingerprint(pem: &str) -> String {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&der);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}
