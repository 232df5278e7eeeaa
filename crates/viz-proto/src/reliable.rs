//! Reliable, ordered delivery of the few control messages a session needs.
//!
//! Messages get consecutive ids from 1. The receiver delivers them strictly in order,
//! keeps a few that arrive early, and acknowledges cumulatively (the highest id it has
//! delivered), at most [`ACK_DELAY`] after a message arrives so that a burst of
//! messages costs one acknowledgement (a duplicate is acknowledged at once: the peer
//! is retransmitting). The sender retransmits what is unacknowledged after a timeout
//! that starts at 250 ms, follows the measured round-trip time (RFC 6298's smoothed
//! RTT, with Karn's rule: no samples from retransmitted messages) plus the ack delay,
//! and doubles on each retry up to 2 s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::control::ControlMessage;

/// How long a receiver may hold an acknowledgement to cover more messages.
pub const ACK_DELAY: Duration = Duration::from_millis(40);
const INITIAL_RTO: Duration = Duration::from_millis(250);
const MIN_RTO: Duration = Duration::from_millis(50);
const MAX_RTO: Duration = Duration::from_secs(2);
/// Messages in flight at once; more wait in the queue.
const WINDOW: usize = 32;
/// Early messages the receiver keeps while waiting for a missing one.
const REORDER_SLOTS: usize = 32;

#[derive(Debug)]
struct Outstanding {
    id: u32,
    bytes: Vec<u8>,
    sent_at: Option<Instant>,
    retransmitted: bool,
    rto: Duration,
}

#[derive(Debug)]
pub struct ReliableSender {
    next_id: u32,
    in_flight: VecDeque<Outstanding>,
    queued: VecDeque<Vec<u8>>,
    srtt: Option<Duration>,
    rttvar: Duration,
    retransmissions: u64,
}

impl Default for ReliableSender {
    fn default() -> Self {
        Self {
            next_id: 1,
            in_flight: VecDeque::new(),
            queued: VecDeque::new(),
            srtt: None,
            rttvar: Duration::ZERO,
            retransmissions: 0,
        }
    }
}

impl ReliableSender {
    pub fn push(&mut self, message: &ControlMessage) {
        let mut bytes = Vec::with_capacity(16);
        message.encode(&mut bytes);
        self.queued.push_back(bytes);
    }

