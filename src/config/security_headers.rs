//! The `security_headers` block (policy-wide, and per route onto it): headers added to
//! responses, HSTS on TLS listeners, upstream headers removed. A route's block is merged onto the
//! policy-wide one, so the conversion is `merge` (base plus raw block) rather than a `TryFrom`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::FieldError;
use super::names;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSecurityHeaders {
    /// Replace a value the upstream set (true) or keep the upstream's (false, default).
    #[serde(default)]
    pub replace_upstream: Option<bool>,
    /// Header name to value; `null` removes a default.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Sent on TLS listeners only.
    #[serde(default)]
    pub strict_transport_security: Option<Option<String>>,
    /// Upstream response headers to remove.
    #[serde(default)]
    pub remove: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityHeadersSpec {
    pub replace_upstream: bool,
    /// Lower-case names and values, in a stable order.
    pub headers: Vec<(String, String)>,
    pub hsts: Option<String>,
    pub remove: Vec<String>,
}

impl Default for SecurityHeadersSpec {
    fn default() -> Self {
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        SecurityHeadersSpec {
            replace_upstream: false,
            headers: vec![
                h("x-frame-options", "DENY"),
                h("x-content-type-options", "nosniff"),
                // "0" turns the legacy XSS auditor off, as OWASP advises: its filtering mode
                // introduced vulnerabilities, and CSP is the real protection.
                h("x-xss-protection", "0"),
                h("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
                h("referrer-policy", "no-referrer"),
                h(
                    "permissions-policy",
                    "camera=(), microphone=(), geolocation=(), payment=()",
                ),
            ],
            hsts: Some("max-age=31536000; includeSubDomains".into()),
            remove: vec!["server".into(), "x-powered-by".into()],
        }
    }
}

/// `raw` merged onto `base`; errors name the field below `security_headers`.
pub(super) fn merge(base: &SecurityHeadersSpec, raw: &RawSecurityHeaders) -> Result<SecurityHeadersSpec, FieldError> {
    let mut h = base.clone();
    if let Some(r) = raw.replace_upstream {
        h.replace_upstream = r;
    }
    for (name, value) in &raw.headers {
        let lname = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ("headers".to_string(), format!("{name:?} is not a header name")))?
            .as_str()
            .to_string();
        h.headers.retain(|(n, _)| *n != lname);
        if let Some(v) = value {
            http::HeaderValue::from_str(v).map_err(|_| ("headers".to_string(), format!("invalid value for {name}")))?;
            h.headers.push((lname, v.clone()));
        }
    }
    if let Some(hsts) = &raw.strict_transport_security {
        h.hsts = hsts.clone();
    }
    if let Some(remove) = &raw.remove {
        if let Some(bad) = remove.iter().find(|r| !names::valid_name(r)) {
            return Err(("remove".to_string(), format!("{bad:?} is not a header name")));
        }
        // Framing and the gateway's own response headers are not the upstream's to remove.
        const MANAGED: [&str; 5] = [
            "connection",
            "content-length",
            "transfer-encoding",
            "x-request-id",
            "date",
        ];
        if let Some(bad) = remove
            .iter()
            .find(|r| MANAGED.iter().any(|m| r.eq_ignore_ascii_case(m)))
        {
            return Err((
                "remove".to_string(),
                format!("{bad:?} is managed by the gateway (framing, or its own header) and cannot be removed"),
            ));
        }
        h.remove = remove.iter().map(|r| r.to_ascii_lowercase()).collect();
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use crate::config::policy::testing::{load, GOOD};

    #[test]
    fn security_header_removal_names_are_checked() {
        let e = load(&format!("security_headers:\n  remove: [\"x powered\"]\n{GOOD}")).unwrap_err();
        assert!(e.0[0].field.starts_with("security_headers"), "{e}");
        assert!(e.0[0].message.contains("not a header name"), "{e}");
        let e = load(&format!("security_headers:\n  remove: [X-Request-Id]\n{GOOD}")).unwrap_err();
        assert!(e.0[0].message.contains("managed by the gateway"), "{e}");
        assert!(load(&format!("security_headers:\n  remove: [X-Powered-By]\n{GOOD}")).is_ok());
    }
}
