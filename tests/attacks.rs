//! The bypasses a registry pusher (no signing identity, no trusted key), a hostile upstream or an
//! operator's typo would try, each reproduced against the real registry and testbed, and each
//! stopped. One test per attack, named after it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use trustmirror::admission::{Engine, EngineOptions, ImageOutcome, review};
use trustmirror::core::clock::SystemClock;
use trustmirror::core::evidence::COSIGN_SIGN_V1;
use trustmirror::core::policy::Property;
use trustmirror::store::admission::{Exemption, Scope};
use trustmirror::testbed::cosign::{STATEMENT_V1, attach_bundle, attest_image, sign_image, statement};
use trustmirror::testbed::lab::{Lab, LabOptions};
use trustmirror::testbed::oci::{Pusher, push_scratch_image};
use trustmirror::testbed::predicates as p;
use trustmirror::testbed::scenarios::good_identity;
use trustmirror::testbed::sigstore::Signer;

async fn lab() -> (Lab, tempfile::TempDir) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let d = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(d.path().join("lab"));
    o.keep_testbed = true;
    (Lab::up(o).await.unwrap(), d)
}

fn pusher(lab: &Lab) -> Pusher {
    let reg = lab.testbed.as_ref().unwrap().registry.as_ref().unwrap();
    Pusher::new(&reg.addr, reg.registry_auth())
}

/// An engine over the lab's store with `policy` (YAML) instead of the demo's.
fn engine(lab: &Lab, policy: &str) -> Result<Engine, String> {
    let p = lab.dir.join(format!("policy-{}.yaml", rand::random::<u32>()));
    std::fs::write(&p, policy).unwrap();
    Engine::new(lab.store.clone(), Arc::new(SystemClock), EngineOptions { policy_files: vec![p], ..Default::default() }, None)
        .map_err(|e| format!("{e:#}"))
}

fn props(o: &ImageOutcome) -> Vec<Property> {
    o.violations.iter().map(|v| v.property).collect()
}

fn messages(o: &ImageOutcome) -> String {
    o.violations.iter().map(|v| format!("{}: {}", v.property.as_str(), v.message)).collect::<Vec<_>>().join(" | ")
}

fn key_policy(registry: &str, repo_glob: &str, pem: &str, extra: &str) -> String {
    let key: String = pem.lines().map(|l| format!("        {l}\n")).collect();
    format!(
        "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: key-policy}}\nspec:\n  images: [\"{registry}/{repo_glob}\"]\n  authorities:\n  - name: second-vendor\n    key:\n      data: |\n{key}{extra}"
    )
}

/// A key the mirror was never given: its signatures are verified at admission.
fn second_vendor(lab: &Lab) -> (Signer, String) {
    let s = lab.testbed.as_ref().unwrap().stack.static_key("second-vendor");
    let pem = match &s {
        Signer::Key { key } => key.public_pem(),
        _ => unreachable!(),
    };
    (s, pem)
}

