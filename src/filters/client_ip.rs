//! Who the client is. The socket peer, unless the peer is a trusted proxy: then the
//! forwarding header (X-Forwarded-For by default) is walked right to left, skipping trusted
//! addresses, and the first untrusted address is the client. A header from an untrusted peer is
//! never believed. A malformed entry stops the walk: the client is then the last address that
//! was read correctly (a trusted proxy), which errs towards limiting the proxy, never towards
//! believing a forged address.

use std::net::IpAddr;

use super::ipset::IpSet;

/// One entry of X-Forwarded-For: an address, optionally `[v6]`, `[v6]:port` or `v4:port`.
pub fn parse_entry(raw: &str) -> Option<IpAddr> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
            return None;
        }
        return addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (addr, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The client address. `header_values` are the forwarding header's lines in order.
pub fn resolve<'a>(peer: IpAddr, header_values: impl Iterator<Item = &'a str>, trusted: &IpSet) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let entries: Vec<&str> = header_values.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for raw in entries.iter().rev() {
        match parse_entry(raw) {
            Some(ip) => {
                client = ip;
                if !trusted.contains(ip) {
                    return ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// The client address of a request from socket peer `peer`: `header` (the policy's
/// `client_ip.header`) is only read when a trusted proxy could have written it. Values that are
/// not visible ASCII are skipped.
pub fn of_request(peer: IpAddr, headers: &http::HeaderMap, header: &http::HeaderName, trusted: &IpSet) -> IpAddr {
    if trusted.is_empty() {
        return peer;
    }
    let forwarded = headers.get_all(header).iter().filter_map(|v| v.to_str().ok());
    resolve(peer, forwarded, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let trusted = IpSet::parse(["10.0.0.0/8"]).unwrap();
        assert_eq!(
            resolve(ip("203.0.113.5"), ["1.1.1.1"].into_iter(), &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            resolve(ip("203.0.113.5"), std::iter::empty(), &IpSet::default()),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn walks_right_to_left_over_trusted_hops() {
        let trusted = IpSet::parse(["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let h = ["198.51.100.1, 203.0.113.9", "10.0.0.2, [2001:db8::7]:443"];
        assert_eq!(resolve(ip("10.0.0.1"), h.into_iter(), &trusted), ip("203.0.113.9"));
        // Everything trusted: the leftmost address is the client.
        assert_eq!(
            resolve(ip("10.0.0.1"), ["10.1.1.1, 10.2.2.2"].into_iter(), &trusted),
            ip("10.1.1.1")
        );
        // No header: the proxy itself.
        assert_eq!(resolve(ip("10.0.0.1"), std::iter::empty(), &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_entry_stops_the_walk() {
        let trusted = IpSet::parse(["10.0.0.0/8"]).unwrap();
        let h = ["6.6.6.6, not-an-ip, 10.0.0.9"];
        assert_eq!(resolve(ip("10.0.0.1"), h.into_iter(), &trusted), ip("10.0.0.9"));
        assert_eq!(
            resolve(ip("10.0.0.1"), ["6.6.6.6, "].into_iter(), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(parse_entry("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_entry("[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_entry("[::1]x"), None);
        assert_eq!(parse_entry("unknown"), None);
    }

    /// Random input never panics and always yields the peer or an address present in the header
    /// (the cargo-fuzz target in fuzz/ explores the same property with coverage guidance).
    #[test]
    fn random_headers_never_panic() {
        let trusted = IpSet::parse(["10.0.0.0/8", "::1"]).unwrap();
        let alphabet = b"0123456789abcdef.:,[] \t10x-";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let mut s = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize] as char);
            }
            let got = resolve(ip("10.0.0.1"), [s.as_str()].into_iter(), &trusted);
            assert!(
                got == ip("10.0.0.1") || s.split(',').any(|e| parse_entry(e) == Some(got)),
                "{s:?} -> {got}"
            );
        }
    }
}
