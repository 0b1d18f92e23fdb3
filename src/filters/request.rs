//! What the request-header filters share: the request as they see it ([`RequestInfo`]), what
//! they learn for later phases ([`FilterState`]), how they refuse ([`Denial`], from [`crate::errors`]), the trait they
//! implement ([`RequestFilter`]) and the rate-limit response fields. The list of filters, in
//! order, is in [`super::chain`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::OrErr;

use crate::errors::Denial;
use crate::policy::{ApiKey, Policy, Route};

/// What a filter sees of the request.
pub struct RequestInfo<'a> {
    pub req: &'a RequestHeader,
    /// The request's canonical path, host and method override: what every decision uses.
    pub canonical: &'a crate::canonical::CanonicalRequest,
    pub client_ip: IpAddr,
    pub route: Option<&'a Arc<Route>>,
    pub policy: &'a Policy,
    /// The request's one reading of the clock ([`crate::clock`]): monotonic for rate limits,
    /// Unix seconds for expiry and quotas. Tests take it from a manual clock.
    pub now: crate::clock::Now,
    /// Whether Pingora switched keep-alive off while parsing (see `validate`); false during
    /// shutdown, when it switches it off for every request.
    pub keepalive_off: bool,
    /// A request body follows the header: a length above zero, chunked framing, or an HTTP/2
    /// HEADERS frame without END_STREAM (no length needed there).
    pub body_follows: bool,
}

/// What filters learn and later phases use.
#[derive(Default)]
pub struct FilterState {
    pub key: Option<Arc<ApiKey>>,
    /// The query parameter that carried the key, to strip before forwarding.
    pub key_query_param: Option<String>,
    /// The key came as an `Authorization` bearer token, which is then not forwarded.
    pub key_from_bearer: bool,
    pub rate: Option<RateHeaders>,
    /// A finding of request inspection in `detect` mode (forwarded, flagged).
    pub finding: Option<crate::inspect::Finding>,
    /// Decisions a filter left to Redis (cluster mode), settled before the next filter runs.
    pub remote: Vec<Remote>,
    /// The rate-limit fields while shared rules are being decided.
    pub rate_pending: Option<RateHeaders>,
}

/// A decision that needs Redis (cluster mode): a filter notes it, and the chain awaits it
/// before the next filter ([`super::phases::request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Rule `rule` of the route's and the tier's rules (in that order), for bucket `key`.
    Rate { rule: usize, key: Vec<u8> },
    /// The caller's key against its tier's quotas.
    Quota,
}

/// Rate-limit response fields: the strictest rule plus every rule that applied.
#[derive(Debug, Clone, Default)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
    /// RateLimit-Policy: `"name";q=..;w=..` items, comma-separated.
    pub policy: String,
    /// RateLimit: `"name";r=..;t=..` items, comma-separated.
    pub state: String,
}

impl RateHeaders {
    /// No rule yet (`remaining` at its maximum), with room for the usual two or three rules'
    /// items so the lists are not regrown while they are written.
    pub fn new() -> RateHeaders {
        RateHeaders {
            remaining: u64::MAX,
            policy: String::with_capacity(128),
            state: String::with_capacity(128),
            ..Default::default()
        }
    }

    /// Adds one rule's items to the two list fields.
    pub fn push_rule(&mut self, policy_item: &str, name: &str, remaining: u64, reset_secs: u64) {
        if !self.policy.is_empty() {
            self.policy.push_str(", ");
            self.state.push_str(", ");
        }
        self.policy.push_str(policy_item);
        self.state.push('"');
        self.state.push_str(name);
        self.state.push_str("\";r=");
        crate::text::push_u64(&mut self.state, remaining);
        self.state.push_str(";t=");
        crate::text::push_u64(&mut self.state, reset_secs);
    }

    /// The five fields' names.
    pub const NAMES: [http::HeaderName; 5] = [
        http::HeaderName::from_static("x-ratelimit-limit"),
        http::HeaderName::from_static("x-ratelimit-remaining"),
        http::HeaderName::from_static("x-ratelimit-reset"),
        http::HeaderName::from_static("ratelimit-policy"),
        http::HeaderName::from_static("ratelimit"),
    ];

