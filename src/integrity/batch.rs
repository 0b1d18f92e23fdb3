//! Batch signatures (`http-batch-sig/v1`, specified in `docs/batch-signing.md`): the `alg`
//! names, the signed block (TBS) over a batch's Merkle root, and the `Signature` value each
//! response carries (its leaf's salt and inclusion proof plus the root signatures).

use super::merkle::{self, Hash};
use super::sig::SigAlg;

/// The `alg` parameter of a batch signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchAlg {
    Ecdsa,
    MlDsa,
    Hybrid,
}

impl BatchAlg {
    pub const ALL: [BatchAlg; 3] = [BatchAlg::Ecdsa, BatchAlg::MlDsa, BatchAlg::Hybrid];

    pub fn name(self) -> &'static str {
        match self {
            BatchAlg::Ecdsa => "merkle-ecdsa-p256-sha256",
            BatchAlg::MlDsa => "merkle-ml-dsa-65",
            BatchAlg::Hybrid => "merkle-hybrid-ml-dsa-65-ecdsa-p256",
        }
    }

    pub fn parse(s: &str) -> Option<BatchAlg> {
        BatchAlg::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The root signatures it requires, in order (§2).
    pub fn algorithms(self) -> &'static [SigAlg] {
        match self {
            BatchAlg::Ecdsa => &[SigAlg::EcdsaP256],
            BatchAlg::MlDsa => &[SigAlg::MlDsa65],
            BatchAlg::Hybrid => &[SigAlg::EcdsaP256, SigAlg::MlDsa65],
        }
    }

    /// The batch algorithm that signs with exactly `algs` (a route's configured set).
    pub fn of(algs: &[SigAlg]) -> Option<BatchAlg> {
        BatchAlg::ALL
            .into_iter()
            .find(|a| a.algorithms().len() == algs.len() && a.algorithms().iter().all(|x| algs.contains(x)))
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            BatchAlg::Ecdsa => "ecdsa",
            BatchAlg::MlDsa => "ml-dsa",
            BatchAlg::Hybrid => "hybrid",
        }
    }
}

/// A root signature's code (§2).
pub fn code(alg: SigAlg) -> u8 {
    match alg {
        SigAlg::EcdsaP256 => 1,
        SigAlg::MlDsa65 => 2,
        // No batch algorithm signs roots with Ed25519 (it signs the log's checkpoints).
        SigAlg::Ed25519 => 3,
    }
}

/// The algorithm of a root signature code (§2).
pub fn alg_of_code(code: u8) -> Option<SigAlg> {
    match code {
        1 => Some(SigAlg::EcdsaP256),
        2 => Some(SigAlg::MlDsa65),
        3 => Some(SigAlg::Ed25519),
        _ => None,
    }
}

pub const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"http-batch-sig/v1 root";

/// One root signature: its algorithm, the key id and the signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSig {
    pub alg: SigAlg,
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// What a batch's signers sign and every response of it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: [u8; 16],
    pub time_ms: u64,
    pub size: u32,
    pub sigs: Vec<RootSig>,
}

/// The signed block (§5) for `alg` over `root`; `signers` are the (algorithm, key id) pairs
/// in order.
pub fn tbs(alg: BatchAlg, id: &[u8; 16], time_ms: u64, size: u32, signers: &[(SigAlg, &str)], root: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + CONTEXT.len() + 64 + 32 + 64);
    out.extend_from_slice(&[0x20; 64]);
    out.extend_from_slice(CONTEXT);
    out.push(0);
    out.push(VERSION);
    out.extend_from_slice(id);
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    let name = alg.name().as_bytes();
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(signers.len() as u8);
    for (a, kid) in signers {
        out.push(code(*a));
        out.push(kid.len() as u8);
        out.extend_from_slice(kid.as_bytes());
    }
    out.extend_from_slice(root);
    out
}

/// One response's signature value (§6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// In the detached form (§6.1) `batch.sigs` is empty: they are fetched once per batch.
    pub batch: Batch,
    pub index: u32,
    pub salt: [u8; 16],
    pub path: Vec<Hash>,
    pub detached: bool,
}

/// The flags byte of the detached form.
const DETACHED: u8 = 1;

