//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashing, the tree head, inclusion proofs
//! (audit paths) and their verification. Used by batch signatures (`docs/batch-signing.md` §3-4).

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The most leaves a batch may have (a verifier rejects larger trees).
pub const MAX_LEAVES: u32 = 1 << 16;

/// `H(0x00 || salt || base)`: a response's leaf.
pub fn leaf(salt: &[u8; 16], base: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(salt);
    h.update(base);
    h.finalize().into()
}

/// `H(0x00 || data)`: an RFC 6962 leaf (the anchor log's records).
pub fn leaf_of(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `H(0x01 || left || right)`.
pub fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The tree head of `leaves` (already leaf hashes). `None` for no leaves.
pub fn root(leaves: &[Hash]) -> Option<Hash> {
    match leaves.len() {
        0 => None,
        1 => Some(leaves[0]),
        n => {
            let k = split(n);
            Some(node(&root(&leaves[..k])?, &root(&leaves[k..])?))
        }
    }
}

/// Every leaf's audit path (RFC 9162 §2.1.3.1) and the root, in one pass over the tree:
/// `O(n log n)` hashes are not needed, each inner node is hashed once.
pub fn root_and_paths(leaves: &[Hash]) -> Option<(Hash, Vec<Vec<Hash>>)> {
    if leaves.is_empty() {
        return None;
    }
    let mut paths = vec![Vec::new(); leaves.len()];
    let r = build(leaves, 0, &mut paths);
    Some((r, paths))
}

/// The subtree hash of `leaves` (starting at index `offset`), pushing each sibling onto the
/// paths of the leaves below it, bottom-up.
fn build(leaves: &[Hash], offset: usize, paths: &mut [Vec<Hash>]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = split(leaves.len());
    let left = build(&leaves[..k], offset, paths);
    let right = build(&leaves[k..], offset + k, paths);
    for p in &mut paths[offset..offset + k] {
        p.push(right);
    }
    for p in &mut paths[offset + k..offset + leaves.len()] {
        p.push(left);
    }
    node(&left, &right)
}

/// The root of `leaves` and the audit path of leaf `index` alone (RFC 9162 §2.1.3.1).
pub fn root_and_path(leaves: &[Hash], index: usize) -> Option<(Hash, Vec<Hash>)> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let r = path_of(leaves, index, &mut path);
    Some((r, path))
}

fn path_of(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = split(leaves.len());
    if index < k {
        let left = path_of(&leaves[..k], index, path);
        let right = root(&leaves[k..]).expect("non-empty");
        path.push(right);
        node(&left, &right)
    } else {
        let right = path_of(&leaves[k..], index - k, path);
        let left = root(&leaves[..k]).expect("non-empty");
        path.push(left);
        node(&left, &right)
    }
}

/// The root that `leaf` at `index` of a tree of `size` leaves proves with `path` (RFC 9162
/// §2.1.3.2); `None` for an index outside the tree, a size over [`MAX_LEAVES`] or a path whose
/// length does not fit the index and size.
pub fn root_from_path(leaf: &Hash, index: u32, size: u32, path: &[Hash]) -> Option<Hash> {
    if size == 0 || size > MAX_LEAVES || index >= size {
        return None;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf(&[i as u8; 16], format!("base {i}").as_bytes()))
            .collect()
    }

    /// RFC 6962's definition, written out again: MTH(D[n]) = H(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
    fn mth(d: &[Hash]) -> Hash {
        if d.len() == 1 {
            return d[0];
        }
        let mut k = 1;
        while 2 * k < d.len() {
            k *= 2;
        }
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(mth(&d[..k]));
        h.update(mth(&d[k..]));
        h.finalize().into()
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves_the_root() {
        for n in 1..=70 {
            let l = leaves(n);
            let (r, paths) = root_and_paths(&l).unwrap();
            assert_eq!(r, mth(&l), "n={n}");
            assert_eq!(Some(r), root(&l));
            for (i, p) in paths.iter().enumerate() {
                assert_eq!(root_from_path(&l[i], i as u32, n as u32, p), Some(r), "n={n} i={i}");
                assert_eq!(root_and_path(&l, i), Some((r, p.clone())), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn a_wrong_index_size_path_or_leaf_proves_nothing() {
        let l = leaves(13);
        let (r, paths) = root_and_paths(&l).unwrap();
        let p = &paths[5];
        assert_eq!(root_from_path(&l[5], 5, 13, p), Some(r));
        assert_ne!(root_from_path(&l[5], 4, 13, p), Some(r));
        assert_ne!(root_from_path(&l[5], 6, 13, p), Some(r));
        assert_eq!(root_from_path(&l[5], 13, 13, p), None, "index outside the tree");
        // A size whose path for this index has another length; sizes with the same path shape
        // (13 and 14 for index 5) are told apart by the signed block, which holds the size.
        assert_eq!(root_from_path(&l[5], 5, 6, p), None);
        assert_ne!(root_from_path(&l[6], 5, 13, p), Some(r));
        assert_eq!(root_from_path(&l[5], 5, 13, &p[..p.len() - 1]), None, "short path");
        let mut long = p.clone();
        long.push([0; 32]);
        assert_eq!(root_from_path(&l[5], 5, 13, &long), None, "long path");
        let mut flipped = p.clone();
        flipped[1][7] ^= 1;
        assert_ne!(root_from_path(&l[5], 5, 13, &flipped), Some(r));
        assert_eq!(root_from_path(&l[0], 0, MAX_LEAVES + 1, &[]), None);
        assert_eq!(root_from_path(&l[0], 0, 1, &[]), Some(l[0]));
    }

    #[test]
    fn leaves_and_nodes_are_domain_separated() {
        let a = leaf(&[0; 16], b"x");
        let b = leaf(&[1; 16], b"y");
        // A node's preimage read as a leaf's: 0x01 || a || b is not 0x00 || salt || base.
        let mut as_leaf_input = Vec::new();
        as_leaf_input.extend_from_slice(&a[16..]);
        as_leaf_input.extend_from_slice(&b);
        let salt: [u8; 16] = a[..16].try_into().unwrap();
        assert_ne!(leaf(&salt, &as_leaf_input), node(&a, &b));
    }
}
