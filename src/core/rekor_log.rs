//! The transparency-log half of keyless bundle verification, done here rather than inside
//! sigstore-verify, for two reasons (README "Design"):
//!
//! 1. **One SET verification per entry.** sigstore-verify 0.15.1 verifies a Rekor v1 SET twice per
//!    bundle: once to authenticate the integrated time as a signing time, and again among its log
//!    checks (upstream: sigstore-rust PR #160). Keyless bundles are therefore verified with
//!    `skip_tlog_unsafe()`, which — by that crate's contract — still authenticates every SET that
//!    supplies a signing time, refuses integrated times in the future, checks the certificate at
//!    every verified time, and checks that each entry describes this bundle (CVE-2022-36056).
//!    [`verify_log_entries`] runs the rest of what the flag skips, once: the bundle carries the log
//!    material its version requires, every inclusion proof hashes the logged body up to a
//!    checkpoint signed by a trusted log key, and a SET that supplied no time is verified here.
//! 2. **Rekor v2 entries that log a public key.** Production Rekor v2 (`log2025-1`) hashedrekord
//!    0.0.2 entries written by sigstore-js log the certificate's public key as the verifier while
//!    the bundle carries the certificate; sigstore-verify requires the entry to hold the
//!    certificate. [`bind_logged_keys`] accepts such an entry only when the logged key is
//!    byte-for-byte the certificate's SubjectPublicKeyInfo — the certificate then binds that key to
//!    the identity exactly as a logged certificate would — and hands sigstore-verify a copy in
//!    which the entry names the certificate, so every other consistency check (digest, signature)
//!    is still sigstore-verify's. The inclusion proof is verified over the body as logged, before.
//!
//! Merkle hashing and checkpoint parsing are the sigstore crates' (sigstore-merkle,
//! sigstore-types); signatures are verified with the trusted root's keyring (sigstore-crypto).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde::Serialize;
use sigstore_crypto::Keyring;
use sigstore_types::bundle::{InclusionProof, VerificationMaterialContent};
use sigstore_types::{Bundle, CanonicalizedBody, KindVersion, Sha256Hash, SignatureBytes, TransparencyLogEntry};
use sigstore_verify::error::TransparencyLogError as T;

use super::verify::error::{Check, VerifyError, VerifyResult};

fn log_error(e: T) -> VerifyError {
    VerifyError::from_sigstore(sigstore_verify::Error::TransparencyLog(e))
}

/// Whether sigstore-verify's own time source already verified this entry's SET (see
/// `determine_validation_times` there): Rekor v1 kinds with an inclusion promise and a time.
fn set_verified_upstream(e: &TransparencyLogEntry) -> bool {
    matches!(e.kind_version, KindVersion::HashedRekordV001 | KindVersion::DsseV001 | KindVersion::IntotoV002)
        && e.inclusion_promise.is_some()
        && e.integrated_time.is_some()
}

/// The log checks sigstore-verify skips under `skip_tlog_unsafe()`, for a certificate-bearing
/// bundle: required material present, inclusion proofs and checkpoints, SETs that supplied no
/// time. `now` selects the log keys whose validity has started.
pub(crate) fn verify_log_entries(keys: &Keyring, bundle: &Bundle, now: Timestamp) -> VerifyResult<()> {
    let required = sigstore_bundle::ValidationOptions::new().with_require_inclusion_proof(true).with_require_timestamp(false);
    sigstore_bundle::validate_bundle_with_options(bundle, &required)
        .map_err(|e| VerifyError::from_sigstore(sigstore_verify::Error::Bundle(e)))?;
    for entry in &bundle.verification_material.tlog_entries {
        if let Some(proof) = &entry.inclusion_proof {
            verify_inclusion(entry, proof, keys, now)?;
        }
        if entry.inclusion_promise.is_some() && !set_verified_upstream(entry) {
            verify_set(entry, keys, now)?;
        }
    }
    Ok(())
}

fn is_rekor_v2(e: &TransparencyLogEntry) -> bool {
    e.kind_version == KindVersion::HashedRekordV002
}

