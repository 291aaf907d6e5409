//! The transparency-log witness: RFC 6962 proof vectors (transparency-dev) and our own mutated
//! proofs cross-checked with ct-merkle; the witness against the testbed's Rekor-compatible log
//! (growth, fork, rollback, another key); C2SP tlog-witness add-checkpoint over HTTP; bundles'
//! checkpoints against the witnessed history, with a k-of-n witness policy.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use trustmirror::core::clock::SystemClock;
use trustmirror::core::merkle;
use trustmirror::core::tlog::{self, Cosigner, Hash, HistoryVerdict, TlogErrorKind, Witness, WitnessPolicy};
use trustmirror::core::verify::TrustedMaterial;
use trustmirror::mirror::tlog_mirror::TlogMirror;
use trustmirror::store::Store;
use trustmirror::testbed::{Testbed, TestbedOptions};

fn b64h(s: &str) -> Hash {
    B64.decode(s).unwrap().try_into().unwrap()
}

fn vectors(dir: &str) -> Vec<(String, Value)> {
    let mut out = vec![];
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/merkle").join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push((p.display().to_string(), serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()));
            }
        }
    }
    out
}

/// A 32-byte hash from a vector. The `additional` vectors use short placeholder roots ("don't
/// care") to exercise the size/equality rules; those map to their SHA-256, which keeps equality.
fn try_h(v: &Value) -> Option<Hash> {
    use sha2::Digest;
    let b = v.as_str().and_then(|s| B64.decode(s).ok())?;
    Some(b.as_slice().try_into().unwrap_or_else(|_| sha2::Sha256::digest(&b).into()))
}

/// A proof's hashes; None when one is not 32 bytes (a malformed vector).
fn try_hashes(v: &Value) -> Option<Vec<Hash>> {
    v.as_array().into_iter().flatten().map(try_h).collect()
}

fn hashes(v: &Value) -> Vec<Hash> {
    try_hashes(v).expect("32-byte hashes")
}

/// The RFC 6962 reference tree's leaves (transparency-dev's happy paths are over these).
fn reference_leaves() -> Vec<Hash> {
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .iter()
        .map(|h| merkle::leaf_hash(&hex::decode(h).unwrap()))
        .collect()
}

#[test]
fn transparency_dev_vectors_and_our_generator() {
    let leaves = reference_leaves();
    let (mut n_ok, mut n_bad, mut generated) = (0, 0, 0);
    for (path, v) in vectors("consistency") {
        let (m, n) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        let res = match (try_h(&v["root1"]), try_h(&v["root2"]), try_hashes(&v["proof"])) {
            (Some(r1), Some(r2), Some(p)) => tlog::verify_consistency(m, &r1, n, &r2, &p),
            _ => Err("a root or proof hash is not 32 bytes".into()),
        };
        assert_eq!(res.is_err(), v["wantErr"].as_bool().unwrap(), "{path}: {res:?}");
        if v["wantErr"] == false {
            n_ok += 1;
            if n as usize <= leaves.len() && m > 0 && m < n {
                // our generator produces exactly the reference proof
                assert_eq!(merkle::consistency_proof(m as usize, &leaves[..n as usize]), hashes(&v["proof"]), "{path}");
                assert_eq!(merkle::root(&leaves[..n as usize]), b64h(v["root2"].as_str().unwrap()), "{path}");
                generated += 1;
            }
        } else {
            n_bad += 1;
        }
    }
    for (path, v) in vectors("inclusion") {
        let (i, n) = (v["leafIdx"].as_u64().unwrap(), v["treeSize"].as_u64().unwrap());
        let leaf = v["leafHash"].as_str().map(|s| B64.decode(s).unwrap()).unwrap_or_default();
        let Ok(leaf) = <Hash>::try_from(leaf.as_slice()) else {
            assert!(v["wantErr"].as_bool().unwrap(), "{path}: malformed leaf in a valid case");
            n_bad += 1;
            continue;
        };
        let root = v["root"].as_str().map(|s| B64.decode(s).unwrap()).unwrap_or_default();
        let res = match (<Hash>::try_from(root.as_slice()), try_hashes(&v["proof"])) {
            (Ok(root), Some(p)) => tlog::verify_inclusion(&leaf, i, n, &root, &p),
            _ => Err("a root or proof hash is not 32 bytes".into()),
        };
        assert_eq!(res.is_err(), v["wantErr"].as_bool().unwrap(), "{path}: {res:?}");
        if v["wantErr"] == false {
            n_ok += 1;
            if n as usize <= leaves.len() && n > 1 {
                assert_eq!(merkle::inclusion_proof(i as usize, &leaves[..n as usize]), hashes(&v["proof"]), "{path}");
                generated += 1;
            }
        } else {
            n_bad += 1;
        }
    }
    assert_eq!((n_ok, n_bad), (13, 182), "every vector ran");
    assert!(generated >= 8, "our generator reproduced {generated} reference proofs");
}

