//! Which parts of a request are inspected, and how each is split into values.

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

fn pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

fn walk_json<'v>(v: &'v serde_json::Value, exclude: &[String], out: &mut Vec<&'v str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk_json(x, exclude, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            if !exclude.iter().any(|e| e == k) {
                out.push(k);
                walk_json(x, exclude, out)
            }
        }),
        _ => {}
    }
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
    let body = r.body?;
    let ct = r.content_type.unwrap_or("").to_ascii_lowercase();
    let text = String::from_utf8_lossy(body);
    if ct.contains("json") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
            let mut values = Vec::new();
            walk_json(&v, r.exclude, &mut values);
            return values.into_iter().find_map(|s| insp.check(s, false, "json"));
        }
        return insp.check(&text, false, "body");
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        return pairs(&text)
            .filter(|(k, _)| !r.exclude.iter().any(|e| e == k))
            .find_map(|(k, v)| insp.check(k, true, "form").or_else(|| insp.check(v, true, "form")));
    }
    if ct.starts_with("multipart/form-data") {
        // The boundary is case-sensitive: take it from the original header.
        let orig = r.content_type.unwrap_or("");
        let boundary = ct.find("boundary=").map(|i| {
            orig[i + 9..]
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .to_string()
        });
        if let Some(b) = boundary.filter(|b| !b.is_empty()) {
            let delim = format!("--{b}");
            for part in text.split(delim.as_str()) {
                let content = part.split_once("\r\n\r\n").map(|(_, c)| c).unwrap_or("");
                let content = content.strip_suffix("\r\n").unwrap_or(content);
                if let Some(f) = insp.check(content, false, "multipart") {
                    return Some(f);
                }
            }
        }
        return None;
    }
    None
}
