//! Real production artifacts of each cosign / Rekor generation (tests/fixtures/real-world,
//! provenance in its MANIFEST.md), verified offline against the production trusted root at their
//! signing time: each with its expected identity, each refused with another; the `cosign save`
//! layouts also through the mirror's ingest (stored `verified`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use trustmirror::core::clock::ManualClock;
use trustmirror::core::material::ItemStatus;
use trustmirror::mirror::oci::{OciMirror, OciMirrorConfig};
use trustmirror::store::Store;
use trustmirror::trust::{TrustConfig, TrustSource};

fn fx(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn root() -> String {
    fx("production/targets/trusted_root.json").display().to_string()
}

fn run(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_trustmirror")).args(args).env("TRUSTMIRROR_LOG", "warn").output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// `verify-blob` of `artifact` with `bundle` against the production trusted root, for `who`
/// (identity flags).
fn verify_blob(bundle: &Path, artifact: &Path, who: &[&str]) -> (bool, String) {
    let root = root();
    let mut args = vec!["verify-blob", "--bundle", bundle.to_str().unwrap(), "--trusted-root", &root];
    args.extend_from_slice(who);
    args.push(artifact.to_str().unwrap());
    run(&args)
}

const GENERATOR: &str =
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v";
const GHA: &str = "https://token.actions.githubusercontent.com";

/// cosign save layouts: (dir, generator tag, Rekor kind)
const LAYOUTS: &[(&str, &str, &str)] = &[
    ("cosign-att-intoto-v0.0.1/slsa-github-generator-v1.4.0", "1.4.0", "intoto 0.0.1, single image"),
    ("cosign-att-intoto-v0.0.1/slsa-github-generator-v1.5.0", "1.5.0", "intoto 0.0.1, image index"),
    ("cosign-att-intoto-v0.0.1/slsa-github-generator-v1.9.0", "1.9.0", "intoto 0.0.1, image index"),
    ("cosign-att-dsse-v0.0.1/slsa-github-generator-v1.10.0", "1.10.0", "dsse 0.0.1"),
    ("cosign-att-dsse-v0.0.1/slsa-github-generator-v2.1.0", "2.1.0", "dsse 0.0.1"),
];

#[test]
fn cosign_save_layouts_of_every_generation_verify_with_their_identity_only() {
    for (dir, tag, kind) in LAYOUTS {
        let layout = fx(&format!("real-world/{dir}/layout"));
        let l = layout.to_str().unwrap();
        let id = format!("{GENERATOR}{tag}");
        let verify = |identity: &str, issuer: &str| {
            run(&[
                "verify-attestation",
                "--local-image",
                l,
                "--type",
                "slsaprovenance",
                "--trusted-root",
                &root(),
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                issuer,
            ])
        };
        let (ok, out) = verify(&id, GHA);
        assert!(ok, "{dir} ({kind}): {out}");
        assert!(out.contains("https://slsa.dev/provenance/v0.2"), "{dir}: {out}");
        // another release of the same workflow, and another issuer: refused
        let other = format!("{GENERATOR}9.9.9");
        for (identity, issuer) in [(other.as_str(), GHA), (id.as_str(), "https://accounts.google.com")] {
            let (ok, out) = verify(identity, issuer);
            assert!(!ok, "{dir} ({kind}) must be refused for {identity} / {issuer}: {out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_stores_every_layouts_attestation_as_verified() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.redb")).unwrap());
    let trust = Arc::new(TrustSource::new(store.clone(), TrustConfig { explicit: Some(root().into()), ..Default::default() }));
    // at the signing times (2023–2025): a clock inside the certificates' and keys' windows
    let clock = Arc::new(ManualClock::new("2025-06-01T00:00:00Z".parse().unwrap()));
    let layouts: Vec<PathBuf> = LAYOUTS.iter().map(|(d, _, _)| fx(&format!("real-world/{d}/layout"))).collect();
    let m = OciMirror::new(store.clone(), OciMirrorConfig { layouts: layouts.clone(), ..Default::default() }, clock, trust);
    let report = m.sync().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for (l, (d, _, kind)) in layouts.iter().zip(LAYOUTS) {
        let digest = std::fs::read_to_string(l.parent().unwrap().join("image-digest.txt")).unwrap();
        let recs = store.oci_records(digest.trim()).unwrap();
        let rec = recs.first().unwrap_or_else(|| panic!("{d}: no record for {digest}"));
        let verified = rec.items.iter().filter(|i| matches!(i.status, ItemStatus::Verified { .. })).count();
        assert!(verified >= 1, "{d} ({kind}): {:?}", rec.items.iter().map(|i| &i.status).collect::<Vec<_>>());
        assert!(rec.items.iter().filter_map(|i| i.predicate_type.as_deref()).any(|p| p == "https://slsa.dev/provenance/v0.2"), "{d}");
    }
}

/// Production Rekor v2 (log2025-1) hashedrekord 0.0.2, as sigstore-js logs it: the entry's
/// verifier is the certificate's *public key* while the bundle carries the certificate. Verified
/// (the logged key must be the certificate's), with its identity only; a body whose logged key or
/// digest was changed breaks the inclusion proof; the withdrawn dsse 0.0.2 kind is refused by name.
#[test]
fn rekor_v2_production_entries_that_log_the_certificates_key() {
    let art = fx("real-world/rekor-v2-log2025-1/artifact.txt");
    let b = fx("real-world/rekor-v2-log2025-1/hashedrekord-v0.0.2.sigstore.json");
    let verify = |bundle: &Path, identity: &str| {
        verify_blob(bundle, &art, &["--certificate-identity", identity, "--certificate-oidc-issuer", "https://github.com/login/oauth"])
    };
    let (ok, out) = verify(&b, "brian@dehamer.com");
    assert!(ok, "{out}");
    let (ok, out) = verify(&b, "someone@example.com");
    assert!(!ok && out.contains("identity"), "{out}");

    // the logged body, altered (it no longer describes this signature), and the proof, altered
    // (it no longer reaches the signed checkpoint): refused, each for its reason
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&b).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tampered = dir.path().join("tampered.sigstore.json");
    let mut doc = original.clone();
    let entry = &mut doc["verificationMaterial"]["tlogEntries"][0];
    let mut body: serde_json::Value = serde_json::from_slice(&b64.decode(entry["canonicalizedBody"].as_str().unwrap()).unwrap()).unwrap();
    body["spec"]["hashedRekordV002"]["data"]["digest"] = b64.encode([7u8; 32]).into();
    entry["canonicalizedBody"] = b64.encode(body.to_string()).into();
    std::fs::write(&tampered, doc.to_string()).unwrap();
    let (ok, out) = verify(&tampered, "brian@dehamer.com");
    assert!(!ok && out.contains("hash mismatch"), "{out}");
    let mut doc = original.clone();
    doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][3] = b64.encode([7u8; 32]).into();
    std::fs::write(&tampered, doc.to_string()).unwrap();
    let (ok, out) = verify(&tampered, "brian@dehamer.com");
    assert!(!ok && out.contains("inclusion proof"), "{out}");

    let d = fx("real-world/rekor-v2-log2025-1/dsse-v0.0.2.sigstore.json");
    let (ok, out) = verify(&d, "brian@dehamer.com");
    assert!(!ok && out.contains("dsse") && out.contains("0.0.2"), "{out}");
}