/// The entry's body hashes up to the checkpoint's root, and the checkpoint is signed by a trusted
/// log key. Rekor v2 takes index, size and root from the entry and the signed checkpoint; v1 also
/// requires its duplicated proof root to equal the checkpoint's.
pub(crate) fn verify_inclusion(entry: &TransparencyLogEntry, proof: &InclusionProof, keys: &Keyring, now: Timestamp) -> VerifyResult<()> {
    let checkpoint =
        proof.checkpoint.checkpoint().ok_or_else(|| log_error(T::Checkpoint("the inclusion proof has no checkpoint".into())))?;
    let (index, size, root) = if is_rekor_v2(entry) {
        (entry.log_index.get(), checkpoint.tree_size(), *checkpoint.root_hash())
    } else {
        if checkpoint.root_hash().as_bytes() != proof.root_hash.as_bytes() {
            return Err(log_error(T::Checkpoint(format!(
                "Checkpoint root hash mismatch: expected {}, got {}",
                checkpoint.root_hash().to_hex(),
                proof.root_hash.to_hex()
            ))));
        }
        (proof.log_index.get(), proof.tree_size, proof.root_hash)
    };
    let leaf = sigstore_merkle::hash_leaf(entry.canonicalized_body.as_bytes());
    sigstore_merkle::verify_inclusion_proof(&leaf, index, size, &proof.hashes, &root)
        .map_err(|e| log_error(T::InclusionProof(format!("inclusion proof verification failed: {e}"))))?;
    // Four-byte key hints may collide: try every matching key, and do not let an invalid
    // signature under a matching hint hide a valid one.
    let message = checkpoint.signed_data();
    let mut matched = false;
    for sig in checkpoint.signatures() {
        for key in keys.keys_by_hint(&sig.key_id, now) {
            matched = true;
            if key.verify(message, &sig.signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(log_error(T::Checkpoint(
        if matched { "No valid Rekor signature found on checkpoint" } else { "No matching Rekor key found for checkpoint signature" }
            .into(),
    )))
}

/// The SET payload as Rekor v1 signs it (RFC 8785 canonical JSON).
#[derive(Serialize)]
struct SetPayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

impl SetPayload {
    /// RFC 8785 form. The payload has one shape — keys `body`, `integratedTime`, `logID`,
    /// `logIndex` (already in JCS order), a base64 string, a hex string, two integers — so when
    /// the strings hold only base64 characters (nothing to escape) and the integers are exact in
    /// an IEEE double (JCS writes numbers as ECMAScript does), the canonical text is written
    /// directly; anything else goes through serde_json_canonicalizer. Written out because the
    /// canonicalizer took ~3.7 µs per bundle, a tenth of the work above the signature floor
    /// (README "Design"); a test holds the two to the same bytes.
    fn canonical(&self) -> Result<Vec<u8>, serde_json::Error> {
        const EXACT: u64 = 1 << 53;
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if plain(&self.body) && plain(&self.log_id) && [self.integrated_time, self.log_index].iter().all(|n| n.unsigned_abs() < EXACT) {
            let mut out = Vec::with_capacity(self.body.len() + self.log_id.len() + 80);
            out.extend_from_slice(b"{\"body\":\"");
            out.extend_from_slice(self.body.as_bytes());
            out.extend_from_slice(format!("\",\"integratedTime\":{},\"logID\":\"", self.integrated_time).as_bytes());
            out.extend_from_slice(self.log_id.as_bytes());
            out.extend_from_slice(format!("\",\"logIndex\":{}}}", self.log_index).as_bytes());
            return Ok(out);
        }
        serde_json_canonicalizer::to_vec(self)
    }
}

fn verify_set(entry: &TransparencyLogEntry, keys: &Keyring, now: Timestamp) -> VerifyResult<()> {
    let promise = entry.inclusion_promise.as_ref().ok_or_else(|| log_error(T::InclusionPromise("Missing inclusion promise".into())))?;
    let id = Sha256Hash::try_from(entry.log_id.key_id.as_bytes())
        .map_err(|e| log_error(T::MalformedEntry(format!("invalid Rekor log ID: {e}"))))?;
    verify_set_of(
        keys,
        &id,
        entry.integrated_time,
        entry.log_index.as_i64(),
        entry.canonicalized_body.to_base64(),
        promise.signed_entry_timestamp.as_bytes(),
        now,
    )
}

/// A Rekor v1 SET over (body, integrated time, log index, log ID), by the key of log `id` valid
/// at the integrated time (or, without one, started by `now`). Also for entries that arrive
/// outside a bundle (cosign's `dev.sigstore.cosign/bundle` annotation, `core::legacy_att`).
pub(crate) fn verify_set_of(
    keys: &Keyring,
    id: &Sha256Hash,
    integrated_time: Option<Timestamp>,
    log_index: i64,
    body_b64: String,
    set: &[u8],
    now: Timestamp,
) -> VerifyResult<()> {
    let key = match integrated_time {
        Some(t) => keys.key_at(id, t),
        None => keys.key_started_by(id, now),
    }
    .ok_or_else(|| log_error(T::UnknownLog { log_id: hex::encode(id.as_bytes()) }))?;
    let payload = SetPayload {
        body: body_b64,
        integrated_time: integrated_time.map_or(0, |t| t.as_second()),
        log_index,
        log_id: hex::encode(id.as_bytes()),
    };
    let signed = payload.canonical().map_err(|e| log_error(T::InclusionPromise(format!("Canonicalization failed: {e}"))))?;
    key.verify(&signed, &SignatureBytes::new(set.to_vec()))
        .map_err(|e| log_error(T::InclusionPromise(format!("SET verification failed: {e}"))))
}

/// The bundle's signing certificate (DER), if it carries one.
fn leaf_certificate(bundle: &Bundle) -> Option<&[u8]> {
    match &bundle.verification_material.content {
        VerificationMaterialContent::Certificate(c) => Some(c.raw_bytes.as_bytes()),
        VerificationMaterialContent::X509CertificateChain { certificates } => certificates.first().map(|c| c.raw_bytes.as_bytes()),
        _ => None,
    }
}

/// For a certificate-bearing bundle whose Rekor v2 hashedrekord entries log the certificate's
/// public key: a copy in which those entries name the certificate instead (see the module doc),
/// or `None` when no entry needs it. A logged key that is not the certificate's is refused.
/// The copy is only for sigstore-verify's consistency checks: [`verify_log_entries`] must pass on
/// the original (the proofs cover the bodies as logged).
pub(crate) fn bind_logged_keys(bundle: &Bundle) -> VerifyResult<Option<Bundle>> {
    use der::{Decode, Encode};
    let Some(leaf) = leaf_certificate(bundle) else { return Ok(None) };
    let mut copy: Option<Bundle> = None;
    for (i, entry) in bundle.verification_material.tlog_entries.iter().enumerate() {
        if !is_rekor_v2(entry) {
            continue;
        }
        let mut body: serde_json::Value = match serde_json::from_slice(entry.canonicalized_body.as_bytes()) {
            Ok(v) => v,
            Err(_) => continue, // sigstore-verify names the malformed body
        };
        let verifier = &mut body["spec"]["hashedRekordV002"]["signature"]["verifier"];
        if verifier.get("x509Certificate").is_some() {
            continue;
        }
        let Some(logged) = verifier["publicKey"]["rawBytes"].as_str().and_then(|k| B64.decode(k).ok()) else { continue };
        let cert = x509_cert::Certificate::from_der(leaf)
            .map_err(|e| VerifyError::new(Check::Certificate, format!("the bundle's certificate is malformed: {e}")))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| VerifyError::new(Check::Certificate, format!("the certificate's public key cannot be encoded: {e}")))?;
        if logged != spki {
            return Err(log_error(T::EntryMismatch("the public key in the Rekor v2 entry is not the certificate's".into())));
        }
        let o = verifier.as_object_mut().expect("verifier is an object: it has publicKey");
        o.remove("publicKey");
        o.insert("x509Certificate".into(), serde_json::json!({ "rawBytes": B64.encode(leaf) }));
        let b = copy.get_or_insert_with(|| bundle.clone());
        b.verification_material.tlog_entries[i].canonicalized_body = CanonicalizedBody::new(body.to_string().into_bytes());
    }
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &[u8] = include_bytes!("../../tests/fixtures/real-world/rekor-v2-log2025-1/hashedrekord-v0.0.2.sigstore.json");

    fn bundle() -> Bundle {
        crate::core::verify::parse_bundle(V2).unwrap()
    }

    fn with_body(b: &mut Bundle, f: impl FnOnce(&mut serde_json::Value)) {
        let e = &mut b.verification_material.tlog_entries[0];
        let mut body: serde_json::Value = serde_json::from_slice(e.canonicalized_body.as_bytes()).unwrap();
        f(&mut body);
        e.canonicalized_body = CanonicalizedBody::new(body.to_string().into_bytes());
    }

    #[test]
    fn the_set_payload_is_the_canonicalizers() {
        let bodies = ["", "eyJhcGlWZXJzaW9uIjoiMC4wLjEifQ==", "a+b/c=", "with \"quote\"", "new\nline", "ünï", "<&>"];
        let numbers = [0i64, 1, -1, 1_700_000_000, (1 << 53) - 1, 1 << 53, -(1 << 53), i64::MAX, i64::MIN];
        for body in bodies {
            for &t in &numbers {
                for &i in &numbers {
                    for id in ["c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d", "not hex \u{1}"] {
                        let p = SetPayload { body: body.into(), integrated_time: t, log_index: i, log_id: id.into() };
                        assert_eq!(p.canonical().unwrap(), serde_json_canonicalizer::to_vec(&p).unwrap(), "{body:?} {t} {i} {id:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_logged_key_that_is_the_certificates_is_bound_to_the_certificate() {
        let b = bundle();
        let bound = bind_logged_keys(&b).unwrap().expect("the entry logs a key, so a copy is made");
        let body: serde_json::Value =
            serde_json::from_slice(bound.verification_material.tlog_entries[0].canonicalized_body.as_bytes()).unwrap();
        let v = &body["spec"]["hashedRekordV002"]["signature"]["verifier"];
        assert!(v.get("publicKey").is_none());
        assert_eq!(B64.decode(v["x509Certificate"]["rawBytes"].as_str().unwrap()).unwrap(), leaf_certificate(&b).unwrap());
        // an entry that already names the certificate needs no copy
        assert!(bind_logged_keys(&bound).unwrap().is_none());
    }

    #[test]
    fn a_logged_key_that_is_not_the_certificates_is_refused() {
        let mut b = bundle();
        // another P-256 key (the production Rekor v1 log's)
        let other =
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwrkBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==";
        with_body(&mut b, |body| body["spec"]["hashedRekordV002"]["signature"]["verifier"]["publicKey"]["rawBytes"] = other.into());
        let e = bind_logged_keys(&b).unwrap_err();
        assert_eq!(e.check, crate::core::verify::Check::TransparencyLog);
        assert!(e.detail.contains("not the certificate's"), "{}", e.detail);
    }

    #[test]
    fn inclusion_proofs_and_checkpoints_are_checked_with_the_trusted_keys() {
        let tm = crate::core::verify::TrustedMaterial::from_json(
            "production",
            include_bytes!("../../tests/fixtures/production/targets/trusted_root.json"),
        )
        .unwrap();
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let b = bundle();
        verify_log_entries(tm.rekor_keys(), &b, now).unwrap();
        // a changed body no longer hashes up to the checkpoint
        let mut t = b.clone();
        with_body(&mut t, |body| body["spec"]["hashedRekordV002"]["data"]["digest"] = B64.encode([1u8; 32]).into());
        assert!(verify_log_entries(tm.rekor_keys(), &t, now).unwrap_err().detail.contains("inclusion proof"));
        // without any trusted log key, the checkpoint is not trusted
        assert!(verify_log_entries(&Keyring::new(), &b, now).unwrap_err().detail.contains("No matching Rekor key"));
        // before the log key's validity starts, neither
        let early: Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
        assert!(verify_log_entries(tm.rekor_keys(), &b, early).is_err());
        // a bundle without its inclusion proof is incomplete
        let mut n = b.clone();
        n.verification_material.tlog_entries[0].inclusion_proof = None;
        assert!(verify_log_entries(tm.rekor_keys(), &n, now).is_err());
    }
}
