//! Bounds on TCP connections a stranger can open before proving anything: all of them
//! at once, and per source address. The native WebSocket port ([`crate::listener`])
//! counts a connection against its address until it carries an authenticated session;
//! the web port ([`crate::web`]) for as long as it is open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Live connections on one port.
#[derive(Debug)]
pub struct ConnectionTable {
    state: Mutex<Counts>,
    max_total: usize,
    max_per_address: usize,
    /// Loopback peers are not limited per address: a tunnel (cloudflared, ngrok) on
    /// this machine connects from 127.0.0.1 on every visitor's behalf (`--trust-proxy`).
    loopback_is_a_proxy: bool,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl ConnectionTable {
    pub fn new(max_total: usize, max_per_address: usize, loopback_is_a_proxy: bool) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(Counts::default()), max_total, max_per_address, loopback_is_a_proxy })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many connections are open now.
    pub fn total(&self) -> usize {
        self.counts().total
    }
}

/// One connection's place in a [`ConnectionTable`], given back when it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<ConnectionTable>,
    /// The address it counts against, while it does.
    address: Option<IpAddr>,
}

impl ConnectionSlot {
    /// A place for a new connection from `ip`, or why there is none.
    pub fn take(table: &Arc<ConnectionTable>, ip: IpAddr) -> Result<Self, &'static str> {
        let ip = ip.to_canonical();
        let mut c = table.counts();
        if c.total >= table.max_total {
            return Err("too many connections");
        }
        let limited = !(table.loopback_is_a_proxy && ip.is_loopback());
        if limited {
            let n = c.per_address.entry(ip).or_default();
            if *n >= table.max_per_address {
                return Err("too many connections from this address");
            }
            *n += 1;
        }
        c.total += 1;
        Ok(Self { table: table.clone(), address: limited.then_some(ip) })
    }

    /// The connection speaks for `ip`, a visitor a trusted proxy on this machine names:
    /// from now on it counts against that address instead, or it is refused if that
    /// address has no place left.
    pub fn count_against(&mut self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = ip.to_canonical();
        let mut c = self.table.counts();
        if c.per_address.get(&ip).is_some_and(|n| *n >= self.table.max_per_address) {
            return Err("too many connections from this address");
        }
        if let Some(old) = self.address.replace(ip) {
            release(&mut c, old);
        }
        *c.per_address.entry(ip).or_default() += 1;
        Ok(())
    }

    /// The connection proved itself (an authenticated session): it no longer counts
    /// against its address, only against the total.
    pub fn vouched_for(&mut self) {
        if let Some(ip) = self.address.take() {
            release(&mut self.table.counts(), ip);
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.table.counts();
        c.total -= 1;
        if let Some(ip) = self.address {
            release(&mut c, ip);
        }
    }
}

fn release(c: &mut Counts, ip: IpAddr) {
    if let Some(n) = c.per_address.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            c.per_address.remove(&ip);
        }
    }
}

/// Descriptors a server wants: the web port's and the native port's connection limits
/// together, plus files, sockets and recordings.
#[cfg(unix)]
const WANTED_DESCRIPTORS: u64 = 4096;

/// Lifts the soft limit on open descriptors towards [`WANTED_DESCRIPTORS`] (as far as the
/// hard limit allows): the usual soft limit of 1024 is less than the connection limits
/// add up to, and running out means settings and recordings cannot be saved. Returns
/// the limit now in force.
#[cfg(unix)]
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let wanted = (WANTED_DESCRIPTORS as libc::rlim_t).min(lim.rlim_max);
    if lim.rlim_cur < wanted {
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = wanted;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 here, not on every Unix
    Some(lim.rlim_cur as u64)
}

/// Windows has no per-process descriptor limit of this kind.
#[cfg(not(unix))]
pub fn raise_descriptor_limit() -> Option<u64> {
    None
}

/// How often the room gives freed memory back to the system.
pub const RETURN_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Gives memory the process freed back to the system. glibc keeps what a flood of
/// connections allocated and freed (buffers of thousands of short-lived connections,
/// spread over the runtime's threads' arenas) for reuse, so without this a server
/// stays at its peak long after the flood: measured, 17 MB before a flood of every
/// door, 31 MB at its peak and still 31 MB after.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own heaps; it takes no pointer of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators and systems return freed memory their own way.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_freed_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxied_connection_counts_against_the_visitor_it_speaks_for() {
        let table = ConnectionTable::new(100, 2, true);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let visitor: IpAddr = "203.0.113.5".parse().unwrap();
        let mut slots: Vec<ConnectionSlot> = (0..3).map(|_| ConnectionSlot::take(&table, proxy).unwrap()).collect();
        assert!(slots[0].count_against(visitor).is_ok());
        assert!(slots[1].count_against(visitor).is_ok());
        assert!(slots[2].count_against(visitor).is_err(), "a third connection for one visitor");
        assert!(slots[2].count_against("203.0.113.6".parse().unwrap()).is_ok(), "another visitor");
        slots.remove(0);
        assert!(ConnectionSlot::take(&table, proxy).unwrap().count_against(visitor).is_ok(), "a place was given back");
        drop(slots);
        assert_eq!(table.total(), 0);
        assert!(table.counts().per_address.is_empty());
    }

    #[test]
    fn limits_the_total_and_each_address_and_gives_back_on_drop() {
        let table = ConnectionTable::new(5, 2, false);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = ConnectionSlot::take(&table, a).unwrap();
        let mut a2 = ConnectionSlot::take(&table, a).unwrap();
        assert!(ConnectionSlot::take(&table, a).is_err(), "third from one address");
        a2.vouched_for();
        let a3 = ConnectionSlot::take(&table, a).expect("a vouched-for connection frees its address's place");
        let b1 = ConnectionSlot::take(&table, b).unwrap();
        let _b2 = ConnectionSlot::take(&table, b).unwrap();
        assert!(ConnectionSlot::take(&table, "192.0.2.3".parse().unwrap()).is_err(), "total of five");
        drop((a1, a3, b1));
        assert_eq!(table.total(), 2);
        drop(a2);
        assert_eq!(table.total(), 1);
        assert!(!table.counts().per_address.contains_key(&a), "no empty entries stay");
    }

    #[test]
    fn loopback_behind_a_trusted_proxy_is_limited_only_in_total() {
        let table = ConnectionTable::new(3, 1, true);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..3).map(|_| ConnectionSlot::take(&table, lo).unwrap()).collect();
        assert!(ConnectionSlot::take(&table, lo).is_err());
        drop(slots);
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        let _one = ConnectionSlot::take(&table, mapped).unwrap();
        assert!(ConnectionSlot::take(&table, "192.0.2.9".parse().unwrap()).is_err(), "one address, however written");
    }
}
