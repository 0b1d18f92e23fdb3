//! The request filter chain: the filters listed once, in the order they run (their trait and
//! shared types are in [`super::request`]). Each filter reads its settings from the route and
//! policy snapshot of the request and either lets the request through or returns a
//! [`Denial`] that becomes a JSON error.
//!
//! Order: IP filter (global, then route) -> routing (404) -> request validation -> API-key
//! auth and tier -> rate limits -> quotas -> request inspection (the body is inspected as it
//! arrives, in the proxy's body phase). Cheap, unauthenticated checks come first; quotas
//! come last so a request refused for another reason does not spend quota.

pub use super::request::{Denial, FilterState, RateHeaders, RequestFilter, RequestInfo};
use super::{auth, inspection, ip_filter, quota, rate_limit_filter, validate};

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

/// The chain, in order.
pub static CHAIN: [&dyn RequestFilter; 7] = [
    &ip_filter::IpFilter,
    &Routing,
    &validate::Validation,
    &auth::ApiKeyAuth,
    &rate_limit_filter::RateLimit,
    &quota::Quota,
    &inspection::Inspection,
];

pub fn run(req: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
    for f in CHAIN.iter() {
        f.check(req, state)?;
    }
    Ok(())
}
