//! A UDP proxy that impairs traffic with `viz-netsim`, for `viz demo`: the joiner
//! talks to the proxy, the proxy to the host, each direction through its own seeded
//! link (loss, bursts, delay, jitter). Real sockets, real time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use viz_netsim::{Impairment, Link, LinkStats};

#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyStats {
    /// Joiner to host.
    pub up: LinkStats,
    /// Host to joiner.
    pub down: LinkStats,
}

pub struct Proxy {
    pub listen: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<ProxyStats>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr, impairment: Impairment, seed: u64) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        back.connect(upstream).await?;
        let listen = front.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut up: Link<Vec<u8>> = Link::new(impairment, seed);
            let mut down: Link<Vec<u8>> = Link::new(impairment, seed ^ 0x9e37_79b9_7f4a_7c15);
            let mut client: Option<SocketAddr> = None;
            let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
            loop {
                let next = [up.next_due(), down.next_due()].into_iter().flatten().min();
                let sleep = async {
                    match next {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = front.recv_from(&mut a) => if let Ok((n, from)) = r {
                        client = Some(from);
                        up.send(Instant::now(), a[..n].to_vec());
                    },
                    r = back.recv(&mut b) => if let Ok(n) = r {
                        down.send(Instant::now(), b[..n].to_vec());
                    },
                    _ = sleep => {},
                    _ = stopped.changed() => break,
                }
                let now = Instant::now();
                while let Some(d) = up.poll(now) {
                    let _ = back.send(&d).await;
                }
                while let Some(d) = down.poll(now) {
                    if let Some(c) = client {
                        let _ = front.send_to(&d, c).await;
                    }
                }
            }
            ProxyStats { up: up.stats(), down: down.stats() }
        });
        Ok(Self { listen, stop, task })
    }

    pub async fn finish(self) -> ProxyStats {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
