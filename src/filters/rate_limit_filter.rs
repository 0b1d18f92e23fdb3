//! Applies the rate-limit rules of the route and of the caller's tier. Several rules may apply;
//! the first that refuses decides (429 with Retry-After), and the response carries the state of
//! the strictest rule in `X-RateLimit-*` and every rule in the IETF `RateLimit-Policy` /
//! `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
//!
//! Scopes: `client_ip`, `route`, `api_key` and `api_key_route`. The key scopes only count
//! authenticated requests; give anonymous traffic a `client_ip` rule.

use super::rate_limit::Decision;
use super::request::{Denial, FilterState, RateHeaders, RequestFilter, RequestInfo};
use crate::clock::ceil_secs;
use crate::config::access::Scope;

pub struct RateLimit;

impl RequestFilter for RateLimit {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn check(&self, r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
        let Some(route) = r.route else { return Ok(()) };
        let tier_rules = state.key.as_ref().map(|k| k.tier.limiters.as_slice()).unwrap_or(&[]);
        if route.limiters.is_empty() && tier_rules.is_empty() {
            return Ok(());
        }
        let mut headers = RateHeaders::new();
        let mut key_buf = Vec::with_capacity(64);
        for rule in route.limiters.iter().chain(tier_rules.iter()) {
            key_buf.clear();
            match rule.spec.scope {
                Scope::ClientIp => rule.spec.client_key(r.client_ip, &mut key_buf),
                Scope::Route => key_buf.extend_from_slice(route.spec.name.as_bytes()),
                Scope::ApiKey | Scope::ApiKeyRoute => {
                    let Some(key) = &state.key else { continue };
                    key_buf.extend_from_slice(key.spec.id.as_bytes());
                    if rule.spec.scope == Scope::ApiKeyRoute {
                        key_buf.push(0);
                        key_buf.extend_from_slice(route.spec.name.as_bytes());
                    }
                }
            }
            match rule.limiter.check(key_buf.as_slice(), r.now.mono_ns()) {
                Decision::Allow { remaining, reset } => {
                    headers.push_rule(&rule.policy_item, &rule.spec.name, remaining, ceil_secs(reset));
                    if remaining < headers.remaining {
                        headers.remaining = remaining;
                        headers.limit = rule.spec.rate;
                        headers.reset = reset;
                    }
                }
                Decision::Deny { retry_after, reset } => {
                    headers.push_rule(&rule.policy_item, &rule.spec.name, 0, ceil_secs(reset));
                    headers.limit = rule.spec.rate;
                    headers.remaining = 0;
                    headers.reset = reset;
                    let mut d = Denial::new(429, "rate_limited", "too many requests; retry later")
                        .reason(format!("rate_limit:{}", rule.spec.name))
                        .header(http::header::RETRY_AFTER, ceil_secs(retry_after).max(1).to_string());
                    d.headers.extend(headers.to_headers());
                    state.rate = Some(headers);
                    return Err(d);
                }
            }
        }
        if headers.remaining != u64::MAX {
            state.rate = Some(headers);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::access::Scope;
    use crate::config::RateLimitSpec;

    fn key(spec: &RateLimitSpec, ip: &str) -> Vec<u8> {
        let mut out = Vec::new();
        spec.client_key(ip.parse().unwrap(), &mut out);
        out
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_prefix() {
        let mut spec = RateLimitSpec {
            name: "r".into(),
            scope: Scope::ClientIp,
            rate: 1,
            per: std::time::Duration::from_secs(1),
            burst: 1,
            max_tracked: 1024,
            ipv6_prefix: 64,
        };
        assert_eq!(key(&spec, "2001:db8:1:2::1"), key(&spec, "2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(key(&spec, "2001:db8:1:2::1"), key(&spec, "2001:db8:1:3::1"));
        assert_eq!(key(&spec, "::ffff:10.0.0.1"), key(&spec, "10.0.0.1"));
        assert_ne!(key(&spec, "10.0.0.1"), key(&spec, "10.0.0.2"));
        spec.ipv6_prefix = 128;
        assert_ne!(key(&spec, "2001:db8:1:2::1"), key(&spec, "2001:db8:1:2::2"));
        spec.ipv6_prefix = 48;
        assert_eq!(key(&spec, "2001:db8:1:2::1"), key(&spec, "2001:db8:1:ffff::1"));
        spec.ipv6_prefix = 1;
        assert_eq!(key(&spec, "2001::1"), key(&spec, "7fff::1"));
    }
}
