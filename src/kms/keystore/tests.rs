//! The keystore's unit tests: sealing, lifecycle, rotation and locking.

use super::*;
use crate::integrity::sig::SigAlg;
use crate::kms::provider::SoftwareProvider;

fn pass(p: &str) -> MasterSource {
    MasterSource::Passphrase(Zeroizing::new(p.into()))
}

#[test]
fn lifecycle_and_every_failure_has_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore.json");
    let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
    let mut ks = Keystore::init(&path, &pass("correct horse"), MIN_ITERATIONS, prov.clone(), None).unwrap();
    assert!(matches!(
        Keystore::init(&path, &pass("x"), MIN_ITERATIONS, prov.clone(), None),
        Err(KmsError::Exists(_))
    ));
    let ring1 = ks.key_ring().unwrap();
    assert_eq!(ring1.signers.len(), 2);
    let v2 = ks.rotate("gateway-signing-ecdsa", None).unwrap();
    assert_eq!(v2, 2);
    let ring2 = ks.key_ring().unwrap();
    assert_eq!(
        ring2.signer(SigAlg::EcdsaP256).unwrap().keyid,
        "gateway-signing-ecdsa-v2"
    );
    assert_eq!(ring2.published.len(), 3, "v1 still published after rotation");
    ks.retire("gateway-signing-ecdsa", 1).unwrap();
    ks.destroy("gateway-signing-ecdsa", 1).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("destroyed_at"));
    assert_eq!(ks.key_ring().unwrap().published.len(), 2);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // Reopen: right passphrase works; wrong one, a flipped byte and loose permissions fail.
    drop(ks);
    assert!(Keystore::open(&path, &pass("correct horse"), prov.clone()).is_ok());
    assert!(matches!(
        Keystore::open(&path, &pass("wrong"), prov.clone()),
        Err(KmsError::WrongKey(_))
    ));
    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ct = file["keys"][1]["versions"][0]["sealed"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_string();
    let mut raw = B64.decode(&ct).unwrap();
    raw[5] ^= 1;
    file["keys"][1]["versions"][0]["sealed"]["ciphertext"] = B64.encode(raw).into();
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Keystore::open(&path, &pass("correct horse"), prov.clone()).unwrap_err();
    assert!(
        matches!(err, KmsError::Tampered { ref name, version: 1, .. } if name == "gateway-signing-mldsa"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        Keystore::open(&path, &pass("correct horse"), prov.clone()),
        Err(KmsError::Permissions { .. })
    ));
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains(&file["kdf"]["salt"].as_str().unwrap().to_string()),
        "never rewritten on error"
    );
}

#[test]
fn key_file_master_and_swapped_records() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex::encode([7u8; 32])).unwrap();
    let path = dir.path().join("ks.json");
    let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
    Keystore::init(&path, &MasterSource::KeyFile(key_file.clone()), 0, prov.clone(), None).unwrap();
    // Moving one key's sealed material to another record fails authentication (AAD).
    let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let a = file["keys"][0]["versions"][0]["sealed"].clone();
    file["keys"][1]["versions"][0]["sealed"] = a;
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let err = Keystore::open(&path, &MasterSource::KeyFile(key_file), prov).unwrap_err();
    assert!(matches!(err, KmsError::Tampered { .. }), "{err}");
}

