//! Multipart bodies with an arbitrary boundary and `Content-Type` parameters: the first line
//! of the input is the `Content-Type` value's parameters, the rest the body (also read with a
//! fixed boundary, so the fuzzer can reach part headers without guessing one). Never panics,
//! and every boundary read from the value is a piece of it.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run multipart -- -max_total_time=60`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quantumvault::inspect::body::{inspect_body, param_values};
use quantumvault::inspect::{Inspector, Limits};

fuzz_target!(|data: &[u8]| {
    static INSP: OnceLock<Inspector> = OnceLock::new();
    let insp = INSP.get_or_init(|| Inspector::new(2, &[]));
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (params, body) = text.split_once('\n').unwrap_or((text, ""));
    let ct = format!("multipart/form-data;{params}");
    for b in param_values(&ct, "boundary") {
        assert!(ct.contains(b), "{b:?} is not in {ct:?}");
    }
    let limits = Limits {
        max_values: 64,
        max_depth: 8,
    };
    let _ = inspect_body(insp, Some(&ct), body.as_bytes(), &[], limits);
    let _ = inspect_body(
        insp,
        Some("multipart/form-data; boundary=b"),
        body.as_bytes(),
        &[],
        limits,
    );
});
