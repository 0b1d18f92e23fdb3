//! The batch signer: responses hand in their leaves, dedicated threads (off Pingora's event
//! loops) gather them into batches, sign each batch's Merkle root once per algorithm and hand
//! every response back its salt-free proof ([`Proof`]).
//!
//! When a batch closes: at `max_leaves` leaves; or `max_wait` after its oldest leaf arrived;
//! or at once when the signer is idle, meaning its last batch closed longer than `max_wait` ago,
//! so that at low load a leaf is signed alone as soon as it arrives and costs what an inline
//! signature costs. Under load a thread waits up to `max_wait` to fill a batch, which bounds its
//! signatures to one per `max_wait`. With `max_wait: 0` (the default) a batch closes as soon as
//! a signer thread is free, and holds every leaf that arrived while it signed the last one.
//!
//! Backpressure: a leaf needs a permit of a bounded budget (`queue` leaves waiting or being
//! signed). When none is free the response waits for one, asynchronously, and the wait is
//! counted; the queue never grows without bound.

use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::batch::{tbs, Batch, BatchAlg, RootSig};
use super::merkle::{self, Hash};
use crate::kms::keystore::KeyRing;

pub use crate::config::gateway::BatchSettings;

/// A response's place in a signed batch.
#[derive(Debug, Clone)]
pub struct Proof {
    pub batch: Arc<Batch>,
    pub index: u32,
    pub path: Vec<Hash>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchSignError {
    #[error("no signing key for {0}")]
    NoKey(&'static str),
    #[error("signing failed")]
    Failed,
    #[error("the batch signer has stopped")]
    Stopped,
    /// The first root key is no longer the one the response's `keyid` names (a rotation
    /// between the response's signature base and its batch): build the base again.
    #[error("the signing key changed")]
    KeyChanged,
    /// The batch was signed but could not be written to the anchor log.
    #[error("the anchor log could not be written")]
    AnchorFailed,
}

struct Job {
    leaf: Hash,
    /// The key id the response's `keyid` parameter names: the batch's first root key must be it.
    keyid: String,
    arrived: Instant,
    reply: oneshot::Sender<Result<Proof, BatchSignError>>,
    _permit: OwnedSemaphorePermit,
}

struct Lane {
    tx: SyncSender<Job>,
    gate: Arc<Gate>,
}

/// How a signer thread that waits to fill a batch learns that it is full, without being woken
/// for every leaf: senders count their leaves and wake the waiting thread only when the count
/// reaches `max_leaves`.
#[derive(Default)]
struct Gate {
    /// Leaves sent and not yet taken by a signer thread. Counted after the send, so a leaf
    /// taken before its sender counted it leaves this briefly below zero.
    queued: std::sync::atomic::AtomicIsize,
    /// The thread waiting for a batch to fill, if one is.
    waiting: Mutex<Option<std::thread::Thread>>,
}

impl Gate {
    /// After a leaf is in the channel: a waiting thread is woken once `max` are there.
    fn sent(&self, max: usize) {
        let n = self.queued.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
        if n == max as isize {
            if let Some(t) = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                t.unpark();
            }
        }
    }

    fn taken(&self, n: usize) {
        self.queued.fetch_sub(n as isize, std::sync::atomic::Ordering::AcqRel);
    }

    fn queued(&self) -> isize {
        self.queued.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The batch signer of the process: one lane (queue and threads) per batch algorithm in use.
pub struct Batcher {
    settings: BatchSettings,
    /// Where signed batches are logged before their responses are released; `None` only in
    /// unit tests.
    anchor: Option<Arc<super::anchor::AnchorWriter>>,
    keyring: Arc<ArcSwap<KeyRing>>,
    permits: Arc<Semaphore>,
    /// By position in [`BatchAlg::ALL`], started on first use (no lock on the request path).
    lanes: [std::sync::OnceLock<Lane>; 3],
    instance: [u8; 8],
    sequence: Arc<std::sync::atomic::AtomicU64>,
}

impl Batcher {
    /// A batch signer that logs every batch on `log` (its instance id and sequence continue
    /// the log's) before releasing its responses.
    pub fn new(settings: BatchSettings, keyring: Arc<ArcSwap<KeyRing>>, log: Arc<super::anchor::AnchorLog>) -> Batcher {
        let instance = log.instance();
        let sequence = log.next_sequence();
        let anchor = Some(Arc::new(super::anchor::AnchorWriter::new(log)));
        Batcher::build(settings, keyring, anchor, instance, sequence)
    }

    fn build(
        settings: BatchSettings,
        keyring: Arc<ArcSwap<KeyRing>>,
        anchor: Option<Arc<super::anchor::AnchorWriter>>,
        instance: [u8; 8],
        sequence: u64,
    ) -> Batcher {
        let permits = Arc::new(Semaphore::new(settings.queue.max(1)));
        Batcher {
            settings,
            anchor,
            keyring,
            permits,
            lanes: Default::default(),
            instance,
            sequence: Arc::new(sequence.into()),
        }
    }

    pub fn settings(&self) -> &BatchSettings {
        &self.settings
    }

    fn lane(&self, alg: BatchAlg) -> &Lane {
        let at = BatchAlg::ALL
            .iter()
            .position(|a| *a == alg)
            .expect("every BatchAlg is in ALL");
        self.lanes[at].get_or_init(|| self.start_lane(alg))
    }

    fn start_lane(&self, alg: BatchAlg) -> Lane {
        let (tx, rx) = mpsc::sync_channel::<Job>(self.settings.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let gate = Arc::new(Gate::default());
        for i in 0..self.settings.threads.max(1) {
            let worker = Worker {
                alg,
                gate: gate.clone(),
                anchor: self.anchor.clone(),
                rx: rx.clone(),
                keyring: self.keyring.clone(),
                settings: self.settings.clone(),
                instance: self.instance,
                sequence: self.sequence.clone(),
            };
            // Invariant: spawning a thread fails only when the OS is out of threads at start.
            std::thread::Builder::new()
                .name(format!("qv-batch-{}-{i}", alg.label()))
                .spawn(move || worker.run())
                .expect("spawning a batch signer thread");
        }
        Lane { tx, gate }
    }

    /// Adds `leaf` to the next batch of `alg` and waits until that batch is signed. `keyid` is
    /// the first root key the leaf's signature base names.
    pub async fn sign(&self, alg: BatchAlg, leaf: Hash, keyid: &str) -> Result<Proof, BatchSignError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                crate::telemetry::metrics::batch_backpressure(alg.label());
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| BatchSignError::Stopped)?
            }
        };
        let (reply, rx) = oneshot::channel();
        let job = Job {
            leaf,
            keyid: keyid.to_string(),
            arrived: crate::clock::instant(),
            reply,
            _permit: permit,
        };
        // The channel holds as many jobs as there are permits, so it is never full here.
        let lane = self.lane(alg);
        lane.tx.try_send(job).map_err(|_| BatchSignError::Stopped)?;
        // Counted once it is in the channel: the thread woken at max_leaves finds them all.
        lane.gate.sent(self.settings.max_leaves.max(1) as usize);
        rx.await.map_err(|_| BatchSignError::Stopped)?
    }
}

