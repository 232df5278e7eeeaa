//! Which plain-RTP senders a room mixes, and from where.
//!
//! Plain RTP has no authentication: anyone who can reach the port can send any SSRC.
//! So an SSRC is only mixed once it is *allowed* — on the command line
//! (`--rtp-allow SSRC[@ADDR]`), by an admin through the API, or by `--rtp-open` on a
//! trusted LAN — and an allowed SSRC only from its address: the one given, or else the
//! one its first packet came from. `ADDR` may be `IP` (any port of that host: a sender
//! that restarts on a new port stays allowed) or `IP:PORT`; an admin may also let a
//! sender move freely.
//!
//! Admin decisions are kept in `rtp-senders.json` in the state directory, written
//! before the admin is answered (as participant settings are), so they survive
//! restarts. Command-line rules apply at every start and are not written.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "rtp-senders.json";

/// Where an allowed sender may send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedFrom {
    /// Wherever its first packet comes from (then only there).
    FirstSeen,
    /// The host its first packet comes from, any port (`--rtp-open`: a trusted LAN,
    /// where a sender that restarts on a new port must not need an admin).
    FirstSeenHost,
    /// Any port of this host.
    Host(IpAddr),
    /// Exactly this address.
    Exact(SocketAddr),
    /// Anywhere, moving freely (an admin's choice).
    Anywhere,
}

impl AllowedFrom {
    pub fn admits(&self, from: SocketAddr) -> bool {
        let from = crate::listener::canonical(from);
        match *self {
            Self::FirstSeen | Self::FirstSeenHost => true,
            Self::Host(ip) => from.ip() == ip.to_canonical(),
            Self::Exact(a) => from == crate::listener::canonical(a),
            Self::Anywhere => true,
        }
    }

    /// Text as the API and the file show it: "", "IP", "IP:PORT" or "*".
    pub fn to_text(&self) -> String {
        match self {
            Self::FirstSeen | Self::FirstSeenHost => String::new(),
            Self::Host(ip) => ip.to_string(),
            Self::Exact(a) => a.to_string(),
            Self::Anywhere => "*".into(),
        }
    }

    /// Parses what [`Self::to_text`] writes.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::FirstSeen);
        }
        if s == "*" {
            return Ok(Self::Anywhere);
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Self::Exact(a));
        }
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>()
            .map(Self::Host)
            .map_err(|_| format!("'{s}' is not an address: give IP, IP:PORT, [IPv6]:PORT or * (anywhere)"))
    }
}

/// One `--rtp-allow` rule: `SSRC`, `SSRC@IP` or `SSRC@IP:PORT`; the SSRC in decimal or
/// as 0x-prefixed hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowRule {
    pub ssrc: u32,
    pub from: AllowedFrom,
}

/// An SSRC in decimal or 0x-hex.
pub fn parse_ssrc(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse::<u32>(),
    };
    parsed.map_err(|_| format!("'{s}' is not an SSRC (a 32-bit number, decimal or 0x-hex)"))
}

