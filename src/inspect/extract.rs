//! Which parts of a request are inspected, and how each is split into values.

use super::walk::pairs;
use super::{Finding, Inspector};

/// Headers that carry no user-controlled text worth inspecting (or carry credentials, which are
/// never matched or logged).
const SKIP_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "authorization",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "host",
    "if-modified-since",
    "if-none-match",
    "pragma",
    "te",
    "upgrade-insecure-requests",
    "x-api-key",
    "dnt",
    "priority",
];

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
}

/// The first rule that fires anywhere in the request.
pub fn inspect(insp: &Inspector, r: &RequestView<'_>) -> Option<Finding> {
    if let Some(f) = insp.check(r.path, false, "path") {
        return Some(f);
    }
    if let Some(q) = r.query {
        for (k, v) in pairs(q) {
            if r.exclude.iter().any(|e| e == k) {
                continue;
            }
            if let Some(f) = insp
                .check(k, true, "query_name")
                .or_else(|| insp.check(v, true, "query"))
            {
                return Some(f);
            }
        }
    }
    for (name, value) in &r.headers {
        let lname = name.to_ascii_lowercase();
        if lname == "cookie" {
            for c in value.split(';') {
                let v = c.split_once('=').map(|(_, v)| v).unwrap_or(c);
                if let Some(f) = insp.check(v.trim(), false, "cookie") {
                    return Some(f);
                }
            }
            continue;
        }
        if SKIP_HEADERS.contains(&lname.as_str()) || lname.starts_with("sec-") {
            continue;
        }
        if let Some(f) = insp.check(value, false, "header") {
            return Some(f);
        }
    }
    super::body::inspect_body(insp, r.content_type, r.body?, r.exclude)
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
}
