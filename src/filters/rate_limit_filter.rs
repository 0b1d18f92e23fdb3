//! Applies the rate-limit rules of the route and of the caller's tier. Several rules may apply;
//! the first that refuses decides (429 with Retry-After), and the response carries the state of
//! the strictest rule in `X-RateLimit-*` and every rule in the IETF `RateLimit-Policy` /
//! `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
//!
//! Scopes: `client_ip`, `route`, `api_key` and `api_key_route`. The key scopes only count
//! authenticated requests; give anonymous traffic a `client_ip` rule.

use super::rate_limit::Decision;
use super::request::{FilterState, RateHeaders, Remote, RequestFilter, RequestInfo};
use crate::clock::ceil_secs;
use crate::config::access::Scope;
use crate::errors::{Denial, Reason};
use crate::policy::{ApiKey, Route, Rule};

pub struct RateLimit;

/// The bucket key of `rule` for this request, in `out`; `false` if the rule does not count it
/// (a key scope without a key).
fn bucket_key(rule: &Rule, r: &RequestInfo<'_>, route: &Route, key: Option<&ApiKey>, out: &mut Vec<u8>) -> bool {
    out.clear();
    match rule.spec.scope {
        Scope::ClientIp => rule.spec.client_key(r.client_ip, out),
        Scope::Route => out.extend_from_slice(route.spec.name.as_bytes()),
        Scope::ApiKey | Scope::ApiKeyRoute => {
            let Some(key) = key else { return false };
            out.extend_from_slice(key.spec.id.as_bytes());
            if rule.spec.scope == Scope::ApiKeyRoute {
                out.push(0);
                out.extend_from_slice(route.spec.name.as_bytes());
            }
        }
    }
    true
}

/// Notes `rule`'s decision in `headers`; a refusal becomes the 429 (with the fields so far).
fn apply(
    rule: &Rule,
    decision: Decision,
    headers: &mut RateHeaders,
    rate: &mut Option<RateHeaders>,
) -> Result<(), Denial> {
    match decision {
        Decision::Allow { remaining, reset } => {
            headers.push_rule(&rule.policy_item, &rule.spec.name, remaining, ceil_secs(reset));
            if remaining < headers.remaining {
                headers.remaining = remaining;
                headers.limit = rule.spec.rate;
                headers.reset = reset;
            }
            Ok(())
        }
        Decision::Deny { retry_after, reset } => {
            headers.push_rule(&rule.policy_item, &rule.spec.name, 0, ceil_secs(reset));
            headers.limit = rule.spec.rate;
            headers.remaining = 0;
            headers.reset = reset;
            let mut d = Denial::new(429, "rate_limited", "too many requests; retry later")
                .reason(Reason::RateLimit(rule.spec.name.clone()))
                .header(http::header::RETRY_AFTER, ceil_secs(retry_after).max(1).to_string());
            d.headers.extend(headers.to_headers());
            *rate = Some(std::mem::take(headers));
            Err(d)
        }
    }
}

fn finish(headers: RateHeaders, state: &mut FilterState) {
    if headers.remaining != u64::MAX {
        state.rate = Some(headers);
    }
}

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
        let now = r.now.mono_ns();
        for (i, rule) in route.limiters.iter().chain(tier_rules.iter()).enumerate() {
            if !bucket_key(rule, r, route, state.key.as_deref(), &mut key_buf) {
                continue;
            }
            let decision = match &rule.shared {
                None => rule.limiter.check(key_buf.as_slice(), now),
                Some(shared) => match shared.take_reserved(&key_buf, now) {
                    Some(d) => d,
                    None => {
                        // Decided in Redis before the next filter runs.
                        state.remote.push(Remote::Rate {
                            rule: i,
                            key: key_buf.clone(),
                        });
                        continue;
                    }
                },
            };
            apply(rule, decision, &mut headers, &mut state.rate)?;
        }
        if state.remote.is_empty() {
            finish(headers, state);
        } else {
            state.rate_pending = Some(headers);
        }
        Ok(())
    }
}

