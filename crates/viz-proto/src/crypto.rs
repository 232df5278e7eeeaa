//! Transport encryption: ChaCha20-Poly1305 (RFC 8439) with the 13-byte datagram header
//! as associated data, explicit 64-bit counters as nonces, and rekeying.
//!
//! The two directions use the two keys of the Noise `Split()`, so a datagram reflected
//! back to its sender never authenticates. The nonce is the Noise ChaChaPoly nonce:
//! 32 zero bits followed by the little-endian counter (Noise §12.3).
//!
//! **Rekey.** Each direction replaces its key with Noise's `REKEY(k)` — the first 32
//! bytes of `ENCRYPT(k, 2⁶⁴−1, ε, 0³²)` (Noise §4.2) — after [`RekeyPolicy::after`] or
//! [`RekeyPolicy::messages`], whichever comes first, and flips the key-phase bit in the
//! header (like QUIC's key update, RFC 9001 §6). Counters keep increasing across
//! rekeys, so one replay window covers every phase. The receiver derives the next key
//! itself; it switches when a datagram with the other phase *and* a counter above the
//! current phase's first counter authenticates, and keeps the previous key for a few
//! seconds for stragglers. Old keys are zeroed, so a key compromise does not expose
//! earlier phases.
//!
//! Why not snow's `StatelessTransportState`: it has explicit nonces but no associated
//! data. The header must be authenticated (else the phase bit and receiver index could
//! be flipped freely), so the session keys are taken from snow's raw split and sealed
//! here with ring's ChaCha20-Poly1305. Not the RustCrypto crate snow uses for the
//! handshake: its AVX2 Poly1305 spends ~1.5 µs setting up for every message, which for
//! a voice datagram (~100 bytes) is nine times ring's whole seal (0.19 µs here), and a
//! room seals one datagram per listener per frame.

use std::time::{Duration, Instant};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroizing;

use crate::error::{DropReason, SendError};
use crate::replay::{ReplayCheck, ReplayWindow};
use crate::wire::{self, TAG_LEN, TRANSPORT_HEADER_LEN};

/// A sender stops before the counter could ever reach the value reserved by Noise
/// (2⁶⁴−1); WireGuard's REJECT_AFTER_MESSAGES uses the same margin.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

/// How long the receiver keeps the previous phase's key for reordered datagrams.
const PREVIOUS_KEY_LIFETIME: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Rekey after this long with one key (WireGuard's REKEY_AFTER_TIME).
    pub after: Duration,
    /// Rekey after this many datagrams with one key.
    pub messages: u64,
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        Self { after: Duration::from_secs(120), messages: 1 << 20 }
    }
}

/// One direction's key, zeroed on drop. ring's key objects do not zero themselves, so
/// none is kept: one is made on the stack for each datagram (~35 ns, a sixth of a
/// seal) and lives no longer than a cipher's working state does anyway.
struct CipherKey {
    key: Zeroizing<[u8; 32]>,
}

impl CipherKey {
    fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self { key }
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always valid for ChaCha20-Poly1305.
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &*self.key).expect("ChaCha20-Poly1305 takes 32-byte keys"))
    }

    fn nonce(counter: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_le_bytes());
        Nonce::assume_unique_for_key(n)
    }

    fn seal(&self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        // Sealing fails only past ChaCha20's 256 GiB per message; a datagram is far
        // below. An all-zero tag would simply not authenticate at the peer.
        self.aead()
            .seal_in_place_separate_tag(Self::nonce(counter), Aad::from(ad), buf)
            .map_or([0; TAG_LEN], |t: Tag| t.as_ref().try_into().unwrap_or([0; TAG_LEN]))
    }

    fn open(&self, counter: u64, ad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else { return false };
        self.aead().open_in_place_separate_tag(Self::nonce(counter), Aad::from(ad), Tag::from(tag), buf, 0..).is_ok()
    }

    /// Noise REKEY(k).
    fn rekeyed(&self) -> Self {
        let mut block = Zeroizing::new([0u8; 32]);
        let _tag = self.seal(u64::MAX, &[], &mut *block);
        Self::new(block)
    }
}