/// 11.1 — What an item *is* comes from the verified statement: a key-signed vulnerability scan
/// re-pushed with `predicateType: https://spdx.dev/Document` annotations (as a `.att` layer and as
/// a referrer) does not satisfy `sbom.required`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_predicate_type_annotation_does_not_make_an_sbom() {
    let (lab, _d) = lab().await;
    let tb = lab.testbed.as_ref().unwrap();
    let px = pusher(&lab);
    let (vendor, pem) = second_vendor(&lab);
    let img = push_scratch_image(&px, "vendor2/app", "v1", "app", b"vendor2 app\n").await.unwrap();
    let now = Timestamp::now();
    sign_image(&tb.stack, &px, "vendor2/app", &img.digest, &vendor, now, None).await.unwrap();
    // a genuine, key-signed vulnerability scan, pushed as cosign would...
    let scan = p::cosign_vuln_v1(&[], now, now);
    attest_image(&tb.stack, &px, "vendor2/app", &img.digest, &vendor, (p::COSIGN_VULN, &scan), now).await.unwrap();
    // ...and again by the attacker, relabelled as an SPDX SBOM: a .att layer and a referrer
    let (att, _) = px.get_manifest("vendor2/app", &format!("{}.att", img.digest.replacen(':', "-", 1))).await.unwrap().unwrap();
    let att: Value = serde_json::from_slice(&att).unwrap();
    let mut layer = att["layers"][0].clone();
    layer["annotations"]["predicateType"] = json!(p::SPDX);
    let mut layers = att["layers"].as_array().unwrap().clone();
    layers.push(layer);
    let forged = json!({"schemaVersion": 2, "mediaType": att["mediaType"], "config": att["config"], "layers": layers});
    px.push_manifest(
        "vendor2/app",
        Some(&format!("{}.att", img.digest.replacen(':', "-", 1))),
        att["mediaType"].as_str().unwrap(),
        &serde_json::to_vec(&forged).unwrap(),
    )
    .await
    .unwrap();
    let name = format!("{}/vendor2/app", px.registry);
    let bundle = tb.stack.attest(&vendor, &statement(STATEMENT_V1, &name, &img.digest, p::COSIGN_VULN, &scan), now);
    attach_bundle(&px, "vendor2/app", &img.digest, img.manifest.len(), &bundle.bundle, Some(p::SPDX)).await.unwrap();
    lab.oci.ingest_reference(&format!("{name}@{}", img.digest)).await.unwrap();

    let e = engine(&lab, &key_policy(&lab.registry, "vendor2/**", &pem, "  sbom: {required: true}\n")).unwrap();
    let o = e.decide_image("prod", &format!("{name}@{}", img.digest), None);
    assert!(!props(&o).contains(&Property::Signature), "the vendor did sign it: {}", messages(&o));
    assert!(
        o.violations.iter().any(|v| v.property == Property::Sbom && v.message.contains("missing SBOM")),
        "a scan labelled SBOM is not an SBOM: {}",
        messages(&o)
    );
    // the mirror's record says what the verified statement says, not what the annotation says
    let rec = lab.store.oci_material(&name, &img.digest).unwrap().unwrap();
    assert!(rec.items.iter().all(|i| i.predicate_type.as_deref() != Some(p::SPDX)), "{rec:#?}");
    lab.shutdown().await;
}

/// 11.1 — An attestation never counts as an image signature, whatever its annotations say: a
/// key-signed SBOM attestation pushed as a referrer without a predicate type does not satisfy a
/// signature-only policy, in admission and in `trustmirror verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_never_counts_as_an_image_signature() {
    let (lab, _d) = lab().await;
    let tb = lab.testbed.as_ref().unwrap();
    let px = pusher(&lab);
    let (vendor, pem) = second_vendor(&lab);
    let img = push_scratch_image(&px, "vendor2/tool", "v1", "tool", b"vendor2 tool\n").await.unwrap();
    let name = format!("{}/vendor2/tool", px.registry);
    let sbom = p::spdx_2_3("tool", &[], Timestamp::now());
    let b = tb.stack.attest(&vendor, &statement(STATEMENT_V1, &name, &img.digest, p::SPDX, &sbom), Timestamp::now());
    attach_bundle(&px, "vendor2/tool", &img.digest, img.manifest.len(), &b.bundle, None).await.unwrap();
    lab.oci.ingest_reference(&format!("{name}@{}", img.digest)).await.unwrap();
    let e = engine(&lab, &key_policy(&lab.registry, "vendor2/**", &pem, "")).unwrap();
    let o = e.decide_image("prod", &format!("{name}@{}", img.digest), None);
    assert!(props(&o).contains(&Property::Signature), "an attestation is not a signature: {}", messages(&o));
    // the same with the CLI
    let key = lab.dir.join("second-vendor.pub");
    std::fs::write(&key, &pem).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["verify", "--key", key.to_str().unwrap(), "--allow-insecure-registry", &format!("{name}@{}", img.digest)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // ...while a real signature by the same key is one
    let signed = tb.stack.attest(&vendor, &statement(STATEMENT_V1, &name, &img.digest, COSIGN_SIGN_V1, &json!({})), Timestamp::now());
    attach_bundle(&px, "vendor2/tool", &img.digest, img.manifest.len(), &signed.bundle, None).await.unwrap();
    lab.oci.ingest_reference(&format!("{name}@{}", img.digest)).await.unwrap();
    let e = engine(&lab, &key_policy(&lab.registry, "vendor2/**", &pem, "")).unwrap();
    let o = e.decide_image("prod", &format!("{name}@{}", img.digest), None);
    assert!(!props(&o).contains(&Property::Signature), "{}", messages(&o));
    lab.shutdown().await;
}