    /// The five fields' values, in the order of [`Self::NAMES`]: on a denial's headers
    /// (`to_headers`) and on a proxied response (`insert_into`). Invariant: rule names are
    /// validated tokens, so the two lists are always valid header values.
    fn values(&self) -> pingora::Result<[http::HeaderValue; 5]> {
        // Written into one buffer that the five values share (one allocation, not five).
        let mut text = String::with_capacity(3 * 20 + self.policy.len() + self.state.len());
        let mut ends = [0usize; 5];
        crate::text::push_u64(&mut text, self.limit);
        ends[0] = text.len();
        crate::text::push_u64(&mut text, self.remaining);
        ends[1] = text.len();
        crate::text::push_u64(&mut text, crate::clock::ceil_secs(self.reset));
        ends[2] = text.len();
        text.push_str(&self.policy);
        ends[3] = text.len();
        text.push_str(&self.state);
        ends[4] = text.len();
        let all = bytes::Bytes::from(text);
        let mut start = 0;
        let mut value = |end: usize| {
            let v = http::HeaderValue::from_maybe_shared(all.slice(start..end))
                .or_err(pingora::ErrorType::InvalidHTTPHeader, "rate-limit field");
            start = end;
            v
        };
        Ok([
            value(ends[0])?,
            value(ends[1])?,
            value(ends[2])?,
            value(ends[3])?,
            value(ends[4])?,
        ])
    }

    pub fn to_headers(&self) -> Vec<(http::HeaderName, http::HeaderValue)> {
        self.values()
            .map(|values| Self::NAMES.into_iter().zip(values).collect())
            .unwrap_or_default()
    }

    pub fn insert_into(&self, headers: &mut http::HeaderMap) -> pingora::Result<()> {
        for (name, value) in Self::NAMES.into_iter().zip(self.values()?) {
            headers.insert(name, value);
        }
        Ok(())
    }
}

pub trait RequestFilter: Sync {
    fn name(&self) -> &'static str;
    fn check(&self, req: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial>;
}

/// A POST request with `headers`, for the filters' unit tests.
#[cfg(test)]
pub(crate) fn test_request(headers: &[(&str, &[u8])]) -> RequestHeader {
    build_test_request("POST", "/", headers)
}

#[cfg(test)]
fn build_test_request(method: &str, target: &str, headers: &[(&str, &[u8])]) -> RequestHeader {
    let mut req = RequestHeader::build(method, target.as_bytes(), None).unwrap();
    for (name, value) in headers {
        req.append_header(name.to_string(), http::HeaderValue::from_bytes(value).unwrap())
            .unwrap();
    }
    req
}

/// A request of `method` for `target` (path and query) with `headers`, and `Host: gw.test`
/// unless they name a host, for unit tests.
#[cfg(test)]
pub(crate) fn test_request_to(method: &str, target: &str, headers: &[(&str, &[u8])]) -> RequestHeader {
    let mut req = build_test_request(method, target, headers);
    if !req.headers.contains_key(http::header::HOST) {
        req.insert_header(http::header::HOST, "gw.test").unwrap();
    }
    req
}

/// Runs `filter` on `req` from `client_ip` at the clock reading `now`, routed by its canonical
/// host and path as the proxy routes it, for unit tests.
#[cfg(test)]
pub(crate) fn test_check(
    filter: &dyn RequestFilter,
    policy: &Policy,
    req: &RequestHeader,
    client_ip: IpAddr,
    now: crate::clock::Now,
    state: &mut FilterState,
) -> Result<(), Denial> {
    let canonical = crate::canonical::CanonicalRequest::of(req, &policy.config.normalization).expect("canonical");
    let info = RequestInfo {
        req,
        canonical: &canonical,
        client_ip,
        route: policy.route(&canonical.host, &canonical.path),
        policy,
        now,
        keepalive_off: false,
        body_follows: false,
    };
    filter.check(&info, state)
}

/// The value of header `name` in a denial's headers, for unit tests.
#[cfg(test)]
pub(crate) fn denial_header<'a>(d: &'a Denial, name: &str) -> Option<&'a str> {
    d.headers
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_fields_list_every_rule() {
        let mut h = RateHeaders {
            limit: 10,
            remaining: 0,
            reset: Duration::from_millis(2500),
            ..Default::default()
        };
        h.push_rule("\"per-ip\";q=100;w=1", "per-ip", 99, 1);
        h.push_rule("\"per-key\";q=10;w=60", "per-key", 0, 3);
        let mut resp = http::HeaderMap::new();
        h.insert_into(&mut resp).unwrap();
        let get = |n: &str| resp.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(get("ratelimit-policy"), "\"per-ip\";q=100;w=1, \"per-key\";q=10;w=60");
        assert_eq!(get("ratelimit"), "\"per-ip\";r=99;t=1, \"per-key\";r=0;t=3");
        assert_eq!(get("x-ratelimit-limit"), "10");
        assert_eq!(get("x-ratelimit-remaining"), "0");
        assert_eq!(get("x-ratelimit-reset"), "3");
        let listed = h.to_headers();
        assert_eq!(listed[4].0, "ratelimit");
        assert_eq!(listed[4].1.to_str().unwrap(), get("ratelimit"));
    }
}
