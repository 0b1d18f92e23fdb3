//! Header edits on proxied requests and responses, made on the `http::HeaderMap` itself.
//!
//! Pingora's `insert_header` parses the name again on every call and keeps a second map with
//! each name's original case: a non-standard name is allocated twice, and both maps, sized for
//! the headers already there, regrow as the first ones are added. Measured with callgrind that
//! is about 1,200 instructions a header, and the gateway adds four to every upstream request and
//! up to a dozen to every response. So those edits go through [`edit_request`] and
//! [`edit_response`]: room is reserved once, names are parsed once (constants or per policy),
//! and the header gives up its case map. Names then go out in Pingora's canonical form: the
//! dozen names it titles (`Content-Type`, `Host`, ...) in Title-Case, all others in lower case
//! (Envoy lower-cases every name by default). HTTP field names are case-insensitive (RFC 9110
//! section 5.1) and HTTP/2 lower-cases them all.
//!
//! This leans on what `pingora-http` 0.9.1's `From<Parts>` conversions keep and drop (the
//! case map, and the request-target bytes, restored here): Cargo.toml pins `pingora` to that
//! release and Cargo.lock its parts; the unit tests below check what is kept.

use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

/// Runs `edit` on the response's headers with room for `additional` more. Status, version,
/// reason phrase and extensions are kept.
pub fn edit_response<R>(resp: &mut ResponseHeader, additional: usize, edit: impl FnOnce(&mut HeaderMap) -> R) -> R {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_string);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts = http::response::Parts::from(std::mem::replace(resp, empty));
    parts.headers.reserve(additional);
    let out = edit(&mut parts.headers);
    *resp = ResponseHeader::from(parts);
    if let Some(reason) = reason {
        // Pingora stores only a phrase that differs from the status's own, as here.
        let _ = resp.set_reason_phrase(Some(&reason));
    }
    out
}

/// Runs `edit` on the request's headers with room for `additional` more. Method, target,
/// version and extensions are kept; a target the URI does not reproduce byte for byte (an
/// absolute-form target, or one that is not UTF-8) is set again from its raw bytes.
pub fn edit_request<R>(
    req: &mut RequestHeader,
    additional: usize,
    edit: impl FnOnce(&mut HeaderMap) -> R,
) -> Result<R> {
    let raw_target = (req.raw_path() != uri_target(&req.uri)).then(|| req.raw_path().to_vec());
    let end_stream = req.send_end_stream();
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, empty));
    parts.headers.reserve(additional);
    let out = edit(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if let Some(raw) = raw_target {
        req.set_raw_path(&raw)?;
    }
    if let Some(end_stream) = end_stream {
        req.set_send_end_stream(end_stream);
    }
    Ok(out)
}

/// The target a header without stored target bytes writes: what `RequestHeader::raw_path`
/// falls back to (pingora-http 0.9.1).
fn uri_target(uri: &http::Uri) -> &[u8] {
    uri.path_and_query()
        .map(|p| p.as_str().as_bytes())
        .or_else(|| uri.authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    const X_ADDED: HeaderName = HeaderName::from_static("x-added");

    fn wire(resp: &ResponseHeader) -> String {
        let mut buf = bytes::BytesMut::new();
        resp.header_to_h1_wire(&mut buf);
        String::from_utf8(buf.to_vec()).unwrap()
    }

    #[test]
    fn response_keeps_status_reason_and_headers() {
        let mut resp = ResponseHeader::build(404, Some(2)).unwrap();
        resp.insert_header("Content-Type", "text/plain").unwrap();
        resp.insert_header("X-Upstream", "a").unwrap();
        resp.set_reason_phrase(Some("Gone Fishing")).unwrap();
        let n = edit_response(&mut resp, 1, |h| {
            h.insert(X_ADDED, HeaderValue::from_static("1"));
            h.remove("x-upstream");
            h.len()
        });
        assert_eq!(n, 2);
        assert_eq!(resp.status, 404);
        assert_eq!(resp.get_reason_phrase(), Some("Gone Fishing"));
        assert_eq!(resp.headers["content-type"], "text/plain");
        assert_eq!(resp.headers["x-added"], "1");
        assert!(!resp.headers.contains_key("x-upstream"));
        // Canonical names on the wire: standard ones titled, others lower case.
        let wire = wire(&resp);
        assert!(wire.contains("Content-Type: text/plain\r\n"), "{wire}");
        assert!(wire.contains("x-added: 1\r\n"), "{wire}");
        // Headers added through Pingora's API afterwards still work.
        resp.insert_header("X-Later", "2").unwrap();
        assert_eq!(resp.headers["x-later"], "2");
    }

    #[test]
    fn response_with_canonical_reason_stores_none() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        edit_response(&mut resp, 0, |_| ());
        assert_eq!(resp.get_reason_phrase(), Some("OK"));
    }

    #[test]
    fn request_keeps_method_target_and_headers() {
        let mut req = RequestHeader::build("POST", b"/a/b?x=1&y=%20", None).unwrap();
        req.insert_header("Host", "example.com").unwrap();
        edit_request(&mut req, 1, |h| {
            h.insert(X_ADDED, HeaderValue::from_static("v"));
        })
        .unwrap();
        assert_eq!(req.method, http::Method::POST);
        assert_eq!(req.raw_path(), b"/a/b?x=1&y=%20");
        assert_eq!(req.uri.query(), Some("x=1&y=%20"));
        assert_eq!(req.headers["host"], "example.com");
        assert_eq!(req.headers["x-added"], "v");
    }

    #[test]
    fn request_keeps_targets_the_uri_cannot_reproduce() {
        for target in [&b"http://example.com/p?q=1"[..], b"/caf\xc3\xa9", b"/\xff\xfe"] {
            let mut req = RequestHeader::build("GET", target, None).unwrap();
            let before = req.raw_path().to_vec();
            let utf8 = req.raw_path_is_utf8();
            edit_request(&mut req, 0, |_| ()).unwrap();
            assert_eq!(req.raw_path(), &before[..], "{}", String::from_utf8_lossy(target));
            assert_eq!(req.raw_path_is_utf8(), utf8);
        }
    }

    #[test]
    fn request_keeps_end_stream_choice_on_http2() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.set_version(http::Version::HTTP_2);
        req.set_send_end_stream(false);
        edit_request(&mut req, 0, |_| ()).unwrap();
        assert_eq!(req.send_end_stream(), Some(false));
    }
}
