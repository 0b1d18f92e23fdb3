//! Request headers that could mean something else to the backend than to the gateway.
//!
//! - Underscores: CGI, WSGI, Rack, FastCGI and PHP read `X_Api_Key_Id` and `X-Api-Key-Id`
//!   both as `HTTP_X_API_KEY_ID`, so a client could pass off its own value as one the gateway
//!   vouches for. By default (`drop_lookalikes`) a header whose name has an `_` is removed when,
//!   with `_` read as `-`, it names a header the gateway owns or reads (its identity headers,
//!   the forwarding headers, the API-key header, `Authorization`, `Host`, framing headers), or
//!   another header of the same request. Other underscore headers pass, since APIs do use
//!   them (nginx operators turn `underscores_in_headers on` for them). `drop` removes every
//!   underscore header (nginx's default), `reject` answers 400, `allow` keeps them all.
//!   Case needs no rule: header names are case-insensitive and arrive lower-cased.
//! - From a peer that is not a trusted proxy, headers that only a proxy may set
//!   (`Forwarded`, `X-Real-IP`, `X-Original-URL`, `X-Rewrite-URL`, ...) are removed.
//! - Method overrides (`X-HTTP-Method-Override` and its spellings) are removed from untrusted
//!   peers by default; where kept, the overriding method must pass the route's and the tier's
//!   `methods` like the request method.
//! - The API-key header and `Authorization` may appear once (or repeated with one value):
//!   two different keys would let the gateway check one and the backend use the other.

