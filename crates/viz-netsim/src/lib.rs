//! # viz-netsim
//!
//! A one-way network link with seeded impairments, as a pure state machine: hand it
//! datagrams with [`Link::send`], ask for the ones due with [`Link::poll`]. Time is an
//! argument and nothing reads a clock, so the same model drives faster-than-real-time
//! simulations (protocol and jitter-buffer tests) and the real-time UDP proxy of
//! `viz demo` (which calls it with `Instant::now()`).
//!
//! Loss follows the Gilbert–Elliott two-state model (Gilbert 1960): with `burst = 1`
//! it is plain Bernoulli loss; larger values give the same average loss in runs of that
//! mean length, like a congested Wi-Fi link. Each datagram's delay is `delay` plus a
//! uniform draw in `0..=jitter` (netem's model), so jitter larger than the packet
//! interval reorders packets, as on real paths.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What a link does to traffic. All probabilities are 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Average fraction of datagrams lost.
    pub loss: f64,
    /// Mean length of a loss burst, in datagrams (1 = independent losses).
    pub burst: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per datagram.
    pub jitter: Duration,
    /// Fraction of datagrams delivered twice.
    pub duplicate: f64,
}

impl Default for Impairment {
    fn default() -> Self {
        Self { loss: 0.0, burst: 1.0, delay: Duration::ZERO, jitter: Duration::ZERO, duplicate: 0.0 }
    }
}

impl Impairment {
    pub fn clean() -> Self {
        Self::default()
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!("loss {} is not a fraction between 0 and 1", self.loss));
        }
        if !(0.0..=1.0).contains(&self.duplicate) {
            return Err(format!("duplicate {} is not a fraction between 0 and 1", self.duplicate));
        }
        if !(self.burst >= 1.0 && self.burst.is_finite()) {
            return Err(format!("burst length {} must be at least 1", self.burst));
        }
        Ok(())
    }
}

/// Counters of what the link did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub delivered: u64,
    pub bytes_sent: u64,
}

struct InFlight<T> {
    due: Instant,
    order: u64,
    item: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// One direction of a simulated path carrying items of type `T` (usually `Vec<u8>`).
pub struct Link<T> {
    impairment: Impairment,
    rng: StdRng,
    in_bad_state: bool,
    queue: BinaryHeap<Reverse<InFlight<T>>>,
    order: u64,
    stats: LinkStats,
}

impl<T> std::fmt::Debug for Link<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("impairment", &self.impairment).field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// Anything a link can carry; its length counts towards `bytes_sent`.
pub trait Payload: Clone {
    fn wire_len(&self) -> usize;
}

impl Payload for Vec<u8> {
    fn wire_len(&self) -> usize {
        self.len()
    }
}

impl<T: Payload> Link<T> {
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        Self {
            impairment,
            rng: StdRng::seed_from_u64(seed),
            in_bad_state: false,
            queue: BinaryHeap::new(),
            order: 0,
            stats: LinkStats::default(),
        }
    }

    pub fn impairment(&self) -> Impairment {
        self.impairment
    }

