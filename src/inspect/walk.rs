//! What body and request inspection share: `a=b&c=d` pairs, the streaming JSON walk and the
//! lossy JSON unescape (used by `extract` for query strings and by `body` for bodies).

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
