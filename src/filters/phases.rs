//! The filters by Pingora phase: one small trait per phase and the list of each, in the order
//! the filters run. `proxy/` calls [`request`], [`body`], [`upstream`] and [`response`] from the
//! matching Pingora callbacks and holds no filter internals.
//!
//! | Pingora phase             | Trait             | Filters, in order                                   |
//! |---------------------------|-------------------|-----------------------------------------------------|
//! | `request_filter`          | [`RequestFilter`] | IP filter, routing, validation, API-key auth and tier, rate limits, quotas, inspection (target, headers, cookies) |
//! | `request_body_filter`     | [`BodyFilter`]    | body limit (validation), body inspection            |
//! | `upstream_request_filter` | [`UpstreamEdit`]  | credential stripping, identity headers (auth), inspection finding |
//! | `response_filter`         | [`ResponseEdit`]  | rate-limit fields, security headers                 |
//!
//! Request order: cheap, unauthenticated checks come first; quotas come last so a request
//! refused for another reason does not spend quota. The body is inspected as it arrives; a
//! refusal there is answered from the body phase. Responses the gateway writes itself (denials,
//! 502/504) get the security headers too, in `proxy/`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use pingora::http::RequestHeader;

pub use super::request::{FilterState, RateHeaders, RequestFilter, RequestInfo};
use super::{auth, inspection, ip_filter, quota, rate_limit_filter, security_headers, validate};
use crate::errors::{Denial, GatewayError};
use crate::policy::{Policy, Route};

/// Routing as a step of the chain: a request without a route stops here with 404.
struct Routing;

impl RequestFilter for Routing {
    fn name(&self) -> &'static str {
        "routing"
    }
    fn check(&self, req: &RequestInfo<'_>, _: &mut FilterState) -> Result<(), Denial> {
        match req.route {
            Some(_) => Ok(()),
            None => Err(GatewayError::NoRoute.into()),
        }
    }
}

/// The request-header filters, in order.
pub static REQUEST: [&dyn RequestFilter; 7] = [
    &ip_filter::IpFilter,
    &Routing,
    &validate::Validation,
    &auth::ApiKeyAuth,
    &rate_limit_filter::RateLimit,
    &quota::Quota,
    &inspection::Inspection,
];

/// Runs the request filters in order. A filter that needs Redis (cluster mode) notes it in
/// `state.remote`; the chain awaits those decisions before the next filter, so a request
/// refused by a shared limit spends no quota. Without a cluster nothing is awaited.
pub async fn request(req: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
    for f in REQUEST.iter() {
        f.check(req, state)?;
        if !state.remote.is_empty() {
            settle(req, state).await?;
        }
    }
    Ok(())
}

/// The decisions the last filter left to Redis.
async fn settle(req: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
    let remote = std::mem::take(&mut state.remote);
    let mut rates = Vec::new();
    for r in remote {
        match r {
            super::request::Remote::Rate { rule, key } => rates.push((rule, key)),
            super::request::Remote::Quota => quota::settle(req, state).await?,
        }
    }
    if !rates.is_empty() {
        rate_limit_filter::settle(req, state, rates).await?;
    }
    Ok(())
}

/// What the body filters keep between chunks of one upstream attempt.
#[derive(Default)]
pub struct BodyState {
    /// Body bytes counted against the route's `max_body`.
    pub seen: u64,
    /// The body held for inspection until it is complete (or over the route's bound).
    pub hold: inspection::BodyHold,
}

/// A filter of the request body, chunk by chunk. It may take the chunk (`*chunk = None`, to
/// hold it) or replace it (releasing what it held); `end` marks the last call.
pub trait BodyFilter: Sync {
    fn name(&self) -> &'static str;
    fn chunk(
        &self,
        route: &Route,
        req: &RequestHeader,
        state: &mut BodyState,
        found: &mut FilterState,
        chunk: &mut Option<Bytes>,
        end: bool,
    ) -> Result<(), Denial>;
}

/// The body filters, in order: the limit counts a chunk before inspection may hold it.
pub static BODY: [&dyn BodyFilter; 2] = [&BodyLimit, &BodyInspection];

pub fn body(
    route: &Route,
    req: &RequestHeader,
    state: &mut BodyState,
    found: &mut FilterState,
    chunk: &mut Option<Bytes>,
    end: bool,
) -> Result<(), Denial> {
    for f in BODY.iter() {
        f.chunk(route, req, state, found, chunk, end)?;
    }
    Ok(())
}

