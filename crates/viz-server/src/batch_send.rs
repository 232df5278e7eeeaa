//! Many datagrams to many addresses with few system calls: `sendmmsg` on Linux (up to
//! [`BATCH`] per call), one `send_to` each elsewhere.
//!
//! A room sends every mix to every listener, each encrypted for its session: at 2000
//! listeners that is 2000 datagrams a tick to 2000 addresses. UDP segmentation
//! offload does not apply (it splits one buffer for one address), so batching the
//! calls is what saves the per-call cost.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Datagrams per `sendmmsg` call (the kernel's own limit, `UIO_MAXIOV`, is 1024).
pub const BATCH: usize = 64;

/// Sends every datagram, in order. A failure is logged and skips that datagram only:
/// to the protocol it is loss.
pub async fn send_all(sock: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) {
    #[cfg(target_os = "linux")]
    {
        let mut done = 0;
        while done < datagrams.len() {
            let chunk = &datagrams[done..datagrams.len().min(done + BATCH)];
            match sock.try_io(tokio::io::Interest::WRITABLE, || linux::sendmmsg(sock, chunk)) {
                Ok(n) => done += n.max(1),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = sock.writable().await {
                        tracing::debug!("udp socket not writable: {e}");
                        return;
                    }
                }
                // The first datagram of the chunk failed (its address, say): skip it.
                Err(e) => {
                    tracing::debug!(addr = %chunk[0].0, "udp send failed: {e}");
                    done += 1;
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    for (addr, data) in datagrams {
        if let Err(e) = sock.send_to(data, addr).await {
            tracing::debug!(%addr, "udp send failed: {e}");
        }
    }
}

/// As [`send_all`], from any thread, without the runtime: when the socket's buffer is
/// full it waits for room (at most 100 ms each time) instead of yielding. For the
/// helper threads of [`crate::send_pool`].
pub fn send_all_blocking(sock: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) {
    let mut done = 0;
    let mut waits = 0;
    while done < datagrams.len() {
        #[cfg(target_os = "linux")]
        let sent = {
            let chunk = &datagrams[done..datagrams.len().min(done + BATCH)];
            linux::sendmmsg(sock, chunk)
        };
        #[cfg(not(target_os = "linux"))]
        let sent = {
            // Straight to the socket: tokio's readiness is not updated while the
            // network thread waits for the helpers.
            let (addr, data) = datagrams[done];
            socket2::SockRef::from(sock).send_to(data, &addr.into()).map(|_| 1)
        };
        match sent {
            Ok(n) => done += n.max(1),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // The send buffer is full: wait for the kernel to drain it; a socket
                // that stays full for seconds loses the rest of this tick.
                waits += 1;
                if waits > 20 {
                    tracing::debug!("udp socket stayed full; {} datagrams not sent", datagrams.len() - done);
                    return;
                }
                wait_writable(sock);
            }
            Err(e) => {
                tracing::debug!(addr = %datagrams[done].0, "udp send failed: {e}");
                done += 1;
            }
        }
    }
}

#[cfg(unix)]
fn wait_writable(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, 100) };
}

#[cfg(not(unix))]
fn wait_writable(_: &UdpSocket) {
    std::thread::sleep(std::time::Duration::from_millis(1));
}

#[cfg(target_os = "linux")]
mod linux {
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use socket2::SockAddr;
    use tokio::net::UdpSocket;

    /// One `sendmmsg` call for up to [`super::BATCH`] datagrams; how many the kernel took.
    pub(super) fn sendmmsg(sock: &UdpSocket, chunk: &[(SocketAddr, &[u8])]) -> std::io::Result<usize> {
        let addrs: Vec<SockAddr> = chunk.iter().map(|(a, _)| SockAddr::from(*a)).collect();
        let mut iovs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(_, d)| libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = addrs
            .iter()
            .zip(iovs.iter_mut())
            .map(|(addr, iov)| {
                // SAFETY: msghdr is plain data; all-zero is a valid empty header.
                let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                hdr.msg_namelen = addr.len();
                hdr.msg_iov = iov;
                hdr.msg_iovlen = 1;
                libc::mmsghdr { msg_hdr: hdr, msg_len: 0 }
            })
            .collect();
        // SAFETY: every header points at an address and one iovec that outlive the
        // call, and the iovecs at datagrams borrowed for it.
        let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as libc::c_uint, 0) };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_datagram_reaches_its_own_address_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut receivers = Vec::new();
        for _ in 0..3 {
            receivers.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        // More than a batch, interleaved over three addresses, lengths 1..=200.
        let payloads: Vec<Vec<u8>> = (0..150u32).map(|i| vec![i as u8; 1 + (i as usize * 7) % 200]).collect();
        let datagrams: Vec<(SocketAddr, &[u8])> =
            payloads.iter().enumerate().map(|(i, p)| (receivers[i % 3].local_addr().unwrap(), p.as_slice())).collect();
        send_all(&sender, &datagrams).await;
        let mut buf = [0u8; 512];
        for (r, receiver) in receivers.iter().enumerate() {
            for (i, p) in payloads.iter().enumerate().filter(|(i, _)| i % 3 == r) {
                let n = tokio::time::timeout(std::time::Duration::from_secs(2), receiver.recv(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("datagram {i} never arrived"))
                    .unwrap();
                assert_eq!(&buf[..n], p.as_slice(), "datagram {i}");
            }
        }
    }

    #[tokio::test]
    async fn a_datagram_that_cannot_be_sent_loses_only_itself() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = receiver.local_addr().unwrap();
        // An IPv6 address from an IPv4 socket fails; the ones around it still go.
        let unreachable: SocketAddr = "[::1]:9".parse().unwrap();
        let datagrams: Vec<(SocketAddr, &[u8])> = vec![(to, b"one"), (unreachable, b"lost"), (to, b"two")];
        send_all(&sender, &datagrams).await;
        let mut buf = [0u8; 16];
        for want in [&b"one"[..], b"two"] {
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), receiver.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..n], want);
        }
    }
}