/// npm: the registry's attestation documents for real packages (tarballs named by sha512):
/// provenance (SLSA v0.2 in 2023 bundles v0.1, SLSA v1 in 2024 bundles v0.2) with its workflow
/// identity, and the registry-signed publish attestation with npm's key from keys.json.
#[test]
fn npm_provenance_and_publish_attestations_of_every_generation() {
    let keys = fx("production/targets/registry.npmjs.org/keys.json");
    let keys = keys.to_str().unwrap();
    let cases = [
        (
            "provenance-npm-test-cli-v02-prega",
            "slsaprovenance",
            "https://github.com/laurentsimon/provenance-npm-test/.github/workflows/release.yml@refs/heads/main",
        ),
        (
            "supreme-googles-cli-v02-tag",
            "slsaprovenance",
            "https://github.com/trishankatdatadog/supreme-goggles/.github/workflows/npm-publish.yml@refs/tags/v1.0.5",
        ),
        (
            "provenance-npm-test-ossf",
            "slsaprovenance",
            "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_lowperms-generic_slsa3.yml@refs/tags/v1.6.0",
        ),
        (
            "provenance-npm-test-cli-v1-prega",
            "slsaprovenance1",
            "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main",
        ),
        (
            "gundam-visor-cli-v1-tag",
            "slsaprovenance1",
            "https://github.com/ramonpetgrave64/gundam-visor/.github/workflows/npm-publish.yml@refs/tags/v1.0.1",
        ),
    ];
    for (name, ty, san) in cases {
        let doc = fx(&format!("real-world/npm/slsa-verifier/{name}.tgz.json"));
        let doc = doc.to_str().unwrap();
        let digest =
            format!("sha512:{}", std::fs::read_to_string(fx(&format!("real-world/npm/slsa-verifier/{name}.tgz.sha512"))).unwrap().trim());
        let prov = |identity: &str, digest: &str| {
            run(&[
                "verify-blob-attestation",
                "--bundle",
                doc,
                "--type",
                ty,
                "--trusted-root",
                &root(),
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                GHA,
                digest,
            ])
        };
        let (ok, out) = prov(san, &digest);
        assert!(ok, "{name}: {out}");
        let (ok, out) = prov(&format!("{san}-not"), &digest);
        assert!(!ok, "{name}: another identity is refused: {out}");
        let other = format!("sha512:{}", "ab".repeat(64));
        let (ok, out) = prov(san, &other);
        assert!(!ok, "{name}: another tarball is refused: {out}");
        let (ok, out) = run(&[
            "verify-blob-attestation",
            "--bundle",
            doc,
            "--type",
            "npm-publish",
            "--npm-keys",
            keys,
            "--trusted-root",
            &root(),
            &digest,
        ]);
        assert!(ok && out.contains("npm:SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"), "{name}: {out}");
    }
    // the negatives: a payload byte changed in one of the two attestations
    let tgz = |n: &str| fx(&format!("real-world/npm/slsa-verifier/{n}")).display().to_string();
    let digest = format!("sha512:{}", std::fs::read_to_string(tgz("provenance-npm-test-cli-v1-prega.tgz.sha512")).unwrap().trim());
    let (ok, _) = run(&[
        "verify-blob-attestation",
        "--bundle",
        &tgz("provenance-npm-test-cli-v1-prega-invalidsigprov.tgz.json"),
        "--type",
        "slsaprovenance1",
        "--trusted-root",
        &root(),
        "--certificate-identity-regexp",
        ".*",
        "--certificate-oidc-issuer",
        GHA,
        &digest,
    ]);
    assert!(!ok);
    let (ok, _) = run(&[
        "verify-blob-attestation",
        "--bundle",
        &tgz("provenance-npm-test-cli-v1-prega-invalidsigpub.tgz.json"),
        "--type",
        "npm-publish",
        "--npm-keys",
        keys,
        "--trusted-root",
        &root(),
        &digest,
    ]);
    assert!(!ok);
    // a registry key list without the key the attestation names: refused
    let dir = tempfile::tempdir().unwrap();
    let mut k: serde_json::Value = serde_json::from_slice(&std::fs::read(keys).unwrap()).unwrap();
    k["keys"].as_array_mut().unwrap().retain(|x| x["keyId"] != "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA");
    std::fs::write(dir.path().join("keys.json"), serde_json::to_vec(&k).unwrap()).unwrap();
    let (ok, out) = run(&[
        "verify-blob-attestation",
        "--bundle",
        &tgz("provenance-npm-test-cli-v1-prega.tgz.json"),
        "--type",
        "npm-publish",
        "--npm-keys",
        dir.path().join("keys.json").to_str().unwrap(),
        "--trusted-root",
        &root(),
        &digest,
    ]);
    assert!(!ok && out.contains("no npm attestation key"), "{out}");
}

