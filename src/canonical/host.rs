//! The canonical host: lower case, no port, no trailing dot; taken from an absolute-form
//! request target, the `Host` header or the HTTP/2 `:authority`, which must agree.
//!
//! Pingora 0.9.1 already refuses two `Host` lines, userinfo, and a `Host` that differs byte for
//! byte from the absolute-form or HTTP/2 authority. What it lets through and this module
//! covers: an HTTP/1.1 request with no host at all, absolute-form targets of other schemes,
//! a host that is not a DNS name or IP literal (spaces, `%`, non-ASCII, empty labels), a port
//! that is not a number up to 65535, and the spellings that name the same host differently
//! (`API.example.com.` and `api.example.com`), which route as one.

/// Why a host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has no host")]
    Missing,
    #[error("the host is not a valid host name")]
    Invalid,
    #[error("the port is not valid")]
    Port,
    #[error("the request target's scheme is not http or https")]
    Scheme,
    #[error("the Host header and the request target name different hosts")]
    Mismatch,
}

impl HostError {
    pub fn reason(self) -> &'static str {
        match self {
            HostError::Missing => "host_missing",
            HostError::Invalid => "host_invalid",
            HostError::Port => "host_port",
            HostError::Scheme => "host_scheme",
            HostError::Mismatch => "host_mismatch",
        }
    }
}

/// A parsed authority: the canonical host and the port as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub host: String,
    pub port: Option<u16>,
}

impl Authority {
    /// `host[:port]` as the upstream's `Host` (IPv6 literals in brackets).
    pub fn header_value(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

/// Parses `host[:port]`.
pub fn parse_authority(raw: &[u8]) -> Result<Authority, HostError> {
    let (host, port) = if let Some(rest) = raw.strip_prefix(b"[") {
        let end = rest.iter().position(|&b| b == b']').ok_or(HostError::Invalid)?;
        let literal = std::str::from_utf8(&rest[..end]).map_err(|_| HostError::Invalid)?;
        let ip: std::net::Ipv6Addr = literal.parse().map_err(|_| HostError::Invalid)?;
        let after = &rest[end + 1..];
        let port = match after {
            [] => None,
            [b':', digits @ ..] => Some(digits),
            _ => return Err(HostError::Invalid),
        };
        (ip.to_string(), port)
    } else {
        let (name, port) = match raw.iter().rposition(|&b| b == b':') {
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
            None => (raw, None),
        };
        (canonical_name(name)?, port)
    };
    let port = match port {
        None => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    Ok(Authority { host, port })
}

fn parse_port(digits: &[u8]) -> Result<u16, HostError> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HostError::Port);
    }
    let n: u32 = digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(HostError::Port),
    }
}

/// A DNS name or IPv4 literal, lower-cased, without one trailing dot.
fn canonical_name(name: &[u8]) -> Result<String, HostError> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(HostError::Invalid);
    }
    for label in name.split(|&b| b == b'.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return Err(HostError::Invalid);
        }
    }
    // Invariant: checked to be ASCII above.
    Ok(String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// An absolute-form target split into its authority and the rest (path and query).
pub struct AbsoluteForm<'a> {
    pub authority: &'a [u8],
    pub rest: &'a [u8],
}

/// `http://authority/path?query` (scheme case-insensitive). `Ok(None)` for origin-form.
pub fn absolute_form(target: &[u8]) -> Result<Option<AbsoluteForm<'_>>, HostError> {
    if target.first() == Some(&b'/') || target == b"*" {
        return Ok(None);
    }
    let Some(colon) = target.windows(3).position(|w| w == b"://") else {
        return Ok(None);
    };
    let scheme = &target[..colon];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return Err(HostError::Scheme);
    }
    let after = &target[colon + 3..];
    let end = after
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after.len());
    Ok(Some(AbsoluteForm {
        authority: &after[..end],
        rest: &after[end..],
    }))
}

/// The request's authority, from the absolute-form target, `Host` and the HTTP/2
/// `:authority`: every one present must name the same host and port. `None` when an HTTP/1.0
/// or HTTP/2 request has no host at all (routes without `hosts` still match).
pub fn resolve(
    absolute: Option<&[u8]>,
    host_header: Option<&[u8]>,
    h2_authority: Option<&str>,
    http11: bool,
) -> Result<Option<Authority>, HostError> {
    let mut found: Option<Authority> = None;
    for raw in [absolute, host_header, h2_authority.map(str::as_bytes)]
        .into_iter()
        .flatten()
    {
        let a = parse_authority(raw)?;
        match &found {
            Some(prev) if *prev != a => return Err(HostError::Mismatch),
            Some(_) => {}
            None => found = Some(a),
        }
    }
    if found.is_none() && http11 {
        // RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
        return Err(HostError::Missing);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_hosts() {
        let h = |s: &str| parse_authority(s.as_bytes());
        assert_eq!(h("API.Example.com.").unwrap().host, "api.example.com");
        assert_eq!(h("api.example.com:8080").unwrap().port, Some(8080));
        assert_eq!(h("[::1]:80").unwrap().host, "::1");
        assert_eq!(h("[0:0::1]").unwrap().header_value(), "[::1]");
        assert_eq!(h("a..b"), Err(HostError::Invalid));
        assert_eq!(h("a b"), Err(HostError::Invalid));
        assert_eq!(h("a%2eb"), Err(HostError::Invalid));
        assert_eq!(h("é.com"), Err(HostError::Invalid));
        assert_eq!(h("a.com:99999"), Err(HostError::Port));
        assert_eq!(h("a.com:"), Err(HostError::Port));
        assert_eq!(h("a.com:0"), Err(HostError::Port));
        assert_eq!(h(""), Err(HostError::Invalid));
        assert_eq!(h("."), Err(HostError::Invalid));
    }

    #[test]
    fn authorities_must_agree() {
        let r = |a: Option<&str>, h: Option<&str>, v11| resolve(a.map(str::as_bytes), h.map(str::as_bytes), None, v11);
        assert_eq!(r(Some("a.com"), None, true).unwrap().unwrap().host, "a.com");
        assert_eq!(r(Some("A.com."), Some("a.com"), true).unwrap().unwrap().host, "a.com");
        assert_eq!(r(Some("a.com"), Some("b.com"), true), Err(HostError::Mismatch));
        assert_eq!(r(Some("a.com:81"), Some("a.com"), true), Err(HostError::Mismatch));
        assert_eq!(r(None, None, true), Err(HostError::Missing));
        assert_eq!(r(None, None, false), Ok(None));
    }

    #[test]
    fn absolute_form_targets() {
        let a = absolute_form(b"HTTP://Example.com:80/p?q").unwrap().unwrap();
        assert_eq!(a.authority, b"Example.com:80");
        assert_eq!(a.rest, b"/p?q");
        assert!(absolute_form(b"/p").unwrap().is_none());
        assert_eq!(absolute_form(b"ftp://x/").err(), Some(HostError::Scheme));
        assert_eq!(absolute_form(b"http://x").unwrap().unwrap().rest, b"");
    }
}
