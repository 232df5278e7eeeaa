//! Browser participants: a WebSocket from the web page ([`crate::web`]) instead of a
//! Noise session. The browser's audio is Opus in the native media payload, so the
//! mixer cannot tell a browser from a native client; its control messages are JSON.
//!
//! A browser proves nothing cryptographically: its identity is a random secret the page
//! keeps in local storage, hashed into a key for the settings file, and the room
//! password (if any) travels inside the WebSocket, which is why the page wants HTTPS
//! or localhost (see the README). Failed passwords count against the same per-address
//! limit as native ones.

use std::net::SocketAddr;
use std::time::Instant;

use blake2::{Blake2s256, Digest};
use tokio::sync::mpsc;
use viz_audio::mixer::Role;
use viz_proto::{ByeReason, JitterEstimator, MediaFrame, OwnedMedia, PublicKey};

use super::Room;
use super::admission::Arrival;
use super::mixing::ToMixer;
use super::participants::Link;
use crate::web::messages::{BrowserFrame, BrowserIn, BrowserOut};

/// Longest browser identity secret accepted (the page sends 22 base64url characters).
const MAX_IDENTITY_LEN: usize = 128;

/// One page's WebSocket. Once its hello is accepted, the participant table has it
/// under [`Link::Browser`].
pub(crate) struct Browser {
    pub peer: SocketAddr,
    pub tx: mpsc::Sender<BrowserFrame>,
    /// Whether it said hello (one hello per connection).
    pub greeted: bool,
    pub inbound: InboundStats,
    /// Loss the page reported for what it receives (drives the mix's FEC).
    pub reported_loss: f32,
}

/// Loss and jitter of a browser's media as the room receives it.
#[derive(Debug, Default)]
pub(crate) struct InboundStats {
    jitter: JitterEstimator,
    highest: Option<(u8, u16)>,
    expected: u64,
    received: u64,
    /// Loss over the last completed second.
    pub loss: f32,
}

impl InboundStats {
    pub(crate) fn on_media(&mut self, stream: u8, seq: u16, timestamp: u32, arrival_samples: i64) {
        self.jitter.on_media(stream, arrival_samples, timestamp);
        // A WebSocket delivers in order: anything not ahead of the highest is a repeat.
        let ahead = match self.highest {
            Some((s, h)) if s == stream => seq.wrapping_sub(h),
            _ => 1,
        };
        if ahead != 0 && ahead < 0x8000 {
            self.expected += u64::from(ahead);
            self.received += 1;
            self.highest = Some((stream, seq));
        }
    }

    /// Closes a one-second interval.
    pub(crate) fn roll(&mut self) {
        if self.expected > 0 {
            self.loss = (1.0 - self.received as f32 / self.expected as f32).clamp(0.0, 1.0);
        }
        self.expected = 0;
        self.received = 0;
    }

    pub(crate) fn jitter_ms(&self) -> f32 {
        (self.jitter.get().as_secs_f64() * 1000.0) as f32
    }
}

/// The settings-file key of a browser identity secret.
pub(crate) fn browser_key(identity: &str) -> PublicKey {
    let mut h = Blake2s256::new();
    h.update(b"viz browser identity v1\0");
    h.update(identity.as_bytes());
    PublicKey(h.finalize().into())
}

/// What a browser is told when its session ends, and whether it should try again.
pub(crate) fn bye_text(reason: ByeReason) -> (String, bool) {
    match reason {
        ByeReason::PasswordRequired => ("this room needs a password".into(), false),
        ByeReason::WrongPassword => ("wrong password".into(), false),
        ByeReason::TooManyAttempts => {
            ("too many failed attempts from this address; try again in a minute".into(), false)
        }
        ByeReason::Kicked => ("an admin removed you from the room".into(), false),
        ByeReason::Replaced => ("you joined again from another tab or window".into(), false),
        ByeReason::ShuttingDown => ("the server is shutting down".into(), true),
        ByeReason::Leaving => ("the host ended the call".into(), false),
        other => (format!("the session ended ({other})"), true),
    }
}

fn frame_json(msg: &BrowserOut) -> BrowserFrame {
    // Serialising these plain structs cannot fail; an empty object would be ignored.
    BrowserFrame::Text(serde_json::to_string(msg).unwrap_or_else(|_| "{}".into()))
}

