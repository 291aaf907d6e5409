//! The TUF mirror end to end: upstream repositories (written by the testbed's repository writer,
//! and real Sigstore data) served over HTTP on 127.0.0.1, mirrored into a store, re-served, and
//! read back by independent clients (python-tuf, tuf-js).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Fault, fixture, serve_dir, tool, ts};
use jiff::{SignedDuration, Timestamp};
use trustmirror::core::clock::{Clock, ManualClock};
use trustmirror::core::tuf::TufErrorKind;
use trustmirror::mirror::tuf_client::Limits;
use trustmirror::mirror::tuf_mirror::{TufMirror, TufMirrorConfig};
use trustmirror::mirror::upstream::{HttpOptions, Upstream};
use trustmirror::store::Store;
use trustmirror::store::repo_view;
use trustmirror::testbed::keys::KeyKind;
use trustmirror::testbed::tufrepo::TufRepo;

const DAY: SignedDuration = SignedDuration::from_hours(24);

fn quick_http() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(3),
        ..Default::default()
    }
}

fn mirror(store: &Arc<Store>, upstream: &str, root: Vec<u8>, clock: Arc<dyn Clock>) -> TufMirror {
    TufMirror::new(
        store.clone(),
        TufMirrorConfig {
            repo: "default".into(),
            upstream: Upstream::parse(upstream, &quick_http()).unwrap(),
            pinned_root: root,
            limits: Limits::default(),
            root_probe_interval: SignedDuration::from_hours(1),
            targets: None,
        },
        clock,
    )
}

/// Everything a client can observe of the mirrored state: current role bytes and served targets.
type Observed = (Vec<(String, u64, Vec<u8>)>, Vec<(String, String)>);

fn snapshot_of(store: &Store) -> Observed {
    let st = store.tuf_state("default").unwrap();
    let roles = st.current.into_iter().map(|(r, (v, b))| (r, v, b)).collect();
    let targets = store.tuf_targets("default").unwrap().into_iter().map(|(p, t)| (p, t.sha256)).collect();
    (roles, targets)
}

fn sample_repo(dir: &Path, kind: KeyKind, now: Timestamp) -> TufRepo {
    let mut r = TufRepo::new(dir, "sample", kind, now, 30 * DAY);
    r.add_target("targets", "trusted_root.json", &std::fs::read(fixture("production/targets/trusted_root.json")).unwrap());
    r.add_target("targets", "rekor.pub", &std::fs::read(fixture("production/targets/rekor.pub")).unwrap());
    r.delegate("targets", "registry.npmjs.org", &["registry.npmjs.org/*"], true);
    r.add_target(
        "registry.npmjs.org",
        "registry.npmjs.org/keys.json",
        &std::fs::read(fixture("production/targets/registry.npmjs.org/keys.json")).unwrap(),
    );
    // a target outside the delegated role's paths must never be served
    r.add_target("registry.npmjs.org", "elsewhere/evil.json", b"{\"evil\":true}");
    r.publish_all().unwrap();
    r
}

