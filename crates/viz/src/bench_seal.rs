//! `viz bench seal`: what one transport datagram costs to encrypt and to decrypt on
//! this machine, on one core. A room seals one datagram per listener per frame, so
//! this is the crypto half of what each listener costs (the kernel's send is the rest).

use std::time::Instant;

use anyhow::{Context, Result};
use viz_proto::crypto::{Receiver, RekeyPolicy, Sender};
use viz_proto::wire::{Datagram, MAX_DATAGRAM, TRANSPORT_HEADER_LEN};
use zeroize::Zeroizing;

/// Payload sizes: a quiet frame, a 32 kbps voice frame with its media header (~100 B),
/// a high-bitrate or stereo frame, and one near the largest datagram.
const PAYLOADS: [usize; 4] = [40, 100, 200, 1000];

struct Case {
    payload: usize,
    seal_ns: f64,
    open_ns: f64,
}

fn run_case(payload: usize, datagrams: usize) -> Result<Case> {
    let now = Instant::now();
    let mut sender = Sender::new(Zeroizing::new([7; 32]), now, RekeyPolicy::default());
    let mut receiver = Receiver::new(Zeroizing::new([7; 32]));
    let mut sealed = vec![vec![0u8; MAX_DATAGRAM]; datagrams];
    let started = Instant::now();
    for buf in &mut sealed {
        let n = sender.seal(now, 1, buf, payload).context("sealing")?;
        buf.truncate(n);
    }
    let seal_ns = started.elapsed().as_nanos() as f64 / datagrams as f64;
    let mut plain = vec![0u8; MAX_DATAGRAM];
    let started = Instant::now();
    for d in &sealed {
        let Ok(Datagram::Transport { phase, counter, header, ciphertext, .. }) = Datagram::parse(d) else {
            anyhow::bail!("a sealed datagram does not parse");
        };
        let opened = receiver.open(now, phase, counter, header, ciphertext, &mut plain);
        anyhow::ensure!(opened.is_ok_and(|o| o.payload_len == payload), "a sealed datagram does not open");
    }
    let open_ns = started.elapsed().as_nanos() as f64 / datagrams as f64;
    Ok(Case { payload, seal_ns, open_ns })
}

pub fn run(datagrams: usize) -> Result<()> {
    let datagrams = datagrams.max(1000);
    println!(
        "ChaCha20-Poly1305 per transport datagram ({TRANSPORT_HEADER_LEN}-byte header, 16-byte tag), one core, {datagrams} each"
    );
    println!("{:>8} | {:>8} {:>8} | {:>22}", "payload", "seal ns", "open ns", "seals a core can do /s");
    for payload in PAYLOADS {
        let c = run_case(payload, datagrams)?;
        println!("{:>6} B | {:>8.0} {:>8.0} | {:>22.0}", c.payload, c.seal_ns, c.open_ns, 1e9 / c.seal_ns);
    }
    Ok(())
}