/// 11.2 — Junk pushed to the registry cannot make the witness raise an alarm (and so mark the
/// production log untrusted): a bundle whose checkpoint root was rewritten is not evidence; only
/// items a policy's authority signed feed the witness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_bundles_cannot_raise_an_alarm_or_untrust_the_log() {
    let (lab, _d) = lab().await;
    let px = pusher(&lab);
    let good = lab.scenario("good").clone();
    let rec = lab.store.oci_material(&format!("{}/myorg/app", lab.registry), &good.digest).unwrap().unwrap();
    let real = rec.items.iter().find(|i| i.evidence.as_ref().is_some_and(|e| !e.checkpoints.is_empty())).unwrap();
    let bundle: Value = serde_json::from_slice(&lab.store.blob(real.bundle.as_ref().unwrap()).unwrap().unwrap()).unwrap();
    // the attacker rewrites the root (bare field and the note's root line): another "view"
    let mut junk = bundle.clone();
    let ip = &mut junk["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
    let root = ip["rootHash"].as_str().unwrap().to_string();
    let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &root).unwrap();
    raw[0] ^= 0xff;
    let fake = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw);
    ip["rootHash"] = json!(fake);
    let note = ip["checkpoint"]["envelope"].as_str().unwrap().replacen(&root, &fake, 1);
    ip["checkpoint"]["envelope"] = json!(note);
    for _ in 0..3 {
        attach_bundle(&px, "myorg/app", &good.digest, 100, &junk, Some(p::SLSA_PROVENANCE_V1)).await.unwrap();
    }
    lab.oci.ingest_reference(&good.digest_ref).await.unwrap();
    let policy = lab.engine.policy();
    let (proven, failed) = lab.tlog.prove_mirrored(&|e| policy.accepts_signer(e)).await;
    eprintln!("proven {proven}, failed {failed}");
    assert!(lab.store.tlog_alarms().unwrap().is_empty(), "no alarm rests on a junk bundle");
    let st = lab.store.tlog_state(&lab.witnessed[0].0).unwrap().unwrap();
    assert!(st.alarm.is_none());
    let rec = lab.store.oci_material(&format!("{}/myorg/app", lab.registry), &good.digest).unwrap().unwrap();
    assert!(
        rec.items.iter().filter(|i| i.source.starts_with("referrer")).any(|i| i.evidence.is_none()),
        "the junk is recorded, not trusted"
    );
    assert!(lab.admit("prod", &[&good.digest_ref], None).await.unwrap().allowed, "the production image still admits");
    lab.shutdown().await;
}

