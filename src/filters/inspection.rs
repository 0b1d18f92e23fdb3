//! Request inspection in the filter chain: path, query, headers and cookies here; bodies in the
//! proxy's body phase ([`body_chunk`]). `block` answers 403 naming the rule id and class
//! (never echoing the payload); `detect` forwards with `X-QV-Inspection` and counts.
//!
//! Whatever the mode, a request the gateway cannot inspect is refused on an inspected route
//! rather than passed unseen: a `Content-Encoding` other than gzip or deflate (415), a charset
//! whose ASCII range is not ASCII (415), two `Content-Type` fields (400), a body that does not
//! decode (400), and, unless `inspection.oversize` is `pass`, a body over `inspection.max_body`
//! before or after decompression (413).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;

use super::request::{FilterState, RequestFilter, RequestInfo};
use crate::config::inspection::{InspectionMode, InspectionSpec, Oversize};
use crate::errors::{Denial, Reason};
use crate::inspect::body::{self, BodyError};
use crate::inspect::extract::{inspect, RequestView};
use crate::inspect::Finding;
use crate::policy::Route;

pub struct Inspection;

pub fn blocked(f: &Finding) -> Denial {
    Denial::new(403, "request_blocked", "")
        .reason(Reason::Inspection(f.rule_id))
        .with_message(format!(
            "blocked by inspection rule {} ({})",
            f.rule_id,
            f.class.as_str()
        ))
}

/// The refusal of a body the gateway cannot inspect.
fn refused(e: BodyError) -> Denial {
    let (status, code, reason) = match e {
        BodyError::UnsupportedEncoding => (415, "unsupported_content_encoding", "inspection_encoding"),
        BodyError::UnsupportedCharset => (415, "unsupported_charset", "inspection_charset"),
        BodyError::AmbiguousContentType => (400, "ambiguous_content_type", "inspection_content_type"),
        BodyError::TooLarge => (413, "body_too_large", "inspection_oversize"),
        BodyError::Corrupt => (400, "invalid_content_encoding", "inspection_encoding"),
    };
    Denial::new(status, code, "").with_message(e.to_string()).check(reason)
}

pub fn record(route: &str, f: &Finding, action: &'static str) {
    metrics::counter!(
        "quantumvault_inspection_findings_total",
        "route" => route.to_string(),
        "class" => f.class.as_str(),
        "rule" => f.rule_id.to_string(),
        "action" => action
    )
    .increment(1);
}

/// The request's one `Content-Type` (read lossily), or a refusal when it has two: the gateway
/// and the application could each pick a different one.
fn content_type(req: &RequestHeader) -> Result<Option<Cow<'_, str>>, BodyError> {
    let mut values = req.headers.get_all(http::header::CONTENT_TYPE).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(BodyError::AmbiguousContentType);
    }
    Ok(first.map(|v| String::from_utf8_lossy(v.as_bytes())))
}

fn codings(req: &RequestHeader) -> Result<Vec<body::Coding>, BodyError> {
    body::content_codings(
        req.headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .map(|v| v.as_bytes()),
    )
}

/// What refuses a body before any of it is read: how it is encoded and typed, and a declared
/// length over the bound. A request that says it has no body (`Content-Length: 0`, or HTTP/1
/// without a length or chunking) is not refused for its encoding.
fn check_body_headers(req: &RequestHeader, spec: &InspectionSpec) -> Result<(), BodyError> {
    let length = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let no_body = length == Some(0)
        || (length.is_none()
            && !req.headers.contains_key(http::header::TRANSFER_ENCODING)
            && req.version < http::Version::HTTP_2);
    if no_body {
        return Ok(());
    }
    codings(req)?;
    if let Some(ct) = content_type(req)? {
        body::charset(&ct)?;
    }
    if length.is_some_and(|n| n > spec.max_body) && spec.oversize == Oversize::Refuse {
        return Err(BodyError::TooLarge);
    }
    Ok(())
}

