//! The YAML config from arbitrary text: the first byte picks `gateway.yaml` or a policy file.
//! Never panics, and every error carries a line and column inside the file (line 1 to one
//! past the last line) and a message: what `quantumvault check` prints as `file:line:col`.
//!
//! The file sits in a folder that does not exist, so relative paths in it name nothing; inputs
//! naming `/dev`, `/proc` or `/sys` are skipped so the fuzzer cannot make the load read an
//! endless special file (the config is the operator's, not the network's).
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run config -- -max_total_time=60`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quantumvault::config::error::SourceFile;
use quantumvault::config::{ConfigErrors, GatewayConfig, PolicyConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    // Lines as YAML counts them (a bare CR ends one too); an error at the end of a file
    // without a final newline sits on the line after its last.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count().max(1);
    let check = |errors: ConfigErrors| {
        assert!(!errors.is_empty());
        for e in &errors.0 {
            assert!(e.line >= 1 && e.line <= lines + 1, "{e} (file of {lines} lines)");
            assert!(e.column >= 1, "{e}");
            assert!(!e.message.is_empty(), "{e}");
        }
    };
    if which & 1 == 0 {
        let src = SourceFile::from_text(Path::new("/nonexistent-qv-fuzz/gateway.yaml"), text.to_string());
        if let Err(e) = GatewayConfig::from_source(&src) {
            check(e);
        }
    } else {
        let src = SourceFile::from_text(Path::new("/nonexistent-qv-fuzz/policy.yaml"), text.to_string());
        if let Err(e) = PolicyConfig::from_sources(&[src]) {
            check(e);
        }
    }
});
