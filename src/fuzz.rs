//! Entry points for the fuzz targets (`fuzz/`, cargo fuzz) over every parser of outside bytes.
//! They must never panic, whatever the input; `tests/fuzz_smoke.rs` runs them on stable over
//! real fixtures and systematic mutations of them, and `cargo +nightly fuzz run <target>` explores
//! further.

use crate::core::cosign::{CosignLayer, DSSE_ENVELOPE, SIMPLESIGNING, bundle_from_att_layer, bundle_from_sig_layer, check_simple_signing};
use crate::core::verify::{
    Authority, IdentityPolicy, Subject, TrustedMaterial, parse_bundle, verify_bundle, verify_parsed, verify_with_sigstore,
};

/// Sigstore bundle JSON → parse, and a full verification against the production root, for an
/// arbitrary artifact and for the digest the bundle claims (so that mutations reach the deep
/// checks). Where the one-pass keyless path (`core::keyless`) takes the bundle, sigstore-verify's
/// answer must be the same: a difference panics.
pub fn bundle(data: &[u8]) {
    let tm = TrustedMaterial::production();
    let any = Authority::Keyless(IdentityPolicy::default());
    let now = jiff::Timestamp::now();
    let _ = verify_bundle(tm, data, Subject::Blob(b"a"), &any, now);
    let Ok(b) = parse_bundle(data) else { return };
    if !crate::core::keyless::covers(&b) {
        return;
    }
    let claimed: Option<Vec<u8>> = match &b.content {
        sigstore_types::SignatureContent::MessageSignature(m) => m.message_digest.as_ref().map(|d| d.digest.as_bytes().to_vec()),
        sigstore_types::SignatureContent::DsseEnvelope(e) => serde_json::from_slice::<sigstore_types::Statement>(e.payload.as_bytes())
            .ok()
            .and_then(|s| s.subject.first().and_then(|x| x.digest.sha256.as_ref().map(|d| d.as_bytes().to_vec()))),
        _ => None,
    };
    let digest: [u8; 32] = claimed.and_then(|d| d.try_into().ok()).unwrap_or([0; 32]);
    for subject in [Subject::Blob(b"a"), Subject::Sha256(digest)] {
        let fast = verify_parsed(tm, &b, subject, &any, now).map(|v| (v.signer, v.issuer, v.integrated_time)).map_err(|e| e.check);
        let reference =
            verify_with_sigstore(tm, &b, subject, &any, now).map(|v| (v.signer, v.issuer, v.integrated_time)).map_err(|e| e.check);
        assert_eq!(fast, reference, "the one-pass keyless path and sigstore-verify disagree");
    }
}

/// cosign `.att` layer: a DSSE envelope (with a cosign Rekor-bundle annotation built from the tail).
pub fn dsse(data: &[u8]) {
    let split = data.len() / 2;
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(crate::core::cosign::ANN_BUNDLE.to_string(), String::from_utf8_lossy(&data[split..]).into_owned());
    let l = CosignLayer { media_type: DSSE_ENVELOPE.into(), content: data[..split].to_vec(), annotations };
    if let Ok(b) = bundle_from_att_layer(&l) {
        let _ = parse_bundle(&b);
    }
    let l = CosignLayer { media_type: SIMPLESIGNING.into(), content: data.to_vec(), annotations: Default::default() };
    let _ = bundle_from_sig_layer(&l);
    let _ = check_simple_signing(data, "sha256:00");
}

/// C2SP signed-note checkpoint text.
pub fn checkpoint(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(c) = sigstore_types::Checkpoint::from_text(s)
    {
        let _ = c.to_signed_note_body();
    }
}

/// X.509 certificate DER (and PEM through the cosign certificate annotation path).
pub fn certificate(data: &[u8]) {
    let _ = sigstore_crypto::parse_certificate_info(&sigstore_types::DerCertificate::new(data.to_vec()));
    // the leaf's facts, and its embedded SCT over each production CA's key
    let tm = TrustedMaterial::production();
    if let Ok(leaf) = crate::core::fulcio::LeafCert::parse(data) {
        for ca in tm.root.certificate_authorities.iter().flat_map(|c| c.cert_chain.certificates.iter()) {
            if let Ok(spki) = crate::core::fulcio::public_key_of(ca.raw_bytes.as_bytes()) {
                let _ = crate::core::sct::verify_one(&leaf.cert, data, spki.as_bytes(), tm.ct_keys());
            }
        }
    }
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(crate::core::cosign::ANN_CERT.to_string(), String::from_utf8_lossy(data).into_owned());
    annotations.insert(crate::core::cosign::ANN_SIGNATURE.to_string(), "AA==".into());
    let _ = bundle_from_sig_layer(&CosignLayer { media_type: SIMPLESIGNING.into(), content: vec![], annotations });
}