#[test]
fn an_open_keystore_holds_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex::encode([7u8; 32])).unwrap();
    let path = dir.path().join("ks.json");
    let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
    let ks = Keystore::init(&path, &MasterSource::KeyFile(key_file.clone()), 0, prov.clone(), None).unwrap();
    let probe = std::fs::File::open(lock_path(&path)).unwrap();
    assert!(probe.try_lock().is_err(), "held while the store made by init is open");
    drop(ks);
    probe.try_lock().unwrap();
    probe.unlock().unwrap();
    let ks = Keystore::open(&path, &MasterSource::KeyFile(key_file.clone()), prov.clone()).unwrap();
    assert!(probe.try_lock().is_err(), "held while an opened store is open");
    // A second opener (the CLI while the gateway rotates) waits for the first.
    let (tx, rx) = std::sync::mpsc::channel();
    let (p2, k2, prov2) = (path.clone(), key_file.clone(), prov.clone());
    let t = std::thread::spawn(move || {
        let mut other = Keystore::open(&p2, &MasterSource::KeyFile(k2), prov2).unwrap();
        other.rotate("gateway-signing-ecdsa", None).unwrap();
        tx.send(()).unwrap();
    });
    let mut ks = ks;
    ks.rotate("gateway-signing-ecdsa", None).unwrap();
    assert!(rx.try_recv().is_err(), "the second opener has not run yet");
    drop(ks);
    t.join().unwrap();
    // Both rotations are in the store: v2 by the first, v3 by the second (without the lock
    // the second would have read the store before v2 and written v2 again).
    let ks = Keystore::open(&path, &MasterSource::KeyFile(key_file), prov).unwrap();
    let ecdsa = ks.keys().iter().find(|k| k.name == "gateway-signing-ecdsa").unwrap();
    assert_eq!(ecdsa.versions.len(), 3);
}

#[test]
fn a_stored_public_key_must_match_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex::encode([7u8; 32])).unwrap();
    let path = dir.path().join("ks.json");
    let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
    let mut ks = Keystore::init(&path, &MasterSource::KeyFile(key_file.clone()), 0, prov.clone(), None).unwrap();
    ks.rotate("gateway-signing-ecdsa", None).unwrap();
    ks.destroy("gateway-signing-ecdsa", 1).unwrap();
    drop(ks);
    let good = std::fs::read(&path).unwrap();
    let open = || Keystore::open(&path, &MasterSource::KeyFile(key_file.clone()), prov.clone());
    assert!(open().is_ok());
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut file: serde_json::Value = serde_json::from_slice(&good).unwrap();
        f(&mut file);
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    };
    // Another key's public key on a live version: published keys would not verify, or
    // worse, would be an attacker's. Refused at load.
    edit(&|f| f["keys"][0]["versions"][1]["public_key"] = f["keys"][1]["versions"][0]["public_key"].clone());
    assert!(matches!(open().unwrap_err(), KmsError::Tampered { version: 2, .. }));
    // A short key on a destroyed version: an error at load, never a panic in the JWKS.
    edit(&|f| f["keys"][0]["versions"][0]["public_key"] = serde_json::json!("BAAA"));
    assert!(open()
        .unwrap_err()
        .to_string()
        .contains("wrong length for ecdsa-p256-sha256"));
    edit(&|f| f["keys"][0]["versions"][1]["public_key"] = serde_json::json!("not base64!"));
    assert!(matches!(open().unwrap_err(), KmsError::Corrupt { .. }));
}

#[test]
fn hmac_and_encryption_keys_per_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks.json");
    let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
    let mut ks = Keystore::init(&path, &pass("p"), MIN_ITERATIONS, prov.clone(), None).unwrap();
    let h = ks.create_key("billing", KeyAlg::HmacSha256, None).unwrap();
    let e = ks.create_key("billing", KeyAlg::Aes256Gcm, None).unwrap();
    assert_eq!(
        (h.as_str(), e.as_str()),
        ("billing-hmac-sha256", "billing-encryption-aes256gcm")
    );
    let s1 = ks.secret(&h).unwrap();
    assert_eq!(s1.len(), 32);
    ks.rotate(&h, None).unwrap();
    assert_ne!(ks.secret(&h).unwrap(), s1, "rotation makes a new primary secret");
    assert!(
        ks.secret("gateway-signing-ecdsa").is_err(),
        "signing material never leaves"
    );
    assert_eq!(ks.key_ring().unwrap().published.len(), 2, "secrets are never published");
    drop(ks);
    let again = Keystore::open(&path, &pass("p"), prov).unwrap();
    assert_eq!(again.secret(&e).unwrap().len(), 32);
}

