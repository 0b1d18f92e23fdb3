//! Body inspection (the streaming JSON walk, forms, multipart, XML, raw text, under small
//! limits): never panics, whatever the bytes and the declared type. The first byte picks the
//! type. Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run body -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantumvault::inspect::body::inspect_body;
use quantumvault::inspect::{Inspector, Limits};

static TYPES: &[&str] = &[
    "application/json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "text/plain",
    "application/json; charset=utf-16",
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    static INSP: std::sync::OnceLock<Inspector> = std::sync::OnceLock::new();
    let insp = INSP.get_or_init(|| Inspector::new(2, &[]));
    let ct = TYPES[first as usize % TYPES.len()];
    let _ = inspect_body(
        insp,
        Some(ct),
        body,
        &[],
        Limits {
            max_values: 64,
            max_depth: 8,
        },
    );
});