/// 11.3 — M-of-N counts distinct authorities: two identities of one authority that both match
/// one signature are one authority; a threshold above the number of authorities is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_identities_of_one_authority_are_not_two_signatures() {
    let (lab, _d) = lab().await;
    let id = good_identity();
    let policy = |threshold: usize| {
        format!(
            r#"apiVersion: trustmirror.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: two-of-two}}
spec:
  images: ["{reg}/myorg/**"]
  threshold: {threshold}
  authorities:
  - name: release
    keyless:
      identities:
      - {{issuer: "{iss}", subject: "{san}"}}
      - {{issuer: "{iss}", subjectRegExp: "https://github\\.com/myorg/.*"}}
  - name: security
    keyless:
      identities: [{{issuer: "{iss}", subject: "https://github.com/myorg/security/.github/workflows/review.yml@refs/heads/main"}}]
"#,
            reg = lab.registry,
            iss = id.issuer,
            san = id.san
        )
    };
    let e = engine(&lab, &policy(2)).unwrap();
    let o = e.decide_image("prod", &lab.scenario("good").digest_ref, None);
    let sig = o.violations.iter().find(|v| v.property == Property::Signature).unwrap_or_else(|| panic!("admitted: {}", messages(&o)));
    assert!(sig.message.contains("1 of 2 required"), "{}", sig.message);
    assert!(e.decide_image("prod", &lab.scenario("good").digest_ref, None).violations.iter().any(|v| v.property == Property::Signature));
    let err = engine(&lab, &policy(3)).err().expect("refused");
    assert!(err.contains("spec.threshold") && err.contains("never be met with 2 authorities"), "{err}");
    // with threshold 1 the same signature satisfies the policy
    assert!(engine(&lab, &policy(1)).unwrap().decide_image("prod", &lab.scenario("good").digest_ref, None).violations.is_empty());
    lab.shutdown().await;
}

/// 11.4 — Tags are never trusted at /validate: a covered image referenced by tag (the mutating
/// webhook did not pin it) is denied, naming why; /mutate keeps pinning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_that_reaches_validate_unpinned_is_denied() {
    let (lab, _d) = lab().await;
    let s = lab.scenario("tag-only").clone();
    let v = lab.post("/validate", &review::request_for("u-tag", "prod", &review::pod("p", "prod", &[&s.tag_ref]))).await.unwrap();
    assert_eq!(v["allowed"], false, "{v}");
    assert!(v["status"]["message"].as_str().unwrap().contains("referenced by tag"), "{v}");
    let m = lab.post("/mutate", &review::request_for("u-tag", "prod", &review::pod("p", "prod", &[&s.tag_ref]))).await.unwrap();
    assert!(m["patch"].is_string(), "/mutate still pins: {m}");
    lab.shutdown().await;
}

/// 11.5 — Images no policy covers are denied by default, and a reference cannot escape its
/// policy by spelling the registry differently (Docker Hub aliases, host case, default port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncovered_images_are_denied_and_spellings_do_not_escape_policy() {
    let (lab, _d) = lab().await;
    let good = lab.scenario("good").clone();
    let elsewhere = format!("{}/other/app@{}", lab.registry, good.digest);
    let a = lab.admit("prod", &[&elsewhere], None).await.unwrap();
    assert!(!a.allowed && a.message.contains("no policy covers"), "{}", a.message);
    // an operator allows uncovered images but covers Docker Hub's library: every spelling of it
    // is covered
    let policy = "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: hub}\nspec:\n  images: [\"docker.io/library/**\"]\n  authorities: [{name: k, keyless: {identities: [{issuer: i, subject: s}]}}]\n---\napiVersion: trustmirror.dev/v1alpha1\nkind: PolicyDefaults\nmetadata: {name: d}\nspec: {noMatch: allow}\n";
    let e = engine(&lab, policy).unwrap();
    let d = format!("sha256:{}", "a".repeat(64));
    for spelling in
        ["nginx", "docker.io/nginx", "index.docker.io/library/nginx", "registry-1.docker.io/library/nginx", "Docker.IO/library/nginx"]
    {
        let o = e.decide_image("prod", &format!("{spelling}@{d}"), None);
        assert_eq!(o.policies, vec!["hub".to_string()], "{spelling} escaped the policy: {o:?}");
        assert!(!o.violations.is_empty(), "{spelling}");
    }
    lab.shutdown().await;
}

