//! The normaliser and matcher on arbitrary input: never panics, output stays linear in the
//! input. Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run normalize -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantumvault::inspect::normalize::normalize;
use quantumvault::inspect::Inspector;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let n = normalize(s, true);
    assert!(n.text.len() <= 4 * s.len() + 16);
    static INSP: std::sync::OnceLock<Inspector> = std::sync::OnceLock::new();
    let _ = INSP.get_or_init(|| Inspector::new(2, &[])).check(s, true, "fuzz");
});
