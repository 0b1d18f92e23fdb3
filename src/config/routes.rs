//! The policy's `routes`: which requests go to which pool, and each route's own settings merged
//! onto the policy-wide ones.
//!
//! A route needs the rest of the policy to be checked: the pools and rate limits it names, the
//! defaults it is merged onto, the folder of its file (for IP list files). So it is built by an
//! explicit function, `RouteSpec::build` with a `RouteContext`, not by `TryFrom`: a
//! `TryFrom<(&RawRoute, &Context)>` would say less about what the second half is. The same rule
//! holds for every `config` module: `TryFrom<&Raw>` where a block stands alone, a function that
//! names its context where it does not.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::access::{self, RawIpFilter};
use super::error::{ConfigError, FieldError, SourceFile};
use super::inspection::{self, InspectionSpec, RawInspection};
use super::names::{self, check_name, Located, Names};
use super::security_headers::{self, RawSecurityHeaders, SecurityHeadersSpec};
use super::signing::{self, RawSigning, SigningSpec};
use super::validation::{self, RawValidation, ValidationSpec};
use crate::filters::ipset::IpSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub upstream: String,
    /// Replace the Host header sent upstream; absent keeps the client's Host.
    #[serde(default)]
    pub upstream_host: Option<String>,
    #[serde(default)]
    pub ip_filter: Option<RawIpFilter>,
    #[serde(default)]
    pub validation: Option<RawValidation>,
    #[serde(default)]
    pub security_headers: Option<RawSecurityHeaders>,
    #[serde(default)]
    pub auth: Option<RawRouteAuth>,
    #[serde(default)]
    pub rate_limits: Vec<String>,
    #[serde(default)]
    pub signing: Option<RawSigning>,
    #[serde(default)]
    pub inspection: Option<RawInspection>,
    /// Match `path_prefix` ignoring ASCII case (for backends that route that way).
    #[serde(default)]
    pub case_insensitive: Option<bool>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRouteAuth {
    #[serde(default = "yes")]
    pub required: bool,
    /// Accept the key from this query parameter too (stripped before the request goes upstream).
    #[serde(default)]
    pub query_param: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`; matches any deeper name, not the apex.
    Suffix(String),
}

/// A `hosts` entry that is neither a host name nor a `*.domain` wildcard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host name or a *.domain wildcard")]
pub struct BadHost(pub String);

impl HostPattern {
    pub(super) fn parse(raw: &str) -> Result<HostPattern, BadHost> {
        let lower = raw.trim().to_ascii_lowercase();
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        };
        if let Some(rest) = lower.strip_prefix("*.") {
            if valid_name(rest) {
                return Ok(HostPattern::Suffix(format!(".{rest}")));
            }
        } else if valid_name(&lower) {
            return Ok(HostPattern::Exact(lower));
        }
        Err(BadHost(raw.to_string()))
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub upstream: String,
    pub upstream_host: Option<String>,
    /// Route-level lists, checked after the global ones.
    pub ip_allow: Option<Arc<IpSet>>,
    pub ip_deny: Option<Arc<IpSet>>,
    pub validation: ValidationSpec,
    pub security_headers: SecurityHeadersSpec,
    pub auth: Option<RouteAuthSpec>,
    pub rate_limits: Vec<String>,
    pub signing: SigningSpec,
    pub inspection: InspectionSpec,
    /// `path_prefix` matches ignoring ASCII case (the route's or the policy's setting).
    pub case_insensitive: bool,
}

#[derive(Debug, Clone)]
pub struct RouteAuthSpec {
    pub required: bool,
    pub query_param: Option<String>,
}

/// Global defaults a route's own settings are merged onto.
#[derive(Debug, Clone)]
pub(super) struct RouteDefaults {
    pub validation: ValidationSpec,
    pub security_headers: SecurityHeadersSpec,
    pub signing: SigningSpec,
    pub inspection: InspectionSpec,
}

/// What a route is checked against.
pub(super) struct RouteContext<'n, 'a> {
    /// The pools of every file (a route may use a pool from any file).
    pub upstreams: &'n Names<'a>,
    /// The valid rate limits.
    pub rate_limits: &'n Names<'a>,
    pub defaults: &'n RouteDefaults,
    /// `normalization.case_insensitive`: every route matches ignoring ASCII case.
    pub case_insensitive: bool,
}

impl RouteSpec {
    /// One route, checked against `cx`; `src` is the file it is written in. Errors name the
    /// field below the route.
    pub(super) fn build(r: &RawRoute, src: &SourceFile, cx: &RouteContext) -> Result<RouteSpec, FieldError> {
        let RouteContext {
            upstreams,
            rate_limits,
            defaults,
            ..
        } = cx;
        let err = |f: &str, m: &dyn std::fmt::Display| (f.to_string(), m.to_string());
        check_name(&r.name).map_err(|m| err("name", &m))?;
        if !r.path_prefix.starts_with('/') {
            return Err(err("path_prefix", &"must start with '/'"));
        }
        // Prefixes are compared with canonical paths, so they must be canonical themselves and
        // spelled with characters that have one spelling only.
        let plain = r
            .path_prefix
            .bytes()
            .all(|b| b == b'/' || crate::canonical::path::is_unreserved(b));
        let canonical = crate::canonical::path::canonicalize(r.path_prefix.as_bytes(), &Default::default());
        if !plain || canonical.as_deref() != Ok(r.path_prefix.as_str()) {
            return Err(err(
                "path_prefix",
                &"must be a plain canonical path: letters, digits, '-', '.', '_', '~' and single '/', no '.' or '..' segments",
            ));
        }
        let mut hosts = Vec::new();
        for h in &r.hosts {
            hosts.push(HostPattern::parse(h).map_err(|m| err("hosts", &m))?);
        }
        upstreams.resolve(&r.upstream).map_err(|m| err("upstream", &m))?;
        if let Some(h) = &r.upstream_host {
            if h.is_empty() || h.chars().any(|c| c.is_control() || c == ' ') {
                return Err(err("upstream_host", &"must be a host name"));
            }
        }
        let (ip_allow, ip_deny) = match &r.ip_filter {
            None => (None, None),
            Some(f) if f.drop_connections => {
                return Err(err(
                    "ip_filter.drop_connections",
                    &"only the policy-wide ip_filter can drop connections (a connection has no route yet)",
                ))
            }
            Some(f) => {
                let (a, d) = access::ip_lists(f, src, "ip_filter")?;
                (a, d)
            }
        };
        let validation = match &r.validation {
            None => defaults.validation.clone(),
            Some(v) => validation::merge(&defaults.validation, v).map_err(|(f, m)| (format!("validation.{f}"), m))?,
        };
        let security_headers = match &r.security_headers {
            None => defaults.security_headers.clone(),
            Some(h) => security_headers::merge(&defaults.security_headers, h)
                .map_err(|(f, m)| (format!("security_headers.{f}"), m))?,
        };
        let auth = match &r.auth {
            None => None,
            Some(a) => {
                if let Some(q) = &a.query_param {
                    if q.is_empty() || !q.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        return Err(err("auth.query_param", &"must be a plain parameter name"));
                    }
                }
                Some(RouteAuthSpec {
                    required: a.required,
                    query_param: a.query_param.clone(),
                })
            }
        };
        let signing = match &r.signing {
            None => defaults.signing.clone(),
            Some(raw) => signing::merge(&defaults.signing, raw).map_err(|(f, m)| (format!("signing.{f}"), m))?,
        };
        let inspection = match &r.inspection {
            None => defaults.inspection.clone(),
            Some(raw) => {
                inspection::merge(&defaults.inspection, raw).map_err(|(f, m)| (format!("inspection.{f}"), m))?
            }
        };
        rate_limits
            .resolve_all(&r.rate_limits)
            .map_err(|(i, m)| (format!("rate_limits[{i}]"), m.to_string()))?;
        Ok(RouteSpec {
            name: r.name.clone(),
            hosts,
            path_prefix: r.path_prefix.clone(),
            upstream: r.upstream.clone(),
            upstream_host: r.upstream_host.clone(),
            ip_allow,
            ip_deny,
            validation,
            security_headers,
            auth,
            rate_limits: r.rate_limits.clone(),
            signing,
            inspection,
            case_insensitive: r.case_insensitive.unwrap_or(false),
        })
    }
}

/// The routes of every file, and their names (those of invalid routes too: a tier that names
/// one is not reported a second time). No two routes match the same hosts and prefix.
pub(super) fn build<'a>(
    items: impl Iterator<Item = Located<'a, RawRoute>>,
    cx: &RouteContext,
    errors: &mut Vec<ConfigError>,
) -> (Vec<RouteSpec>, Names<'a>) {
    let mut routes = Vec::new();
    let mut route_names = Names::new(names::ROUTE);
    let mut match_keys: HashMap<(Vec<HostPattern>, String), String> = HashMap::new();
    for (src, i, r) in items {
        let at = |f: &str| format!("routes[{i}].{f}");
        if let Err(m) = route_names.claim(&r.name, &src.path) {
            errors.push(src.error(&at("name"), m));
            continue;
        }
        match RouteSpec::build(r, src, cx) {
            Ok(mut spec) => {
                spec.case_insensitive |= cx.case_insensitive;
                let mut key_hosts = spec.hosts.clone();
                key_hosts.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
                let key = (key_hosts, spec.path_prefix.clone());
                if let Some(other) = match_keys.get(&key) {
                    errors.push(src.error(
                        &at("path_prefix"),
                        format!(
                            "route {:?} matches exactly the same hosts and prefix as route {other:?}",
                            r.name
                        ),
                    ));
                } else {
                    match_keys.insert(key, r.name.clone());
                }
                routes.push(spec);
            }
            Err((field, msg)) => errors.push(src.error(&at(&field), msg)),
        }
    }
    (routes, route_names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::policy::testing::{load, GOOD};

    #[test]
    fn unknown_field_is_located() {
        let e = load(&GOOD.replace("path_prefix", "pathprefix")).unwrap_err();
        let e = &e.0[0];
        assert_eq!(
            (e.line, e.column, e.field.as_str()),
            (6, 5, "routes[0].pathprefix"),
            "{e}"
        );
        assert!(e.message.contains("unknown field `pathprefix`"), "{e}");
    }

    #[test]
    fn missing_upstream_reference_is_located() {
        let e = load(&GOOD.replace("upstream: api", "upstream: apx")).unwrap_err();
        assert_eq!(
            e.0[0].to_string(),
            "p.yaml:7:5: routes[0].upstream: no upstream named \"apx\" (defined: [\"api\"])"
        );
    }

    #[test]
    fn duplicate_route_name_is_an_error() {
        let text = format!("{GOOD}  - name: r\n    path_prefix: /x\n    upstream: api\n");
        let e = load(&text).unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].field.as_str()), (8, "routes[1].name"));
    }

    #[test]
    fn host_patterns() {
        let s = HostPattern::parse("*.Example.com").unwrap();
        assert!(s.matches("a.example.com"));
        assert!(s.matches("a.b.example.com"));
        assert!(!s.matches("example.com"));
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::Exact("x.io".into()).matches("x.io"));
    }
}
