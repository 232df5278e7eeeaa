//! A UDP proxy that impairs traffic with `viz-netsim`, for `viz demo` and `viz netsim`:
//! the client talks to the proxy, the proxy to the server, each direction through its
//! own seeded link (loss, bursts, delay, jitter). Real sockets, real time. Answers go
//! to the client that sent last: one client at a time, as in a call.

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
    /// A proxy on a free loopback port.
    pub async fn start(upstream: SocketAddr, impairment: Impairment, seed: u64) -> std::io::Result<Self> {
        Self::start_on((std::net::Ipv4Addr::LOCALHOST, 0).into(), upstream, impairment, seed).await
    }

    pub async fn start_on(
        listen: SocketAddr,
        upstream: SocketAddr,
        impairment: Impairment,
        seed: u64,
    ) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind(listen).await?);
        let any: SocketAddr = match upstream {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let back = Arc::new(UdpSocket::bind(any).await?);
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

/// `viz netsim`: relays until Ctrl-C or `--duration`, then says what the links did.
pub async fn run(args: crate::cli::NetsimArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let impairment = args.impairment.impairment()?;
    let duration = match args.duration {
        Some(s) if (0.1..=86_400.0).contains(&s) => Some(std::time::Duration::from_secs_f64(s)),
        Some(_) => anyhow::bail!("--duration must be between 0.1 and 86400 seconds"),
        None => None,
    };
    let proxy = Proxy::start_on(args.listen, args.to, impairment, args.impairment.seed)
        .await
        .with_context(|| format!("cannot listen on UDP {}", args.listen))?;
    let a = &args.impairment;
    eprintln!(
        "Relaying UDP {} -> {} with {} % loss (bursts of {}), {} ms delay + 0..{} ms jitter, seed {}. Ctrl-C stops.",
        proxy.listen, args.to, a.loss, a.burst, a.delay_ms, a.jitter_ms, a.seed
    );
    match duration {
        Some(d) => tokio::select! {
            _ = tokio::time::sleep(d) => {},
            _ = tokio::signal::ctrl_c() => {},
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let stats = proxy.finish().await;
    for (name, s) in [("client -> server", stats.up), ("server -> client", stats.down)] {
        eprintln!(
            "{name}: {} datagrams ({} bytes), {} dropped, {} delivered",
            s.sent, s.bytes_sent, s.dropped, s.delivered
        );
    }
    Ok(())
}
