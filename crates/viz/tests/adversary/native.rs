//! A native client driven by hand, one step at a time, to do what the real client never
//! would: hold many sessions, guess passwords, stop halfway through a handshake.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use viz_audio::AudioParams;
use viz_proto::password::JoinerPassword;
use viz_proto::{ControlMessage, Event, HostKeyPolicy, Initiator, Keypair, MAX_DATAGRAM, SessionConfig};

pub struct Session {
    sock: UdpSocket,
    pub conn: viz_proto::Connection,
    buf: Vec<u8>,
    out: Vec<u8>,
    plain: Vec<u8>,
}

/// The password of [`password_room`].
pub const PASSWORD: &str = "correct horse";

/// `viz serve` with [`PASSWORD`], its files under `dir`.
pub fn password_room(dir: &std::path::Path) -> crate::common::room::Server {
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    crate::common::room::serve(&dir.join("server"), &["--password-file", pw.to_str().unwrap()])
}

/// Where `viz://127.0.0.1:PORT#fingerprint` points.
pub fn address(join: &str) -> SocketAddr {
    let rest = join.trim_start_matches("viz://");
    rest.split('#').next().unwrap().parse().unwrap()
}

/// A UDP socket on `from` (any port), connected to `target`.
pub async fn socket(target: SocketAddr, from: IpAddr) -> UdpSocket {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap();
    sock.connect(target).await.unwrap();
    sock
}

impl Session {
    /// Completes a handshake from a fresh socket on `from`; `None` if the server did not
    /// answer within `timeout`.
    pub async fn open(target: SocketAddr, from: IpAddr, timeout: Duration) -> Option<Session> {
        let sock = socket(target, from).await;
        let keypair = Keypair::generate().unwrap();
        let began = Instant::now();
        let mut init = Initiator::new(
            &keypair,
            HostKeyPolicy::FirstUse,
            rand::random::<u32>().max(1),
            began,
            SessionConfig::default(),
        )
        .unwrap();
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let now = Instant::now();
            if now > began + timeout {
                return None;
            }
            if let Some(d) = init.poll_transmit(now) {
                sock.send(d).await.unwrap();
            }
            let wake = init.poll_timeout().min(began + timeout);
            tokio::select! {
                got = sock.recv(&mut buf) => {
                    let Ok(n) = got else { return None };
                    if let Ok(Some(est)) = init.handle_datagram(Instant::now(), &buf[..n]) {
                        return Some(Session {
                            sock,
                            conn: est.connection,
                            buf,
                            out: vec![0u8; MAX_DATAGRAM],
                            plain: vec![0u8; MAX_DATAGRAM],
                        });
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Sends what is queued (the handshake's last message, so that the server has
    /// the session) and takes what arrives for `wait`.
    pub async fn flush(&mut self, wait: Duration) {
        let _ = self.next_event(wait).await;
    }

    /// Sends `password` as a guess (the first step of the exchange).
    pub fn guess(&mut self, password: &str) -> JoinerPassword {
        let (exchange, start) = JoinerPassword::start(password, self.conn.handshake_hash()).unwrap();
        self.conn.send_control(ControlMessage::PasswordStart(start));
        exchange
    }

    /// The whole password exchange and Hello, as the real client does; returns the
    /// server's last answer (its Hello when admitted).
    pub async fn join_with_password(&mut self, name: &str, password: &str) -> Option<Event> {
        let exchange = self.guess(password);
        self.hello(name);
        let Some(Event::Control(ControlMessage::PasswordReply { reply, proof })) =
            self.answer(Duration::from_secs(5)).await
        else {
            panic!("no password reply for {name}");
        };
        let joiner_proof = exchange.finish(&reply, &proof).expect("the server knows the password");
        self.conn.send_control(ControlMessage::PasswordProof(joiner_proof));
        self.answer(Duration::from_secs(5)).await
    }

    pub fn hello(&mut self, name: &str) {
        self.conn.send_control(ControlMessage::Hello(viz_client::join::hello(name, &AudioParams::default())));
    }

    /// Sends what is due and waits for the next event, up to `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            while let Some(n) = self.conn.poll_transmit(now, &mut self.out) {
                let _ = self.sock.send(&self.out[..n]).await;
            }
            if let Some(e) = self.conn.poll_event() {
                return Some(e);
            }
            if now >= deadline {
                return None;
            }
            let wake = self.conn.poll_timeout().unwrap_or(deadline).min(deadline);
            tokio::select! {
                got = self.sock.recv(&mut self.buf) => {
                    let Ok(n) = got else { return None };
                    let _ = self.conn.handle_datagram(Instant::now(), &self.buf[..n], &mut self.plain);
                }
                _ = tokio::time::sleep_until(wake.max(now + Duration::from_millis(1)).into()) => {
                    self.conn.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// Waits for a control message or the end, skipping rosters and talking lists.
    pub async fn answer(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await? {
                Event::Control(ControlMessage::Roster(_) | ControlMessage::Talking(_)) => continue,
                e => return Some(e),
            }
        }
    }
}