    /// Smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Nothing queued and nothing unacknowledged.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && self.queued.is_empty()
    }

    /// Highest id acknowledged so far.
    pub fn acked_through(&self) -> u32 {
        self.in_flight.front().map_or(self.next_id - 1, |o| o.id - 1)
    }

    fn rto(&self) -> Duration {
        match self.srtt {
            None => INITIAL_RTO,
            Some(srtt) => (srtt + 4 * self.rttvar + ACK_DELAY).clamp(MIN_RTO, MAX_RTO),
        }
    }

    /// The next message to put on the wire now, as (id, encoded message).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(u32, &[u8])> {
        while self.in_flight.len() < WINDOW {
            let Some(bytes) = self.queued.pop_front() else { break };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            let rto = self.rto();
            self.in_flight.push_back(Outstanding { id, bytes, sent_at: None, retransmitted: false, rto });
        }
        let rto = self.rto();
        let due = self.in_flight.iter_mut().find(|o| o.sent_at.is_none_or(|t| now >= t + o.rto))?;
        if due.sent_at.is_some() {
            due.retransmitted = true;
            due.rto = (due.rto * 2).min(MAX_RTO);
            self.retransmissions += 1;
        } else {
            due.rto = rto;
        }
        due.sent_at = Some(now);
        Some((due.id, &due.bytes))
    }

    /// When the next retransmission is due. Messages never sent yet are not included:
    /// see [`ReliableSender::has_unsent`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.iter().filter_map(|o| o.sent_at.map(|t| t + o.rto)).min()
    }

    /// True if something can be sent right now without waiting.
    pub fn has_unsent(&self) -> bool {
        (!self.queued.is_empty() && self.in_flight.len() < WINDOW) || self.in_flight.iter().any(|o| o.sent_at.is_none())
    }

    /// Processes a cumulative acknowledgement; returns an RTT sample if one is valid.
    pub fn on_ack(&mut self, now: Instant, up_to: u32) -> Option<Duration> {
        let mut sample = None;
        while let Some(front) = self.in_flight.front() {
            // Ids are consecutive from 1 and never come near wrapping in one session.
            if front.id > up_to || front.sent_at.is_none() {
                break;
            }
            if !front.retransmitted {
                sample = front.sent_at.map(|t| now.saturating_duration_since(t));
            }
            self.in_flight.pop_front();
        }
        if let Some(r) = sample {
            self.observe_rtt(r);
        }
        sample
    }

    /// RFC 6298 §2 smoothing.
    pub fn observe_rtt(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct ReliableReceiver {
    delivered: u32,
    early: Vec<(u32, ControlMessage)>,
}

impl ReliableReceiver {
    /// Accepts a message; appends whatever became deliverable, in order, to `out`.
    /// Returns false for a duplicate (one already delivered): the caller acknowledges
    /// it at once, since the peer evidently missed the acknowledgement.
    pub fn on_message(&mut self, id: u32, message: ControlMessage, out: &mut Vec<ControlMessage>) -> bool {
        if id <= self.delivered {
            return false;
        }
        if id == self.delivered + 1 {
            out.push(message);
            self.delivered = id;
            while let Some(pos) = self.early.iter().position(|(i, _)| *i == self.delivered + 1) {
                let (i, m) = self.early.swap_remove(pos);
                out.push(m);
                self.delivered = i;
            }
        } else if id - self.delivered <= REORDER_SLOTS as u32
            && self.early.len() < REORDER_SLOTS
            && !self.early.iter().any(|(i, _)| *i == id)
        {
            self.early.push((id, message));
        }
        true
    }

    /// The cumulative acknowledgement to send.
    pub fn ack(&self) -> u32 {
        self.delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mute(m: bool) -> ControlMessage {
        ControlMessage::Mute { muted: m, deafened: false }
    }

    #[test]
    fn in_order_delivery_despite_reordering_and_duplicates() {
        let mut rx = ReliableReceiver::default();
        let mut out = Vec::new();
        rx.on_message(2, mute(false), &mut out);
        assert!(out.is_empty());
        assert_eq!(rx.ack(), 0);
        assert!(rx.on_message(1, mute(true), &mut out));
        assert!(!rx.on_message(1, mute(true), &mut out), "a duplicate");
        assert!(rx.on_message(3, mute(true), &mut out));
        assert_eq!(out, vec![mute(true), mute(false), mute(true)]);
        assert_eq!(rx.ack(), 3);
    }

    #[test]
    fn retransmits_with_backoff_until_acked() {
        let t0 = Instant::now();
        let mut tx = ReliableSender::default();
        tx.push(&mute(true));
        let (id, _) = tx.poll_transmit(t0).unwrap();
        assert_eq!(id, 1);
        assert!(tx.poll_transmit(t0 + Duration::from_millis(100)).is_none());
        assert_eq!(tx.poll_transmit(t0 + Duration::from_millis(250)).map(|(i, _)| i), Some(1));
        // Backed off to 500 ms.
        assert!(tx.poll_transmit(t0 + Duration::from_millis(600)).is_none());
        assert!(tx.poll_transmit(t0 + Duration::from_millis(750)).is_some());
        assert_eq!(tx.retransmissions(), 2);
        // Karn: no RTT sample from a retransmitted message.
        assert_eq!(tx.on_ack(t0 + Duration::from_millis(800), 1), None);
        assert!(tx.is_idle());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn rtt_sample_and_adaptive_timeout() {
        let t0 = Instant::now();
        let mut tx = ReliableSender::default();
        tx.push(&mute(true));
        tx.poll_transmit(t0).unwrap();
        assert_eq!(tx.on_ack(t0 + Duration::from_millis(40), 1), Some(Duration::from_millis(40)));
        // RTO = 40 + 4·20 + the peer's ack delay (40) = 160 ms now.
        tx.push(&mute(false));
        tx.poll_transmit(t0).unwrap();
        assert!(tx.poll_transmit(t0 + Duration::from_millis(159)).is_none());
        assert!(tx.poll_transmit(t0 + Duration::from_millis(160)).is_some());
    }

    #[test]
    fn window_limits_in_flight() {
        let t0 = Instant::now();
        let mut tx = ReliableSender::default();
        for _ in 0..40 {
            tx.push(&mute(true));
        }
        let mut sent = 0;
        while tx.poll_transmit(t0).is_some() {
            sent += 1;
        }
        assert_eq!(sent, WINDOW);
        tx.on_ack(t0, 10);
        let mut more = 0;
        while tx.poll_transmit(t0).is_some() {
            more += 1;
        }
        assert_eq!(more, 8);
    }
}
