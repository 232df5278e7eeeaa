//! Join addresses, as people paste them.
//!
//! | form | transport |
//! | --- | --- |
//! | `host`, `host:port`, `[::1]:port`, `viz://host:port` | UDP, falling back to WebSocket |
//! | `udp://host:port` | UDP only |
//! | `ws://host[:port][/path]`, `http://…` | WebSocket |
//! | `wss://host[:port][/path]`, `https://…` | WebSocket over TLS (what HTTP tunnels give) |
//!
//! Any form may end in `#FINGERPRINT` to pin the host's key. The default port is 8443
//! for native addresses, 80 and 443 for `ws://` and `wss://`.

use std::fmt;

use viz_proto::Fingerprint;

pub const DEFAULT_PORT: u16 = 8443;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportChoice {
    /// UDP first; WebSocket on the same port if UDP gets no answer.
    Auto,
    Udp,
    WebSocket {
        tls: bool,
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAddress {
    pub host: String,
    pub port: u16,
    pub transport: TransportChoice,
    pub fingerprint: Option<Fingerprint>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("'{0}' is not a valid port (1-65535)")]
    Port(String),
    #[error("'{0}' is not a host fingerprint (expected 20 base32 characters like k3xq-7m2a-pq4z-rt6b-ya2c)")]
    Fingerprint(String),
    #[error("unsupported address scheme '{0}://' (use viz://, udp://, ws:// or wss://)")]
    Scheme(String),
    #[error("'{0}' is not a host name or IP address")]
    Host(String),
    #[error("a native address has no path ('{0}'); for WebSocket use ws:// or wss://")]
    Path(String),
}

impl JoinAddress {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        let (rest, fingerprint) = match input.split_once('#') {
            Some((rest, fp)) => {
                (rest, Some(Fingerprint::parse(fp).ok_or_else(|| AddressError::Fingerprint(fp.to_owned()))?))
            }
            None => (input, None),
        };
        let (scheme, rest) = match rest.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, rest),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let native_path = |transport| if path == "/" { Ok(transport) } else { Err(AddressError::Path(path.clone())) };
        let (transport, default_port) = match scheme.as_deref() {
            None | Some("viz") => (native_path(TransportChoice::Auto)?, DEFAULT_PORT),
            Some("udp") => (native_path(TransportChoice::Udp)?, DEFAULT_PORT),
            Some("ws" | "http") => (TransportChoice::WebSocket { tls: false, path }, 80),
            Some("wss" | "https") => (TransportChoice::WebSocket { tls: true, path }, 443),
            Some(other) => return Err(AddressError::Scheme(other.to_owned())),
        };
        let (host, port) = split_host_port(authority, default_port)?;
        Ok(Self { host, port, transport, fingerprint })
    }

    /// The key under which the host's identity is remembered: `host:port`.
    pub fn known_hosts_key(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host.to_ascii_lowercase(), self.port)
        } else {
            format!("{}:{}", self.host.to_ascii_lowercase(), self.port)
        }
    }

    /// `host:port` for socket address resolution.
    pub fn socket_target(&self) -> String {
        self.known_hosts_key()
    }

    /// The WebSocket URL used for this address (for `Auto`, the fallback).
    pub fn websocket_url(&self) -> String {
        let (tls, path) = match &self.transport {
            TransportChoice::WebSocket { tls, path } => (*tls, path.as_str()),
            _ => (false, "/"),
        };
        format!("{}://{}{}", if tls { "wss" } else { "ws" }, self.socket_target(), path)
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), AddressError> {
    let parse_port =
        |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| AddressError::Port(p.to_owned()));
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port or [v6]
        let (host, after) = rest.split_once(']').ok_or_else(|| AddressError::Host(authority.to_owned()))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AddressError::Host(authority.to_owned()));
        }
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => default_port,
            None => return Err(AddressError::Host(authority.to_owned())),
        };
        (host.to_owned(), port)
    } else if authority.matches(':').count() > 1 {
        // A bare IPv6 address without brackets: no port.
        (authority.to_owned(), default_port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_owned(), parse_port(p)?),
            None => (authority.to_owned(), default_port),
        }
    };
    // Host names are case-insensitive (RFC 4343); keep one spelling. Lowercase before
    // checking: some letters lowercase to a letter plus a combining mark ('İ' is 'i̇'),
    // and an address must read back the same once printed.
    let host = host.to_lowercase();
    let valid = if host.contains(':') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && host.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    if !valid {
        return Err(AddressError::Host(authority.to_owned()));
    }
    Ok((host, port))
}