/// 11.6 — Misspelled policy fields are an error naming file, document and field: `policy check`
/// refuses to run, and a webhook whose policy file turns bad keeps enforcing the last good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelled_policy_fields_are_refused_not_ignored() {
    let (lab, _d) = lab().await;
    let bad = format!(
        "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: typo}}\nspec:\n  images: [\"{}/myorg/**\"]\n  requireDigset: true\n  sbom: {{requried: true}}\n",
        lab.registry
    );
    let err = engine(&lab, &bad).err().expect("refused");
    assert!(err.contains("document 1 (ImagePolicy typo)") && err.contains("requireDigset"), "{err}");
    let f = lab.dir.join("typo.yaml");
    std::fs::write(&f, &bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["policy", "check", "--store", lab.store.path().to_str().unwrap(), "--policy", f.to_str().unwrap(), "x/y:z"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "policy check ran with a misspelled policy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("typo.yaml") && stderr.contains("requireDigset"), "{stderr}");
    // a nested typo names its path
    let err = engine(&lab, &bad.replace("  requireDigset: true\n", "")).err().expect("refused");
    assert!(err.contains("spec.sbom.requried"), "{err}");
    // the webhook keeps its last good policy and says so
    let pf = lab.dir.join("policy/policy.yaml");
    std::fs::write(&pf, &bad).unwrap();
    assert!(lab.engine.reload_policy().is_err());
    assert!(!lab.admit("prod", &[&lab.scenario("unsigned").deploy_ref], None).await.unwrap().allowed, "still enforcing");
    let r = lab.client.get(format!("{}/readyz", lab.url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "ready: the last good policy is in force");
    assert!(r.text().await.unwrap().contains("policy reload failed"), "the reason is visible");
    lab.shutdown().await;
}

/// 11.7 — A digest carrying hundreds of junk referrers costs bounded work: the ingest refuses it
/// whole (the previous record stays), and reviews of it are answered in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_junk_referrers_cost_bounded_work() {
    let (lab, _d) = lab().await;
    let px = pusher(&lab);
    let good = lab.scenario("good").clone();
    let repo = format!("{}/myorg/app", lab.registry);
    let before = lab.store.oci_etag(&repo, &good.digest).unwrap();
    let junk = json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {}, "junk": "x".repeat(1000)});
    for i in 0..(trustmirror::mirror::oci::material::MAX_REFERRERS + 10) {
        let mut j = junk.clone();
        j["n"] = json!(i);
        attach_bundle(&px, "myorg/app", &good.digest, 100, &j, None).await.unwrap();
    }
    let err = lab.oci.ingest_reference(&good.digest_ref).await.unwrap_err().to_string();
    assert!(err.contains("referrers") && err.contains("limit"), "{err}");
    assert_eq!(lab.store.oci_etag(&repo, &good.digest).unwrap(), before, "the record is unchanged");
    let t0 = std::time::Instant::now();
    assert!(lab.admit("prod", &[&good.digest_ref], None).await.unwrap().allowed);
    assert!(t0.elapsed() < Duration::from_secs(5));
    lab.shutdown().await;
}