#[tokio::test]
async fn mirror_and_reserve_for_python_tuf_and_tuf_js() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let up = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let mut repo = sample_repo(up.path(), KeyKind::EcdsaP256, now);
    let (url, _srv) = serve_dir(up.path()).await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(trustmirror::core::clock::SystemClock);
    let m = Arc::new(mirror(&store, &url, repo.initial_root(), clock.clone()));
    let mut o = trustmirror::daemon::Options::new(m.clone(), clock.clone(), "127.0.0.1:0");
    o.max_backoff = Duration::from_secs(60);
    let running = trustmirror::daemon::start(o).await.unwrap();
    let base = format!("http://{}/tuf", running.addr);
    let served = store.tuf_targets("default").unwrap();
    assert!(served.contains_key("trusted_root.json") && served.contains_key("registry.npmjs.org/keys.json"));
    assert!(!served.contains_key("elsewhere/evil.json"), "a target outside its role's delegated paths was served");

    let root_file = data.path().join("1.root.json");
    std::fs::write(&root_file, repo.initial_root()).unwrap();
    let want_tr = trustmirror::core::digest::sha256_hex(&std::fs::read(fixture("production/targets/trusted_root.json")).unwrap());
    let py_cache = data.path().join("py-cache");
    let js_cache = data.path().join("js-cache");
    let targets = vec!["trusted_root.json".to_string(), "registry.npmjs.org/keys.json".to_string()];
    let ran = run_clients(&base, &root_file, &py_cache, &js_cache, &targets, &want_tr, 1).await;

    // Upstream rotates the root key and the timestamp key and publishes new content; the mirror
    // follows, and the clients, with their cached state, walk to root v3 through the mirror.
    repo.rotate_keys("root").unwrap();
    repo.rotate_keys("timestamp").unwrap();
    repo.add_target("targets", "trusted_root.json", b"{\"mediaType\":\"rotated\"}");
    repo.publish_targets(&["targets"]).unwrap();
    let s = m.refresh().await.unwrap();
    assert!(s.changed);
    assert_eq!(store.tuf_current("default", "root").unwrap().unwrap().0, 3);
    let want_new = trustmirror::core::digest::sha256_hex(b"{\"mediaType\":\"rotated\"}");
    run_clients(&base, &root_file, &py_cache, &js_cache, &targets[..1], &want_new, 3).await;
    common::assert_interop_ran("independent TUF clients through the mirror", ran, 2);
    running.shutdown().await.unwrap();
}

/// python-tuf and tuf-js fetch `targets` through the mirror at `base`; returns how many ran.
async fn run_clients(
    base: &str,
    root: &Path,
    py_cache: &Path,
    js_cache: &Path,
    targets: &[String],
    want_first: &str,
    expect_root: u64,
) -> usize {
    let (base, root, py_cache, js_cache, targets, want) =
        (base.to_string(), root.to_path_buf(), py_cache.to_path_buf(), js_cache.to_path_buf(), targets.to_vec(), want_first.to_string());
    tokio::task::spawn_blocking(move || {
        let mut ran = 0;
        if let Some(py) = tool("venv/bin/python") {
            let out = std::process::Command::new(py)
                .arg(common::repo_root().join("tests/interop/tuf_fetch.py"))
                .args([&base, root.to_str().unwrap(), py_cache.to_str().unwrap()])
                .args(&targets)
                .output()
                .unwrap();
            assert!(out.status.success(), "python-tuf failed: {}", String::from_utf8_lossy(&out.stderr));
            check_client_output("python-tuf", &out.stdout, &want, expect_root, targets.len());
            ran += 1;
        }
        if let Some(nm) = tool("node/node_modules") {
            let out = std::process::Command::new("node")
                .env("NODE_PATH", nm)
                .arg(common::repo_root().join("tests/interop/tuf_fetch.js"))
                .args([&base, root.to_str().unwrap(), js_cache.to_str().unwrap()])
                .args(&targets)
                .output()
                .unwrap();
            assert!(out.status.success(), "tuf-js failed: {}", String::from_utf8_lossy(&out.stderr));
            check_client_output("tuf-js", &out.stdout, &want, expect_root, targets.len());
            ran += 1;
        }
        ran
    })
    .await
    .unwrap()
}

fn check_client_output(who: &str, stdout: &[u8], want_trusted_root: &str, expect_root: u64, n: usize) {
    let text = String::from_utf8_lossy(stdout);
    assert_eq!(text.lines().count(), n, "{who}: {text}");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or_else(|| panic!("{who}: no output"))).unwrap();
    assert_eq!(first["target"], "trusted_root.json", "{who}");
    assert_eq!(first["sha256"], want_trusted_root, "{who}: wrong trusted_root.json content");
    assert_eq!(first["root_version"], expect_root, "{who}: root version");
}

