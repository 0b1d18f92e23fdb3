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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::batch::{Batch, RootSig};
use super::merkle::{self, Hash};
use super::sig::{SigAlg, Signer};
use super::spill::{readable, SpillVec};
use super::tlog::{self, Tree};

mod index;
use index::{decode_place, encode_place, Index, Record};

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

/// The log file and its index.
struct State {
    file: File,
    path: PathBuf,
    index: Index,
    /// The index failed to take a record the file holds: appends are refused until the log
    /// is reopened (and the index rebuilt from the file).
    broken: bool,
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
        let mut index = Index::new(Some(data_dir)).map_err(|e| io(data_dir, e))?;
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
            let Some(entry) = parse_payload(index.len(), p) else {
                break;
            };
            let id = entry.batch_id();
            if let Some(id) = id.filter(|id| id[..8] == instance) {
                let seq = u64::from_be_bytes(id[8..].try_into().expect("8 bytes"));
                next_sequence = next_sequence.max(seq + 1);
            }
            let record = Record {
                offset: (at + 8) as u64,
                len: len as u32,
                entry: entry.tbs.len() as u16,
            };
            index
                .push(record, id, merkle::leaf_of(&entry.tbs))
                .map_err(|e| io(data_dir, e))?;
            at += 8 + len;
        }
        let mut recovered_tail = 0;
        if at < bytes.len() {
            recovered_tail = (bytes.len() - at) as u64;
            log::warn!(
                "anchor log {}: {} bytes of a torn or corrupt tail after record {} truncated",
                path.display(),
                recovered_tail,
                index.len()
            );
            file.set_len(at as u64).map_err(|e| io(&path, e))?;
            file.sync_data().map_err(|e| io(&path, e))?;
        }
        file.seek(SeekFrom::Start(at as u64)).map_err(|e| io(&path, e))?;
        let checkpoint_path = data_dir.join("anchor.checkpoint");
        let checkpoint = last_checkpoint(&checkpoint_path, &path, &index.tree)?;
        Ok(AnchorLog {
            state: Mutex::new(State {
                file,
                path,
                index,
                broken: false,
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
        self.lock().index.len()
    }

    /// Heap bytes of the log's index (`quantumvault_anchor_index_bytes`): the index spills
    /// to disk in blocks, so this stays at a few hundred KiB however long the log grows
    /// (it grew by about 130 bytes a batch while the index lived on the heap).
    pub fn index_bytes(&self) -> u64 {
        self.lock().index.heap_bytes()
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
        if st.broken {
            return Err(io(
                &st.path,
                "its index failed earlier; restart the gateway to rebuild it",
            ));
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
        st.end = start + buf.len() as u64;
        for p in payloads {
            let index = st.index.len();
            let entry = entry_of(p).unwrap_or_default();
            let record = Record {
                offset: at + 8,
                len: p.len() as u32,
                entry: entry.len() as u16,
            };
            if let Err(e) = st.index.push(record, batch_id_of(p), merkle::leaf_of(entry)) {
                // The file holds the batch but the index does not: no later index would match.
                st.broken = true;
                return Err(io(&st.path, format!("its index: {e}")));
            }
            at += 8 + p.len() as u64;
            indices.push(index);
        }
        Ok(indices)
    }

    /// The logged batch `batch_id`, read back from the file.
    pub fn entry(&self, batch_id: &[u8; 16]) -> Option<Entry> {
        let st = self.lock();
        let index = readable(st.index.find(batch_id))??;
        let r = readable(st.index.record(index))??;
        let mut p = vec![0; r.len as usize];
        st.file.read_exact_at(&mut p, r.offset).ok()?;
        parse_payload(index, &p)
    }

    /// The log tree's size and root, and the inclusion path of record `index` in it.
    pub fn inclusion(&self, index: u64) -> Option<(u64, Hash, Vec<Hash>)> {
        let st = self.lock();
        let size = st.index.tree.size();
        Some((size, st.index.tree.root(size)?, st.index.tree.inclusion(index, size)?))
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
            let size = st.index.tree.size();
            let root = st.index.tree.root(size);
            (size, root.ok_or_else(|| io(&st.path, "its index could not be read"))?)
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
        let Some(index) = readable(st.index.find(batch_id)).flatten() else {
            return ProofAnswer::Unknown;
        };
        let Some(cp) = self.checkpoint().filter(|c| index < c.size) else {
            return ProofAnswer::NotYet;
        };
        match st.index.tree.inclusion(index, cp.size) {
            Some(path) => ProofAnswer::Proof(tlog::proof_text(index, &path, &cp.note)),
            None => ProofAnswer::NotYet,
        }
    }

    /// Hash tile `n` of tile level `level`, `width` hashes (C2SP tlog-tiles).
    pub fn tile(&self, level: u8, n: u64, width: u64) -> Option<Vec<u8>> {
        self.lock().index.tree.tile(level, n, width)
    }

    /// Entry bundle `n`, `width` entries: each a big-endian u16 length and the entry.
    pub fn entries(&self, n: u64, width: u64) -> Option<Vec<u8>> {
        let st = self.lock();
        let start = n.checked_mul(tlog::TILE_WIDTH)?;
        let records = readable(st.index.records(start, width))??;
        let mut out = Vec::with_capacity(records.iter().map(|r| 2 + r.entry as usize).sum());
        for r in &records {
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
        let (path, count, end) = {
            let st = self.lock();
            (st.path.clone(), st.index.len(), st.end)
        };
        let reader = File::open(&path).map_err(|e| io(&path, e))?;
        let read = |r: &Record| {
            let mut p = vec![0; r.len as usize];
            reader
                .read_exact_at(&mut p, r.offset)
                .map(|_| p)
                .map_err(|e| io(&path, e))
        };
        let prunable = |i: u64, p: &[u8]| {
            let e = parse_payload(i, p)?;
            let time = e
                .tbs
                .get(TBS_ID_AT + 16..TBS_ID_AT + 24)
                .map(|t| u64::from_be_bytes(t.try_into().expect("8")));
            (time.is_some_and(|t| t < before_ms) && e.sigs.iter().any(|s| s.alg == SigAlg::MlDsa65)).then_some(e)
        };
        let mut any = false;
        self.each_record(count, |i, r| {
            any = any || prunable(i, &read(&r)?).is_some();
            Ok(!any)
        })?;
        if !any {
            return Ok(0);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = path.with_extension("compact");
        let mut out = std::io::BufWriter::new(File::create(&tmp).map_err(|e| io(&tmp, e))?);
        out.write_all(MAGIC).map_err(|e| io(&tmp, e))?;
        let mut at = MAGIC.len() as u64;
        // The records' new places, spilled like the index (a long log has many).
        let mut moved = SpillVec::<{ index::PLACE }>::on_disk(dir).map_err(|e| io(dir, e))?;
        let mut dropped = 0;
        self.each_record(count, |i, r| {
            let mut p = read(&r)?;
            if let Some(e) = prunable(i, &p) {
                let kept: Vec<RootSig> = e.sigs.iter().filter(|s| s.alg != SigAlg::MlDsa65).cloned().collect();
                dropped += (e.sigs.len() - kept.len()) as u64;
                p = payload_of(&e.tbs, &kept);
            }
            out.write_all(&(p.len() as u32).to_be_bytes())
                .and_then(|_| out.write_all(&crc32fast::hash(&p).to_be_bytes()))
                .and_then(|_| out.write_all(&p))
                .map_err(|e| io(&tmp, e))?;
            moved
                .push(encode_place(Record {
                    offset: at + 8,
                    len: p.len() as u32,
                    entry: r.entry,
                }))
                .map_err(|e| io(dir, e))?;
            at += 8 + p.len() as u64;
            Ok(true)
        })?;
        let mut file = out.into_inner().map_err(|e| io(&tmp, e.error()))?;
        let mut st = self.lock();
        // Records appended since the snapshot are copied as they are.
        let mut tail = vec![0; (st.end - end) as usize];
        st.file.read_exact_at(&mut tail, end).map_err(|e| io(&path, e))?;
        file.write_all(&tail)
            .and_then(|_| file.sync_all())
            .map_err(|e| io(&tmp, e))?;
        let shift = at as i64 - end as i64;
        for i in count..st.index.len() {
            let r = st.index.record(i).ok().flatten().ok_or_else(|| io(dir, "index read"))?;
            moved
                .push(encode_place(Record {
                    offset: (r.offset as i64 + shift) as u64,
                    ..r
                }))
                .map_err(|e| io(dir, e))?;
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
        let total = moved.len();
        let placed = st.index.move_records(total, |i| {
            let place = moved
                .get(i)?
                .ok_or_else(|| std::io::Error::other("a moved record is missing"))?;
            Ok(decode_place(&place))
        });
        if let Err(e) = placed {
            // The file was rewritten but the index still points into the old one.
            st.broken = true;
            return Err(io(&path, format!("its index: {e}")));
        }
        Ok(dropped)
    }

    /// Calls `f` on records `0..count` in order, taking the lock for one chunk at a time, while
    /// it answers `true`.
    fn each_record(
        &self,
        count: u64,
        mut f: impl FnMut(u64, Record) -> Result<bool, AnchorError>,
    ) -> Result<(), AnchorError> {
        const CHUNK: u64 = 4096;
        let mut start = 0;
        while start < count {
            let n = CHUNK.min(count - start);
            let chunk = {
                let st = self.lock();
                st.index
                    .records(start, n)
                    .ok()
                    .flatten()
                    .ok_or_else(|| io(&st.path, "its index could not be read"))?
            };
            for (k, r) in chunk.into_iter().enumerate() {
                if !f(start + k as u64, r)? {
                    return Ok(());
                }
            }
            start += n;
        }
        Ok(())
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
mod tests;
