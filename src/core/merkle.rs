//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashes, roots, and proof *generation* at any
//! tree size, over any source of complete-subtree hashes ([`HashSource`]): leaves in memory, or
//! a log's C2SP tlog-tiles (the witness computes consistency proofs from tiles).
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
pub fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[0:n]) of RFC 6962 §2.1 (the empty tree hashes to SHA-256 of nothing).
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Sha256::digest([]).into();
    }
    let mut o = SliceTree(leaves);
    subtree(&mut o, 0, leaves.len() as u64).expect("in range")
}

/// Where subtree hashes come from: a list of leaves in memory, a log's tiles, …
pub trait HashSource {
    type Error;
    /// MTH(D[start : start + 2^height]) — a complete subtree (the source guarantees it lies
    /// within the tree it describes).
    fn complete(&mut self, start: u64, height: u32) -> Result<Hash, Self::Error>;
}

/// MTH(D[a:b]) for any non-empty range, from complete subtrees (RFC 6962's recursion).
pub fn subtree<S: HashSource>(src: &mut S, a: u64, b: u64) -> Result<Hash, S::Error> {
    let n = b - a;
    if n.is_power_of_two() && a.is_multiple_of(n) {
        return src.complete(a, n.trailing_zeros());
    }
    let k = split(n);
    let (l, r) = (subtree(src, a, a + k)?, subtree(src, a + k, b)?);
    Ok(node_hash(&l, &r))
}

/// PATH(m, D[0:n]) of RFC 6962 §2.1.1 from a hash source.
pub fn inclusion_proof_from<S: HashSource>(src: &mut S, m: u64, n: u64) -> Result<Vec<Hash>, S::Error> {
    fn path<S: HashSource>(src: &mut S, m: u64, a: u64, b: u64, out: &mut Vec<Hash>) -> Result<(), S::Error> {
        let n = b - a;
        if n <= 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            path(src, m, a, a + k, out)?;
            out.push(subtree(src, a + k, b)?);
        } else {
            path(src, m - k, a + k, b, out)?;
            out.push(subtree(src, a, a + k)?);
        }
        Ok(())
    }
    let mut out = vec![];
    if m < n {
        path(src, m, 0, n, &mut out)?;
    }
    Ok(out)
}

/// PROOF(m, D[0:n]) of RFC 6962 §2.1.2 from a hash source.
pub fn consistency_proof_from<S: HashSource>(src: &mut S, m: u64, n: u64) -> Result<Vec<Hash>, S::Error> {
    fn sub<S: HashSource>(src: &mut S, m: u64, a: u64, b: u64, first: bool, out: &mut Vec<Hash>) -> Result<(), S::Error> {
        let n = b - a;
        if m == n {
            if !first {
                out.push(subtree(src, a, b)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            sub(src, m, a, a + k, first, out)?;
            out.push(subtree(src, a + k, b)?);
        } else {
            sub(src, m - k, a + k, b, false, out)?;
            out.push(subtree(src, a, a + k)?);
        }
        Ok(())
    }
    let mut out = vec![];
    if m > 0 && m < n {
        sub(src, m, 0, n, true, &mut out)?;
    }
    Ok(out)
}

/// Leaves in memory as a hash source.
struct SliceTree<'a>(&'a [Hash]);

impl HashSource for SliceTree<'_> {
    type Error = std::convert::Infallible;
    fn complete(&mut self, start: u64, height: u32) -> Result<Hash, Self::Error> {
        let (a, b) = (start as usize, (start + (1u64 << height)) as usize);
        if height == 0 {
            return Ok(self.0[a]);
        }
        let mid = a + (1usize << (height - 1));
        let l = self.complete(a as u64, height - 1)?;
        let r = self.complete(mid as u64, height - 1)?;
        debug_assert!(b <= self.0.len());
        Ok(node_hash(&l, &r))
    }
}

/// PATH(m, D[0:n]) of RFC 6962 §2.1.1: the audit path for leaf `m` in the tree of `leaves`.
pub fn inclusion_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let Ok(p) = inclusion_proof_from(&mut SliceTree(leaves), m as u64, leaves.len() as u64);
    p
}

/// PROOF(m, D[0:n]) of RFC 6962 §2.1.2: consistency between sizes `m` and `leaves.len()`.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let Ok(p) = consistency_proof_from(&mut SliceTree(leaves), m as u64, leaves.len() as u64);
    p
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
