//! Recording when the disk says no: a full disk, a directory that cannot be written.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::room::{ADMIN_TOKEN, Server, api_call, serve_by};
use crate::common::{s, viz_in_namespace};

fn mix_recording(server: &Server) -> Option<Value> {
    let (st, list) = api_call(server, "GET", "/api/recordings", None, Some(ADMIN_TOKEN));
    assert_eq!(st, 200, "{list}");
    list.as_array().unwrap().iter().find(|r| r["source"] == "mix").cloned()
}

fn wait_for(server: &Server, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = mix_recording(server);
        if let Some(r) = r.as_ref().filter(|r| pred(r)) {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "{what}: the mix recording is {r:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Finding 11: after one ENOSPC a recording stopped for good while the API kept
/// counting its packets. Now the API says why it is not writing, and once there is
/// space again the recording goes on in a new file.
/// A mount command for the server's own namespace: a small tmpfs at `dir`.
fn tmpfs(dir: &Path, options: &str) -> String {
    format!("mkdir -p {0} && mount -t tmpfs -o {options} tmpfs {0}", s(dir))
}

/// Finding 11: after one ENOSPC a recording stopped for good while the API kept
/// counting its packets. Now the API says why it is not writing, and once there is
/// space again the recording goes on in a new file. The disk is a 64 KiB tmpfs in the
/// server's own mount namespace, nearly full from the start.
#[test]
fn a_full_disk_is_reported_and_the_recording_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let prelude = format!("{} && head -c {} /dev/zero > {}/filler", tmpfs(&disk, "size=64k"), 44 * 1024, s(&disk));
    let server = serve_by(&dir.path().join("server"), &["--test-source", "--record", s(&disk)], |config, args| {
        viz_in_namespace(config, &prelude, args)
    });
    let failing = wait_for(&server, "a full disk shown", Duration::from_secs(30), |r| !r["error"].is_null());
    println!("disk full: {failing}");
    assert!(failing["error"].as_str().unwrap().contains("No space"), "{failing}");
    let first = failing["path"].as_str().unwrap().to_owned();

    // The server's tmpfs, seen from outside its namespace.
    let filler = PathBuf::from(format!("/proc/{}/root{}/filler", server.proc.child.id(), s(&disk)));
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("removing {}: {e}", filler.display()));
    let resumed = wait_for(&server, "writing again", Duration::from_secs(15), |r| {
        r["error"].is_null() && r["path"] != first.as_str()
    });
    let written_then = resumed["written"].as_u64().unwrap();
    let later =
        wait_for(&server, "more written", Duration::from_secs(10), |r| r["written"].as_u64() > Some(written_then));
    println!("after space returned: {later}");
    assert!(later["path"].as_str().unwrap().ends_with("-2.opus"), "{later}");
    assert!(later["lost"].as_u64().unwrap() > 0, "{later}");
}

/// Finding 11: `--record` into a directory that cannot be written started and printed
/// "Recording: …". Now the server refuses to start and says why. (A read-only tmpfs:
/// permissions alone do not stop root.)
#[test]
fn an_unwritable_record_directory_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    let state = dir.path().join("state");
    let mut p = viz_in_namespace(
        &dir.path().join("server"),
        &tmpfs(&ro, "size=64k,ro"),
        &["serve", "--port", "0", "--no-http", "--state-dir", s(&state), "--record", s(&ro)],
    );
    let (st, out) = p.finish(Duration::from_secs(10));
    assert!(!st.success(), "started anyway: {out}");
    assert!(out.contains("cannot write to the recording directory") && out.contains("Read-only"), "{out}");
    assert!(!out.contains("Recording:"), "{out}");
}
