//! The verification engine on real Sigstore data: the sigstore-conformance corpus (70 cases,
//! each by path and by digest, with the check every `_fail` case must be refused by), and bundles
//! from the public-good, staging and GitHub instances, Rekor v2 and TSA-only signing.

mod common;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use trustmirror::core::verify::{Authority, Check, IdentityPolicy, Matcher, Subject, TrustedMaterial, verify_bundle};

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The check that must refuse each `_fail` case (the reason, not only the outcome).
const EXPECTED: &[(&str, Check)] = &[
    ("bundle-empty-certificate-chain_fail", Check::Certificate),
    ("bundle-from-wrong-instance_fail", Check::TransparencyLog),
    ("bundle-invalid-base64-signature_fail", Check::Parse),
    ("bundle-malformed-json_fail", Check::Parse),
    ("bundle-negative-log-index_fail", Check::Parse),
    ("bundle-unknown-version_fail", Check::Parse),
    ("bundle-with-root-cert_fail", Check::Certificate),
    ("checkpoint-bad-keyhint_fail", Check::TransparencyLog),
    ("checkpoint-wrong-roothash_fail", Check::TransparencyLog),
    ("dsse-invalid-sig_fail", Check::Signature),
    ("dsse-mismatch-envelope_fail", Check::TransparencyLog),
    ("dsse-mismatch-sig_fail", Check::TransparencyLog),
    ("inclusion-proof-corrupted-hash_fail", Check::TransparencyLog),
    ("incorrect-public-key_fail", Check::TransparencyLog),
    ("integrated-time-in-future_fail", Check::Certificate),
    ("intoto-expired-certificate_fail", Check::Certificate),
    ("intoto-log-entry-mismatch_fail", Check::TransparencyLog),
    ("intoto-missing-inclusion-proof_fail", Check::TransparencyLog),
    ("intoto-set-outside-signing-cert-validity_fail", Check::Certificate),
    ("intoto-tsa-timestamp-outside-cert-validity_fail", Check::Certificate),
    ("invalid-checkpoint-signature_fail", Check::TransparencyLog),
    ("invalid-ct-key_fail", Check::Sct),
    ("invalid-inclusion-proof_fail", Check::TransparencyLog),
    ("managed-key-no-key_fail", Check::Certificate),
    ("managed-key-wrong-key_fail", Check::Parse),
    ("message-digest-mismatch_fail", Check::Artifact),
    ("rekor2-checkpoint-missing-log-signature_fail", Check::TransparencyLog),
    ("rekor2-checkpoint-missing-origin_fail", Check::TransparencyLog),
    ("rekor2-checkpoint-missing-root-hash_fail", Check::TransparencyLog),
    ("rekor2-checkpoint-missing-size_fail", Check::TransparencyLog),
    ("rekor2-checkpoint-no-matching-signature_fail", Check::TransparencyLog),
    ("rekor2-dsse-invalid-sig_fail", Check::Signature),
    ("rekor2-dsse-mismatch-envelope_fail", Check::Artifact),
    ("rekor2-dsse-mismatch-sig_fail", Check::TransparencyLog),
    ("rekor2-no-inclusion-proof_fail", Check::TransparencyLog),
    ("rekor2-no-timestamp_fail", Check::Timestamp),
    ("rekor2-timestamp-outside-trust-root-tsa-validity_fail", Check::Timestamp),
    ("rekor2-timestamp-outside-tsa-cert-validity_fail", Check::Timestamp),
    ("rekor2-timestamp-payload-mismatch_fail", Check::Timestamp),
    ("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail", Check::Timestamp),
    ("rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail", Check::Timestamp),
    ("rekor2-timestamp-with-incorrect-time_fail", Check::Certificate),
    ("set-invalid-signature_fail", Check::TransparencyLog),
    ("signature-mismatch_fail", Check::Signature),
    ("trust-root-tlog-missing-validity-start_fail", Check::TrustRoot),
    ("wrong-hashedrekord-artifact_fail", Check::Artifact),
    ("wrong-hashedrekord-cert-and-sig_fail", Check::TransparencyLog),
    ("wrong-hashedrekord-entry_fail", Check::Artifact),
    ("wrong-material_fail", Check::Artifact),
];

fn corpus() -> PathBuf {
    common::fixture("sigstore/sigstore-conformance/test/assets/bundle-verify")
}