impl fmt::Display for JoinAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            TransportChoice::WebSocket { .. } => f.write_str(&self.websocket_url())?,
            TransportChoice::Udp => write!(f, "udp://{}", self.socket_target())?,
            TransportChoice::Auto => write!(f, "viz://{}", self.socket_target())?,
        }
        if let Some(fp) = &self.fingerprint {
            write!(f, "#{fp}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fp() -> Fingerprint {
        viz_proto::Keypair::from_private([3; 32]).fingerprint()
    }

    #[test]
    fn forms() {
        let a = JoinAddress::parse("example.org").unwrap();
        assert_eq!((a.host.as_str(), a.port, &a.transport), ("example.org", 8443, &TransportChoice::Auto));
        let a = JoinAddress::parse("10.0.0.1:9000").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("10.0.0.1", 9000));
        let a = JoinAddress::parse(&format!("viz://host:1234#{}", fp())).unwrap();
        assert_eq!(a.fingerprint, Some(fp()));
        assert_eq!(a.port, 1234);
        assert_eq!(JoinAddress::parse(&a.to_string()).unwrap(), a);
        let a = JoinAddress::parse("wss://abc.trycloudflare.com").unwrap();
        assert_eq!(a.port, 443);
        assert_eq!(a.websocket_url(), "wss://abc.trycloudflare.com:443/");
        let a = JoinAddress::parse("https://abc.trycloudflare.com/room").unwrap();
        assert_eq!(a.transport, TransportChoice::WebSocket { tls: true, path: "/room".into() });
        let a = JoinAddress::parse("ws://127.0.0.1:8443").unwrap();
        assert_eq!(a.websocket_url(), "ws://127.0.0.1:8443/");
        let a = JoinAddress::parse("[::1]:7000").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 7000));
        assert_eq!(a.known_hosts_key(), "[::1]:7000");
        let a = JoinAddress::parse("::1").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 8443));
        assert_eq!(JoinAddress::parse("udp://h:1").unwrap().transport, TransportChoice::Udp);
        let a = JoinAddress::parse("Host.Example:5").unwrap();
        assert_eq!((a.host.as_str(), a.known_hosts_key().as_str()), ("host.example", "host.example:5"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(JoinAddress::parse(""), Err(AddressError::Empty));
        assert_eq!(JoinAddress::parse("h:0"), Err(AddressError::Port("0".into())));
        assert_eq!(JoinAddress::parse("h:99999"), Err(AddressError::Port("99999".into())));
        assert_eq!(JoinAddress::parse("h#nope"), Err(AddressError::Fingerprint("nope".into())));
        assert_eq!(JoinAddress::parse("ftp://h"), Err(AddressError::Scheme("ftp".into())));
        assert!(JoinAddress::parse(":8443").is_err());
        assert!(JoinAddress::parse("[::1").is_err());
        assert!(JoinAddress::parse("[nonsense]:1").is_err());
        assert!(JoinAddress::parse("a:b:c").is_err());
        assert!(JoinAddress::parse("bad host:1").is_err());
        assert_eq!(JoinAddress::parse("h/x"), Err(AddressError::Path("/x".into())));
        assert!(JoinAddress::parse("viz://h:1/").is_ok());
    }

    #[test]
    fn a_letter_that_lowercases_to_a_combining_mark_is_not_a_host() {
        // Found by the user_text fuzz target: 'İ' lowercases to "i\u{307}", which is not
        // a host name character, so the printed address would not read back.
        assert_eq!(JoinAddress::parse("İ"), Err(AddressError::Host("İ".into())));
        assert_eq!(JoinAddress::parse("Ärger.example").unwrap().host, "ärger.example");
    }

    proptest! {
        #[test]
        fn never_panics_and_reads_back_what_it_prints(s in ".{0,80}") {
            if let Ok(a) = JoinAddress::parse(&s) {
                prop_assert_eq!(JoinAddress::parse(&a.to_string()), Ok(a));
            }
        }
    }
}
