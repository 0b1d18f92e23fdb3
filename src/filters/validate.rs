//! Request validation: framing (400), URI length (414), header count and size (431), method
//! (405 with Allow), declared body size (413) and body media type (415). Bodies sent without a
//! length (chunked) are counted as they stream, in the proxy's body phase (see [`body_limit`]).

use pingora::http::RequestHeader;

use super::chain::{Denial, FilterState, RequestFilter, RequestInfo};

pub struct Validation;

fn bad(code: &'static str, message: &'static str) -> Denial {
    Denial::new(400, code, message)
}

/// Content-Length together with Transfer-Encoding. Pingora resolves that ambiguity itself before
/// any filter runs (RFC 9112 section 6.3: Transfer-Encoding wins, Content-Length is removed, the
/// connection closes after the response), so the header is gone by the time we look. What
/// remains is its trace: an HTTP/1.1 request with Transfer-Encoding that did not ask to close
/// has had keep-alive switched off. `keepalive_off` is that state.
pub fn had_content_length_with_transfer_encoding(req: &RequestHeader, keepalive_off: bool) -> bool {
    let asked_close = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.to_ascii_lowercase().contains("close")));
    req.version == http::Version::HTTP_11
        && req.headers.contains_key(http::header::TRANSFER_ENCODING)
        && !asked_close
        && keepalive_off
}

/// Ambiguous or malformed framing and header bytes, checked for every request.
pub fn check_framing(req: &RequestHeader) -> Result<(), Denial> {
    let cls: Vec<&http::HeaderValue> = req.headers.get_all(http::header::CONTENT_LENGTH).iter().collect();
    if cls.len() > 1 || cls.first().is_some_and(|v| v.as_bytes().contains(&b',')) {
        return Err(
            bad("ambiguous_framing", "the request has more than one Content-Length").reason("duplicate_content_length")
        );
    }
    if let Some(cl) = cls.first() {
        let ok = std::str::from_utf8(cl.as_bytes())
            .ok()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(bad("ambiguous_framing", "the Content-Length is not a number").reason("invalid_content_length"));
        }
        if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
            return Err(bad(
                "ambiguous_framing",
                "the request has both Content-Length and Transfer-Encoding",
            )
            .reason("content_length_with_transfer_encoding"));
        }
    }
    for (_, v) in req.headers.iter() {
        if v.as_bytes().iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(
                bad("invalid_header", "a header value contains control characters").reason("control_characters")
            );
        }
    }
    Ok(())
}

pub fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

fn has_body(req: &RequestHeader) -> bool {
    declared_length(req).is_some_and(|n| n > 0) || req.headers.contains_key(http::header::TRANSFER_ENCODING)
}

impl RequestFilter for Validation {
    fn name(&self) -> &'static str {
        "validation"
    }

    fn check(&self, r: &RequestInfo<'_>, _: &mut FilterState) -> Result<(), Denial> {
        let Some(route) = r.route else { return Ok(()) };
        let v = &route.spec.validation;
        let req = r.req;
        check_framing(req)?;
        if had_content_length_with_transfer_encoding(req, r.keepalive_off) {
            return Err(bad(
                "ambiguous_framing",
                "the request has both Content-Length and Transfer-Encoding",
            )
            .reason("content_length_with_transfer_encoding"));
        }
        if req.raw_path().len() as u64 > v.max_uri {
            return Err(Denial::new(414, "uri_too_long", "the request URI is too long"));
        }
        if req.headers.len() > v.max_headers {
            return Err(
                Denial::new(431, "headers_too_large", "the request has too many headers").reason("too_many_headers"),
            );
        }
        let header_bytes: usize = req.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes as u64 > v.max_header_bytes {
            return Err(
                Denial::new(431, "headers_too_large", "the request headers are too large").reason("header_bytes"),
            );
        }
        if let Some(methods) = &v.methods {
            if !methods.contains(&req.method) {
                return Err(
                    Denial::new(405, "method_not_allowed", "this method is not allowed on this route")
                        .header(http::header::ALLOW, route.allow_header.clone()),
                );
            }
        }
        if declared_length(req).is_some_and(|n| n > v.max_body) {
            return Err(Denial::new(413, "body_too_large", "the request body is too large"));
        }
        if let Some(types) = &v.content_types {
            if has_body(req) {
                let media = req
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
                    .unwrap_or_default();
                if !types.iter().any(|t| *t == media) {
                    return Err(Denial::new(
                        415,
                        "unsupported_media_type",
                        "this content type is not accepted on this route",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Counts streamed body bytes against the route's limit; `Err` once it is exceeded.
pub fn body_limit(seen: &mut u64, chunk: usize, max: u64) -> Result<(), Denial> {
    *seen += chunk as u64;
    if *seen > max {
        return Err(Denial::new(413, "body_too_large", "the request body is too large"));
    }
    Ok(())
}