fn read_opt(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Run one case the way the conformance client contract does; the refusal's check, if any.
fn run_case(dir: &Path, by_digest: bool) -> Result<(), Check> {
    let tm_owned;
    let tm = match std::fs::read(dir.join("trusted_root.json")) {
        Ok(b) => {
            tm_owned = TrustedMaterial::from_json("case", &b).map_err(|e| e.check)?;
            &tm_owned
        }
        Err(_) => TrustedMaterial::production(),
    };
    let authority = match std::fs::read_to_string(dir.join("key.pub")) {
        Ok(pem) => Authority::key_pem("key.pub", &pem).map_err(|e| e.check)?,
        Err(_) => Authority::Keyless(IdentityPolicy {
            san: Some(Matcher::Exact(read_opt(&dir.join("identity")).unwrap_or(DEFAULT_IDENTITY.into()))),
            issuer: Some(Matcher::Exact(read_opt(&dir.join("issuer")).unwrap_or(DEFAULT_ISSUER.into()))),
            ..Default::default()
        }),
    };
    let artifact = std::fs::read(dir.join("artifact")).unwrap_or_else(|_| std::fs::read(corpus().join("a.txt")).unwrap());
    let bundle = std::fs::read(dir.join("bundle.sigstore.json")).unwrap();
    let digest: [u8; 32] = Sha256::digest(&artifact).into();
    let subject = if by_digest { Subject::Sha256(digest) } else { Subject::Blob(&artifact) };
    verify_bundle(tm, &bundle, subject, &authority, jiff::Timestamp::now()).map(|_| ()).map_err(|e| {
        eprintln!("{}: {e}", dir.file_name().unwrap().to_string_lossy());
        e.check
    })
}

#[test]
fn sigstore_conformance_corpus_by_path_and_digest() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert_eq!(dirs.len(), 70, "the corpus has 70 cases");
    let (mut passed, mut failed) = (0, vec![]);
    for d in &dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        for by_digest in [false, true] {
            let got = run_case(d, by_digest);
            let ok = if name.ends_with("_fail") {
                let want =
                    EXPECTED.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).unwrap_or_else(|| panic!("no expected check for {name}"));
                got == Err(want)
            } else {
                got.is_ok()
            };
            if ok {
                passed += 1;
            } else {
                failed.push(format!("{name} ({}): {got:?}", if by_digest { "digest" } else { "path" }));
            }
        }
    }
    eprintln!("{passed} passed, {} failed", failed.len());
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(passed, 140);
}

fn tm_from(rel: &str) -> TrustedMaterial {
    let b = std::fs::read(common::fixture(rel)).unwrap();
    // a ClientTrustConfig carries the trusted root inside
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let tr = if v.get("trustedRoot").is_some() { serde_json::to_vec(&v["trustedRoot"]).unwrap() } else { b };
    TrustedMaterial::from_json(rel, &tr).unwrap()
}

fn any_identity() -> Authority {
    Authority::Keyless(IdentityPolicy::default())
}

