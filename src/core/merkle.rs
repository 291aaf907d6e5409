//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashes, roots, and proof *generation* over a
//! list of leaf hashes at any tree size.
//!
//! Written here (not taken from `ct-merkle`) because a transparency log's API must prove inclusion
//! and consistency between *arbitrary historical* sizes (`/api/v1/log/proof?firstSize=&lastSize=`);
//! `ct-merkle` proves only against the current tree. Tests check these proofs with `ct-merkle`'s
//! independent verifier.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[0:n]) of RFC 6962 §2.1 (the empty tree hashes to SHA-256 of nothing).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[0:n]) of RFC 6962 §2.1.1: the audit path for leaf `m` in the tree of `leaves`.
pub fn inclusion_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || m >= n {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = inclusion_proof(m, &leaves[..k]);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = inclusion_proof(m - k, &leaves[k..]);
        p.push(root(&leaves[..k]));
        p
    }
}

/// PROOF(m, D[0:n]) of RFC 6962 §2.1.2: consistency between sizes `m` and `leaves.len()`.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if m == 0 || m >= n {
        return vec![];
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![root(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], b);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(root(&leaves[..k]));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use sha2_11::Sha256 as Sha256v11; // ct-merkle uses digest 0.11

    fn leaves(n: usize) -> (Vec<Vec<u8>>, Vec<Hash>) {
        let data: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf {i}").into_bytes()).collect();
        let hashes = data.iter().map(|d| leaf_hash(d)).collect();
        (data, hashes)
    }

    #[test]
    fn roots_and_proofs_agree_with_ct_merkle() {
        for n in 1..=33usize {
            let (data, hashes) = leaves(n);
            let mut t: MemoryBackedTree<Sha256v11, Vec<u8>> = MemoryBackedTree::new();
            for d in &data {
                t.push(d.clone());
            }
            let r = t.root();
            assert_eq!(r.as_bytes().as_slice(), root(&hashes), "root n={n}");
            for (m, leaf) in data.iter().enumerate() {
                let ours = inclusion_proof(m, &hashes);
                let proof = ct_merkle::InclusionProof::<Sha256v11>::from_digests(ours.iter().map(|h| h.into()));
                r.verify_inclusion(leaf, m as u64, &proof).unwrap_or_else(|e| panic!("inclusion n={n} m={m}: {e:?}"));
            }
            for m in 1..n {
                let mut old: MemoryBackedTree<Sha256v11, Vec<u8>> = MemoryBackedTree::new();
                for d in &data[..m] {
                    old.push(d.clone());
                }
                let ours = consistency_proof(m, &hashes);
                let proof = ct_merkle::ConsistencyProof::<Sha256v11>::from_digests(ours.iter().map(|h| h.into()));
                r.verify_consistency(&old.root(), &proof).unwrap_or_else(|e| panic!("consistency {m}->{n}: {e:?}"));
            }
        }
    }

    #[test]
    fn rfc6962_known_values() {
        // The empty tree and the one-leaf tree of the empty string (RFC 6962 test vectors, as used
        // by certificate-transparency-go).
        assert_eq!(hex::encode(root(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }
}
