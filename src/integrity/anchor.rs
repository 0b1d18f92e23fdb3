//! The anchor log: an append-only, crash-safe record of every signed batch (its TBS and root
//! signatures) in `data_dir/anchor.log`, so that every proof a response carries stays on a log
//! that monitors can check after the fact.
//!
//! Order at batch close, on the signer thread: sign, append, `fdatasync`, and only then release
//! the batch's responses (see [`AnchorWriter`] for why the sync is not handed to a log thread).
//! A response is therefore never sent with a root that a crash could lose.
//!
//! File: the 8-byte magic `QVANCHR1`, then records `len (u32) || crc32 (u32) || payload`, with
//! payload `tbs_len (u16) || tbs || count (u8) || count x (code (u8) || keyid_len (u8) ||
//! keyid || sig_len (u16) || sig)`. Recovery reads records in order and stops at the first one
//! that is torn (runs past the end) or fails its CRC; the file is truncated there and appending
//! continues. Each record is also a leaf (`H(0x00 || payload)`) of the log's own RFC 6962 tree.
//!
//! The gateway's 8-byte instance id lives in `data_dir/anchor.instance`; batch ids are
//! `instance || sequence`, and the sequence continues after the log's last batch on restart.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::batch::{Batch, RootSig};
use super::merkle::{self, Hash};

const MAGIC: &[u8; 8] = b"QVANCHR1";

static FAILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the last append to the anchor log failed (health is critical then).
pub fn failing() -> bool {
    FAILING.load(std::sync::atomic::Ordering::Relaxed)
}
/// Where the batch id sits in a TBS (64 spaces, the 22-byte context, 0x00, the version).
const TBS_ID_AT: usize = 88;

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("anchor log {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("anchor log {path}: not an anchor log (bad magic)")]
    NotALog { path: PathBuf },
}

fn io(path: &Path, e: impl std::fmt::Display) -> AnchorError {
    AnchorError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// One logged batch, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub tbs: Vec<u8>,
    pub sigs: Vec<RootSig>,
}

impl Entry {
    pub fn batch_id(&self) -> Option<[u8; 16]> {
        self.tbs.get(TBS_ID_AT..TBS_ID_AT + 16)?.try_into().ok()
    }
}

/// The record payload of a signed batch.
pub fn payload(tbs: &[u8], batch: &Batch) -> Vec<u8> {
    let sigs: usize = batch.sigs.iter().map(|s| 4 + s.keyid.len() + s.sig.len()).sum();
    let mut out = Vec::with_capacity(3 + tbs.len() + sigs);
    out.extend_from_slice(&(tbs.len() as u16).to_be_bytes());
    out.extend_from_slice(tbs);
    super::batch::push_sigs(&mut out, &batch.sigs);
    out
}

fn parse_payload(index: u64, p: &[u8]) -> Option<Entry> {
    let mut r = super::batch::Reader(p);
    let tl = u16::from_be_bytes(r.take(2).ok()?.try_into().ok()?) as usize;
    let tbs = r.take(tl).ok()?.to_vec();
    let count = r.u8().ok()? as usize;
    let sigs = super::batch::read_sigs(&mut r, count).ok()?;
    Some(Entry { index, tbs, sigs })
}

/// The batch id inside a record payload, read in place (the TBS starts after its 2-byte length).
fn batch_id_of(p: &[u8]) -> Option<[u8; 16]> {
    p.get(2 + TBS_ID_AT..2 + TBS_ID_AT + 16)?.try_into().ok()
}

/// The log file and what is known of it in memory.
struct State {
    file: File,
    path: PathBuf,
    /// Offset and payload length of each record, by log index.
    records: Vec<(u64, u32)>,
    by_id: HashMap<[u8; 16], u64>,
    /// The log tree's leaves.
    leaves: Vec<Hash>,
    end: u64,
}

/// The anchor log of one data directory.
pub struct AnchorLog {
    state: Mutex<State>,
    instance: [u8; 8],
    next_sequence: u64,
    /// Records dropped from a torn or corrupt tail when the log was opened.
    pub recovered_tail: u64,
}

