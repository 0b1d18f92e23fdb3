//! The anchor log's records, checkpoints, pruning and recovery.

use super::*;
use crate::integrity::sig::SigAlg;

fn batch(seq: u8) -> (Vec<u8>, Batch) {
    batch_at(seq, 0, false)
}

/// A batch closed at `time_ms`, signed by ECDSA and, with `pq`, ML-DSA-65.
fn batch_at(seq: u8, time_ms: u64, pq: bool) -> (Vec<u8>, Batch) {
    let mut tbs = vec![0x20; 64];
    tbs.extend_from_slice(b"http-batch-sig/v1 root\x00\x01");
    tbs.extend_from_slice(&[seq; 16]);
    tbs.extend_from_slice(&time_ms.to_be_bytes());
    tbs.extend_from_slice(&[0; 4]);
    let mut sigs = vec![RootSig {
        alg: SigAlg::EcdsaP256,
        keyid: "k".into(),
        sig: vec![seq; 64],
    }];
    if pq {
        sigs.push(RootSig {
            alg: SigAlg::MlDsa65,
            keyid: "q".into(),
            sig: vec![seq; 3309],
        });
    }
    let b = Batch {
        id: [seq; 16],
        time_ms,
        size: 1,
        sigs,
    };
    (tbs, b)
}

fn signers() -> Vec<Box<dyn Signer>> {
    [SigAlg::Ed25519, SigAlg::MlDsa65]
        .into_iter()
        .map(|a| crate::integrity::sig::load_signer(a, &crate::integrity::sig::generate(a).unwrap()).unwrap())
        .collect()
}

fn keys(log: &AnchorLog, signers: &[Box<dyn Signer>]) -> Vec<tlog::NoteKey> {
    signers
        .iter()
        .map(|s| tlog::NoteKey {
            name: log.origin().to_string(),
            alg: s.alg(),
            public: s.public_key().to_vec(),
        })
        .collect()
}

#[test]
fn checkpoints_prove_entries_and_survive_pruning_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = AnchorLog::open(dir.path(), Some("test.example/log")).unwrap();
    let signers = signers();
    let refs: Vec<&dyn Signer> = signers.iter().map(|s| &**s).collect();
    let keys = keys(&log, &signers);
    let tbs: Vec<(Vec<u8>, Batch)> = (0..40u8).map(|i| batch_at(i, 1000 * i as u64, true)).collect();
    assert!(matches!(log.proof(&[0; 16]), ProofAnswer::NotYet) || log.is_empty());
    log.append(&tbs[..30].iter().map(|(t, b)| payload(t, b)).collect::<Vec<_>>())
        .unwrap();
    assert!(matches!(log.proof(&[3; 16]), ProofAnswer::NotYet));
    assert_eq!(log.sign_checkpoint(&refs).unwrap(), Some(30));
    assert_eq!(
        log.sign_checkpoint(&refs).unwrap(),
        None,
        "an unchanged log is not signed again"
    );
    let first = tlog::verify_checkpoint(&log.checkpoint().unwrap().note, &keys).unwrap();
    assert_eq!((first.size, first.origin.as_str()), (30, "test.example/log"));
    log.append(&tbs[30..].iter().map(|(t, b)| payload(t, b)).collect::<Vec<_>>())
        .unwrap();
    // Batch 35 is logged but not yet in a checkpoint; batch 3 is.
    assert!(matches!(log.proof(&[35; 16]), ProofAnswer::NotYet));
    assert!(matches!(log.proof(&[99; 16]), ProofAnswer::Unknown));
    let ProofAnswer::Proof(p) = log.proof(&[3; 16]) else {
        panic!("no proof")
    };
    let (index, path, note) = tlog::parse_proof(&p).unwrap();
    let cp = tlog::verify_checkpoint(&note, &keys).unwrap();
    assert!(tlog::verify_inclusion(
        &merkle::leaf_of(&tbs[3].0),
        index,
        cp.size,
        &path,
        &cp.root
    ));
    assert_eq!(log.sign_checkpoint(&refs).unwrap(), Some(40));
    let second = tlog::verify_checkpoint(&log.checkpoint().unwrap().note, &keys).unwrap();
    // Tiles and entry bundles: a partial level-0 tile of 40 leaves and the 40 entries.
    let tile = log.tile(0, 0, 40).unwrap();
    assert_eq!(&tile[32 * 7..32 * 8], &merkle::leaf_of(&tbs[7].0));
    assert!(log.tile(0, 0, 41).is_none() && log.tile(0, 1, 1).is_none());
    let bundle = log.entries(0, 40).unwrap();
    let mut at = 0;
    for (t, _) in &tbs {
        let len = u16::from_be_bytes([bundle[at], bundle[at + 1]]) as usize;
        assert_eq!(&bundle[at + 2..at + 2 + len], &t[..]);
        at += 2 + len;
    }
    assert_eq!(at, bundle.len());
    assert!(log.entries(0, 41).is_none());
    // Retention: ML-DSA signatures of batches before t = 20 s go, the tree stays.
    let before = std::fs::metadata(dir.path().join("anchor.log")).unwrap().len();
    assert_eq!(log.prune_pq(20_000).unwrap(), 20);
    assert_eq!(log.prune_pq(20_000).unwrap(), 0);
    let after = std::fs::metadata(dir.path().join("anchor.log")).unwrap().len();
    assert!(after < before - 20 * 3300, "{before} -> {after}");
    let e = log.entry(&[5; 16]).unwrap();
    assert_eq!(
        e.sigs.iter().map(|s| s.alg).collect::<Vec<_>>(),
        vec![SigAlg::EcdsaP256]
    );
    assert_eq!(log.entry(&[25; 16]).unwrap().sigs.len(), 2);
    let (t, b) = batch_at(40, 40_000, true);
    assert_eq!(log.append(&[payload(&t, &b)]).unwrap(), vec![40]);
    drop(log);
    // Reopened: every record, the last checkpoint, and consistency with the first one.
    let log = AnchorLog::open(dir.path(), Some("test.example/log")).unwrap();
    assert_eq!((log.len(), log.recovered_tail), (41, 0));
    assert_eq!(log.entry(&[40; 16]).unwrap().sigs.len(), 2);
    assert_eq!(log.checkpoint().unwrap().size, 40);
    let st = log.lock();
    let proof = st.index.tree.consistency(30, 40).unwrap();
    assert!(tlog::verify_consistency(30, 40, &proof, &first.root, &second.root));
    drop(st);
    drop(log);
    // A log cut below its last checkpoint (a lost or rewritten file) refuses to open.
    let file = dir.path().join("anchor.log");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..MAGIC.len()]).unwrap();
    let err = AnchorLog::open(dir.path(), None).err().expect("a diverged log opens");
    assert!(matches!(err, AnchorError::Diverged { .. }), "{err}");
}