/// A sample repository served over HTTP, an empty store, a manual clock and a mirror.
struct Setup {
    up: tempfile::TempDir,
    repo: TufRepo,
    srv: common::ServerState,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
    m: TufMirror,
    _data: tempfile::TempDir,
    now: Timestamp,
}

async fn setup() -> Setup {
    let up = tempfile::tempdir().unwrap();
    let now = ts("2026-06-01T00:00:00Z");
    let repo = sample_repo(up.path(), KeyKind::Ed25519, now);
    let (url, srv) = serve_dir(up.path()).await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let m = mirror(&store, &url, repo.initial_root(), clock.clone());
    Setup { up, repo, srv, store, clock, m, _data: data, now }
}

#[tokio::test]
async fn unchanged_refresh_is_one_request_and_changes_cost_only_what_changed() {
    let Setup { up: _up, mut repo, srv, store, clock, m, _data, now: _ } = setup().await;

    let first = m.refresh().await.unwrap();
    assert!(first.changed);
    let log = srv.take_log();
    assert_eq!(log[0], "/timestamp.json");
    assert!(log.contains(&"/2.root.json".to_string()) && log.contains(&"/1.snapshot.json".to_string()));

    // Nothing new upstream: exactly one request, for timestamp.json.
    clock.advance(SignedDuration::from_mins(5));
    let again = m.refresh().await.unwrap();
    assert!(!again.changed);
    assert_eq!(srv.take_log(), vec!["/timestamp.json"]);
    assert_eq!(again.requests, 1);
    let status = store.tuf_state("default").unwrap().status;
    assert_eq!(status.last_success, Some(clock.now()));

    // The root probe is due after root_probe_interval: one more request (2.root.json: 404).
    clock.advance(SignedDuration::from_hours(2));
    m.refresh().await.unwrap();
    assert_eq!(srv.take_log(), vec!["/timestamp.json", "/2.root.json"]);

    // One target changes: timestamp, root probe, snapshot, targets, and only the changed file.
    repo.add_target("targets", "rekor.pub", b"new rekor key");
    repo.publish_targets(&["targets"]).unwrap();
    clock.advance(SignedDuration::from_mins(5));
    let s = m.refresh().await.unwrap();
    assert!(s.changed);
    assert_eq!(s.targets_downloaded, 1);
    let h = trustmirror::core::digest::sha256_hex(b"new rekor key");
    assert_eq!(
        srv.take_log(),
        vec![
            "/timestamp.json".to_string(),
            "/2.root.json".into(),
            "/2.snapshot.json".into(),
            "/2.targets.json".into(),
            format!("/targets/{h}.rekor.pub")
        ]
    );
    assert_eq!(store.tuf_targets("default").unwrap()["rekor.pub"].sha256, h);
}

