//! What body and request inspection share: `a=b&c=d` pairs, the streaming JSON walk and the
//! lossy JSON unescape (used by `extract` for query strings and by `body` for bodies).

pub(super) fn pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

/// The values of each repeated parameter joined with `,`, as ASP.NET and some Java frameworks
/// hand them to the application (`id=1 union/*&id=*/select ...` is `1 union/*,*/select ...`
/// there): each value alone may be clean when the joined one is not. Names compare as sent.
pub(super) fn joined_repeats<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut by_name: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, v) in pairs {
        match by_name.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vs)) => vs.push(v),
            None => by_name.push((k, vec![v])),
        }
    }
    by_name
        .into_iter()
        .filter(|(_, vs)| vs.len() > 1)
        .map(|(_, vs)| vs.join(","))
        .collect()
}

/// Walks a JSON document value by value as it parses, without building it: every string (key
/// or value) goes to `check` in document order, borrowed from the body when it has no escapes,
/// with the key it sits under when that key names a file to include (`{"page": "http://..."}`,
/// see [`crate::inspect::rules::is_include_param`]); values under an excluded key are skipped
/// unread. Parsing stops at the first finding.
pub(super) mod json_walk {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use crate::inspect::Finding;

    pub struct Walk<'a, F> {
        pub exclude: &'a [String],
        pub check: &'a mut F,
        pub found: &'a mut Option<Finding>,
        /// The include-like key a string value sits under.
        pub key: Option<&'a str>,
        /// Arrays and objects still allowed below this one.
        pub depth_left: u32,
    }

    /// The error that stops parsing once something is found.
    pub const STOP: &str = "inspection finding";

    impl<F: FnMut(&str, Option<&str>) -> Option<Finding>> Walk<'_, F> {
        fn see<E: serde::de::Error>(&mut self, s: &str, key: Option<&str>) -> Result<(), E> {
            if let Some(f) = (self.check)(s, key) {
                *self.found = Some(f);
                return Err(E::custom(STOP));
            }
            Ok(())
        }
        fn reborrow<'k>(&'k mut self, key: Option<&'k str>) -> Walk<'k, F> {
            Walk {
                exclude: self.exclude,
                check: self.check,
                found: self.found,
                key,
                depth_left: self.depth_left,
            }
        }
        /// Entering an array or object: refused past the depth limit (rule 920120), before
        /// serde_json's own recursion limit would end the walk without a verdict.
        fn descend<E: serde::de::Error>(&mut self) -> Result<(), E> {
            if self.depth_left == 0 {
                *self.found = Some(Finding {
                    rule_id: crate::inspect::TOO_DEEP,
                    class: crate::inspect::Class::Malformed,
                    location: "json",
                });
                return Err(E::custom(STOP));
            }
            self.depth_left -= 1;
            Ok(())
        }
    }

    impl<'de, F: FnMut(&str, Option<&str>) -> Option<Finding>> DeserializeSeed<'de> for Walk<'_, F> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    /// A key: checked like a value; answers whether its value is excluded, and the key itself
    /// when it names a file to include.
    struct Key<'w, 'a, F>(&'w mut Walk<'a, F>);

    enum Seen {
        Excluded,
        Plain,
        Include(String),
    }

    impl<'de, F: FnMut(&str, Option<&str>) -> Option<Finding>> DeserializeSeed<'de> for Key<'_, '_, F> {
        type Value = Seen;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Seen, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de, F: FnMut(&str, Option<&str>) -> Option<Finding>> Visitor<'de> for Key<'_, '_, F> {
        type Value = Seen;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object key")
        }
        fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Seen, E> {
            if self.0.exclude.iter().any(|e| e == k) {
                return Ok(Seen::Excluded);
            }
            self.0.see(k, None)?;
            Ok(if crate::inspect::rules::is_include_param(k) {
                Seen::Include(k.to_string())
            } else {
                Seen::Plain
            })
        }
    }

    impl<'de, F: FnMut(&str, Option<&str>) -> Option<Finding>> Visitor<'de> for Walk<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<(), E> {
            let key = self.key;
            self.see(s, key)
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
            self.descend()?;
            let key = self.key;
            while seq.next_element_seed(self.reborrow(key))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            self.descend()?;
            while let Some(seen) = map.next_key_seed(Key(&mut self))? {
                match seen {
                    Seen::Excluded => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    Seen::Plain => map.next_value_seed(self.reborrow(None))?,
                    Seen::Include(key) => map.next_value_seed(self.reborrow(Some(&key)))?,
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
        max_depth: u32,
        mut check: impl FnMut(&str, Option<&str>) -> Option<Finding>,
    ) -> Option<Option<Finding>> {
        let mut found = None;
        let mut de = serde_json::Deserializer::from_slice(body);
        let result = Walk {
            exclude,
            check: &mut check,
            found: &mut found,
            key: None,
            depth_left: max_depth,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        (result.is_ok() || found.is_some()).then_some(found)
    }
}

/// Every string (keys and values) the JSON walk hands to its check, in document order, with
/// nothing excluded: `None` when `body` is not JSON, `Some(Err(finding))` when it nests deeper
/// than `max_depth`. The entry point of the `json` fuzz target and the property test below.
pub fn json_strings(body: &[u8], max_depth: u32) -> Option<Result<Vec<String>, crate::inspect::Finding>> {
    let mut seen = Vec::new();
    let found = json_walk::walk(body, &[], max_depth, |s, _| {
        seen.push(s.to_string());
        None
    })?;
    Some(match found {
        Some(f) => Err(f),
        None => Ok(seen),
    })
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

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::Rng;

    use super::json_strings;

    /// A random JSON value of at most `depth` levels, its strings pushed to `strings` in
    /// document order.
    fn value(rng: &mut StdRng, depth: u32, strings: &mut Vec<String>) -> String {
        let string = |rng: &mut StdRng, strings: &mut Vec<String>| {
            let s = crate::prop::text(rng, b"ab \"\\/\n\xc3\xa9<'", 6);
            strings.push(s.clone());
            serde_json::to_string(&s).expect("a string serialises")
        };
        match rng.gen_range(0..if depth == 0 { 4 } else { 6 }) {
            0 => string(rng, strings),
            1 => rng.gen::<i32>().to_string(),
            2 => "-1.5e3".into(),
            3 => ["true", "false", "null"][rng.gen_range(0..3)].into(),
            4 => {
                let items: Vec<String> = (0..rng.gen_range(0..4))
                    .map(|_| value(rng, depth - 1, strings))
                    .collect();
                format!("[{}]", items.join(","))
            }
            _ => {
                let mut items = Vec::new();
                for _ in 0..rng.gen_range(0..4) {
                    let k = string(rng, strings);
                    items.push(format!("{k}:{}", value(rng, depth - 1, strings)));
                }
                format!("{{{}}}", items.join(","))
            }
        }
    }

    /// Property (the `json` fuzz target's, 3,000 random documents and a mutation of each): the
    /// walk hands over exactly the document's strings in order, refuses only what serde_json
    /// refuses or what nests too deep, and never panics.
    #[test]
    fn property_the_walk_sees_every_string_and_agrees_with_serde_json() {
        let mut rng = crate::prop::rng(8259);
        for case in 0..3_000 {
            let mut want = Vec::new();
            let doc = value(&mut rng, 5, &mut want);
            assert_eq!(json_strings(doc.as_bytes(), 8), Some(Ok(want)), "case {case}: {doc}");
            let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
            assert!(matches!(json_strings(deep.as_bytes(), 8), Some(Err(_))));
            let bad = crate::prop::mutate(&mut rng, doc.as_bytes(), b"[]{}\":,\\u0");
            // `Value`, not `IgnoredAny`: skipping a string does not check its UTF-8, and the walk
            // (which reads every string) refuses invalid UTF-8 as not JSON.
            let parsed = serde_json::from_slice::<serde_json::Value>(&bad).is_ok();
            match json_strings(&bad, 64) {
                Some(Ok(_)) | None => assert_eq!(json_strings(&bad, 64).is_some(), parsed, "case {case}: {bad:?}"),
                Some(Err(_)) => panic!("case {case}: no mutation nests 64 deep"),
            }
        }
    }
}
