//! RFC 6962 proofs (sigstore-merkle's verifiers, plus transparency-dev's empty-tree rule) and the
//! witness's decision for a new verified checkpoint.

use sigstore_types::Sha256Hash;

use super::{Hash, MAX_PROOF, TlogError, TlogErrorKind, Verified, err};

fn hashes(v: &[Hash]) -> Vec<Sha256Hash> {
    v.iter().map(|h| Sha256Hash::new(*h)).collect()
}

/// RFC 6962 §2.1.2 consistency between (m, old) and (n, new).
pub fn verify_consistency(m: u64, old: &Hash, n: u64, new: &Hash, proof: &[Hash]) -> Result<(), String> {
    if proof.len() > MAX_PROOF {
        return Err(format!("consistency proof of {} hashes", proof.len()));
    }
    // transparency-dev's rule (its vectors test it): a proof from the empty tree proves nothing
    // and is refused unless both trees are empty; sigstore-merkle accepts any such proof.
    if m == 0 {
        return if n == 0 && proof.is_empty() && old == new {
            Ok(())
        } else {
            Err("consistency from the empty tree proves nothing".into())
        };
    }
    sigstore_merkle::verify_consistency_proof(m, n, &hashes(proof), &Sha256Hash::new(*old), &Sha256Hash::new(*new))
        .map_err(|e| e.to_string())
}

/// RFC 6962 §2.1.1 inclusion of `leaf` (a leaf hash) at `index` in (size, root).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, root: &Hash, proof: &[Hash]) -> Result<(), String> {
    if proof.len() > MAX_PROOF {
        return Err(format!("inclusion proof of {} hashes", proof.len()));
    }
    sigstore_merkle::verify_inclusion_proof(&Sha256Hash::new(*leaf), index, size, &hashes(proof), &Sha256Hash::new(*root))
        .map_err(|e| e.to_string())
}

/// What the witness does with a new verified checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing witnessed yet: trust on first use.
    First,
    /// Same size and root as witnessed.
    Unchanged,
    /// Larger, and the consistency proof from the witnessed size verified.
    Advanced { from: u64 },
    /// Smaller than witnessed, and proven consistent with it: a lagging cache or mirror in front
    /// of the log, not misbehaviour. Nothing is stored.
    Stale { witnessed: u64 },
}

/// The witness's decision. `proof` is the consistency proof between the witnessed size and
/// `new.size` (from the smaller to the larger): required when the tree grew; when it shrank, a
/// proof that verifies makes the smaller checkpoint merely stale. Misbehaviour comes back as
/// `SplitView` (signed evidence of two views); a smaller tree without a proof is `Rollback`.
pub fn witness_step(prev: Option<(u64, &Hash)>, new: &Verified, proof: Option<&[Hash]>) -> Result<Step, TlogError> {
    let Some((m, old)) = prev else { return Ok(Step::First) };
    if new.size < m {
        let Some(proof) = proof else {
            return Err(err(TlogErrorKind::Rollback, format!("log presents size {} after size {m} was witnessed", new.size)));
        };
        return match verify_consistency(new.size, &new.root, m, old, proof) {
            Ok(()) => Ok(Step::Stale { witnessed: m }),
            Err(e) => Err(err(
                TlogErrorKind::SplitView,
                format!(
                    "size {} (root {}) is not consistent with witnessed size {m} (root {}): {e}",
                    new.size,
                    hex::encode(new.root),
                    hex::encode(old)
                ),
            )),
        };
    }
    if new.size == m {
        return if &new.root == old {
            Ok(Step::Unchanged)
        } else {
            Err(err(
                TlogErrorKind::SplitView,
                format!("two roots for size {m}: witnessed {} now {}", hex::encode(old), hex::encode(new.root)),
            ))
        };
    }
    let proof = proof.ok_or_else(|| err(TlogErrorKind::Fetch, format!("no consistency proof from {m} to {}", new.size)))?;
    verify_consistency(m, old, new.size, &new.root, proof).map_err(|e| {
        err(
            TlogErrorKind::SplitView,
            format!(
                "size {} (root {}) is not consistent with witnessed size {m} (root {}): {e}",
                new.size,
                hex::encode(new.root),
                hex::encode(old)
            ),
        )
    })?;
    Ok(Step::Advanced { from: m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_steps() {
        use crate::core::merkle;
        let leaves: Vec<Hash> = (0..20u32).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let cp = |n: usize, root: Hash| Verified { origin: "o".into(), size: n as u64, root, text: String::new() };
        let r = |n: usize| merkle::root(&leaves[..n]);
        assert_eq!(witness_step(None, &cp(5, r(5)), None).unwrap(), Step::First);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(5, r(5)), None).unwrap(), Step::Unchanged);
        let p = merkle::consistency_proof(5, &leaves[..12]);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(12, r(12)), Some(&p)).unwrap(), Step::Advanced { from: 5 });
        assert_eq!(witness_step(Some((12, &r(12))), &cp(5, r(5)), None).unwrap_err().kind, TlogErrorKind::Rollback);
        // a smaller checkpoint proven consistent with the witnessed one is stale, not an alarm
        let back = merkle::consistency_proof(5, &leaves[..12]);
        assert_eq!(witness_step(Some((12, &r(12))), &cp(5, r(5)), Some(&back)).unwrap(), Step::Stale { witnessed: 12 });
        // …and one that is not consistent is a split view
        assert_eq!(witness_step(Some((12, &r(12))), &cp(5, r(6)), Some(&back)).unwrap_err().kind, TlogErrorKind::SplitView);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(5, r(6)), None).unwrap_err().kind, TlogErrorKind::SplitView);
        let mut forked = leaves[..12].to_vec();
        forked[3] = merkle::leaf_hash(b"evil");
        let fp = merkle::consistency_proof(5, &forked);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(12, merkle::root(&forked)), Some(&fp)).unwrap_err().kind, TlogErrorKind::SplitView);
    }
}
