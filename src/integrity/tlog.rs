//! The anchor log's transparency-log formats (`docs/batch-signing.md` §11): an append-only
//! RFC 6962 / 9162 Merkle tree kept incrementally, inclusion and consistency proofs for any
//! earlier size, C2SP `tlog-tiles` tiles, `tlog-checkpoint` notes signed as C2SP
//! `signed-note` (Ed25519 and ML-DSA-65), and C2SP `tlog-proof`.

use base64::Engine;
use sha2::{Digest, Sha256};

use std::io;
use std::path::{Path, PathBuf};

use super::merkle::{node, Hash};
use super::sig::{SigAlg, Signer};
use super::spill::{readable, SpillVec};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Hashes per full tile (C2SP tlog-tiles: tiles are 8 tree levels high).
pub const TILE_WIDTH: u64 = 256;

/// An append-only Merkle tree that keeps the hash of every complete (perfect, aligned) subtree:
/// level `k`, item `i` covers leaves `[i * 2^k, (i + 1) * 2^k)`. About two hashes per leaf; any
/// root, path or tile of any earlier size is a few `log n` hashes away. In memory by default;
/// [`Tree::on_disk`] keeps each level's full blocks of 256 hashes in a file
/// ([`super::spill`]), so the heap holds at most one block a level.
#[derive(Debug, Default)]
pub struct Tree {
    levels: Vec<SpillVec<32>>,
    /// Where levels spill, if they do.
    dir: Option<PathBuf>,
}

impl Tree {
    /// A tree whose levels spill to anonymous files in `dir`.
    pub fn on_disk(dir: &Path) -> Tree {
        Tree {
            levels: Vec::new(),
            dir: Some(dir.to_path_buf()),
        }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len())
    }

    /// Heap bytes its hashes hold (capacity, not length: what the allocator gave).
    pub fn heap_bytes(&self) -> u64 {
        self.levels.iter().map(SpillVec::heap_bytes).sum()
    }

    fn new_level(&self) -> io::Result<SpillVec<32>> {
        match &self.dir {
            Some(dir) => SpillVec::on_disk(dir),
            None => Ok(SpillVec::in_memory()),
        }
    }

    /// Adds a leaf. A write error (a spilling tree's disk) leaves the tree unusable for
    /// appends; the anchor log reports it and refuses to sign further batches.
    pub fn push(&mut self, leaf: Hash) -> io::Result<()> {
        if self.levels.is_empty() {
            let level = self.new_level()?;
            self.levels.push(level);
        }
        self.levels[0].push(leaf)?;
        let mut k = 0;
        while self.levels[k].len() % 2 == 0 {
            let l = &self.levels[k];
            let n = l.len();
            let (Some(a), Some(b)) = (l.get(n - 2)?, l.get(n - 1)?) else {
                unreachable!("a level of even length has its last two hashes")
            };
            if self.levels.len() == k + 1 {
                let level = self.new_level()?;
                self.levels.push(level);
            }
            self.levels[k + 1].push(node(&a, &b))?;
            k += 1;
        }
        Ok(())
    }

    /// The root of the first `size` leaves (the empty tree's root is SHA-256 of nothing).
    pub fn root(&self, size: u64) -> Option<Hash> {
        (size <= self.size()).then(|| readable(root(&mut &*self, size)))?
    }

    /// The inclusion path of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        (index < size && size <= self.size()).then(|| readable(inclusion(&mut &*self, index, size)))?
    }

    /// The consistency proof between the trees of the first `m` and `n` leaves.
    pub fn consistency(&self, m: u64, n: u64) -> Option<Vec<Hash>> {
        (m <= n && n <= self.size()).then(|| readable(consistency(&mut &*self, m, n)))?
    }

    /// The hashes of tile `n` at tile level `level`, `width` of them (C2SP tlog-tiles), if the
    /// tree has them all.
    pub fn tile(&self, level: u8, n: u64, width: u64) -> Option<Vec<u8>> {
        let row = self.levels.get(8 * level as usize)?;
        let start = n.checked_mul(TILE_WIDTH)?;
        let mut out = Vec::with_capacity(width as usize * 32);
        readable(row.read_range(start, width, &mut out)).filter(|&whole| whole)?;
        Some(out)
    }
}