struct Worker {
    alg: BatchAlg,
    gate: Arc<Gate>,
    anchor: Option<Arc<super::anchor::AnchorWriter>>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    keyring: Arc<ArcSwap<KeyRing>>,
    settings: BatchSettings,
    instance: [u8; 8],
    sequence: Arc<std::sync::atomic::AtomicU64>,
}

impl Worker {
    fn run(self) {
        let mut last_close: Option<Instant> = None;
        loop {
            let Some(jobs) = self.gather(last_close) else { return };
            let started = crate::clock::instant();
            self.sign(jobs, started);
            let done = crate::clock::instant();
            crate::telemetry::metrics::batch_signer_busy(self.alg.label(), done.saturating_duration_since(started));
            last_close = Some(done);
        }
    }

    /// The next batch's jobs; `None` once every sender is gone.
    fn gather(&self, last_close: Option<Instant>) -> Option<Vec<Job>> {
        // One thread gathers at a time; the others sign or wait for the lock.
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let first = rx.recv().ok()?;
        let max = self.settings.max_leaves.max(1) as usize;
        let oldest = first.arrived;
        let now = crate::clock::instant();
        let idle = last_close.is_none_or(|t| now.saturating_duration_since(t) >= self.settings.max_wait);
        if !idle {
            // Wait for the batch to fill or its oldest leaf to reach max_wait, woken by the
            // sender of the max_leaves-th leaf rather than by every leaf.
            let deadline = oldest + self.settings.max_wait;
            *self.gate.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
            while self.gate.queued() < max as isize {
                let left = deadline.saturating_duration_since(crate::clock::instant());
                if left.is_zero() {
                    break;
                }
                std::thread::park_timeout(left);
            }
            *self.gate.waiting.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        let mut jobs = vec![first];
        while jobs.len() < max {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        self.gate.taken(jobs.len());
        Some(jobs)
    }

    fn sign(&self, jobs: Vec<Job>, started: Instant) {
        let ring = self.keyring.load_full();
        let first = self.alg.algorithms()[0];
        let current = ring.signer(first).map(|s| s.keyid.as_str());
        let (jobs, stale): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| Some(j.keyid.as_str()) == current);
        for job in stale {
            let _ = job.reply.send(Err(BatchSignError::KeyChanged));
        }
        if jobs.is_empty() {
            return;
        }
        let leaves: Vec<Hash> = jobs.iter().map(|j| j.leaf).collect();
        let result = self.sign_leaves(&ring, &leaves);
        let m = crate::telemetry::metrics::BatchMetrics::of(self.alg.label());
        m.size(leaves.len());
        match result {
            Ok((batch, block, paths)) => {
                let payload = self.anchor.as_ref().map(|_| super::anchor::payload(&block, &batch));
                let batch = Arc::new(batch);
                let release = move |logged: Result<u64, ()>| {
                    for (i, (job, path)) in jobs.into_iter().zip(paths).enumerate() {
                        m.waited(started.saturating_duration_since(job.arrived));
                        let _ = job.reply.send(match logged {
                            Ok(_) => Ok(Proof {
                                batch: batch.clone(),
                                index: i as u32,
                                path,
                            }),
                            Err(()) => Err(BatchSignError::AnchorFailed),
                        });
                    }
                };
                match (&self.anchor, payload) {
                    (Some(a), Some(payload)) => release(a.append(payload)),
                    _ => release(Ok(0)),
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }

    /// The signed batch, its TBS and every leaf's path.
    fn sign_leaves(&self, ring: &KeyRing, leaves: &[Hash]) -> Result<(Batch, Vec<u8>, Vec<Vec<Hash>>), BatchSignError> {
        let mut signers = Vec::new();
        for a in self.alg.algorithms() {
            signers.push(ring.signer(*a).ok_or(BatchSignError::NoKey(a.name()))?);
        }
        let (root, paths) = merkle::root_and_paths(leaves).ok_or(BatchSignError::Failed)?;
        let seq = self.sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.instance);
        id[8..].copy_from_slice(&seq.to_be_bytes());
        let time_ms = crate::clock::unix_ms();
        let size = leaves.len() as u32;
        let names: Vec<(crate::integrity::sig::SigAlg, &str)> =
            signers.iter().map(|s| (s.signer.alg(), s.keyid.as_str())).collect();
        let block = tbs(self.alg, &id, time_ms, size, &names, &root);
        let mut sigs = Vec::with_capacity(signers.len());
        for s in &signers {
            let started = crate::clock::instant();
            let sig = s.signer.sign(&block).map_err(|_| {
                crate::telemetry::metrics::signing_failed(s.signer.alg().name());
                BatchSignError::Failed
            })?;
            crate::telemetry::metrics::signed(s.signer.alg().name(), started);
            if self.settings.verify_roots {
                // A faulty signature (a hardware fault, a broken HSM) is never released: a
                // faulted signature can leak the key it was made with.
                let ok = crate::integrity::sig::verify_aws_lc(s.signer.alg(), s.signer.public_key(), &block, &sig);
                crate::telemetry::metrics::root_verified(s.signer.alg().name(), ok);
                if !ok {
                    log::error!(
                        "a {} root signature did not verify; the batch is not released",
                        s.signer.alg().name()
                    );
                    return Err(BatchSignError::Failed);
                }
            }
            sigs.push(RootSig {
                alg: s.signer.alg(),
                keyid: s.keyid.clone(),
                sig,
            });
        }
        Ok((
            Batch {
                id,
                time_ms,
                size,
                sigs,
            },
            block,
            paths,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::integrity::batch::{self, Value};
    use crate::integrity::sig::{self, SigAlg};
    use crate::kms::keystore::PrimarySigner;

    fn ring(version: u32) -> KeyRing {
        let signers = [SigAlg::EcdsaP256, SigAlg::MlDsa65]
            .into_iter()
            .map(|a| PrimarySigner {
                keyid: format!("{}-v{version}", a.label()),
                signer: Arc::from(sig::load_signer(a, &sig::generate(a).unwrap()).unwrap()),
                created: 0,
                expires: None,
            })
            .collect();
        KeyRing {
            signers,
            ..KeyRing::default()
        }
    }

    fn check(a: SigAlg, public: &[u8], msg: &[u8], s: &[u8]) -> bool {
        sig::verify_aws_lc(a, public, msg, s)
    }

    #[tokio::test]
    async fn concurrent_leaves_share_a_batch_and_each_proof_verifies() {
        let keyring = Arc::new(ArcSwap::from_pointee(ring(1)));
        let settings = BatchSettings {
            max_leaves: 8,
            max_wait: Duration::from_secs(2),
            threads: 1,
            queue: 64,
            ..BatchSettings::default()
        };
        let b = Arc::new(Batcher::build(settings, keyring.clone(), None, [1; 8], 0));
        let keys = |kid: &str| {
            let r = keyring.load();
            r.signers
                .iter()
                .find(|s| s.keyid == kid)
                .map(|s| (s.signer.alg(), s.signer.public_key().to_vec()))
        };
        // A lone leaf on an idle signer is signed at once, alone.
        let base0 = b"lone".to_vec();
        let p = b
            .sign(BatchAlg::Hybrid, merkle::leaf(&[0; 16], &base0), "sig-ecdsa-v1")
            .await
            .unwrap();
        assert_eq!((p.batch.size, p.index), (1, 0));
        // Right after, the signer waits for its batch to fill: eight leaves, one batch.
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move {
                    let base = format!("base {i}").into_bytes();
                    let salt = [i; 16];
                    let p = b
                        .sign(BatchAlg::Hybrid, merkle::leaf(&salt, &base), "sig-ecdsa-v1")
                        .await
                        .unwrap();
                    (base, salt, p)
                })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            let (base, salt, p) = t.await.unwrap();
            assert_eq!(p.batch.size, 8);
            ids.insert(p.batch.id);
            let v = Value {
                batch: (*p.batch).clone(),
                index: p.index,
                salt,
                path: p.path,
                detached: false,
            };
            let none = |_: &[u8; 16]| Err("not detached".to_string());
            assert!(batch::verify(BatchAlg::Hybrid, &base, &v, &keys, &check, &none).is_ok());
        }
        assert_eq!(ids.len(), 1);
        // After a rotation, a leaf whose base names the old key is sent back to be rebuilt.
        keyring.store(Arc::new(ring(2)));
        let stale = b
            .sign(BatchAlg::Hybrid, merkle::leaf(&[9; 16], b"x"), "sig-ecdsa-v1")
            .await;
        assert_eq!(stale.unwrap_err(), BatchSignError::KeyChanged);
    }

    /// Signs like the signer it wraps, but one byte of every signature is wrong (a fault).
    struct Faulty(Arc<dyn sig::Signer>);

    impl sig::Signer for Faulty {
        fn alg(&self) -> SigAlg {
            self.0.alg()
        }
        fn public_key(&self) -> &[u8] {
            self.0.public_key()
        }
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, sig::CryptoError> {
            let mut s = self.0.sign(msg)?;
            s[10] ^= 1;
            Ok(s)
        }
    }

    #[tokio::test]
    async fn with_verify_roots_a_faulty_signature_is_never_released() {
        let mut faulty = ring(1);
        faulty.signers[1].signer = Arc::new(Faulty(faulty.signers[1].signer.clone()));
        let keyring = Arc::new(ArcSwap::from_pointee(faulty));
        for verify_roots in [false, true] {
            let settings = BatchSettings {
                verify_roots,
                ..BatchSettings::default()
            };
            let b = Batcher::build(settings, keyring.clone(), None, [2; 8], 0);
            let got = b
                .sign(BatchAlg::Hybrid, merkle::leaf(&[1; 16], b"base"), "sig-ecdsa-v1")
                .await;
            if verify_roots {
                assert_eq!(got.unwrap_err(), BatchSignError::Failed);
            } else {
                // Without the check the faulty ML-DSA signature goes out (and fails at clients).
                assert!(got.is_ok());
            }
        }
    }
}