/// Which of the headers the upstream edits own were in the client's request, learnt in the
/// one pass over the headers that removes the hop-by-hop ones ([`Present::note`]). An edit
/// then removes or replaces only what is there.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Present {
    /// The policy's API-key header (`access.auth_header`).
    pub auth_header: bool,
    pub authorization: bool,
    pub key_id: bool,
    pub key_tier: bool,
    pub inspection: bool,
}

impl Present {
    /// Notes `name` if it is one of the headers the upstream edits own.
    #[inline]
    pub fn note(&mut self, name: &HeaderName, auth_header: &HeaderName) {
        if name == auth_header {
            self.auth_header = true;
        } else if name == http::header::AUTHORIZATION {
            self.authorization = true;
        } else if name == auth::X_API_KEY_ID {
            self.key_id = true;
        } else if name == auth::X_API_KEY_TIER {
            self.key_tier = true;
        } else if name == inspection::X_QV_INSPECTION {
            self.inspection = true;
        }
    }
}

/// What the upstream edits see of the request.
pub struct UpstreamInfo<'a> {
    pub policy: &'a Policy,
    pub filters: &'a FilterState,
    pub present: Present,
}

/// An edit of the request's headers on their way upstream. What the gateway tells the
/// upstream is never taken from the client.
pub trait UpstreamEdit: Sync {
    fn name(&self) -> &'static str;
    fn edit(&self, req: &UpstreamInfo<'_>, headers: &mut HeaderMap) -> pingora::Result<()>;
}

/// The upstream edits, in order.
pub static UPSTREAM: [&dyn UpstreamEdit; 3] = [&StripCredentials, &IdentityHeaders, &FindingHeader];

/// How many headers the upstream edits may add.
pub const UPSTREAM_ADDS: usize = 3;

pub fn upstream(req: &UpstreamInfo<'_>, headers: &mut HeaderMap) -> pingora::Result<()> {
    for e in UPSTREAM.iter() {
        e.edit(req, headers)?;
    }
    Ok(())
}

/// What the response edits see.
pub struct ResponseInfo<'a> {
    pub filters: &'a FilterState,
    pub headers: &'a security_headers::CompiledHeaders,
    pub tls: bool,
    /// Which of the headers that advertise the upstream the response carries.
    pub removed: security_headers::Removed,
}

/// An edit of a proxied response's headers on their way to the client.
pub trait ResponseEdit: Sync {
    fn name(&self) -> &'static str;
    /// How many headers it may add.
    fn adds(&self, resp: &ResponseInfo<'_>) -> usize;
    fn edit(&self, resp: &ResponseInfo<'_>, headers: &mut HeaderMap) -> pingora::Result<()>;
}

/// The response edits, in order.
pub static RESPONSE: [&dyn ResponseEdit; 2] = [&RateFields, &SecurityHeaders];

pub fn response_adds(resp: &ResponseInfo<'_>) -> usize {
    RESPONSE.iter().map(|e| e.adds(resp)).sum()
}

pub fn response(resp: &ResponseInfo<'_>, headers: &mut HeaderMap) -> pingora::Result<()> {
    for e in RESPONSE.iter() {
        e.edit(resp, headers)?;
    }
    Ok(())
}

// The filters as phase steps: each adapts one filter module's functions to its phase's trait,
// so the filter modules need nothing of this file (no import cycle).

/// The route's `max_body`, counted as the body streams ([`BODY`]).
pub struct BodyLimit;

impl BodyFilter for BodyLimit {
    fn name(&self) -> &'static str {
        "body_limit"
    }
    fn chunk(
        &self,
        route: &Route,
        _: &RequestHeader,
        state: &mut BodyState,
        _: &mut FilterState,
        chunk: &mut Option<bytes::Bytes>,
        _: bool,
    ) -> Result<(), Denial> {
        match chunk {
            Some(c) => validate::body_limit(&mut state.seen, c.len(), route.spec.validation.max_body),
            None => Ok(()),
        }
    }
}

/// Body inspection as a body filter ([`BODY`]): [`inspection::body_chunk`].
pub struct BodyInspection;

impl BodyFilter for BodyInspection {
    fn name(&self) -> &'static str {
        "inspection"
    }
    fn chunk(
        &self,
        route: &Route,
        req: &RequestHeader,
        state: &mut BodyState,
        found: &mut FilterState,
        chunk: &mut Option<Bytes>,
        end: bool,
    ) -> Result<(), Denial> {
        inspection::body_chunk(route, req, &mut state.hold, &mut found.finding, chunk, end)
    }
}