/// Where proofs get the hash of a perfect subtree: `2^height` leaves from `index * 2^height`.
/// The tree itself in the gateway; tiles fetched over HTTP in the verifier.
pub trait Subtrees {
    type Error;
    fn perfect(&mut self, height: u32, index: u64) -> Result<Hash, Self::Error>;
}

impl Subtrees for &Tree {
    type Error = io::Error;
    fn perfect(&mut self, height: u32, index: u64) -> Result<Hash, Self::Error> {
        self.levels
            .get(height as usize)
            .map_or(Ok(None), |l| l.get(index))?
            .ok_or_else(|| io::Error::other("a subtree past the tree's end"))
    }
}

/// `MTH(D[a:b])` for a range the RFC 6962 recursion reaches (`a` aligned to the largest power
/// of two below `b - a`), `a < b`.
fn range<S: Subtrees>(src: &mut S, a: u64, b: u64) -> Result<Hash, S::Error> {
    let n = b - a;
    if n.is_power_of_two() && a % n == 0 {
        return src.perfect(n.trailing_zeros(), a / n);
    }
    let k = split(n);
    Ok(node(&range(src, a, a + k)?, &range(src, a + k, b)?))
}

/// The root of the first `size` leaves (SHA-256 of nothing for 0).
pub fn root<S: Subtrees>(src: &mut S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(Sha256::digest([]).into());
    }
    range(src, 0, size)
}

/// The inclusion path of leaf `index < size` (RFC 6962 §2.1.1), the leaf's sibling first.
pub fn inclusion<S: Subtrees>(src: &mut S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    let (mut m, mut a, mut b) = (index, 0, size);
    // Walk down from the root, noting each sibling; the path lists them leaf first.
    while b - a > 1 {
        let k = split(b - a);
        if m < k {
            out.push(range(src, a + k, b)?);
            b = a + k;
        } else {
            out.push(range(src, a, a + k)?);
            a += k;
            m -= k;
        }
    }
    out.reverse();
    Ok(out)
}

/// The consistency proof between sizes `m <= n` (RFC 6962 §2.1.2); empty for `m == 0` or
/// `m == n`.
pub fn consistency<S: Subtrees>(src: &mut S, m: u64, n: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    if m == 0 || m >= n {
        return Ok(out);
    }
    let (mut m, mut a, mut b, mut whole) = (m, 0, n, true);
    loop {
        let size = b - a;
        if m == size {
            if !whole {
                out.push(range(src, a, b)?);
            }
            break;
        }
        let k = split(size);
        if m <= k {
            out.push(range(src, a + k, b)?);
            b = a + k;
        } else {
            out.push(range(src, a, a + k)?);
            a += k;
            m -= k;
            whole = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// The largest power of two below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Checks an inclusion path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Checks a consistency proof between sizes `m <= n` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, proof: &[Hash], old: &Hash, new: &Hash) -> bool {
    if m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && old == new;
    }
    if m == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if m.is_power_of_two() {
        path.push(*old);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node(c, &fr);
            sr = node(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old && sr == *new && s == 0
}

/// A tile index as C2SP path elements: `1234067` is `x001/x234/067`.
pub fn tile_index_path(n: u64) -> String {
    let digits = format!("{n}");
    let padded = format!("{}{digits}", "0".repeat((3 - digits.len() % 3) % 3));
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| if i < last { format!("x{g}") } else { g.to_string() })
        .collect::<Vec<_>>()
        .join("/")
}

/// A tile request below `tile/`: `(level, n, width)`, level `None` for entry bundles, width
/// 256 for a full tile. Rejects every spelling but the canonical one.
pub fn parse_tile_path(rest: &str) -> Option<(Option<u8>, u64, u64)> {
    let (level, rest) = rest.split_once('/')?;
    let level = match level {
        "entries" => None,
        l => {
            let v: u8 = l.parse().ok()?;
            Some((v <= 63 && v.to_string() == l).then_some(v)?)
        }
    };
    let (index, width) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let v: u64 = w.parse().ok()?;
            ((1..=255).contains(&v) && v.to_string() == w).then_some(())?;
            (i, v)
        }
        None => (rest, TILE_WIDTH),
    };
    let parts: Vec<&str> = index.split('/').collect();
    let mut n: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() { p.strip_prefix('x')? } else { p };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    (tile_index_path(n) == index).then_some((level, n, width))
}

