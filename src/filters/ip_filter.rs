//! IP allow and deny lists, global then per route. Deny wins; an absent allow list allows all.

use super::request::{Denial, FilterState, RequestFilter, RequestInfo};

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
            return Err(denied().reason("ip_deny"));
        }
        if access.ip_allow.as_ref().is_some_and(|a| !a.contains(ip)) {
            return Err(denied().reason("ip_not_allowed"));
        }
        if let Some(route) = r.route {
            if route.spec.ip_deny.as_ref().is_some_and(|d| d.contains(ip)) {
                return Err(denied().reason("route_ip_deny"));
            }
            if route.spec.ip_allow.as_ref().is_some_and(|a| !a.contains(ip)) {
                return Err(denied().reason("route_ip_not_allowed"));
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
