//! The canonicaliser on arbitrary request targets and header sets: never panics; a canonical
//! path is ASCII, starts with '/', is its own canonical form, and once fully percent-decoded
//! has no empty, '.' or '..' segment left for a backend to resolve differently.
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run canonical -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantumvault::canonical::path::{canonicalize, PathOptions};
use quantumvault::canonical::{host, query};

fuzz_target!(|data: &[u8]| {
    let opts = PathOptions::default();
    if let Ok(c) = canonicalize(data, &opts) {
        assert!(c.is_ascii() && c.starts_with('/'));
        assert_eq!(canonicalize(c.as_bytes(), &opts).as_deref(), Ok(c.as_str()));
        let decoded = query::decode(c.as_bytes());
        let segs: Vec<&[u8]> = decoded[1..].split(|&b| b == b'/').collect();
        for (i, s) in segs.iter().enumerate() {
            assert!(*s != b"." && *s != b"..");
            assert!(!s.is_empty() || i + 1 == segs.len());
        }
    }
    let _ = host::parse_authority(data);
    let _ = host::absolute_form(data);
    let _ = query::strip(data, |k, _| k == b"api_key");
});
