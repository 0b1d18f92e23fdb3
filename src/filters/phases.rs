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

pub use super::request::{Denial, FilterState, RateHeaders, RequestFilter, RequestInfo};
use super::{auth, inspection, ip_filter, quota, rate_limit_filter, security_headers, validate};
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
            None => Err(Denial::new(404, "no_route", "no route matches this host and path")),
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

pub fn request(req: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
    for f in REQUEST.iter() {
        f.check(req, state)?;
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
pub static BODY: [&dyn BodyFilter; 2] = [&validate::BodyLimit, &inspection::BodyInspection];

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
pub static UPSTREAM: [&dyn UpstreamEdit; 3] = [
    &auth::StripCredentials,
    &auth::IdentityHeaders,
    &inspection::FindingHeader,
];

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
pub static RESPONSE: [&dyn ResponseEdit; 2] = [&rate_limit_filter::RateFields, &security_headers::SecurityHeaders];

pub fn response_adds(resp: &ResponseInfo<'_>) -> usize {
    RESPONSE.iter().map(|e| e.adds(resp)).sum()
}

pub fn response(resp: &ResponseInfo<'_>, headers: &mut HeaderMap) -> pingora::Result<()> {
    for e in RESPONSE.iter() {
        e.edit(resp, headers)?;
    }
    Ok(())
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
