//! The testbed, cross-checked by independent implementations: sigstore-python and
//! @sigstore/verify accept its bundles with its trusted root (and reject them for the wrong
//! identity), python-tuf reads its TUF repository, openssl verifies a cosign signature it made,
//! and ct-merkle verifies its log's proofs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::tool;
use serde_json::Value;
use trustmirror::testbed::oci::Pusher;
use trustmirror::testbed::scenarios::good_identity;
use trustmirror::testbed::{Testbed, TestbedOptions};

fn sigstore_python(tb: &Testbed, bundle: &Path, artifact: &str, identity: &str) -> Option<(bool, String)> {
    let bin = tool("venv/bin/sigstore")?;
    let out = Command::new(bin)
        .args(["--trust-config", &tb.env["TRUST_CONFIG"], "verify", "identity", "--offline", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", identity, "--cert-oidc-issuer", &good_identity().issuer, artifact])
        .output()
        .unwrap();
    Some((out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
}

fn sigstore_js(tb: &Testbed, bundle: &Path, artifact: Option<&Path>, identity: &str) -> Option<(bool, String)> {
    let nm = tool("node/node_modules")?;
    let mut c = Command::new("node");
    c.env("NODE_PATH", nm)
        .arg(common::repo_root().join("tests/interop/sigstore_verify.js"))
        .arg(bundle)
        .arg(&tb.env["TRUSTED_ROOT"])
        .args(["--san", identity, "--issuer", &good_identity().issuer]);
    if let Some(a) = artifact {
        c.arg("--artifact").arg(a);
    }
    let out = c.output().unwrap();
    Some((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned()))
}

async fn fetch_blob(px: &Pusher, repo: &str, digest: &str) -> Vec<u8> {
    let r: oci_client::Reference = format!("{}/{repo}@{digest}", px.registry).parse().unwrap();
    let mut out = Vec::new();
    px.client().pull_blob(&r, digest, &mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testbed_material_is_accepted_by_independent_verifiers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let tb = Testbed::up(TestbedOptions::new(dir.path())).await.unwrap();
    eprintln!("testbed (in-process, with registries and {} scenario images) ready in {:.2?}", tb.scenarios.len(), t0.elapsed());
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let id = good_identity();

    // 1. A blob bundle (hashedrekord + TSA) made by the testbed's signer.
    let signer = tb.stack.keyless(&id, tb.now);
    let artifact = work.join("artifact.txt");
    std::fs::write(&artifact, b"release artifact\n").unwrap();
    let signed = tb.stack.sign_blob(&signer, b"release artifact\n", tb.now);
    let blob_bundle = work.join("artifact.sigstore.json");
    std::fs::write(&blob_bundle, serde_json::to_vec(&signed.bundle).unwrap()).unwrap();

    // 2. The good image's SLSA provenance bundle, as attached to the registry (referrers tag schema).
    let good = tb.scenario("good").unwrap().clone();
    let reg = tb.registry.as_ref().unwrap();
    let px = Pusher::new(&reg.addr, reg.registry_auth());
    let (index, _) = px.get_manifest("myorg/app", &good.digest.replacen(':', "-", 1)).await.unwrap().expect("referrers index");
    let index: Value = serde_json::from_slice(&index).unwrap();
    let prov = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["dev.sigstore.bundle.predicateType"] == "https://slsa.dev/provenance/v1")
        .expect("provenance referrer")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (m, _) = px.get_manifest("myorg/app", &prov).await.unwrap().unwrap();
    let m: Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(m["subject"]["digest"], good.digest.as_str(), "referrer points at the image");
    let bundle_bytes = fetch_blob(&px, "myorg/app", m["layers"][0]["digest"].as_str().unwrap()).await;
    let dsse_bundle = work.join("provenance.sigstore.json");
    std::fs::write(&dsse_bundle, &bundle_bytes).unwrap();

    let wrong = "https://github.com/attacker/app/.github/workflows/build.yml@refs/heads/main";
    let (tb_ref, blob_b, dsse_b, art, dig) = (&tb, blob_bundle.clone(), dsse_bundle.clone(), artifact.clone(), good.digest.clone());
    let san = id.san.clone();
    let checks = tokio::task::block_in_place(|| {
        let mut ran = 0;
        if let Some((ok, out)) = sigstore_python(tb_ref, &blob_b, art.to_str().unwrap(), &san) {
            assert!(ok, "sigstore-python rejected the blob bundle: {out}");
            let (ok, _) = sigstore_python(tb_ref, &blob_b, art.to_str().unwrap(), wrong).unwrap();
            assert!(!ok, "sigstore-python accepted the wrong identity");
            let (ok, out) = sigstore_python(tb_ref, &dsse_b, &dig, &san).unwrap();
            assert!(ok, "sigstore-python rejected the provenance bundle for {dig}: {out}");
            let other = format!("sha256:{}", "0".repeat(64));
            let (ok, _) = sigstore_python(tb_ref, &dsse_b, &other, &san).unwrap();
            assert!(!ok, "sigstore-python accepted the provenance for another digest");
            ran += 1;
        }
        if let Some((ok, out)) = sigstore_js(tb_ref, &blob_b, Some(&art), &san) {
            assert!(ok, "@sigstore/verify rejected the blob bundle: {out}");
            let (ok, _) = sigstore_js(tb_ref, &blob_b, Some(&art), wrong).unwrap();
            assert!(!ok, "@sigstore/verify accepted the wrong identity");
            let (ok, out) = sigstore_js(tb_ref, &dsse_b, None, &san).unwrap();
            assert!(ok, "@sigstore/verify rejected the provenance bundle: {out}");
            ran += 1;
        }
        ran
    });
    common::assert_interop_ran("independent Sigstore verifiers (sigstore-python, @sigstore/verify)", checks, 2);

    // 3. python-tuf reads the testbed's TUF repository and gets the same trusted root.
    let mut python_tuf = 0;
    if let Some(py) = tool("venv/bin/python") {
        python_tuf += 1;
        let out = Command::new(py)
            .arg(common::repo_root().join("tests/interop/tuf_fetch.py"))
            .args([
                tb.env["TUF_URL"].as_str(),
                tb.env["TUF_ROOT"].as_str(),
                work.join("tufcache").to_str().unwrap(),
                "trusted_root.json",
                "rekor.pub",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "python-tuf: {}", String::from_utf8_lossy(&out.stderr));
        let first: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
        let want = trustmirror::core::digest::sha256_hex(
            &std::fs::read(
                tb.tuf.lock().unwrap().dir.join("targets").join(format!("{}.trusted_root.json", first["sha256"].as_str().unwrap())),
            )
            .unwrap(),
        );
        assert_eq!(first["sha256"].as_str().unwrap(), want);
        let served: Value = serde_json::from_slice(&std::fs::read(work.join("tufcache/targets/trusted_root.json")).unwrap()).unwrap();
        let local: Value = serde_json::from_slice(&std::fs::read(&tb.env["TRUSTED_ROOT"]).unwrap()).unwrap();
        assert_eq!(served, local, "the TUF repository publishes the testbed's trusted root");
    }
    common::assert_interop_ran("python-tuf on the testbed's repository", python_tuf, 1);

    // 4. openssl verifies a cosign .sig layer signature with the key from the certificate.
    let (sig_m, _) = px.get_manifest("myorg/app", &format!("{}.sig", good.digest.replacen(':', "-", 1))).await.unwrap().unwrap();
    let sig_m: Value = serde_json::from_slice(&sig_m).unwrap();
    let layer = &sig_m["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    let payload = fetch_blob(&px, "myorg/app", layer["digest"].as_str().unwrap()).await;
    let p: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(p["critical"]["image"]["docker-manifest-digest"], good.digest.as_str());
    std::fs::write(work.join("payload"), &payload).unwrap();
    std::fs::write(work.join("sig.der"), B64.decode(layer["annotations"]["dev.cosignproject.cosign/signature"].as_str().unwrap()).unwrap())
        .unwrap();
    std::fs::write(work.join("cert.pem"), layer["annotations"]["dev.sigstore.cosign/certificate"].as_str().unwrap()).unwrap();
    let pubkey = Command::new("openssl").args(["x509", "-pubkey", "-noout", "-in"]).arg(work.join("cert.pem")).output().unwrap();
    assert!(pubkey.status.success());
    std::fs::write(work.join("pub.pem"), &pubkey.stdout).unwrap();
    let v = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(work.join("pub.pem"))
        .arg("-signature")
        .arg(work.join("sig.der"))
        .arg(work.join("payload"))
        .output()
        .unwrap();
    assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).contains("Verified OK"), "openssl: {v:?}");
    // and openssl reads the Fulcio extensions we claim to set
    let text = Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(work.join("cert.pem")).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1.3.6.1.4.1.57264.1.8") && text.contains("CT Precertificate SCTs") && text.contains("Code Signing"), "{text}");

    // 5. The TSA over HTTP, checked by `openssl ts`: request, reply, verify against the chain.
    let tsq = work.join("req.tsq");
    let q =
        Command::new("openssl").args(["ts", "-query", "-sha256", "-cert", "-data"]).arg(&artifact).arg("-out").arg(&tsq).output().unwrap();
    assert!(q.status.success(), "{q:?}");
    let reply = reqwest::Client::new()
        .post(&tb.env["TSA_URL"])
        .header("content-type", "application/timestamp-query")
        .body(std::fs::read(&tsq).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    std::fs::write(work.join("resp.tsr"), reply.bytes().await.unwrap()).unwrap();
    let chain = tb.stack.tsa.chain();
    std::fs::write(work.join("tsa-root.pem"), trustmirror::testbed::keys::pem("CERTIFICATE", &chain[2])).unwrap();
    std::fs::write(
        work.join("tsa-untrusted.pem"),
        format!(
            "{}{}",
            trustmirror::testbed::keys::pem("CERTIFICATE", &chain[0]),
            trustmirror::testbed::keys::pem("CERTIFICATE", &chain[1])
        ),
    )
    .unwrap();
    let v = Command::new("openssl")
        .args(["ts", "-verify", "-data"])
        .arg(&artifact)
        .arg("-in")
        .arg(work.join("resp.tsr"))
        .arg("-CAfile")
        .arg(work.join("tsa-root.pem"))
        .arg("-untrusted")
        .arg(work.join("tsa-untrusted.pem"))
        .output()
        .unwrap();
    assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).contains("Verification: OK"), "openssl ts -verify: {v:?}");
    let tampered = work.join("other.txt");
    std::fs::write(&tampered, b"other").unwrap();
    let v = Command::new("openssl")
        .args(["ts", "-verify", "-data"])
        .arg(&tampered)
        .arg("-in")
        .arg(work.join("resp.tsr"))
        .arg("-CAfile")
        .arg(work.join("tsa-root.pem"))
        .arg("-untrusted")
        .arg(work.join("tsa-untrusted.pem"))
        .output()
        .unwrap();
    assert!(!v.status.success(), "openssl accepted a timestamp for other data");

    tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekor_api_proofs_verify_and_the_fork_hook_splits_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path());
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let signer = tb.stack.keyless(&good_identity(), tb.now);
    for i in 0..6 {
        tb.stack.sign_blob(&signer, format!("artifact {i}").as_bytes(), tb.now);
    }
    let c = reqwest::Client::new();
    let base = tb.base_url();
    let log: Value = c.get(format!("{base}/api/v1/log")).send().await.unwrap().json().await.unwrap();
    let size = log["treeSize"].as_u64().unwrap();
    assert_eq!(size, 7);
    // inclusion proof of entry 3 verifies with ct-merkle against the served root
    let e: Value = c.get(format!("{base}/api/v1/log/entries?logIndex=3")).send().await.unwrap().json().await.unwrap();
    let (_, e) = e.as_object().unwrap().iter().next().unwrap();
    let body = B64.decode(e["body"].as_str().unwrap()).unwrap();
    let proof = &e["verification"]["inclusionProof"];
    let hashes: Vec<[u8; 32]> =
        proof["hashes"].as_array().unwrap().iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect();
    let root: [u8; 32] = hex::decode(proof["rootHash"].as_str().unwrap()).unwrap().try_into().unwrap();
    let rh = ct_merkle::RootHash::<sha2_11::Sha256>::new(root.into(), proof["treeSize"].as_u64().unwrap());
    rh.verify_inclusion(&body, 3, &ct_merkle::InclusionProof::from_digests(hashes.iter().map(|h| h.into()))).expect("inclusion proof");
    // consistency proof 4 -> 7
    let cp: Value = c.get(format!("{base}/api/v1/log/proof?firstSize=4&lastSize=7")).send().await.unwrap().json().await.unwrap();
    let old_root = trustmirror::core::merkle::root(&tb.stack.rekor.lock().unwrap().leaf_hashes()[..4]);
    let hashes: Vec<[u8; 32]> =
        cp["hashes"].as_array().unwrap().iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect();
    let new_root: [u8; 32] = hex::decode(log["rootHash"].as_str().unwrap()).unwrap().try_into().unwrap();
    ct_merkle::RootHash::<sha2_11::Sha256>::new(new_root.into(), 7)
        .verify_consistency(
            &ct_merkle::RootHash::new(old_root.into(), 4),
            &ct_merkle::ConsistencyProof::from_digests(hashes.iter().map(|h| h.into())),
        )
        .expect("consistency proof");
    assert_eq!(c.get(format!("{base}/api/v1/log/proof?firstSize=9&lastSize=7")).send().await.unwrap().status(), 400);

    // fork: the same tree size now comes with another root, both signed by the log key
    let before = log["signedTreeHead"].as_str().unwrap().to_string();
    assert_eq!(c.post(format!("{base}/testbed/rekor/fork")).send().await.unwrap().status(), 200);
    let after: Value = c.get(format!("{base}/api/v1/log")).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["treeSize"].as_u64(), Some(8));
    let root_after_7: Value = c.get(format!("{base}/api/v1/log/proof?firstSize=7&lastSize=8")).send().await.unwrap().json().await.unwrap();
    let proof_hashes: Vec<[u8; 32]> =
        root_after_7["hashes"].as_array().unwrap().iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect();
    let forked_root: [u8; 32] = hex::decode(after["rootHash"].as_str().unwrap()).unwrap().try_into().unwrap();
    // the forked 8-leaf tree is consistent with the 7-leaf one it grew from…
    ct_merkle::RootHash::<sha2_11::Sha256>::new(forked_root.into(), 8)
        .verify_consistency(
            &ct_merkle::RootHash::new(new_root.into(), 7),
            &ct_merkle::ConsistencyProof::from_digests(proof_hashes.iter().map(|h| h.into())),
        )
        .expect("fork view is internally consistent");
    // …but the honest view grows differently: same size 8, different root
    tb.stack.sign_blob(&signer, b"honest entry", tb.now);
    let honest = tb.stack.rekor.lock().unwrap().checkpoint_of(false, 8);
    let forked = after["signedTreeHead"].as_str().unwrap();
    assert_ne!(honest.lines().nth(2), forked.lines().nth(2), "two signed checkpoints of size 8 with different roots");
    assert_ne!(before, forked);
    tb.shutdown().await;
}

#[test]
fn cli_up_is_fast_deterministic_and_down_stops_everything() {
    let bin = env!("CARGO_BIN_EXE_trustmirror");
    let mut digests = vec![];
    for run in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let out = Command::new(bin).args(["testbed", "up", "--dir", dir.path().to_str().unwrap()]).output().unwrap();
        let took = t0.elapsed();
        assert!(out.status.success(), "testbed up: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("run {run}: testbed up ready in {took:.2?}");
        let env = trustmirror::testbed::read_env(dir.path()).unwrap();
        for k in ["TESTBED_URL", "TUF_URL", "TUF_ROOT", "REKOR_URL", "TSA_URL", "TRUSTED_ROOT", "REGISTRY", "REGISTRY_AUTH", "SCENARIOS"] {
            assert!(env.contains_key(k), "env lacks {k}");
        }
        // the auth registry refuses anonymous access
        let status = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{}/v2/", env["REGISTRY_AUTH"])])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&status.stdout), "401");
        let sc: Value = serde_json::from_slice(&std::fs::read(&env["SCENARIOS"]).unwrap()).unwrap();
        let names: Vec<&str> = sc.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        let mut published = names.clone();
        published.sort();
        let mut want = trustmirror::testbed::scenarios::SCENARIOS.to_vec();
        want.sort();
        assert_eq!(published, want, "the testbed publishes exactly the scenarios of the table");
        digests.push(sc.as_array().unwrap().iter().map(|s| s["digest"].as_str().unwrap().to_string()).collect::<Vec<_>>());
        let pids: Vec<i32> = std::iter::once(env["PID"].parse().unwrap())
            .chain(env["REGISTRY_PIDS"].split_whitespace().map(|p| p.parse().unwrap()))
            .collect();
        let down = Command::new(bin).args(["testbed", "down", "--dir", dir.path().to_str().unwrap()]).output().unwrap();
        assert!(down.status.success());
        // `down` waits for the testbed to exit and SIGKILLs its registries; their exit is
        // reaped asynchronously, so wait for each to be gone (bounded)
        for p in pids {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while running(p) {
                assert!(std::time::Instant::now() < deadline, "process {p} still running 10 s after down");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        assert!(!dir.path().join("env").exists());
    }
    assert_eq!(digests[0], digests[1], "same seed, same images");
}

/// Alive and not a zombie (an unreaped exited process still answers kill(pid, 0)).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_follows_the_testbed_tuf_repository_through_its_operations() {
    use std::sync::Arc;
    use trustmirror::core::clock::ManualClock;
    use trustmirror::mirror::tuf_mirror::{TufMirror, TufMirrorConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path());
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let store = Arc::new(trustmirror::store::Store::open(dir.path().join("mirror.redb")).unwrap());
    let clock = Arc::new(ManualClock::new(tb.now));
    let m = TufMirror::new(
        store.clone(),
        TufMirrorConfig {
            repo: "default".into(),
            upstream: trustmirror::mirror::upstream::Upstream::parse(&tb.env["TUF_URL"], &Default::default()).unwrap(),
            pinned_root: std::fs::read(&tb.env["TUF_ROOT"]).unwrap(),
            limits: Default::default(),
            root_probe_interval: jiff::SignedDuration::ZERO,
            targets: None,
        },
        clock.clone(),
    );
    m.refresh().await.unwrap();
    let tr = &store.tuf_targets("default").unwrap()["trusted_root.json"];
    assert_eq!(tr.sha256, trustmirror::core::digest::sha256_hex(&std::fs::read(&tb.env["TRUSTED_ROOT"]).unwrap()));

    // new target, timestamp re-signing, root rotation, expiry — each seen by the mirror
    {
        let mut r = tb.tuf.lock().unwrap();
        r.add_target("targets", "extra.json", b"{}");
        r.publish_targets(&["targets"]).unwrap();
    }
    assert!(m.refresh().await.unwrap().changed);
    assert!(store.tuf_targets("default").unwrap().contains_key("extra.json"));
    tb.tuf.lock().unwrap().publish_timestamp().unwrap();
    let s = m.refresh().await.unwrap();
    assert!(s.changed && s.targets_downloaded == 0, "{s:?}");
    {
        let mut r = tb.tuf.lock().unwrap();
        r.rotate_keys("root").unwrap();
        r.rotate_keys("timestamp").unwrap();
        r.publish_timestamp().unwrap();
    }
    m.refresh().await.unwrap();
    assert_eq!(store.tuf_current("default", "root").unwrap().unwrap().0, 3);
    clock.set(tb.now.checked_add(jiff::SignedDuration::from_hours(24 * 8)).unwrap());
    let e = m.refresh().await.unwrap_err();
    assert_eq!(e.kind, trustmirror::core::tuf::TufErrorKind::Expired, "the testbed timestamp lives 7 days: {e}");
    tb.shutdown().await;
}