#[tokio::test]
async fn upstream_faults_and_hostile_input_leave_the_store_unchanged() {
    let Setup { up, mut repo, srv, store, clock, m, _data, now } = setup().await;
    m.refresh().await.unwrap();
    let good = snapshot_of(&store);

    // Publish a legitimately newer repository version (v2), then serve hostile variants of it.
    repo.add_target("targets", "rekor.pub", b"rotated rekor key");
    repo.publish_targets(&["targets"]).unwrap();
    let ts2 = std::fs::read(up.path().join("timestamp.json")).unwrap();
    let snap2 = std::fs::read(up.path().join("2.snapshot.json")).unwrap();
    let targets2 = std::fs::read(up.path().join("2.targets.json")).unwrap();
    let h = trustmirror::core::digest::sha256_hex(b"rotated rekor key");

    let mut bad_sig: serde_json::Value = serde_json::from_slice(&ts2).unwrap();
    let sig = bad_sig["signatures"][0]["sig"].as_str().unwrap().to_string();
    bad_sig["signatures"][0]["sig"] = serde_json::Value::String(format!("{}{}", if sig.starts_with('0') { "1" } else { "0" }, &sig[1..]));
    let mut wrong_field: serde_json::Value = serde_json::from_slice(&ts2).unwrap();
    wrong_field["signed"]["version"] = serde_json::json!(99); // signature no longer covers it
    let mut wrong_type: serde_json::Value = serde_json::from_slice(&snap2).unwrap();
    wrong_type["signed"]["_type"] = serde_json::json!("timestamp");

    type Case<'a> = (&'a str, Vec<(String, Fault)>, &'a str, TufErrorKind);
    let cases: Vec<Case> = vec![
        ("unreachable (HTTP 500)", vec![("*".into(), Fault::Status(500))], "timestamp", TufErrorKind::Fetch),
        ("upstream hangs", vec![("timestamp.json".into(), Fault::Hang)], "timestamp", TufErrorKind::Fetch),
        ("timestamp 404", vec![("timestamp.json".into(), Fault::Status(404))], "timestamp", TufErrorKind::NotFound),
        (
            "truncated timestamp",
            vec![("timestamp.json".into(), Fault::Replace(ts2[..ts2.len() / 2].to_vec()))],
            "timestamp",
            TufErrorKind::Malformed,
        ),
        (
            "malformed JSON",
            vec![("timestamp.json".into(), Fault::Replace(b"{\"signed\": [".to_vec()))],
            "timestamp",
            TufErrorKind::Malformed,
        ),
        ("oversized timestamp", vec![("timestamp.json".into(), Fault::Replace(vec![b' '; 20_000]))], "timestamp", TufErrorKind::TooLarge),
        ("endless timestamp", vec![("timestamp.json".into(), Fault::Endless)], "timestamp", TufErrorKind::TooLarge),
        (
            "wrong signature",
            vec![("timestamp.json".into(), Fault::Replace(serde_json::to_vec(&bad_sig).unwrap()))],
            "timestamp",
            TufErrorKind::Signature,
        ),
        (
            "signed field altered",
            vec![("timestamp.json".into(), Fault::Replace(serde_json::to_vec(&wrong_field).unwrap()))],
            "timestamp",
            TufErrorKind::Signature,
        ),
        (
            "snapshot hash mismatch",
            vec![("2.snapshot.json".into(), Fault::Replace([&snap2[..], b" "].concat()))],
            "snapshot",
            TufErrorKind::Integrity,
        ),
        (
            "snapshot with wrong _type",
            vec![("2.snapshot.json".into(), Fault::Replace(serde_json::to_vec(&wrong_type).unwrap()))],
            "snapshot",
            TufErrorKind::Integrity,
        ),
        (
            "targets replaced by old version",
            vec![("2.targets.json".into(), Fault::Replace(std::fs::read(up.path().join("1.targets.json")).unwrap()))],
            "targets",
            TufErrorKind::Integrity,
        ),
        (
            "target content substituted",
            vec![(format!("targets/{h}.rekor.pub"), Fault::Replace(b"attacker key!!!!!".to_vec()))],
            "target rekor.pub",
            TufErrorKind::Integrity,
        ),
        ("target oversized", vec![(format!("targets/{h}.rekor.pub"), Fault::Endless)], "target rekor.pub", TufErrorKind::TooLarge),
        (
            "rolled-back timestamp",
            vec![("timestamp.json".into(), Fault::Replace(good.0.iter().find(|(r, _, _)| r == "timestamp").unwrap().2.clone()))],
            "",
            TufErrorKind::Fetch,
        ),
    ];
    let _ = targets2;
    for (name, faults, role, kind) in cases {
        srv.clear_faults();
        for (p, f) in faults {
            srv.fault(&p, f);
        }
        clock.advance(SignedDuration::from_mins(1));
        let res = m.refresh().await;
        if name == "rolled-back timestamp" {
            // serving the stored timestamp again is "nothing new", not an error
            assert!(!res.unwrap().changed, "{name}");
        } else {
            let e = res.expect_err(name);
            assert_eq!((e.role.as_str(), e.kind), (role, kind), "{name}: {e}");
            let st = store.tuf_state("default").unwrap().status;
            assert_eq!(st.last_error.as_ref(), Some(&e), "{name}: failure not recorded");
        }
        assert_eq!(snapshot_of(&store), good, "{name}: store changed");
        store.check().unwrap();
    }
    let failures = store.tuf_state("default").unwrap().status.failures;
    assert_eq!(failures.get("fetch"), Some(&2));
    assert_eq!(failures.get("integrity"), Some(&4));

    // An older timestamp than the trusted one, signed correctly: rollback.
    srv.clear_faults();
    clock.advance(SignedDuration::from_mins(1));
    m.refresh().await.unwrap(); // accept v2
    let v2 = snapshot_of(&store);
    assert_ne!(v2, good);
    srv.fault("timestamp.json", Fault::Replace(good.0.iter().find(|(r, _, _)| r == "timestamp").unwrap().2.clone()));
    clock.advance(SignedDuration::from_hours(2)); // root probe due, forces the full workflow
    let e = m.refresh().await.unwrap_err();
    assert_eq!((e.role.as_str(), e.kind), ("timestamp", TufErrorKind::Rollback), "{e}");
    assert_eq!(snapshot_of(&store), v2);

    // Expired upstream metadata is refused; the mirror reports staleness but keeps serving.
    srv.clear_faults();
    repo.set_expiry("timestamp", now.checked_add(SignedDuration::from_hours(3)).unwrap());
    repo.publish_timestamp().unwrap();
    clock.set(now.checked_add(DAY).unwrap());
    let e = m.refresh().await.unwrap_err();
    assert_eq!((e.role.as_str(), e.kind), ("timestamp", TufErrorKind::Expired), "{e}");
    assert_eq!(snapshot_of(&store), v2);
    let view = repo_view(&store, "default", clock.now()).unwrap();
    assert_eq!(view.consecutive_failures, 2, "the rollback and the expiry");
    assert!(view.seconds_since_last_success.unwrap() >= 20 * 3600, "staleness must be visible");
}

