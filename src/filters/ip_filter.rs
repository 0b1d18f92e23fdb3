//! IP allow and deny lists, global then per route. Deny wins; an absent allow list allows all.

use super::request::{FilterState, RequestFilter, RequestInfo};
use crate::errors::Denial;

pub struct IpFilter;

fn denied() -> Denial {
    Denial::new(403, "ip_denied", "access from this address is not allowed")
}

impl RequestFilter for IpFilter {
    fn name(&self) -> &'static str {
        "ip_filter"
    }

    fn check(&self, r: &RequestInfo<'_>, _: &mut FilterState) -> Result<(), Denial> {
        let access = &r.policy.config.access;
        let ip = r.client_ip;
        if access.ip_deny.contains(ip) {
            return Err(denied().check("ip_deny"));
        }
        if access.ip_allow.as_ref().is_some_and(|a| !a.contains(ip)) {
            return Err(denied().check("ip_not_allowed"));
        }
        if let Some(route) = r.route {
            if route.spec.ip_deny.as_ref().is_some_and(|d| d.contains(ip)) {
                return Err(denied().check("route_ip_deny"));
            }
            if route.spec.ip_allow.as_ref().is_some_and(|a| !a.contains(ip)) {
                return Err(denied().check("route_ip_not_allowed"));
            }
        }
        Ok(())
    }
}

/// Pingora's connection filter: with `ip_filter.drop_connections: true`, a socket peer that the
/// policy-wide lists deny is closed right after accept, before TLS or any HTTP parsing, which is
/// cheaper than a 403 for abusive sources. Trusted proxies are never dropped here: the clients
/// behind them are only known from X-Forwarded-For, so those are judged per request. The lists
/// are read from the running policy at each accept, so reloads apply to new connections.
pub struct ConnectionGate {
    pub policy: std::sync::Arc<arc_swap::ArcSwap<crate::policy::Policy>>,
}

impl std::fmt::Debug for ConnectionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionGate")
    }
}

impl ConnectionGate {
    /// Whether a connection from `ip` is accepted.
    pub fn admits(access: &crate::config::AccessSpec, ip: std::net::IpAddr) -> bool {
        if !access.ip_drop_connections || access.trusted_proxies.contains(ip) {
            return true;
        }
        !(access.ip_deny.contains(ip) || access.ip_allow.as_ref().is_some_and(|a| !a.contains(ip)))
    }
}

