//! Air-gap bundles end to end: the connected side (the lab: mirrored TUF, OCI, witnessed log)
//! writes a signed bundle; the disconnected side imports it with the real binary inside a network
//! namespace that has nothing but loopback, and decides every scenario exactly as the connected
//! side does. A flipped byte, an unsigned or foreign-signed bundle, an older bundle after a newer
//! one and an incremental bundle without its base are refused with the store byte-for-byte
//! unchanged; the same bundle twice is a no-op; an incremental bundle carries only what changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use trustmirror::admission::{Engine, EngineOptions};
use trustmirror::bundle::create::{CreateOptions, create};
use trustmirror::core::clock::SystemClock;
use trustmirror::core::dsse::Signer;
use trustmirror::store::Store;
use trustmirror::testbed::lab::{Lab, LabOptions};

fn openssl_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let k = dir.join(format!("{name}.key"));
    let p = dir.join(format!("{name}.pub"));
    assert!(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
            .arg(&k)
            .status()
            .unwrap()
            .success()
    );
    assert!(Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&k).arg("-out").arg(&p).status().unwrap().success());
    (k, p)
}

/// `bytes` of a bundle with one bit flipped in the middle of its largest blob (a file's content:
/// tar's padding between entries carries nothing and is not a tampering target).
fn tampered(bytes: &[u8]) -> Vec<u8> {
    let (offset, size) = {
        let mut ar = tar::Archive::new(std::io::Cursor::new(bytes));
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.raw_file_position() as usize, e.size() as usize))
            .max_by_key(|(_, s)| *s)
            .unwrap()
    };
    let mut out = bytes.to_vec();
    out[offset + size / 2] ^= 0x40;
    out
}

fn signer(key: &Path) -> Signer {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(key).unwrap();
    Signer::from_pkcs8_der(der.secret_pkcs8_der()).unwrap()
}

