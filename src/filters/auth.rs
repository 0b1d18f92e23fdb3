//! API-key authentication and tier access. Keys arrive in a header (`X-API-Key` by default),
//! as `Authorization: Bearer <key>`, or, where a route allows it, in a query parameter (stripped
//! before the request goes upstream). Only the key's SHA-256 is stored and compared: looking up
//! a digest reveals nothing useful about the key through timing, since finding a key for a
//! digest prefix is a preimage search.

use sha2::{Digest, Sha256};

use super::chain::{Denial, FilterState, RequestFilter, RequestInfo};

pub struct ApiKeyAuth;

pub const KEY_PREFIX: &str = "qv_";

fn unauthorized(code: &'static str, message: &'static str, error: Option<&str>) -> Denial {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"quantumvault\", error=\"{e}\""),
        None => "Bearer realm=\"quantumvault\"".to_string(),
    };
    Denial::new(401, code, message).header(http::header::WWW_AUTHENTICATE, challenge)
}

/// The presented key and where it came from (`Some(param)` for the query string).
pub fn presented_key(r: &RequestInfo<'_>, query_param: Option<&str>) -> Option<(String, Option<String>)> {
    let access = &r.policy.config.access;
    if let Some(v) = r.req.headers.get(&access.auth_header).and_then(|v| v.to_str().ok()) {
        return Some((v.trim().to_string(), None));
    }
    if access.auth_bearer {
        if let Some(v) = r
            .req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
                return Some((token.trim().to_string(), None));
            }
        }
    }
    let param = query_param?;
    let query = r.req.uri.query()?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == param).then(|| (percent_decode(v), Some(param.to_string())))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (hex_val(bytes.get(i + 1)), hex_val(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: Option<&u8>) -> Option<u8> {
    (*b? as char).to_digit(16).map(|d| d as u8)
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl RequestFilter for ApiKeyAuth {
    fn name(&self) -> &'static str {
        "api_key_auth"
    }

    fn check(&self, r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
        let Some(route) = r.route else { return Ok(()) };
        let Some(auth) = &route.spec.auth else { return Ok(()) };
        let Some((key, from_query)) = presented_key(r, auth.query_param.as_deref()) else {
            if auth.required {
                return Err(unauthorized("missing_api_key", "an API key is required", None));
            }
            return Ok(());
        };
        state.key_query_param = from_query;
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
                    .reason("revoked_api_key"),
            );
        }
        if let Some(exp) = found.spec.expires {
            let exp = exp
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if r.now_unix >= exp {
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
                Denial::new(403, "tier_forbidden", "your plan does not include this route").reason("tier_route"),
            );
        }
        if tier.methods.as_ref().is_some_and(|m| !m.contains(&r.req.method)) {
            return Err(
                Denial::new(403, "tier_forbidden", "your plan does not allow this method").reason("tier_method"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("qv_ab%2Bc+d%zz%4"), "qv_ab+c d%zz%4");
    }
}
