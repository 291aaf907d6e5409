//! Mirroring signatures and attestations from the real registry (Debian's docker-registry, via a
//! logging / fault-injecting proxy that also provides the referrers API distribution lacks).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use common::proxy::{self, PFault};
use oci_client::secrets::RegistryAuth;
use serde_json::Value;
use trustmirror::core::clock::ManualClock;
use trustmirror::core::verify::TrustedMaterial;
use trustmirror::mirror::oci::{OciMirror, OciMirrorConfig, RegistryOptions};
use trustmirror::store::Store;
use trustmirror::store::oci::{ItemKind, ItemStatus};
use trustmirror::testbed::oci::{OCI_MANIFEST, Pusher};
use trustmirror::testbed::{Testbed, TestbedOptions};

struct Env {
    tb: Testbed,
    dir: tempfile::TempDir,
    proxy: String,
    ps: proxy::ProxyState,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
}

async fn env() -> Env {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up(TestbedOptions::new(dir.path().join("tb"))).await.unwrap();
    let (proxy, ps) = proxy::start(&tb.registry.as_ref().unwrap().addr).await;
    let store = Arc::new(Store::open(dir.path().join("m.redb")).unwrap());
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    Env { tb, dir, proxy, ps, store, clock }
}

fn mirror(e: &Env, host: &str, images: Vec<String>, f: impl FnOnce(&mut OciMirrorConfig)) -> OciMirror {
    let tm = Arc::new(TrustedMaterial::from_json("testbed", &std::fs::read(&e.tb.env["TRUSTED_ROOT"]).unwrap()).unwrap());
    let vendor = std::fs::read_to_string(&e.tb.env["VENDOR_COSIGN_PUB"]).unwrap();
    let key = match trustmirror::core::verify::Authority::key_pem("vendor", &vendor).unwrap() {
        trustmirror::core::verify::Authority::Key { name, spki_der } => (name, spki_der),
        _ => unreachable!(),
    };
    let mut cfg = OciMirrorConfig {
        images,
        registry: RegistryOptions { insecure_hosts: vec![host.into()], timeout: Some(Duration::from_secs(2)), ..Default::default() },
        keys: vec![key],
        retries: 1,
        op_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    f(&mut cfg);
    OciMirror::new(e.store.clone(), cfg, e.clock.clone(), Arc::new(move || tm.clone()))
}

fn pusher(e: &Env) -> Pusher {
    let r = e.tb.registry.as_ref().unwrap();
    Pusher::new(&r.addr, r.registry_auth())
}

fn digest_of(e: &Env, scenario: &str) -> String {
    e.tb.scenario(scenario).unwrap().digest.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_is_verified_incremental_and_served() {
    let e = env().await;
    let m = mirror(&e, &e.proxy, vec![format!("{}/**", e.proxy)], |_| {});
    let r = m.sync().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.repositories, 13);
    // the multi-arch index: its record names both platform manifests, which are mirrored too
    let ma = one(&e.store, &digest_of(&e, "multi-arch")).unwrap().unwrap();
    assert_eq!(ma.children.len(), 2, "{ma:#?}");
    assert!(ma.media_type.contains("index"));
    assert!(ma.items.iter().filter(|i| matches!(i.status, ItemStatus::Verified { .. })).count() >= 5);
    for c in &ma.children {
        assert!(one(&e.store, c).unwrap().is_some(), "platform manifest {c} mirrored");
    }
    let good = one(&e.store, &digest_of(&e, "good")).unwrap().unwrap();
    let kinds = |k: ItemKind| good.items.iter().filter(|i| i.kind == k && matches!(i.status, ItemStatus::Verified { .. })).count();
    assert_eq!((kinds(ItemKind::Signature), kinds(ItemKind::Attestation), kinds(ItemKind::Bundle)), (1, 4, 5), "{good:#?}");
    // the fork's signature is cryptographically fine: identity is the admission policy's decision
    let fork = one(&e.store, &digest_of(&e, "wrong-workflow-fork")).unwrap().unwrap();
    assert!(matches!(&fork.items[0].status, ItemStatus::Verified { signer, .. } if signer.contains("attacker/app")));
    // unsigned: mirrored, with nothing found (admission can tell "nothing" from "not synced yet")
    let unsigned = one(&e.store, &digest_of(&e, "unsigned")).unwrap().unwrap();
    assert!(unsigned.items.is_empty());
    // key-signed material verified with the configured vendor key
    let vendor = one(&e.store, &digest_of(&e, "vendor-key-signed")).unwrap().unwrap();
    assert!(matches!(&vendor.items[0].status, ItemStatus::Verified { signer, .. } if signer == "vendor"));
    // tags resolved with their time
    let t = e.store.oci_tag(&format!("{}/myorg/app", e.proxy), "v1.2.3").unwrap().unwrap();
    assert_eq!(t.digest, digest_of(&e, "good"));
    assert!(e.store.oci_subjects_with_predicate("https://spdx.dev/Document").unwrap().iter().any(|(_, d)| *d == digest_of(&e, "good")));

    // nothing changed: the re-sync is one catalog request and one tag list per repository, and
    // nothing else (no auth probes either)
    e.ps.take_log();
    let r = m.sync().await;
    assert_eq!((r.digests_ingested, r.tags_resolved), (0, 0));
    let log: Vec<String> = e.ps.take_log();
    assert_eq!(log.len(), 1 + 13, "{log:#?}");

    // a second signature appended to the good image: the tag list does not change, so only the
    // periodic full re-check sees it
    let signer = e.tb.stack.keyless(&trustmirror::testbed::scenarios::good_identity(), e.tb.now);
    let px = pusher(&e);
    trustmirror::testbed::cosign::sign_image(&e.tb.stack, &px, "myorg/app", &digest_of(&e, "good"), &signer, e.tb.now, None).await.unwrap();
    assert_eq!(m.sync().await.digests_ingested, 0);
    e.clock.advance(jiff::SignedDuration::from_hours(2));
    let r = m.sync().await;
    assert!(r.digests_ingested >= 1, "{r:?}");
    let good = one(&e.store, &digest_of(&e, "good")).unwrap().unwrap();
    assert_eq!(good.items.iter().filter(|i| i.kind == ItemKind::Signature).count(), 2);

    // serving: listing with ETag, 304 on If-None-Match, records, blobs
    let metrics = Arc::new(trustmirror::serve::metrics::Metrics::new());
    let state = trustmirror::serve::AppState {
        store: e.store.clone(),
        clock: e.clock.clone(),
        repo: "default".into(),
        metrics,
        ingest: None,
        ingest_token: None,
        covers: None,
        tlog: None,
        tasks: trustmirror::supervise::Tasks::new(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, trustmirror::serve::router(state)).await.unwrap() });
    let c = reqwest::Client::new();
    let list = c.get(format!("http://{addr}/oci/v1/material")).send().await.unwrap();
    let etag = list.headers()["etag"].to_str().unwrap().to_string();
    let entries: Value = list.json().await.unwrap();
    assert!(entries.as_array().unwrap().len() >= 14);
    let again = c.get(format!("http://{addr}/oci/v1/material")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let rec: Value = c.get(format!("http://{addr}/oci/v1/material/{}", digest_of(&e, "good"))).send().await.unwrap().json().await.unwrap();
    let blob = rec["items"][0]["bundle"].as_str().unwrap();
    let b = c.get(format!("http://{addr}/oci/v1/blobs/{blob}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(trustmirror::core::digest::sha256_hex(&b), blob);
    assert_eq!(c.get(format!("http://{addr}/oci/v1/material/sha256:{}", "0".repeat(64))).send().await.unwrap().status(), 404);
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_registry_needs_credentials() {
    let e = env().await;
    let ra = e.tb.auth_registry.as_ref().unwrap().addr.clone();
    let anon = mirror(&e, &ra, vec![format!("{ra}/myorg/app:v1.2.3")], |_| {});
    let r = anon.sync().await;
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(e.store.oci_list().unwrap().is_empty(), "nothing stored without credentials");
    let authed = mirror(&e, &ra, vec![format!("{ra}/myorg/app:v1.2.3")], |c| {
        c.registry.per_host.insert(
            ra.clone(),
            trustmirror::mirror::oci::Credentials {
                username: Some(e.tb.env["REGISTRY_USER"].clone()),
                password: Some(e.tb.env["REGISTRY_PASS"].clone()),
                token: None,
            },
        );
    });
    let r = authed.sync().await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.items_verified, 1);
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_signatures_to_a_second_repository() {
    let e = env().await;
    let reg = e.tb.registry.as_ref().unwrap().addr.clone();
    let d = e.dir.path().join("registries.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("local.yaml"), format!("docker:\n  {reg}:\n    use-sigstore-attachments: true\n")).unwrap();
    let o = std::process::Command::new("skopeo")
        .args(["--registries.d", d.to_str().unwrap(), "copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{reg}/myorg/app:v1.2.3"))
        .arg(format!("docker://{reg}/mirror/app:v1.2.3"))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo: {}", String::from_utf8_lossy(&o.stderr));
    let m = mirror(&e, &reg, vec![format!("{reg}/mirror/*")], |_| {});
    let r = m.sync().await;
    assert!(r.errors.is_empty(), "{r:?}");
    let rec = one(&e.store, &digest_of(&e, "good")).unwrap().unwrap();
    assert_eq!(rec.repository, format!("{reg}/mirror/app"));
    let sig = rec.items.iter().find(|i| i.kind == ItemKind::Signature).expect("skopeo carried the .sig");
    assert!(matches!(&sig.status, ItemStatus::Verified { .. }), "{sig:?}");
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_api_is_used_when_the_registry_has_it() {
    let e = env().await;
    *e.ps.referrers_api.lock().unwrap() = true;
    let good = digest_of(&e, "good");
    // hide the tag-schema index: the bundles can only be found through the referrers API
    e.ps.fault(&format!("/manifests/{}", good.replacen(':', "-", 1)), PFault::Hide);
    let m = mirror(&e, &e.proxy, vec![format!("{}/myorg/app@{good}", e.proxy)], |_| {});
    e.ps.take_log();
    let r = m.sync().await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(e.ps.take_log().iter().any(|l| l.contains("/referrers/")));
    let rec = one(&e.store, &good).unwrap().unwrap();
    assert_eq!(
        rec.items.iter().filter(|i| i.kind == ItemKind::Bundle && matches!(i.status, ItemStatus::Verified { .. })).count(),
        5,
        "{rec:#?}"
    );
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registries_are_recorded_and_the_sync_goes_on() {
    let e = env().await;
    let px = pusher(&e);
    let good = digest_of(&e, "good");
    let unsigned = digest_of(&e, "unsigned");
    // 1. the good image's signature manifest copied onto the unsigned image ("points elsewhere")
    let (sig, _) = px.get_manifest("myorg/app", &format!("{}.sig", good.replacen(':', "-", 1))).await.unwrap().unwrap();
    let sm: Value = serde_json::from_slice(&sig).unwrap();
    for d in std::iter::once(sm["config"]["digest"].as_str().unwrap())
        .chain(sm["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()))
    {
        let r: oci_client::Reference = format!("{}/myorg/app@{d}", px.registry).parse().unwrap();
        let mut buf = vec![];
        px.client().pull_blob(&r, d, &mut buf).await.unwrap();
        px.push_blob("myorg/unsigned", &buf).await.unwrap();
    }
    px.push_manifest("myorg/unsigned", Some(&format!("{}.sig", unsigned.replacen(':', "-", 1))), OCI_MANIFEST, &sig).await.unwrap();
    // 2. corrupted payload blob for the fork image's signature
    let fork = digest_of(&e, "wrong-workflow-fork");
    let (fsig, _) = px.get_manifest("myorg/fork-signed", &format!("{}.sig", fork.replacen(':', "-", 1))).await.unwrap().unwrap();
    let fsig: Value = serde_json::from_slice(&fsig).unwrap();
    e.ps.fault(&format!("/blobs/{}", fsig["layers"][0]["digest"].as_str().unwrap()), PFault::Corrupt);
    // 3. an endless blob for the critical-cve image's signature payload
    let crit = digest_of(&e, "critical-cve");
    let (csig, _) = px.get_manifest("myorg/critical-cve", &format!("{}.sig", crit.replacen(':', "-", 1))).await.unwrap().unwrap();
    let csig: Value = serde_json::from_slice(&csig).unwrap();
    e.ps.fault(&format!("/blobs/{}", csig["layers"][0]["digest"].as_str().unwrap()), PFault::Endless);
    // 3b. an endless *manifest* (the .att tag of the SLSA-L1 image): refused while it streams
    let l1 = digest_of(&e, "slsa-level-1");
    e.ps.fault(&format!("/manifests/{}.att", l1.replacen(':', "-", 1)), PFault::Endless);
    // 4. the banned-package image's attestations hang
    let banned = digest_of(&e, "banned-package");
    e.ps.fault(&format!("/manifests/{}.att", banned.replacen(':', "-", 1)), PFault::Hang);
    // 5. a tag that moves while the sync runs: right after its resolution, v1.1.0 is re-pointed
    let moved_to = digest_of(&e, "rollback-unsigned");
    let (mv, _) = px.get_manifest("myorg/app", &moved_to).await.unwrap().unwrap();
    let registry = e.tb.registry.as_ref().unwrap().addr.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    e.ps.hook(
        "/v2/myorg/app/manifests/v1.1.0",
        Method::GET,
        Arc::new(move || {
            let (mv, registry, done) = (mv.clone(), registry.clone(), done_tx.clone());
            tokio::spawn(async move {
                let p = Pusher::new(&registry, RegistryAuth::Anonymous);
                p.push_manifest("myorg/app", Some("v1.1.0"), OCI_MANIFEST, &mv).await.unwrap();
                if let Some(tx) = done.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            });
        }),
    );
    let m = mirror(&e, &e.proxy, vec![format!("{}/myorg/**", e.proxy)], |_| {});
    let r = tokio::time::timeout(Duration::from_secs(60), m.sync()).await.expect("a hanging registry does not hang the sync");
    let errs = r.errors.iter().map(|(w, e)| format!("{w}: {e}")).collect::<Vec<_>>().join("\n");
    assert!(errs.contains(&fork) && (errs.contains("Invalid digest") || errs.contains("digest mismatch")), "{errs}");
    assert!(errs.contains(&crit) && errs.contains("exceeds"), "{errs}");
    assert!(errs.contains(&banned), "{errs}");
    assert!(errs.lines().any(|l| l.contains(&l1) && l.contains("exceeds")), "an endless manifest is cut off: {errs}");
    // nothing partial for the failed digests
    for d in [&fork, &crit, &banned, &l1] {
        assert!(one(&e.store, d).unwrap().is_none(), "{d} must not be stored");
    }
    // the replayed signature is recorded, refused, with its reason
    let rec = one(&e.store, &unsigned).unwrap().unwrap();
    assert!(
        matches!(&rec.items[0].status, ItemStatus::Rejected { check, reason } if check == "artifact" && reason.contains(&good)),
        "{rec:#?}"
    );
    // the others are fine
    assert!(one(&e.store, &good).unwrap().unwrap().items.iter().all(|i| matches!(i.status, ItemStatus::Verified { .. })));
    // the moved tag: this sync recorded what it resolved, with its material; the next sees the move
    done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let presigned = digest_of(&e, "rollback-presigned");
    assert_eq!(e.store.oci_tag(&format!("{}/myorg/app", e.proxy), "v1.1.0").unwrap().unwrap().digest, presigned);
    assert_eq!(one(&e.store, &presigned).unwrap().unwrap().items.len(), 10, "a .sig, four .att and five referrer bundles");
    e.ps.clear();
    e.clock.advance(jiff::SignedDuration::from_hours(2));
    let r = m.sync().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(e.store.oci_tag(&format!("{}/myorg/app", e.proxy), "v1.1.0").unwrap().unwrap().digest, moved_to);
    for d in [&fork, &crit, &banned, &l1] {
        assert!(one(&e.store, d).unwrap().is_some(), "{d} ingested once the registry behaves");
    }
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sync_resumes_without_partial_entries() {
    let e = env().await;
    let reg = e.tb.registry.as_ref().unwrap().addr.clone();
    let store = e.dir.path().join("killed.redb");
    let bin = env!("CARGO_BIN_EXE_trustmirror");
    let args = |full: bool| {
        let mut v = vec![
            "mirror".to_string(),
            "sync".into(),
            "--store".into(),
            store.display().to_string(),
            "--image".into(),
            format!("{reg}/**"),
            "--insecure-registry".into(),
            reg.clone(),
            "--trusted-root".into(),
            e.tb.env["TRUSTED_ROOT"].clone(),
            "--concurrency".into(),
            "2".into(),
        ];
        if full {
            v.push("--full".into());
        }
        v
    };
    // Kill right after the child reports its k-th stored digest: mid-sync by construction (the
    // event, not a guessed delay). A fresh store each time, so every kill starts a full sync.
    let mut held_after_kill = vec![];
    for k in [1usize, 3, 6] {
        let _ = std::fs::remove_file(&store);
        let mut child = std::process::Command::new(bin)
            .args(args(false))
            .env("TRUSTMIRROR_LOG", "trustmirror=debug")
            .env("TRUSTMIRROR_LOG_FORMAT", "text")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut stored = 0;
        for line in std::io::BufRead::lines(err).map_while(Result::ok) {
            if line.contains("material stored") {
                stored += 1;
                if stored == k {
                    break;
                }
            }
        }
        assert_eq!(stored, k, "the child finished before storing {k} digests");
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let s = Store::open(&store).unwrap();
        held_after_kill.push(s.oci_list().unwrap().len());
        for d in s.oci_list().unwrap().into_iter().map(|m| m.digest) {
            let rec = one(&s, &d).unwrap().unwrap();
            for i in &rec.items {
                for b in i.bundle.iter().chain(i.payload.iter()) {
                    assert!(s.has_blob(b).unwrap(), "{d}: item blob {b} missing after a kill");
                }
            }
        }
    }
    let out = std::process::Command::new(bin).args(args(true)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = Store::open(&store).unwrap();
    let n = s.oci_list().unwrap().len();
    assert!(n >= 17, "all digests ingested after resuming: {n}");
    // every kill landed mid-sync: some digests committed, not all
    for (k, held) in [1usize, 3, 6].iter().zip(&held_after_kill) {
        assert!(*held >= *k && *held < n, "kill after {k} stored digests left {held} of {n}: not mid-sync");
    }
    e.tb.shutdown().await;
}

/// The record of `digest` (these tests mirror one repository per image).
fn one(s: &Store, digest: &str) -> Result<Option<trustmirror::store::oci::MaterialRecord>, trustmirror::store::StoreError> {
    Ok(s.oci_records(digest)?.into_iter().next())
}
