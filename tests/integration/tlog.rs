//! The anchor log as a transparency log (`docs/batch-signing.md` §11): signed checkpoints
//! (Ed25519 and ML-DSA-65), C2SP tiles and proofs, checked with `quantumvault verify` and with
//! the independent Python verifier (`tests/interop/verify_log.py`, written from the spec).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::signing::{capture, interop_python, signing_gateway_with, write_json, Captured};

const LOG: &str = "/.well-known/http-batch-sig/v1/log";

fn log_gateway(up: std::net::SocketAddr) -> Gateway {
    let policy = format!(
        r#"signing:
  enabled: true
  algorithm: hybrid
  mode: batch
upstreams:
  - {{ name: u, peers: ["{up}"] }}
routes:
  - {{ name: api, path_prefix: /api/, upstream: u }}
  - {{ name: detached, path_prefix: /detached/, upstream: u, signing: {{ detached: true }} }}
"#
    );
    signing_gateway_with(&policy, |yaml| {
        let mut text = std::fs::read_to_string(yaml).unwrap();
        text.push_str("signing_batch:\n  checkpoint_interval: 200ms\n  log_origin: api.test.example/anchor\n");
        std::fs::write(yaml, text).unwrap();
    })
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `quantumvault verify --exchange EX --jwks JWKS` plus `extra`.
fn qv(ex: &Path, jwks: &Path, extra: &[&str]) -> (i32, String) {
    run(Command::new(bin())
        .args(["verify", "--exchange"])
        .arg(ex)
        .arg("--jwks")
        .arg(jwks)
        .args(extra))
}

/// The independent log verifier.
fn py_log(args: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_log.py");
    run(Command::new(interop_python()).arg(script).args(args))
}

/// The TBS the independent batch verifier built for the exchange's batch label.
fn py_tbs(ex: &Path, jwks: &Path, out: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_batch.py");
    let (code, text) = run(Command::new(interop_python())
        .arg(script)
        .arg(ex)
        .arg(jwks)
        .arg("--tbs-out")
        .arg(out));
    assert_eq!(code, 0, "verify_batch.py: {text}");
    let line = std::fs::read_to_string(out).unwrap();
    line.split_whitespace().nth(1).expect("a TBS line").to_string()
}

fn checkpoint_size(gw: &Gateway) -> u64 {
    let r = get(&gw.url(&format!("{LOG}/checkpoint")));
    if r.status != 200 {
        return 0;
    }
    r.body.lines().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn p(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_anchor_log_proves_each_response_and_only_grows() {
    let up = echo("u");
    let mut gw = log_gateway(up.addr());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let jwks: serde_json::Value = get(&gw.url("/.well-known/http-message-signatures-directory")).json();
    let jwks_path = write_json(dir, "jwks.json", &jwks);
    // The checkpoint keys are the log's, not response keys: not in the JWKS.
    assert!(
        jwks["keys"].as_array().unwrap().iter().all(|k| k["crv"] != "Ed25519"),
        "{jwks}"
    );
    let keys = get(&gw.url(&format!("{LOG}/keys")));
    assert_eq!(keys.status, 200);
    let lines: Vec<&str> = keys.body.lines().collect();
    assert_eq!(lines.len(), 2, "an Ed25519 and an ML-DSA-65 key: {}", keys.body);
    assert!(lines.iter().all(|l| l.starts_with("api.test.example/anchor+")));
    let keys_file = p(dir, "log.keys");
    std::fs::write(&keys_file, &keys.body).unwrap();

    // Responses, some concurrent so batches hold several.
    let mut all: Vec<Captured> = (0..3)
        .map(|i| capture("GET", &gw.url(&format!("/api/a{i}")), &[], None))
        .collect();
    let url = gw.url("/detached/b");
    let hs: Vec<_> = (0..6)
        .map(|i| {
            let url = format!("{url}{i}");
            std::thread::spawn(move || capture("GET", &url, &[], None))
        })
        .collect();
    all.extend(hs.into_iter().map(|h| h.join().unwrap()));
    let ex: Vec<PathBuf> = all
        .iter()
        .enumerate()
        .map(|(i, c)| write_json(dir, &format!("ex{i}.json"), &c.exchange))
        .collect();

    // quantumvault verify: signature, inclusion in a checkpoint both keys signed; the proof and
    // the checkpoint are saved.
    let (proof0, cp0) = (p(dir, "p0.tlog-proof"), p(dir, "c0.checkpoint"));
    let (code, out) = qv(
        &ex[0],
        &jwks_path,
        &[
            "--log-keys",
            s(&keys_file),
            "--save-proof",
            s(&proof0),
            "--save-checkpoint",
            s(&cp0),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok   log inclusion: batch") && out.contains("signed by 2 keys"),
        "{out}"
    );
    let proof_text = std::fs::read_to_string(&proof0).unwrap();
    assert!(proof_text.starts_with("c2sp.org/tlog-proof@v1\nindex "), "{proof_text}");
    // The independent verifier agrees, from the TBS it built itself.
    let tbs0 = py_tbs(&ex[0], &jwks_path, &p(dir, "tbs0"));
    let (code, out) = py_log(&[
        "inclusion",
        "--proof",
        s(&proof0),
        "--tbs-hex",
        &tbs0,
        "--keys-file",
        s(&keys_file),
    ]);
    assert_eq!(code, 0, "verify_log.py inclusion: {out}");
    // Every response's batch is on the log (detached ones too), checked offline from a saved
    // proof for one of them.
    for (i, e) in ex.iter().enumerate() {
        let (code, out) = qv(e, &jwks_path, &["--log-keys", &gw.url(&format!("{LOG}/keys"))]);
        assert_eq!(code, 0, "response {i}: {out}");
    }
    let (code, out) = qv(
        &ex[0],
        &jwks_path,
        &["--log-keys", s(&keys_file), "--proof", s(&proof0)],
    );
    assert_eq!(code, 0, "{out}");

    // More traffic and a later checkpoint: consistent with the first, in both verifiers.
    let size0 = checkpoint_size(&gw);
    for i in 0..5 {
        capture("GET", &gw.url(&format!("/api/later{i}")), &[], None);
    }
    gw.wait_for(20, "a larger checkpoint", || checkpoint_size(&gw) > size0 + 2);
    let cp1 = p(dir, "c1.checkpoint");
    let (code, out) = qv(
        &ex[1],
        &jwks_path,
        &[
            "--log-keys",
            s(&keys_file),
            "--checkpoint",
            s(&cp0),
            "--save-checkpoint",
            s(&cp1),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok   log consistency: checkpoint size"), "{out}");
    let prefix = gw.url(LOG);
    for args in [
        vec![
            "consistency",
            "--old",
            s(&cp0),
            "--new",
            s(&cp1),
            "--log",
            &prefix,
            "--keys-file",
            s(&keys_file),
        ],
        vec![
            "entries",
            "--log",
            &prefix,
            "--note",
            s(&cp1),
            "--keys-file",
            s(&keys_file),
        ],
        vec!["checkpoint", "--note", s(&cp1), "--keys-file", s(&keys_file)],
    ] {
        let (code, out) = py_log(&args);
        assert_eq!(code, 0, "verify_log.py {}: {out}", args[0]);
    }

    // Tampering fails.
    // A proof for another index.
    let index: u64 = proof_text.lines().nth(1).unwrap()["index ".len()..].parse().unwrap();
    let other = proof_text.replacen(&format!("index {index}"), &format!("index {}", index + 1), 1);
    let bad = p(dir, "bad.tlog-proof");
    std::fs::write(&bad, &other).unwrap();
    let (code, out) = qv(&ex[0], &jwks_path, &["--log-keys", s(&keys_file), "--proof", s(&bad)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL log inclusion"), "{out}");
    let (code, out) = py_log(&[
        "inclusion",
        "--proof",
        s(&bad),
        "--tbs-hex",
        &tbs0,
        "--keys-file",
        s(&keys_file),
    ]);
    assert_eq!(code, 1, "{out}");
    // An older checkpoint with another root: its signatures fail.
    let c0 = std::fs::read_to_string(&cp0).unwrap();
    let root_line = c0.lines().nth(2).unwrap().to_string();
    let mut flipped = root_line.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let forged = p(dir, "forged.checkpoint");
    std::fs::write(
        &forged,
        c0.replacen(&root_line, std::str::from_utf8(&flipped).unwrap(), 1),
    )
    .unwrap();
    let (code, out) = qv(
        &ex[1],
        &jwks_path,
        &["--log-keys", s(&keys_file), "--checkpoint", s(&forged)],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL log consistency"), "{out}");
    let (code, _) = py_log(&[
        "consistency",
        "--old",
        s(&forged),
        "--new",
        s(&cp1),
        "--log",
        &prefix,
        "--keys-file",
        s(&keys_file),
    ]);
    assert_eq!(code, 1);
    // A newer checkpoint given as the older one (the log would have shrunk).
    let (code, out) = qv(
        &ex[0],
        &jwks_path,
        &[
            "--log-keys",
            s(&keys_file),
            "--proof",
            s(&proof0),
            "--checkpoint",
            s(&cp1),
        ],
    );
    assert_eq!(code, 1, "{out}");
    // A key the log does not sign with, and one of its two keys dropped from the proof.
    let stranger = {
        use quantumvault::integrity::sig::{generate, load_signer, SigAlg};
        let s = load_signer(SigAlg::Ed25519, &generate(SigAlg::Ed25519).unwrap()).unwrap();
        quantumvault::integrity::tlog::NoteKey {
            name: "api.test.example/anchor".into(),
            alg: SigAlg::Ed25519,
            public: s.public_key().to_vec(),
        }
        .vkey()
    };
    let (code, out) = qv(&ex[0], &jwks_path, &["--log-key", &stranger, "--proof", s(&proof0)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL log checkpoint"), "{out}");
    let last_sig = proof_text.lines().last().unwrap();
    let half = p(dir, "half.tlog-proof");
    std::fs::write(&half, proof_text.replace(&format!("{last_sig}\n"), "")).unwrap();
    let (code, out) = qv(&ex[0], &jwks_path, &["--log-keys", s(&keys_file), "--proof", s(&half)]);
    assert_eq!(code, 1, "both keys must sign: {out}");

    // Tiles have one spelling; the partial tile of the checkpoint exists, no full one yet.
    let size = checkpoint_size(&gw);
    assert!(size < 256);
    let ag = agent();
    let tile = |path: &str| {
        let r = ag.get(&gw.url(&format!("{LOG}/{path}"))).call();
        match r {
            Ok(r) => {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut r.into_reader(), &mut b).unwrap();
                (200, b)
            }
            Err(ureq::Error::Status(c, _)) => (c, Vec::new()),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        tile(&format!("tile/0/000.p/{size}")),
        (200, tile(&format!("tile/0/000.p/{size}")).1)
    );
    assert_eq!(tile(&format!("tile/0/000.p/{size}")).1.len() as u64, 32 * size);
    for bad in [
        "tile/0/0",
        "tile/0/000",
        "tile/00/000.p/1",
        "tile/0/000.p/01",
        "tile/0/x000/000.p/1",
        "tile/entries/0",
    ] {
        assert_eq!(tile(bad).0, 404, "{bad}");
    }
    let (status, bundle) = tile(&format!("tile/entries/000.p/{size}"));
    assert_eq!(status, 200);
    assert_eq!(
        u16::from_be_bytes([bundle[0], bundle[1]]) as usize,
        hex::decode(&tbs0).unwrap().len()
    );

    // Metrics count checkpoints and proofs.
    let metrics = get(&gw.admin_url("/metrics")).body;
    for want in [
        "quantumvault_checkpoints_total{result=\"ok\"}",
        "quantumvault_log_proofs_total{result=\"served\"}",
        "quantumvault_anchor_log_size",
    ] {
        assert!(metrics.contains(want), "{want} in /metrics");
    }

    // After a restart the log goes on: the first checkpoint is consistent with the new one.
    gw.restart();
    capture("GET", &gw.url("/api/after-restart"), &[], None);
    let before = std::fs::read_to_string(&cp1).unwrap();
    let size1: u64 = before.lines().nth(1).unwrap().parse().unwrap();
    gw.wait_for(20, "a checkpoint after the restart", || checkpoint_size(&gw) > size1);
    let (code, out) = qv(
        &ex[2],
        &jwks_path,
        &["--log-keys", s(&keys_file), "--checkpoint", s(&cp0)],
    );
    assert_eq!(code, 0, "{out}");
}
