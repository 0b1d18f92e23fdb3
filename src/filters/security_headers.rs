//! Security response headers: defaults from the policy, per-route overrides, keep or replace the
//! upstream's value, HSTS on TLS only, and removal of headers that advertise the upstream
//! (`Server`, `X-Powered-By` by default).

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::security_headers::SecurityHeadersSpec;

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
    /// The upstream headers removed from every proxied response (`Server`, `X-Powered-By`).
    pub fn removed(&self) -> &[HeaderName] {
        &self.remove
    }

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

/// Which of the headers that advertise the upstream ([`CompiledHeaders::removed`]) a response
/// carries, noted while the proxy strips its hop-by-hop headers. Past the 64th configured name
/// every name counts as present (removed unconditionally).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed(u64);

impl Removed {
    /// A response the gateway made: none of them.
    pub const NONE: Removed = Removed(0);

    /// Notes `name` if it is one of `spec`'s removed headers.
    #[inline]
    pub fn note(&mut self, spec: &CompiledHeaders, name: &HeaderName) {
        if let Some(i) = spec.remove.iter().take(64).position(|r| r == name) {
            self.0 |= 1 << i;
        }
    }

    fn has(self, i: usize) -> bool {
        i >= 64 || self.0 & (1 << i) != 0
    }
}

/// Sets the security headers on a response, first removing the headers that advertise the
/// upstream that it carries (`present`).
pub fn apply(headers: &mut HeaderMap, spec: &CompiledHeaders, tls: bool, present: Removed) {
    for (i, name) in spec.remove.iter().enumerate() {
        if present.has(i) {
            headers.remove(name);
        }
    }
    for (name, value) in &spec.headers {
        set(headers, name, value, spec.replace_upstream);
    }
    if tls {
        if let Some(hsts) = &spec.hsts {
            set(
                headers,
                &http::header::STRICT_TRANSPORT_SECURITY,
                hsts,
                spec.replace_upstream,
            );
        }
    }
}

/// Sets `name` unless the upstream already did and its value is kept (one lookup either way).
fn set(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue, replace: bool) {
    match headers.entry(name) {
        Entry::Vacant(slot) => {
            slot.insert(value.clone());
        }
        Entry::Occupied(mut slot) if replace => {
            slot.insert(value.clone());
        }
        Entry::Occupied(_) => {}
    }
}