/// trusted_root.json.
pub fn trusted_root(data: &[u8]) {
    let _ = TrustedMaterial::from_json("fuzz", data);
}

/// TUF metadata: as a pinned root, and as a timestamp/snapshot/targets against a fixed root.
pub fn tuf_metadata(data: &[u8]) {
    let _ = crate::core::tuf::Trusted::from_root(data);
    if let Ok(mut t) = crate::core::tuf::Trusted::from_root(crate::bundles::SIGSTORE_PRODUCTION_ROOT) {
        let now = jiff::Timestamp::now();
        let _ = t.update_timestamp(data, now);
        let _ = t.update_root(data);
        let _ = crate::core::tuf::peek(data);
    }
}

/// A Kubernetes AdmissionReview body: parsing, image extraction for every admitted kind.
pub fn admission_review(data: &[u8]) {
    if let Ok(r) = crate::admission::review::parse(data) {
        for i in r.images.into_iter().flatten() {
            let _ = i.image.parse::<oci_client::Reference>();
            let _ = crate::admission::review::pin(&i.image, "sha256:00");
        }
    }
    // every admitted kind's extraction over whatever JSON this is
    if let Ok(o) = serde_json::from_slice::<serde_json::Value>(data) {
        for k in ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController"] {
            let _ = crate::admission::review::images(k, &o["request"]["object"]);
        }
        // the object is the submitter's: Gatekeeper constraints evaluate it (time-bounded)
        let _ = seed_gatekeeper().evaluate(&o["request"]);
    }
}

/// The seed's Gatekeeper template and constraint (digest pinning, a registry allowlist).
fn seed_gatekeeper() -> &'static crate::core::policy::gatekeeper::Gatekeeper {
    static G: std::sync::OnceLock<crate::core::policy::gatekeeper::Gatekeeper> = std::sync::OnceLock::new();
    G.get_or_init(|| {
        let doc = include_str!("../tests/fixtures/seed-policies/testbed/gatekeeper-require-signed-images.yaml")
            .replace("${REGISTRY}", "r.example");
        crate::core::policy::PolicySet::parse(&doc, Default::default()).expect("the seed's Gatekeeper documents load").gatekeeper
    })
}

/// The witness's inputs: a checkpoint against the production logs, a tlog-witness
/// add-checkpoint body, a tlog-policy file, vkeys, cosignature lines, bundle checkpoints.
pub fn witness(data: &[u8]) {
    use crate::core::tlog;
    let logs = tlog::log_keys(TrustedMaterial::production());
    let Ok(s) = std::str::from_utf8(data) else {
        let _ = tlog::bundle_checkpoints(data, &logs);
        return;
    };
    for log in tlog::log_keys(TrustedMaterial::production()) {
        let _ = tlog::verify_checkpoint(s, &log, Some("rekor.sigstore.dev - 1193050959916656506"));
    }
    if let Ok((old, proof, cp)) = crate::core::tlog::parse_add_checkpoint(s) {
        let _ = tlog::verify_consistency(old, &[0; 32], old.saturating_add(proof.len() as u64), &[1; 32], &proof);
        let _ = sigstore_types::Checkpoint::from_text(&cp);
    }
    if let Ok(p) = tlog::WitnessPolicy::parse(s) {
        let _ = p.evaluate(s);
    }
    for w in s.split_whitespace() {
        if let Ok(c) = tlog::Cosigner::from_vkey(w) {
            let _ = c.cosigned(s);
        }
    }
    let _ = tlog::bundle_checkpoints(data, &logs);
}

/// Admission policy documents and banned lists (operator input, but a typo must be an error).
pub fn policy(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if s.len() > 64 * 1024 {
        return;
    }
    let _ = crate::core::policy::BannedList::parse(s);
    let _ = crate::core::policy::PolicySet::parse(s, Default::default());
}

/// A CUE attestation policy (source text) evaluated over a SLSA v1 statement: compile errors and
/// verdicts are fine, a panic or a runaway evaluation is not.
pub fn cue(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if s.len() > 64 * 1024 {
        return;
    }
    let input = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": "https://slsa.dev/provenance/v1",
        "subject": [{"name": "r.example/app", "digest": {"sha256": "00"}}],
        "predicate": {"buildDefinition": {"buildType": "https://example/build/v1", "externalParameters": {"ref": "refs/heads/main"}},
                      "runDetails": {"builder": {"id": "https://github.com/slsa-framework/b"}}, "Data": "foobar"}
    });
    if let Ok((c, _)) = crate::core::policy::cue::compile_tolerant(s) {
        let _ = c.validate(&input);
    }
}