/// The sending half of a session.
pub struct Sender {
    key: CipherKey,
    phase: u8,
    next_counter: u64,
    since_rekey: u64,
    rekeyed_at: Instant,
    policy: RekeyPolicy,
    rekeys: u32,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("phase", &self.phase)
            .field("next_counter", &self.next_counter)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(key: Zeroizing<[u8; 32]>, now: Instant, policy: RekeyPolicy) -> Self {
        Self { key: CipherKey::new(key), phase: 0, next_counter: 0, since_rekey: 0, rekeyed_at: now, policy, rekeys: 0 }
    }

    pub fn rekeys(&self) -> u32 {
        self.rekeys
    }

    /// Encrypts `out[13..13 + payload_len]` in place and writes header and tag around it.
    /// Returns the datagram length.
    pub fn seal(
        &mut self,
        now: Instant,
        receiver: u32,
        out: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, SendError> {
        let total = TRANSPORT_HEADER_LEN + payload_len + TAG_LEN;
        if total > wire::MAX_DATAGRAM {
            return Err(SendError::TooLarge(payload_len));
        }
        if out.len() < total {
            return Err(SendError::BufferTooSmall);
        }
        if self.next_counter >= REJECT_AFTER_MESSAGES {
            return Err(SendError::Exhausted);
        }
        if self.since_rekey >= self.policy.messages
            || now.saturating_duration_since(self.rekeyed_at) >= self.policy.after
        {
            self.key = self.key.rekeyed();
            self.phase ^= 1;
            self.since_rekey = 0;
            self.rekeyed_at = now;
            self.rekeys += 1;
        }
        let counter = self.next_counter;
        self.next_counter += 1;
        self.since_rekey += 1;
        wire::write_transport_header(out, self.phase, receiver, counter);
        let (header, rest) = out.split_at_mut(TRANSPORT_HEADER_LEN);
        let tag = self.key.seal(counter, header, &mut rest[..payload_len]);
        rest[payload_len..payload_len + TAG_LEN].copy_from_slice(&tag);
        Ok(total)
    }
}

/// The receiving half of a session.
pub struct Receiver {
    current: CipherKey,
    phase: u8,
    /// First counter seen in the current phase.
    phase_start: u64,
    next: CipherKey,
    previous: Option<(CipherKey, Instant)>,
    window: ReplayWindow,
    rekeys: u32,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("phase", &self.phase)
            .field("highest", &self.window.highest())
            .finish_non_exhaustive()
    }
}

/// A datagram that authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub payload_len: usize,
    /// The highest counter so far: the freshest datagram of the session.
    pub newest: bool,
    pub counter: u64,
}

impl Receiver {
    pub fn new(key: Zeroizing<[u8; 32]>) -> Self {
        let current = CipherKey::new(key);
        let next = current.rekeyed();
        Self { current, phase: 0, phase_start: 0, next, previous: None, window: ReplayWindow::new(), rekeys: 0 }
    }

    pub fn highest_counter(&self) -> Option<u64> {
        self.window.highest()
    }

    pub fn rekeys(&self) -> u32 {
        self.rekeys
    }

