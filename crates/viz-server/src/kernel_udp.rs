//! The kernel's side of receiving UDP: how much a socket may queue, and how many
//! datagrams were dropped because a queue was full.
//!
//! A room's socket receives everyone's speech, reports and handshakes. The default
//! receive buffer (208 KiB on Linux) holds a few hundred small datagrams, because the
//! kernel charges each one its whole buffer (~1 KiB for a 100-byte datagram): 1000
//! clients joining at once, or a short stall of the network thread, overflow it and
//! the kernel drops silently. The room asks for [`ROOM_RECEIVE_BUFFER`], says what it
//! got, and `/metrics` exports the kernel's drop counter.

/// ~8000 small datagrams: 2000 handshakes arriving at once, or a second of a
/// 2000-member room's traffic while the network thread is held up.
pub const ROOM_RECEIVE_BUFFER: usize = 8 << 20;

/// What a socket asked for and what the kernel granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveBuffer {
    pub asked: usize,
    /// As the kernel reports it (on Linux, twice what it books for data: the rest is
    /// its bookkeeping, `man 7 socket`).
    pub granted: usize,
}

impl ReceiveBuffer {
    /// The bytes of data the socket may queue: Linux reports twice that.
    pub fn usable(&self) -> usize {
        if cfg!(target_os = "linux") { self.granted / 2 } else { self.granted }
    }

    /// Less than was asked for: the system capped it.
    pub fn capped(&self) -> bool {
        self.usable() < self.asked
    }
}

/// Asks for a receive buffer of `bytes`. Where the system caps it (Linux's
/// `net.core.rmem_max`), a process allowed to (root, or `CAP_NET_ADMIN`) overrides
/// the cap as `SO_RCVBUFFORCE` allows; otherwise the capped size stays and
/// [`ReceiveBuffer::capped`] says so.
pub fn set_receive_buffer(sock: socket2::SockRef<'_>, bytes: usize) -> std::io::Result<ReceiveBuffer> {
    sock.set_recv_buffer_size(bytes)?;
    let got = ReceiveBuffer { asked: bytes, granted: sock.recv_buffer_size()? };
    #[cfg(target_os = "linux")]
    if got.capped() {
        use std::os::fd::AsRawFd;
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: a valid socket descriptor, an int option of the right size.
        let forced = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if forced == 0 {
            return Ok(ReceiveBuffer { granted: sock.recv_buffer_size()?, ..got });
        }
    }
    Ok(got)
}

/// What the kernel counted for all UDP sockets of this network namespace, IPv4 and
/// IPv6 together (Linux `/proc/net/snmp` and `/proc/net/snmp6`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelUdpDrops {
    /// Datagrams dropped because a socket's receive buffer was full.
    pub receive_buffer_errors: u64,
    /// Datagrams dropped for any reason (full buffers, bad checksums, ...).
    pub in_errors: u64,
}

/// The counters now; `None` where the system does not publish them.
pub fn drops() -> Option<KernelUdpDrops> {
    let v4 = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut d = parse_snmp(&v4)?;
    if let Ok(v6) = std::fs::read_to_string("/proc/net/snmp6") {
        let six = parse_snmp6(&v6);
        d.receive_buffer_errors += six.receive_buffer_errors;
        d.in_errors += six.in_errors;
    }
    Some(d)
}

/// `/proc/net/snmp`: a `Udp:` line of names, then a `Udp:` line of values.
fn parse_snmp(text: &str) -> Option<KernelUdpDrops> {
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> { values.get(names.iter().position(|n| *n == name)?)?.parse().ok() };
    Some(KernelUdpDrops { receive_buffer_errors: field("RcvbufErrors")?, in_errors: field("InErrors")? })
}

/// `/proc/net/snmp6`: one `Name value` per line.
fn parse_snmp6(text: &str) -> KernelUdpDrops {
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next() == Some(name)).then(|| parts.next()?.parse().ok()).flatten()
            })
            .unwrap_or(0)
    };
    KernelUdpDrops { receive_buffer_errors: field("Udp6RcvbufErrors"), in_errors: field("Udp6InErrors") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
            Udp: 810015 2492 21530 994583 21527 0 3 0 0\n\
            UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
            UdpLite: 0 0 9 0 9 0 0 0 0\n";
        assert_eq!(parse_snmp(snmp), Some(KernelUdpDrops { receive_buffer_errors: 21527, in_errors: 21530 }));
        let snmp6 = "Udp6InDatagrams                 \t5\nUdp6InErrors                    \t7\nUdp6RcvbufErrors                \t4\n";
        assert_eq!(parse_snmp6(snmp6), KernelUdpDrops { receive_buffer_errors: 4, in_errors: 7 });
        // Cut short or garbled: no figures rather than wrong ones.
        for cut in 0..snmp.len() {
            if let Some(d) = parse_snmp(&snmp[..cut]) {
                assert!(d.receive_buffer_errors <= 21527, "{cut}: {d:?}");
            }
        }
        assert_eq!(parse_snmp6("Udp6RcvbufErrors x\n"), KernelUdpDrops::default());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_system_publishes_the_counters() {
        assert!(drops().is_some());
    }

    #[test]
    fn a_socket_gets_a_larger_receive_buffer() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = socket2::SockRef::from(&sock).recv_buffer_size().unwrap();
        let got = set_receive_buffer(socket2::SockRef::from(&sock), ROOM_RECEIVE_BUFFER).unwrap();
        assert_eq!(got.asked, ROOM_RECEIVE_BUFFER);
        assert!(got.granted > before, "{got:?} not above the default {before}");
        // Root may override the system's cap, and the room then gets all it asked for.
        #[cfg(target_os = "linux")]
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(!got.capped(), "{got:?}");
        }
    }
}