#[test]
fn mutated_proofs_are_refused_by_us_and_by_ct_merkle() {
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use sha2_11::Sha256 as S11;
    let mut rng_state = 0x2545F4914F6CDD1Du64;
    let mut rnd = move |n: usize| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        (rng_state as usize) % n.max(1)
    };
    let mut checked = 0;
    for n in 2..=48usize {
        let data: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
        let leaves: Vec<Hash> = data.iter().map(|d| merkle::leaf_hash(d)).collect();
        let mut t: MemoryBackedTree<S11, Vec<u8>> = MemoryBackedTree::new();
        for d in &data {
            t.push(d.clone());
        }
        let root = merkle::root(&leaves);
        for m in 1..n {
            let proof = merkle::consistency_proof(m, &leaves);
            let old = merkle::root(&leaves[..m]);
            tlog::verify_consistency(m as u64, &old, n as u64, &root, &proof).unwrap();
            // mutations
            let mut muts: Vec<(u64, Hash, u64, Hash, Vec<Hash>)> = vec![];
            if !proof.is_empty() {
                let mut p = proof.clone();
                let k = rnd(p.len());
                p[k][rnd(32)] ^= 1 << rnd(8);
                muts.push((m as u64, old, n as u64, root, p));
                let mut p = proof.clone();
                p.remove(rnd(proof.len()));
                muts.push((m as u64, old, n as u64, root, p));
            }
            let mut p = proof.clone();
            p.push(old);
            muts.push((m as u64, old, n as u64, root, p));
            muts.push((m as u64 + 1, old, n as u64, root, proof.clone()));
            muts.push((m as u64, root, n as u64, old, proof.clone()));
            let mut r2 = root;
            r2[0] ^= 0x80;
            muts.push((m as u64, old, n as u64, r2, proof.clone()));
            for (mm, o, nn, r, p) in muts {
                if mm == nn && o == r {
                    continue;
                }
                assert!(tlog::verify_consistency(mm, &o, nn, &r, &p).is_err(), "n={n} m={m} mutated proof accepted");
                checked += 1;
            }
        }
        for i in 0..n {
            let proof = merkle::inclusion_proof(i, &leaves);
            tlog::verify_inclusion(&leaves[i], i as u64, n as u64, &root, &proof).unwrap();
            // the independent verifier agrees on the valid proof…
            let cp = ct_merkle::InclusionProof::<S11>::from_digests(proof.iter().map(|h| h.into()));
            t.root().verify_inclusion(&data[i], i as u64, &cp).unwrap();
            // …and on a mutated one
            let mut bad = proof.clone();
            if !bad.is_empty() {
                let k = rnd(bad.len());
                bad[k][rnd(32)] ^= 1;
                assert!(tlog::verify_inclusion(&leaves[i], i as u64, n as u64, &root, &bad).is_err());
                let cb = ct_merkle::InclusionProof::<S11>::from_digests(bad.iter().map(|h| h.into()));
                assert!(t.root().verify_inclusion(&data[i], i as u64, &cb).is_err());
                checked += 1;
            }
            assert!(tlog::verify_inclusion(&leaves[i], ((i + 1) % n) as u64, n as u64, &root, &proof).is_err() || n == 1);
        }
    }
    assert!(checked > 5000, "{checked}");
}

struct Env {
    tb: Testbed,
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    m: Arc<TlogMirror>,
    witness_vkey: String,
}