impl Room<'_> {
    pub(crate) fn on_browser_open(&mut self, conn: u64, peer: SocketAddr, tx: mpsc::Sender<BrowserFrame>) {
        if self.shutting_down.is_some() {
            let (reason, reconnect) = bye_text(ByeReason::ShuttingDown);
            let _ = tx.try_send(BrowserFrame::Close(
                serde_json::to_string(&BrowserOut::Bye { reason, reconnect }).unwrap_or_default(),
            ));
            return;
        }
        let browser = Browser { peer, tx, greeted: false, inbound: InboundStats::default(), reported_loss: 0.0 };
        self.browsers.insert(conn, browser);
    }

    pub(crate) fn on_browser_control(&mut self, conn: u64, msg: BrowserIn, now: Instant) {
        match msg {
            BrowserIn::Hello { name, identity, sends, receives, echo, password } => {
                self.on_browser_hello(conn, name, &identity, Role { sends, receives, echo }, password, now);
            }
            BrowserIn::Mute { muted, deafened } => self.self_muted(Link::Browser(conn), muted, deafened),
            BrowserIn::Volume { id, percent } => self.personal_volume(Link::Browser(conn), id, percent),
            BrowserIn::Report { loss } => {
                if let Some(b) = self.browsers.get_mut(&conn) {
                    b.reported_loss = if loss.is_finite() { loss.clamp(0.0, 1.0) } else { 0.0 };
                }
            }
        }
    }

    fn on_browser_hello(
        &mut self,
        conn: u64,
        name: String,
        identity: &str,
        role: Role,
        password: Option<String>,
        now: Instant,
    ) {
        let Some(b) = self.browsers.get_mut(&conn) else { return };
        if std::mem::replace(&mut b.greeted, true) {
            return;
        }
        let ip = b.peer.ip().to_canonical();
        let via = format!("browser {}", crate::listener::canonical(b.peer));
        if identity.is_empty() || identity.len() > MAX_IDENTITY_LEN {
            self.end_browser(conn, "the page sent no usable identity; reload it".into(), false);
            return;
        }
        if let Some(expected) = self.cfg.password.clone() {
            let Some(given) = password.filter(|p| !p.is_empty()) else {
                self.summary.refused += 1;
                self.end_browser_with(conn, ByeReason::PasswordRequired);
                return;
            };
            if let Err(reason) = self.password_attempt(Some(ip), now) {
                self.end_browser_with(conn, reason);
                return;
            }
            if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
                tracing::info!(%via, "wrong room password");
                self.summary.refused += 1;
                self.end_browser_with(conn, ByeReason::WrongPassword);
                return;
            }
            self.password_proven(Some(ip));
        }
        let own_name = {
            let n = viz_proto::control::sanitize_name(&name);
            if n.is_empty() { "browser guest".to_owned() } else { n }
        };
        let arrival =
            Arrival { key: browser_key(identity), link: Link::Browser(conn), own_name, role, via, wants_levels: true };
        self.admit(arrival, now);
    }

    pub(crate) fn on_browser_media(&mut self, conn: u64, at: Instant, media: OwnedMedia) {
        let Some(p) = self.participants.of_link(Link::Browser(conn)).filter(|p| p.role.sends) else { return };
        let id = p.id;
        let Some(b) = self.browsers.get_mut(&conn) else { return };
        let arrival = at.saturating_duration_since(self.started).as_micros() as i64 * 48 / 1000;
        b.inbound.on_media(media.stream, media.seq, media.timestamp, arrival);
        self.net.media_in += 1;
        self.mixer.send(ToMixer::Media { id, at, media });
    }

    pub(crate) fn on_browser_closed(&mut self, conn: u64) {
        self.browsers.remove(&conn);
        self.link_ended(Link::Browser(conn), ByeReason::Leaving);
    }

    /// Sends one mixed or forwarded packet to a browser; dropped if its socket is full.
    pub(crate) fn send_browser_media(&mut self, conn: u64, frame: &MediaFrame<'_>) {
        let Some(b) = self.browsers.get(&conn) else { return };
        let mut out = vec![0u8; frame.encoded_len()];
        if frame.encode(&mut out).is_some() && b.tx.try_send(BrowserFrame::Binary(out)).is_ok() {
            self.net.media_out += 1;
        } else {
            self.net.browser_dropped += 1;
        }
    }

    /// Sends a JSON message to one browser.
    pub(crate) fn send_browser(&self, conn: u64, msg: &BrowserOut) {
        if let Some(b) = self.browsers.get(&conn) {
            let _ = b.tx.try_send(frame_json(msg));
        }
    }

    fn end_browser_with(&mut self, conn: u64, reason: ByeReason) {
        let (text, reconnect) = bye_text(reason);
        self.end_browser(conn, text, reconnect);
    }

    /// Says goodbye and closes; the socket task reports the close, which forgets it.
    pub(crate) fn end_browser(&mut self, conn: u64, reason: String, reconnect: bool) {
        if let Some(b) = self.browsers.get(&conn) {
            let text = serde_json::to_string(&BrowserOut::Bye { reason, reconnect }).unwrap_or_default();
            let _ = b.tx.try_send(BrowserFrame::Close(text));
        }
    }
}

/// Compares secrets without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_loss_counts_gaps_and_ignores_duplicates() {
        let mut s = InboundStats::default();
        for (i, seq) in [10u16, 11, 13, 13, 14, 17].into_iter().enumerate() {
            s.on_media(7, seq, u32::from(seq) * 960, i as i64 * 960);
        }
        s.roll();
        // Expected 10..=17 (8), of which 5 distinct arrived: 12, 15 and 16 are lost.
        assert!((s.loss - 3.0 / 8.0).abs() < 1e-6, "{}", s.loss);
    }

    #[test]
    fn inbound_loss_survives_sequence_wrap_and_new_stream() {
        let mut s = InboundStats::default();
        for seq in [65534u16, 65535, 0, 1] {
            s.on_media(1, seq, 0, 0);
        }
        s.on_media(2, 500, 0, 0);
        s.roll();
        assert_eq!(s.loss, 0.0);
    }

    #[test]
    fn browser_keys_differ_per_identity_and_are_stable() {
        assert_eq!(browser_key("abc"), browser_key("abc"));
        assert_ne!(browser_key("abc"), browser_key("abd"));
    }

    #[test]
    fn constant_time_eq_compares_whole_secrets() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