/// The signed-note signature type of a checkpoint key (§11.3).
pub fn sig_type(alg: SigAlg) -> &'static [u8] {
    match alg {
        SigAlg::Ed25519 => &[0x01],
        SigAlg::MlDsa65 => b"\xffml-dsa-65",
        // Not a checkpoint algorithm; a type no verifier knows.
        SigAlg::EcdsaP256 => b"\xffquantumvault-unused",
    }
}

/// `SHA-256(name || 0x0A || type || public key)[0:4]` (C2SP signed-note).
pub fn key_id(name: &str, alg: SigAlg, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a]);
    h.update(sig_type(alg));
    h.update(public);
    h.finalize()[..4].try_into().expect("4 bytes")
}

/// A checkpoint key as a verifier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteKey {
    pub name: String,
    pub alg: SigAlg,
    pub public: Vec<u8>,
}

impl NoteKey {
    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, self.alg, &self.public)
    }

    /// `name+hex(key id)+base64(type || public key)` (§11.4).
    pub fn vkey(&self) -> String {
        let mut blob = sig_type(self.alg).to_vec();
        blob.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, hex::encode(self.id()), B64.encode(blob))
    }

    pub fn parse(vkey: &str) -> Result<NoteKey, NoteError> {
        let mut it = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(blob)) = (it.next(), it.next(), it.next()) else {
            return Err(NoteError::VkeyShape(vkey.to_string()));
        };
        let blob = B64
            .decode(blob)
            .map_err(|_| NoteError::VkeyNotBase64(name.to_string()))?;
        let (alg, public) = if let Some(pk) = blob.strip_prefix(sig_type(SigAlg::MlDsa65)) {
            (SigAlg::MlDsa65, pk)
        } else if let Some(pk) = blob.strip_prefix(sig_type(SigAlg::Ed25519)) {
            (SigAlg::Ed25519, pk)
        } else {
            return Err(NoteError::VkeyUnknownType(name.to_string()));
        };
        let want = match alg {
            SigAlg::Ed25519 => 32,
            _ => 1952,
        };
        if public.len() != want {
            return Err(NoteError::VkeyLength {
                name: name.to_string(),
                alg: alg.name(),
                want,
            });
        }
        let key = NoteKey {
            name: name.to_string(),
            alg,
            public: public.to_vec(),
        };
        if hex::encode(key.id()) != id.to_ascii_lowercase() || id.len() != 8 {
            return Err(NoteError::VkeyIdMismatch(name.to_string()));
        }
        Ok(key)
    }
}