#[test]
fn records_survive_reopening_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = AnchorLog::open(dir.path(), None).unwrap();
    let payloads: Vec<Vec<u8>> = (1..=3)
        .map(|i| {
            let (t, b) = batch(i);
            payload(&t, &b)
        })
        .collect();
    assert_eq!(log.append(&payloads).unwrap(), vec![0, 1, 2]);
    let e = log.entry(&[2; 16]).unwrap();
    assert_eq!((e.index, e.sigs[0].sig.clone()), (1, vec![2; 64]));
    let (size, root, path) = log.inclusion(1).unwrap();
    assert_eq!(size, 3);
    let (t, _) = batch(2);
    assert!(tlog::verify_inclusion(&merkle::leaf_of(&t), 1, 3, &path, &root));
    drop(log);
    // A torn record (a crash mid-write) after the three good ones.
    let file = dir.path().join("anchor.log");
    let good = std::fs::metadata(&file).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(&[0, 0, 1, 0, 9, 9, 9, 9, 1, 2, 3]).unwrap();
    drop(f);
    let log = AnchorLog::open(dir.path(), None).unwrap();
    assert_eq!((log.len(), log.recovered_tail), (3, 11));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), good);
    // Appending continues after the cut; a corrupt record in the middle ends the log there.
    let (t, b) = batch(4);
    assert_eq!(log.append(&[payload(&t, &b)]).unwrap(), vec![3]);
    drop(log);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let log = AnchorLog::open(dir.path(), None).unwrap();
    assert_eq!(log.len(), 3);
    assert!(log.entry(&[4; 16]).is_none() && log.entry(&[3; 16]).is_some());
    // A log that cannot be written: the batch is not released as logged, health turns
    // critical (`failing`), and the next good append clears it.
    let log = Arc::new(log);
    let writer = AnchorWriter::new(log.clone());
    let (t, b) = batch(5);
    log.break_for_test();
    assert_eq!(writer.append(payload(&t, &b)), Err(()));
    assert!(failing());
    assert_eq!(log.len(), 3, "nothing of the failed append counts");
    drop(writer);
    let log = AnchorLog::open(dir.path(), None).unwrap();
    assert_eq!(log.len(), 3);
    let writer = AnchorWriter::new(Arc::new(log));
    assert_eq!(writer.append(payload(&t, &b)), Ok(3));
    assert!(!failing());
    // Not a log: start-up refuses it.
    std::fs::write(&file, b"something else").unwrap();
    assert!(matches!(
        AnchorLog::open(dir.path(), None),
        Err(AnchorError::NotALog { .. })
    ));
}
