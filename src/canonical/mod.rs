//! The canonical request: computed once per request, before routing, from the request line
//! and headers, and used by every decision (route and host match, auth, tier routes and
//! methods, IP rules, rate limits, validation, inspection mode, signing spec), by the access
//! log and by what the upstream receives. What the gateway checked is what the backend serves;
//! spellings two backends could read two ways are refused with 400.
//!
//! [`path`] owns the path, [`host`] the authority, [`headers`] the header names and values
//! that could mean something else behind the gateway, [`query`] the credential parameters.

pub mod headers;
pub mod host;
pub mod path;
pub mod query;

use http::Method;

pub use headers::{HeaderOptions, MethodOverride, Underscores};
pub use path::PathOptions;

/// The policy's `normalization` settings.
#[derive(Debug, Clone, Default)]
pub struct NormalizationSpec {
    pub path: PathOptions,
    /// Route matching ignores ASCII case on every route (a route can also set it alone).
    pub case_insensitive: bool,
    pub headers: HeaderOptions,
}

/// One request's canonical form.
#[derive(Debug, Clone, Default)]
pub struct CanonicalRequest {
    /// The canonical path (see [`path`]), without query.
    pub path: String,
    /// The query as received (bytes after `?`), if any.
    pub query: Option<Vec<u8>>,
    /// The canonical host (lower case, no port, no trailing dot); empty when none was sent.
    pub host: String,
    /// The authority to send upstream as `Host` when the client's differs from the canonical
    /// one (absent, absolute-form only, upper case, a trailing dot).
    pub host_header: Option<String>,
    /// The path sent differs from the client's bytes, so the upstream target is rewritten.
    pub rewritten: bool,
    /// A method override the request keeps (checked against `methods` like the method).
    pub method_override: Option<Method>,
    /// The query's `_method` parameters are not forwarded (method overrides are removed from
    /// an untrusted peer, `normalization.headers.method_override: remove`).
    pub strip_method_param: bool,
    /// Headers removed before forwarding (untrusted `X-Forwarded-Host`, underscore lookalikes),
    /// with their values: inspection still reads them, since a client that sends a payload
    /// there is attacking whatever else might read it (a log, a proxy in front of the upstream).
    pub removed_headers: Vec<(String, String)>,
}

/// Why the request was refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error(transparent)]
    Path(#[from] path::PathError),
    #[error(transparent)]
    Host(#[from] host::HostError),
    #[error(transparent)]
    Header(#[from] headers::HeaderError),
}

impl CanonicalError {
    pub fn reason(self) -> &'static str {
        match self {
            CanonicalError::Path(e) => e.reason(),
            CanonicalError::Host(e) => e.reason(),
            CanonicalError::Header(e) => e.reason(),
        }
    }
}

impl CanonicalRequest {
    /// The canonical form of the request line and host of `req`. `case_fold_guard`: some route
    /// matches case-insensitively (see [`PathOptions::reject_case_fold_lookalikes`]).
    pub fn of(
        req: &pingora::http::RequestHeader,
        spec: &NormalizationSpec,
    ) -> Result<CanonicalRequest, CanonicalError> {
        let raw = req.raw_path();
        let absolute = host::absolute_form(raw)?;
        let (origin, absolute_authority) = match &absolute {
            Some(a) => (a.rest, Some(a.authority)),
            None => (raw, None),
        };
        let (raw_path, query) = match origin.iter().position(|&b| b == b'?') {
            Some(i) => (&origin[..i], Some(origin[i + 1..].to_vec())),
            None => (origin, None),
        };
        // An absolute-form target with nothing after the authority means "/".
        let raw_path: &[u8] = if raw_path.is_empty() && absolute.is_some() {
            b"/"
        } else {
            raw_path
        };
        if query.as_ref().is_some_and(|q| q.contains(&b'#')) {
            return Err(path::PathError::Fragment.into());
        }
        let canonical = path::canonicalize(raw_path, &spec.path)?;
        let host_value = req.headers.get(http::header::HOST).map(|v| v.as_bytes());
        let h2_authority = match req.version {
            http::Version::HTTP_2 | http::Version::HTTP_3 => req.uri.authority().map(|a| a.as_str()),
            _ => None,
        };
        let http11 = req.version == http::Version::HTTP_11;
        let authority = host::resolve(absolute_authority, host_value, h2_authority, http11)?;
        let (host, host_header) = match &authority {
            None => (String::new(), None),
            Some(a) => {
                let value = a.header_value();
                let differs = host_value.is_none_or(|h| h != value.as_bytes());
                // HTTP/2 upstream requests carry the authority; only an HTTP/1 Host is rewritten.
                let rewrite = differs && (host_value.is_some() || absolute_authority.is_some());
                (a.host.clone(), rewrite.then_some(value))
            }
        };
        Ok(CanonicalRequest {
            rewritten: absolute.is_some() || canonical.as_bytes() != raw_path,
            path: canonical,
            query,
            host,
            host_header,
            method_override: None,
            strip_method_param: false,
            removed_headers: Vec::new(),
        })
    }

    /// The upstream request target: the canonical path and the query (`query` as edited).
    pub fn target(&self, query: Option<&[u8]>) -> Vec<u8> {
        let mut t = Vec::with_capacity(self.path.len() + 1 + query.map_or(0, <[u8]>::len));
        t.extend_from_slice(self.path.as_bytes());
        if let Some(q) = query {
            t.push(b'?');
            t.extend_from_slice(q);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, host: Option<&str>) -> pingora::http::RequestHeader {
        let mut r = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        r.set_raw_path(target.as_bytes()).unwrap();
        if let Some(h) = host {
            r.insert_header("Host", h).unwrap();
        }
        r
    }

    #[test]
    fn absolute_form_without_host() {
        let c = CanonicalRequest::of(&req("http://API.example.com./%70rivate?k=v", None), &Default::default()).unwrap();
        assert_eq!(c.host, "api.example.com");
        assert_eq!(c.path, "/private");
        assert_eq!(c.query.as_deref(), Some(&b"k=v"[..]));
        assert_eq!(c.host_header.as_deref(), Some("api.example.com"));
        assert!(c.rewritten);
        assert_eq!(c.target(c.query.as_deref()), b"/private?k=v");
    }

    #[test]
    fn plain_requests_are_not_rewritten() {
        let c = CanonicalRequest::of(&req("/a/b?x=1", Some("h.com:8080")), &Default::default()).unwrap();
        assert!(!c.rewritten);
        assert_eq!(c.host, "h.com");
        assert_eq!(c.host_header, None);
        let c = CanonicalRequest::of(&req("/a/b", Some("H.com.")), &Default::default()).unwrap();
        assert_eq!(c.host_header.as_deref(), Some("h.com"));
    }

    #[test]
    fn missing_host_on_http11() {
        let e = CanonicalRequest::of(&req("/a", None), &Default::default()).unwrap_err();
        assert_eq!(e.reason(), "host_missing");
    }
}
