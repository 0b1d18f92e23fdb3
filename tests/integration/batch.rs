//! Batch (Merkle) signatures end to end (`docs/batch-signing.md`): responses of one batch share
//! its root signatures, each verifies with `quantumvault verify` and with the independent
//! Python verifier (`tests/interop/verify_batch.py`, written from the spec alone), and every
//! kind of tampering fails in both.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use quantumvault::integrity::batch::Value;
use quantumvault::integrity::tlog;
use serde_json::json;

use crate::common::*;
use crate::signing::{capture, qv_verify, signing_gateway_with, write_json, Captured};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn batch_policy(up: std::net::SocketAddr) -> String {
    format!(
        r#"signing:
  enabled: true
  algorithm: hybrid
  mode: batch
upstreams:
  - {{ name: u, peers: ["{up}"] }}
routes:
  - {{ name: api, path_prefix: /api/, upstream: u }}
  - {{ name: ecdsa, path_prefix: /ecdsa/, upstream: u, signing: {{ algorithm: ecdsa-p256 }} }}
  - {{ name: compat, path_prefix: /compat/, upstream: u, signing: {{ inline_ecdsa: true }} }}
  - {{ name: inline, path_prefix: /inline/, upstream: u, signing: {{ mode: inline }} }}
  - {{ name: detached, path_prefix: /detached/, upstream: u, signing: {{ detached: true }} }}
"#
    )
}

/// A batch gateway whose signer waits up to 500 ms to fill batches of 4.
fn batch_gateway(up: std::net::SocketAddr) -> Gateway {
    signing_gateway_with(&batch_policy(up), |yaml| {
        let mut text = std::fs::read_to_string(yaml).unwrap();
        text.push_str("signing_batch:\n  max_leaves: 4\n  max_wait: 500ms\n  threads: 1\n");
        std::fs::write(yaml, text).unwrap();
    })
}

/// The independent batch verifier: exit code and output.
fn py_verify_batch(exchange: &Path, jwks: &Path) -> (i32, String) {
    crate::signing::py_run("verify_batch.py", exchange, jwks, &["--require-digest"])
}

/// The `sig-batch` member of a captured response's `Signature`, decoded.
fn batch_value(c: &Captured) -> Value {
    let sig = c.header("signature").expect("Signature");
    let member = sig
        .split(", ")
        .find_map(|m| m.strip_prefix("sig-batch=:"))
        .expect("a sig-batch member");
    Value::decode(&B64.decode(member.trim_end_matches(':')).unwrap()).unwrap()
}

/// `exchange` with its `sig-batch` value replaced by `v`.
fn with_value(exchange: &serde_json::Value, v: &Value) -> serde_json::Value {
    let mut t = exchange.clone();
    for h in t["response"]["headers"].as_array_mut().unwrap() {
        if h[0].as_str().unwrap().eq_ignore_ascii_case("signature") {
            let kept: Vec<String> = h[1]
                .as_str()
                .unwrap()
                .split(", ")
                .filter(|m| !m.starts_with("sig-batch="))
                .map(str::to_string)
                .chain([format!("sig-batch=:{}:", B64.encode(v.encode()))])
                .collect();
            h[1] = json!(kept.join(", "));
        }
    }
    t
}

/// `exchange` with `f` applied to its response header `name`'s value.
fn with_header(exchange: &serde_json::Value, name: &str, f: impl Fn(&str) -> String) -> serde_json::Value {
    let mut t = exchange.clone();
    for h in t["response"]["headers"].as_array_mut().unwrap() {
        if h[0].as_str().unwrap().eq_ignore_ascii_case(name) {
            h[1] = json!(f(h[1].as_str().unwrap()));
        }
    }
    t
}