/// Every header as text: non-ASCII bytes (obs-text, Latin-1 or UTF-8 alike) read lossily as
/// U+FFFD, so a value is never skipped for holding one.
fn header_values(req: &RequestHeader) -> Vec<(&str, Cow<'_, str>)> {
    req.headers
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

impl RequestFilter for Inspection {
    fn name(&self) -> &'static str {
        "inspection"
    }

    fn check(&self, r: &RequestInfo<'_>, state: &mut FilterState) -> Result<(), Denial> {
        let Some(route) = r.route else { return Ok(()) };
        let Some(insp) = &route.inspector else { return Ok(()) };
        let spec = &route.spec.inspection;
        check_body_headers(r.req, spec).map_err(refused)?;
        // Non-ASCII bytes are read lossily (U+FFFD), never a reason to skip a value: the
        // application may decode them as Latin-1 or UTF-8, and the ASCII around them is the same.
        let raw = String::from_utf8_lossy(r.req.raw_path());
        let (path, query) = match raw.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw.as_ref(), None),
        };
        let values = header_values(r.req);
        let view = RequestView {
            path,
            query,
            headers: values
                .iter()
                .map(|(k, v)| (*k, v.as_ref()))
                .chain(
                    r.canonical
                        .removed_headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                )
                .collect(),
            content_type: None,
            body: None,
            exclude: &spec.exclude_params,
            limits: spec.limits,
        };
        let Some(f) = inspect(insp, &view) else { return Ok(()) };
        match spec.mode {
            InspectionMode::Block => {
                record(&route.spec.name, &f, "block");
                Err(blocked(&f))
            }
            InspectionMode::Detect => {
                record(&route.spec.name, &f, "detect");
                state.finding = Some(f);
                Ok(())
            }
            InspectionMode::Off => Ok(()),
        }
    }
}

/// The header that tells the upstream of a finding in `detect` mode.
pub const X_QV_INSPECTION: http::HeaderName = http::HeaderName::from_static("x-qv-inspection");

/// A request body on its way through the body phase.
#[derive(Default)]
pub struct BodyHold {
    /// Held until the body is complete (or over the bound).
    buf: BytesMut,
    /// Inspected (or passed over the bound): the rest streams through.
    done: bool,
    /// Over the bound with `oversize: refuse`: the rest is read and dropped, and the refusal
    /// answered at the end, so the client is not reset while it is still sending.
    refusing: Option<Denial>,
    /// This body's share of the gateway-wide held-bytes budget.
    held: crate::held::Held,
}

/// 503 with Retry-After: the gateway-wide held-bytes budget is spent by other requests.
fn busy() -> Denial {
    Denial::new(503, "busy", "the gateway holds too many request bodies; retry later")
        .check("held_bytes_budget")
        .header(http::header::RETRY_AFTER, "1".to_string())
}