#[test]
fn real_bundles_from_other_instances_and_implementations() {
    let now = jiff::Timestamp::now();
    let py = "sigstore/sigstore-python/test/assets";
    let staging =
        tm_from(&format!("{py}/staging-tuf/targets/ed6a9cf4e7c2e3297a4b5974fce0d17132f03c63512029d7aa3a402b43acab49.trusted_root.json"));
    let staging_new = TrustedMaterial::staging();
    let read = |p: &str| std::fs::read(common::fixture(p)).unwrap();

    // staging, bundle v0.3 (sigstore-python's own test asset)
    let a = read(&format!("{py}/bundle_v3.txt"));
    verify_bundle(&staging, &read(&format!("{py}/bundle_v3.txt.sigstore")), Subject::Blob(&a), &any_identity(), now).expect("staging v0.3");
    // staging Rekor v2 (hashedrekord 0.0.2 + RFC 3161)
    let a = read(&format!("{py}/staging-rekor-v2.txt"));
    verify_bundle(&staging, &read(&format!("{py}/staging-rekor-v2.txt.sigstore.json")), Subject::Blob(&a), &any_identity(), now)
        .expect("rekor v2");
    // staging Rekor v2 with DSSE: signed after that staging root was published, so its CT key is
    // unknown there (an SCT refusal), and verifies with the newer embedded staging root by the
    // statement's subject digest
    let b = read(&format!("{py}/a.dsse.staging-rekor-v2.txt.sigstore.json"));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let st: serde_json::Value = serde_json::from_slice(&base64_decode(v["dsseEnvelope"]["payload"].as_str().unwrap())).unwrap();
    let d: [u8; 32] = hex::decode(st["subject"][0]["digest"]["sha256"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(verify_bundle(&staging, &b, Subject::Sha256(d), &any_identity(), now).unwrap_err().check, Check::Sct);
    let ok = verify_bundle(staging_new, &b, Subject::Sha256(d), &any_identity(), now).expect("rekor v2 DSSE");
    assert!(ok.statement.is_some());
    assert_eq!(verify_bundle(staging_new, &b, Subject::Sha256([7; 32]), &any_identity(), now).unwrap_err().check, Check::Artifact);

    // production: sigstore-go's npm provenance example (bundle v0.1) carries the Fulcio root in its
    // chain, which the conformance rules (bundle-with-root-cert_fail) refuse — for that reason
    let prod = TrustedMaterial::production();
    let b = read("sigstore/sigstore-go/examples/bundle-provenance.json");
    let e = verify_bundle(prod, &b, Subject::Blob(b"x"), &any_identity(), now).unwrap_err();
    assert_eq!(e.check, Check::Certificate, "{e}");
    assert!(e.detail.contains("self-signed root"), "{e}");
    // cosign's production DSSE bundle verifies by its statement's subject, and only by it
    let b = read("sigstore/cosign/pkg/cosign/testdata/oci-attestation.sigstore.json");
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let st: serde_json::Value = serde_json::from_slice(&base64_decode(v["dsseEnvelope"]["payload"].as_str().unwrap())).unwrap();
    let d: [u8; 32] = hex::decode(st["subject"][0]["digest"]["sha256"].as_str().unwrap()).unwrap().try_into().unwrap();
    let ok = verify_bundle(prod, &b, Subject::Sha256(d), &any_identity(), now).expect("cosign production DSSE bundle");
    assert_eq!(ok.statement.unwrap().predicate_type, st["predicateType"].as_str().unwrap());
    assert_eq!(verify_bundle(prod, &b, Subject::Sha256([1; 32]), &any_identity(), now).unwrap_err().check, Check::Artifact);

    // a GitHub Actions release signature (trailofbits/rfc8785.py) on the public-good instance,
    // verified by the digest it signs, with its workflow claims
    let b = read(&format!("{py}/bundle_v3_github.whl.sigstore"));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let d: [u8; 32] = base64_decode(v["messageSignature"]["messageDigest"]["digest"].as_str().unwrap()).try_into().unwrap();
    let wf = Authority::Keyless(IdentityPolicy {
        issuer: Some(Matcher::Exact(DEFAULT_ISSUER.into())),
        github_repository: Some("trailofbits/rfc8785.py".into()),
        github_workflow: Some(Matcher::Exact(".github/workflows/release.yml".into())),
        ..Default::default()
    });
    let ok = verify_bundle(prod, &b, Subject::Sha256(d), &wf, now).expect("GitHub release bundle");
    assert_eq!(ok.signer, "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2");
    let other_repo = Authority::Keyless(IdentityPolicy { github_repository: Some("attacker/rfc8785.py".into()), ..Default::default() });
    assert_eq!(verify_bundle(prod, &b, Subject::Sha256(d), &other_repo, now).unwrap_err().check, Check::Claim);
    // …and it is not valid under GitHub's own instance root
    let gh = tm_from("sigstore/sigstore-rust/crates/sigstore-trust-root/src/trusted_root_github.json");
    assert!(verify_bundle(&gh, &b, Subject::Sha256(d), &any_identity(), now).is_err());

    // conda attestation (DSSE, production)
    let b = read("sigstore/sigstore-rust/crates/sigstore-verify/test_data/bundles/conda-attestation.sigstore.json");
    let d: [u8; 32] = hex::decode("54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f").unwrap().try_into().unwrap();
    verify_bundle(prod, &b, Subject::Sha256(d), &any_identity(), now).expect("conda attestation");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn malformed_trust_roots_are_refused_with_a_reason() {
    let py = "sigstore/sigstore-python/test/assets/trusted_root";
    for f in ["trustedroot.badtype.json", "certificate_authority.missingroot.json", "certificate_authority.empty.json"] {
        let b = std::fs::read(common::fixture(&format!("{py}/{f}"))).unwrap();
        let e = TrustedMaterial::from_json(f, &b).unwrap_err();
        assert_eq!(e.check, Check::TrustRoot, "{f}: {e}");
        assert!(e.detail.contains(f), "the message names the file: {e}");
    }
    for f in ["trustedroot.v1.json", "trustedroot.v1.local_tlog_ed25519_rekor-tiles.json"] {
        TrustedMaterial::from_json(f, &std::fs::read(common::fixture(&format!("{py}/{f}"))).unwrap())
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // every trusted root version seen in the wild parses
    for f in [
        "production/targets/trusted_root.json",
        "sigstore/sigstore-go/examples/trusted-root-public-good.json",
        "sigstore/cosign/pkg/cosign/testdata/trusted_root_pgi.json",
        "sigstore/sigstore-rs/trust_root/prod/trusted_root.json",
        "sigstore/sigstore-rust/crates/sigstore-trust-root/src/trusted_root_staging.json",
        "sigstore/sigstore-rust/crates/sigstore-trust-root/src/trusted_root_github.json",
    ] {
        TrustedMaterial::from_json(f, &std::fs::read(common::fixture(f)).unwrap()).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}