/// 11.8 — Break-glass cannot be post-dated or stretched: an exemption created in the future, or
/// whose end is further from now than the maximum, is not honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_cannot_be_post_dated_or_stretched() {
    let (lab, _d) = lab().await;
    let s = lab.scenario("rollback-unsigned").clone();
    let now = Timestamp::now();
    let h = SignedDuration::from_hours;
    let add = |created: Timestamp, expires: Timestamp| {
        let id = lab
            .store
            .exemption_add(Exemption {
                id: 0,
                scope: Scope::Digest(s.digest.clone()),
                reason: "INC-1 attack".into(),
                created_by: "attacker".into(),
                created_at: created,
                expires_at: expires,
                revoked: false,
            })
            .unwrap();
        lab.engine.refresh_exemptions_now();
        id
    };
    let admitted = || async { lab.admit("prod", &[&s.deploy_ref], None).await.unwrap().allowed };
    // post-dated: a 3-hour window starting in ten days (active from now until then, otherwise)
    let id = add(now.checked_add(h(240)).unwrap(), now.checked_add(h(243)).unwrap());
    assert!(!admitted().await, "post-dated exemption honoured");
    lab.store.exemption_revoke(id).unwrap();
    // stretched: created hours ago, ending more than the maximum (4 h) from now
    let id = add(now.checked_sub(h(1)).unwrap(), now.checked_add(h(5)).unwrap());
    assert!(!admitted().await, "an exemption ending 5 h from now honoured");
    lab.store.exemption_revoke(id).unwrap();
    // a proper one is honoured
    add(now, now.checked_add(h(2)).unwrap());
    assert!(admitted().await);
    lab.shutdown().await;
}

/// 11.10 — Material is per repository (a manifest copied into another repository with its own
/// "signatures" does not change the production record), verified items stay when the registry
/// stops listing them (removing the newest, failing scan does not let an older clean one decide),
/// and SET-only items do not satisfy `witnessed: required`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_removals_and_set_only_items_do_not_change_verdicts() {
    let (lab, _d) = lab().await;
    let tb = lab.testbed.as_ref().unwrap();
    let px = pusher(&lab);
    let good = lab.scenario("good").clone();
    let prod = format!("{}/myorg/app", lab.registry);
    let etag = lab.store.oci_etag(&prod, &good.digest).unwrap();
    // the copy: the same manifest in myorg/evil, with a junk .sig
    let (m, mt) = px.get_manifest("myorg/app", &good.digest).await.unwrap().unwrap();
    let cfg: Value = serde_json::from_slice(&m).unwrap();
    for d in std::iter::once(cfg["config"]["digest"].as_str().unwrap().to_string())
        .chain(cfg["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()))
    {
        let r: oci_client::Reference = format!("{}/myorg/app@{d}", px.registry).parse().unwrap();
        let mut b = vec![];
        px.client().pull_blob(&r, d.as_str(), &mut b).await.unwrap();
        px.push_blob("myorg/evil", &b).await.unwrap();
    }
    let _ = mt;
    px.push_manifest("myorg/evil", Some("v1"), cfg["mediaType"].as_str().unwrap(), &m).await.unwrap();
    let junk = px.push_blob("myorg/evil", b"{\"critical\":{}}").await.unwrap();
    let sig = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": px.push_blob("myorg/evil", b"{}").await.unwrap()},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": 15, "digest": junk,
            "annotations": {"dev.cosignproject.cosign/signature": "AAAA"}}]});
    px.push_manifest(
        "myorg/evil",
        Some(&format!("{}.sig", good.digest.replacen(':', "-", 1))),
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&sig).unwrap(),
    )
    .await
    .unwrap();
    lab.oci.ingest_reference(&format!("{}/myorg/evil@{}", lab.registry, good.digest)).await.unwrap();
    assert_eq!(lab.store.oci_etag(&prod, &good.digest).unwrap(), etag, "the production record is untouched");
    assert!(lab.store.oci_material(&format!("{}/myorg/evil", lab.registry), &good.digest).unwrap().is_some());
    assert!(lab.admit("prod", &[&good.digest_ref], None).await.unwrap().allowed);

    // the newest scan fails; the attacker then removes it from the registry
    let presigned = lab.scenario("rollback-presigned").clone();
    assert!(lab.admit("prod", &[&presigned.digest_ref], None).await.unwrap().allowed);
    let signer = tb.stack.keyless(&good_identity(), Timestamp::now());
    let crit = p::Finding { id: "CVE-2026-0001".into(), severity: "CRITICAL".into(), package: "openssl".into(), version: "3".into() };
    let scan = p::cosign_vuln_v1(&[crit], Timestamp::now(), Timestamp::now());
    let b = tb.stack.attest(&signer, &statement(STATEMENT_V1, &prod, &presigned.digest, p::COSIGN_VULN, &scan), Timestamp::now());
    let index_tag = presigned.digest.replacen(':', "-", 1);
    let (index_before, _) = px.get_manifest("myorg/app", &index_tag).await.unwrap().unwrap();
    attach_bundle(&px, "myorg/app", &presigned.digest, 100, &b.bundle, Some(p::COSIGN_VULN)).await.unwrap();
    lab.oci.ingest_reference(&presigned.digest_ref).await.unwrap();
    lab.tlog.prove_mirrored(&|_| true).await;
    let a = lab.admit("prod", &[&presigned.digest_ref], None).await.unwrap();
    assert!(!a.allowed && a.message.contains("CVE-2026-0001"), "{}", a.message);
    px.push_manifest("myorg/app", Some(&index_tag), "application/vnd.oci.image.index.v1+json", &index_before).await.unwrap();
    lab.oci.ingest_reference(&presigned.digest_ref).await.unwrap();
    let a = lab.admit("prod", &[&presigned.digest_ref], None).await.unwrap();
    assert!(!a.allowed && a.message.contains("CVE-2026-0001"), "removing the failing scan let the old one decide: {}", a.message);

    // an image signed and attested the legacy way only (SET-only): not witnessed, not admitted
    let img = push_scratch_image(&px, "myorg/legacy", "v1", "app", b"legacy only\n").await.unwrap();
    sign_image(&tb.stack, &px, "myorg/legacy", &img.digest, &signer, Timestamp::now(), None).await.unwrap();
    let r = format!("{}/myorg/legacy@{}", lab.registry, img.digest);
    lab.oci.ingest_reference(&r).await.unwrap();
    let a = lab.admit("prod", &[&r], None).await.unwrap();
    assert!(!a.allowed && a.message.contains("not counted for lack of a witnessed log checkpoint"), "{}", a.message);
    lab.shutdown().await;
}