/// One signing event in every bundle version (v0.1 no proof / with proof, v0.2, v0.3; dsse
/// 0.0.1 and intoto 0.0.2), a sha512 subject: all verify, and not for another identity. The v0.1
/// bundle whose chain carries the root is refused (the conformance rule).
#[test]
fn sigstore_js_bundles_of_every_version_verify() {
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx("sigstore/sigstore-js/tests/bundles/statement.json")).unwrap()).unwrap();
    let digest = format!("sha512:{}", st["subject"][0]["digest"]["sha512"].as_str().unwrap());
    let pt = st["predicateType"].as_str().unwrap();
    for f in std::fs::read_dir(fx("real-world/npm/sigstore-js-bundle-versions")).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let args = |id: &str| -> Vec<String> {
            [
                "verify-blob-attestation",
                "--bundle",
                p.to_str().unwrap(),
                "--type",
                pt,
                "--trusted-root",
                &root(),
                "--certificate-identity",
                id,
                "--certificate-oidc-issuer",
                "https://github.com/login/oauth",
                &digest,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let a: Vec<String> = args("brian@dehamer.com");
        let (ok, out) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        if name.contains("full-cert-chain") {
            assert!(!ok && out.contains("self-signed root"), "{name}: {out}");
            continue;
        }
        assert!(ok, "{name}: {out}");
        let a = args("bdehamer@github.com");
        let (ok, out) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!ok, "{name}: {out}");
    }
}