    /// Checks the replay window, authenticates and decrypts `ciphertext` into `out`
    /// (which must hold `ciphertext.len() - 16` bytes), and only then commits the
    /// counter. A datagram that fails leaves no trace in the session.
    pub fn open(
        &mut self,
        now: Instant,
        phase: u8,
        counter: u64,
        header: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<Opened, DropReason> {
        match self.window.check(counter) {
            ReplayCheck::Fresh => {}
            ReplayCheck::Replayed => return Err(DropReason::Replayed),
            ReplayCheck::TooOld => return Err(DropReason::TooOld),
        }
        let Some(body_len) = ciphertext.len().checked_sub(TAG_LEN) else { return Err(DropReason::TooShort) };
        let Some(plain) = out.get_mut(..body_len) else { return Err(DropReason::TooLong) };
        plain.copy_from_slice(&ciphertext[..body_len]);
        let tag = &ciphertext[body_len..];
        if self.previous.as_ref().is_some_and(|(_, until)| now > *until) {
            self.previous = None;
        }

        let ok = if phase == self.phase {
            self.current.open(counter, header, plain, tag)
        } else if counter > self.phase_start || self.window.highest().is_none() {
            let ok = self.next.open(counter, header, plain, tag);
            if ok {
                let next_next = self.next.rekeyed();
                let old = std::mem::replace(&mut self.current, std::mem::replace(&mut self.next, next_next));
                self.previous = Some((old, now + PREVIOUS_KEY_LIFETIME));
                self.phase ^= 1;
                self.phase_start = counter;
                self.rekeys += 1;
            }
            ok
        } else {
            self.previous.as_ref().is_some_and(|(k, _)| k.open(counter, header, plain, tag))
        };
        if !ok {
            return Err(DropReason::Decrypt);
        }
        let newest = self.window.commit(counter);
        Ok(Opened { payload_len: body_len, newest, counter })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Datagram;

    fn seal(s: &mut Sender, now: Instant, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; wire::MAX_DATAGRAM];
        buf[TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + payload.len()].copy_from_slice(payload);
        let n = s.seal(now, 42, &mut buf, payload.len()).unwrap();
        buf.truncate(n);
        buf
    }

    fn open(r: &mut Receiver, now: Instant, d: &[u8]) -> Result<Vec<u8>, DropReason> {
        let Datagram::Transport { phase, counter, header, ciphertext, .. } = Datagram::parse(d)? else {
            return Err(DropReason::UnknownType);
        };
        let mut out = vec![0u8; wire::MAX_DATAGRAM];
        let o = r.open(now, phase, counter, header, ciphertext, &mut out)?;
        out.truncate(o.payload_len);
        Ok(out)
    }

    /// Pins the wire format across AEAD implementations: this ciphertext and tag were
    /// produced by RustCrypto's `chacha20poly1305` 0.10 (which sealed datagrams before
    /// ring did) with our nonce layout, so peers running earlier builds still interoperate.
    #[test]
    fn sealing_matches_the_ciphertext_earlier_builds_produced() {
        let key = CipherKey::new(Zeroizing::new(std::array::from_fn(|i| 0x80 + i as u8)));
        let ad: [u8; 13] = std::array::from_fn(|i| 0x50 + i as u8);
        let mut buf = b"Ladies and Gentlemen of the class of '99".to_vec();
        let tag = key.seal(0x0102_0304_0506_0708, &ad, &mut buf);
        let sealed: String = buf.iter().chain(tag.iter()).map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            sealed,
            "b8d08ad235a97bbc4dd551cc6b1911b3961e31851245f58e7f581dbe0627e811f7465bd39dd94d55\
             fab80f4386ac98a32a9ef8e54778de48"
        );
        assert!(!key.open(0x0102_0304_0506_0709, &ad, &mut buf.clone(), &tag), "another counter is another nonce");
        assert!(key.open(0x0102_0304_0506_0708, &ad, &mut buf, &tag));
        assert_eq!(buf, b"Ladies and Gentlemen of the class of '99");
    }

