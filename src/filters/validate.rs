//! Request validation: framing (400), URI length (414), header count and size (431), method
//! (405 with Allow), declared body size (413) and body media type (415). Bodies sent without a
//! length (chunked) are counted as they stream, in the proxy's body phase (see [`body_limit`]).

use pingora::http::RequestHeader;

use super::request::{FilterState, RequestFilter, RequestInfo};
use crate::errors::Denial;

pub struct Validation;

fn bad(code: &'static str, message: &'static str) -> Denial {
    Denial::new(400, code, message)
}

/// What one pass over the request's headers finds, for the framing and size checks.
#[derive(Default)]
struct HeaderScan<'a> {
    content_lengths: usize,
    content_length: Option<&'a http::HeaderValue>,
    transfer_encoding: bool,
    asks_close: bool,
    /// Names, values and the `: ` and CRLF of each line.
    bytes: usize,
    control_characters: bool,
}

impl HeaderScan<'_> {
    fn of(req: &RequestHeader) -> HeaderScan<'_> {
        let mut scan = HeaderScan::default();
        for (name, value) in req.headers.iter() {
            scan.bytes += name.as_str().len() + value.len() + 4;
            scan.control_characters |= has_control(value.as_bytes());
            if name == http::header::CONTENT_LENGTH {
                scan.content_lengths += 1;
                scan.content_length.get_or_insert(value);
            } else if name == http::header::TRANSFER_ENCODING {
                scan.transfer_encoding = true;
            } else if name == http::header::CONNECTION {
                scan.asks_close |= value
                    .to_str()
                    .is_ok_and(|v| v.as_bytes().windows(5).any(|w| w.eq_ignore_ascii_case(b"close")));
            }
        }
        scan
    }

    /// The declared body length, if there is one and it is a number.
    fn declared_length(&self) -> Option<u64> {
        self.content_length?.to_str().ok()?.parse().ok()
    }

    fn has_body(&self) -> bool {
        self.declared_length().is_some_and(|n| n > 0) || self.transfer_encoding
    }

    /// Ambiguous or malformed framing, and control characters in header values.
    fn check_framing(&self) -> Result<(), Denial> {
        if self.content_lengths > 1 || self.content_length.is_some_and(|v| v.as_bytes().contains(&b',')) {
            return Err(bad("ambiguous_framing", "the request has more than one Content-Length")
                .check("duplicate_content_length"));
        }
        if let Some(cl) = self.content_length {
            if cl.is_empty() || !cl.as_bytes().iter().all(u8::is_ascii_digit) {
                return Err(
                    bad("ambiguous_framing", "the Content-Length is not a number").check("invalid_content_length")
                );
            }
            if self.transfer_encoding {
                return Err(cl_with_te());
            }
        }
        if self.control_characters {
            return Err(bad("invalid_header", "a header value contains control characters").check("control_characters"));
        }
        Ok(())
    }

    /// Content-Length together with Transfer-Encoding. Pingora resolves that ambiguity itself
    /// before any filter runs (RFC 9112 section 6.3: Transfer-Encoding wins, Content-Length is
    /// removed, the connection closes after the response), so the header is gone by the time we
    /// look. What remains is its trace: an HTTP/1.1 request with Transfer-Encoding that did not
    /// ask to close has had keep-alive switched off. `keepalive_off` is that state; the proxy
    /// passes it as false while the process shuts down, when Pingora switches keep-alive off on
    /// every request (so a chunked upload then is not mistaken for this; Pingora has framed it by
    /// Transfer-Encoding alone and closes the connection after it either way).
    fn had_content_length_with_transfer_encoding(&self, req: &RequestHeader, keepalive_off: bool) -> bool {
        req.version == http::Version::HTTP_11 && self.transfer_encoding && !self.asks_close && keepalive_off
    }
}

