//! Which parts of a request are inspected, and how each is split into values.

use super::walk::pairs;
use super::{Finding, Inspector, Limits, Scan};

/// Headers that are framing the gateway itself checks (routing, length, hop-by-hop). Every
/// other header is inspected, credentials included (an application may log or parse any of
/// them, and Log4Shell arrived in Authorization); a finding names the rule, never the value.
const SKIP_HEADERS: &[&str] = &["connection", "content-length", "host", "te", "accept-encoding"];

pub struct RequestView<'a> {
    /// The raw path, as on the wire (percent-encoded), without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: Vec<(&'a str, &'a str)>,
    pub content_type: Option<&'a str>,
    /// The body prefix that is inspected.
    pub body: Option<&'a [u8]>,
    /// Parameter (and JSON key) names whose values are not inspected.
    pub exclude: &'a [String],
    pub limits: Limits,
}

/// The first rule that fires anywhere in the request.
pub fn inspect(inspector: &Inspector, r: &RequestView<'_>) -> Option<Finding> {
    let insp = &Scan::new(inspector, r.limits);
    if let Some(f) = insp.check(r.path, false, "path") {
        return Some(f);
    }
    if let Some(q) = r.query {
        for (k, v) in pairs(q) {
            if r.exclude.iter().any(|e| e == k) {
                continue;
            }
            if let Some(f) = insp.check_pair(k, v, true, "query_name", "query") {
                return Some(f);
            }
        }
        let kept = pairs(q).filter(|(k, _)| !r.exclude.iter().any(|e| e == k));
        for joined in crate::inspect::walk::joined_repeats(kept) {
            if let Some(f) = insp.recheck(&joined, true, "query") {
                return Some(f);
            }
        }
    }
    for (name, value) in &r.headers {
        let lname = name.to_ascii_lowercase();
        if lname == "cookie" {
            // PHP and others url-decode cookie values, `+` included.
            for c in value.split(';') {
                let (name, v) = c.split_once('=').unwrap_or(("", c));
                let (name, v) = (name.trim(), v.trim());
                // The name too: applications that iterate or log cookies read it.
                if let Some(f) = insp
                    .check(v, true, "cookie")
                    .or_else(|| insp.recheck(name, true, "cookie"))
                    .or_else(|| insp.check_include(name, v, true, "cookie"))
                {
                    return Some(f);
                }
            }
            continue;
        }
        if SKIP_HEADERS.contains(&lname.as_str()) || lname.starts_with("sec-") {
            continue;
        }
        let location = if lname == "referer" || lname == "origin" {
            "referer"
        } else {
            "header"
        };
        if let Some(f) = insp.check(value, false, location) {
            return Some(f);
        }
        // A URL's query (Referer, Location-like custom headers) is read the way its server reads
        // it: parameter by parameter, `+` as a space.
        if let Some((_, q)) = value.split_once('?') {
            for (k, v) in pairs(q.split('#').next().unwrap_or(q)) {
                if let Some(f) = insp.check(k, true, "header").or_else(|| insp.check(v, true, "header")) {
                    return Some(f);
                }
            }
        }
    }
    super::body::inspect_body(inspector, r.content_type, r.body?, r.exclude, r.limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(body: &'a str, exclude: &'a [String]) -> RequestView<'a> {
        RequestView {
            path: "/",
            query: None,
            headers: Vec::new(),
            content_type: Some("application/json"),
            body: Some(body.as_bytes()),
            exclude,
            limits: Limits::default(),
        }
    }

    #[test]
    fn json_is_walked_value_by_value_with_exclusions_and_escapes() {
        let insp = Inspector::new(1, &[]);
        let none: Vec<String> = Vec::new();
        // Nested in arrays, and written with JSON escapes (the walker sees the decoded string).
        let escaped = r#"{"a":[1,true,null,{"b":["\u003cscript\u003ealert(1)\u003c/script\u003e"]}]}"#;
        assert_eq!(
            inspect(&insp, &view(escaped, &none)).unwrap().class,
            super::super::Class::Xss
        );
        // Keys are inspected too.
        let key = r#"{"<script>alert(1)</script>":1}"#;
        assert!(inspect(&insp, &view(key, &none)).is_some());
        // An excluded key's whole value is skipped, however deep.
        let exclude = vec!["snippet".to_string()];
        let skipped = r#"{"snippet":{"code":["<script>alert(1)</script>"]},"name":"O'Brien"}"#;
        assert!(inspect(&insp, &view(skipped, &exclude)).is_none());
        assert!(inspect(&insp, &view(skipped, &none)).is_some());
        // Not JSON after all: the body is inspected as text.
        let broken = r#"{"q": 1' OR '1'='1}"#;
        assert_eq!(inspect(&insp, &view(broken, &none)).unwrap().location, "body");
        assert!(inspect(&insp, &view(r#"{"name":"O'Brien","n":[1,2.5,-3]}"#, &none)).is_none());
        // A document serde_json refuses (a number out of range) cannot hide an escaped payload.
        let refused = r#"{"a":1e400,"q":"\u0027 OR \u00271\u0027=\u00271"}"#;
        let f = inspect(&insp, &view(refused, &none)).unwrap();
        assert_eq!((f.location, f.class), ("body", super::super::Class::Sqli));
    }

    /// Repeated parameters joined as ASP.NET joins them, in the query and in a form body; and
    /// cookie names, which applications that iterate cookies read.
    #[test]
    fn repeated_parameters_joined_and_cookie_names() {
        let insp = Inspector::new(1, &[]);
        let none: Vec<String> = Vec::new();
        let split = "id=4%20union/*&id=*/select%20secret%20from%20vault";
        for (name, v) in pairs(split) {
            assert!(
                insp.check_pair(name, v, true, "query_name", "query").is_none(),
                "{v} alone"
            );
        }
        let q = RequestView {
            query: Some(split),
            body: None,
            content_type: None,
            ..view("", &none)
        };
        assert!(inspect(&insp, &q).is_some());
        let form = RequestView {
            content_type: Some("application/x-www-form-urlencoded"),
            body: Some(split.as_bytes()),
            ..view("", &none)
        };
        assert!(inspect(&insp, &form).is_some());
        // Repeats that stay harmless when joined.
        let fine = RequestView {
            query: Some("tag=red&tag=blue&page=2"),
            body: None,
            content_type: None,
            ..view("", &none)
        };
        assert!(inspect(&insp, &fine).is_none());
        let cookie = RequestView {
            headers: vec![("Cookie", "theme=dark; 4' union select secret from vault-- -=x")],
            body: None,
            content_type: None,
            ..view("", &none)
        };
        assert!(inspect(&insp, &cookie).is_some());
    }
}