/// Decides the shared rules [`RateLimit::check`] left to Redis (cluster mode), in rule order.
pub async fn settle(
    r: &RequestInfo<'_>,
    state: &mut FilterState,
    pending: Vec<(usize, Vec<u8>)>,
) -> Result<(), Denial> {
    let mut headers = state.rate_pending.take().unwrap_or_else(RateHeaders::new);
    let Some(route) = r.route else { return Ok(()) };
    let key = state.key.clone();
    let tier_rules = key.as_ref().map(|k| k.tier.limiters.as_slice()).unwrap_or(&[]);
    let now = r.now.mono_ns();
    for (i, bucket) in pending {
        let Some(rule) = route.limiters.iter().chain(tier_rules.iter()).nth(i) else {
            continue;
        };
        let Some(shared) = &rule.shared else { continue };
        let decision = shared.decide(&bucket, now).await;
        apply(rule, decision, &mut headers, &mut state.rate)?;
    }
    finish(headers, state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::config::RateLimitSpec;
    use crate::filters::request::{denial_header, test_check, test_request_to};
    use crate::policy::{test_key, test_key_entry, test_policy, Policy};

    fn policy() -> Policy {
        test_policy(&format!(
            r#"upstreams:
  - {{ name: u, peers: ["127.0.0.1:9"] }}
rate_limits:
  - {{ name: per-ip, scope: client_ip, rate: 2, per: 10s, burst: 3 }}
  - {{ name: per-route, scope: route, rate: 1, per: 1m, burst: 2 }}
  - {{ name: per-key, scope: api_key, rate: 1, per: 1m, burst: 2 }}
  - {{ name: per-key-route, scope: api_key_route, rate: 1, per: 1m }}
  - {{ name: v6-48, scope: client_ip, rate: 1, per: 1h, ipv6_prefix: 48 }}
  - {{ name: loose, scope: client_ip, rate: 100, per: 1s }}
  - {{ name: tight, scope: route, rate: 1, per: 1s }}
tiers:
  - {{ name: gold, rate_limits: [per-key] }}
  - {{ name: pair, rate_limits: [per-key-route] }}
api_keys:
{}{}{}routes:
  - {{ name: ip, path_prefix: /ip/, upstream: u, rate_limits: [per-ip] }}
  - {{ name: shared, path_prefix: /shared/, upstream: u, rate_limits: [per-route] }}
  - {{ name: v6, path_prefix: /v6/, upstream: u, rate_limits: [v6-48] }}
  - {{ name: both, path_prefix: /both/, upstream: u, rate_limits: [loose, tight] }}
  - {{ name: a, path_prefix: /a/, upstream: u }}
  - {{ name: b, path_prefix: /b/, upstream: u }}
"#,
            test_key_entry("k1", "gold", 1),
            test_key_entry("k2", "gold", 2),
            test_key_entry("p1", "pair", 3),
        ))
    }

    /// One request for `path` from `ip` (with key `key`) through the rate-limit filter.
    fn check(
        p: &Policy,
        clock: &ManualClock,
        path: &str,
        ip: &str,
        key: Option<&str>,
    ) -> (Result<(), Denial>, FilterState) {
        let mut state = FilterState {
            key: key.map(|id| test_key(p, id).unwrap()),
            ..Default::default()
        };
        let req = test_request_to("GET", path, &[]);
        let r = test_check(&RateLimit, p, &req, ip.parse().unwrap(), clock.now(), &mut state);
        (r, state)
    }

    /// The five rate-limit fields of an allowed request, as the response carries them.
    fn fields(state: &FilterState) -> [String; 5] {
        let mut h = http::HeaderMap::new();
        state.rate.as_ref().expect("rate fields").insert_into(&mut h).unwrap();
        RateHeaders::NAMES.map(|n| h[&n].to_str().unwrap().to_string())
    }

    fn denial_fields(d: &Denial) -> [String; 6] {
        let get = |n: &str| denial_header(d, n).unwrap_or("-").to_string();
        [
            get("retry-after"),
            get("x-ratelimit-limit"),
            get("x-ratelimit-remaining"),
            get("x-ratelimit-reset"),
            get("ratelimit-policy"),
            get("ratelimit"),
        ]
    }

    fn allowed(p: &Policy, clock: &ManualClock, path: &str, ip: &str, key: Option<&str>) -> bool {
        check(p, clock, path, ip, key).0.is_ok()
    }

    #[test]
    fn burst_then_refill_with_exact_fields() {
        let p = policy();
        let clock = ManualClock::at_unix(1_800_000_000);
        let ip = "192.0.2.1";
        // 2 per 10 s (one every 5 s), bucket of 3.
        for (remaining, reset) in [("2", "5"), ("1", "10"), ("0", "15")] {
            let (r, state) = check(&p, &clock, "/ip/", ip, None);
            assert!(r.is_ok());
            assert_eq!(
                fields(&state),
                [
                    "2".to_string(),
                    remaining.into(),
                    reset.into(),
                    "\"per-ip\";q=2;w=10".into(),
                    format!("\"per-ip\";r={remaining};t={reset}"),
                ]
            );
        }
        let (r, state) = check(&p, &clock, "/ip/", ip, None);
        let d = r.unwrap_err();
        assert_eq!(
            (d.status, d.code, d.reason.label().as_ref()),
            (429, "rate_limited", "rate_limit:per-ip")
        );
        assert_eq!(d.message, "too many requests; retry later");
        assert_eq!(
            denial_fields(&d),
            ["5", "2", "0", "15", "\"per-ip\";q=2;w=10", "\"per-ip\";r=0;t=15"].map(String::from)
        );
        assert_eq!(state.rate.as_ref().map(|r| r.remaining), Some(0));
        // A millisecond early is still too early, and Retry-After never says 0.
        clock.advance(Duration::from_millis(4999));
        let d = check(&p, &clock, "/ip/", ip, None).0.unwrap_err();
        assert_eq!(denial_header(&d, "retry-after"), Some("1"));
        assert_eq!(denial_header(&d, "x-ratelimit-reset"), Some("11"));
        // One request's worth refills every 5 s.
        clock.advance(Duration::from_millis(1));
        let (r, state) = check(&p, &clock, "/ip/", ip, None);
        assert!(r.is_ok());
        assert_eq!(fields(&state)[1..3], ["0".to_string(), "15".into()]);
        assert!(!allowed(&p, &clock, "/ip/", ip, None));
        clock.advance(Duration::from_secs(10));
        let (r, state) = check(&p, &clock, "/ip/", ip, None);
        assert!(r.is_ok());
        assert_eq!(fields(&state)[1..3], ["1".to_string(), "10".into()]);
        // Idle long enough, the whole bucket is back.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(allowed(&p, &clock, "/ip/", ip, None));
        }
        assert!(!allowed(&p, &clock, "/ip/", ip, None));
    }

    #[test]
    fn scopes_client_ip_route_key_and_key_route() {
        let p = policy();
        let clock = ManualClock::at_unix(1_800_000_000);
        // client_ip: one bucket per client.
        for _ in 0..3 {
            assert!(allowed(&p, &clock, "/ip/", "192.0.2.1", None));
        }
        assert!(!allowed(&p, &clock, "/ip/", "192.0.2.1", None));
        assert!(allowed(&p, &clock, "/ip/", "192.0.2.2", None));
        // route: every client shares the route's bucket (2).
        assert!(allowed(&p, &clock, "/shared/", "192.0.2.1", None));
        assert!(allowed(&p, &clock, "/shared/", "192.0.2.2", None));
        let d = check(&p, &clock, "/shared/", "192.0.2.3", None).0.unwrap_err();
        assert_eq!(d.reason, Reason::RateLimit("per-route".into()));
        // api_key: one bucket per key (2), on every route; anonymous requests are not counted.
        assert!(allowed(&p, &clock, "/a/", "192.0.2.1", Some("k1")));
        assert!(allowed(&p, &clock, "/b/", "192.0.2.2", Some("k1")));
        let d = check(&p, &clock, "/a/", "192.0.2.3", Some("k1")).0.unwrap_err();
        assert_eq!(
            (d.reason.label().as_ref(), denial_header(&d, "retry-after")),
            ("rate_limit:per-key", Some("60"))
        );
        assert!(allowed(&p, &clock, "/a/", "192.0.2.1", Some("k2")));
        let (r, state) = check(&p, &clock, "/a/", "192.0.2.1", None);
        assert!(r.is_ok() && state.rate.is_none(), "no rule applied, no fields");
        // api_key_route: one bucket per key and route (1).
        assert!(allowed(&p, &clock, "/a/", "192.0.2.1", Some("p1")));
        assert_eq!(
            check(&p, &clock, "/a/", "192.0.2.1", Some("p1")).0.unwrap_err().reason,
            Reason::RateLimit("per-key-route".into())
        );
        assert!(allowed(&p, &clock, "/b/", "192.0.2.1", Some("p1")));
        assert!(!allowed(&p, &clock, "/b/", "192.0.2.1", Some("p1")));
        clock.advance(Duration::from_secs(60));
        assert!(allowed(&p, &clock, "/a/", "192.0.2.1", Some("p1")));
        assert!(allowed(&p, &clock, "/a/", "192.0.2.3", Some("k1")));
    }

    #[test]
    fn ipv6_clients_are_counted_by_prefix() {
        let p = policy();
        let clock = ManualClock::at_unix(1_800_000_000);
        // The default /64: two addresses of one /64 share the bucket of 3.
        assert!(allowed(&p, &clock, "/ip/", "2001:db8:1:2::1", None));
        assert!(allowed(&p, &clock, "/ip/", "2001:db8:1:2:ffff::9", None));
        assert!(allowed(&p, &clock, "/ip/", "2001:db8:1:2::1", None));
        assert!(!allowed(&p, &clock, "/ip/", "2001:db8:1:2::abcd", None));
        assert!(allowed(&p, &clock, "/ip/", "2001:db8:1:3::1", None));
        // IPv4-mapped is the IPv4 address.
        for _ in 0..3 {
            assert!(allowed(&p, &clock, "/ip/", "::ffff:192.0.2.7", None));
        }
        assert!(!allowed(&p, &clock, "/ip/", "192.0.2.7", None));
        // ipv6_prefix: 48.
        assert!(allowed(&p, &clock, "/v6/", "2001:db8:1:2::1", None));
        assert!(!allowed(&p, &clock, "/v6/", "2001:db8:1:ffff::9", None));
        assert!(allowed(&p, &clock, "/v6/", "2001:db8:2::1", None));
    }

    #[test]
    fn every_rule_is_listed_and_the_strictest_leads() {
        let p = policy();
        let clock = ManualClock::at_unix(1_800_000_000);
        let (r, state) = check(&p, &clock, "/both/", "192.0.2.1", None);
        assert!(r.is_ok());
        assert_eq!(
            fields(&state),
            [
                "1",
                "0",
                "1",
                "\"loose\";q=100;w=1, \"tight\";q=1;w=1",
                "\"loose\";r=99;t=1, \"tight\";r=0;t=1"
            ]
            .map(String::from)
        );
        // The second rule refuses; the first has counted the request.
        let d = check(&p, &clock, "/both/", "192.0.2.1", None).0.unwrap_err();
        assert_eq!(d.reason, Reason::RateLimit("tight".into()));
        assert_eq!(
            denial_fields(&d),
            [
                "1",
                "1",
                "0",
                "1",
                "\"loose\";q=100;w=1, \"tight\";q=1;w=1",
                "\"loose\";r=98;t=1, \"tight\";r=0;t=1"
            ]
            .map(String::from)
        );
        clock.advance(Duration::from_secs(1));
        assert!(allowed(&p, &clock, "/both/", "192.0.2.1", None));
    }

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
            shared: false,
            reserve: 1,
            on_redis_down: Default::default(),
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
