//! The plain RTP door: a flood of SSRCs and an impostor sending someone else's SSRC.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::room::{ADMIN_TOKEN, Server, api_call, serve};

/// An RTP packet of payload type 111 carrying a one-byte Opus packet (a 20 ms CELT
/// frame with nothing coded: valid, and silent).
pub fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.push(0xf8);
    p
}

fn senders(server: &Server) -> Vec<Value> {
    let (st, v) = api_call(server, "GET", "/api/rtp", None, Some(ADMIN_TOKEN));
    assert_eq!(st, 200, "{v}");
    v["senders"].as_array().unwrap().clone()
}

fn sender(server: &Server, ssrc: u32) -> Option<Value> {
    senders(server).into_iter().find(|s| s["ssrc"] == ssrc)
}

/// Sends `ssrc` every 20 ms from `sock` until `stop`.
fn keep_sending(sock: UdpSocket, to: String, ssrc: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut seq = 0u16;
        while !stop.load(Ordering::Relaxed) {
            let _ = sock.send_to(&rtp(ssrc, seq), &to);
            seq = seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Finding 8: 20 000 random SSRCs filled the 1024-sender table, and a sender an admin
/// then allowed was refused ("table_full") for minutes while ~3.4 packets a second
/// kept it full. Now pending senders make way for each other, never for an accepted
/// one, and one address holds only a few of them.
#[test]
fn a_flood_of_ssrcs_cannot_keep_an_accepted_sender_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--rtp-port", "0"]);
    let to = format!("127.0.0.1:{}", server.rtp_port.unwrap());
    let flood = UdpSocket::bind("127.0.0.5:0").unwrap();
    for i in 0..20_000u32 {
        let _ = flood.send_to(&rtp(0x1000_0000 + i, 0), &to);
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(5)); // bounded, not a socket-buffer test
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    // The flood goes on, slowly, all through.
    let trickle = {
        let (stop, to, flood) = (stop.clone(), to.clone(), flood.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let _ = flood.send_to(&rtp(0x2000_0000 + i, 0), &to);
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let from_flood =
        senders(&server).iter().filter(|s| s["address"].as_str().unwrap_or("").starts_with("127.0.0.5:")).count();
    println!("20 000 SSRCs from one address: {from_flood} of them tracked");
    assert!(from_flood <= 16, "{from_flood} pending senders from one address");

    let real = UdpSocket::bind("127.0.0.1:0").unwrap();
    let real_addr = real.local_addr().unwrap().to_string();
    let body = format!(r#"{{"address": "{real_addr}", "name": "Studio"}}"#);
    let (st, row) = api_call(&server, "PUT", "/api/rtp/senders/0xabc", Some(&body), Some(ADMIN_TOKEN));
    assert_eq!(st, 200, "{row}");
    let sending = keep_sending(real, to, 0xabc, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    let joined = loop {
        if let Some(s) = sender(&server, 0xabc).filter(|s| !s["participant_id"].is_null()) {
            break s;
        }
        assert!(Instant::now() < deadline, "the accepted sender never joined: {:?}", sender(&server, 0xabc));
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Relaxed);
    sending.join().unwrap();
    trickle.join().unwrap();
    println!("the accepted sender joined during the flood: {joined}");
}

/// Finding 9: accepting a pending SSRC without an address, while an impostor sent the
/// same SSRC, bound it to the impostor's address and refused the real sender. Now the
/// admin is asked which of the addresses seen, and the one named is bound.
#[test]
fn accepting_a_sender_binds_the_address_the_admin_chose() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &["--rtp-port", "0"]);
    let to = format!("127.0.0.1:{}", server.rtp_port.unwrap());
    let real = UdpSocket::bind("127.0.0.1:0").unwrap();
    let real_addr = real.local_addr().unwrap().to_string();
    let impostor = UdpSocket::bind("127.0.0.7:0").unwrap();
    for seq in 0..5 {
        real.send_to(&rtp(0xabc, seq), &to).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    for seq in 5..10 {
        impostor.send_to(&rtp(0xabc, seq), &to).unwrap(); // the last one the server saw
    }
    std::thread::sleep(Duration::from_millis(300));
    let pending = sender(&server, 0xabc).expect("pending sender");
    assert_eq!(pending["seen_from"].as_array().unwrap().len(), 2, "{pending}");

    let (st, reply) = api_call(&server, "PUT", "/api/rtp/senders/0xabc", Some("{}"), Some(ADMIN_TOKEN));
    assert_eq!(st, 409, "accepted without saying which address: {reply}");
    let body = format!(r#"{{"address": "{real_addr}"}}"#);
    let (st, row) = api_call(&server, "PUT", "/api/rtp/senders/0xabc", Some(&body), Some(ADMIN_TOKEN));
    assert_eq!(st, 200, "{row}");
    assert_eq!(row["allowed_from"], real_addr.as_str(), "{row}");

    let stop = Arc::new(AtomicBool::new(false));
    let a = keep_sending(real, to.clone(), 0xabc, stop.clone());
    let b = keep_sending(impostor, to, 0xabc, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    a.join().unwrap();
    b.join().unwrap();
    let s = sender(&server, 0xabc).unwrap();
    println!("after the accept: {s}");
    assert!(!s["participant_id"].is_null(), "the real sender is in the room: {s}");
    assert!(
        s["wrong_address_packets"].as_u64().unwrap() > 0
            && s["last_wrong_address"].as_str().unwrap().starts_with("127.0.0.7:"),
        "{s}"
    );
}
