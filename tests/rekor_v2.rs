//! cosign v3's defaults on the testbed: bundles v0.3 logged in a Rekor v2 log (hashedrekord
//! 0.0.2 in a tlog-tiles log: no integrated time, no SET, an inclusion proof to an Ed25519
//! checkpoint) with the RFC 3161 timestamp v2 requires — keyless and key-signed, blobs and DSSE.
//! Verified offline with the expected signer only; the mirror stores them `verified` (or
//! `needs-key` without the key) and admission decides them.

mod common;

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use trustmirror::admission::{Engine, EngineOptions};
use trustmirror::core::clock::SystemClock;
use trustmirror::core::evidence::COSIGN_SIGN_V1;
use trustmirror::core::material::ItemStatus;
use trustmirror::core::verify::{Authority, Check, IdentityPolicy, Matcher, Subject, TrustedMaterial, verify_bundle};
use trustmirror::mirror::oci::{OciMirror, OciMirrorConfig, RegistryOptions};
use trustmirror::store::Store;
use trustmirror::testbed::cosign::{STATEMENT_V1, attach_bundle, statement};
use trustmirror::testbed::oci::{Pusher, push_scratch_image};
use trustmirror::testbed::pki::Identity;
use trustmirror::testbed::sigstore::{Signer, SigstoreStack};
use trustmirror::testbed::{Testbed, TestbedOptions};
use trustmirror::trust::{TrustConfig, TrustSource};

const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

fn keyless(id: &Identity) -> Authority {
    Authority::Keyless(IdentityPolicy {
        san: Some(Matcher::Exact(id.san.clone())),
        issuer: Some(Matcher::Exact(id.issuer.clone())),
        ..Default::default()
    })
}