/// The signature value (§6) of leaf `index` of `batch`; `detached` leaves the root signatures
/// out (§6.1).
pub fn encode(b: &Batch, index: u32, salt: &[u8; 16], path: &[Hash], detached: bool) -> Vec<u8> {
    let sigs: usize = b.sigs.iter().map(|s| 4 + s.keyid.len() + s.sig.len()).sum();
    let mut out = Vec::with_capacity(52 + 32 * path.len() + if detached { 0 } else { sigs });
    out.push(VERSION);
    out.push(if detached { DETACHED } else { 0 });
    out.extend_from_slice(&b.id);
    out.extend_from_slice(&b.time_ms.to_be_bytes());
    out.extend_from_slice(&b.size.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(salt);
    out.push(path.len() as u8);
    for p in path {
        out.extend_from_slice(p);
    }
    if detached {
        out.push(0);
        return out;
    }
    push_sigs(&mut out, &b.sigs);
    out
}

/// `count || count x (code || keyid_len || keyid || sig_len || sig)`: how a value (§6) and an
/// anchor-log record list root signatures.
pub(crate) fn push_sigs(out: &mut Vec<u8>, sigs: &[RootSig]) {
    out.push(sigs.len() as u8);
    for s in sigs {
        out.push(code(s.alg));
        out.push(s.keyid.len() as u8);
        out.extend_from_slice(s.keyid.as_bytes());
        out.extend_from_slice(&(s.sig.len() as u16).to_be_bytes());
        out.extend_from_slice(&s.sig);
    }
}

/// The `count` root signatures after the count byte [`push_sigs`] wrote.
pub(crate) fn read_sigs(r: &mut Reader<'_>, count: usize) -> Result<Vec<RootSig>, BatchError> {
    let mut sigs = Vec::with_capacity(count);
    for _ in 0..count {
        let alg = alg_of_code(r.u8()?).ok_or(BatchError::Format("unknown signature code"))?;
        let kl = r.u8()? as usize;
        let keyid = std::str::from_utf8(r.take(kl)?)
            .map_err(|_| BatchError::Format("key id is not text"))?
            .to_string();
        let sl = u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes")) as usize;
        let sig = r.take(sl)?.to_vec();
        sigs.push(RootSig { alg, keyid, sig });
    }
    Ok(sigs)
}

impl Value {
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.batch, self.index, &self.salt, &self.path, self.detached)
    }

    pub fn decode(bytes: &[u8]) -> Result<Value, BatchError> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(BatchError::Format("unknown version"));
        }
        let detached = match r.u8()? {
            0 => false,
            DETACHED => true,
            _ => return Err(BatchError::Format("unknown flags")),
        };
        let id: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
        let time_ms = u64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let size = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes"));
        let index = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes"));
        let salt: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
        let n = r.u8()? as usize;
        if n > 16 {
            return Err(BatchError::Format("path longer than 16"));
        }
        let mut path = Vec::with_capacity(n);
        for _ in 0..n {
            path.push(r.take(32)?.try_into().expect("32 bytes"));
        }
        let count = r.u8()? as usize;
        if detached && count != 0 {
            return Err(BatchError::Format("a detached value carries root signatures"));
        }
        let sigs = read_sigs(&mut r, count)?;
        if !r.0.is_empty() {
            return Err(BatchError::Format("trailing bytes"));
        }
        Ok(Value {
            batch: Batch {
                id,
                time_ms,
                size,
                sigs,
            },
            index,
            salt,
            path,
            detached,
        })
    }
}

