//! Request and response header rewriting for forwarding: X-Forwarded-*, X-Request-Id, Host,
//! and removal of hop-by-hop headers (RFC 9110 section 7.6.1).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::prelude::*;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers that never cross the proxy. `Connection`, `Upgrade` and
/// `Transfer-Encoding` are left to Pingora, which owns framing and protocol upgrades.
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
];

/// `Connection` tokens that never remove a header: Pingora's own, and the headers framing and
/// routing depend on (removing `Content-Length` or `Transfer-Encoding` after Pingora chose the
/// framing would corrupt the message).
const KEPT_WHEN_LISTED: &[&str] = &[
    "close",
    "keep-alive",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "host",
];

/// Adds the header names one `Connection` value lists to `found`, except [`KEPT_WHEN_LISTED`].
/// The usual `Connection: keep-alive` adds and allocates nothing.
fn connection_listed(value: &HeaderValue, found: &mut Vec<HeaderName>) {
    // The usual values list nothing to remove.
    let bytes = value.as_bytes();
    if bytes.eq_ignore_ascii_case(b"keep-alive") || bytes.eq_ignore_ascii_case(b"close") {
        return;
    }
    let Ok(value) = value.to_str() else { return };
    for token in value.split(',').map(str::trim) {
        if !token.is_empty() && !KEPT_WHEN_LISTED.iter().any(|f| token.eq_ignore_ascii_case(f)) {
            // A token that is no header name names nothing to remove.
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                found.push(name);
            }
        }
    }
}

/// Removes hop-by-hop headers (from a request on its way upstream, or a response on its way
/// back), found in one pass over the headers, and shows every other header's name to `note` in
/// the same pass. Callers note which of the headers they own are there and then remove or
/// replace only those: a lookup that finds nothing costs as much as one that does.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, mut note: impl FnMut(&HeaderName)) {
    let mut found = Vec::new();
    for (name, value) in headers.iter() {
        if name == http::header::CONNECTION {
            connection_listed(value, &mut found);
        } else if HOP_BY_HOP.contains(&name.as_str()) {
            // A repeated header is listed again; removing it twice is harmless.
            found.push(name.clone());
        } else {
            note(name);
        }
    }
    for name in &found {
        headers.remove(name);
    }
}

pub struct Forwarded<'a> {
    /// The hop appended to X-Forwarded-For: the socket peer, whether or not it is trusted.
    pub client_ip: Option<IpAddr>,
    pub proto: &'static str,
    /// The host as the client sent it (X-Forwarded-Host), if it sent one.
    pub host: Option<HeaderValue>,
    pub request_id: &'a RequestId,
    pub upstream_host: Option<&'a str>,
}

impl Forwarded<'_> {
    /// How many headers [`apply_forwarding`] may add.
    pub const HEADERS: usize = 5;
}

/// Whether an upstream's `101 Switching Protocols` may stand: only as the WebSocket handshake
/// the client asked for (RFC 6455 section 4.2.2). The request offered `Upgrade: websocket` with
/// one `Sec-WebSocket-Key`, and the response names `websocket` and carries the matching
/// `Sec-WebSocket-Accept`. After a 101 the connection is a tunnel that no filter reads again,
/// so an upstream endpoint that merely echoes a status (a `?status=101` test knob, a buggy
/// handler) must not be able to open one: the next "request" on that connection would reach
/// the application with no access control, inspection or log line.
pub fn check_protocol_switch(req: &HeaderMap, resp: &HeaderMap) -> std::result::Result<(), &'static str> {
    fn offers_websocket(h: &HeaderMap) -> bool {
        h.get_all(http::header::UPGRADE).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")))
        })
    }
    fn single<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
        let mut all = h.get_all(name).iter();
        let first = all.next()?;
        all.next().is_none().then(|| first.as_bytes().trim_ascii())
    }
    if !offers_websocket(req) {
        return Err("the request asked for no WebSocket upgrade");
    }
    if !offers_websocket(resp) {
        return Err("the response switches to a protocol other than WebSocket");
    }
    let key = single(req, "sec-websocket-key").ok_or("the request has no single Sec-WebSocket-Key")?;
    let accept = single(resp, "sec-websocket-accept").ok_or("the response has no single Sec-WebSocket-Accept")?;
    if accept != websocket_accept(key).as_bytes() {
        return Err("the response's Sec-WebSocket-Accept does not match the request's key");
    }
    Ok(())
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2, step 5.4).
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

pub fn apply_forwarding(headers: &mut HeaderMap, f: &Forwarded<'_>) -> Result<()> {
    if let Some(ip) = f.client_ip {
        // Keep every earlier hop: several X-Forwarded-For lines fold into one list.
        let mut value = String::with_capacity(48);
        for prior in headers.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()) {
            value.push_str(prior);
            value.push_str(", ");
        }
        crate::text::push_ip(&mut value, ip);
        let value = HeaderValue::try_from(value).or_err(ErrorType::InvalidHTTPHeader, "X-Forwarded-For")?;
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(f.proto));
    if let Some(host) = f.host.clone().filter(|h| !h.is_empty()) {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers.insert(X_REQUEST_ID, f.request_id.header());
    if let Some(h) = f.upstream_host {
        let value = HeaderValue::from_str(h).or_err(ErrorType::InvalidHTTPHeader, "upstream Host")?;
        headers.insert(http::header::HOST, value);
    }
    Ok(())
}