fn key_of(s: &Signer) -> Authority {
    Authority::Key { name: "vendor".into(), spki_der: s.key().spki.clone() }
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn rekor_v2_bundles_verify_with_their_signer_only() {
    let now = jiff::Timestamp::now();
    let stack = SigstoreStack::new("rekor-v2", now);
    let tm = TrustedMaterial::from_json("tiles", stack.trusted_root_with_tiles("http://127.0.0.1:1").to_string().as_bytes()).unwrap();
    let id = Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/main");
    let other = Identity::github_workflow("myorg/other", ".github/workflows/build.yml", "refs/heads/main");
    let later = now.checked_add(jiff::SignedDuration::from_mins(1)).unwrap();

    // keyless blob
    let signer = stack.keyless(&id, now);
    let b = stack.sign_blob_rekor_v2(&signer, b"release.tar", now);
    let e = &b["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(e["kindVersion"], json!({"kind": "hashedrekord", "version": "0.0.2"}));
    assert!(e.get("inclusionPromise").is_none() && e.get("integratedTime").is_none(), "{e}");
    let v = verify_bundle(&tm, &bytes(&b), Subject::Blob(b"release.tar"), &keyless(&id), later).unwrap();
    assert_eq!(v.signer, id.san);
    assert!(v.integrated_time.is_none() && !v.timestamps.is_empty(), "the signing time is the TSA's");
    assert_eq!(verify_bundle(&tm, &bytes(&b), Subject::Blob(b"release.tar"), &keyless(&other), later).unwrap_err().check, Check::Identity);
    assert_eq!(verify_bundle(&tm, &bytes(&b), Subject::Blob(b"other.tar"), &keyless(&id), later).unwrap_err().check, Check::Artifact);

    // key-signed blob (the entry logs the public key)
    let vendor = stack.static_key("vendor");
    let kb = stack.sign_blob_rekor_v2(&vendor, b"tool.tar", now);
    verify_bundle(&tm, &bytes(&kb), Subject::Blob(b"tool.tar"), &key_of(&vendor), later).unwrap();
    let stranger = stack.static_key("stranger");
    assert_eq!(verify_bundle(&tm, &bytes(&kb), Subject::Blob(b"tool.tar"), &key_of(&stranger), later).unwrap_err().check, Check::Key);

    // keyless DSSE attestation (hashedrekord 0.0.2 over the PAE)
    let digest = format!("sha256:{}", "ab".repeat(32));
    let st = statement(STATEMENT_V1, "registry.internal/myorg/app", &digest, SLSA_V1, &json!({"buildDefinition": {}}));
    let a = stack.attest_rekor_v2(&stack.keyless(&id, now), &st, now);
    let v = verify_bundle(&tm, &bytes(&a), Subject::Sha256([0xab; 32]), &keyless(&id), later).unwrap();
    assert_eq!(v.statement.unwrap().predicate_type, SLSA_V1);
    assert_eq!(verify_bundle(&tm, &bytes(&a), Subject::Sha256([0xcd; 32]), &keyless(&id), later).unwrap_err().check, Check::Artifact);

    // refused: without the timestamp v2 requires; a trusted root that does not list the v2 log;
    // a proof that does not reach the checkpoint; a checkpoint signed by another key
    let mut t = b.clone();
    t["verificationMaterial"].as_object_mut().unwrap().remove("timestampVerificationData");
    let e = verify_bundle(&tm, &bytes(&t), Subject::Blob(b"release.tar"), &keyless(&id), later).unwrap_err();
    assert_eq!(e.check, Check::Timestamp, "{e}");
    let v1_only = TrustedMaterial::from_json("v1", stack.trusted_root("http://127.0.0.1:1").to_string().as_bytes()).unwrap();
    let e = verify_bundle(&v1_only, &bytes(&b), Subject::Blob(b"release.tar"), &keyless(&id), later).unwrap_err();
    assert_eq!(e.check, Check::TransparencyLog, "{e}");
    let mut t = b.clone();
    t["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"] =
        json!([base64::engine::general_purpose::STANDARD.encode([9u8; 32])]);
    let e = verify_bundle(&tm, &bytes(&t), Subject::Blob(b"release.tar"), &keyless(&id), later).unwrap_err();
    assert_eq!(e.check, Check::TransparencyLog, "{e}");
    let forger = SigstoreStack::new("forger", now);
    let forged_cp = forger.sign_blob_rekor_v2(&forger.keyless(&id, now), b"x", now)["verificationMaterial"]["tlogEntries"][0]
        ["inclusionProof"]["checkpoint"]
        .clone();
    let mut t = b.clone();
    t["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"] = forged_cp;
    let e = verify_bundle(&tm, &bytes(&t), Subject::Blob(b"release.tar"), &keyless(&id), later).unwrap_err();
    assert_eq!(e.check, Check::TransparencyLog, "{e}");
}

/// The testbed's Rekor v2 form is what real clients accept: sigstore-python and @sigstore/verify
/// verify a keyless v2 blob bundle with the testbed's trusted root (listing the v2 log) and refuse
/// it for another identity.
#[test]
fn independent_verifiers_accept_the_testbeds_rekor_v2_bundles() {
    let now = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_mins(5)).unwrap();
    let stack = SigstoreStack::new("rekor-v2-interop", now);
    // checkpoints are signed under the log's origin, which @sigstore/verify matches to its URL
    stack.rekor.lock().unwrap().set_host("127.0.0.1:1");
    let dir = tempfile::tempdir().unwrap();
    let tr = stack.trusted_root_with_tiles("http://127.0.0.1:1");
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, tr.to_string()).unwrap();
    let tc = dir.path().join("trust_config.json");
    std::fs::write(
        &tc,
        json!({"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json", "trustedRoot": tr,
            "signingConfig": stack.signing_config("http://127.0.0.1:1")})
        .to_string(),
    )
    .unwrap();
    let id = Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/main");
    let artifact = dir.path().join("artifact.txt");
    std::fs::write(&artifact, b"release artifact\n").unwrap();
    let bundle = dir.path().join("artifact.sigstore.json");
    std::fs::write(&bundle, bytes(&stack.sign_blob_rekor_v2(&stack.keyless(&id, now), b"release artifact\n", now))).unwrap();
    let wrong = "https://github.com/attacker/app/.github/workflows/build.yml@refs/heads/main";
    let run = |c: &mut Command| {
        let o = c.output().unwrap();
        (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let mut ran = 0;
    if let Some(bin) = common::tool("venv/bin/sigstore") {
        let py = |san: &str| {
            run(Command::new(&bin)
                .args(["--trust-config", tc.to_str().unwrap(), "verify", "identity", "--offline", "--bundle"])
                .arg(&bundle)
                .args(["--cert-identity", san, "--cert-oidc-issuer", &id.issuer])
                .arg(&artifact))
        };
        let (ok, out) = py(&id.san);
        assert!(ok, "sigstore-python rejected the Rekor v2 bundle: {out}");
        assert!(!py(wrong).0, "sigstore-python accepted the wrong identity");
        ran += 1;
    }
    if let Some(nm) = common::tool("node/node_modules") {
        let js = |san: &str| {
            run(Command::new("node")
                .env("NODE_PATH", &nm)
                .arg(common::repo_root().join("tests/interop/sigstore_verify.js"))
                .arg(&bundle)
                .arg(&root)
                .args(["--san", san, "--issuer", &id.issuer, "--artifact"])
                .arg(&artifact))
        };
        let (ok, out) = js(&id.san);
        assert!(ok, "@sigstore/verify rejected the Rekor v2 bundle: {out}");
        assert!(!js(wrong).0, "@sigstore/verify accepted the wrong identity");
        ran += 1;
    }
    common::assert_interop_ran("independent Sigstore verifiers on Rekor v2 bundles", ran, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekor_v2_referrers_are_mirrored_and_decided() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up(TestbedOptions::new(dir.path().join("tb"))).await.unwrap();
    let reg = tb.registry.as_ref().unwrap();
    let registry = tb.env["REGISTRY"].clone();
    let px = Pusher::new(&reg.addr, reg.registry_auth());
    let root_file = dir.path().join("trusted_root.json");
    std::fs::write(&root_file, tb.stack.trusted_root_with_tiles(&tb.base_url()).to_string()).unwrap();
    let id = Identity::github_workflow("myorg/v2app", ".github/workflows/build.yml", "refs/heads/main");

    // a keyless-signed and attested image, and a key-signed one, all cosign v3 style (referrers)
    let app = push_scratch_image(&px, "myorg/v2app", "v1", "v2app", b"v2 app\n").await.unwrap();
    let app_repo = format!("{registry}/myorg/v2app");
    let sig = statement(STATEMENT_V1, &app_repo, &app.digest, COSIGN_SIGN_V1, &json!({}));
    let slsa = statement(STATEMENT_V1, &app_repo, &app.digest, SLSA_V1, &json!({"buildDefinition": {"buildType": "b"}}));
    for (st, pt) in [(&sig, COSIGN_SIGN_V1), (&slsa, SLSA_V1)] {
        let b = tb.stack.attest_rekor_v2(&tb.stack.keyless(&id, tb.now), st, tb.now);
        attach_bundle(&px, "myorg/v2app", &app.digest, app.manifest.len(), &b, Some(pt)).await.unwrap();
    }
    let tool = push_scratch_image(&px, "vendor/v2tool", "v1", "v2tool", b"v2 tool\n").await.unwrap();
    let tool_repo = format!("{registry}/vendor/v2tool");
    let vendor = tb.stack.static_key("vendor");
    let b = tb.stack.attest_rekor_v2(&vendor, &statement(STATEMENT_V1, &tool_repo, &tool.digest, COSIGN_SIGN_V1, &json!({})), tb.now);
    attach_bundle(&px, "vendor/v2tool", &tool.digest, tool.manifest.len(), &b, Some(COSIGN_SIGN_V1)).await.unwrap();

    let mirror = |store: &Arc<Store>, keys: Vec<(String, Vec<u8>)>| {
        let trust = Arc::new(TrustSource::new(store.clone(), TrustConfig { explicit: Some(root_file.clone()), ..Default::default() }));
        let cfg = OciMirrorConfig {
            registry: RegistryOptions { insecure_hosts: vec![registry.clone()], ..Default::default() },
            keys,
            ..Default::default()
        };
        OciMirror::new(store.clone(), cfg, Arc::new(SystemClock), trust)
    };
    let statuses = |store: &Store, repo: &str, digest: &str| -> Vec<ItemStatus> {
        store.oci_material(repo, digest).unwrap().unwrap().items.iter().map(|i| i.status.clone()).collect()
    };
    let verified = |s: &[ItemStatus]| s.iter().filter(|x| matches!(x, ItemStatus::Verified { .. })).count();

    // with the vendor key: everything verified
    let store = Arc::new(Store::open(dir.path().join("s.redb")).unwrap());
    let m = mirror(&store, vec![("vendor".into(), vendor.key().spki.clone())]);
    m.ingest_reference(&format!("{app_repo}@{}", app.digest)).await.unwrap();
    m.ingest_reference(&format!("{tool_repo}@{}", tool.digest)).await.unwrap();
    let s = statuses(&store, &app_repo, &app.digest);
    assert_eq!(verified(&s), 2, "{s:?}");
    let s = statuses(&store, &tool_repo, &tool.digest);
    assert_eq!(verified(&s), 1, "{s:?}");
    // without it: the key-signed one needs a key, never verified or rejected
    let nokey = Arc::new(Store::open(dir.path().join("nokey.redb")).unwrap());
    mirror(&nokey, vec![]).ingest_reference(&format!("{tool_repo}@{}", tool.digest)).await.unwrap();
    let s = statuses(&nokey, &tool_repo, &tool.digest);
    assert!(s.iter().all(|x| matches!(x, ItemStatus::NeedsKey)) && !s.is_empty(), "{s:?}");

    // admission from that store: the expected identity (with its SLSA attestation) and the
    // vendor key admit; another identity does not
    let vendor_pem: String = vendor.key().public_pem().lines().map(|l| format!("        {l}\n")).collect();
    let policy = |subject: &str| {
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: app}}\nspec:\n  images: [{{glob: \"{app_repo}*\"}}]\n  authorities:\n  - keyless:\n      identities: [{{issuer: \"{}\", subject: \"{subject}\"}}]\n    attestations:\n    - name: slsa\n      predicateType: {SLSA_V1}\n---\napiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: tool}}\nspec:\n  images: [{{glob: \"{tool_repo}*\"}}]\n  authorities:\n  - key:\n      data: |\n{vendor_pem}",
            id.issuer
        )
    };
    let decide = |subject: &str, reference: &str| {
        let p = dir.path().join(format!("policy-{}.yaml", rand::random::<u32>()));
        std::fs::write(&p, policy(subject)).unwrap();
        let opts = EngineOptions {
            policy_files: vec![p],
            trust: TrustConfig { explicit: Some(root_file.clone()), ..Default::default() },
            ..Default::default()
        };
        let e = Engine::new(store.clone(), Arc::new(SystemClock), opts, None).unwrap();
        let o = e.decide_image("prod", reference, None);
        o.enforced().map(|v| v.message.clone()).collect::<Vec<_>>()
    };
    let app_ref = format!("{app_repo}@{}", app.digest);
    let tool_ref = format!("{tool_repo}@{}", tool.digest);
    assert_eq!(decide(&id.san, &app_ref), Vec::<String>::new());
    assert_eq!(decide(&id.san, &tool_ref), Vec::<String>::new());
    let denied = decide("https://github.com/myorg/other/.github/workflows/build.yml@refs/heads/main", &app_ref);
    assert!(!denied.is_empty(), "another identity must not admit");
    tb.shutdown().await;
}