/// Reads the format's fields in order; running past the end is [`BatchError::Format`].
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if self.0.len() < n {
            return Err(BatchError::Format("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, BatchError> {
        Ok(self.take(1)?[0])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("malformed batch signature: {0}")]
    Format(&'static str),
    #[error("the inclusion proof does not fit its index and tree size")]
    Proof,
    #[error("the root signatures do not match alg {0}")]
    Algorithms(&'static str),
    #[error("no key {0:?} of the right type")]
    UnknownKey(String),
    #[error("root signature by {0:?} does not verify")]
    BadSignature(String),
    #[error("detached batch signature: {0}")]
    Detached(String),
}

/// Fetches the root signatures of a detached batch (§6.1) by its id.
pub type Fetch<'a> = &'a dyn Fn(&[u8; 16]) -> Result<Vec<RootSig>, String>;

/// Verifies `value` for a response whose RFC 9421 signature base is `base` under `alg`
/// (§8 steps 3-7); `keys` resolves a key id to its algorithm and public key, `check` verifies
/// one signature, `fetch` gets a detached value's root signatures.
pub fn verify(
    alg: BatchAlg,
    base: &[u8],
    value: &Value,
    keys: &dyn Fn(&str) -> Option<(SigAlg, Vec<u8>)>,
    check: &dyn Fn(SigAlg, &[u8], &[u8], &[u8]) -> bool,
    fetch: Fetch<'_>,
) -> Result<Vec<u8>, BatchError> {
    let leaf = merkle::leaf(&value.salt, base);
    let fetched;
    let b = if value.detached {
        fetched = Batch {
            sigs: fetch(&value.batch.id).map_err(BatchError::Detached)?,
            ..value.batch.clone()
        };
        &fetched
    } else {
        &value.batch
    };
    let root = merkle::root_from_path(&leaf, value.index, b.size, &value.path).ok_or(BatchError::Proof)?;
    let got: Vec<SigAlg> = b.sigs.iter().map(|s| s.alg).collect();
    if got != alg.algorithms() {
        return Err(BatchError::Algorithms(alg.name()));
    }
    let signers: Vec<(SigAlg, &str)> = b.sigs.iter().map(|s| (s.alg, s.keyid.as_str())).collect();
    let tbs = tbs(alg, &b.id, b.time_ms, b.size, &signers, &root);
    for s in &b.sigs {
        let (kalg, public) = keys(&s.keyid)
            .filter(|(a, _)| *a == s.alg)
            .ok_or_else(|| BatchError::UnknownKey(s.keyid.clone()))?;
        if !check(kalg, &public, &tbs, &s.sig) {
            return Err(BatchError::BadSignature(s.keyid.clone()));
        }
    }
    // The verified TBS: the batch's entry in the anchor log (§11.1).
    Ok(tbs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::sig;

    fn signer(alg: SigAlg) -> Box<dyn sig::Signer> {
        sig::load_signer(alg, &sig::generate(alg).unwrap()).unwrap()
    }

    #[test]
    fn values_round_trip_and_refuse_bad_bytes() {
        let v = Value {
            batch: Batch {
                id: [7; 16],
                time_ms: 1_790_000_000_123,
                size: 5,
                sigs: vec![RootSig {
                    alg: SigAlg::EcdsaP256,
                    keyid: "k-v1".into(),
                    sig: vec![9; 64],
                }],
            },
            index: 3,
            salt: [1; 16],
            path: vec![[2; 32], [3; 32]],
            detached: false,
        };
        let bytes = v.encode();
        assert_eq!(Value::decode(&bytes), Ok(v.clone()));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Value::decode(&trailing), Err(BatchError::Format("trailing bytes")));
        for cut in 0..bytes.len() {
            assert!(Value::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flags = bytes.clone();
        flags[1] = 2;
        assert_eq!(Value::decode(&flags), Err(BatchError::Format("unknown flags")));
        flags[1] = 1;
        assert!(Value::decode(&flags).is_err(), "a detached value with signatures");
        let detached = Value {
            detached: true,
            ..v.clone()
        };
        let d = Value::decode(&detached.encode()).unwrap();
        assert!(d.detached && d.batch.sigs.is_empty());
    }

    #[test]
    fn a_batch_verifies_and_tampering_does_not() {
        let ec = signer(SigAlg::EcdsaP256);
        let ml = signer(SigAlg::MlDsa65);
        let keys = |kid: &str| match kid {
            "ec" => Some((SigAlg::EcdsaP256, ec.public_key().to_vec())),
            "ml" => Some((SigAlg::MlDsa65, ml.public_key().to_vec())),
            _ => None,
        };
        let check = |a: SigAlg, public: &[u8], msg: &[u8], s: &[u8]| sig::verify_aws_lc(a, public, msg, s);
        let none = |_: &[u8; 16]| Err::<Vec<RootSig>, String>("not detached".into());
        let verify = |alg,
                      base: &[u8],
                      v: &Value,
                      keys: &dyn Fn(&str) -> Option<(SigAlg, Vec<u8>)>,
                      check: &dyn Fn(SigAlg, &[u8], &[u8], &[u8]) -> bool| {
            super::verify(alg, base, v, keys, check, &none)
        };
        let bases: Vec<Vec<u8>> = (0..6)
            .map(|i| format!("\"@status\": 200\nbase {i}").into_bytes())
            .collect();
        let salts: Vec<[u8; 16]> = (0..6).map(|i| [i as u8; 16]).collect();
        let leaves: Vec<Hash> = bases.iter().zip(&salts).map(|(b, s)| merkle::leaf(s, b)).collect();
        let (root, paths) = merkle::root_and_paths(&leaves).unwrap();
        let id = [5; 16];
        let signers = [(SigAlg::EcdsaP256, "ec"), (SigAlg::MlDsa65, "ml")];
        let t = tbs(BatchAlg::Hybrid, &id, 42, 6, &signers, &root);
        let batch = Batch {
            id,
            time_ms: 42,
            size: 6,
            sigs: vec![
                RootSig {
                    alg: SigAlg::EcdsaP256,
                    keyid: "ec".into(),
                    sig: ec.sign(&t).unwrap(),
                },
                RootSig {
                    alg: SigAlg::MlDsa65,
                    keyid: "ml".into(),
                    sig: ml.sign(&t).unwrap(),
                },
            ],
        };
        for i in 0..6 {
            let v = Value {
                batch: batch.clone(),
                index: i as u32,
                salt: salts[i],
                path: paths[i].clone(),
                detached: false,
            };
            let v = Value::decode(&v.encode()).unwrap();
            assert!(verify(BatchAlg::Hybrid, &bases[i], &v, &keys, &check).is_ok());
            assert!(verify(BatchAlg::Hybrid, &bases[(i + 1) % 6], &v, &keys, &check).is_err());
            assert!(
                verify(BatchAlg::Ecdsa, &bases[i], &v, &keys, &check).is_err(),
                "relabelled"
            );
            let mut stripped = v.clone();
            stripped.batch.sigs.pop();
            assert!(verify(BatchAlg::Hybrid, &bases[i], &stripped, &keys, &check).is_err());
            assert!(
                verify(BatchAlg::Ecdsa, &bases[i], &stripped, &keys, &check).is_err(),
                "tbs names hybrid"
            );
            let mut salt = v.clone();
            salt.salt[0] ^= 1;
            assert!(verify(BatchAlg::Hybrid, &bases[i], &salt, &keys, &check).is_err());
            let mut time = v.clone();
            time.batch.time_ms += 1;
            assert!(verify(BatchAlg::Hybrid, &bases[i], &time, &keys, &check).is_err());
            let mut sigbyte = v.clone();
            sigbyte.batch.sigs[1].sig[100] ^= 1;
            assert!(verify(BatchAlg::Hybrid, &bases[i], &sigbyte, &keys, &check).is_err());
            let mut swapped = v.clone();
            swapped.batch.sigs.swap(0, 1);
            assert!(verify(BatchAlg::Hybrid, &bases[i], &swapped, &keys, &check).is_err());
            // Detached: the signatures come from the fetched document.
            let d = Value::decode(
                &Value {
                    detached: true,
                    ..v.clone()
                }
                .encode(),
            )
            .unwrap();
            let doc = |id: &[u8; 16]| {
                if *id == batch.id {
                    Ok(batch.sigs.clone())
                } else {
                    Err("unknown".to_string())
                }
            };
            // A detached value verifies to the same TBS as the inline one.
            assert_eq!(
                super::verify(BatchAlg::Hybrid, &bases[i], &d, &keys, &check, &doc),
                super::verify(BatchAlg::Hybrid, &bases[i], &v, &keys, &check, &none)
            );
            let half = |_: &[u8; 16]| Ok(batch.sigs[..1].to_vec());
            assert!(super::verify(BatchAlg::Hybrid, &bases[i], &d, &keys, &check, &half).is_err());
            assert!(super::verify(BatchAlg::Hybrid, &bases[i], &d, &keys, &check, &none).is_err());
        }
    }

    /// Property (the `httpsig` fuzz target's, 5,000 mutated values): a batch signature value
    /// that decodes encodes back to the same bytes, so one value has one spelling.
    #[test]
    fn property_decoded_values_encode_to_the_same_bytes() {
        let v = Value {
            batch: Batch {
                id: [7; 16],
                time_ms: 1_790_000_000_123,
                size: 5,
                sigs: vec![RootSig {
                    alg: SigAlg::EcdsaP256,
                    keyid: "k-v1".into(),
                    sig: vec![9; 8],
                }],
            },
            index: 3,
            salt: [1; 16],
            path: vec![[2; 32]],
            detached: false,
        };
        let seeds = [
            v.encode(),
            Value {
                detached: true,
                ..v.clone()
            }
            .encode(),
        ];
        let mut rng = crate::prop::rng(6);
        for case in 0..5_000 {
            let bytes = crate::prop::mutate(&mut rng, &seeds[case % 2], &[0, 1, 2, 16, 32, 0xff]);
            if let Ok(d) = Value::decode(&bytes) {
                assert_eq!(d.encode(), bytes, "case {case}");
            }
        }
    }
}
