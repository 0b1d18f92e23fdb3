//! IP allow and deny lists, global then per route. Deny wins; an absent allow list allows all.

use super::chain::{Denial, FilterState, RequestFilter, RequestInfo};

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
