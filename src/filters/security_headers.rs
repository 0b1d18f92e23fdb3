//! Security response headers: defaults from the policy, per-route overrides, keep or replace the
//! upstream's value, HSTS on TLS only, and removal of headers that advertise the upstream
//! (`Server`, `X-Powered-By` by default).

use pingora::http::ResponseHeader;
use pingora::prelude::*;

use crate::config::policy::SecurityHeadersSpec;

pub fn apply(resp: &mut ResponseHeader, spec: &SecurityHeadersSpec, tls: bool, from_upstream: bool) -> Result<()> {
    if from_upstream {
        for name in &spec.remove {
            resp.remove_header(name.as_str());
        }
    }
    for (name, value) in &spec.headers {
        if spec.replace_upstream || !resp.headers.contains_key(name.as_str()) {
            resp.insert_header(name.clone(), value.as_str())?;
        }
    }
    if tls {
        if let Some(hsts) = &spec.hsts {
            if spec.replace_upstream || !resp.headers.contains_key(http::header::STRICT_TRANSPORT_SECURITY) {
                resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.as_str())?;
            }
        }
    }
    Ok(())
}

/// The headers for a response the gateway writes itself.
pub fn extend(out: &mut Vec<(&'static str, String)>, spec: &SecurityHeadersSpec, tls: bool) {
    for (name, value) in &spec.headers {
        out.push((static_name(name), value.clone()));
    }
    if tls {
        if let Some(h) = &spec.hsts {
            out.push(("strict-transport-security", h.clone()));
        }
    }
}

/// Header names of gateway responses are `&'static str`; configured names are leaked once per
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