async fn env() -> Env {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path().join("tb"));
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.redb")).unwrap());
    let tm = Arc::new(TrustedMaterial::from_json("testbed", &std::fs::read(&tb.env["TRUSTED_ROOT"]).unwrap()).unwrap());
    let w = Arc::new(Witness::from_seed("witness.internal/w1", &[42; 32]).unwrap());
    let witness_vkey = w.vkey();
    let m = Arc::new(TlogMirror::new(store.clone(), Arc::new(SystemClock), Arc::new(move || tm.clone()), w));
    Env { tb, _dir: dir, store, m, witness_vkey }
}

fn log_id(e: &Env) -> String {
    hex::encode(e.tb.stack.rekor.lock().unwrap().log_id())
}

fn append(e: &Env, n: usize) {
    let mut r = e.tb.stack.rekor.lock().unwrap();
    for i in 0..n {
        r.append(&json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {"n": i, "t": rand::random::<u64>()}}), 1_700_000_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnessing_growth_costs_one_request_when_unchanged_and_two_when_grown() {
    let e = env().await;
    let log = log_id(&e);
    let r = e.m.sync().await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].outcome, "first", "{r:?}");
    let n0 = e.m.requests();
    let r = e.m.sync().await;
    assert_eq!(r[0].outcome, "unchanged");
    assert_eq!(e.m.requests() - n0, 1, "steady state: one request");
    append(&e, 37);
    let n1 = e.m.requests();
    let r = e.m.sync().await;
    assert!(r[0].outcome.starts_with("advanced from"), "{r:?}");
    assert_eq!(e.m.requests() - n1, 2, "grown: checkpoint + one proof");
    // the stored checkpoint carries the log's signature and our cosignature
    let st = e.store.tlog_state(&log).unwrap().unwrap();
    let latest = st.latest.unwrap();
    assert_eq!(latest.size, e.tb.stack.rekor.lock().unwrap().size());
    let c = Cosigner::from_vkey(&e.witness_vkey).unwrap();
    assert!(c.cosigned(&latest.text).is_some(), "{}", latest.text);
    let p = WitnessPolicy::parse(&format!("witness me {}\nquorum me\n", e.witness_vkey)).unwrap();
    assert!(p.evaluate(&latest.text).1);
    assert_eq!(e.store.tlog_history(&log).unwrap().len(), 2, "history of witnessed checkpoints");
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forking_log_raises_the_alarm_keeps_evidence_and_stays_untrusted() {
    let e = env().await;
    let log = log_id(&e);
    append(&e, 5);
    assert_eq!(e.m.sync().await[0].outcome, "first");
    // the log forks: some clients get a view with an extra entry; the main view goes on
    reqwest::Client::new().post(format!("{}/testbed/rekor/fork", e.tb.base_url())).send().await.unwrap();
    e.tb.stack.rekor.lock().unwrap().serve_fork = false;
    append(&e, 1); // main: same size as the fork, another last entry
    assert!(e.m.sync().await[0].outcome.starts_with("advanced"));
    e.tb.stack.rekor.lock().unwrap().serve_fork = true;
    let r = e.m.sync().await;
    let err = r[0].error.clone().expect("the fork is refused");
    assert_eq!(err.kind, TlogErrorKind::SplitView, "{err:?}");
    let alarms = e.store.tlog_alarms().unwrap();
    assert_eq!(alarms.len(), 1);
    let a = &alarms[0];
    assert!(a.witnessed.contains("\u{2014}") && a.conflicting.contains("\u{2014}"), "both signed checkpoints are kept");
    assert_ne!(a.witnessed.lines().nth(2), a.conflicting.lines().nth(2), "two roots");
    assert_eq!(a.witnessed.lines().nth(1), a.conflicting.lines().nth(1), "for one size");
    // untrusted until an operator acts, even when the log goes back to the main view
    e.tb.stack.rekor.lock().unwrap().serve_fork = false;
    assert_eq!(e.m.sync().await[0].error.as_ref().unwrap().kind, TlogErrorKind::Untrusted);
    let st = e.store.tlog_state(&log).unwrap().unwrap();
    assert!(st.alarm.is_some());
    e.store
        .tlog_resolve(
            &log,
            trustmirror::store::tlog::Resolution { at: jiff::Timestamp::now(), by: "t".into(), reason: "investigated".into() },
            true,
        )
        .unwrap();
    assert_eq!(e.m.sync().await[0].outcome, "first", "rebaselined");
    assert_eq!(e.store.tlog_alarms().unwrap()[0].resolved.as_ref().unwrap().reason, "investigated", "evidence kept");
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_another_key() {
    let e = env().await;
    let log = log_id(&e);
    append(&e, 10);
    e.m.sync().await;
    let before = e.store.tlog_state(&log).unwrap().unwrap().latest.unwrap();
    // checkpoints signed by another key: refused, not an alarm, nothing stored
    let real = std::mem::replace(&mut e.tb.stack.rekor.lock().unwrap().key, trustmirror::testbed::pki::EcKey::from_seed(b"somebody else"));
    append(&e, 1);
    let r = e.m.sync().await;
    assert_eq!(r[0].error.as_ref().unwrap().kind, TlogErrorKind::UnknownKey, "{r:?}");
    assert!(e.store.tlog_alarms().unwrap().is_empty());
    assert_eq!(e.store.tlog_state(&log).unwrap().unwrap().latest.unwrap(), before, "state unchanged");
    e.tb.stack.rekor.lock().unwrap().key = real;
    // the log rolls back (its data is gone: it cannot prove consistency): reported, the
    // witnessed state kept, but no alarm — a smaller signed checkpoint proves no second view
    e.tb.stack.rekor.lock().unwrap().truncate(4);
    let r = e.m.sync().await;
    assert_eq!(r[0].error.as_ref().unwrap().kind, TlogErrorKind::Rollback, "{r:?}");
    assert!(e.store.tlog_alarms().unwrap().is_empty(), "no alarm without evidence of two views");
    assert_eq!(e.store.tlog_state(&log).unwrap().unwrap().latest.unwrap().size, before.size);
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_checkpoint_over_http_follows_tlog_witness() {
    let e = env().await;
    append(&e, 6);
    let metrics = Arc::new(trustmirror::serve::metrics::Metrics::new());
    let state = trustmirror::serve::AppState {
        store: e.store.clone(),
        clock: Arc::new(SystemClock),
        repo: "default".into(),
        metrics,
        ingest: None,
        ingest_token: None,
        covers: None,
        tlog: Some(e.m.clone()),
        tasks: trustmirror::supervise::Tasks::new(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, trustmirror::serve::router(state)).await.unwrap() });
    let url = format!("http://{addr}/tlog/v1/add-checkpoint");
    let c = reqwest::Client::new();
    let post = |body: String| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c.post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()), r.text().await.unwrap())
        }
    };
    let rekor = e.tb.stack.rekor.clone();
    let cp = |n: u64| rekor.lock().unwrap().checkpoint_of(false, n);
    let proof = |m: usize, n: usize| {
        let r = rekor.lock().unwrap();
        merkle::consistency_proof(m, &r.leaf_hashes()[..n]).iter().map(|h| format!("{}\n", B64.encode(h))).collect::<String>()
    };
    // first submission: old 0
    let (st, _, body) = post(format!("old 0\n\n{}", cp(5))).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.starts_with("\u{2014} witness.internal/w1 "), "{body}");
    let c1 = Cosigner::from_vkey(&e.witness_vkey).unwrap();
    assert!(c1.cosigned(&format!("{}{body}", cp(5))).is_some(), "the returned line is a valid cosignature");
    // stale old size: 409 with the witnessed size
    let (st, ct, body) = post(format!("old 3\n{}\n{}", proof(3, 7), cp(7))).await;
    assert_eq!((st, ct.as_deref(), body.as_str()), (409, Some("text/x.tlog.size"), "5\n"));
    // a proof that does not verify: 422 (and kept as evidence)
    let mut bad = proof(5, 7);
    bad.replace_range(0..4, "AAAA");
    let (st, _, _) = post(format!("old 5\n{bad}\n{}", cp(7))).await;
    assert_eq!(st, 422);
    // (the alarm makes the log untrusted; resolve without rebaseline to go on)
    e.store
        .tlog_resolve(
            &log_id(&e),
            trustmirror::store::tlog::Resolution { at: jiff::Timestamp::now(), by: "t".into(), reason: "test".into() },
            false,
        )
        .unwrap();
    let (st, _, body) = post(format!("old 5\n{}\n{}", proof(5, 7), cp(7))).await;
    assert_eq!(st, 200, "{body}");
    // old larger than the checkpoint: 400; garbage: 400
    assert_eq!(post(format!("old 9\n\n{}", cp(7))).await.0, 400);
    assert_eq!(post("hello".into()).await.0, 400);
    // a checkpoint from a log the witness does not know: 404
    let other = trustmirror::testbed::rekor::Rekor::new("other", "elsewhere.example");
    assert_eq!(post(format!("old 0\n\n{}", other.checkpoint_of(false, 1))).await.0, 404);
    // signed by another key under the known origin: 403
    let mut forged = cp(7);
    let last = forged.trim_end().rsplit(' ').next().unwrap().to_string();
    let mut sig = B64.decode(&last).unwrap();
    let n = sig.len();
    sig[n - 1] ^= 1;
    forged = forged.replace(&last, &B64.encode(sig));
    assert_eq!(post(format!("old 7\n\n{forged}")).await.0, 403);
    // monitoring path
    let text = c.get(format!("http://{addr}/tlog/v1/{}/checkpoint", log_id(&e))).send().await.unwrap().text().await.unwrap();
    assert!(text.starts_with(&cp(7)[..cp(7).find("\n\n").unwrap()]) && c1.cosigned(&text).is_some(), "{text}");
    let vkey = c.get(format!("http://{addr}/tlog/v1/witness")).send().await.unwrap().text().await.unwrap();
    assert_eq!(vkey.trim(), e.witness_vkey);
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_checked_against_the_witnessed_history() {
    let e = env().await;
    let signer = e.tb.stack.keyless(&trustmirror::testbed::scenarios::good_identity(), e.tb.now);
    let signed = e.tb.stack.sign_blob(&signer, b"release 1\n", e.tb.now);
    let bundle = serde_json::to_vec(&signed.bundle).unwrap();
    let logs = e.m.logs();
    let cps = tlog::bundle_checkpoints(&bundle, &logs);
    assert_eq!(cps.len(), 1);
    let (log, root, note) = (cps[0].log.clone(), cps[0].root, cps[0].note.clone());
    // nothing witnessed: deny by default, warn or accept if told
    use trustmirror::core::tlog::history::Unwitnessed;
    let history_check = |store: &trustmirror::store::Store, bundle: &[u8], p: Option<&WitnessPolicy>, u: Unwitnessed| {
        let cps = tlog::bundle_checkpoints(bundle, &logs);
        tlog::history::history_check(&cps, &store.tlog_facts(cps.iter().map(|c| (c.log.as_str(), c.size, &c.root))).unwrap(), p, u)
    };
    assert!(history_check(&e.store, &bundle, None, Unwitnessed::Deny).unwrap_err().contains("never been witnessed"));
    assert!(history_check(&e.store, &bundle, None, Unwitnessed::Warn).is_ok());
    append(&e, 3);
    e.m.sync().await; // witnessed size is now larger than the bundle's checkpoint
    let err = history_check(&e.store, &bundle, None, Unwitnessed::Deny).unwrap_err();
    assert!(err.contains("has not been proven consistent"), "{err}");
    // the mirror proves it (one consistency proof), after which it is offline-checkable
    assert!(matches!(e.m.prove(&log, &note).await.unwrap(), HistoryVerdict::Consistent { .. }));
    let notes = history_check(&e.store, &bundle, None, Unwitnessed::Deny).unwrap();
    assert!(notes[0].contains("consistent with the witnessed size"), "{notes:?}");
    // a witness policy: our witness alone passes; requiring a second witness fails
    let other = Witness::from_seed("witness.elsewhere/w2", &[9; 32]).unwrap();
    let p1 = WitnessPolicy::parse(&format!("witness me {}\nquorum me\n", e.witness_vkey)).unwrap();
    assert!(history_check(&e.store, &bundle, Some(&p1), Unwitnessed::Deny).is_ok());
    let p2 = WitnessPolicy::parse(&format!(
        "witness me {}\nwitness them {}\ngroup both all me them\nquorum both\n",
        e.witness_vkey,
        other.vkey()
    ))
    .unwrap();
    assert!(history_check(&e.store, &bundle, Some(&p2), Unwitnessed::Deny).unwrap_err().contains("does not meet the witness policy"));
    // a bundle whose bare rootHash was rewritten (what anyone can push): not evidence of
    // anything — its checkpoint no longer authenticates, so nothing is checked against the
    // history (denied as unwitnessed) and no alarm is raised
    let mut forged: Value = signed.bundle.clone();
    let mut r2 = root;
    r2[5] ^= 0x20;
    forged["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["rootHash"] = json!(B64.encode(r2));
    let fb = serde_json::to_vec(&forged).unwrap();
    assert!(tlog::bundle_checkpoints(&fb, &logs).is_empty(), "a bare root that contradicts the signed note is no checkpoint");
    assert!(history_check(&e.store, &fb, None, Unwitnessed::Deny).unwrap_err().contains("no log entry"));
    assert!(e.m.prove(&log, &note.replacen(&B64.encode(root), &B64.encode(r2), 1)).await.is_err(), "an unsigned root proves nothing");
    assert!(e.store.tlog_alarms().unwrap().is_empty(), "no alarm rests on unsigned data");
    // a checkpoint the log signed on another view of the tree, at a size the history has not
    // seen, whose consistency proof cannot verify: the alarm, with the signed note as evidence
    e.tb.stack.rekor.lock().unwrap().fork(1_700_000_100);
    append(&e, 2);
    let forked_note = {
        let r = e.tb.stack.rekor.lock().unwrap();
        r.checkpoint_of(true, r.fork_size())
    };
    match e.m.prove(&log, &forked_note).await.unwrap() {
        HistoryVerdict::Inconsistent { detail, .. } => assert!(detail.contains("alarm #"), "{detail}"),
        v => panic!("{v:?}"),
    }
    assert_eq!(e.store.tlog_alarms().unwrap()[0].conflicting, forked_note, "the evidence is the log's own signed note");
    assert!(history_check(&e.store, &bundle, None, Unwitnessed::Deny).unwrap_err().contains("untrusted"), "the log is untrusted now");
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_syncs_reports_and_checks_bundles() {
    let e = env().await;
    let bin = env!("CARGO_BIN_EXE_trustmirror");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("cli.redb");
    let key = dir.path().join("witness.key");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin).args(args).env("TRUSTMIRROR_LOG", "warn").output().unwrap();
        (o.status.code().unwrap(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let signer = e.tb.stack.keyless(&trustmirror::testbed::scenarios::good_identity(), e.tb.now);
    let signed = e.tb.stack.sign_blob(&signer, b"cli artifact\n", e.tb.now);
    let bpath = dir.path().join("a.sigstore.json");
    std::fs::write(&bpath, serde_json::to_vec(&signed.bundle).unwrap()).unwrap();
    std::fs::write(dir.path().join("a"), b"cli artifact\n").unwrap();
    let tr = e.tb.env["TRUSTED_ROOT"].clone();
    let (code, out, err) =
        run(&["tlog", "sync", "--store", store.to_str().unwrap(), "--trusted-root", &tr, "--witness-key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("first"), "{out}");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "witness key created private");
    let verify = |extra: &[&str]| {
        let mut a = vec![
            "verify-blob",
            "--bundle",
            bpath.to_str().unwrap(),
            "--trusted-root",
            &tr,
            "--certificate-identity",
            &e.tb.env["GOOD_IDENTITY"],
            "--certificate-oidc-issuer",
            &e.tb.env["GOOD_ISSUER"],
            "--tlog-history",
            store.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.push(dir.path().join("a").to_str().unwrap().to_string().leak());
        run(&a)
    };
    // the bundle's checkpoint is exactly the witnessed one
    let (code, _, err) = verify(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("consistent with the witnessed size"), "{err}");
    let (vk_code, vkey, _) = run(&["tlog", "witness-key", "--witness-key", key.to_str().unwrap()]);
    assert_eq!(vk_code, 0);
    let pol = dir.path().join("policy");
    std::fs::write(&pol, format!("witness w {}\nquorum w\n", vkey.trim())).unwrap();
    assert_eq!(verify(&["--witness-policy", pol.to_str().unwrap()]).0, 0);
    // Drills over HTTP, as an operator runs them against the testbed.
    let base = e.tb.base_url();
    let drill = |path: &str| {
        let o = std::process::Command::new("curl").args(["-sf", "-X", "POST", &format!("{base}{path}")]).output().unwrap();
        assert!(o.status.success(), "{path}: {}", String::from_utf8_lossy(&o.stderr));
    };
    let sync = || run(&["tlog", "sync", "--store", store.to_str().unwrap(), "--trusted-root", &tr, "--witness-key", key.to_str().unwrap()]);
    let status = || run(&["tlog", "status", "--store", store.to_str().unwrap()]);
    // a lagging cache: the log grows, then an older consistent checkpoint is served — stale,
    // not an alarm (exit 0)
    tokio::task::block_in_place(|| {
        drill("/testbed/rekor/append");
        drill("/testbed/rekor/append");
        assert_eq!(sync().0, 0);
        let older = e.tb.stack.rekor.lock().unwrap().size() - 1;
        drill(&format!("/testbed/rekor/rollback?size={older}"));
        let (code, out, err) = sync();
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("stale"), "{out}");
        assert_eq!(status().0, 0, "no alarm for a consistent, older checkpoint");
        drill("/testbed/rekor/rollback");
        // a split view: fork → serve main → append → sync → serve fork → sync: exit 3 with the
        // evidence, and verification refuses
        drill("/testbed/rekor/fork");
        drill("/testbed/rekor/serve?view=main");
        drill("/testbed/rekor/append");
        assert_eq!(sync().0, 0);
        drill("/testbed/rekor/serve?view=fork");
        assert_eq!(sync().0, 3);
    });
    let (code, out, _) = status();
    assert_eq!(code, 3);
    assert!(out.contains("ALARM #1 split-view") && out.contains("-- conflicting checkpoint --"), "{out}");
    let (code, _, err) = verify(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("untrusted"), "{err}");
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tlog_tiles_log_is_witnessed_from_its_tiles() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path().join("tb"));
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.redb")).unwrap());
    let tr = tb.stack.trusted_root_with_tiles(&tb.base_url());
    let tm = Arc::new(TrustedMaterial::from_json("tiles", tr.to_string().as_bytes()).unwrap());
    let w = Arc::new(Witness::from_seed("witness.internal/w1", &[42; 32]).unwrap());
    let m = TlogMirror::new(store.clone(), Arc::new(SystemClock), Arc::new(move || tm.clone()), w);
    let tiles_log = m.logs().into_iter().find(|l| l.is_ed25519()).expect("the tiles log");
    let r = m.sync().await;
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.outcome == "first"), "{r:?}");
    // grow across tile boundaries: the proof is computed from a few tiles, which must
    // reproduce the signed root
    {
        let mut rk = tb.stack.rekor.lock().unwrap();
        for i in 0..700u32 {
            rk.append(&json!({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {"i": i}}), 1_700_000_000);
        }
    }
    let before = m.requests();
    let r = m.sync().await;
    assert!(r.iter().all(|r| r.outcome.starts_with("advanced")), "{r:?}");
    let used = m.requests() - before;
    assert!(used <= 2 + 1 + 8, "v1: 2 requests; tiles: checkpoint + a handful of tiles ({used})");
    let st = store.tlog_state(&tiles_log.id).unwrap().unwrap();
    assert_eq!(st.latest.as_ref().unwrap().size, tb.stack.rekor.lock().unwrap().size());
    assert!(st.latest.unwrap().origin.ends_with("/tiles"));
    // unchanged: one request per log
    let before = m.requests();
    assert!(m.sync().await.iter().all(|r| r.outcome == "unchanged"));
    assert_eq!(m.requests() - before, 2);
    // the tiles log forks too: another root for a witnessed size is a split view
    reqwest::Client::new().post(format!("{}/testbed/rekor/fork", tb.base_url())).send().await.unwrap();
    tb.stack.rekor.lock().unwrap().serve_fork = false;
    append_to(&tb, 1);
    assert!(m.sync().await.iter().all(|r| r.error.is_none()));
    tb.stack.rekor.lock().unwrap().serve_fork = true;
    let r = m.sync().await;
    let tr = r.iter().find(|r| r.log == tiles_log.id).unwrap();
    assert_eq!(tr.error.as_ref().unwrap().kind, TlogErrorKind::SplitView, "{r:?}");
    tb.shutdown().await;
}

fn append_to(tb: &Testbed, n: usize) {
    let mut r = tb.stack.rekor.lock().unwrap();
    for i in 0..n {
        r.append(&json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {"n": i, "t": rand::random::<u64>()}}), 1_700_000_000);
    }
}
