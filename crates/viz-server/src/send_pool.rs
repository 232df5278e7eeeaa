//! A tick's datagrams sent from several cores at once, when one is not enough.
//!
//! At 2000 listeners a tick is 2000 datagrams, and the kernel's work for each (~4 µs
//! here, half of it delivering over loopback) is most of the tick. Sending from one
//! socket on several threads scales: an uncorked UDP send takes no socket lock. So
//! when the room has more than one core, a tick's datagrams are cut into shares and
//! the network thread sends one share while helper threads send the others; the tick
//! ends when every share is out. Order across shares is not kept: a listener gets one
//! datagram per stream per tick, and its jitter buffer reorders anyway.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Fewer datagrams than this go out from the network thread alone: handing work to a
/// helper costs a wake-up (tens of microseconds), which a few hundred sends repay.
pub const MIN_SHARED: usize = 512;

/// Helper threads that send beside the network thread.
pub struct SendPool {
    pool: Option<rayon::ThreadPool>,
}

impl SendPool {
    /// `helpers` threads beside the network thread; 0: the network thread sends alone.
    pub fn new(helpers: usize) -> std::io::Result<Self> {
        if helpers == 0 {
            return Ok(Self { pool: None });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(helpers)
            .thread_name(|i| format!("viz-send-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self { pool: Some(pool) })
    }

    /// One helper per core this process may run on, beyond the first, at most three.
    pub fn helpers_for_this_machine() -> usize {
        std::thread::available_parallelism().map_or(0, |n| n.get().saturating_sub(1).min(3))
    }

    /// Sends `datagrams` from the network thread and the helpers together, if there are
    /// helpers and enough datagrams to share; returns false (nothing sent) otherwise.
    /// Blocks until every share is out.
    pub fn send(&self, sock: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) -> bool {
        let Some(pool) = &self.pool else { return false };
        if datagrams.len() < MIN_SHARED {
            return false;
        }
        let share = datagrams.len().div_ceil(pool.current_num_threads() + 1);
        let mut shares = datagrams.chunks(share);
        let own = shares.next().unwrap_or_default();
        pool.in_place_scope(|s| {
            for part in shares {
                s.spawn(move |_| crate::batch_send::send_all_blocking(sock, part));
            }
            crate::batch_send::send_all_blocking(sock, own);
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_datagram_arrives_when_shared_among_threads() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receivers: Vec<std::net::UdpSocket> =
            (0..4).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for r in &receivers {
            socket2::SockRef::from(r).set_recv_buffer_size(4 << 20).unwrap();
            r.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        }
        let count = 2 * MIN_SHARED + 7;
        let payloads: Vec<[u8; 4]> = (0..count as u32).map(u32::to_be_bytes).collect();
        let datagrams: Vec<(SocketAddr, &[u8])> =
            payloads.iter().enumerate().map(|(i, p)| (receivers[i % 4].local_addr().unwrap(), &p[..])).collect();
        let pool = SendPool::new(2).unwrap();
        assert!(pool.send(&sender, &datagrams), "enough datagrams to share");
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        for (i, r) in receivers.iter().enumerate() {
            for _ in 0..(count - i).div_ceil(4) {
                let n = r.recv(&mut buf).expect("a datagram that never arrived");
                got.push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
            }
        }
        got.sort_unstable();
        assert_eq!(got, (0..count as u32).collect::<Vec<_>>());
        // Too few to share, or no helpers: the caller sends.
        assert!(!pool.send(&sender, &datagrams[..MIN_SHARED - 1]));
        assert!(!SendPool::new(0).unwrap().send(&sender, &datagrams));
    }
}