#[tokio::test]
async fn unsupported_key_type_is_named() {
    let up = tempfile::tempdir().unwrap();
    let now = ts("2026-06-01T00:00:00Z");
    let repo = sample_repo(up.path(), KeyKind::Ed25519, now);
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let m = mirror(&store, up.path().to_str().unwrap(), repo.initial_root(), clock.clone());
    m.refresh().await.unwrap();
    let good = snapshot_of(&store);
    // Root v2 gives the timestamp role a key of a type nobody implements (correctly signed root).
    let mut signed: serde_json::Value = serde_json::from_slice::<serde_json::Value>(&repo.role("root").bytes).unwrap()["signed"].clone();
    signed["version"] = serde_json::json!(2);
    signed["keys"]["abcd"] = serde_json::json!({"keytype": "sm2", "scheme": "sm2-sm3", "keyval": {"public": "00"}});
    signed["roles"]["timestamp"]["keyids"] = serde_json::json!(["abcd"]);
    std::fs::write(up.path().join("2.root.json"), repo.sign("root", &signed)).unwrap();
    clock.advance(SignedDuration::from_hours(2)); // root probe due
    let e = m.refresh().await.unwrap_err();
    assert_eq!((e.role.as_str(), e.kind), ("timestamp", TufErrorKind::UnsupportedKey), "{e}");
    assert!(e.detail.contains("sm2"), "{e}");
    assert_eq!(snapshot_of(&store), good);
}