/// Holds the request body of an inspected route until it is complete (up to the route's
/// `inspection.max_body`), decompresses and inspects it, then releases it upstream in one
/// piece, as it came (still compressed). A finding blocks (`Err`) or, in `detect` mode, is
/// kept in `finding`. Over the bound the body is refused, or with `oversize: pass` its prefix
/// is inspected and the rest streams through (counted).
pub fn body_chunk(
    route: &Route,
    req: &RequestHeader,
    hold: &mut BodyHold,
    finding: &mut Option<Finding>,
    body: &mut Option<Bytes>,
    end: bool,
) -> Result<(), Denial> {
    let Some(insp) = route.inspector.as_ref() else {
        return Ok(());
    };
    if hold.done {
        return Ok(());
    }
    let spec = &route.spec.inspection;
    if let Some(denial) = &hold.refusing {
        *body = None;
        return if end { Err(denial.clone()) } else { Ok(()) };
    }
    if let Some(chunk) = body.take() {
        if !hold.held.take(chunk.len() as u64) {
            crate::telemetry::metrics::held_budget_exhausted("inspection");
            hold.buf = BytesMut::new();
            hold.held.release();
            hold.refusing = Some(busy());
            return body_chunk(route, req, hold, finding, body, end);
        }
        hold.buf.extend_from_slice(&chunk);
    }
    let max = spec.max_body;
    let over = hold.buf.len() as u64 > max;
    if over && spec.oversize == Oversize::Refuse {
        hold.buf = BytesMut::new();
        hold.refusing = Some(refused(BodyError::TooLarge));
        return body_chunk(route, req, hold, finding, body, end);
    }
    if !end && !over {
        return Ok(()); // hold
    }
    let held = std::mem::take(&mut hold.buf).freeze();
    hold.done = true;
    // Released upstream below (or refused): no longer this gateway's to hold.
    hold.held.release();
    let prefix = &held[..held.len().min(max as usize)];
    let mut oversize = over;
    let codings = codings(req).map_err(refused)?;
    let decoded: Cow<'_, [u8]> = if codings.is_empty() {
        Cow::Borrowed(prefix)
    } else {
        match body::decode(prefix, &codings, max) {
            Ok(d) => Cow::Owned(d),
            Err((_, BodyError::TooLarge)) if spec.oversize == Oversize::Refuse => {
                return Err(refused(BodyError::TooLarge));
            }
            Err((mut partial, BodyError::TooLarge)) => {
                oversize = true;
                partial.truncate(max as usize);
                Cow::Owned(partial)
            }
            // A prefix cut at the bound ends mid-stream: what decoded so far is inspected.
            Err((partial, _)) if over => Cow::Owned(partial),
            Err((_, e)) => return Err(refused(e)),
        }
    };
    if oversize {
        crate::telemetry::metrics::unsigned_inspection_oversize(&route.spec.name);
    }
    let ct = content_type(req).map_err(refused)?;
    if let Some(f) = body::inspect_body(insp, ct.as_deref(), &decoded, &spec.exclude_params, spec.limits) {
        match spec.mode {
            InspectionMode::Block => {
                record(&route.spec.name, &f, "block");
                return Err(blocked(&f));
            }
            _ => {
                record(&route.spec.name, &f, "detect");
                finding.get_or_insert(f);
            }
        }
    }
    *body = (!held.is_empty()).then_some(held);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::{Clock, ManualClock};
    use crate::filters::request::{test_check, test_request as request, test_request_to};
    use crate::policy::{test_policy, Policy};

    fn policy() -> Policy {
        test_policy(
            r#"upstreams:
  - { name: u, peers: ["127.0.0.1:9"] }
routes:
  - { name: block, path_prefix: /block/, upstream: u, inspection: { mode: block, max_body: 64 } }
  - { name: detect, path_prefix: /detect/, upstream: u, inspection: { mode: detect, max_body: 64 } }
  - { name: pass, path_prefix: /pass/, upstream: u, inspection: { mode: block, max_body: 64, oversize: pass } }
  - { name: off, path_prefix: /off/, upstream: u, inspection: { mode: off } }
"#,
        )
    }

    const SQLI_QUERY: &str = "q=1%27%20OR%20%271%27=%271";
    const XSS: &[u8] = b"<script>alert(1)</script>";

    /// The header phase of inspection on `method target` with `headers`.
    fn check(p: &Policy, target: &str, headers: &[(&str, &[u8])]) -> (Result<(), Denial>, FilterState) {
        let req = test_request_to("GET", target, headers);
        let mut state = FilterState::default();
        let now = ManualClock::at_unix(0).now();
        let r = test_check(&Inspection, p, &req, "192.0.2.1".parse().unwrap(), now, &mut state);
        (r, state)
    }

    fn route<'a>(p: &'a Policy, name: &str) -> &'a Route {
        p.routes.iter().find(|r| r.spec.name == name).unwrap()
    }

    /// Feeds `chunks` of a POST body with `headers` through the body phase of route `name`:
    /// what each call returned and what it let through.
    fn feed(
        p: &Policy,
        name: &str,
        headers: &[(&str, &[u8])],
        chunks: &[&[u8]],
    ) -> (Vec<Result<Option<Bytes>, Denial>>, Option<Finding>) {
        let req = request(headers);
        let mut hold = BodyHold::default();
        let mut finding = None;
        let out = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut body = Some(Bytes::copy_from_slice(c));
                body_chunk(
                    route(p, name),
                    &req,
                    &mut hold,
                    &mut finding,
                    &mut body,
                    i + 1 == chunks.len(),
                )
                .map(|()| body)
            })
            .collect();
        (out, finding)
    }

    fn json() -> (&'static str, &'static [u8]) {
        ("Content-Type", b"application/json")
    }

    #[test]
    fn benign_requests_pass_the_header_phase() {
        let p = policy();
        for target in [
            "/block/search?q=rock+%26+roll+O%27Brien",
            "/block/a/b",
            "/detect/x?id=42",
        ] {
            let (r, state) = check(&p, target, &[("X-Note", b"drop by at 5"), ("Cookie", b"sid=abc")]);
            assert!(r.is_ok(), "{target}");
            assert!(state.finding.is_none(), "{target}");
        }
    }

    #[test]
    fn attacks_in_query_header_and_cookie_are_blocked() {
        let p = policy();
        let (r, state) = check(&p, &format!("/block/?{SQLI_QUERY}"), &[]);
        let d = r.unwrap_err();
        assert_eq!((d.status, d.code), (403, "request_blocked"));
        assert_eq!(d.reason, Reason::Inspection(942100));
        assert_eq!(d.message, "blocked by inspection rule 942100 (sqli)");
        assert!(state.finding.is_none());
        let d = check(&p, "/block/", &[("X-Note", XSS)]).0.unwrap_err();
        assert_eq!(
            (d.reason.label().as_ref(), d.message.as_ref()),
            ("inspection:941100", "blocked by inspection rule 941100 (xss)")
        );
        let d = check(&p, "/block/", &[("Cookie", b"id=1' OR '1'='1")]).0.unwrap_err();
        assert!(d.message.ends_with("(sqli)"), "{}", d.message);
        // The payload is never echoed.
        assert!(!d.message.contains("OR"));
    }

    #[test]
    fn detect_mode_forwards_with_the_finding_and_off_inspects_nothing() {
        let p = policy();
        let (r, state) = check(&p, &format!("/detect/?{SQLI_QUERY}"), &[]);
        assert!(r.is_ok());
        let f = state.finding.expect("finding");
        assert_eq!(
            (f.rule_id, f.class, f.location),
            (942100, crate::inspect::Class::Sqli, "query")
        );
        let (r, state) = check(&p, &format!("/off/?{SQLI_QUERY}"), &[("X-Note", XSS)]);
        assert!(r.is_ok() && state.finding.is_none());
        assert!(route(&p, "off").inspector.is_none());
    }

    #[test]
    fn the_header_phase_refuses_what_it_cannot_inspect() {
        let p = policy();
        let refusal = |route: &str, headers: &[(&str, &[u8])]| {
            check(&p, route, headers)
                .0
                .err()
                .map(|d| (d.status, d.code, d.reason.label()))
        };
        let len: (&str, &[u8]) = ("Content-Length", b"10");
        assert_eq!(
            refusal("/block/", &[len, ("Content-Encoding", b"br")]),
            Some((415, "unsupported_content_encoding", "inspection_encoding".into()))
        );
        assert_eq!(
            refusal("/detect/", &[len, ("Content-Encoding", b"br")]),
            Some((415, "unsupported_content_encoding", "inspection_encoding".into())),
            "detect mode too"
        );
        assert_eq!(
            refusal("/block/", &[("Content-Length", b"65")]),
            Some((413, "body_too_large", "inspection_oversize".into()))
        );
        assert_eq!(refusal("/block/", &[("Content-Length", b"64")]), None);
        assert_eq!(refusal("/pass/", &[("Content-Length", b"65")]), None);
        assert_eq!(refusal("/off/", &[len, ("Content-Encoding", b"br")]), None);
    }

    #[test]
    fn bodies_are_held_whole_then_released() {
        let p = policy();
        let (out, finding) = feed(&p, "block", &[json()], &[b"{\"name\":\"O'Brien\",", b"\"n\":1}"]);
        assert_eq!(out[0].as_ref().unwrap(), &None, "held");
        assert_eq!(
            out[1].as_ref().unwrap().as_deref(),
            Some(&b"{\"name\":\"O'Brien\",\"n\":1}"[..])
        );
        assert!(finding.is_none());
        // A route that does not inspect lets chunks through untouched.
        let (out, _) = feed(&p, "off", &[json()], &[b"{\"a\":", b"\"<script>\"}"]);
        assert_eq!(out[0].as_ref().unwrap().as_deref(), Some(&b"{\"a\":"[..]));
    }

    #[test]
    fn attacks_in_bodies_are_blocked_or_flagged() {
        let p = policy();
        let body: &[u8] = b"{\"bio\":\"<script>alert(1)</script>\"}";
        let (out, _) = feed(&p, "block", &[json()], &[&body[..10], &body[10..]]);
        assert!(out[0].is_ok());
        let d = out[1].as_ref().unwrap_err();
        assert_eq!(
            (d.status, d.code, d.reason.label().as_ref()),
            (403, "request_blocked", "inspection:941100")
        );
        // A form, and an attack split across chunks.
        let form = [("Content-Type", b"application/x-www-form-urlencoded".as_slice())];
        let (out, _) = feed(&p, "block", &form, &[b"q=1' OR ", b"'1'='1"]);
        assert!(out[1].as_ref().unwrap_err().message.ends_with("(sqli)"));
        // Detect: forwarded whole, the finding kept.
        let (out, finding) = feed(&p, "detect", &[json()], &[body]);
        assert_eq!(out[0].as_ref().unwrap().as_deref(), Some(body));
        let f = finding.expect("finding");
        assert_eq!((f.rule_id, f.class), (941100, crate::inspect::Class::Xss));
        // Compressed: inspected decompressed, forwarded as it came.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, body).unwrap();
        let gz = gz.finish().unwrap();
        let (out, _) = feed(&p, "block", &[json(), ("Content-Encoding", b"gzip")], &[&gz]);
        assert_eq!(out[0].as_ref().unwrap_err().reason, Reason::Inspection(941100));
        let (out, finding) = feed(&p, "detect", &[json(), ("Content-Encoding", b"gzip")], &[&gz]);
        assert_eq!(out[0].as_ref().unwrap().as_deref(), Some(&gz[..]));
        assert!(finding.is_some());
        let (out, _) = feed(&p, "block", &[json(), ("Content-Encoding", b"gzip")], &[b"not gzip"]);
        let d = out[0].as_ref().unwrap_err();
        assert_eq!((d.status, d.code), (400, "invalid_content_encoding"));
    }

    #[test]
    fn oversize_bodies_are_refused_at_the_end_or_passed_with_the_prefix_inspected() {
        let p = policy();
        let chunk = [b'a'; 40];
        // Refuse: over the bound the rest is read and dropped, and 413 answered at the end.
        let (out, _) = feed(&p, "block", &[], &[&chunk, &chunk, &chunk]);
        assert_eq!(out[0].as_ref().unwrap(), &None);
        assert_eq!(out[1].as_ref().unwrap(), &None, "dropped, not forwarded");
        let d = out[2].as_ref().unwrap_err();
        assert_eq!(
            (d.status, d.code, d.reason.label().as_ref()),
            (413, "body_too_large", "inspection_oversize")
        );
        // Decompressing past the bound is refused too.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &[b'a'; 1000]).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64);
        let (out, _) = feed(&p, "block", &[("Content-Encoding", b"gzip")], &[&gz]);
        assert_eq!(out[0].as_ref().unwrap_err().status, 413);
        // Pass: the held prefix is inspected and released, the rest streams through.
        let (out, _) = feed(&p, "pass", &[], &[&chunk, &chunk, &chunk]);
        assert_eq!(out[0].as_ref().unwrap(), &None);
        assert_eq!(out[1].as_ref().unwrap().as_ref().map(|b| b.len()), Some(80));
        assert_eq!(out[2].as_ref().unwrap().as_deref(), Some(&chunk[..]));
        let (out, _) = feed(&p, "pass", &[("Content-Encoding", b"gzip")], &[&gz]);
        assert_eq!(out[0].as_ref().unwrap().as_deref(), Some(&gz[..]));
        // ... and an attack in the prefix is still blocked.
        let mut attack = b"q=1' OR '1'='1&x=".to_vec();
        attack.resize(100, b'a');
        let form = [("Content-Type", b"application/x-www-form-urlencoded".as_slice())];
        let (out, _) = feed(&p, "pass", &form, &[&attack]);
        assert_eq!(out[0].as_ref().unwrap_err().status, 403);
    }

    fn spec(max_body: u64, oversize: Oversize) -> InspectionSpec {
        InspectionSpec {
            mode: InspectionMode::Block,
            max_body,
            oversize,
            ..Default::default()
        }
    }

    #[test]
    fn header_values_with_non_ascii_bytes_are_inspected() {
        let insp = crate::inspect::Inspector::new(1, &[]);
        for value in [b"id=' OR '1'='1\xe9".as_slice(), "id=' OR '1'='1é".as_bytes()] {
            let req = request(&[("Cookie", value), ("X-Note", &value[3..])]);
            let values = header_values(&req);
            assert_eq!(values.len(), 2);
            for (name, v) in &values {
                let view = RequestView {
                    path: "/",
                    query: None,
                    headers: vec![(name, v.as_ref())],
                    content_type: None,
                    body: None,
                    exclude: &[],
                    limits: crate::inspect::Limits::default(),
                };
                let f = inspect(&insp, &view).unwrap_or_else(|| panic!("{name}: {v}"));
                assert_eq!(f.class, crate::inspect::Class::Sqli);
            }
        }
    }

    #[test]
    fn body_headers_that_cannot_be_inspected_are_refused() {
        let s = spec(100, Oversize::Refuse);
        let check = |h: &[(&str, &[u8])]| check_body_headers(&request(h), &s).err();
        let len: (&str, &[u8]) = ("Content-Length", b"10");
        assert_eq!(check(&[len, ("Content-Encoding", b"GZIP")]), None);
        assert_eq!(check(&[len, ("Content-Encoding", b"deflate")]), None);
        assert_eq!(
            check(&[len, ("Content-Encoding", b"br")]),
            Some(BodyError::UnsupportedEncoding)
        );
        assert_eq!(
            check(&[("Transfer-Encoding", b"chunked"), ("Content-Encoding", b"zstd")]),
            Some(BodyError::UnsupportedEncoding)
        );
        // No body: the encoding does not matter.
        assert_eq!(check(&[("Content-Encoding", b"br")]), None);
        assert_eq!(check(&[("Content-Length", b"0"), ("Content-Encoding", b"br")]), None);
        assert_eq!(
            check(&[
                len,
                ("Content-Type", b"text/plain"),
                ("Content-Type", b"application/json")
            ]),
            Some(BodyError::AmbiguousContentType)
        );
        assert_eq!(
            check(&[
                len,
                ("Content-Type", b"application/x-www-form-urlencoded; charset=ibm037")
            ]),
            Some(BodyError::UnsupportedCharset)
        );
        assert_eq!(check(&[("Content-Length", b"101")]), Some(BodyError::TooLarge));
        let pass = spec(100, Oversize::Pass);
        assert_eq!(
            check_body_headers(&request(&[("Content-Length", b"101")]), &pass),
            Ok(())
        );
        // An unsupported encoding is refused in detect mode too: it cannot be inspected.
        let detect = InspectionSpec {
            mode: InspectionMode::Detect,
            ..spec(100, Oversize::Pass)
        };
        assert_eq!(
            check_body_headers(&request(&[len, ("Content-Encoding", b"x-foo")]), &detect),
            Err(BodyError::UnsupportedEncoding)
        );
        let d = refused(BodyError::UnsupportedEncoding);
        assert_eq!((d.status, d.code), (415, "unsupported_content_encoding"));
        assert_eq!(refused(BodyError::TooLarge).status, 413);
    }
}