/// Metadata is authenticated (issue 17): a state, an expiry or a public key edited in the file,
/// or the MAC stripped, stops the open with its own error; a keystore written before the MAC
/// existed opens and gets one at its next save.
#[test]
fn edited_metadata_is_refused_and_old_stores_gain_a_mac() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore.json");
    let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
    let mut ks = Keystore::init(&path, &pass("pw"), MIN_ITERATIONS, prov.clone(), None).unwrap();
    ks.rotate("gateway-signing-ecdsa", None).unwrap();
    ks.retire("gateway-signing-ecdsa", 1).unwrap();
    drop(ks);
    let good = std::fs::read_to_string(&path).unwrap();
    assert!(Keystore::open(&path, &pass("pw"), prov.clone()).is_ok());
    let write = |v: &serde_json::Value| {
        std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let ecdsa = |f: &serde_json::Value| {
        f["keys"]
            .as_array()
            .unwrap()
            .iter()
            .position(|k| k["name"] == "gateway-signing-ecdsa")
            .unwrap()
    };
    let edits: [(&str, fn(&mut serde_json::Value, usize)); 5] = [
        ("a retired version made active again", |f, i| {
            f["keys"][i]["versions"][0]["state"] = "active".into()
        }),
        ("an expiry moved", |f, i| {
            f["keys"][i]["versions"][1]["expires"] = 4_000_000_000u64.into()
        }),
        ("a creation date moved", |f, i| {
            f["keys"][i]["versions"][1]["created"] = 1u64.into()
        }),
        ("a key renamed", |f, i| f["keys"][i]["service"] = "other".into()),
        ("the MAC stripped", |f, _| {
            f.as_object_mut().unwrap().remove("mac");
        }),
    ];
    for (what, edit) in edits {
        let mut f: serde_json::Value = serde_json::from_str(&good).unwrap();
        let i = ecdsa(&f);
        edit(&mut f, i);
        write(&f);
        let err = Keystore::open(&path, &pass("pw"), prov.clone()).err();
        assert!(matches!(err, Some(KmsError::MetadataTampered(_))), "{what}: {err:?}");
    }
    // A keystore from before the MAC: its v1 check, no MAC. It opens, and a save adds both.
    let mut f: serde_json::Value = serde_json::from_str(&good).unwrap();
    let master = MasterSource::Passphrase(Zeroizing::new("pw".into()))
        .derive(&serde_json::from_value(f["kdf"].clone()).unwrap())
        .unwrap();
    f["check"] = serde_json::to_value(seal(&master, CHECK_PLAINTEXT, b"check").unwrap()).unwrap();
    f.as_object_mut().unwrap().remove("mac");
    write(&f);
    let mut ks = Keystore::open(&path, &pass("pw"), prov.clone()).expect("an old keystore opens");
    ks.rotate("gateway-signing-mldsa", None).unwrap();
    drop(ks);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"mac\""), "the next save adds the MAC");
    assert!(Keystore::open(&path, &pass("pw"), prov.clone()).is_ok());
}

/// A raw 32-byte key file is the key whatever its last byte: one that ends in a newline byte
/// (a random key does once in 256) is not cut to 31 bytes; a hex key may have a line end.
#[test]
fn raw_key_files_ending_in_a_newline_byte_are_whole() {
    let dir = tempfile::tempdir().unwrap();
    let prov: Arc<dyn KeyProvider> = Arc::new(SoftwareProvider);
    let mut raw = [9u8; 32];
    raw[31] = b'\n';
    for (i, content) in [
        raw.to_vec(),
        format!("{}\n", hex::encode([5u8; 32])).into_bytes(),
        format!("{}\r\n", hex::encode([6u8; 32])).into_bytes(),
    ]
    .into_iter()
    .enumerate()
    {
        let key_file = dir.path().join(format!("master{i}.key"));
        std::fs::write(&key_file, &content).unwrap();
        let path = dir.path().join(format!("ks{i}.json"));
        let source = MasterSource::KeyFile(key_file);
        Keystore::init(&path, &source, 0, prov.clone(), None).unwrap_or_else(|e| panic!("key file {i}: {e}"));
        assert!(Keystore::open(&path, &source, prov.clone()).is_ok(), "key file {i}");
    }
    let short = dir.path().join("short.key");
    std::fs::write(&short, [1u8; 31]).unwrap();
    assert!(Keystore::init(&dir.path().join("x.json"), &MasterSource::KeyFile(short), 0, prov, None).is_err());
}