/// Why a verifier key, a checkpoint note or its signing is refused; the text is what the
/// CLI and the logs print.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("verifier key {0:?} is not name+id+key")]
    VkeyShape(String),
    #[error("verifier key {0}: the key is not base64")]
    VkeyNotBase64(String),
    #[error("verifier key {0}: unknown signature type")]
    VkeyUnknownType(String),
    #[error("verifier key {name}: a {alg} key is {want} bytes")]
    VkeyLength {
        name: String,
        alg: &'static str,
        want: usize,
    },
    #[error("verifier key {0}: the key id does not match the key")]
    VkeyIdMismatch(String),
    #[error("signing a checkpoint: {0}")]
    Sign(super::sig::CryptoError),
    /// The note's shape is wrong (which part, in words).
    #[error("{0}")]
    Malformed(&'static str),
    #[error("signature by {0}: not base64")]
    SignatureNotBase64(String),
    #[error("signature by {0}: too short")]
    SignatureTooShort(String),
    #[error("the {alg} signature by {name} does not verify")]
    DoesNotVerify { alg: &'static str, name: String },
    #[error("the checkpoint has no {alg} signature by {name}")]
    MissingSignature { alg: &'static str, name: String },
}

/// The body of a checkpoint (C2SP tlog-checkpoint): origin, size and root, each on its line.
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", B64.encode(root))
}

/// Signs `text` as a C2SP signed note, one signature line per signer, each named `name`.
pub fn sign_note(text: &str, name: &str, signers: &[&dyn Signer]) -> Result<String, NoteError> {
    let mut out = format!("{text}\n");
    for s in signers {
        let sig = s.sign(text.as_bytes()).map_err(NoteError::Sign)?;
        let mut blob = key_id(name, s.alg(), s.public_key()).to_vec();
        blob.extend_from_slice(&sig);
        out.push_str(&format!("\u{2014} {name} {}\n", B64.encode(blob)));
    }
    Ok(out)
}

/// A verified checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The whole note, signatures included.
    pub note: String,
}

/// Parses a checkpoint note's text (no signature check).
pub fn parse_checkpoint_text(text: &str) -> Result<(String, u64, Hash), NoteError> {
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .ok_or(NoteError::Malformed("a checkpoint ends in a newline"))?
        .split('\n')
        .collect();
    if lines.len() < 3 {
        return Err(NoteError::Malformed("a checkpoint has an origin, a size and a root"));
    }
    let origin = lines[0];
    if origin.is_empty() {
        return Err(NoteError::Malformed("the checkpoint's origin is empty"));
    }
    let size: u64 = lines[1]
        .parse()
        .map_err(|_| NoteError::Malformed("the checkpoint's size is not a number"))?;
    if size.to_string() != lines[1] {
        return Err(NoteError::Malformed("the checkpoint's size is not canonical"));
    }
    let root = B64
        .decode(lines[2])
        .ok()
        .and_then(|r| Hash::try_from(r).ok())
        .ok_or(NoteError::Malformed("the checkpoint's root is not 32 bytes of base64"))?;
    Ok((origin.to_string(), size, root))
}

/// Verifies a signed checkpoint against `keys`: every key given must have a signature line
/// that verifies (signatures of other keys are ignored), and there must be at least one key.
pub fn verify_checkpoint(note: &str, keys: &[NoteKey]) -> Result<Checkpoint, NoteError> {
    if keys.is_empty() {
        return Err(NoteError::Malformed("no checkpoint keys to verify with"));
    }
    if note.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::Malformed("the checkpoint holds control characters"));
    }
    let (text, sigs) = note
        .rsplit_once("\n\n")
        .ok_or(NoteError::Malformed("the checkpoint has no signatures"))?;
    let text = format!("{text}\n");
    let mut verified = vec![false; keys.len()];
    for line in sigs
        .strip_suffix('\n')
        .ok_or(NoteError::Malformed("the checkpoint ends in a newline"))?
        .split('\n')
    {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or(NoteError::Malformed("a signature line starts with an em dash"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("a signature line has a name and a signature"))?;
        let blob = B64
            .decode(b64)
            .map_err(|_| NoteError::SignatureNotBase64(name.to_string()))?;
        if blob.len() < 5 {
            return Err(NoteError::SignatureTooShort(name.to_string()));
        }
        for (i, k) in keys.iter().enumerate() {
            if k.name == name && k.id() == blob[..4] {
                if !super::sig::verify_aws_lc(k.alg, &k.public, text.as_bytes(), &blob[4..]) {
                    return Err(NoteError::DoesNotVerify {
                        alg: k.alg.name(),
                        name: name.to_string(),
                    });
                }
                verified[i] = true;
            }
        }
    }
    if let Some(i) = verified.iter().position(|v| !v) {
        return Err(NoteError::MissingSignature {
            alg: keys[i].alg.name(),
            name: keys[i].name.clone(),
        });
    }
    let (origin, size, root) = parse_checkpoint_text(&text)?;
    Ok(Checkpoint {
        origin,
        size,
        root,
        note: note.to_string(),
    })
}