/// The host as received, with its port.
pub fn request_authority(req: &RequestHeader) -> &str {
    req.headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// The host as received, with its port, for X-Forwarded-Host: `Host` (shared, not copied), or
/// the HTTP/2 authority.
pub fn forwarded_host(req: &RequestHeader) -> Option<HeaderValue> {
    match req.headers.get(http::header::HOST) {
        // Only a text Host is passed on, as before (opaque bytes fall back to the authority).
        Some(h) if h.to_str().is_ok() => Some(h.clone()),
        _ => req.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    }
}

/// A request's id: kept as the header value it travels in, so the request and the response
/// share one buffer instead of copying a string into each.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// No id yet (the request was not read far enough to be given one).
    pub fn none() -> RequestId {
        RequestId(HeaderValue::from_static(""))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Both constructors only make visible ASCII, so the text view always exists.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }

    pub fn header(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client-supplied request id is kept if it is short and plain; otherwise a new one is made.
pub fn request_id(req: &RequestHeader) -> RequestId {
    if let Some(v) = req.headers.get(X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b)) {
            return RequestId(v.clone());
        }
    }
    new_request_id()
}

/// 128 random bits as 32 lower-case hex digits.
pub fn new_request_id() -> RequestId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>().to_be_bytes();
    let mut text = [0u8; 32];
    for (pair, b) in text.chunks_exact_mut(2).zip(bits) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    // Invariant: hex digits are a valid header value.
    RequestId(HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_shows_the_other_names() {
        let mut h = HeaderMap::new();
        h.append("x-api-key", HeaderValue::from_static("qv_x"));
        h.append("x-qv-inspection", HeaderValue::from_static("forged"));
        h.append("connection", HeaderValue::from_static("keep-alive, x-hop"));
        h.append("x-hop", HeaderValue::from_static("1"));
        h.append("te", HeaderValue::from_static("trailers"));
        let mut seen = Vec::new();
        strip_hop_by_hop(&mut h, |n| seen.push(n.as_str().to_string()));
        assert_eq!(seen, ["x-api-key", "x-qv-inspection", "x-hop"]);
        assert!(!h.contains_key("x-hop") && !h.contains_key("te"));
        assert!(h.contains_key("x-api-key") && h.contains_key("connection"));
    }

    #[test]
    fn forwarding_headers() {
        let mut req = HeaderMap::new();
        req.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        req.append(
            "connection",
            HeaderValue::from_static("Keep-Alive, X-Secret-Hop, Content-Length"),
        );
        req.append("content-length", HeaderValue::from_static("0"));
        req.append("x-secret-hop", HeaderValue::from_static("1"));
        req.append("keep-alive", HeaderValue::from_static("timeout=5"));
        strip_hop_by_hop(&mut req, |_| {});
        apply_forwarding(
            &mut req,
            &Forwarded {
                client_ip: "127.0.0.2".parse().ok(),
                proto: "http",
                host: Some(HeaderValue::from_static("a.test:8080")),
                request_id: &new_request_id(),
                upstream_host: Some("internal"),
            },
        )
        .unwrap();
        assert_eq!(req["x-forwarded-for"], "10.0.0.1, 127.0.0.2");
        assert_eq!(req["x-forwarded-proto"], "http");
        assert_eq!(req["x-forwarded-host"], "a.test:8080");
        assert_eq!(req["host"], "internal");
        assert!(req.get("x-secret-hop").is_none());
        assert!(req.get("keep-alive").is_none());
        assert_eq!(req["content-length"], "0", "framing headers stay");
    }

    #[test]
    fn request_ids() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Request-Id", "abc-123").unwrap();
        assert_eq!(request_id(&req).as_str(), "abc-123");
        let mut bad = RequestHeader::build("GET", b"/", None).unwrap();
        bad.append_header("X-Request-Id", "a b\"<script>").unwrap();
        let made = request_id(&bad);
        assert_eq!(made.as_str().len(), 32);
        assert!(made
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(made.as_str(), new_request_id().as_str());
    }

    #[test]
    fn protocol_switch_only_as_the_websocket_handshake_asked_for() {
        // RFC 6455 section 1.3's own example key and accept value.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        let req = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let good = headers(&[
            ("upgrade", "WebSocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert_eq!(check_protocol_switch(&req, &good), Ok(()));
        // A bare 101, a wrong or missing accept, another protocol, no upgrade asked for.
        assert!(check_protocol_switch(&req, &headers(&[])).is_err());
        assert!(check_protocol_switch(&req, &headers(&[("upgrade", "websocket")])).is_err());
        let wrong = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ]);
        assert!(check_protocol_switch(&req, &wrong).is_err());
        let h2c = headers(&[
            ("upgrade", "h2c"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(check_protocol_switch(&req, &h2c).is_err());
        assert!(check_protocol_switch(&headers(&[("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]), &good).is_err());
        // Two keys: which one the upstream answered is ambiguous.
        let two = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-key", "b3RoZXIga2V5IDEyMzQ1Ng=="),
        ]);
        assert!(check_protocol_switch(&two, &good).is_err());
    }
}
