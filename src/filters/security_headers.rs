//! Security response headers: defaults from the policy, per-route overrides, keep or replace the
//! upstream's value, HSTS on TLS only, and removal of headers that advertise the upstream
//! (`Server`, `X-Powered-By` by default).

use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use crate::config::policy::SecurityHeadersSpec;

/// A route's headers, compiled once per policy: parsed and interned names (the parsed one for
/// lookups, the interned text for Pingora's case-preserving insert) and validated values, so the
/// response path neither parses nor allocates them.
#[derive(Debug, Clone)]
pub struct CompiledHeaders {
    replace_upstream: bool,
    headers: Vec<(HeaderName, &'static str, HeaderValue)>,
    hsts: Option<HeaderValue>,
    remove: Vec<HeaderName>,
}

impl CompiledHeaders {
    pub fn compile(spec: &SecurityHeadersSpec) -> CompiledHeaders {
        // Invariant: values were validated as header values when the policy was parsed.
        // Invariant: names were validated as header names when the policy was parsed.
        let value = |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
        CompiledHeaders {
            replace_upstream: spec.replace_upstream,
            headers: spec
                .headers
                .iter()
                .filter_map(|(n, v)| Some((name(n)?, static_name(n), value(v))))
                .collect(),
            hsts: spec.hsts.as_deref().map(value),
            remove: spec.remove.iter().filter_map(|n| name(n)).collect(),
        }
    }
}

pub fn apply(resp: &mut ResponseHeader, spec: &CompiledHeaders, tls: bool, from_upstream: bool) -> Result<()> {
    if from_upstream {
        for name in &spec.remove {
            resp.remove_header(name);
        }
    }
    for (name, text, value) in &spec.headers {
        if spec.replace_upstream || !resp.headers.contains_key(name) {
            resp.insert_header(*text, value.clone())?;
        }
    }
    if tls {
        if let Some(hsts) = &spec.hsts {
            if spec.replace_upstream || !resp.headers.contains_key(http::header::STRICT_TRANSPORT_SECURITY) {
                resp.insert_header("strict-transport-security", hsts.clone())?;
            }
        }
    }
    Ok(())
}

/// Interned header names: configured names are leaked once per
/// distinct name (bounded by the policy, interned so reloads do not grow it).
fn static_name(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(n) = set.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}