/// cosign `.sig` signatures (simple signing, hashedrekord 0.0.1) from 2022, 2023 and 2026: the
/// layer rebuilt from the manifest's annotation, the payload, certificate and Rekor bundle, then
/// verified for the image digest with the signer's identity, and refused with another.
#[test]
fn cosign_sig_signatures_of_every_generation() {
    use std::collections::BTreeMap;
    use trustmirror::core::cosign::{ANN_BUNDLE, ANN_CERT, CosignLayer, bundle_from_sig_layer};
    use trustmirror::core::evidence::{Form, establish};
    use trustmirror::core::verify::{Authority, IdentityPolicy, Matcher, TrustedMaterial};
    let tm = TrustedMaterial::from_json("production", &std::fs::read(root()).unwrap()).unwrap();
    let now: jiff::Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
    let cases = [
        ("2022-09-google-service-account", "cosign@cosign-test-363613.iam.gserviceaccount.com", "https://accounts.google.com"),
        ("2023-04-google-service-account", "cosign@cosign-test-383122.iam.gserviceaccount.com", "https://accounts.google.com"),
        (
            "2026-02-github-actions",
            "https://github.com/salrashid123/go-bazel-github-workflow/.github/workflows/release.yaml@refs/tags/v0.0.30",
            GHA,
        ),
    ];
    for (dir, san, issuer) in cases {
        let d = |f: &str| fx(&format!("real-world/cosign-sig-hashedrekord-v0.0.1/{dir}/{f}"));
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(d("sig-manifest.json")).unwrap()).unwrap();
        // the keyless layer: its signature annotation is the one extracted with the certificate
        // (2022/2023 manifests also carry a KMS-signed layer with the same payload)
        let sig = std::fs::read_to_string(d("signature.b64")).unwrap();
        let layer =
            m["layers"].as_array().unwrap().iter().find(|l| l["annotations"]["dev.cosignproject.cosign/signature"] == sig.trim()).unwrap();
        let mut annotations: BTreeMap<String, String> =
            layer["annotations"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
        annotations.insert(ANN_CERT.into(), std::fs::read_to_string(d("cert.pem")).unwrap());
        annotations.insert(ANN_BUNDLE.into(), std::fs::read_to_string(d("rekor-bundle.json")).unwrap());
        let payload = std::fs::read(d("payload.json")).unwrap();
        let l = CosignLayer { media_type: layer["mediaType"].as_str().unwrap().into(), content: payload.clone(), annotations };
        let bundle = bundle_from_sig_layer(&l).unwrap();
        let digest = std::fs::read_to_string(d("image-digest.txt")).unwrap().trim().to_string();
        let who = |s: &str, i: &str| {
            Authority::Keyless(IdentityPolicy {
                san: Some(Matcher::Exact(s.into())),
                issuer: Some(Matcher::Exact(i.into())),
                ..Default::default()
            })
        };
        let e = establish(&tm, &bundle, Form::SimpleSigning(&payload), &digest, &who(san, issuer), now);
        assert!(e.is_ok(), "{dir}: {e:?}");
        assert!(
            establish(&tm, &bundle, Form::SimpleSigning(&payload), &digest, &who("someone@example.com", issuer), now).is_err(),
            "{dir}"
        );
        let other = format!("sha256:{}", "00".repeat(32));
        assert!(establish(&tm, &bundle, Form::SimpleSigning(&payload), &other, &who(san, issuer), now).is_err(), "{dir}: another image");
    }
}