    #[test]
    fn seal_open_replay_and_bit_flips() {
        let now = Instant::now();
        let mut s = Sender::new(Zeroizing::new([1; 32]), now, RekeyPolicy::default());
        let mut r = Receiver::new(Zeroizing::new([1; 32]));
        let d = seal(&mut s, now, b"hello");
        assert_eq!(d.len(), 13 + 5 + 16);
        // Every single-bit flip anywhere (header included) is rejected and does not
        // advance the window: the genuine datagram still opens afterwards.
        for bit in 0..d.len() * 8 {
            let mut bad = d.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&mut r, now, &bad).is_err(), "bit {bit}");
        }
        assert_eq!(open(&mut r, now, &d).unwrap(), b"hello");
        assert_eq!(open(&mut r, now, &d), Err(DropReason::Replayed));
    }

    #[test]
    fn wrong_direction_key_rejects_reflection() {
        let now = Instant::now();
        let mut a_to_b = Sender::new(Zeroizing::new([1; 32]), now, RekeyPolicy::default());
        let mut a_receiving = Receiver::new(Zeroizing::new([2; 32]));
        let d = seal(&mut a_to_b, now, b"reflect me");
        assert_eq!(open(&mut a_receiving, now, &d), Err(DropReason::Decrypt));
    }

    #[test]
    fn rekey_by_count_and_time_with_reordering_across_phases() {
        let t0 = Instant::now();
        let policy = RekeyPolicy { after: Duration::from_secs(10), messages: 5 };
        let mut s = Sender::new(Zeroizing::new([9; 32]), t0, policy);
        let mut r = Receiver::new(Zeroizing::new([9; 32]));
        let mut datagrams: Vec<Vec<u8>> =
            (0..23).map(|i| seal(&mut s, t0 + Duration::from_millis(i), &[i as u8])).collect();
        assert_eq!(s.rekeys(), 4);
        // Time-based: one more after 10 s.
        datagrams.push(seal(&mut s, t0 + Duration::from_secs(11), &[99]));
        assert_eq!(s.rekeys(), 5);
        // Deliver with the last datagram of each phase swapped with the first of the
        // next: stragglers from the previous phase still open.
        for boundary in [5, 10, 15, 20, 23] {
            datagrams.swap(boundary - 1, boundary);
        }
        let mut opened = 0;
        for d in &datagrams {
            if open(&mut r, t0 + Duration::from_secs(11), d).is_ok() {
                opened += 1;
            }
        }
        assert_eq!(opened, datagrams.len());
        assert_eq!(r.rekeys(), 5);
    }

    #[test]
    fn forged_phase_flip_does_not_switch_keys() {
        let now = Instant::now();
        let mut s = Sender::new(Zeroizing::new([3; 32]), now, RekeyPolicy::default());
        let mut r = Receiver::new(Zeroizing::new([3; 32]));
        let mut d = seal(&mut s, now, b"x");
        d[0] ^= 1; // claim the other phase
        assert_eq!(open(&mut r, now, &d), Err(DropReason::Decrypt));
        assert_eq!(r.rekeys(), 0);
        let d2 = seal(&mut s, now, b"y");
        assert_eq!(open(&mut r, now, &d2).unwrap(), b"y");
    }

    #[test]
    fn previous_key_expires() {
        let t0 = Instant::now();
        let policy = RekeyPolicy { after: Duration::from_secs(1000), messages: 2 };
        let mut s = Sender::new(Zeroizing::new([4; 32]), t0, policy);
        let mut r = Receiver::new(Zeroizing::new([4; 32]));
        let a = seal(&mut s, t0, b"a");
        let _b = seal(&mut s, t0, b"b");
        let c = seal(&mut s, t0, b"c"); // new phase
        assert!(open(&mut r, t0, &c).is_ok());
        assert_eq!(open(&mut r, t0 + Duration::from_secs(6), &a), Err(DropReason::Decrypt));
    }

    #[test]
    fn oversized_payload_is_refused() {
        let now = Instant::now();
        let mut s = Sender::new(Zeroizing::new([1; 32]), now, RekeyPolicy::default());
        let mut buf = vec![0u8; 4000];
        assert_eq!(s.seal(now, 1, &mut buf, wire::MAX_PAYLOAD + 1), Err(SendError::TooLarge(wire::MAX_PAYLOAD + 1)));
        assert!(s.seal(now, 1, &mut buf, wire::MAX_PAYLOAD).is_ok());
        assert_eq!(s.seal(now, 1, &mut [0u8; 20], 10), Err(SendError::BufferTooSmall));
    }
}