impl FromStr for AllowRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ssrc, from) = match s.split_once('@') {
            Some((ssrc, addr)) if !addr.trim().is_empty() => (ssrc, AllowedFrom::parse(addr)?),
            Some(_) => return Err(format!("'{s}': nothing after @ (give SSRC, SSRC@IP or SSRC@IP:PORT)")),
            None => (s, AllowedFrom::FirstSeen),
        };
        Ok(Self { ssrc: parse_ssrc(ssrc)?, from })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSender {
    /// `AllowedFrom` as text.
    #[serde(default)]
    from: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    /// Keyed by the SSRC in decimal.
    allowed: BTreeMap<String, StoredSender>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllowError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is not a Viz RTP senders file: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot save RTP senders to {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// The allowed senders: command-line rules, then the admin's (persisted) decisions.
#[derive(Debug)]
pub struct AllowList {
    path: PathBuf,
    cli: BTreeMap<u32, AllowedFrom>,
    stored: BTreeMap<u32, AllowedFrom>,
    /// SSRCs an admin revoked since start (they override command-line rules).
    revoked: std::collections::BTreeSet<u32>,
    open: bool,
}

impl AllowList {
    /// Opens `dir/rtp-senders.json` (missing: empty) beside the command-line rules.
    pub fn open(dir: &Path, cli: &[AllowRule], open: bool) -> Result<Self, AllowError> {
        let path = dir.join(FILE_NAME);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let f: FileFormat = serde_json::from_str(&text)
                    .map_err(|e| AllowError::Parse { path: path.clone(), reason: e.to_string() })?;
                let mut m = BTreeMap::new();
                for (k, v) in f.allowed {
                    let ssrc = parse_ssrc(&k).map_err(|reason| AllowError::Parse { path: path.clone(), reason })?;
                    let from = AllowedFrom::parse(&v.from)
                        .map_err(|reason| AllowError::Parse { path: path.clone(), reason })?;
                    m.insert(ssrc, from);
                }
                m
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(AllowError::Read { path, reason: e.to_string() }),
        };
        Ok(Self {
            path,
            cli: cli.iter().map(|r| (r.ssrc, r.from)).collect(),
            stored,
            revoked: Default::default(),
            open,
        })
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether `ssrc` is allowed, and from where. The admin's decision wins over the
    /// command line; `--rtp-open` allows everyone else from where they first send.
    pub fn rule(&self, ssrc: u32) -> Option<AllowedFrom> {
        if let Some(&f) = self.stored.get(&ssrc) {
            return Some(f);
        }
        if self.revoked.contains(&ssrc) {
            return None;
        }
        self.cli.get(&ssrc).copied().or(self.open.then_some(AllowedFrom::FirstSeenHost))
    }

    /// Allows `ssrc` from `from`, durably.
    pub fn allow(&mut self, ssrc: u32, from: AllowedFrom) -> Result<(), AllowError> {
        let before = self.stored.insert(ssrc, from);
        if let Err(e) = self.save() {
            match before {
                Some(b) => self.stored.insert(ssrc, b),
                None => self.stored.remove(&ssrc),
            };
            return Err(e);
        }
        self.revoked.remove(&ssrc);
        Ok(())
    }

    /// Takes `ssrc` off the list, durably (it becomes pending if it sends again). Under
    /// `--rtp-open` a revoked SSRC stays out until the server restarts.
    pub fn revoke(&mut self, ssrc: u32) -> Result<(), AllowError> {
        if let Some(before) = self.stored.remove(&ssrc)
            && let Err(e) = self.save()
        {
            self.stored.insert(ssrc, before);
            return Err(e);
        }
        self.revoked.insert(ssrc);
        Ok(())
    }

    /// Whether `ssrc` was revoked since start (so `--rtp-open` does not re-admit it).
    pub fn is_revoked(&self, ssrc: u32) -> bool {
        self.revoked.contains(&ssrc) && !self.stored.contains_key(&ssrc)
    }

    fn save(&self) -> Result<(), AllowError> {
        let file = FileFormat {
            version: 1,
            allowed: self.stored.iter().map(|(k, v)| (k.to_string(), StoredSender { from: v.to_text() })).collect(),
        };
        let mut text = serde_json::to_string_pretty(&file)
            .map_err(|e| AllowError::Write { path: self.path.clone(), reason: e.to_string() })?;
        text.push('\n');
        viz_client::store::write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| AllowError::Write { path: self.path.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse_in_every_form_and_bad_ones_say_why() {
        assert_eq!("1234".parse::<AllowRule>().unwrap(), AllowRule { ssrc: 1234, from: AllowedFrom::FirstSeen });
        assert_eq!(
            "0xDEADbeef@10.0.0.5".parse::<AllowRule>().unwrap(),
            AllowRule { ssrc: 0xdeadbeef, from: AllowedFrom::Host("10.0.0.5".parse().unwrap()) }
        );
        assert_eq!("7@10.0.0.5:5004".parse::<AllowRule>().unwrap().from, AllowedFrom::Exact(addr("10.0.0.5:5004")));
        assert_eq!("7@[::1]:5004".parse::<AllowRule>().unwrap().from, AllowedFrom::Exact(addr("[::1]:5004")));
        assert_eq!("7@[::1]".parse::<AllowRule>().unwrap().from, AllowedFrom::Host("::1".parse().unwrap()));
        assert_eq!("7@*".parse::<AllowRule>().unwrap().from, AllowedFrom::Anywhere);
        for bad in ["", "x", "4294967296", "-1", "7@", "7@host.example", "0xZZ"] {
            let e = bad.parse::<AllowRule>().unwrap_err();
            assert!(e.contains("SSRC") || e.contains("address") || e.contains("@"), "{bad}: {e}");
        }
    }

    #[test]
    fn addresses_admit_what_they_say() {
        let host = AllowedFrom::Host("10.0.0.5".parse().unwrap());
        assert!(host.admits(addr("10.0.0.5:1")) && host.admits(addr("10.0.0.5:60000")));
        assert!(!host.admits(addr("10.0.0.6:1")));
        // An IPv4 sender seen on a dual-stack socket as ::ffff:10.0.0.5.
        assert!(host.admits(addr("[::ffff:10.0.0.5]:9")));
        let exact = AllowedFrom::Exact(addr("10.0.0.5:5004"));
        assert!(exact.admits(addr("10.0.0.5:5004")) && !exact.admits(addr("10.0.0.5:5005")));
        for f in [AllowedFrom::FirstSeen, host, exact, AllowedFrom::Anywhere] {
            assert_eq!(AllowedFrom::parse(&f.to_text()).unwrap(), f);
        }
    }

    #[test]
    fn admin_decisions_persist_and_win_over_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let cli = ["5".parse().unwrap(), "6@10.0.0.1".parse().unwrap()];
        let mut list = AllowList::open(dir.path(), &cli, false).unwrap();
        assert_eq!(list.rule(5), Some(AllowedFrom::FirstSeen));
        assert_eq!(list.rule(9), None);
        list.allow(9, AllowedFrom::Exact(addr("10.0.0.2:7000"))).unwrap();
        list.revoke(6).unwrap();
        assert_eq!(list.rule(6), None);
        let reopened = AllowList::open(dir.path(), &cli, false).unwrap();
        assert_eq!(reopened.rule(9), Some(AllowedFrom::Exact(addr("10.0.0.2:7000"))));
        // A command-line rule revoked by an admin applies again after a restart.
        assert_eq!(reopened.rule(6), Some(AllowedFrom::Host("10.0.0.1".parse().unwrap())));

        let mut open = AllowList::open(tempfile::tempdir().unwrap().path(), &[], true).unwrap();
        assert_eq!(open.rule(1234), Some(AllowedFrom::FirstSeenHost));
        open.revoke(1234).unwrap();
        assert_eq!(open.rule(1234), None);
        assert!(open.is_revoked(1234));
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), r#"{"version":1,"allowed":{"x":{}}}"#).unwrap();
        assert!(AllowList::open(dir.path(), &[], false).unwrap_err().to_string().contains("not a Viz RTP senders"));
    }
}
