//! Failed password and admin-token attempts, limited per source address.
//!
//! A password attempt counts as a failure from the moment the server answers it (the
//! answer already lets the joiner test one guess, whether or not it ever sends its
//! proof) and is taken back when the proof verifies.
//!
//! Each address may fail [`MAX_FAILURES`] times per [`WINDOW`]; after that, its new
//! sessions are refused (with a clear reason) until the window has passed. With CPace
//! every failure is one online guess, so this bounds guessing to a few per minute per
//! address. The table is bounded: the oldest entries go first.
//!
//! There is one limiter per purpose, shared by every way in ([`Limiters`]): password
//! attempts over UDP, either WebSocket or the page count together, and so do admin
//! tokens over the native admin channel and the REST API; a password guesser does not
//! lock the admin out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Default)]
pub struct FailureLimiter {
    entries: HashMap<IpAddr, (u32, Instant)>,
    refused: u64,
}

impl FailureLimiter {
    /// Records a failure from `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        if self.entries.len() >= MAX_TRACKED && !self.entries.contains_key(&ip) {
            self.entries.retain(|_, (_, since)| now.saturating_duration_since(*since) < WINDOW);
            if self.entries.len() >= MAX_TRACKED
                && let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, t))| *t).map(|(ip, _)| *ip)
            {
                self.entries.remove(&oldest);
            }
        }
        let e = self.entries.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(e.1) >= WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    /// Takes back one failure from `ip` (an attempt counted up front that succeeded).
    pub fn forgive(&mut self, ip: IpAddr) {
        if let Some(e) = self.entries.get_mut(&ip) {
            e.0 = e.0.saturating_sub(1);
        }
    }

    /// Whether `ip` has used up its attempts.
    pub fn is_blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        let blocked = self
            .entries
            .get(&ip)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && now.saturating_duration_since(*since) < WINDOW);
        if blocked {
            self.refused += 1;
        }
        blocked
    }

    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// A [`FailureLimiter`] shared by the room's loop and the web server's tasks.
#[derive(Debug, Clone, Default)]
pub struct SharedLimiter(Arc<Mutex<FailureLimiter>>);

impl SharedLimiter {
    fn with<T>(&self, f: impl FnOnce(&mut FailureLimiter) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        self.with(|l| l.failed(ip, now));
    }

    pub fn forgive(&self, ip: IpAddr) {
        self.with(|l| l.forgive(ip));
    }

    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.with(|l| l.is_blocked(ip, now))
    }

    pub fn refused(&self) -> u64 {
        self.with(|l| l.refused())
    }
}

/// A room's limiters, one per purpose.
#[derive(Debug, Clone, Default)]
pub struct Limiters {
    /// Room password attempts (native sessions and browser pages).
    pub password: SharedLimiter,
    /// Admin token attempts (native admin channel and REST API).
    pub admin_token: SharedLimiter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_forgives_after_the_window() {
        let mut l = FailureLimiter::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            l.failed(a, t);
        }
        assert!(!l.is_blocked(a, t));
        l.failed(a, t);
        assert!(l.is_blocked(a, t));
        assert!(!l.is_blocked(b, t), "other addresses are unaffected");
        assert!(!l.is_blocked(a, t + WINDOW), "forgiven after the window");
        l.forgive(a);
        assert!(!l.is_blocked(a, t), "a success takes one failure back");
        assert_eq!(l.refused(), 1);
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut l = FailureLimiter::default();
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            l.failed(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(l.entries.len() <= MAX_TRACKED);
    }
}
