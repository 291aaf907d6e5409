//! Proof verification at transparency-log scale: a consistency proof between sizes 10^6 and
//! 10^9 and an inclusion proof in a 10^9-leaf tree, verified by the witness's code path
//! (`core::tlog`, sigstore-merkle underneath).
//!
//! A 10^9-leaf tree cannot be built here, so the proofs are generated over a tree whose leaves
//! are all equal: the hash of any subtree then depends only on its size, so RFC 6962's PATH and
//! PROOF (the same recursion as `core::merkle`) need O(log² n) hashes to produce. The proofs
//! are real proofs of that tree; verifying them costs what verifying any proof of those sizes
//! costs. The generator is checked against `core::merkle` on small trees first.
//!
//! `cargo bench --bench tlog`

use std::collections::HashMap;
use std::time::Instant;

use trustmirror::core::merkle::{self, Hash, leaf_hash, node_hash};
use trustmirror::core::tlog::{verify_consistency, verify_inclusion};

struct Uniform {
    leaf: Hash,
    memo: HashMap<u64, Hash>,
}

fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

impl Uniform {
    fn mth(&mut self, n: u64) -> Hash {
        if n == 1 {
            return self.leaf;
        }
        if let Some(h) = self.memo.get(&n) {
            return *h;
        }
        let k = split(n);
        let (l, r) = (self.mth(k), self.mth(n - k));
        let h = node_hash(&l, &r);
        self.memo.insert(n, h);
        h
    }
    fn path(&mut self, m: u64, n: u64) -> Vec<Hash> {
        if n <= 1 {
            return vec![];
        }
        let k = split(n);
        if m < k {
            let mut p = self.path(m, k);
            p.push(self.mth(n - k));
            p
        } else {
            let mut p = self.path(m - k, n - k);
            p.push(self.mth(k));
            p
        }
    }
    fn subproof(&mut self, m: u64, n: u64, b: bool) -> Vec<Hash> {
        if m == n {
            return if b { vec![] } else { vec![self.mth(n)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = self.subproof(m, k, b);
            p.push(self.mth(n - k));
            p
        } else {
            let mut p = self.subproof(m - k, n - k, false);
            p.push(self.mth(k));
            p
        }
    }
}

fn time<F: FnMut()>(iters: u32, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / iters as f64
}

fn main() {
    let leaf = leaf_hash(b"entry");
    let mut u = Uniform { leaf, memo: HashMap::new() };
    // the generator agrees with core::merkle
    for n in 1..=70u64 {
        let leaves = vec![leaf; n as usize];
        assert_eq!(u.mth(n), merkle::root(&leaves));
        for m in 0..n {
            assert_eq!(u.path(m, n), merkle::inclusion_proof(m as usize, &leaves));
            if m > 0 {
                assert_eq!(u.subproof(m, n, true), merkle::consistency_proof(m as usize, &leaves));
            }
        }
    }
    let (m, n) = (1_000_000u64, 1_000_000_000u64);
    let t = Instant::now();
    let (old, new) = (u.mth(m), u.mth(n));
    let cproof = u.subproof(m, n, true);
    let idx = 987_654_321u64;
    let iproof = u.path(idx, n);
    let gen_us = t.elapsed().as_secs_f64() * 1e6;
    verify_consistency(m, &old, n, &new, &cproof).expect("valid consistency proof");
    verify_inclusion(&leaf, idx, n, &new, &iproof).expect("valid inclusion proof");
    let mut bad = cproof.clone();
    bad[3][0] ^= 1;
    assert!(verify_consistency(m, &old, n, &new, &bad).is_err());

    let c = time(20_000, || verify_consistency(m, &old, n, &new, &cproof).unwrap());
    let i = time(20_000, || verify_inclusion(&leaf, idx, n, &new, &iproof).unwrap());
    println!("proofs generated in {gen_us:.0} µs (uniform-leaf tree)");
    println!("consistency 10^6 → 10^9: {} hashes ({} bytes), verify {c:.2} µs", cproof.len(), cproof.len() * 32);
    println!("inclusion at {idx} in 10^9: {} hashes ({} bytes), verify {i:.2} µs", iproof.len(), iproof.len() * 32);
    // steady-state cost per witness sync as the log grows: proof hashes from n to n + 1000
    for n in [1_000u64, 1_000_000, 1_000_000_000, 1_000_000_000_000] {
        let p = u.subproof(n, n + 1000, true);
        let (o, w) = (u.mth(n), u.mth(n + 1000));
        let t = time(10_000, || verify_consistency(n, &o, n + 1000, &w, &p).unwrap());
        println!("sync after 1,000 new entries at size {n:>16}: proof of {:>2} hashes, verify {t:.2} µs", p.len());
    }
}
