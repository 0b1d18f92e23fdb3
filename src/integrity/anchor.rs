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
//! continues. Each record's TBS is an entry of the log's own RFC 6962 tree (its leaf is
//! `H(0x00 || tbs)`), served as C2SP tlog-tiles with signed checkpoints
//! (`docs/batch-signing.md` §11, [`super::tlog`]). The last signed checkpoint is kept in
//! `data_dir/anchor.checkpoint`; a log that no longer holds the tree of its last checkpoint
//! refuses to open.
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
use super::sig::{SigAlg, Signer};
use super::tlog::{self, Tree};

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
    #[error("anchor log {path}: {message}; the log was truncated or rewritten after its last signed checkpoint, so it is not started (restore the log from a backup, or move it and its checkpoint aside to start a new log)")]
    Diverged { path: PathBuf, message: String },
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
    payload_of(tbs, &batch.sigs)
}

fn payload_of(tbs: &[u8], sigs: &[RootSig]) -> Vec<u8> {
    let len: usize = sigs.iter().map(|s| 4 + s.keyid.len() + s.sig.len()).sum();
    let mut out = Vec::with_capacity(3 + tbs.len() + len);
    out.extend_from_slice(&(tbs.len() as u16).to_be_bytes());
    out.extend_from_slice(tbs);
    super::batch::push_sigs(&mut out, sigs);
    out
}

/// The log entry of a record payload: its TBS (which the payload holds after a 2-byte length).
fn entry_of(p: &[u8]) -> Option<&[u8]> {
    let tl = u16::from_be_bytes(p.get(..2)?.try_into().ok()?) as usize;
    p.get(2..2 + tl)
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

/// Where a record is in the file.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Offset of the payload.
    offset: u64,
    len: u32,
    /// Length of the entry (the TBS).
    entry: u16,
}

/// The log file and what is known of it in memory.
struct State {
    file: File,
    path: PathBuf,
    records: Vec<Record>,
    by_id: HashMap<[u8; 16], u64>,
    tree: Tree,
    end: u64,
}

/// A signed checkpoint and the size it covers.
#[derive(Debug, Clone)]
pub struct Signed {
    pub size: u64,
    pub note: String,
}

/// The anchor log of one data directory.
pub struct AnchorLog {
    state: Mutex<State>,
    checkpoint: Mutex<Option<std::sync::Arc<Signed>>>,
    checkpoint_path: PathBuf,
    origin: String,
    instance: [u8; 8],
    next_sequence: u64,
    /// Records dropped from a torn or corrupt tail when the log was opened.
    pub recovered_tail: u64,
}

/// What `/proof/{id}` finds.
pub enum ProofAnswer {
    Proof(String),
    /// Logged, but newer than the latest checkpoint.
    NotYet,
    Unknown,
}

impl AnchorLog {
    /// Opens (or creates) `data_dir/anchor.log`, recovering from a torn tail. Its checkpoints
    /// name `origin`, by default `quantumvault.invalid/anchor/{instance id}`.
    pub fn open(data_dir: &Path, origin: Option<&str>) -> Result<AnchorLog, AnchorError> {
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
        let (mut records, mut by_id, mut tree) = (Vec::new(), HashMap::new(), Tree::default());
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
            records.push(Record {
                offset: (at + 8) as u64,
                len: len as u32,
                entry: entry.tbs.len() as u16,
            });
            tree.push(merkle::leaf_of(&entry.tbs));
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
        let checkpoint_path = data_dir.join("anchor.checkpoint");
        let checkpoint = last_checkpoint(&checkpoint_path, &path, &tree)?;
        Ok(AnchorLog {
            state: Mutex::new(State {
                file,
                path,
                records,
                by_id,
                tree,
                end: at as u64,
            }),
            checkpoint: Mutex::new(checkpoint),
            checkpoint_path,
            origin: origin
                .map(str::to_string)
                .unwrap_or_else(|| format!("quantumvault.invalid/anchor/{}", hex::encode(instance))),
            instance,
            next_sequence,
            recovered_tail,
        })
    }