/// The caller's credentials do not go upstream: the policy's key header always, an
/// `Authorization` value in any scheme that holds a gateway key or whose bearer token carried
/// the key, and cookies whose value is a gateway key
/// ([`UPSTREAM`]; the query parameter is stripped with the target,
/// [`auth::strip_query_key`]).
pub struct StripCredentials;

impl UpstreamEdit for StripCredentials {
    fn name(&self) -> &'static str {
        "strip_credentials"
    }
    fn edit(&self, r: &UpstreamInfo<'_>, h: &mut http::HeaderMap) -> pingora::Result<()> {
        if r.present.auth_header {
            h.remove(&r.policy.config.access.auth_header);
        }
        if r.present.authorization {
            // A gateway key in any scheme (`Token`, `ApiKey`, none): a backend that reads that
            // scheme would act on a key the gateway did not check.
            let ours = h.get_all(http::header::AUTHORIZATION).iter().any(|v| {
                auth::bearer_token(v.as_bytes())
                    .is_some_and(|t| r.filters.key_from_bearer || auth::is_gateway_key(r.policy, t.as_bytes()))
                    || v.as_bytes()
                        .split(|b| matches!(b, b' ' | b'\t' | b','))
                        .any(|t| auth::is_gateway_key(r.policy, t))
            });
            if ours {
                h.remove(http::header::AUTHORIZATION);
            }
        }
        // Cookies whose value is a gateway key go too (`api_key=qv_...`); the others stay. The
        // headers are rebuilt only when one holds a key.
        let is_key = |pair: &[u8]| {
            let value = pair.splitn(2, |&b| b == b'=').nth(1).unwrap_or(b"").trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            auth::is_gateway_key(r.policy, value)
        };
        let cookies = h.get_all(http::header::COOKIE);
        if cookies.iter().any(|v| v.as_bytes().split(|&b| b == b';').any(is_key)) {
            let kept: Vec<Vec<u8>> = cookies
                .iter()
                .map(|v| {
                    let pairs: Vec<&[u8]> = v
                        .as_bytes()
                        .split(|&b| b == b';')
                        .filter(|pair| !is_key(pair))
                        .map(|pair| pair.trim_ascii())
                        .collect();
                    pairs.join(&b"; "[..])
                })
                .collect();
            h.remove(http::header::COOKIE);
            for v in kept.into_iter().filter(|v| !v.is_empty()) {
                if let Ok(v) = http::HeaderValue::from_bytes(&v) {
                    h.append(http::header::COOKIE, v);
                }
            }
        }
        Ok(())
    }
}

/// `X-API-Key-Id` and `X-API-Key-Tier` name the authenticated key to the upstream; without
/// one, a client's own spellings of them are removed ([`UPSTREAM`]).
pub struct IdentityHeaders;

impl UpstreamEdit for IdentityHeaders {
    fn name(&self) -> &'static str {
        "identity_headers"
    }
    fn edit(&self, r: &UpstreamInfo<'_>, h: &mut http::HeaderMap) -> pingora::Result<()> {
        match &r.filters.key {
            Some(key) => {
                h.insert(auth::X_API_KEY_ID, key.id_value.clone());
                h.insert(auth::X_API_KEY_TIER, key.tier_value.clone());
            }
            None => {
                if r.present.key_id {
                    h.remove(auth::X_API_KEY_ID);
                }
                if r.present.key_tier {
                    h.remove(auth::X_API_KEY_TIER);
                }
            }
        }
        Ok(())
    }
}

/// In `detect` mode the upstream learns of a finding in `X-QV-Inspection: rule=..; class=..`;
/// a client's own `X-QV-Inspection` never reaches it ([`UPSTREAM`]).
pub struct FindingHeader;

