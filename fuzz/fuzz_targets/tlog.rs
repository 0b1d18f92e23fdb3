//! The transparency log's text formats as a client or witness reads them from the network:
//! C2SP checkpoints (signed notes), tlog-proofs, verifier keys and tile paths. Never panics,
//! and each parse is exact:
//! - a tile path that parses is the canonical path of what it parsed to;
//! - a checkpoint text that parses starts with the canonical text of what it parsed to;
//! - a proof that parses is what `proof_text` writes for it (less the skipped `extra` line);
//! - a verifier key that parses writes a key that parses to the same key;
//! - no note verifies under a key generated at start (it signed nothing).
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run tlog -- -max_total_time=60`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quantumvault::integrity::sig::{generate, AwsLcSigner, SigAlg, Signer};
use quantumvault::integrity::tlog::{
    checkpoint_text, parse_checkpoint_text, parse_proof, parse_tile_path, proof_text, tile_index_path,
    verify_checkpoint, NoteKey,
};

fn keys() -> &'static [NoteKey] {
    static KEYS: OnceLock<Vec<NoteKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let material = generate(SigAlg::Ed25519).expect("key generation");
        let signer = AwsLcSigner::load(SigAlg::Ed25519, &material).expect("a generated key loads");
        vec![NoteKey {
            name: "gw.test/log".into(),
            alg: SigAlg::Ed25519,
            public: signer.public_key().to_vec(),
        }]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Some((level, n, width)) = parse_tile_path(text) {
        let mut canonical = match level {
            Some(l) => format!("{l}/"),
            None => "entries/".to_string(),
        };
        canonical.push_str(&tile_index_path(n));
        if width != 256 {
            canonical.push_str(&format!(".p/{width}"));
        }
        assert_eq!(canonical, text);
    }

    if let Ok((origin, size, root)) = parse_checkpoint_text(text) {
        assert!(text.starts_with(&checkpoint_text(&origin, size, &root)), "{text:?}");
    }

    if let Ok((index, path, note)) = parse_proof(text) {
        let written = proof_text(index, &path, &note);
        let mut lines: Vec<&str> = text.split('\n').collect();
        if lines.get(1).is_some_and(|l| l.starts_with("extra ")) {
            lines.remove(1);
        }
        assert_eq!(written, lines.join("\n"));
    }

    if let Ok(k) = NoteKey::parse(text) {
        assert_eq!(NoteKey::parse(&k.vkey()).ok(), Some(k));
    }

    assert!(verify_checkpoint(text, keys()).is_err());
});