impl AnchorLog {
    /// Opens (or creates) `data_dir/anchor.log`, recovering from a torn tail.
    pub fn open(data_dir: &Path) -> Result<AnchorLog, AnchorError> {
        let path = data_dir.join("anchor.log");
        let instance = instance_id(&data_dir.join("anchor.instance"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io(&path, e))?;
        if bytes.is_empty() {
            file.write_all(MAGIC).map_err(|e| io(&path, e))?;
            file.sync_data().map_err(|e| io(&path, e))?;
            bytes.extend_from_slice(MAGIC);
        } else if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(AnchorError::NotALog { path });
        }
        let mut at = MAGIC.len();
        let (mut records, mut by_id, mut leaves) = (Vec::new(), HashMap::new(), Vec::new());
        let mut next_sequence = 0;
        while at + 8 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
            let Some(p) = bytes.get(at + 8..at + 8 + len) else {
                break;
            };
            if crc32fast::hash(p) != crc {
                break;
            }
            let index = records.len() as u64;
            let Some(entry) = parse_payload(index, p) else { break };
            if let Some(id) = entry.batch_id() {
                if id[..8] == instance {
                    let seq = u64::from_be_bytes(id[8..].try_into().expect("8 bytes"));
                    next_sequence = next_sequence.max(seq + 1);
                }
                by_id.insert(id, index);
            }
            records.push(((at + 8) as u64, len as u32));
            leaves.push(merkle::leaf_of(p));
            at += 8 + len;
        }
        let mut recovered_tail = 0;
        if at < bytes.len() {
            recovered_tail = (bytes.len() - at) as u64;
            log::warn!(
                "anchor log {}: {} bytes of a torn or corrupt tail after record {} truncated",
                path.display(),
                recovered_tail,
                records.len()
            );
            file.set_len(at as u64).map_err(|e| io(&path, e))?;
            file.sync_data().map_err(|e| io(&path, e))?;
        }
        file.seek(SeekFrom::Start(at as u64)).map_err(|e| io(&path, e))?;
        Ok(AnchorLog {
            state: Mutex::new(State {
                file,
                path,
                records,
                by_id,
                leaves,
                end: at as u64,
            }),
            instance,
            next_sequence,
            recovered_tail,
        })
    }

    pub fn instance(&self) -> [u8; 8] {
        self.instance
    }

    /// The sequence number of the next batch (one past the last logged batch of this instance).
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    pub fn len(&self) -> u64 {
        self.lock().records.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `payloads` and makes them durable (one `fdatasync` for all); their log indices.
    pub fn append(&self, payloads: &[Vec<u8>]) -> Result<Vec<u64>, AnchorError> {
        let mut st = self.lock();
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + 8).sum());
        for p in payloads {
            buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32fast::hash(p).to_be_bytes());
            buf.extend_from_slice(p);
        }
        let start = st.end;
        let written = st.file.write_all(&buf).and_then(|_| st.file.sync_data());
        if let Err(e) = written {
            // Nothing of this write counts: cut it off so the next append starts clean.
            let _ = st.file.set_len(start);
            let _ = st.file.seek(SeekFrom::Start(start));
            return Err(io(&st.path, e));
        }
        let mut at = start;
        let mut indices = Vec::with_capacity(payloads.len());
        for p in payloads {
            let index = st.records.len() as u64;
            st.records.push((at + 8, p.len() as u32));
            if let Some(id) = batch_id_of(p) {
                st.by_id.insert(id, index);
            }
            st.leaves.push(merkle::leaf_of(p));
            at += 8 + p.len() as u64;
            indices.push(index);
        }
        st.end = at;
        Ok(indices)
    }

    /// The logged batch `batch_id`, read back from the file.
    pub fn entry(&self, batch_id: &[u8; 16]) -> Option<Entry> {
        let st = self.lock();
        let index = *st.by_id.get(batch_id)?;
        let (offset, len) = st.records[index as usize];
        let mut p = vec![0; len as usize];
        st.file.read_exact_at(&mut p, offset).ok()?;
        parse_payload(index, &p)
    }

    /// The log tree's size and root, and the inclusion path of record `index` in it.
    pub fn inclusion(&self, index: u64) -> Option<(u64, Hash, Vec<Hash>)> {
        let st = self.lock();
        if index as usize >= st.leaves.len() {
            return None;
        }
        let (root, path) = merkle::root_and_path(&st.leaves, index as usize)?;
        Some((st.leaves.len() as u64, root, path))
    }
}