/// cosign v3's defaults for a key: `cosign sign --key` writes a new-format bundle (a DSSE over
/// the `cosign/sign/v1` statement, `publicKey` hint, no certificate) as an OCI referrer — here
/// through the referrers tag schema, the fallback for registries without the referrers API. The
/// mirror stores it `verified` when it holds the key and `needs-key` when it does not; admission
/// decides it with the policy's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_v3_key_signed_referrer_bundles_are_stored_and_decided() {
    use trustmirror::core::evidence::COSIGN_SIGN_V1;
    use trustmirror::testbed::cosign::{STATEMENT_V1, attach_bundle, statement};
    use trustmirror::testbed::lab::{Lab, LabOptions};
    use trustmirror::testbed::oci::{Pusher, push_scratch_image};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(dir.path().join("lab"));
    o.keep_testbed = true;
    let lab = Lab::up(o).await.unwrap();
    let tb = lab.testbed.as_ref().unwrap();
    let reg = tb.registry.as_ref().unwrap();
    let px = Pusher::new(&reg.addr, reg.registry_auth());
    let img = push_scratch_image(&px, "vendor/v3tool", "v1", "v3tool", b"v3 tool\n").await.unwrap();
    let vendor = tb.stack.static_key("vendor");
    let st = statement(STATEMENT_V1, &format!("{}/vendor/v3tool", lab.registry), &img.digest, COSIGN_SIGN_V1, &serde_json::json!({}));
    let b = tb.stack.attest(&vendor, &st, tb.now);
    assert!(b.bundle["verificationMaterial"].get("publicKey").is_some(), "a key-signed bundle: {}", b.bundle);
    attach_bundle(&px, "vendor/v3tool", &img.digest, img.manifest.len(), &b.bundle, Some(COSIGN_SIGN_V1)).await.unwrap();
    let reference = format!("{}/vendor/v3tool@{}", lab.registry, img.digest);

    // the lab's mirror holds the vendor key: verified
    lab.oci.ingest_reference(&reference).await.unwrap();
    let repo = format!("{}/vendor/v3tool", lab.registry);
    let rec = lab.store.oci_material(&repo, &img.digest).unwrap().unwrap();
    assert!(
        rec.items.iter().any(|i| matches!(i.status, ItemStatus::Verified { .. }) && i.source.starts_with("referrer")),
        "{:?}",
        rec.items
    );
    // a mirror without the key: needs-key, never verified or rejected
    let other = Arc::new(Store::open(dir.path().join("nokey.redb")).unwrap());
    let trust = Arc::new(TrustSource::new(
        other.clone(),
        TrustConfig { explicit: Some(tb.env["TRUSTED_ROOT"].clone().into()), ..Default::default() },
    ));
    let cfg = OciMirrorConfig {
        registry: trustmirror::mirror::oci::RegistryOptions { insecure_hosts: vec![lab.registry.clone()], ..Default::default() },
        ..Default::default()
    };
    let m = OciMirror::new(other.clone(), cfg, Arc::new(trustmirror::core::clock::SystemClock), trust);
    m.ingest_reference(&reference).await.unwrap();
    let rec = other.oci_material(&repo, &img.digest).unwrap().unwrap();
    assert!(rec.items.iter().any(|i| matches!(i.status, ItemStatus::NeedsKey)), "{:?}", rec.items);
    // admission: the demo's vendor ClusterImagePolicy (the vendor key) admits it
    let o = lab.engine.decide_image("prod", &reference, None);
    assert!(o.enforced().next().is_none(), "{:?}", o.violations);
    lab.shutdown().await;
}

/// `verify-blob` says when the signature was logged: the SET's time, for a SET-only bundle and
/// for one that also carries an RFC 3161 timestamp; a Rekor v2 entry has no log time, so no line.
#[test]
fn verify_blob_reports_the_logged_time_of_keyless_bundles() {
    let conformance = fx("sigstore/sigstore-conformance/test/assets/bundle-verify");
    let identity = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
    for case in ["happy-path-v0.3", "happy-path-v0.1"] {
        let bundle = conformance.join(case).join("bundle.sigstore.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
        let t: i64 = v["verificationMaterial"]["tlogEntries"][0]["integratedTime"].as_str().unwrap().parse().unwrap();
        let (ok, out) =
            verify_blob(&bundle, &conformance.join("a.txt"), &["--certificate-identity", identity, "--certificate-oidc-issuer", GHA]);
        assert!(ok, "{case}: {out}");
        let logged = jiff::Timestamp::from_second(t).unwrap();
        assert!(out.contains(&format!("logged: {logged}")), "{case}: {out}");
    }
    // cosign v3 with Rekor v1: an RFC 3161 timestamp and a SET
    let dir = fx("sigstore/sigstore-rust/crates/sigstore-verify/test_data/bundles");
    let any = ["--certificate-identity-regexp", ".*", "--certificate-oidc-issuer-regexp", ".*"];
    let (ok, out) = verify_blob(&dir.join("cosign-v3-blob.sigstore.json"), &dir.join("cosign-v3-blob.txt"), &any);
    let logged = jiff::Timestamp::from_second(1764787003).unwrap();
    assert!(ok && out.contains(&format!("logged: {logged}")), "{out}");
    let (ok, out) = verify_blob(
        &fx("real-world/rekor-v2-log2025-1/hashedrekord-v0.0.2.sigstore.json"),
        &fx("real-world/rekor-v2-log2025-1/artifact.txt"),
        &["--certificate-identity", "brian@dehamer.com", "--certificate-oidc-issuer", "https://github.com/login/oauth"],
    );
    assert!(ok && !out.contains("logged:"), "{out}");
}
