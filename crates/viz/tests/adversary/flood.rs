//! HandshakeInit floods against a real `viz serve`.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use viz_proto::{HostKeyPolicy, Initiator, Keypair, SessionConfig};

use crate::common::room::serve;
use crate::common::viz;
use crate::native::address;

/// Sends Inits with fresh random ephemerals and sender indices at about `per_second`,
/// from 200 loopback addresses that never read (as good as forged), until `stop`.
pub fn flood(
    target: std::net::SocketAddr,
    per_second: u64,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let socks: Vec<UdpSocket> =
            (1..=200u8).map(|i| UdpSocket::bind(("127.0.2.".to_owned() + &i.to_string(), 0)).unwrap()).collect();
        let mut template = Initiator::new(
            &Keypair::generate().unwrap(),
            HostKeyPolicy::FirstUse,
            1,
            Instant::now(),
            SessionConfig::default(),
        )
        .unwrap();
        let base = template.poll_transmit(Instant::now()).unwrap().to_vec();
        let began = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = began.elapsed().as_secs_f64() * per_second as f64;
            while (n as f64) < due {
                let mut init = base.clone();
                init[1..5].copy_from_slice(&rand::random::<u32>().to_be_bytes()); // sender index
                init[7..39].copy_from_slice(&rand::random::<[u8; 32]>()); // ephemeral key: any 32 bytes will do
                let _ = socks[(n % 200) as usize].send_to(&init, target);
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        sent.store(n, Ordering::Relaxed);
    })
}

/// Finding 2: valid-looking Inits from one socket that never completes: at 300/s one
/// real join in three failed, at 1000/s all did (UDP and WebSocket), and the pending
/// table refilled every 10 s. Now, under load, an Init must carry a cookie MAC from a
/// cookie the server sent to its address: the flood costs a hash each.
#[test]
fn real_joiners_get_in_during_a_1000_per_second_init_flood() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    let target = address(&server.join);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooding = flood(target, 1000, stop.clone(), sent.clone());
    std::thread::sleep(Duration::from_secs(2)); // the pending table would be full by now
    let mut joined = 0;
    let began = Instant::now();
    for (i, scheme) in ["udp", "udp", "udp", "ws"].iter().enumerate() {
        let addr = server.join.replace("viz", scheme);
        let mut p = viz(
            &dir.path().join(format!("joiner{i}")),
            &[
                "join",
                &addr,
                "--name",
                &format!("real{i}"),
                "--input",
                "tone:440",
                "--output",
                "null",
                "--duration",
                "1",
            ],
        );
        let (st, out) = p.finish(Duration::from_secs(20));
        assert!(st.success() && out.contains("Joined room"), "{scheme} joiner {i} during the flood: {out}");
        joined += 1;
    }
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "{joined} of 4 real joins during a flood of {sent} Inits ({:.0}/s), in {:.1} s",
        sent as f64 / (took.as_secs_f64() + 2.0),
        took.as_secs_f64()
    );
}