    pub fn set_impairment(&mut self, impairment: Impairment) {
        self.impairment = impairment;
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Gilbert–Elliott: in the bad state every datagram is lost. With mean burst length
    /// `b` and loss `p`, leave the bad state with probability 1/b and enter it with
    /// probability p / (b·(1−p)), so the stationary loss is p.
    fn lose(&mut self) -> bool {
        let p = self.impairment.loss;
        if p <= 0.0 {
            self.in_bad_state = false;
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        let b = self.impairment.burst.max(1.0);
        let transition = if self.in_bad_state { 1.0 / b } else { (p / (b * (1.0 - p))).min(1.0) };
        if self.rng.random_bool(transition) {
            self.in_bad_state = !self.in_bad_state;
        }
        self.in_bad_state
    }

    fn delay(&mut self) -> Duration {
        let j = self.impairment.jitter.as_nanos() as u64;
        let extra = if j == 0 { 0 } else { self.rng.random_range(0..=j) };
        self.impairment.delay + Duration::from_nanos(extra)
    }

    fn enqueue(&mut self, now: Instant, item: T) {
        let due = now + self.delay();
        self.order += 1;
        self.queue.push(Reverse(InFlight { due, order: self.order, item }));
    }

    /// Puts a datagram on the link at `now`.
    pub fn send(&mut self, now: Instant, item: T) {
        self.stats.sent += 1;
        self.stats.bytes_sent += item.wire_len() as u64;
        if self.lose() {
            self.stats.dropped += 1;
            return;
        }
        if self.impairment.duplicate > 0.0 && self.rng.random_bool(self.impairment.duplicate) {
            self.stats.duplicated += 1;
            self.enqueue(now, item.clone());
        }
        self.enqueue(now, item);
    }

    /// When the next datagram is due, if any is in flight.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.due)
    }

    /// The next datagram due at or before `now`.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        if self.next_due()? > now {
            return None;
        }
        self.stats.delivered += 1;
        self.queue.pop().map(|Reverse(f)| f.item)
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(imp: Impairment, seed: u64, n: u32) -> (Link<Vec<u8>>, Vec<(Duration, u32)>) {
        let t0 = Instant::now();
        let mut link = Link::new(imp, seed);
        let mut got = Vec::new();
        for i in 0..n {
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            link.send(now, i.to_be_bytes().to_vec());
            while let Some(p) = link.poll(now) {
                got.push((now - t0, u32::from_be_bytes(p.try_into().unwrap())));
            }
        }
        let end = t0 + Duration::from_secs(3600);
        while let Some(p) = link.poll(end) {
            got.push((Duration::MAX, u32::from_be_bytes(p.try_into().unwrap())));
        }
        (link, got)
    }

    #[test]
    fn clean_link_delivers_everything_in_order() {
        let (link, got) = run(Impairment::clean(), 1, 1000);
        assert_eq!(got.len(), 1000);
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
        assert_eq!(link.stats().dropped, 0);
    }

    #[test]
    fn loss_rate_is_close_to_the_setting_for_bernoulli_and_bursts() {
        for burst in [1.0, 4.0] {
            let imp = Impairment { loss: 0.1, burst, ..Default::default() };
            let (link, got) = run(imp, 7, 20_000);
            let loss = 1.0 - got.len() as f64 / 20_000.0;
            assert!((loss - 0.1).abs() < 0.02, "burst {burst}: loss {loss}");
            assert_eq!(link.stats().dropped as usize, 20_000 - got.len());
        }
    }

    #[test]
    fn bursts_are_longer_with_a_longer_mean() {
        let mean_run = |burst| {
            let (_, got) = run(Impairment { loss: 0.1, burst, ..Default::default() }, 3, 20_000);
            let ids: Vec<u32> = got.iter().map(|g| g.1).collect();
            let gaps: Vec<u32> = ids.windows(2).map(|w| w[1] - w[0] - 1).filter(|&g| g > 0).collect();
            gaps.iter().sum::<u32>() as f64 / gaps.len() as f64
        };
        let (one, five) = (mean_run(1.0), mean_run(5.0));
        assert!(one < 1.3, "{one}");
        assert!(five > 3.5, "{five}");
    }

    #[test]
    fn jitter_reorders_and_duplicates_are_delivered_twice() {
        let imp = Impairment { jitter: Duration::from_millis(60), duplicate: 0.05, ..Default::default() };
        let (link, got) = run(imp, 9, 2000);
        assert!(got.windows(2).any(|w| w[0].1 > w[1].1), "no reordering");
        assert_eq!(got.len() as u64, 2000 + link.stats().duplicated);
        assert!(link.stats().duplicated > 50);
    }

    #[test]
    fn same_seed_same_behaviour() {
        let imp = Impairment { loss: 0.2, jitter: Duration::from_millis(30), duplicate: 0.1, ..Default::default() };
        assert_eq!(run(imp, 42, 500).1, run(imp, 42, 500).1);
        assert_ne!(run(imp, 42, 500).1, run(imp, 43, 500).1);
    }

    #[test]
    fn validation() {
        assert!(Impairment { loss: 1.5, ..Default::default() }.validate().is_err());
        assert!(Impairment { burst: 0.5, ..Default::default() }.validate().is_err());
        assert!(Impairment::clean().validate().is_ok());
    }
}