/// 11.11 — On-demand ingestion is not an open proxy: `POST /oci/v1/ingest` needs the bearer token
/// and takes only references inside the configured image patterns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_ingestion_is_not_an_open_proxy() {
    let (lab, _d) = lab().await;
    let store = lab.store.clone();
    let tuf = Arc::new(
        trustmirror::daemon::tuf_mirror(
            store.clone(),
            "default",
            &lab.testbed.as_ref().unwrap().env["TUF_URL"],
            Some(std::fs::read(&lab.testbed.as_ref().unwrap().env["TUF_ROOT"]).unwrap()),
            None,
            Duration::from_secs(3600),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let mut o = trustmirror::daemon::Options::new(tuf, Arc::new(SystemClock), "127.0.0.1:0");
    o.oci = Some((lab.oci.clone(), Duration::from_secs(3600)));
    o.ingest_token = Some("a-long-enough-ingest-token".into());
    let running = trustmirror::daemon::start(o).await.unwrap();
    let c = reqwest::Client::new();
    let post = |r: &str, token: Option<&str>| {
        let mut q = c.post(format!("http://{}/oci/v1/ingest", running.addr)).query(&[("ref", r)]);
        if let Some(t) = token {
            q = q.bearer_auth(t);
        }
        q.send()
    };
    let inside = format!("{}/myorg/app:v9", lab.registry);
    assert_eq!(post(&inside, None).await.unwrap().status(), 401);
    assert_eq!(post(&inside, Some("wrong-token-of-same-len!!!")).await.unwrap().status(), 401);
    assert_eq!(post("evil.example/steal/me:latest", Some("a-long-enough-ingest-token")).await.unwrap().status(), 403);
    // the lab mirrors `REGISTRY/**`: another registry on the same machine is outside it too
    assert_eq!(post("127.0.0.2:5000/x/y:z", Some("a-long-enough-ingest-token")).await.unwrap().status(), 403);
    assert_eq!(post(&inside, Some("a-long-enough-ingest-token")).await.unwrap().status(), 202);
    assert!(lab.oci.covers(&inside) && !lab.oci.covers("evil.example/x:y"));
    running.shutdown().await.unwrap();
    lab.shutdown().await;
}

/// 11.12 — Peer input cannot panic the service: TUF metadata whose key IDs are not ASCII is
/// refused with a message (key IDs used to be cut by bytes).
#[test]
fn tuf_key_ids_that_are_not_ascii_are_refused_not_panicked_on() {
    let id = format!("a{}", "é".repeat(20));
    let root = json!({"signed": {"_type": "root", "spec_version": "1.0.31", "version": 1, "expires": "2099-01-01T00:00:00Z",
        "consistent_snapshot": true,
        "keys": {id.clone(): {"keytype": "weird", "scheme": "weird", "keyval": {"public": "x"}}},
        "roles": {"root": {"keyids": [id.clone()], "threshold": 1}, "timestamp": {"keyids": [id.clone()], "threshold": 1},
                  "snapshot": {"keyids": [id.clone()], "threshold": 1}, "targets": {"keyids": [id.clone()], "threshold": 1}}},
        "signatures": [{"keyid": id, "sig": "00"}]});
    let r = std::panic::catch_unwind(|| trustmirror::core::tuf::Trusted::from_root(&serde_json::to_vec(&root).unwrap()));
    let res = r.expect("no panic on hostile key IDs");
    assert!(res.is_err());
}

/// 11.13 — Drills over HTTP: a forked log (fork → serve main → append → sync → serve fork → sync)
/// raises the alarm with the signed evidence; a rollback to an older, consistent checkpoint is
/// only stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_log_is_an_alarm_and_a_lagging_one_only_stale() {
    let (lab, _d) = lab().await;
    let base = lab.testbed.as_ref().unwrap().base_url();
    let c = reqwest::Client::new();
    let drill = |path: &str| c.post(format!("{base}{path}")).send();
    assert!(drill("/testbed/rekor/append").await.unwrap().status().is_success());
    assert!(lab.tlog.sync().await[0].error.is_none());
    let size = lab.testbed.as_ref().unwrap().stack.rekor.lock().unwrap().size();
    assert!(drill(&format!("/testbed/rekor/rollback?size={}", size - 1)).await.unwrap().status().is_success());
    let r = lab.tlog.sync().await;
    assert!(r[0].error.is_none() && r[0].outcome.starts_with("stale"), "{r:?}");
    assert!(lab.store.tlog_alarms().unwrap().is_empty());
    assert!(drill("/testbed/rekor/rollback").await.unwrap().status().is_success());
    for step in ["/testbed/rekor/fork", "/testbed/rekor/serve?view=main", "/testbed/rekor/append"] {
        assert!(drill(step).await.unwrap().status().is_success(), "{step}");
    }
    assert!(lab.tlog.sync().await[0].error.is_none());
    assert!(drill("/testbed/rekor/serve?view=fork").await.unwrap().status().is_success());
    let r = lab.tlog.sync().await;
    assert_eq!(r[0].error.as_ref().unwrap().kind, trustmirror::core::tlog::TlogErrorKind::SplitView, "{r:?}");
    let alarms = lab.store.tlog_alarms().unwrap();
    assert_eq!(alarms.len(), 1);
    assert!(alarms[0].conflicting.contains('\u{2014}'), "the conflicting checkpoint is the log's signed note");
    let a = lab.admit("prod", &[&lab.scenario("good").digest_ref], None).await.unwrap();
    assert!(!a.allowed && a.message.contains("untrusted"), "{}", a.message);
    lab.shutdown().await;
}
