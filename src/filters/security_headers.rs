//! Security response headers: defaults from the policy, per-route overrides, keep or replace the
//! upstream's value, HSTS on TLS only, and removal of headers that advertise the upstream
//! (`Server`, `X-Powered-By` by default).

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::policy::SecurityHeadersSpec;

/// A route's headers, compiled once per policy: parsed names and validated values, so the
/// response path neither parses nor allocates them.
#[derive(Debug, Clone)]
pub struct CompiledHeaders {
    replace_upstream: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    hsts: Option<HeaderValue>,
    remove: Vec<HeaderName>,
}

impl CompiledHeaders {
    pub fn compile(spec: &SecurityHeadersSpec) -> CompiledHeaders {
        let value = |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
        CompiledHeaders {
            replace_upstream: spec.replace_upstream,
            headers: spec
                .headers
                .iter()
                .filter_map(|(n, v)| Some((name(n)?, value(v))))
                .collect(),
            hsts: spec.hsts.as_deref().map(value),
            remove: spec.remove.iter().filter_map(|n| name(n)).collect(),
        }
    }

    /// How many headers [`apply`] may add.
    pub fn max_added(&self) -> usize {
        self.headers.len() + 1
    }
}

/// Sets the security headers on a response (`from_upstream`: first removes the headers that
/// advertise the upstream).
pub fn apply(headers: &mut HeaderMap, spec: &CompiledHeaders, tls: bool, from_upstream: bool) {
    if from_upstream {
        for name in &spec.remove {
            headers.remove(name);
        }
    }
    for (name, value) in &spec.headers {
        if spec.replace_upstream || !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    if tls {
        if let Some(hsts) = &spec.hsts {
            if spec.replace_upstream || !headers.contains_key(http::header::STRICT_TRANSPORT_SECURITY) {
                headers.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
        }
    }
}