fn sign_with(signed: &serde_json::Value, keys: &[&trustmirror::testbed::keys::SigningKey]) -> Vec<u8> {
    let canonical = sigstore_tuf::canonical_json::to_canonical_bytes(signed).unwrap();
    let sigs: Vec<_> = keys.iter().map(|k| serde_json::json!({"keyid": k.keyid, "sig": hex::encode(k.sign(&canonical))})).collect();
    serde_json::to_vec(&serde_json::json!({"signed": signed, "signatures": sigs})).unwrap()
}

#[tokio::test]
async fn root_rotation_needs_both_thresholds() {
    let up = tempfile::tempdir().unwrap();
    let now = ts("2026-06-01T00:00:00Z");
    let mut repo = sample_repo(up.path(), KeyKind::EcdsaP256, now);
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let m = mirror(&store, up.path().to_str().unwrap(), repo.initial_root(), clock.clone());
    m.refresh().await.unwrap();

    // v2 hands the root role to 3 new keys with threshold 2.
    let old = std::mem::take(&mut repo.role_mut("root").keys);
    let (k1, k2, k3) = (repo.new_key(), repo.new_key(), repo.new_key());
    let mut signed: serde_json::Value = serde_json::from_slice::<serde_json::Value>(&repo.initial_root()).unwrap()["signed"].clone();
    signed["version"] = serde_json::json!(2);
    for k in [&k1, &k2, &k3] {
        signed["keys"][&k.keyid] = k.public.clone();
    }
    signed["roles"]["root"] = serde_json::json!({"keyids": [k1.keyid, k2.keyid, k3.keyid], "threshold": 2});
    let cases: [(&str, Vec<&trustmirror::testbed::keys::SigningKey>, bool); 4] = [
        ("old key only", vec![&old[0]], false),
        ("old key + 1 of 3 new", vec![&old[0], &k1], false),
        ("2 of 3 new, not the old key", vec![&k1, &k3], false),
        ("old key + 2 of 3 new", vec![&old[0], &k1, &k3], true),
    ];
    for (name, keys, ok) in cases {
        std::fs::write(up.path().join("2.root.json"), sign_with(&signed, &keys)).unwrap();
        clock.advance(SignedDuration::from_hours(2));
        let res = m.refresh().await;
        if ok {
            res.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(store.tuf_current("default", "root").unwrap().unwrap().0, 2, "{name}");
        } else {
            let e = res.expect_err(name);
            assert!(e.role.starts_with("root (version 2)") && e.kind == TufErrorKind::Signature, "{name}: {e}");
            assert_eq!(store.tuf_current("default", "root").unwrap().unwrap().0, 1, "{name}");
        }
    }
}

#[tokio::test]
async fn key_types_layouts_and_hash_bins() {
    let now = ts("2026-06-01T00:00:00Z");
    for (kind, consistent) in [(KeyKind::Ed25519, true), (KeyKind::EcdsaP256, false), (KeyKind::RsaPss, true)] {
        let up = tempfile::tempdir().unwrap();
        let mut r = TufRepo::new(up.path(), "kinds", kind, now, 30 * DAY);
        r.consistent = consistent;
        r.hash_algs = vec!["sha256", "sha512"];
        r.delegate_succinct("bin", 4);
        let mut bins = std::collections::BTreeMap::new();
        for i in 0..40 {
            let p = format!("pkgs/p{i}/index.json");
            bins.insert(p.clone(), r.add_binned_target(&p, format!("content {i}").as_bytes()));
        }
        r.publish_all().unwrap();
        let (url, _srv) = serve_dir(up.path()).await;
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
        let m = mirror(&store, &url, r.initial_root(), Arc::new(ManualClock::new(now)));
        let s = m.refresh().await.unwrap();
        assert_eq!(s.targets_total, 40, "{kind:?}");
        let served = store.tuf_targets("default").unwrap();
        for (p, bin) in &bins {
            assert_eq!(&served[p].role, bin, "{kind:?} {p}");
        }
        // re-served under the layout clients will ask for
        let t = &served["pkgs/p7/index.json"];
        let path = if consistent { format!("pkgs/p7/{}.index.json", t.sha256) } else { "pkgs/p7/index.json".into() };
        let (_, bytes) = store.tuf_target("default", &path).unwrap().unwrap();
        assert_eq!(bytes, b"content 7");
        if consistent {
            let sha512 = hex::encode(<sha2::Sha512 as sha2::Digest>::digest(b"content 7"));
            assert!(store.tuf_target("default", &format!("pkgs/p7/{sha512}.index.json")).unwrap().is_some(), "every listed hash is served");
        }
    }
}