fn cl_with_te() -> Denial {
    bad(
        "ambiguous_framing",
        "the request has both Content-Length and Transfer-Encoding",
    )
    .check("content_length_with_transfer_encoding")
}

/// Whether a header value holds a control character (below 0x20 other than tab, or DEL). The
/// eight-bytes-at-a-time test also flags tabs; a value with one is looked at byte by byte.
fn has_control(bytes: &[u8]) -> bool {
    crate::text::any_byte_below_or(bytes, 0x20, &[0x7f])
        && bytes.iter().any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
}

impl RequestFilter for Validation {
    fn name(&self) -> &'static str {
        "validation"
    }

    fn check(&self, r: &RequestInfo<'_>, _: &mut FilterState) -> Result<(), Denial> {
        let Some(route) = r.route else { return Ok(()) };
        let v = &route.spec.validation;
        let req = r.req;
        let scan = HeaderScan::of(req);
        scan.check_framing()?;
        if scan.had_content_length_with_transfer_encoding(req, r.keepalive_off) {
            return Err(cl_with_te());
        }
        if req.raw_path().len() as u64 > v.max_uri {
            return Err(Denial::new(414, "uri_too_long", "the request URI is too long"));
        }
        if req.headers.len() > v.max_headers {
            return Err(
                Denial::new(431, "headers_too_large", "the request has too many headers").check("too_many_headers"),
            );
        }
        if scan.bytes as u64 > v.max_header_bytes {
            return Err(
                Denial::new(431, "headers_too_large", "the request headers are too large").check("header_bytes"),
            );
        }
        if let Some(methods) = &v.methods {
            let overridden = r.canonical.method_override.as_ref();
            if !methods.contains(&req.method) || overridden.is_some_and(|m| !methods.contains(m)) {
                return Err(
                    Denial::new(405, "method_not_allowed", "this method is not allowed on this route")
                        .header(http::header::ALLOW, route.allow_header.clone()),
                );
            }
        }
        if scan.declared_length().is_some_and(|n| n > v.max_body) {
            return Err(Denial::new(413, "body_too_large", "the request body is too large"));
        }
        if let Some(types) = &v.content_types {
            if scan.has_body() || r.body_follows {
                let media = crate::text::media_type_of(&req.headers);
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

/// The framing checks of one header scan on `req` alone: ambiguous or malformed
/// `Content-Length`, and control characters in values. `Ok` carries the declared body length.
/// The entry point of the `headers` fuzz target and the property test below.
pub fn check_framing(req: &RequestHeader) -> Result<Option<u64>, Denial> {
    let scan = HeaderScan::of(req);
    scan.check_framing()?;
    Ok(scan.declared_length())
}

/// Counts streamed body bytes against the route's limit; `Err` once it is exceeded.
pub fn body_limit(seen: &mut u64, chunk: usize, max: u64) -> Result<(), Denial> {
    *seen += chunk as u64;
    if *seen > max {
        return Err(Denial::new(413, "body_too_large", "the request body is too large"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_but_not_tabs() {
        assert!(!has_control(b"a\tvalue\twith tabs, and more than eight bytes"));
        assert!(has_control(b"a\tvalue with a \x01 after a tab"));
        assert!(has_control(b"del \x7f"));
        assert!(!has_control("obs-text \u{e9}".as_bytes()));
    }

    use crate::filters::request::test_request as request;

    fn reason(req: &RequestHeader) -> Option<String> {
        HeaderScan::of(req).check_framing().err().map(|d| d.reason.to_string())
    }

    #[test]
    fn framing_is_checked_in_one_pass() {
        let ok = request(&[
            ("Host", b"a"),
            ("Content-Length", b"12"),
            ("Connection", b"Keep-Alive, CLOSE"),
        ]);
        let scan = HeaderScan::of(&ok);
        assert_eq!(reason(&ok), None);
        assert_eq!(scan.declared_length(), Some(12));
        assert!(scan.has_body() && scan.asks_close && !scan.transfer_encoding);
        assert_eq!(
            scan.bytes,
            "host".len() + 1 + "content-length".len() + 2 + "connection".len() + 17 + 12
        );
        // (Control characters: httparse already refuses them on HTTP/1, and a safe `HeaderValue`
        // cannot hold them, so the check is a second line of defence; `has_control` is tested
        // above.)
        let cases: [(&[(&str, &[u8])], &str); 4] = [
            (
                &[("Content-Length", b"1"), ("Content-Length", b"1")],
                "duplicate_content_length",
            ),
            (&[("Content-Length", b"1, 1")], "duplicate_content_length"),
            (&[("Content-Length", b"1x")], "invalid_content_length"),
            (
                &[("Content-Length", b"1"), ("Transfer-Encoding", b"chunked")],
                "content_length_with_transfer_encoding",
            ),
        ];
        assert_eq!(reason(&request(&[("X-A", b"tab\tis fine")])), None);
        for (headers, expected) in cases {
            assert_eq!(reason(&request(headers)).as_deref(), Some(expected), "{headers:?}");
        }
        let chunked = request(&[("Transfer-Encoding", b"chunked")]);
        let scan = HeaderScan::of(&chunked);
        assert!(scan.has_body() && scan.declared_length().is_none());
        assert!(scan.had_content_length_with_transfer_encoding(&chunked, true));
        assert!(!scan.had_content_length_with_transfer_encoding(&chunked, false));
    }

    /// Property (the `headers` fuzz target's, 4,000 random header sets): the framing scan never
    /// panics; what it passes has at most one `Content-Length`, all digits, and no
    /// `Transfer-Encoding` beside it; and the word-at-a-time control-byte test agrees with the
    /// byte-by-byte one on every value.
    #[test]
    fn property_passed_framing_is_unambiguous() {
        use rand::Rng;
        let names = [
            "content-length",
            "transfer-encoding",
            "connection",
            "x-a",
            "content-type",
        ];
        let values: [&[u8]; 9] = [
            b"12",
            b"0",
            b"1, 1",
            b"",
            b"chunked",
            b"close",
            b"a\tb",
            b"\x7f",
            b"99999999999999999999999",
        ];
        let mut rng = crate::prop::rng(9112);
        for case in 0..4_000 {
            let mut headers: Vec<(&str, Vec<u8>)> = Vec::new();
            for _ in 0..rng.gen_range(0..5) {
                let v = values[rng.gen_range(0..values.len())];
                let v = if rng.gen_ratio(1, 4) {
                    crate::prop::mutate(&mut rng, v, b"0123456789, \t")
                } else {
                    v.to_vec()
                };
                headers.push((names[rng.gen_range(0..names.len())], v));
            }
            for (_, v) in &headers {
                let naive = v.iter().any(|&b| b < 0x20 || b == 0x7f);
                assert_eq!(
                    crate::text::any_byte_below_or(v, 0x20, &[0x7f]),
                    naive,
                    "case {case}: {v:?}"
                );
            }
            let mut req = RequestHeader::build("POST", b"/", None).unwrap();
            for (n, v) in &headers {
                if let Ok(v) = http::HeaderValue::from_bytes(v) {
                    req.append_header(*n, v).unwrap();
                }
            }
            if let Ok(declared) = check_framing(&req) {
                let cls: Vec<_> = req.headers.get_all(http::header::CONTENT_LENGTH).iter().collect();
                assert!(cls.len() <= 1, "case {case}: {headers:?}");
                if let Some(cl) = cls.first() {
                    assert!(
                        !cl.is_empty() && cl.as_bytes().iter().all(u8::is_ascii_digit),
                        "case {case}"
                    );
                    assert!(
                        !req.headers.contains_key(http::header::TRANSFER_ENCODING),
                        "case {case}"
                    );
                    assert_eq!(declared, cl.to_str().unwrap().parse().ok(), "case {case}");
                }
            }
        }
    }
}