#[test]
fn batch_signed_responses_verify_independently_and_tampering_fails() {
    let up = echo("u");
    let gw = batch_gateway(up.addr());
    let work = tempfile::tempdir().unwrap();
    let jwks: serde_json::Value = get(&gw.url("/.well-known/http-message-signatures-directory")).json();
    let jwks_path = write_json(work.path(), "jwks.json", &jwks);

    // An idle signer signs a lone response at once.
    let first = capture("GET", &gw.url("/api/first"), &[], None);
    assert_eq!(first.status, 200);
    assert!(first
        .header("signature-input")
        .unwrap()
        .contains("alg=\"merkle-hybrid-ml-dsa-65-ecdsa-p256\""));
    assert_eq!(batch_value(&first).batch.size, 1);

    // Right after, the signer is busy: four concurrent responses fill one batch.
    let url = gw.url("/api/items?id=");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("{url}{i}");
            std::thread::spawn(move || capture("GET", &url, &[], None))
        })
        .collect();
    let batch: Vec<Captured> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let values: Vec<Value> = batch.iter().map(batch_value).collect();
    let ids: std::collections::HashSet<[u8; 16]> = values.iter().map(|v| v.batch.id).collect();
    assert!(
        ids.len() < 4,
        "four concurrent responses within max_wait share a batch: {:?}",
        values.iter().map(|v| (v.batch.size, v.index)).collect::<Vec<_>>()
    );
    let mut all = vec![first];
    all.extend(batch);
    for (i, c) in all.iter().enumerate() {
        let ex = write_json(work.path(), &format!("ex{i}.json"), &c.exchange);
        let (code, out) = qv_verify(&ex, &jwks_path);
        assert_eq!(code, 0, "quantumvault verify: {out}");
        assert!(out.contains("alg=merkle-hybrid-ml-dsa-65-ecdsa-p256"), "{out}");
        let (code, out) = py_verify_batch(&ex, &jwks_path);
        assert_eq!(code, 0, "independent batch verifier: {out}");
    }

    // Tampering, on a response from a batch of more than one.
    let c = all
        .iter()
        .find(|c| batch_value(c).batch.size > 1)
        .expect("a shared batch");
    let v = batch_value(c);
    let mut tampered: Vec<(&str, serde_json::Value)> = Vec::new();
    let mut body = c.body.clone();
    body[2] ^= 0x01;
    let mut t = c.exchange.clone();
    t["response"]["body_b64"] = json!(B64.encode(&body));
    tampered.push(("body byte", t));
    let mut t = c.exchange.clone();
    t["response"]["status"] = json!(201);
    tampered.push(("status", t));
    tampered.push((
        "covered header",
        with_header(&c.exchange, "x-request-id", |_| "other".into()),
    ));
    let mut t = c.exchange.clone();
    t["request"]["url"] = json!(gw.url("/api/items?id=9"));
    tampered.push(("request target", t));
    let mut t = c.exchange.clone();
    t["request"]["method"] = json!("DELETE");
    tampered.push(("request method", t));
    let mut x = v.clone();
    x.index = (x.index + 1) % x.batch.size;
    tampered.push(("leaf index", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.index = x.batch.size;
    tampered.push(("leaf index past the tree", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.path[0][5] ^= 1;
    tampered.push(("path", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.path.pop();
    tampered.push(("short path", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.salt[0] ^= 1;
    tampered.push(("salt", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.batch.size += 1;
    tampered.push(("tree size", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.batch.time_ms += 1;
    tampered.push(("batch time", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.batch.sigs[0].sig[10] ^= 1;
    tampered.push(("ECDSA root signature", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.batch.sigs[1].sig[10] ^= 1;
    tampered.push(("ML-DSA root signature", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.batch.sigs.pop();
    tampered.push(("ML-DSA half stripped", with_value(&c.exchange, &x)));
    let relabelled = with_header(&with_value(&c.exchange, &x), "signature-input", |s| {
        s.replace("merkle-hybrid-ml-dsa-65-ecdsa-p256", "merkle-ecdsa-p256-sha256")
    });
    tampered.push(("relabelled hybrid -> ecdsa, ML-DSA stripped", relabelled));
    let mut x = v.clone();
    x.batch.sigs.remove(0);
    tampered.push(("ECDSA half stripped", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.batch.sigs.swap(0, 1);
    tampered.push(("root signatures swapped", with_value(&c.exchange, &x)));
    let mut x = v.clone();
    x.batch.sigs[0].keyid = x.batch.sigs[1].keyid.clone();
    tampered.push(("ECDSA signature named with the ML-DSA key", with_value(&c.exchange, &x)));
    // Another response's proof (another leaf of the same root) for this response.
    let other = all
        .iter()
        .map(batch_value)
        .find(|o| o.batch.id == v.batch.id && o.index != v.index)
        .expect("a sibling");
    tampered.push(("a sibling's proof", with_value(&c.exchange, &other)));
    for (what, t) in tampered {
        let ex = write_json(work.path(), "tampered.json", &t);
        let (code, out) = qv_verify(&ex, &jwks_path);
        assert_eq!(code, 1, "{what}: quantumvault verify must fail: {out}");
        let (code, out) = py_verify_batch(&ex, &jwks_path);
        assert_eq!(code, 1, "{what}: the independent verifier must fail: {out}");
    }

    // ECDSA batches, the compatibility label beside the batch label, and inline routes.
    let e = capture("GET", &gw.url("/ecdsa/x"), &[], None);
    assert!(e
        .header("signature-input")
        .unwrap()
        .contains("alg=\"merkle-ecdsa-p256-sha256\""));
    assert_eq!(batch_value(&e).batch.sigs.len(), 1);
    let compat = capture("GET", &gw.url("/compat/x"), &[], None);
    let input = compat.header("signature-input").unwrap();
    assert!(
        input.starts_with("sig-ecdsa=") && input.contains("sig-batch="),
        "{input}"
    );
    let inline = capture("GET", &gw.url("/inline/x"), &[], None);
    assert!(!inline.header("signature-input").unwrap().contains("sig-batch"));
    for (name, c) in [("ecdsa", &e), ("compat", &compat), ("inline", &inline)] {
        let ex = write_json(work.path(), &format!("{name}.json"), &c.exchange);
        let (code, out) = qv_verify(&ex, &jwks_path);
        assert_eq!(code, 0, "{name}: {out}");
        if name != "inline" {
            let (code, out) = py_verify_batch(&ex, &jwks_path);
            assert_eq!(code, 0, "{name}: independent batch verifier: {out}");
        }
    }
    // The detached form: no root signatures in the response; verifiers fetch them once per
    // batch from the gateway's /.well-known/http-batch-sig/v1/batch/{id}.
    let d = capture("GET", &gw.url("/detached/x"), &[], None);
    let dv = batch_value(&d);
    assert!(dv.detached && dv.batch.sigs.is_empty());
    let attached = batch_value(&all[0]);
    assert!(
        d.header("signature").unwrap().len() + 4000 < all[0].header("signature").unwrap().len(),
        "the detached value is about 4 KB smaller ({} against {} bytes)",
        d.header("signature").unwrap().len(),
        all[0].header("signature").unwrap().len()
    );
    assert!(!attached.detached);
    let ex = write_json(work.path(), "detached.json", &d.exchange);
    let (code, out) = qv_verify(&ex, &jwks_path);
    assert_eq!(code, 0, "detached: {out}");
    let (code, out) = py_verify_batch(&ex, &jwks_path);
    assert_eq!(code, 0, "detached, independent verifier: {out}");
    let mut other = dv.clone();
    other.batch.id[15] ^= 1;
    let t = with_value(&d.exchange, &other);
    let ex = write_json(work.path(), "detached-other.json", &t);
    assert_eq!(qv_verify(&ex, &jwks_path).0, 1, "a batch id the log does not have");
    assert_eq!(py_verify_batch(&ex, &jwks_path).0, 1);
    let mut full = attached.encode();
    full[1] = 1;
    let t = with_header(&d.exchange, "signature", |_| {
        format!("sig-batch=:{}:", B64.encode(&full))
    });
    let ex = write_json(work.path(), "detached-with-sigs.json", &t);
    assert_eq!(qv_verify(&ex, &jwks_path).0, 1, "a detached value carrying signatures");

    // The compatibility label verifies with the standard-only verifier as well.
    let ex = write_json(work.path(), "compat.json", &compat.exchange);
    let (code, out) = crate::signing::py_verify(&ex, &jwks_path, &["--label", "sig-ecdsa"]);
    assert_eq!(code, 0, "standard RFC 9421 verifier on the compatibility label: {out}");

    // The batch metrics are exported.
    let metrics = get(&gw.admin_url("/metrics")).body;
    for name in [
        "quantumvault_batch_leaves_bucket",
        "quantumvault_batch_wait_seconds_bucket",
        "quantumvault_batches_total",
        "quantumvault_batch_signing_seconds_sum",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }
}

/// Under load, the gateway is killed with SIGKILL 20 times and restarted on the same data
/// directory. Every batch root that reached a client in a response must be in the anchor log
/// afterwards, with the same root signatures, and the log's inclusion proof of it must hold.
#[test]
fn every_released_root_survives_sigkill_in_the_anchor_log() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let up = echo("u");
    let mut gw = signing_gateway_with(&batch_policy(up.addr()), |yaml| {
        let mut text = std::fs::read_to_string(yaml).unwrap();
        text.push_str("signing_batch:\n  checkpoint_interval: 200ms\n");
        std::fs::write(yaml, text).unwrap();
    });
    let released: Arc<Mutex<Vec<Value>>> = Arc::default();
    let checkpoints: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut total_batches = std::collections::HashSet::new();
    let log_keys: Vec<tlog::NoteKey> = get(&gw.url("/.well-known/http-batch-sig/v1/log/keys"))
        .body
        .lines()
        .map(|l| tlog::NoteKey::parse(l).unwrap())
        .collect();
    for round in 0..20 {
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (stop, released, url) = (stop.clone(), released.clone(), gw.url("/api/load"));
                std::thread::spawn(move || {
                    let ag = ureq::AgentBuilder::new()
                        .timeout(std::time::Duration::from_secs(5))
                        .build();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        // A response that arrived whole: its batch was released to a client.
                        let Ok(r) = ag.get(&format!("{url}?c={c}&n={n}")).call() else {
                            continue;
                        };
                        let Some(sig) = r.header("signature").map(str::to_string) else {
                            continue;
                        };
                        let mut body = Vec::new();
                        if r.into_reader().read_to_end(&mut body).is_err() {
                            continue;
                        }
                        if let Some(m) = sig.split(", ").find_map(|m| m.strip_prefix("sig-batch=:")) {
                            let v = Value::decode(&B64.decode(m.trim_end_matches(':')).unwrap()).unwrap();
                            released.lock().unwrap().push(v);
                        }
                    }
                })
            })
            .collect();
        // Let some responses through, then kill mid-load (the count decides, not a clock).
        let want = released.lock().unwrap().len() + 20 + round;
        gw.wait_for(30, "responses under load", || released.lock().unwrap().len() >= want);
        // And a checkpoint newer than the last round's, so each kill has one to keep.
        let seen = checkpoints.lock().unwrap().last().cloned().unwrap_or_default();
        let cp_url = gw.url("/.well-known/http-batch-sig/v1/log/checkpoint");
        gw.wait_for(30, "a new checkpoint", || {
            let cp = get(&cp_url);
            cp.status == 200 && cp.body != seen
        });
        checkpoints.lock().unwrap().push(get(&cp_url).body);
        gw.kill9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        gw.spawn();
    }
    let released = released.lock().unwrap().clone();
    assert!(released.len() >= 400, "{} responses", released.len());
    for v in &released {
        total_batches.insert(v.batch.id);
    }
    // Every released batch is in the log (served back after the last restart), with the root
    // signatures the clients saw, and its inclusion proof in the log's tree holds.
    for id in &total_batches {
        let v = released.iter().find(|v| &v.batch.id == id).unwrap();
        let r = get(&gw.url(&format!("/.well-known/http-batch-sig/v1/batch/{}", hex::encode(id))));
        assert_eq!(r.status, 200, "batch {} released but not in the log", hex::encode(id));
        let e = r.json();
        let sigs: Vec<Vec<u8>> = e["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| B64.decode(s["sig"].as_str().unwrap()).unwrap())
            .collect();
        let seen: Vec<Vec<u8>> = v.batch.sigs.iter().map(|s| s.sig.clone()).collect();
        assert!(
            sigs == seen,
            "batch {}: the log holds other root signatures than the response had",
            hex::encode(id)
        );
        let tbs = B64.decode(e["tbs"].as_str().unwrap()).unwrap();
        assert_eq!(&tbs[88..104], id);
        // The log's entry is the TBS (§11.1); its tlog-proof holds in a checkpoint both log
        // keys signed.
        let proof_url = gw.url(&format!("/.well-known/http-batch-sig/v1/log/proof/{}", hex::encode(id)));
        // Right after the last restart the newest batches wait for the next checkpoint.
        gw.wait_for(20, "a checkpoint covering the batch", || get(&proof_url).status == 200);
        let proof = get(&proof_url);
        let (index, path, note) = tlog::parse_proof(&proof.body).unwrap();
        let cp = tlog::verify_checkpoint(&note, &log_keys).unwrap();
        assert!(
            tlog::verify_inclusion(
                &quantumvault::integrity::merkle::leaf_of(&tbs),
                index,
                cp.size,
                &path,
                &cp.root
            ),
            "inclusion of batch {} in the log",
            hex::encode(id)
        );
        assert_eq!(index, e["log_index"].as_u64().unwrap());
    }
    // Every checkpoint seen before a kill is a prefix of the last one: no SIGKILL lost or
    // rewrote a checkpointed batch.
    let last = get(&gw.url("/.well-known/http-batch-sig/v1/log/checkpoint")).body;
    let last = tlog::verify_checkpoint(&last, &log_keys).unwrap();
    let prefix = gw.url("/.well-known/http-batch-sig/v1/log");
    let checkpoints = checkpoints.lock().unwrap().clone();
    assert_eq!(checkpoints.len(), 20);
    for note in &checkpoints {
        let line = quantumvault::log_cli::consistency(note, &last, &log_keys, &prefix).unwrap();
        assert!(line.starts_with("ok"), "{line}");
    }
    // Batch ids stay unique across restarts (the sequence continues after the log's last).
    assert_eq!(total_batches.len(), {
        let mut ids: Vec<_> = released
            .iter()
            .map(|v| (v.batch.id, v.batch.sigs[0].sig.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids.len()
    });
    // An unknown batch is a clean 404.
    let r = get(&gw.url(&format!("/.well-known/http-batch-sig/v1/batch/{}", "00".repeat(16))));
    assert_eq!(r.status, 404);
}