#[tokio::test]
async fn real_sigstore_production_repository_snapshot() {
    // Sigstore's production TUF CDN as of 2025-02-09 (tuf-conformance static data): ECDSA keys,
    // a non-compliant keyid in root v11, empty placeholder signatures, a delegated npm role.
    let dir = fixture("tuf/sigstore-root-signing");
    let at = ts("2025-02-09T12:02:08Z");
    let up = Upstream::parse_split(dir.join("metadata").to_str().unwrap(), dir.join("targets").to_str().unwrap(), &HttpOptions::default())
        .unwrap();
    for (pinned, label) in [("initial_root.json", "v12"), ("metadata/5.root.json", "v5 (walks 7 rotations)")] {
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
        let clock = Arc::new(ManualClock::new(at));
        let m = TufMirror::new(
            store.clone(),
            TufMirrorConfig {
                repo: "default".into(),
                upstream: up.clone(),
                pinned_root: std::fs::read(dir.join(pinned)).unwrap(),
                limits: Limits::default(),
                root_probe_interval: SignedDuration::from_hours(1),
                // the snapshot holds only this target's content
                targets: Some(vec![glob::Pattern::new("trusted_root.json").unwrap()]),
            },
            clock.clone(),
        );
        let s = m.refresh().await.unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(s.changed);
        let st = store.tuf_state("default").unwrap();
        assert_eq!(st.version("root"), Some(12), "{label}");
        assert_eq!(st.version("snapshot"), Some(159), "{label}");
        assert_eq!(st.version("registry.npmjs.org"), Some(5), "{label}");
        let tr = &store.tuf_targets("default").unwrap()["trusted_root.json"];
        assert_eq!(tr.sha256, "f44a1b88128e55ebfb62189becbc0fa48d4ec9915c65ac54ba0e46a008b12d5b");
        // a week later the production timestamp has expired: refused, but still served
        clock.set(at.checked_add(8 * DAY).unwrap());
        let e = m.refresh().await.unwrap_err();
        assert_eq!(e.kind, TufErrorKind::Expired, "{label}: {e}");
        assert_eq!(store.tuf_state("default").unwrap().version("snapshot"), Some(159));
    }
}

