//! The streaming JSON walk of body inspection, on its own: never panics, and it agrees with a
//! plain serde_json pass: a document the walk accepts parses; one that parses and nests no
//! deeper than the limit is accepted; and the walk hands over exactly the document's strings
//! (keys and values, in document order, duplicates kept).
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run json -- -max_total_time=60`.
#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use quantumvault::inspect::json_strings;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

const MAX_DEPTH: u32 = 32;

/// Every string of a document in order, and how deep it nests.
struct Collect<'a> {
    out: &'a mut Vec<String>,
    depth: u32,
    deepest: &'a mut u32,
}

impl Collect<'_> {
    /// Entering an array or object.
    fn enter(&mut self) {
        *self.deepest = (*self.deepest).max(self.depth + 1);
    }
    fn below(&mut self) -> Collect<'_> {
        Collect {
            out: self.out,
            depth: self.depth + 1,
            deepest: self.deepest,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
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
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.out.push(s.to_string());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.enter();
        while seq.next_element_seed(self.below())?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.enter();
        while let Some(k) = map.next_key::<String>()? {
            self.out.push(k);
            map.next_value_seed(self.below())?;
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let walked = json_strings(data, MAX_DEPTH);
    let (mut want, mut deepest) = (Vec::new(), 0);
    let mut de = serde_json::Deserializer::from_slice(data);
    let parsed = Collect {
        out: &mut want,
        depth: 0,
        deepest: &mut deepest,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (walked, parsed) {
        (None, Ok(())) => panic!("the walk refused JSON that parses"),
        (Some(Ok(seen)), Ok(())) => {
            assert!(deepest <= MAX_DEPTH);
            assert_eq!(seen, want);
        }
        (Some(Ok(_)), Err(e)) => panic!("the walk accepted what serde_json refuses: {e}"),
        (Some(Err(f)), parsed) => {
            assert_eq!(f.rule_id, quantumvault::inspect::TOO_DEEP);
            assert!(
                parsed.is_err() || deepest > MAX_DEPTH,
                "refused as too deep at {deepest}"
            );
        }
        (None, Err(_)) => {}
    }
});