#[cfg(test)]
impl AnchorLog {
    /// Makes every later append fail (the file handle becomes read-only), as a full or
    /// failing disk would.
    fn break_for_test(&self) {
        let mut st = self.lock();
        st.file = File::open(&st.path).unwrap();
    }
}

/// The instance id stored in `path`, created (random) on first use.
fn instance_id(path: &Path) -> Result<[u8; 8], AnchorError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|_| io(path, "the instance id is not hex"))?;
            bytes.try_into().map_err(|_| io(path, "the instance id is not 8 bytes"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id: [u8; 8] = rand::random();
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, hex::encode(id)).map_err(|e| io(path, e))?;
            std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
            Ok(id)
        }
        Err(e) => Err(io(path, e)),
    }
}

/// Appends signed batches for the signer threads and keeps the log's health flag and metrics.
/// A signer thread appends its own batch and `fdatasync`s before it releases the batch's
/// responses: measured, that served more (0.466 of unsigned, hybrid, 7.1 leaves per batch)
/// than handing batches to a log thread that shared one sync among several (0.36-0.41, 4.6
/// leaves per batch): the hand-off cost a thread wake-up per batch, and while a signer waits
/// for its sync the next batch fills. With several signer threads, appends take turns on the
/// log's lock.
pub struct AnchorWriter {
    log: Arc<AnchorLog>,
}

impl AnchorWriter {
    pub fn new(log: Arc<AnchorLog>) -> AnchorWriter {
        AnchorWriter { log }
    }

    /// Logs `payload`: appended and durable when this returns its log index.
    pub fn append(&self, payload: Vec<u8>) -> Result<u64, ()> {
        let started = crate::clock::instant();
        match self.log.append(std::slice::from_ref(&payload)) {
            Ok(i) => {
                FAILING.store(false, std::sync::atomic::Ordering::Relaxed);
                crate::telemetry::metrics::anchored(1, started);
                Ok(i[0])
            }
            Err(e) => {
                log::error!("{e}");
                FAILING.store(true, std::sync::atomic::Ordering::Relaxed);
                crate::telemetry::metrics::anchor_failed(1);
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::sig::SigAlg;

    fn batch(seq: u8) -> (Vec<u8>, Batch) {
        let mut tbs = vec![0x20; 64];
        tbs.extend_from_slice(b"http-batch-sig/v1 root\x00\x01");
        tbs.extend_from_slice(&[seq; 16]);
        tbs.extend_from_slice(&[0; 12]);
        let b = Batch {
            id: [seq; 16],
            time_ms: 0,
            size: 1,
            sigs: vec![RootSig {
                alg: SigAlg::EcdsaP256,
                keyid: "k".into(),
                sig: vec![seq; 64],
            }],
        };
        (tbs, b)
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let log = AnchorLog::open(dir.path()).unwrap();
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
        assert_eq!(
            merkle::root_from_path(&merkle::leaf_of(&payloads[1]), 1, 3, &path),
            Some(root)
        );
        drop(log);
        // A torn record (a crash mid-write) after the three good ones.
        let file = dir.path().join("anchor.log");
        let good = std::fs::metadata(&file).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(&[0, 0, 1, 0, 9, 9, 9, 9, 1, 2, 3]).unwrap();
        drop(f);
        let log = AnchorLog::open(dir.path()).unwrap();
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
        let log = AnchorLog::open(dir.path()).unwrap();
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
        let log = AnchorLog::open(dir.path()).unwrap();
        assert_eq!(log.len(), 3);
        let writer = AnchorWriter::new(Arc::new(log));
        assert_eq!(writer.append(payload(&t, &b)), Ok(3));
        assert!(!failing());
        // Not a log: start-up refuses it.
        std::fs::write(&file, b"something else").unwrap();
        assert!(matches!(AnchorLog::open(dir.path()), Err(AnchorError::NotALog { .. })));
    }
}
