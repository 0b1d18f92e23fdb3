//! API-key authentication and tier access. Keys arrive in a header (`X-API-Key` by default),
//! as `Authorization: Bearer <key>`, or, where a route allows it, in a query parameter (stripped
//! before the request goes upstream). Only the key's SHA-256 is stored and compared: looking up
//! a digest reveals nothing useful about the key through timing, since finding a key for a
//! digest prefix is a preimage search.

use sha2::{Digest, Sha256};

use super::request::{FilterState, RequestFilter, RequestInfo};
use crate::errors::Denial;

pub struct ApiKeyAuth;

/// The key's id and tier, told to the upstream ([`IdentityHeaders`]).
pub const X_API_KEY_ID: http::HeaderName = http::HeaderName::from_static("x-api-key-id");
pub const X_API_KEY_TIER: http::HeaderName = http::HeaderName::from_static("x-api-key-tier");

/// The query without the route's key parameter (in any spelling the backend may read) or any
/// parameter whose value is a gateway key, and without `_method` when `strip_method`; `None`
/// when nothing was removed.
pub fn strip_query_key(
    policy: &crate::policy::Policy,
    route: Option<&crate::policy::Route>,
    query: &[u8],
    strip_method: bool,
) -> Option<Vec<u8>> {
    let param = route
        .and_then(|r| r.spec.auth.as_ref())
        .and_then(|a| a.query_param.as_deref())
        .map(|p| crate::canonical::query::loose_name(p.as_bytes()));
    crate::canonical::query::strip(query, |name, value| {
        param.as_deref() == Some(name)
            || is_gateway_key(policy, value)
            || (strip_method && name == crate::canonical::query::METHOD_PARAM)
    })
}

pub const KEY_PREFIX: &str = "qv_";

fn unauthorized(code: &'static str, message: &'static str, error: Option<&str>) -> Denial {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"quantumvault\", error=\"{e}\""),
        None => "Bearer realm=\"quantumvault\"".to_string(),
    };
    Denial::new(401, code, message).header(http::header::WWW_AUTHENTICATE, challenge)
}

/// Where a presented key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Header,
    Bearer,
    /// The query parameter of this name.
    Query(String),
}

/// The token of an `Authorization: Bearer <token>` value: the scheme in any case, then one or
/// more spaces or tabs (RFC 9110 section 11.4), the token trimmed.
pub fn bearer_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_matches([' ', '\t']);
    (!token.is_empty()).then_some(token)
}

/// The presented key and where it came from. Two different keys in the query are refused:
/// the gateway would check one and a backend might read the other.
pub fn presented_key(r: &RequestInfo<'_>, query_param: Option<&str>) -> Result<Option<(String, KeySource)>, Denial> {
    let access = &r.policy.config.access;
    if let Some(v) = r.req.headers.get(&access.auth_header) {
        let key = String::from_utf8_lossy(v.as_bytes()).trim().to_string();
        return Ok(Some((key, KeySource::Header)));
    }
    if access.auth_bearer {
        if let Some(token) = r
            .req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| bearer_token(v.as_bytes()))
        {
            return Ok(Some((token.to_string(), KeySource::Bearer)));
        }
    }
    let (Some(param), Some(query)) = (query_param, r.canonical.query.as_deref()) else {
        return Ok(None);
    };
    let mut values = crate::canonical::query::values(query, param);
    values.dedup();
    match values.len() {
        0 => Ok(None),
        1 => Ok(values.pop().map(|v| (v, KeySource::Query(param.to_string())))),
        _ => Err(
            Denial::new(400, "bad_request", "the request carries more than one API key").check("duplicate_credential"),
        ),
    }
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `token` is one of the gateway's keys, so it must not travel upstream or into a log:
/// it has the `qv_` prefix (any case), or it is a key of the policy (keys need not have the
/// prefix; revoked and expired keys are still in the policy and count).
pub fn is_gateway_key(policy: &crate::policy::Policy, token: &[u8]) -> bool {
    let token = token.trim_ascii();
    if token.len() >= KEY_PREFIX.len() && token[..KEY_PREFIX.len()].eq_ignore_ascii_case(KEY_PREFIX.as_bytes()) {
        return true;
    }
    !token.is_empty()
        && policy
            .keys_by_hash
            .contains_key(&<[u8; 32]>::from(Sha256::digest(token)))
}

impl RequestFilter for ApiKeyAuth {
    fn name(&self) -> &'static str {
        "api_key_auth"
    }

    fn check(&self, r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
        let Some(route) = r.route else { return Ok(()) };
        let Some(auth) = &route.spec.auth else { return Ok(()) };
        let Some((key, source)) = presented_key(r, auth.query_param.as_deref())? else {
            if auth.required {
                return Err(unauthorized("missing_api_key", "an API key is required", None));
            }
            return Ok(());
        };
        state.key_from_bearer = source == KeySource::Bearer;
        if let KeySource::Query(param) = source {
            state.key_query_param = Some(param);
        }
        let Some(found) = r.policy.keys_by_hash.get(&hash_key(&key)) else {
            return Err(unauthorized(
                "invalid_api_key",
                "the API key is not valid",
                Some("invalid_token"),
            ));
        };
        if found.spec.revoked {
            return Err(
                unauthorized("invalid_api_key", "the API key is not valid", Some("invalid_token"))
                    .check("revoked_api_key"),
            );
        }
        if let Some(exp) = found.spec.expires {
            let exp = exp
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if r.now.unix_secs >= exp {
                return Err(unauthorized(
                    "expired_api_key",
                    "the API key has expired",
                    Some("invalid_token"),
                ));
            }
        }
        state.key = Some(found.clone());
        let tier = &found.tier.spec;
        if tier
            .routes
            .as_ref()
            .is_some_and(|routes| !routes.iter().any(|n| *n == route.spec.name))
        {
            return Err(
                Denial::new(403, "tier_forbidden", "your plan does not include this route").check("tier_route"),
            );
        }
        let overridden = r.canonical.method_override.as_ref();
        if tier
            .methods
            .as_ref()
            .is_some_and(|m| !m.contains(&r.req.method) || overridden.is_some_and(|o| !m.contains(o)))
        {
            return Err(
                Denial::new(403, "tier_forbidden", "your plan does not allow this method").check("tier_method"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_spellings() {
        assert_eq!(bearer_token(b"Bearer qv_a"), Some("qv_a"));
        assert_eq!(bearer_token(b"bearer   qv_a "), Some("qv_a"));
        assert_eq!(bearer_token(b"BEARER\tqv_a"), Some("qv_a"));
        assert_eq!(bearer_token(b" Bearer qv_a"), Some("qv_a"));
        assert_eq!(bearer_token(b"Basic qv_a"), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearerqv_a"), None);
    }
}
