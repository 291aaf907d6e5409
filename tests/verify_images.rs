//! `trustmirror verify` / `verify-attestation` on the testbed's scenario images, from the real
//! registry and from an OCI layout written by skopeo, with the reason of every refusal checked.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use trustmirror::testbed::oci::{OCI_MANIFEST, Pusher};
use trustmirror::testbed::{Testbed, TestbedOptions};

struct Env {
    tb: Testbed,
    _dir: tempfile::TempDir,
}

async fn testbed() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up(TestbedOptions::new(dir.path())).await.unwrap();
    Env { tb, _dir: dir }
}

fn run(tb: &Testbed, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trustmirror"));
    c.args(args).args(["--trusted-root", &tb.env["TRUSTED_ROOT"], "--output", "json"]);
    c.output().unwrap()
}

fn keyless(tb: &Testbed) -> Vec<&str> {
    vec!["--certificate-identity", &tb.env["GOOD_IDENTITY"], "--certificate-oidc-issuer", &tb.env["GOOD_ISSUER"]]
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {} / {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn image(tb: &Testbed, scenario: &str) -> String {
    tb.scenario(scenario).unwrap().digest_ref.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_images_verify_or_are_refused_for_the_right_reason() {
    let e = testbed().await;
    let tb = &e.tb;
    tokio::task::block_in_place(|| {
        let id = keyless(tb);
        let verify = |img: &str, extra: &[&str]| {
            let mut a = vec!["verify", "--allow-insecure-registry"];
            a.extend_from_slice(extra);
            a.push(img);
            run(tb, &a)
        };
        let attest = |img: &str, ty: &str, extra: &[&str]| {
            let mut a = vec!["verify-attestation", "--allow-insecure-registry", "--type", ty];
            a.extend_from_slice(extra);
            a.push(img);
            run(tb, &a)
        };

        // good: signature and every attestation type, legacy and referrer forms
        let good = image(tb, "good");
        let o = verify(&good, &id);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(json(&o)["signatures"][0]["signer"]["signer"], tb.env["GOOD_IDENTITY"].as_str());
        for (ty, forms) in
            [("slsaprovenance1", 2), ("spdxjson", 2), ("cyclonedx", 1), ("vuln", 2), ("https://in-toto.io/attestation/vulns/v0.2", 1)]
        {
            let o = attest(&good, ty, &id);
            assert!(o.status.success(), "{ty}: {}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(json(&o)["signatures"].as_array().unwrap().len(), forms, "{ty}: legacy .att and referrer forms");
        }
        // the tag resolves to the same verified digest
        let o = verify(&tb.scenario("tag-only").unwrap().tag_ref, &id);
        assert!(o.status.success());
        assert_eq!(json(&o)["digest"], tb.scenario("good").unwrap().digest.as_str());
        // identity regexp in cosign's vocabulary
        let o = verify(
            &good,
            &[
                "--certificate-identity-regexp",
                "https://github.com/myorg/app/.*@refs/heads/main",
                "--certificate-oidc-issuer",
                &tb.env["GOOD_ISSUER"],
            ],
        );
        assert!(o.status.success());

        // refused, with the check that refused
        let refusal = |o: &Output| -> String {
            assert!(!o.status.success(), "expected a refusal: {}", String::from_utf8_lossy(&o.stdout));
            json(o)["refused"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect::<Vec<_>>().join(" | ")
        };
        let r = refusal(&verify(&image(tb, "wrong-workflow-fork"), &id));
        assert!(r.contains("identity check failed") && r.contains("attacker/app"), "{r}");
        let r = refusal(&verify(&image(tb, "wrong-workflow-branch"), &id));
        assert!(r.contains("identity check failed") && r.contains("feature-x"), "{r}");
        let o = verify(&image(tb, "unsigned"), &id);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("no signature found"), "{}", String::from_utf8_lossy(&o.stderr));
        let o = attest(&image(tb, "missing-sbom"), "spdxjson", &id);
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no https://spdx.dev/Document attestation found"));
        // a GitHub claim narrower than the SAN regexp
        let r = refusal(&verify(
            &image(tb, "wrong-workflow-branch"),
            &[
                "--certificate-identity-regexp",
                ".*",
                "--certificate-oidc-issuer",
                &tb.env["GOOD_ISSUER"],
                "--certificate-github-workflow-ref",
                "refs/heads/main",
            ],
        ));
        assert!(r.contains("claim check failed"), "{r}");

        // key-based: the vendor key verifies the vendor image; a keyless policy or another key do not
        let vendor = image(tb, "vendor-key-signed");
        let o = verify(&vendor, &["--key", &tb.env["VENDOR_COSIGN_PUB"]]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(!verify(&vendor, &id).status.success());
        let other_key = e._dir.path().join("other.pub");
        std::fs::write(&other_key, trustmirror::testbed::pki::EcKey::from_seed(b"someone else").public_pem()).unwrap();
        let r = refusal(&verify(&vendor, &["--key", other_key.to_str().unwrap()]));
        assert!(r.contains("key check failed"), "{r}");
        // a keyless image verified with a key
        let r = refusal(&verify(&good, &["--key", &tb.env["VENDOR_COSIGN_PUB"]]));
        assert!(r.contains("key check failed"), "{r}");
    });
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_replayed_onto_another_image_is_refused() {
    let e = testbed().await;
    let tb = &e.tb;
    let reg = tb.registry.as_ref().unwrap();
    let px = Pusher::new(&reg.addr, reg.registry_auth());
    // Attacker A2 copies the good image's signature manifest (and blobs) to the unsigned image's
    // .sig tag: the signature is genuine, but it is about another digest.
    let good = tb.scenario("good").unwrap();
    let bad = tb.scenario("unsigned").unwrap();
    let (sig, _) = px.get_manifest("myorg/app", &format!("{}.sig", good.digest.replacen(':', "-", 1))).await.unwrap().unwrap();
    let m: Value = serde_json::from_slice(&sig).unwrap();
    for d in std::iter::once(m["config"]["digest"].as_str().unwrap())
        .chain(m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()))
    {
        let r: oci_client::Reference = format!("{}/myorg/app@{d}", reg.addr).parse().unwrap();
        let mut buf = vec![];
        px.client().pull_blob(&r, d, &mut buf).await.unwrap();
        px.push_blob("myorg/unsigned", &buf).await.unwrap();
    }
    px.push_manifest("myorg/unsigned", Some(&format!("{}.sig", bad.digest.replacen(':', "-", 1))), OCI_MANIFEST, &sig).await.unwrap();
    let o = tokio::task::block_in_place(|| {
        run(tb, &[&["verify", "--allow-insecure-registry"][..], &keyless(tb)[..], &[&bad.digest_ref]].concat())
    });
    assert!(!o.status.success());
    let v = json(&o);
    let r = v["refused"][0].as_str().unwrap();
    assert!(r.contains("artifact check failed") && r.contains(&good.digest), "{r}");
    e.tb.shutdown().await;
}

/// Add the cosign tags of `digest` to an OCI layout skopeo wrote (skopeo 1.9 does not copy them).
async fn add_cosign_tags(px: &Pusher, repo: &str, digest: &str, layout: &Path) {
    let mut index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let prefix = digest.replacen(':', "-", 1);
    for tag in [format!("{prefix}.sig"), format!("{prefix}.att"), prefix.clone()] {
        let Some((m, md)) = px.get_manifest(repo, &tag).await.unwrap() else { continue };
        let v: Value = serde_json::from_slice(&m).unwrap();
        let mut blobs: Vec<String> =
            v["layers"].as_array().map(|l| l.iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()).unwrap_or_default();
        if let Some(c) = v["config"]["digest"].as_str() {
            blobs.push(c.into());
        }
        // referrers tag schema index: bring the referrer manifests and their blobs
        for child in v["manifests"].as_array().cloned().unwrap_or_default() {
            let cd = child["digest"].as_str().unwrap();
            let (cm, _) = px.get_manifest(repo, cd).await.unwrap().unwrap();
            std::fs::write(layout.join("blobs/sha256").join(cd.trim_start_matches("sha256:")), &cm).unwrap();
            let cv: Value = serde_json::from_slice(&cm).unwrap();
            blobs.extend(cv["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
            blobs.push(cv["config"]["digest"].as_str().unwrap().into());
        }
        for b in blobs {
            let r: oci_client::Reference = format!("{}/{repo}@{b}", px.registry).parse().unwrap();
            let mut buf = vec![];
            px.client().pull_blob(&r, b.as_str(), &mut buf).await.unwrap();
            std::fs::write(layout.join("blobs/sha256").join(b.trim_start_matches("sha256:")), &buf).unwrap();
        }
        std::fs::write(layout.join("blobs/sha256").join(md.trim_start_matches("sha256:")), &m).unwrap();
        index["manifests"].as_array_mut().unwrap().push(serde_json::json!({"mediaType": v["mediaType"], "digest": md, "size": m.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}}));
    }
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_layout_carried_across_the_gap_verifies_offline() {
    let e = testbed().await;
    let tb = &e.tb;
    let reg = tb.registry.as_ref().unwrap();
    let good = tb.scenario("good").unwrap();
    let layout = e._dir.path().join("carried");
    // skopeo (an independent writer) copies the image into an OCI layout
    let o = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &format!("docker://{}", good.tag_ref), &format!("oci:{}:v1.2.3", layout.display())])
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo: {}", String::from_utf8_lossy(&o.stderr));
    let px = Pusher::new(&reg.addr, reg.registry_auth());
    add_cosign_tags(&px, "myorg/app", &good.digest, &layout).await;
    let (ok, att, tampered) = tokio::task::block_in_place(|| {
        let ok = run(tb, &[&["verify", "--local-image", layout.to_str().unwrap()][..], &keyless(tb)[..], &["v1.2.3"]].concat());
        let att = run(
            tb,
            &[&["verify-attestation", "--type", "slsaprovenance1", "--local-image", layout.to_str().unwrap()][..], &keyless(tb)[..]]
                .concat(),
        );
        // flip a byte of the image manifest blob: the layout no longer matches its digests
        let blob = layout.join("blobs/sha256").join(good.digest.trim_start_matches("sha256:"));
        let mut b = std::fs::read(&blob).unwrap();
        b[10] ^= 1;
        std::fs::write(&blob, b).unwrap();
        let tampered = run(tb, &[&["verify", "--local-image", layout.to_str().unwrap()][..], &keyless(tb)[..], &["v1.2.3"]].concat());
        (ok, att, tampered)
    });
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(json(&ok)["digest"], good.digest.as_str());
    assert!(att.status.success(), "{}", String::from_utf8_lossy(&att.stderr));
    assert_eq!(json(&att)["signatures"].as_array().unwrap().len(), 2, "legacy .att and referrer bundle from the layout");
    assert!(!tampered.status.success());
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("digest mismatch"), "{}", String::from_utf8_lossy(&tampered.stderr));
    e.tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m_of_n_counts_distinct_authorities() {
    use trustmirror::core::verify::{Authority, Check, IdentityPolicy, Matcher, Subject, TrustedMaterial, verify_threshold};
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path());
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let tm = TrustedMaterial::from_json("testbed", &std::fs::read(&tb.env["TRUSTED_ROOT"]).unwrap()).unwrap();
    let artifact = b"release 2.0";
    let ci = trustmirror::testbed::scenarios::good_identity();
    let release_mgr = trustmirror::testbed::pki::Identity::email("release@myorg.example", "https://accounts.google.com");
    let b1 = tb.stack.sign_blob(&tb.stack.keyless(&ci, tb.now), artifact, tb.now).bundle.to_string().into_bytes();
    let b2 = tb.stack.sign_blob(&tb.stack.keyless(&release_mgr, tb.now), artifact, tb.now).bundle.to_string().into_bytes();
    let auth = |san: &str, iss: &str| {
        Authority::Keyless(IdentityPolicy {
            san: Some(Matcher::Exact(san.into())),
            issuer: Some(Matcher::Exact(iss.into())),
            ..Default::default()
        })
    };
    let authorities = vec![
        auth(&ci.san, &ci.issuer),
        auth(&release_mgr.san, &release_mgr.issuer),
        auth("security@myorg.example", "https://accounts.google.com"),
    ];
    let now = jiff::Timestamp::now();
    assert_eq!(verify_threshold(&tm, &[b1.clone(), b2.clone()], Subject::Blob(artifact), &authorities, 2, now).unwrap().len(), 2);
    let e = verify_threshold(&tm, &[b1.clone(), b2.clone()], Subject::Blob(artifact), &authorities, 3, now).unwrap_err();
    assert_eq!(e.check, Check::Threshold, "{e}");
    // the same signer twice is still one authority
    let e = verify_threshold(&tm, &[b1.clone(), b1.clone()], Subject::Blob(artifact), &authorities, 2, now).unwrap_err();
    assert!(e.detail.starts_with("1 of 2"), "{e}");
    // a clock before the signing time refuses (the injected clock is honoured)
    let past = tb.now.checked_sub(jiff::SignedDuration::from_hours(1)).unwrap();
    let e = verify_threshold(&tm, &[b1], Subject::Blob(artifact), &authorities[..1], 1, past).unwrap_err();
    assert!(e.detail.contains("after the verification time"), "{e}");
    tb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_with_the_wrong_key_usage_are_refused_and_roots_are_picked_by_name() {
    use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku};
    use trustmirror::core::verify::{Authority, Check, IdentityPolicy, Subject, TrustStore, TrustedMaterial, verify_bundle};
    use trustmirror::testbed::pki::EcKey;
    use trustmirror::testbed::sigstore::Signer;
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path());
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let mut store = TrustStore::default();
    store.insert(TrustedMaterial::from_json("internal", &std::fs::read(&tb.env["TRUSTED_ROOT"]).unwrap()).unwrap());
    store.insert(TrustedMaterial::from_json("production", trustmirror::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT).unwrap());
    let before = store.digest();
    let tm = store.get("internal").unwrap();
    assert_eq!(store.get("staging").unwrap_err().check, Check::TrustRoot);
    let id = trustmirror::testbed::scenarios::good_identity();
    let any = Authority::Keyless(IdentityPolicy::default());
    let now = jiff::Timestamp::now();
    for (name, ekus, kus, ok) in [
        ("codeSigning + digitalSignature", vec![Eku::CodeSigning], vec![Ku::DigitalSignature], true),
        ("serverAuth EKU", vec![Eku::ServerAuth], vec![Ku::DigitalSignature], false),
        ("no EKU", vec![], vec![Ku::DigitalSignature], false),
    ] {
        let key = EcKey::from_seed(name.as_bytes());
        let cert = tb.stack.fulcio.issue_with(&key.spki, &id, tb.now, name, ekus, kus);
        let signer = Signer::Keyless { key, cert_der: cert, identity: id.clone() };
        let b = tb.stack.sign_blob(&signer, b"artifact", tb.now).bundle.to_string().into_bytes();
        let r = verify_bundle(&tm, &b, Subject::Blob(b"artifact"), &any, now);
        if ok {
            r.unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            assert_eq!(r.unwrap_err().check, Check::Certificate, "{name}");
        }
        // and never under the production root
        assert!(verify_bundle(&store.get("production").unwrap(), &b, Subject::Blob(b"artifact"), &any, now).is_err());
    }
    store.insert(TrustedMaterial::from_json("production", trustmirror::bundles::SIGSTORE_STAGING_TRUSTED_ROOT).unwrap());
    assert_ne!(store.digest(), before, "replacing a root changes the store digest");
    tb.shutdown().await;
}