#[tokio::test]
async fn real_tuf_on_ci_repository() {
    let dir = fixture("tuf/tuf-on-ci-0.11");
    let up = Upstream::parse_split(dir.join("metadata").to_str().unwrap(), dir.join("targets").to_str().unwrap(), &HttpOptions::default())
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
    let m = TufMirror::new(
        store.clone(),
        TufMirrorConfig {
            repo: "default".into(),
            upstream: up,
            pinned_root: std::fs::read(dir.join("initial_root.json")).unwrap(),
            limits: Limits::default(),
            root_probe_interval: SignedDuration::from_hours(1),
            targets: None,
        },
        Arc::new(ManualClock::new(ts("2025-02-09T09:17:23Z"))),
    );
    m.refresh().await.unwrap();
    let t = store.tuf_targets("default").unwrap();
    assert_eq!(t["delegatedrole/artifact"].role, "delegatedrole");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let up = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let repo = sample_repo(up.path(), KeyKind::Ed25519, now);
    let (url, srv) = serve_dir(up.path()).await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path().join("s.redb")).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    // the upstream is down at start: not ready, but healthy
    srv.fault("*", Fault::Status(503));
    let m = Arc::new(mirror(&store, &url, repo.initial_root(), clock.clone()));
    let mut o = trustmirror::daemon::Options::new(m.clone(), clock.clone(), "127.0.0.1:0");
    o.max_backoff = Duration::from_secs(60);
    let running = trustmirror::daemon::start(o).await.unwrap();
    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::new();
    let get = |p: &str| {
        let c = c.clone();
        let u = format!("{base}{p}");
        async move {
            let r = c.get(u).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    let (code, body) = get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no verified root"), "{body}");
    let (_, metrics) = get("/metrics").await;
    assert!(metrics.contains("trustmirror_tuf_refresh_failures_total{repo=\"default\",reason=\"fetch\"} 1"), "{metrics}");
    assert!(metrics.contains("trustmirror_tuf_ready{repo=\"default\"} 0"), "{metrics}");
    assert_eq!(get("/tuf/timestamp.json").await.0, 404);

    srv.clear_faults();
    m.refresh().await.unwrap();
    let (code, body) = get("/readyz").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = get("/tuf/timestamp.json").await;
    assert_eq!((code, body.into_bytes()), (200, std::fs::read(up.path().join("timestamp.json")).unwrap()));
    assert_eq!(get("/tuf/1.root.json").await.1.into_bytes(), repo.initial_root());
    assert_eq!(get("/tuf/1.registry.npmjs.org.json").await.0, 200);
    assert_eq!(get("/tuf/2.root.json").await.0, 404);
    assert_eq!(get("/tuf/targets/..%2F..%2Fetc%2Fpasswd").await.0, 404);
    let (_, metrics) = get("/metrics").await;
    assert!(metrics.contains("trustmirror_tuf_ready{repo=\"default\"} 1"), "{metrics}");
    assert!(metrics.contains("trustmirror_tuf_role_expiry_timestamp_seconds{repo=\"default\",role=\"timestamp\"}"), "{metrics}");
    assert!(metrics.contains("trustmirror_tuf_seconds_since_last_success{repo=\"default\"} 0"), "{metrics}");

    // the timestamp expires and the upstream has nothing newer: not ready any more
    clock.set(now.checked_add(31 * DAY).unwrap());
    let (code, body) = get("/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("expired"), "{body}");
    running.shutdown().await.unwrap();
}

#[test]
fn cli_refresh_and_status() {
    let up = tempfile::tempdir().unwrap();
    let repo = sample_repo(up.path(), KeyKind::Ed25519, Timestamp::now());
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).unwrap();
    let store = data.path().join("s.redb");
    let bin = env!("CARGO_BIN_EXE_trustmirror");
    let status = std::process::Command::new(bin).args(["tuf", "status", "--store", store.to_str().unwrap()]).output().unwrap();
    assert_eq!(status.status.code(), Some(2), "no data yet: not ready");
    let out = std::process::Command::new(bin)
        .args([
            "tuf",
            "refresh",
            "--store",
            store.to_str().unwrap(),
            "--upstream",
            up.path().to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("trusted_root.json"));
    let status =
        std::process::Command::new(bin).args(["tuf", "status", "--output", "json", "--store", store.to_str().unwrap()]).output().unwrap();
    assert_eq!(status.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["roles"]["timestamp"]["version"], 1);
    assert!(v["seconds_since_last_success"].as_i64().unwrap() >= 0);
    // a bad upstream: exit 1, message names the role, store still ready
    let bad = data.path().join("empty");
    std::fs::create_dir(&bad).unwrap();
    let out = std::process::Command::new(bin)
        .args(["tuf", "refresh", "--store", store.to_str().unwrap(), "--upstream", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timestamp: not_found"), "{}", String::from_utf8_lossy(&out.stderr));
    let status = std::process::Command::new(bin).args(["tuf", "status", "--store", store.to_str().unwrap()]).output().unwrap();
    assert_eq!(status.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&status.stdout).contains("last error: timestamp: not_found"));
}
