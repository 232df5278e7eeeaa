//! Who is asking: the visitor's address (behind a trusted local proxy, the one it
//! names) and whether a page's origin may open the room's WebSocket.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// The visitor's address. The TCP peer, unless `trust_proxy` is on and the peer is this
/// machine (a tunnel such as cloudflared or ngrok, or a reverse proxy): then the
/// address in `CF-Connecting-IP`, or the last hop of `X-Forwarded-For` (the one the
/// proxy itself added; earlier entries are the client's to write). Port 0 when named.
pub fn client_addr(headers: &HeaderMap, peer: SocketAddr, trust_proxy: bool) -> SocketAddr {
    if !(trust_proxy && peer.ip().to_canonical().is_loopback()) {
        return peer;
    }
    let header_ip = |name: &str, last_of_list: bool| -> Option<IpAddr> {
        let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
        let item = if last_of_list { value.rsplit(',').next()? } else { value };
        item.trim().parse().ok()
    };
    header_ip("cf-connecting-ip", false)
        .or_else(|| header_ip("x-forwarded-for", true))
        .map_or(peer, |ip| SocketAddr::new(ip.to_canonical(), 0))
}

/// Whether a WebSocket upgrade may proceed: no `Origin` (not a browser, which cannot
/// be made to act for someone else), the page's own origin (the `Host` asked for, or
/// behind a trusted proxy `X-Forwarded-Host`), or one of `allowed` (`--allow-origin`).
/// Any other page a user happens to open must not listen to the room or spend the
/// user's password attempts.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String], trust_proxy: bool) -> bool {
    let Some(origin) = headers.get(ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(authority) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false; // "null" (a sandboxed or file: page) or a scheme no page of ours has
    };
    let host = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let asked =
        if trust_proxy { host("x-forwarded-host").or_else(|| host(HOST.as_str())) } else { host(HOST.as_str()) };
    asked.is_some_and(|h| h.eq_ignore_ascii_case(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_proxy_named_address_counts_only_when_trusted_and_local() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 203.0.113.5")]);
        assert_eq!(client_addr(&h, local, true).ip(), "203.0.113.5".parse::<IpAddr>().unwrap(), "the proxy's own hop");
        assert_eq!(client_addr(&h, local, false), local, "not trusted");
        assert_eq!(client_addr(&h, remote, true), remote, "only a proxy on this machine is believed");
        let cf = headers(&[("cf-connecting-ip", "2001:db8::1"), ("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(client_addr(&cf, local, true).ip(), "2001:db8::1".parse::<IpAddr>().unwrap());
        let junk = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(client_addr(&junk, local, true), local);
    }

    #[test]
    fn only_the_pages_own_origin_or_an_allowed_one_may_open_the_websocket() {
        let same = headers(&[("host", "room.example:4011"), ("origin", "https://room.example:4011")]);
        assert!(origin_allowed(&same, &[], false));
        let evil = headers(&[("host", "room.example:4011"), ("origin", "https://evil.example")]);
        assert!(!origin_allowed(&evil, &[], false));
        assert!(origin_allowed(&evil, &["https://evil.example/".into()], false), "--allow-origin");
        assert!(origin_allowed(&headers(&[("host", "room.example")]), &[], false), "no Origin: not a browser");
        let null = headers(&[("host", "room.example"), ("origin", "null")]);
        assert!(!origin_allowed(&null, &[], false));
        let tunnel = headers(&[
            ("host", "localhost:4011"),
            ("x-forwarded-host", "abc.trycloudflare.com"),
            ("origin", "https://abc.trycloudflare.com"),
        ]);
        assert!(origin_allowed(&tunnel, &[], true));
        assert!(!origin_allowed(&tunnel, &[], false), "X-Forwarded-Host only from a trusted proxy");
    }
}
