//! The decision cache: evaluations keyed by everything they depend on — repository, digest (and
//! whether it came from a tag), the material's ETag, the policy version, the trust roots' digest,
//! the witnessed logs' state — so any change to the evidence, the policy or the trust root is a
//! different key and never answered from an old evaluation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::core::policy::Evaluation;

/// A cached evaluation. It expires after the TTL of wall time *and* of the engine's clock (scan
/// ages and certificate windows are judged at the clock's now; a clock that jumps must not be
/// answered from an evaluation made at another time), or at the evaluation's own `valid_until`.
struct Cached {
    at: Instant,
    at_clock: Timestamp,
    eval: Arc<Evaluation>,
}

/// Most entries kept; past it the cache starts over (a bound, not an LRU: keys churn only when
/// evidence or policy change).
const CACHE_MAX: usize = 100_000;

pub type Key = [u8; 32];

/// The key of an evaluation: a hash of every input, NUL-separated.
pub fn key(parts: &[&str]) -> Key {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

pub struct DecisionCache {
    ttl: Duration,
    map: Mutex<HashMap<Key, Cached>>,
}

impl DecisionCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, map: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &Key, now: Timestamp) -> Option<Arc<Evaluation>> {
        let ttl = SignedDuration::try_from(self.ttl).unwrap_or(SignedDuration::ZERO);
        let c = self.map.lock().unwrap_or_else(|e| e.into_inner());
        c.get(key)
            .filter(|c| c.at.elapsed() < self.ttl && now.duration_since(c.at_clock).abs() < ttl)
            // an evaluation that rested on something with an end (a summary's maxAge) ends with it
            .filter(|c| c.eval.valid_until.is_none_or(|u| now < u))
            .map(|c| c.eval.clone())
    }

    pub fn insert(&self, key: Key, now: Timestamp, eval: Arc<Evaluation>) {
        let mut c = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(key, Cached { at: Instant::now(), at_clock: now, eval });
    }

    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Evidence established at admission (key-signed items verified with a policy's key, items
/// verified under another trust root), kept across evaluations: keyed by bundle, trust root,
/// key fingerprint and image, so each is verified once.
pub struct EvidenceCache {
    map: Mutex<HashMap<String, Option<crate::core::evidence::Evidence>>>,
}

const EVIDENCE_MAX: usize = 50_000;

impl EvidenceCache {
    pub fn new() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }
}

impl Default for EvidenceCache {
    fn default() -> Self {
        Self::new()
    }
}

impl crate::core::policy::evaluate::EvidenceMemo for EvidenceCache {
    fn get(&self, key: &str) -> Option<Option<crate::core::evidence::Evidence>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }
    fn put(&self, key: String, evidence: Option<crate::core::evidence::Evidence>) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= EVIDENCE_MAX {
            m.clear();
        }
        m.insert(key, evidence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_by_wall_time_and_by_the_engines_clock() {
        let c = DecisionCache::new(Duration::from_secs(60));
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let k = key(&["r", "sha256:aa", "etag"]);
        assert_ne!(k, key(&["r", "sha256:aa", "etag2"]));
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]), "parts are separated");
        c.insert(k, t0, Arc::new(Evaluation::default()));
        assert!(c.get(&k, t0).is_some());
        assert!(c.get(&k, t0.checked_add(SignedDuration::from_secs(61)).unwrap()).is_none(), "the clock jumped past the TTL");
        assert!(c.get(&k, t0.checked_sub(SignedDuration::from_secs(61)).unwrap()).is_none(), "or back");
    }
}
