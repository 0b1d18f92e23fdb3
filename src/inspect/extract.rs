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

pub(super) fn pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

/// Walks a JSON document value by value as it parses, without building it: every string (key
/// or value) goes to `check` in document order, borrowed from the body when it has no escapes;
/// values under an excluded key are skipped unread. Parsing stops at the first finding.
pub(super) mod json_walk {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use crate::inspect::Finding;

    pub struct Walk<'a, F> {
        pub exclude: &'a [String],
        pub check: &'a mut F,
        pub found: &'a mut Option<Finding>,
    }

    /// The error that stops parsing once something is found.
    pub const STOP: &str = "inspection finding";

    impl<F: FnMut(&str) -> Option<Finding>> Walk<'_, F> {
        fn see<E: serde::de::Error>(&mut self, s: &str) -> Result<(), E> {
            if let Some(f) = (self.check)(s) {
                *self.found = Some(f);
                return Err(E::custom(STOP));
            }
            Ok(())
        }
        fn reborrow(&mut self) -> Walk<'_, F> {
            Walk {
                exclude: self.exclude,
                check: self.check,
                found: self.found,
            }
        }
    }

    impl<'de, F: FnMut(&str) -> Option<Finding>> DeserializeSeed<'de> for Walk<'_, F> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    /// A key: checked like a value; answers whether its value is excluded.
    struct Key<'w, 'a, F>(&'w mut Walk<'a, F>);

    impl<'de, F: FnMut(&str) -> Option<Finding>> DeserializeSeed<'de> for Key<'_, '_, F> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de, F: FnMut(&str) -> Option<Finding>> Visitor<'de> for Key<'_, '_, F> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object key")
        }
        fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<bool, E> {
            if self.0.exclude.iter().any(|e| e == k) {
                return Ok(true);
            }
            self.0.see(k)?;
            Ok(false)
        }
    }

    impl<'de, F: FnMut(&str) -> Option<Finding>> Visitor<'de> for Walk<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<(), E> {
            self.see(s)
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(self.reborrow())?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            while let Some(excluded) = map.next_key_seed(Key(&mut self))? {
                if excluded {
                    map.next_value::<IgnoredAny>()?;
                } else {
                    map.next_value_seed(self.reborrow())?;
                }
            }
            Ok(())
        }
    }

    /// `Some(finding)` when the document parsed (or parsing stopped at a finding); `None` when
    /// it is not JSON.
    pub fn walk(
        body: &[u8],
        exclude: &[String],
        mut check: impl FnMut(&str) -> Option<Finding>,
    ) -> Option<Option<Finding>> {
        let mut found = None;
        let mut de = serde_json::Deserializer::from_slice(body);
        let result = Walk {
            exclude,
            check: &mut check,
            found: &mut found,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        (result.is_ok() || found.is_some()).then_some(found)
    }
}

/// JSON string escapes decoded anywhere in `text` (`\uXXXX`, with lone surrogates as U+FFFD,
/// and the one-letter escapes); everything else is kept as it is.
pub(super) fn json_unescape_lossy(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16) {
                    Ok(code) if hex.len() == 4 => out.push(char::from_u32(code).unwrap_or('\u{fffd}')),
                    _ => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') | Some('f') => out.push(' '),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
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