impl UpstreamEdit for FindingHeader {
    fn name(&self) -> &'static str {
        "inspection_finding"
    }
    fn edit(&self, r: &UpstreamInfo<'_>, h: &mut http::HeaderMap) -> pingora::Result<()> {
        use pingora::OrErr;
        match &r.filters.finding {
            Some(f) => {
                let finding = format!("rule={}; class={}", f.rule_id, f.class.as_str());
                let value = http::HeaderValue::try_from(finding)
                    .or_err(pingora::ErrorType::InvalidHTTPHeader, "X-QV-Inspection")?;
                h.insert(inspection::X_QV_INSPECTION, value);
            }
            None if r.present.inspection => {
                h.remove(inspection::X_QV_INSPECTION);
            }
            None => {}
        }
        Ok(())
    }
}

/// The rate-limit fields of the rules that applied, on the proxied response
/// ([`RESPONSE`]; a denial carries them in its own headers).
pub struct RateFields;

impl ResponseEdit for RateFields {
    fn name(&self) -> &'static str {
        "rate_limit_fields"
    }
    fn adds(&self, resp: &ResponseInfo<'_>) -> usize {
        resp.filters.rate.as_ref().map_or(0, |_| RateHeaders::NAMES.len())
    }
    fn edit(&self, resp: &ResponseInfo<'_>, headers: &mut http::HeaderMap) -> pingora::Result<()> {
        resp.filters.rate.as_ref().map_or(Ok(()), |r| r.insert_into(headers))
    }
}

/// The security headers as a response edit ([`RESPONSE`]).
pub struct SecurityHeaders;

impl ResponseEdit for SecurityHeaders {
    fn name(&self) -> &'static str {
        "security_headers"
    }
    fn adds(&self, resp: &ResponseInfo<'_>) -> usize {
        resp.headers.max_added()
    }
    fn edit(&self, resp: &ResponseInfo<'_>, headers: &mut HeaderMap) -> pingora::Result<()> {
        security_headers::apply(headers, resp.headers, resp.tls, resp.removed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{test_key, test_key_entry, test_policy};

    #[test]
    fn each_phase_lists_a_filter_once() {
        fn once(names: Vec<&'static str>) {
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{names:?}");
        }
        once(REQUEST.iter().map(|f| f.name()).collect());
        once(BODY.iter().map(|f| f.name()).collect());
        once(UPSTREAM.iter().map(|f| f.name()).collect());
        once(RESPONSE.iter().map(|f| f.name()).collect());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    /// The upstream edits on `h`, with presence noted as the proxy notes it.
    fn edit(policy: &Policy, filters: &FilterState, mut h: HeaderMap) -> HeaderMap {
        let mut present = Present::default();
        for name in h.keys() {
            present.note(name, &policy.config.access.auth_header);
        }
        let info = UpstreamInfo {
            policy,
            filters,
            present,
        };
        upstream(&info, &mut h).unwrap();
        h
    }

    #[test]
    fn upstream_edits_never_pass_on_what_the_client_claims() {
        let p = test_policy(&format!(
            "upstreams:\n  - {{ name: u, peers: [\"127.0.0.1:9\"] }}\ntiers:\n  - {{ name: gold }}\n\
             api_keys:\n{}routes:\n  - {{ name: api, path_prefix: /, upstream: u }}\n",
            test_key_entry("k1", "gold", 1)
        ));
        let forged = [
            ("x-api-key", "qv_whatever"),
            ("x-api-key-id", "admin"),
            ("x-api-key-tier", "platinum"),
            ("x-qv-inspection", "rule=none"),
            ("authorization", "Bearer someone-elses-token"),
            ("x-other", "kept"),
        ];
        // Anonymous: the forged identity and finding are removed, a foreign bearer token kept.
        let h = edit(&p, &FilterState::default(), headers(&forged));
        let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["authorization", "x-other"], "{h:?}");
        // Authenticated by bearer: the token goes, the key's own id and tier come in.
        let state = FilterState {
            key: test_key(&p, "k1"),
            key_from_bearer: true,
            ..Default::default()
        };
        let h = edit(&p, &state, headers(&forged));
        assert_eq!(h.get("x-api-key-id").unwrap(), "k1");
        assert_eq!(h.get("x-api-key-tier").unwrap(), "gold");
        assert_eq!(h.get_all("x-api-key-id").iter().count(), 1);
        assert!(h.get("authorization").is_none() && h.get("x-api-key").is_none());
        assert!(h.get("x-qv-inspection").is_none());
        // A header the client did not send is not looked for, and nothing is added for it.
        let h = edit(&p, &FilterState::default(), headers(&[("x-other", "kept")]));
        assert_eq!(h.len(), 1);
    }
}