use http::{HeaderMap, HeaderName, Method};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underscores {
    DropLookalikes,
    Drop,
    Reject,
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodOverride {
    /// Removed from untrusted peers; from trusted proxies kept and checked.
    Remove,
    /// Kept from everyone and checked against `methods`.
    Check,
}

/// The header names that are overrides of the request method.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Removed from peers that are not trusted proxies, by default.
pub const DEFAULT_UNTRUSTED_REMOVE: [&str; 14] = [
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-host",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
];

/// Names the gateway owns or reads, besides the configured API-key and client-IP headers.
const PROTECTED: [&str; 17] = [
    "x-api-key-id",
    "x-api-key-tier",
    "x-qv-inspection",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "content-type",
];

#[derive(Debug, Clone)]
pub struct HeaderOptions {
    pub underscores: Underscores,
    pub untrusted_remove: Vec<HeaderName>,
    pub method_override: MethodOverride,
}

impl Default for HeaderOptions {
    fn default() -> HeaderOptions {
        HeaderOptions {
            underscores: Underscores::DropLookalikes,
            untrusted_remove: DEFAULT_UNTRUSTED_REMOVE
                .iter()
                .map(|n| HeaderName::from_static(n))
                .collect(),
            method_override: MethodOverride::Remove,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header names with '_' are not accepted")]
    Underscore,
    #[error("the request carries more than one API key")]
    DuplicateCredential,
    #[error("the method override is not a valid method")]
    BadOverride,
    #[error("the request has conflicting method overrides")]
    ConflictingOverride,
}

impl HeaderError {
    pub fn reason(self) -> &'static str {
        match self {
            HeaderError::Underscore => "header_underscore",
            HeaderError::DuplicateCredential => "duplicate_credential",
            HeaderError::BadOverride => "bad_method_override",
            HeaderError::ConflictingOverride => "conflicting_method_override",
        }
    }
}

/// `name` with `_` read as `-` (names are already lower case).
fn dashed(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('_') {
        name.replace('_', "-").into()
    } else {
        name.into()
    }
}

/// What [`sanitize`] decided: the headers to remove and the method override the request
/// keeps, if any.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sanitized {
    pub remove: Vec<HeaderName>,
    pub method_override: Option<Method>,
}

/// Reads `headers` (without changing them: the caller removes `remove` through Pingora, which
/// keeps its case map in step). `owned`: the configured API-key and client-IP header names.
pub fn sanitize(
    headers: &HeaderMap,
    opts: &HeaderOptions,
    trusted_peer: bool,
    owned: &[&HeaderName],
) -> Result<Sanitized, HeaderError> {
    let mut out = Sanitized::default();
    for name in owned
        .iter()
        .copied()
        .chain(std::iter::once(&http::header::AUTHORIZATION))
    {
        let mut values = headers.get_all(name).iter();
        if let Some(first) = values.next() {
            if values.any(|v| v != first) {
                return Err(HeaderError::DuplicateCredential);
            }
        }
    }
    if opts.underscores != Underscores::Allow {
        for name in headers.keys().filter(|n| n.as_str().contains('_')) {
            if opts.underscores == Underscores::Reject {
                return Err(HeaderError::Underscore);
            }
            let d = dashed(name.as_str());
            let lookalike = opts.underscores == Underscores::Drop
                || PROTECTED.contains(&d.as_ref())
                || METHOD_OVERRIDE_HEADERS.contains(&d.as_ref())
                || owned.iter().any(|o| o.as_str() == d)
                || opts.untrusted_remove.iter().any(|o| o.as_str() == d)
                || headers.keys().any(|other| other != name && dashed(other.as_str()) == d);
            if lookalike {
                out.remove.push(name.clone());
            }
        }
    }
    let overrides_removed = !trusted_peer && opts.method_override == MethodOverride::Remove;
    if !trusted_peer {
        for name in &opts.untrusted_remove {
            if headers.contains_key(name) {
                out.remove.push(name.clone());
            }
        }
    }
    for name in METHOD_OVERRIDE_HEADERS {
        if overrides_removed {
            if headers.contains_key(name) {
                out.remove.push(HeaderName::from_static(name));
            }
            continue;
        }
        for v in headers.get_all(name) {
            let upper = v.as_bytes().trim_ascii().to_ascii_uppercase();
            let m = Method::from_bytes(&upper).map_err(|_| HeaderError::BadOverride)?;
            match &out.method_override {
                Some(prev) if *prev != m => return Err(HeaderError::ConflictingOverride),
                _ => out.method_override = Some(m),
            }
        }
    }
    Ok(out)
}

/// [`sanitize`] applied to a plain map (tests and the fuzz target).
pub fn sanitize_map(
    headers: &mut HeaderMap,
    opts: &HeaderOptions,
    trusted_peer: bool,
    owned: &[&HeaderName],
) -> Result<Option<Method>, HeaderError> {
    let s = sanitize(headers, opts, trusted_peer, owned)?;
    for name in &s.remove {
        headers.remove(name);
    }
    Ok(s.method_override)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    const KEY: HeaderName = HeaderName::from_static("x-api-key");

    #[test]
    fn lookalikes_are_dropped() {
        let mut h = map(&[
            ("x_api_key_id", "k_admin"),
            ("X_Forwarded_For", "1.2.3.4"),
            ("x_api_key", "qv_x"),
            ("x_custom", "1"),
            ("x-other", "a"),
            ("x_other", "b"),
        ]);
        let m = sanitize_map(&mut h, &HeaderOptions::default(), false, &[&KEY]).unwrap();
        assert_eq!(m, None);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x_custom", "x-other"]);
    }

    #[test]
    fn drop_and_reject() {
        let mut o = HeaderOptions {
            underscores: Underscores::Drop,
            ..HeaderOptions::default()
        };
        let mut h = map(&[("x_custom", "1")]);
        sanitize_map(&mut h, &o, false, &[]).unwrap();
        assert!(h.is_empty());
        o.underscores = Underscores::Reject;
        let mut h = map(&[("x_custom", "1")]);
        assert_eq!(sanitize_map(&mut h, &o, false, &[]), Err(HeaderError::Underscore));
    }

    #[test]
    fn untrusted_forwarding_headers_and_overrides() {
        let mut h = map(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-http-method-override", "DELETE"),
        ]);
        assert_eq!(
            sanitize_map(&mut h, &HeaderOptions::default(), false, &[]).unwrap(),
            None
        );
        assert!(h.is_empty());
        let mut h = map(&[("forwarded", "for=1.2.3.4"), ("x-http-method-override", "delete")]);
        assert_eq!(
            sanitize_map(&mut h, &HeaderOptions::default(), true, &[]).unwrap(),
            Some(Method::DELETE)
        );
        assert_eq!(h.len(), 2);
        let check = HeaderOptions {
            method_override: MethodOverride::Check,
            ..HeaderOptions::default()
        };
        let mut h = map(&[("x-http-method", "PUT"), ("x-method-override", "DELETE")]);
        assert_eq!(
            sanitize_map(&mut h, &check, false, &[]),
            Err(HeaderError::ConflictingOverride)
        );
        let mut h = map(&[("x-http-method", "P(T")]);
        assert_eq!(sanitize_map(&mut h, &check, false, &[]), Err(HeaderError::BadOverride));
    }

    #[test]
    fn duplicate_credentials() {
        let mut h = map(&[("x-api-key", "a"), ("x-api-key", "b")]);
        assert_eq!(
            sanitize_map(&mut h, &HeaderOptions::default(), false, &[&KEY]),
            Err(HeaderError::DuplicateCredential)
        );
        let mut h = map(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(
            sanitize_map(&mut h, &HeaderOptions::default(), false, &[&KEY]),
            Err(HeaderError::DuplicateCredential)
        );
        let mut h = map(&[("x-api-key", "a"), ("x-api-key", "a")]);
        assert!(sanitize_map(&mut h, &HeaderOptions::default(), false, &[&KEY]).is_ok());
    }

    /// Property (the `headers` fuzz target's, 4,000 random header sets under every option):
    /// never panics; a refused set is left as it came; otherwise no header the options remove
    /// is left (underscores under `drop`, proxy-only headers and method overrides from an
    /// untrusted peer), and `reject` never passes a name with `_`.
    #[test]
    fn property_what_the_options_remove_is_gone() {
        use rand::Rng;
        let names = [
            "x_api_key",
            "x-api-key",
            "x_forwarded_for",
            "forwarded",
            "x-real-ip",
            "x_real_ip",
            "authorization",
            "x-http-method-override",
            "x_http_method",
            "x-method-override",
            "a_b",
            "a-b",
            "host",
            "content_length",
        ];
        let values = ["GET", "delete", "P(T", "a", "b", " PUT "];
        let mut rng = crate::prop::rng(7230);
        for case in 0..4_000 {
            let mut h = HeaderMap::new();
            for _ in 0..rng.gen_range(0..8) {
                let n = HeaderName::from_static(names[rng.gen_range(0..names.len())]);
                h.append(
                    n,
                    http::HeaderValue::from_static(values[rng.gen_range(0..values.len())]),
                );
            }
            let opts = HeaderOptions {
                underscores: [
                    Underscores::DropLookalikes,
                    Underscores::Drop,
                    Underscores::Reject,
                    Underscores::Allow,
                ][rng.gen_range(0..4)],
                method_override: if rng.gen() {
                    MethodOverride::Remove
                } else {
                    MethodOverride::Check
                },
                ..HeaderOptions::default()
            };
            let trusted = rng.gen();
            let before = h.clone();
            match sanitize_map(&mut h, &opts, trusted, &[&KEY]) {
                Err(_) => assert_eq!(h, before, "case {case}"),
                Ok(_) => {
                    let underscore = |m: &HeaderMap| m.keys().any(|n| n.as_str().contains('_'));
                    assert!(
                        !(opts.underscores == Underscores::Reject && underscore(&before)),
                        "case {case}"
                    );
                    assert!(
                        !(opts.underscores == Underscores::Drop && underscore(&h)),
                        "case {case}"
                    );
                    if !trusted {
                        assert!(
                            opts.untrusted_remove.iter().all(|n| !h.contains_key(n)),
                            "case {case}: {h:?}"
                        );
                        if opts.method_override == MethodOverride::Remove {
                            assert!(
                                METHOD_OVERRIDE_HEADERS.iter().all(|n| !h.contains_key(*n)),
                                "case {case}"
                            );
                        }
                    }
                    // Nothing that reads as a protected name with '_' as '-' survives the default.
                    if opts.underscores == Underscores::DropLookalikes {
                        assert!(
                            h.keys().all(|n| !n.as_str().contains('_') || !PROTECTED.contains(&dashed(n.as_str()).as_ref())),
                            "case {case}: {h:?}"
                        );
                    }
                }
            }
        }
    }
}