/// `trustmirror bundle import` in a network namespace with only loopback: (exit, stderr).
fn import_offline(store: &Path, file: &Path, extra: &[&str]) -> (i32, String) {
    let o = Command::new("unshare")
        .args(["--net", "--"])
        .arg(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["bundle", "import", "--store"])
        .arg(store)
        .arg(file)
        .args(extra)
        .env("TRUSTMIRROR_LOG", "warn")
        .output()
        .expect("unshare (util-linux)");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn sha(p: &Path) -> String {
    trustmirror::core::digest::sha256_hex(&std::fs::read(p).unwrap())
}

fn bundle(lab: &Lab, out: &Path, since: Option<&Path>, key: &Path) -> trustmirror::bundle::create::Created {
    let o = CreateOptions {
        output: out.to_path_buf(),
        tuf_repo: "default".into(),
        images: vec![],
        since: since.map(Path::to_path_buf),
        exporter: Some("connected-1".into()),
        files: vec![lab.dir.join("policy/policy.yaml"), lab.dir.join("policy/banned.yaml")],
    };
    create(&lab.store, &o, Some(&signer(key)), jiff::Timestamp::now()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_bundle_carries_every_decision_across_the_gap() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(dir.path().join("lab"));
    o.keep_testbed = true;
    let lab = Lab::up(o).await.unwrap();
    let tb = lab.testbed.as_ref().unwrap();
    let root = tb.env["TUF_ROOT"].clone();
    let (key, public) = openssl_key(dir.path(), "exporter");
    let (_, other_public) = openssl_key(dir.path(), "other");
    let b1 = dir.path().join("b1.tar");
    let c1 = bundle(&lab, &b1, None, &key);
    assert_eq!(c1.config.sequence, 1);
    assert!(c1.config.counts["oci"] >= lab.scenarios.len(), "{:?}", c1.config.counts);
    assert!(c1.config.counts["tlog"] >= 1);

    // standard tools read it: a tar of an OCI image layout
    let t = Command::new("tar").arg("tf").arg(&b1).output().unwrap();
    let listing = String::from_utf8_lossy(&t.stdout);
    assert!(listing.lines().any(|l| l == "oci-layout") && listing.lines().any(|l| l == "index.json"), "{listing}");

    // verify on its own: a summary
    let v = Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["bundle", "verify", "--key"])
        .arg(&public)
        .args(["--root", &root, "--output", "json"])
        .arg(&b1)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let s: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert!(s["signature"].as_str().unwrap().starts_with("signed by") && s["signature"].as_str().unwrap().ends_with("exporter.pub"), "{s}");
    assert!(s["tuf_timestamp_expires"].is_string() && !s["certificate_authorities"].as_array().unwrap().is_empty(), "{s}");
    assert!(s["logs"][0][1].as_u64().unwrap() > 0, "{s}");

    // the disconnected side: a fresh store, no network at all
    let store = dir.path().join("disconnected.redb");
    let keyarg = ["--key", public.to_str().unwrap(), "--root", &root];
    // an unsigned bundle is refused by a store that names exporter keys
    let unsigned = dir.path().join("unsigned.tar");
    create(
        &lab.store,
        &CreateOptions {
            output: unsigned.clone(),
            tuf_repo: "default".into(),
            images: vec![],
            since: None,
            exporter: Some("someone".into()),
            files: vec![],
        },
        None,
        jiff::Timestamp::now(),
    )
    .unwrap();
    let (code, err) = import_offline(&store, &unsigned, &keyarg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unsigned"), "{err}");
    let (code, err) = import_offline(&store, &b1, &["--key", other_public.to_str().unwrap(), "--root", &root]);
    assert_eq!(code, 1, "a foreign exporter key: {err}");
    assert!(!store.exists(), "refused imports do not even create the store");
    let (code, err) = import_offline(&store, &b1, &keyarg);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("IMPORTED"), "{err}");
    // a flipped byte in any file of the bundle (here the middle of its largest blob; tar's
    // padding between entries carries nothing) is refused, the store byte-for-byte unchanged
    let before = sha(&store);
    let bytes = tampered(&std::fs::read(&b1).unwrap());
    let flipped = dir.path().join("flipped.tar");
    std::fs::write(&flipped, &bytes).unwrap();
    let (code, err) = import_offline(&store, &flipped, &keyarg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("REFUSED"), "{err}");
    assert_eq!(sha(&store), before, "byte for byte");
    let (code, err) = import_offline(&store, &b1, &keyarg);
    assert_eq!(code, 0, "the same bundle again: {err}");
    assert!(err.contains("ALREADY IMPORTED"), "{err}");

    // the same decisions on both sides, for every scenario
    {
        let s2 = Arc::new(Store::open(&store).unwrap());
        let e2 = Engine::new(
            s2,
            Arc::new(SystemClock),
            EngineOptions {
                policy_files: vec![lab.dir.join("policy/policy.yaml")],
                banned_file: Some(lab.dir.join("policy/banned.yaml")),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        for sc in &lab.scenarios {
            let here = lab.engine.decide_image("prod", &sc.deploy_ref, None);
            let there = e2.decide_image("prod", &sc.deploy_ref, None);
            let props =
                |o: &trustmirror::admission::ImageOutcome| o.enforced().map(|v| v.property.as_str().to_string()).collect::<Vec<_>>();
            assert_eq!(props(&here), props(&there), "{}: {:?} vs {:?}", sc.name, here.violations, there.violations);
        }
        assert!(
            e2.decide_image("prod", &lab.scenario("good").digest_ref, None).violations.is_empty(),
            "good passes on the far side, witnessed-log rule included"
        );
    }

    // bundle #2 (nothing changed), then #1 again: an older bundle is refused
    let b2 = dir.path().join("b2.tar");
    let c2 = bundle(&lab, &b2, None, &key);
    assert_eq!(c2.config.sequence, 2);
    assert_eq!(import_offline(&store, &b2, &keyarg).0, 0);
    let before = sha(&store);
    let (code, err) = import_offline(&store, &b1, &keyarg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("older"), "{err}");
    assert_eq!(sha(&store), before);

    // an incremental bundle: one new signed digest on the connected side, only it travels
    let digest = trustmirror::core::digest::sha256_digest(b"a new image");
    let repo = format!("{}/myorg/new", lab.registry);
    let signer_id = tb.stack.keyless(&trustmirror::testbed::scenarios::good_identity(), tb.now);
    let st = trustmirror::testbed::cosign::statement(
        trustmirror::testbed::cosign::STATEMENT_V1,
        &repo,
        &digest,
        trustmirror::core::evidence::COSIGN_SIGN_V1,
        &json!({}),
    );
    let signed = tb.stack.attest(&signer_id, &st, tb.now);
    lab.oci
        .ingest_material(&trustmirror::mirror::oci::ImageMaterial {
            name: repo.clone(),
            digest: digest.clone(),
            manifest: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec(),
            bundles: vec![(None, serde_json::to_vec(&signed.bundle).unwrap())],
            ..Default::default()
        })
        .unwrap();
    let b3 = dir.path().join("b3.tar");
    let c3 = bundle(&lab, &b3, Some(&b2), &key);
    assert_eq!(c3.config.counts.get("oci"), Some(&1), "{:?}", c3.config.counts);
    assert!(c3.bytes * 4 < c1.bytes, "proportional to what changed: {} vs {}", c3.bytes, c1.bytes);
    // not on top of what this store has: refused
    let fresh = dir.path().join("fresh.redb");
    let (code, err) = import_offline(&fresh, &b3, &keyarg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("incremental"), "{err}");
    assert_eq!(import_offline(&store, &b3, &keyarg).0, 0);
    let s2 = Store::open(&store).unwrap();
    let rec = s2.oci_material(&repo, &digest).unwrap().expect("the new digest arrived");
    assert!(
        rec.items.iter().any(|i| matches!(i.status, trustmirror::core::material::ItemStatus::Verified { .. })),
        "re-verified on import"
    );
    assert_eq!(s2.bundle_ledger("connected-1").unwrap().unwrap().sequence, 3);
    lab.shutdown().await;
}

/// A bundle whose checkpoint contradicts the history the store already witnessed (the log showed
/// the exporter a fork) is refused as a split view, and the store is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_from_a_forked_view_of_the_log_is_refused() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(dir.path().join("lab"));
    o.keep_testbed = true;
    let lab = Lab::up(o).await.unwrap();
    let tb = lab.testbed.as_ref().unwrap();
    let root = tb.env["TUF_ROOT"].clone();
    let (key, public) = openssl_key(dir.path(), "exporter");
    let base = tb.base_url();
    let c = reqwest::Client::new();
    let drill = |path: &str| c.post(format!("{base}{path}")).send();

    // the log forks; the main view grows and the lab witnesses it; the far side imports that
    for step in ["/testbed/rekor/fork", "/testbed/rekor/serve?view=main", "/testbed/rekor/append"] {
        assert!(drill(step).await.unwrap().status().is_success(), "{step}");
    }
    assert!(lab.tlog.sync().await[0].error.is_none());
    let main = dir.path().join("main.tar");
    bundle(&lab, &main, None, &key);
    let store = dir.path().join("far.redb");
    let keyarg = ["--root", root.as_str()];
    let (code, err) = import_offline(&store, &main, &keyarg);
    assert_eq!(code, 0, "{err}");

    // another connected store witnesses the fork view from scratch and exports it
    assert!(drill("/testbed/rekor/serve?view=fork").await.unwrap().status().is_success());
    let other = Arc::new(Store::open(dir.path().join("other.redb")).unwrap());
    let clock: Arc<dyn trustmirror::core::clock::Clock> = Arc::new(SystemClock);
    let tuf = trustmirror::daemon::tuf_mirror(
        other.clone(),
        "default",
        &tb.env["TUF_URL"],
        Some(std::fs::read(&root).unwrap()),
        None,
        std::time::Duration::from_secs(3600),
        clock.clone(),
    )
    .unwrap();
    tuf.refresh().await.unwrap();
    let trust = Arc::new(trustmirror::trust::TrustSource::new(other.clone(), trustmirror::trust::TrustConfig::default()));
    let w = Arc::new(trustmirror::trust::keys::load_witness(&dir.path().join("other-witness.key"), "other.example/witness").unwrap());
    let t = trustmirror::mirror::tlog_mirror::TlogMirror::new(other.clone(), clock, trust, w);
    assert!(t.sync().await[0].error.is_none());
    let forked = dir.path().join("forked.tar");
    create(
        &other,
        &CreateOptions {
            output: forked.clone(),
            tuf_repo: "default".into(),
            images: vec![],
            since: None,
            exporter: Some("other".into()),
            files: vec![],
        },
        None,
        jiff::Timestamp::now(),
    )
    .unwrap();
    let before = sha(&store);
    let (code, err) = import_offline(&store, &forked, &keyarg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("SPLIT VIEW"), "{err}");
    assert_eq!(sha(&store), before, "the store is unchanged");
    let _ = public;
    lab.shutdown().await;
}

/// `serve` with `bundle: {inbox}` and no TUF upstream at all (`tuf.upstream` absent): a bundle
/// dropped into the inbox is imported (its material and its TUF state served), a tampered one is
/// moved to `refused/` with the reason, both are counted, and no refresh is ever attempted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_imports_bundles_dropped_into_its_inbox() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::up(LabOptions::new(dir.path().join("lab"))).await.unwrap();
    let (key, public) = openssl_key(dir.path(), "exporter");
    let b1 = dir.path().join("b1.tar");
    bundle(&lab, &b1, None, &key);
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("serve.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{http}\nstore: {}\ntuf:\n  root: {}\n  refresh_interval: 1s\nbundle:\n  inbox: {}\n  keys: [{}]\n  interval: 1s\n",
            dir.path().join("far.redb").display(),
            lab.dir.join("testbed/tuf/1.root.json").display(),
            inbox.display(),
            public.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("TRUSTMIRROR_LOG", "warn")
        .spawn()
        .unwrap();
    // a tampered copy, then the real one; each written under a dot-name and renamed into place
    let bytes = tampered(&std::fs::read(&b1).unwrap());
    std::fs::write(inbox.join(".t.tar"), &bytes).unwrap();
    std::fs::rename(inbox.join(".t.tar"), inbox.join("tampered.tar")).unwrap();
    std::fs::copy(&b1, inbox.join(".b1.tar")).unwrap();
    std::fs::rename(inbox.join(".b1.tar"), inbox.join("b1.tar")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(inbox.join("imported/b1.tar").exists() && inbox.join("refused/tampered.tar").exists()) {
        assert!(std::time::Instant::now() < deadline, "the inbox was not drained");
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reason = std::fs::read_to_string(inbox.join("refused/tampered.tar.reason.txt")).unwrap();
    assert!(reason.contains("refused"), "{reason}");
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let m = c.get(format!("http://127.0.0.1:{http}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("trustmirror_bundle_imports_total{result=\"imported\"} 1"), "{m}");
    assert!(m.contains("trustmirror_bundle_imports_total{result=\"refused\"} 1"), "{m}");
    // no refresh is attempted without an upstream (an unreachable one would count fetch failures)
    assert!(m.contains("trustmirror_tuf_refresh_failures_total{repo=\"default\",reason=\"fetch\"} 0"), "{m}");
    assert!(!m.lines().any(|l| l.starts_with("trustmirror_tuf_refreshes_total{")), "{m}");
    let r = c.get(format!("http://127.0.0.1:{http}/tuf/timestamp.json")).send().await.unwrap();
    assert!(r.status().is_success(), "the imported TUF state is served: {}", r.status());
    let good = lab.scenario("good");
    let r = c.get(format!("http://127.0.0.1:{http}/oci/v1/material/{}", good.digest)).send().await.unwrap();
    assert!(r.status().is_success(), "the imported material is served: {}", r.status());
    let _ = child.kill();
    let _ = child.wait();
    lab.shutdown().await;
}

/// A shared inbox (`bundle.shared`), read by two replicas: each imports every bundle (a full one
/// and an incremental one on top), nothing is moved, a tampered copy is refused by both and
/// stays, a file looked at is not read again until it changes, and an earlier bundle seen again
/// after a later one is `superseded`, never imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_inbox_is_imported_by_every_replica() {
    use trustmirror::bundle::import::ImportOptions;
    use trustmirror::daemon::inbox::Inbox;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::up(LabOptions::new(dir.path().join("lab"))).await.unwrap();
    let (key, public) = openssl_key(dir.path(), "exporter");
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    bundle(&lab, &shared.join("b1.tar"), None, &key);
    bundle(&lab, &shared.join("b2.tar"), Some(&shared.join("b1.tar")), &key);
    std::fs::write(shared.join("c-tampered.tar"), tampered(&std::fs::read(shared.join("b1.tar")).unwrap())).unwrap();
    let listing = || {
        let mut v: Vec<String> =
            std::fs::read_dir(&shared).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let before = listing();
    let options = || ImportOptions {
        keys: trustmirror::trust::keys::load_public_keys(std::slice::from_ref(&public)).unwrap(),
        pinned_root: Some(std::fs::read(lab.dir.join("testbed/tuf/1.root.json")).unwrap()),
    };
    let count = |i: &Inbox, r: &str| i.imports.get_or_create(&vec![("result".into(), r.into())]).get();
    let good = lab.scenario("good").clone();
    let repo = good.digest_ref.split('@').next().unwrap().to_string();
    for replica in ["a", "b"] {
        let store = Store::open(dir.path().join(format!("{replica}.redb"))).unwrap();
        let inbox = Inbox::new(shared.clone(), options(), std::time::Duration::from_secs(1)).shared(true);
        assert_eq!(inbox.drain(&store, &SystemClock).await, 3, "replica {replica}");
        assert_eq!((count(&inbox, "imported"), count(&inbox, "refused")), (2, 1), "replica {replica}");
        assert!(store.oci_material(&repo, &good.digest).unwrap().is_some(), "replica {replica} holds the image's material");
        assert_eq!(listing(), before, "nothing is moved or written in a shared inbox");
        // looked at: not read again
        assert_eq!(inbox.drain(&store, &SystemClock).await, 0, "replica {replica}");
        if replica == "b" {
            // the earlier bundle, seen again (rewritten): superseded, not refused, not imported
            let b1 = std::fs::read(shared.join("b1.tar")).unwrap();
            std::fs::write(shared.join("b1.tar"), &b1).unwrap();
            let f = std::fs::File::options().append(true).open(shared.join("b1.tar")).unwrap();
            f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60)).unwrap();
            assert_eq!(inbox.drain(&store, &SystemClock).await, 1);
            assert_eq!((count(&inbox, "superseded"), count(&inbox, "refused"), count(&inbox, "imported")), (1, 1, 2));
        }
    }
    lab.shutdown().await;
}