const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A C2SP tlog-proof: the entry's index, its inclusion path and the checkpoint note.
pub fn proof_text(index: u64, path: &[Hash], note: &str) -> String {
    let mut out = format!("{PROOF_HEADER}\nindex {index}\n");
    for h in path {
        out.push_str(&B64.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(note);
    out
}

/// Parses a tlog-proof into `(index, path, checkpoint note)`; the extra line is skipped.
pub fn parse_proof(text: &str) -> Result<(u64, Vec<Hash>, String), String> {
    let rest = text
        .strip_prefix(PROOF_HEADER)
        .and_then(|r| r.strip_prefix('\n'))
        .ok_or("not a c2sp.org/tlog-proof@v1")?;
    let (head, note) = rest.split_once("\n\n").ok_or("the proof has no checkpoint")?;
    let mut lines = head.split('\n').peekable();
    if lines.peek().is_some_and(|l| l.starts_with("extra ")) {
        lines.next();
    }
    let index = lines
        .next()
        .and_then(|l| l.strip_prefix("index "))
        .filter(|i| i.parse::<u64>().is_ok_and(|v| v.to_string() == *i))
        .and_then(|i| i.parse().ok())
        .ok_or("the proof has no index line")?;
    let path = lines
        .map(|l| B64.decode(l).ok().and_then(|h| Hash::try_from(h).ok()))
        .collect::<Option<Vec<Hash>>>()
        .ok_or("a proof hash is not 32 bytes of base64")?;
    Ok((index, path, note.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::merkle::leaf_of;
    use crate::integrity::sig::{generate, AwsLcSigner};

    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => Sha256::digest([]).into(),
            1 => d[0],
            n => {
                let k = split(n as u64) as usize;
                node(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    fn tree(n: u64) -> (Tree, Vec<Hash>) {
        let mut t = Tree::default();
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_of(&i.to_be_bytes())).collect();
        for l in &leaves {
            t.push(*l).unwrap();
        }
        (t, leaves)
    }

    #[test]
    fn roots_paths_and_consistency_of_every_small_size_verify() {
        let (t, leaves) = tree(70);
        for n in 0..=70u64 {
            let root = t.root(n).unwrap();
            assert_eq!(root, mth(&leaves[..n as usize]), "root of {n}");
            for i in 0..n {
                let p = t.inclusion(i, n).unwrap();
                assert!(
                    verify_inclusion(&leaves[i as usize], i, n, &p, &root),
                    "path {i} of {n}"
                );
                // (A path alone does not fix the size: §10; the checkpoint does.)
                assert!(!verify_inclusion(&leaves[i as usize], i, i, &p, &root));
                if n > 1 {
                    assert!(!verify_inclusion(&leaves[i as usize], (i + 1) % n, n, &p, &root));
                }
            }
            for m in 0..=n {
                let old = t.root(m).unwrap();
                let c = t.consistency(m, n).unwrap();
                assert!(verify_consistency(m, n, &c, &old, &root), "consistency {m} -> {n}");
                if m > 0 && m < n {
                    let other = t.root(m - 1).unwrap();
                    assert!(
                        !verify_consistency(m, n, &c, &other, &root),
                        "wrong old root {m} -> {n}"
                    );
                    assert!(!verify_consistency(m, n, &c, &old, &other));
                    for j in 0..c.len() {
                        let mut bad = c.clone();
                        bad[j][0] ^= 1;
                        assert!(
                            !verify_consistency(m, n, &bad, &old, &root),
                            "tampered {m} -> {n} at {j}"
                        );
                    }
                    assert!(!verify_consistency(m, n, &c[..c.len() - 1], &old, &root));
                }
            }
        }
        assert!(t.root(71).is_none() && t.inclusion(70, 70).is_none() && t.consistency(3, 71).is_none());
    }

    #[test]
    fn tiles_hold_the_full_subtrees_of_their_level() {
        let (t, leaves) = tree(70_000);
        let l0 = t.tile(0, 3, 256).unwrap();
        assert_eq!(&l0[..32], &leaves[768]);
        let l1 = t.tile(1, 0, 256).unwrap();
        assert_eq!(&l1[32..64], &mth(&leaves[256..512]));
        // 70,000 leaves: 273 full level-0 tiles, a partial of 112; level 1: partial of 17.
        assert!(t.tile(0, 273, 112).is_some() && t.tile(0, 273, 113).is_none());
        assert!(t.tile(1, 1, 17).is_some() && t.tile(1, 1, 18).is_none());
        assert!(t.tile(2, 0, 1).is_some() && t.tile(2, 0, 2).is_none() && t.tile(3, 0, 1).is_none());
    }

    #[test]
    fn tile_paths_have_one_spelling() {
        assert_eq!(tile_index_path(1234067), "x001/x234/067");
        assert_eq!(tile_index_path(5), "005");
        assert_eq!(parse_tile_path("0/x001/x234/067"), Some((Some(0), 1234067, 256)));
        assert_eq!(parse_tile_path("entries/005.p/12"), Some((None, 5, 12)));
        for bad in [
            "0/5",
            "0/0005",
            "00/005",
            "0/x005",
            "64/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/012",
            "0/x000/005",
            "a/000",
            "0/000/",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn checkpoints_verify_with_both_keys_and_fail_on_any_change() {
        let ed = AwsLcSigner::load(SigAlg::Ed25519, &generate(SigAlg::Ed25519).unwrap()).unwrap();
        let pq = AwsLcSigner::load(SigAlg::MlDsa65, &generate(SigAlg::MlDsa65).unwrap()).unwrap();
        let name = "example.test/log";
        let keys: Vec<NoteKey> = [&ed, &pq]
            .iter()
            .map(|s| NoteKey {
                name: name.into(),
                alg: s.alg(),
                public: s.public_key().to_vec(),
            })
            .collect();
        for k in &keys {
            assert_eq!(&NoteKey::parse(&k.vkey()).unwrap(), k);
        }
        let text = checkpoint_text(name, 42, &[7; 32]);
        let note = sign_note(&text, name, &[&ed, &pq]).unwrap();
        let cp = verify_checkpoint(&note, &keys).unwrap();
        assert_eq!((cp.size, cp.root, cp.origin.as_str()), (42, [7; 32], name));
        assert!(verify_checkpoint(&note, &keys[..1]).is_ok());
        // Any changed byte of the text or of a signature line fails.
        for i in 0..note.len() {
            if !note.is_char_boundary(i) || !note.is_char_boundary(i + 1) {
                continue;
            }
            let mut b = note.clone().into_bytes();
            b[i] ^= if b[i] == b'\n' { 0 } else { 1 };
            if b[i] == note.as_bytes()[i] {
                continue;
            }
            if let Ok(s) = String::from_utf8(b) {
                assert!(verify_checkpoint(&s, &keys).is_err(), "byte {i}");
            }
        }
        // A note signed by one key only lacks the other.
        let half = sign_note(&text, name, &[&ed]).unwrap();
        assert!(verify_checkpoint(&half, &keys)
            .unwrap_err()
            .to_string()
            .contains("ml-dsa-65"));
        // A stranger's key with the same name is ignored, so it cannot satisfy ours.
        let other = AwsLcSigner::load(SigAlg::Ed25519, &generate(SigAlg::Ed25519).unwrap()).unwrap();
        let forged = sign_note(&text, name, &[&other]).unwrap();
        assert!(verify_checkpoint(&forged, &keys[..1]).is_err());
        assert!(parse_checkpoint_text("o\n042\nAAAA\n").is_err());
        let proof = proof_text(3, &[[1; 32], [2; 32]], &note);
        assert_eq!(parse_proof(&proof).unwrap(), (3, vec![[1; 32], [2; 32]], note.clone()));
        assert!(parse_proof(&proof.replace("index 3", "index 03")).is_err());
    }

    /// Property (the `tlog` fuzz target's, 4,000 mutated inputs of each format): tile paths,
    /// checkpoint texts, proofs and verifier keys that parse are exactly what the writer of
    /// what they parsed to writes; a mutated signed note never verifies.
    #[test]
    fn property_every_format_has_one_spelling() {
        let ed = AwsLcSigner::load(SigAlg::Ed25519, &generate(SigAlg::Ed25519).unwrap()).unwrap();
        let name = "gw.test/log";
        let keys = [NoteKey {
            name: name.into(),
            alg: SigAlg::Ed25519,
            public: ed.public_key().to_vec(),
        }];
        let text = checkpoint_text(name, 1234, &[7; 32]);
        let note = sign_note(&text, name, &[&ed]).unwrap();
        let proof = proof_text(3, &[[1; 32], [2; 32]], &note);
        let with_extra = proof.replacen("\nindex", "\nextra x\nindex", 1);
        let vkey = keys[0].vkey();
        let tiles = ["0/x001/x234/067", "entries/005.p/12", "63/000"];
        let alphabet = b"0123456789x/.pentries+\n \xe2\x80\x94AZaz=";
        let mut rng = crate::prop::rng(2025);
        for case in 0..4_000 {
            let t = crate::prop::mutate_str(&mut rng, tiles[case % 3], alphabet);
            if let Some((level, n, width)) = parse_tile_path(&t) {
                let level = level.map_or("entries".to_string(), |l| l.to_string());
                let width = if width == TILE_WIDTH {
                    String::new()
                } else {
                    format!(".p/{width}")
                };
                assert_eq!(format!("{level}/{}{width}", tile_index_path(n)), t, "case {case}");
            }
            let c = crate::prop::mutate_str(&mut rng, &text, alphabet);
            if let Ok((origin, size, root)) = parse_checkpoint_text(&c) {
                assert!(
                    c.starts_with(&checkpoint_text(&origin, size, &root)),
                    "case {case}: {c:?}"
                );
            }
            let n = crate::prop::mutate_str(&mut rng, &note, alphabet);
            if n != note {
                assert!(verify_checkpoint(&n, &keys).is_err(), "case {case}: {n:?}");
            }
            let p = crate::prop::mutate_str(&mut rng, if case % 2 == 0 { &proof } else { &with_extra }, alphabet);
            if let Ok((index, path, note)) = parse_proof(&p) {
                let mut lines: Vec<&str> = p.split('\n').collect();
                if lines.get(1).is_some_and(|l| l.starts_with("extra ")) {
                    lines.remove(1);
                }
                assert_eq!(proof_text(index, &path, &note), lines.join("\n"), "case {case}: {p:?}");
            }
            let k = crate::prop::mutate_str(&mut rng, &vkey, alphabet);
            if let Ok(key) = NoteKey::parse(&k) {
                assert_eq!(NoteKey::parse(&key.vkey()).ok(), Some(key), "case {case}: {k:?}");
            }
        }
    }
}
