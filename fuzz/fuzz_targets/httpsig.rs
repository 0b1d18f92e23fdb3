//! RFC 9421 `Signature-Input` and `Signature` parsing and verification, and the batch
//! signature value (`docs/batch-signing.md`), on arbitrary field values. The input is
//! `Signature-Input`, a newline, `Signature`. Never panics, and:
//! - every label that parses re-serialises (`params_value`) to a field that parses the same;
//! - no label verifies: the key (generated at start, never stored) signed nothing here;
//! - a batch value that decodes encodes back to the same bytes.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run httpsig -- -max_total_time=60`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quantumvault::integrity::batch::Value;
use quantumvault::integrity::httpsig::{params_value, parse_signature_input, verify, Backend, Message};
use quantumvault::integrity::sig::{generate, AwsLcSigner, SigAlg, Signer};

fn public_key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        let material = generate(SigAlg::EcdsaP256).expect("key generation");
        AwsLcSigner::load(SigAlg::EcdsaP256, &material)
            .expect("a generated key loads")
            .public_key()
            .to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Value::decode(data) {
        assert_eq!(v.encode(), data);
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (input, signature) = text.split_once('\n').unwrap_or((text, ""));

    if let Ok(labels) = parse_signature_input(input) {
        for (label, parsed) in labels {
            let Ok(p) = parsed else { continue };
            let again = format!("{label}={}", params_value(&p.covered, &p.params));
            let back = parse_signature_input(&again).expect("a re-serialised label parses");
            assert_eq!(back.len(), 1, "{again}");
            assert_eq!(back[0].0, label);
            assert_eq!(back[0].1.as_ref(), Ok(&p), "{again}");
        }
    }

    let mut resp = http::HeaderMap::new();
    resp.insert("content-type", http::HeaderValue::from_static("application/json"));
    resp.insert("x-request-id", http::HeaderValue::from_static("r1"));
    let req = http::HeaderMap::new();
    let m = Message {
        status: 200,
        headers: &resp,
        req_method: "GET",
        req_target_uri: "https://gw.test/a?b=1",
        req_headers: &req,
    };
    let keys = |_: &str| Some((SigAlg::EcdsaP256, public_key().to_vec()));
    let backend = if data.len() % 2 == 0 {
        Backend::AwsLc
    } else {
        Backend::RustCrypto
    };
    if let Ok(results) = verify(&m, input, signature, &keys, backend) {
        assert!(results.iter().all(|(_, r)| r.is_err()), "{results:?}");
    }
});