    /// The checkpoints' origin line and key name.
    pub fn origin(&self) -> &str {
        &self.origin
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

    /// Heap bytes of the log's in-memory index (record offsets, the batch-id map and the
    /// tree's hashes): it grows with every batch, about 150 bytes each
    /// (`quantumvault_anchor_index_bytes`).
    pub fn index_bytes(&self) -> u64 {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let records = (st.records.capacity() * std::mem::size_of::<Record>()) as u64;
        // hashbrown: one control byte per bucket beside each (key, value) slot.
        let map = (st.by_id.capacity() * (std::mem::size_of::<([u8; 16], u64)>() + 1)) as u64;
        records + map + st.tree.heap_bytes()
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
            let entry = entry_of(p).unwrap_or_default();
            st.records.push(Record {
                offset: at + 8,
                len: p.len() as u32,
                entry: entry.len() as u16,
            });
            if let Some(id) = batch_id_of(p) {
                st.by_id.insert(id, index);
            }
            st.tree.push(merkle::leaf_of(entry));
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
        let r = st.records[index as usize];
        let mut p = vec![0; r.len as usize];
        st.file.read_exact_at(&mut p, r.offset).ok()?;
        parse_payload(index, &p)
    }

    /// The log tree's size and root, and the inclusion path of record `index` in it.
    pub fn inclusion(&self, index: u64) -> Option<(u64, Hash, Vec<Hash>)> {
        let st = self.lock();
        let size = st.tree.size();
        Some((size, st.tree.root(size)?, st.tree.inclusion(index, size)?))
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Option<std::sync::Arc<Signed>> {
        self.checkpoint.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Signs a checkpoint of the log as it is now, if it grew since the last one (or the origin
    /// changed), and keeps it in memory and in `anchor.checkpoint`; the new size, or `None`.
    pub fn sign_checkpoint(&self, signers: &[&dyn Signer]) -> Result<Option<u64>, AnchorError> {
        let origin = self.origin.as_str();
        let (size, root) = {
            let st = self.lock();
            let size = st.tree.size();
            (size, st.tree.root(size).unwrap_or_default())
        };
        if let Some(last) = self.checkpoint() {
            if last.size == size && last.note.starts_with(&format!("{origin}\n")) {
                return Ok(None);
            }
        }
        let text = tlog::checkpoint_text(origin, size, &root);
        let note = tlog::sign_note(&text, origin, signers).map_err(|e| io(&self.checkpoint_path, e))?;
        crate::usage::write_atomic(&self.checkpoint_path, note.as_bytes(), 0o644)
            .map_err(|e| io(&self.checkpoint_path, e))?;
        *self.checkpoint.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(Signed { size, note }));
        Ok(Some(size))
    }

    /// The `tlog-proof` of batch `batch_id` against the latest checkpoint.
    pub fn proof(&self, batch_id: &[u8; 16]) -> ProofAnswer {
        let st = self.lock();
        let Some(&index) = st.by_id.get(batch_id) else {
            return ProofAnswer::Unknown;
        };
        let Some(cp) = self.checkpoint().filter(|c| index < c.size) else {
            return ProofAnswer::NotYet;
        };
        match st.tree.inclusion(index, cp.size) {
            Some(path) => ProofAnswer::Proof(tlog::proof_text(index, &path, &cp.note)),
            None => ProofAnswer::NotYet,
        }
    }

    /// Hash tile `n` of tile level `level`, `width` hashes (C2SP tlog-tiles).
    pub fn tile(&self, level: u8, n: u64, width: u64) -> Option<Vec<u8>> {
        self.lock().tree.tile(level, n, width)
    }

    /// Entry bundle `n`, `width` entries: each a big-endian u16 length and the entry.
    pub fn entries(&self, n: u64, width: u64) -> Option<Vec<u8>> {
        let st = self.lock();
        let start = n.checked_mul(tlog::TILE_WIDTH)? as usize;
        let records = st.records.get(start..start.checked_add(width as usize)?)?;
        let mut out = Vec::with_capacity(records.iter().map(|r| 2 + r.entry as usize).sum());
        for r in records {
            // The payload starts with the entry's u16 length and the entry.
            let at = out.len();
            out.resize(at + 2 + r.entry as usize, 0);
            st.file.read_exact_at(&mut out[at..], r.offset).ok()?;
        }
        Some(out)
    }

    /// Drops the ML-DSA-65 root signatures of batches closed before `before_ms` (Unix ms) from
    /// the file (§11.6), keeping entries, order and every other signature; how many it dropped.
    /// The rewrite runs beside the log and replaces it by an atomic rename, holding the lock
    /// only to copy what was appended meanwhile.
    pub fn prune_pq(&self, before_ms: u64) -> Result<u64, AnchorError> {
        let (path, snapshot, end) = {
            let st = self.lock();
            (st.path.clone(), st.records.clone(), st.end)
        };
        let reader = File::open(&path).map_err(|e| io(&path, e))?;
        let mut candidates = Vec::new();
        for (i, r) in snapshot.iter().enumerate() {
            let mut p = vec![0; r.len as usize];
            reader.read_exact_at(&mut p, r.offset).map_err(|e| io(&path, e))?;
            let Some(e) = parse_payload(i as u64, &p) else { continue };
            let time = e
                .tbs
                .get(TBS_ID_AT + 16..TBS_ID_AT + 24)
                .map(|t| u64::from_be_bytes(t.try_into().expect("8")));
            if time.is_some_and(|t| t < before_ms) && e.sigs.iter().any(|s| s.alg == SigAlg::MlDsa65) {
                candidates.push(i);
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        let tmp = path.with_extension("compact");
        let mut out = std::io::BufWriter::new(File::create(&tmp).map_err(|e| io(&tmp, e))?);
        out.write_all(MAGIC).map_err(|e| io(&tmp, e))?;
        let mut at = MAGIC.len() as u64;
        let mut records = Vec::with_capacity(snapshot.len());
        let mut dropped = 0;
        let mut next = candidates.iter().peekable();
        for (i, r) in snapshot.iter().enumerate() {
            let mut p = vec![0; r.len as usize];
            reader.read_exact_at(&mut p, r.offset).map_err(|e| io(&path, e))?;
            if next.peek() == Some(&&i) {
                next.next();
                if let Some(e) = parse_payload(i as u64, &p) {
                    let kept: Vec<RootSig> = e.sigs.iter().filter(|s| s.alg != SigAlg::MlDsa65).cloned().collect();
                    dropped += (e.sigs.len() - kept.len()) as u64;
                    p = payload_of(&e.tbs, &kept);
                }
            }
            out.write_all(&(p.len() as u32).to_be_bytes())
                .and_then(|_| out.write_all(&crc32fast::hash(&p).to_be_bytes()))
                .and_then(|_| out.write_all(&p))
                .map_err(|e| io(&tmp, e))?;
            records.push(Record {
                offset: at + 8,
                len: p.len() as u32,
                entry: r.entry,
            });
            at += 8 + p.len() as u64;
        }
        let mut file = out.into_inner().map_err(|e| io(&tmp, e.error()))?;
        let mut st = self.lock();
        // Records appended since the snapshot are copied as they are.
        let mut tail = vec![0; (st.end - end) as usize];
        st.file.read_exact_at(&mut tail, end).map_err(|e| io(&path, e))?;
        file.write_all(&tail)
            .and_then(|_| file.sync_all())
            .map_err(|e| io(&tmp, e))?;
        let shift = at as i64 - end as i64;
        for r in &st.records[snapshot.len()..] {
            records.push(Record {
                offset: (r.offset as i64 + shift) as u64,
                ..*r
            });
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(&path, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        st.end = at + tail.len() as u64;
        file.seek(SeekFrom::Start(st.end)).map_err(|e| io(&path, e))?;
        st.file = file;
        st.records = records;
        Ok(dropped)
    }
}

/// The last signed checkpoint in `cp_path`, checked against the tree read from the log.
fn last_checkpoint(
    cp_path: &Path,
    log_path: &Path,
    tree: &Tree,
) -> Result<Option<std::sync::Arc<Signed>>, AnchorError> {
    let note = match std::fs::read_to_string(cp_path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(cp_path, e)),
    };
    let text = note
        .split_once("\n\n")
        .map(|(t, _)| format!("{t}\n"))
        .unwrap_or_default();
    let (_, size, root) = tlog::parse_checkpoint_text(&text).map_err(|e| io(cp_path, e))?;
    let diverged = |message: String| AnchorError::Diverged {
        path: log_path.to_path_buf(),
        message,
    };
    match tree.root(size) {
        None => Err(diverged(format!(
            "it holds {} batches but its last checkpoint covers {size}",
            tree.size()
        ))),
        Some(r) if r != root => Err(diverged(format!(
            "its first {size} batches do not hash to its last checkpoint's root"
        ))),
        Some(_) => Ok(Some(std::sync::Arc::new(Signed { size, note }))),
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
        let proof = st.tree.consistency(30, 40).unwrap();
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
}