#[async_trait::async_trait]
impl pingora::listeners::ConnectionFilter for ConnectionGate {
    async fn should_accept(&self, addr: Option<&std::net::SocketAddr>) -> bool {
        let Some(addr) = addr else { return true };
        let policy = self.policy.load();
        let ok = Self::admits(&policy.config.access, addr.ip());
        if !ok {
            metrics::counter!("quantumvault_connections_dropped_total").increment(1);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::filters::client_ip;
    use crate::filters::request::{test_check, test_request_to};
    use crate::policy::{test_policy, Policy};

    fn policy(extra: &str) -> Policy {
        test_policy(&format!(
            "upstreams:\n  - {{ name: u, peers: [\"127.0.0.1:9\"] }}\n{extra}\
             routes:\n  - {{ name: open, path_prefix: /, upstream: u }}\n\
             \x20 - {{ name: internal, path_prefix: /internal/, upstream: u, ip_filter: {{ allow: [\"10.0.0.0/8\", \"fd00::/8\"], deny: [\"10.6.6.0/24\"] }} }}\n"
        ))
    }

    const LISTS: &str = "client_ip:\n  trusted_proxies: [\"127.0.0.1/32\", \"2001:db8:ffff::/48\"]\n\
        ip_filter:\n  deny: [\"203.0.113.7\", \"198.51.100.0/24\", \"2001:db8:bad::/48\"]\n";

    /// The reason of the filter's refusal of a request for `path` whose client (after
    /// X-Forwarded-For from socket peer `peer`) is resolved as the proxy resolves it.
    fn verdict(p: &Policy, path: &str, peer: &str, xff: &[&str]) -> Result<(), String> {
        let headers: Vec<(&str, &[u8])> = xff.iter().map(|v| ("X-Forwarded-For", v.as_bytes())).collect();
        let req = test_request_to("GET", path, &headers);
        let access = &p.config.access;
        let peer: IpAddr = peer.parse().unwrap();
        let ip = client_ip::of_request(peer, &req.headers, &access.client_ip_header, &access.trusted_proxies);
        let now = ManualClock::at_unix(0).now();
        test_check(&IpFilter, p, &req, ip, now, &mut FilterState::default()).map_err(|d| {
            assert_eq!((d.status, d.code), (403, "ip_denied"));
            assert_eq!(d.message, "access from this address is not allowed");
            d.reason.to_string()
        })
    }

    fn denied(reason: &str) -> Result<(), String> {
        Err(reason.to_string())
    }

    #[test]
    fn global_and_route_lists() {
        let p = policy(LISTS);
        let direct = |path: &str, ip: &str| verdict(&p, path, ip, &[]);
        assert_eq!(direct("/", "192.0.2.1"), Ok(()));
        assert_eq!(direct("/", "203.0.113.7"), denied("ip_deny"));
        assert_eq!(direct("/", "203.0.113.8"), Ok(()));
        assert_eq!(direct("/", "198.51.100.200"), denied("ip_deny"), "CIDR");
        assert_eq!(direct("/internal/x", "10.1.2.3"), Ok(()));
        assert_eq!(direct("/internal/x", "192.0.2.1"), denied("route_ip_not_allowed"));
        // Deny wins over allow, and the global list over the route's.
        assert_eq!(direct("/internal/x", "10.6.6.6"), denied("route_ip_deny"));
        assert_eq!(direct("/internal/x", "203.0.113.7"), denied("ip_deny"));
    }

    #[test]
    fn ipv6_and_ipv4_mapped_addresses() {
        let p = policy(LISTS);
        let direct = |path: &str, ip: &str| verdict(&p, path, ip, &[]);
        assert_eq!(direct("/", "2001:db8:bad:1::5"), denied("ip_deny"));
        assert_eq!(direct("/", "2001:db8:bad0::5"), Ok(()), "outside the /48");
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert_eq!(direct("/", "::ffff:203.0.113.7"), denied("ip_deny"));
        assert_eq!(direct("/", "::ffff:198.51.100.1"), denied("ip_deny"));
        assert_eq!(direct("/internal/x", "::ffff:10.1.2.3"), Ok(()));
        assert_eq!(direct("/internal/x", "fd12::1"), Ok(()));
        assert_eq!(direct("/internal/x", "fe80::1"), denied("route_ip_not_allowed"));
    }

    #[test]
    fn global_allow_list() {
        let p = policy("ip_filter:\n  allow: [\"192.0.2.0/24\", \"10.0.0.0/8\"]\n");
        assert_eq!(verdict(&p, "/", "192.0.2.9", &[]), Ok(()));
        assert_eq!(verdict(&p, "/", "192.0.3.9", &[]), denied("ip_not_allowed"));
        assert_eq!(verdict(&p, "/internal/x", "10.0.0.1", &[]), Ok(()));
        assert_eq!(
            verdict(&p, "/internal/x", "192.0.2.9", &[]),
            denied("route_ip_not_allowed")
        );
    }

    #[test]
    fn forwarded_clients_behind_trusted_proxies() {
        let p = policy(LISTS);
        let proxy = "127.0.0.1";
        assert_eq!(verdict(&p, "/", proxy, &["203.0.113.7"]), denied("ip_deny"));
        assert_eq!(verdict(&p, "/", proxy, &["192.0.2.1"]), Ok(()));
        // Spoofing: addresses the client prepends are left of the one the proxy saw.
        assert_eq!(verdict(&p, "/", proxy, &["192.0.2.1, 203.0.113.7"]), denied("ip_deny"));
        assert_eq!(
            verdict(&p, "/internal/x", proxy, &["10.1.1.1, 192.0.2.1"]),
            denied("route_ip_not_allowed"),
            "a forged allowed address does not help"
        );
        // A second header line counts as the list's continuation.
        assert_eq!(
            verdict(&p, "/", proxy, &["192.0.2.1", "203.0.113.7"]),
            denied("ip_deny")
        );
        assert_eq!(verdict(&p, "/", proxy, &["203.0.113.7", "192.0.2.1"]), Ok(()));
        // Trusted hops are skipped, IPv6 ones included, with ports and brackets.
        assert_eq!(
            verdict(&p, "/", proxy, &["203.0.113.7, [2001:db8:ffff::2]:443, 127.0.0.1"]),
            denied("ip_deny")
        );
        assert_eq!(
            verdict(&p, "/", "2001:db8:ffff::1", &["[2001:db8:bad::9]"]),
            denied("ip_deny")
        );
        assert_eq!(verdict(&p, "/", proxy, &["198.51.100.3:8080"]), denied("ip_deny"));
        assert_eq!(verdict(&p, "/", proxy, &["::ffff:203.0.113.7"]), denied("ip_deny"));
    }

    #[test]
    fn forwarded_header_from_an_untrusted_peer_is_ignored() {
        let p = policy(LISTS);
        assert_eq!(verdict(&p, "/", "192.0.2.1", &["203.0.113.7"]), Ok(()));
        assert_eq!(
            verdict(&p, "/internal/x", "192.0.2.1", &["10.1.1.1"]),
            denied("route_ip_not_allowed")
        );
        assert_eq!(verdict(&p, "/", "203.0.113.7", &["192.0.2.1"]), denied("ip_deny"));
        // Without trusted proxies the header is never read.
        let none = policy("ip_filter:\n  deny: [\"203.0.113.7\"]\n");
        assert_eq!(verdict(&none, "/", "127.0.0.1", &["203.0.113.7"]), Ok(()));
    }

    #[test]
    fn malformed_forwarded_entries_stop_at_the_last_good_hop() {
        let p = policy(LISTS);
        let proxy = "127.0.0.1";
        // The walk stops at the garbage: the client is the proxy itself, not the forged
        // address left of it.
        assert_eq!(verdict(&p, "/", proxy, &["203.0.113.7, garbage"]), Ok(()));
        assert_eq!(verdict(&p, "/", proxy, &["10.1.1.1, not-an-ip"]), Ok(()));
        assert_eq!(
            verdict(&p, "/internal/x", proxy, &["10.1.1.1, not-an-ip"]),
            denied("route_ip_not_allowed"),
            "judged as the proxy"
        );
        assert_eq!(
            verdict(&p, "/internal/x", proxy, &["10.1.1.1, "]),
            denied("route_ip_not_allowed")
        );
        assert_eq!(verdict(&p, "/", proxy, &["[2001:db8:bad::1]x"]), Ok(()));
        // An entry right of the garbage is still read.
        assert_eq!(verdict(&p, "/", proxy, &["garbage, 203.0.113.7"]), denied("ip_deny"));
        // A value that is not visible ASCII is skipped whole.
        let req = test_request_to("GET", "/", &[("X-Forwarded-For", b"203.0.113.7\xff")]);
        let access = &p.config.access;
        let ip = client_ip::of_request(
            proxy.parse().unwrap(),
            &req.headers,
            &access.client_ip_header,
            &access.trusted_proxies,
        );
        assert_eq!(ip, proxy.parse::<IpAddr>().unwrap());
    }

    #[test]
    fn connections_are_dropped_only_when_asked_and_never_from_proxies() {
        let drop = policy(&format!("{LISTS}  drop_connections: true\n"));
        let keep = policy(LISTS);
        let admits = |p: &Policy, ip: &str| ConnectionGate::admits(&p.config.access, ip.parse().unwrap());
        assert!(!admits(&drop, "203.0.113.7"));
        assert!(!admits(&drop, "::ffff:198.51.100.9"));
        assert!(admits(&drop, "192.0.2.1"));
        assert!(admits(&keep, "203.0.113.7"), "the 403 comes per request instead");
        let proxy_denied = policy(
            "client_ip:\n  trusted_proxies: [\"127.0.0.1/32\"]\nip_filter:\n  deny: [\"127.0.0.0/8\"]\n  drop_connections: true\n",
        );
        assert!(admits(&proxy_denied, "127.0.0.1"));
        assert!(!admits(&proxy_denied, "127.0.0.2"));
    }
}
