//! Keyless bundles with one transparency-log entry — Rekor v1 `hashedrekord` 0.0.1 (a message
//! signature), `dsse` 0.0.1 or `intoto` 0.0.2 (a DSSE envelope) with its SET and/or RFC 3161
//! timestamps, or Rekor v2 `hashedrekord` 0.0.2 with RFC 3161 timestamps: what cosign 2.x/3.x,
//! sigstore-python, sigstore-js, npm and `gh attestation` produce — verified in one pass over
//! pieces parsed once. Every other bundle (key-signed, several entries, TSA-only, Rekor v2 `dsse`)
//! is sigstore-verify's (`core::verify`).
//!
//! Why not sigstore-verify for these too: it parses the signing certificate three times, decodes
//! the logged certificate with a character-by-character PEM parser, and re-parses the entry body
//! for each consistency check; that was ~2/3 of the time it spent beyond the signature
//! verifications themselves (README "Design", verify benchmark). Here the certificate is parsed
//! once (`core::fulcio::LeafCert`), and that parse serves the identity, the chain, the SCT and the
//! entry comparison.
//!
//! The checks, their order and their answers are sigstore-verify's, built from the same parts
//! (sigstore-bundle's structure rules, rustls-webpki, the trusted root's keyrings and TSAs,
//! sigstore-tsa, sigstore-merkle, sigstore-rekor's body types, sigstore-crypto's schemes):
//!
//! 0. a Rekor v2 entry that logs a public key logs the certificate's own (`core::rekor_log`);
//! 1. the bundle's structure for its version;
//! 2. the signing scheme from the certificate's key (and the message digest's algorithm);
//!    for DSSE, an in-toto statement with subjects to bind the artifact to;
//! 3. the signing times: every RFC 3161 timestamp over the signature, by a TSA of the trusted
//!    root, then the SET by the log's key valid at the integrated time (at least one time);
//! 4. at every signing time, the chain to a Fulcio CA valid then, for code signing, and the
//!    certificate valid then;
//! 5. exactly one embedded SCT, signed by a trusted CT log over the precertificate;
//! 6. the signature (message digest binding first; DSSE over its PAE, then the subject binding);
//! 7. the entry describes this bundle (CVE-2022-36056): digest or payload hash, signature and
//!    certificate (for intoto and Rekor v2, its public key will do);
//! 8. the inclusion proof the bundle's version requires (v0.1 bundles may carry only the SET),
//!    up to a checkpoint signed by a trusted log key (`core::rekor_log`);
//! 9. no signing time is after `now` (the injected clock).
//!
//! tests/keyless_paths.rs holds the two paths to the same accept/refuse, check, signer and times
//! on every conformance bundle they both take, on mutations of them, on every real bundle among
//! the fixtures, and on crafted entries; the `bundle` fuzz entry point panics on a difference.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use sigstore_crypto::ArtifactHasher;
use sigstore_types::bundle::VerificationMaterialContent;
use sigstore_types::{
    ArtifactDigest, Bundle, DerCertificate, HashAlgorithm, KindVersion, Sha256Hash, SignatureBytes, SignatureContent, Statement,
    TransparencyLogEntry,
};
use sigstore_verify::rekor::body::RekorEntryBody;

use super::fulcio::LeafCert;
use super::identity::Claims;
use super::verify::error::{Check, VerifyError, VerifyResult};
use super::verify::terms::Subject;
use super::verify::trusted::TrustedMaterial;

fn fail(check: Check, m: impl Into<String>) -> VerifyError {
    VerifyError::new(check, m)
}

/// Whether `b` is a bundle this module verifies: keyless, one entry, and a signing time from a
/// Rekor v1 SET or RFC 3161 timestamps (Rekor v2 entries have only the latter).
pub fn covers(b: &Bundle) -> bool {
    let [e] = b.verification_material.tlog_entries.as_slice() else { return false };
    let tsa = !b.verification_material.timestamp_verification_data.rfc3161_timestamps.is_empty();
    let set = match (&e.inclusion_promise, e.integrated_time) {
        (Some(_), Some(_)) => true,
        (None, None) => false,
        _ => return false, // a promise without a time, or a time without a promise: sigstore-verify's
    };
    b.signing_certificate().is_some()
        && match (&b.content, e.kind_version) {
            (SignatureContent::MessageSignature(_), KindVersion::HashedRekordV001)
            | (SignatureContent::DsseEnvelope(_), KindVersion::DsseV001 | KindVersion::IntotoV002) => set || tsa,
            (SignatureContent::MessageSignature(_) | SignatureContent::DsseEnvelope(_), KindVersion::HashedRekordV002) => !set && tsa,
            _ => false,
        }
}

/// Who signed, and when: every verified signing time (RFC 3161 timestamps, then the SET's), and
/// the log's integrated time when a SET vouched for it; for DSSE, the statement (parsed once).
pub(crate) struct Signed {
    pub san: Option<String>,
    pub issuer: Option<String>,
    pub claims: Claims,
    pub times: Vec<Timestamp>,
    pub logged: Option<Timestamp>,
    pub statement: Option<Statement>,
}

/// The time an RFC 3161 token vouches for, by the first TSA of the trusted root that verifies it
/// over `signature` (sigstore-tsa), with sigstore-verify's reasons when none does.
fn tsa_time(
    token: &sigstore_types::TimestampToken,
    signature: &SignatureBytes,
    tsas: &[sigstore_types::TsaAuthority],
) -> VerifyResult<Timestamp> {
    let (mut outside, mut last) = (None, None);
    for a in tsas {
        match sigstore_verify::tsa::verify_timestamp_for_authority(token, signature, a) {
            Ok(t) => return Ok(t),
            Err(sigstore_verify::tsa::Error::TimestampOutsideValidity { time }) => outside = Some(time),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(fail(
        Check::Timestamp,
        match outside {
            Some(t) => format!("timestamp {t} is outside the validity of every timestamp authority that could have signed it"),
            None => format!(
                "TSA timestamp verification failed: {}",
                last.unwrap_or_else(|| "no timestamp authorities configured in trusted root".into())
            ),
        },
    ))
}

/// The artifact's digests in every algorithm the bundle needs (or the one digest supplied).
struct Digests(Vec<ArtifactDigest>);

impl Digests {
    fn of(subject: Subject<'_>, algorithms: &[HashAlgorithm]) -> VerifyResult<Self> {
        Ok(Self(match subject {
            Subject::Blob(blob) => algorithms
                .iter()
                .map(|a| {
                    let mut h = ArtifactHasher::new(*a).map_err(|e| fail(Check::Artifact, e.to_string()))?;
                    h.update(blob);
                    Ok(h.finalize())
                })
                .collect::<VerifyResult<_>>()?,
            Subject::Sha256(d) => vec![ArtifactDigest::new(HashAlgorithm::Sha2256, d.to_vec()).expect("32 bytes is a SHA-256")],
            Subject::Sha512(d) => vec![ArtifactDigest::new(HashAlgorithm::Sha2512, d.to_vec()).expect("64 bytes is a SHA-512")],
        }))
    }

    fn get(&self, a: HashAlgorithm) -> VerifyResult<&[u8]> {
        self.0.iter().find(|d| d.algorithm() == a).map(|d| d.as_bytes()).ok_or_else(|| {
            let have: Vec<String> = self.0.iter().map(|d| d.algorithm().to_string()).collect();
            fail(Check::Artifact, format!("verification requires an {a} artifact digest; supplied: {}", have.join(", ")))
        })
    }
}

/// Whether logged PEM text is the leaf's PEM in RFC 7468's layout (with or without the final
/// newline). Rekor logs the PEM its client sent and every client writes that layout, so this one
/// comparison settles the common case; any other text is decoded as sigstore-verify decodes it.
fn is_leaf_pem(pem: &[u8], leaf_pem: &str) -> bool {
    pem == leaf_pem.as_bytes() || pem == leaf_pem.trim_end().as_bytes()
}

/// Whether the certificate logged in an entry (PEM text) is `leaf_der`: [`is_leaf_pem`], else
/// sigstore-rekor's lenient parser and a DER comparison — the same answer either way.
fn logged_certificate_is(
    pem: &[u8],
    leaf_pem: &str,
    leaf_der: &[u8],
    lenient: impl FnOnce() -> Result<DerCertificate, sigstore_verify::rekor::Error>,
) -> VerifyResult<bool> {
    if is_leaf_pem(pem, leaf_pem) {
        return Ok(true);
    }
    lenient().map(|c| c.as_bytes() == leaf_der).map_err(|e| fail(Check::TransparencyLog, e.to_string()))
}

fn entry_mismatch(m: &str) -> VerifyError {
    fail(Check::TransparencyLog, m)
}

pub(crate) fn verify(tm: &TrustedMaterial, b: &Bundle, subject: Subject<'_>, now: Timestamp) -> VerifyResult<Signed> {
    let entry: &TransparencyLogEntry = match b.verification_material.tlog_entries.as_slice() {
        [e] => e,
        _ => return Err(fail(Check::Unsupported, "the one-pass path takes bundles with exactly one log entry")),
    };
    // 0. a Rekor v2 entry may log the certificate's key instead of the certificate: only that key
    //    (core::rekor_log, first, as on the sigstore-verify path)
    if entry.kind_version == KindVersion::HashedRekordV002 {
        super::rekor_log::bind_logged_keys(b)?;
    }
    // 1. structure (the inclusion proof is required at 8, in sigstore-verify's order)
    let structure = |require_proof: bool| {
        let rules = sigstore_bundle::ValidationOptions::new().with_require_inclusion_proof(require_proof).with_require_timestamp(false);
        sigstore_bundle::validate_bundle_with_options(b, &rules).map_err(|e| VerifyError::from_sigstore(sigstore_verify::Error::Bundle(e)))
    };
    structure(false)?;
    let (leaf_der, intermediates): (&[u8], Vec<&[u8]>) = match &b.verification_material.content {
        VerificationMaterialContent::Certificate(c) => (c.raw_bytes.as_bytes(), vec![]),
        VerificationMaterialContent::X509CertificateChain { certificates } => match certificates.split_first() {
            Some((l, rest)) => (l.raw_bytes.as_bytes(), rest.iter().map(|c| c.raw_bytes.as_bytes()).collect()),
            None => return Err(fail(Check::Certificate, "bundle has no signing certificate")),
        },
        _ => return Err(fail(Check::Certificate, "bundle has no signing certificate")),
    };
    let leaf = LeafCert::parse(leaf_der)?;
    let v2 = entry.kind_version == KindVersion::HashedRekordV002;

    // 2. scheme, statement, digests
    let crypto = |e: sigstore_crypto::Error| fail(Check::Signature, e.to_string());
    let (scheme, statement, algorithms) = match &b.content {
        SignatureContent::MessageSignature(m) => {
            let scheme = match &m.message_digest {
                Some(d) => leaf.key_algorithm.resolve_signing_scheme(d.algorithm).map_err(crypto)?,
                None => leaf.key_algorithm.default_signing_scheme(),
            };
            let mut algs = vec![HashAlgorithm::Sha2256];
            for a in m.message_digest.as_ref().map(|d| d.algorithm).into_iter().chain(scheme.hash_algorithm()) {
                if !algs.contains(&a) {
                    algs.push(a);
                }
            }
            (scheme, None, algs)
        }
        SignatureContent::DsseEnvelope(env) => {
            if env.payload_type != "application/vnd.in-toto+json" {
                return Err(fail(
                    Check::Unsupported,
                    format!("unsupported DSSE payload type {:?}: cannot bind artifact to attestation", env.payload_type),
                ));
            }
            let st: Statement = serde_json::from_slice(env.payload.as_bytes())
                .map_err(|e| fail(Check::Parse, format!("failed to parse in-toto statement: {e}")))?;
            if st.subject.is_empty() {
                return Err(fail(Check::Parse, "in-toto statement has no subjects: cannot bind artifact to attestation"));
            }
            let algs = st.subject_algorithms();
            if algs.is_empty() {
                return Err(fail(Check::Unsupported, "in-toto statement has no supported subject digest algorithms"));
            }
            (leaf.key_algorithm.default_signing_scheme(), Some(st), algs)
        }
        _ => return Err(fail(Check::Unsupported, "unsupported bundle signature content")),
    };
    let digests = Digests::of(subject, &algorithms)?;

    // 3. the signing times: RFC 3161 timestamps over the signature, then the SET's integrated time
    let signature = match &b.content {
        SignatureContent::MessageSignature(m) => &m.signature,
        SignatureContent::DsseEnvelope(e) => &e.signature.sig,
        _ => return Err(fail(Check::Unsupported, "unsupported bundle signature content")),
    };
    let tokens = &b.verification_material.timestamp_verification_data.rfc3161_timestamps;
    let mut times = Vec::with_capacity(tokens.len() + 1);
    if !tokens.is_empty() {
        let tsas = tm.root.tsa_authorities();
        for t in tokens {
            times.push(tsa_time(&t.signed_timestamp, signature, &tsas)?);
        }
    }
    let logged = match (&entry.inclusion_promise, entry.integrated_time) {
        (Some(promise), Some(time)) if !v2 => {
            let log_id = Sha256Hash::try_from(entry.log_id.key_id.as_bytes())
                .map_err(|e| fail(Check::TransparencyLog, format!("invalid Rekor log ID: {e}")))?;
            super::rekor_log::verify_set_of(
                tm.rekor_keys(),
                &log_id,
                Some(time),
                entry.log_index.as_i64(),
                entry.canonicalized_body.to_base64(),
                promise.signed_entry_timestamp.as_bytes(),
                now,
            )?;
            times.push(time);
            Some(time)
        }
        _ => None,
    };
    if times.is_empty() {
        return Err(fail(Check::Timestamp, "no verified signing time: neither an RFC 3161 timestamp nor a Rekor v1 SET"));
    }

    // 4. chain and validity at every signing time; 5. the SCT over the precertificate
    let issuer_spki = tm.anchors().verify_chain_at(leaf_der, &intermediates, &times, |t| leaf.check_time(t))?;
    super::sct::verify_one(&leaf.cert, leaf_der, &issuer_spki, tm.ct_keys())?;

    // 6. the signature
    let bad_sig = |what: &str, e: sigstore_crypto::Error| fail(Check::Signature, format!("{what} verification failed: {e}"));
    let artifact_sha256 = || -> VerifyResult<Sha256Hash> {
        Sha256Hash::try_from(digests.get(HashAlgorithm::Sha2256)?).map_err(|e| fail(Check::Artifact, e.to_string()))
    };
    match (&b.content, &statement) {
        (SignatureContent::DsseEnvelope(env), Some(st)) => {
            sigstore_crypto::verify_signature(&leaf.public_key, &env.pae(), &env.signature.sig, scheme)
                .map_err(|e| bad_sig("DSSE signature", e))?;
            let bound = artifact_sha256().is_ok_and(|d| st.matches_sha256(&d))
                || digests
                    .get(HashAlgorithm::Sha2512)
                    .ok()
                    .and_then(|d| sigstore_types::Sha512Hash::try_from(d).ok())
                    .is_some_and(|d| st.matches_sha512(&d));
            if !bound {
                return Err(fail(Check::Artifact, "artifact hash does not match any subject in attestation"));
            }
        }
        (SignatureContent::MessageSignature(m), _) => {
            if let Some(d) = &m.message_digest
                && d.digest.as_bytes() != digests.get(d.algorithm)?
            {
                return Err(fail(Check::Artifact, "message digest in bundle does not match artifact hash"));
            }
            match (scheme.hash_algorithm(), subject) {
                (Some(a), _) => sigstore_crypto::verify_signature_prehashed(&leaf.public_key, digests.get(a)?, &m.signature, scheme),
                (None, Subject::Blob(blob)) => sigstore_crypto::verify_signature(&leaf.public_key, blob, &m.signature, scheme),
                (None, _) => {
                    return Err(fail(
                        Check::Artifact,
                        format!("cannot verify signature from a digest - scheme {} does not support prehashed mode", scheme.name()),
                    ));
                }
            }
            .map_err(|e| bad_sig("signature", e))?;
        }
        _ => return Err(fail(Check::Unsupported, "unsupported bundle signature content")),
    }

    // 7. the entry is this bundle's
    let body = RekorEntryBody::parse(&entry.canonicalized_body, entry.kind_version)
        .map_err(|e| fail(Check::TransparencyLog, format!("failed to parse Rekor body: {e}")))?;
    let leaf_pem = super::pem::encode("CERTIFICATE", leaf_der);
    match (&body, &b.content) {
        (RekorEntryBody::HashedRekordV001(r), SignatureContent::MessageSignature(m)) => {
            let logged = Sha256Hash::from_hex(r.spec.data.hash.value.as_str())
                .map_err(|e| fail(Check::TransparencyLog, format!("invalid hash in Rekor entry: {e}")))?;
            if artifact_sha256()? != logged {
                return Err(fail(Check::Artifact, "artifact hash mismatch for hashedrekord entry"));
            }
            let key = &r.spec.signature.public_key;
            if !logged_certificate_is(key.content.as_bytes(), &leaf_pem, leaf_der, || key.parse_certificate())? {
                return Err(entry_mismatch("certificate in bundle does not match certificate in Rekor entry"));
            }
            if r.spec.signature.content != m.signature {
                return Err(entry_mismatch("signature in bundle does not match signature in Rekor entry"));
            }
        }
        (RekorEntryBody::DsseV001(d), SignatureContent::DsseEnvelope(env)) => {
            if d.spec.payload_hash.algorithm != HashAlgorithm::Sha2256 {
                return Err(fail(Check::Unsupported, "unsupported DSSE payload hash algorithm"));
            }
            if hex::encode(sigstore_crypto::sha256(env.payload.as_bytes())) != d.spec.payload_hash.value {
                return Err(entry_mismatch("DSSE payload hash mismatch"));
            }
            let [sig] = d.spec.signatures.as_slice() else {
                return Err(entry_mismatch(&format!(
                    "DSSE signature count mismatch: bundle has 1, Rekor entry has {}",
                    d.spec.signatures.len()
                )));
            };
            if env.signature.sig.as_bytes() != sig.signature.as_bytes()
                || !logged_certificate_is(sig.verifier.as_bytes(), &leaf_pem, leaf_der, || sig.parse_certificate())?
            {
                return Err(entry_mismatch(
                    "DSSE signature in bundle does not match any signature in Rekor entry (signature or verifier mismatch)",
                ));
            }
        }
        (RekorEntryBody::IntotoV002(i), SignatureContent::DsseEnvelope(env)) => {
            let c = &i.spec.content;
            if c.payload_hash.algorithm != HashAlgorithm::Sha2256 {
                return Err(fail(Check::Unsupported, format!("unsupported intoto payload hash algorithm: {}", c.payload_hash.algorithm)));
            }
            let logged =
                c.payload_hash.value.decode().map_err(|e| fail(Check::TransparencyLog, format!("invalid intoto payload hash: {e}")))?;
            if sigstore_crypto::sha256(env.payload.as_bytes()).as_bytes() != logged.as_slice() {
                return Err(entry_mismatch("DSSE payload hash does not match intoto Rekor entry"));
            }
            if env.payload_type != c.envelope.payload_type {
                return Err(entry_mismatch(&format!(
                    "DSSE payload type mismatch: bundle has {:?}, Rekor entry has {:?}",
                    env.payload_type, c.envelope.payload_type
                )));
            }
            let [sig] = c.envelope.signatures.as_slice() else {
                return Err(entry_mismatch(&format!(
                    "DSSE signature count mismatch: bundle has 1, Rekor entry has {}",
                    c.envelope.signatures.len()
                )));
            };
            // intoto 0.0.2 logs the signature base64-encoded once more
            let logged_sig = B64
                .decode(sig.sig.as_bytes())
                .map_err(|e| fail(Check::TransparencyLog, format!("failed to decode Rekor signature: {e}")))?;
            if env.signature.sig.as_bytes() != logged_sig.as_slice() {
                return Err(entry_mismatch("DSSE signature in bundle does not match the intoto Rekor signature"));
            }
            // the logged verifier: this certificate, or a certificate or key with its public key
            let pem = sig.public_key.as_bytes();
            let same_key = is_leaf_pem(pem, &leaf_pem)
                || match sig.parse_certificate() {
                    Ok(cert) => super::fulcio::public_key_of(cert.as_bytes())? == leaf.public_key,
                    Err(_) => sig.parse_public_key().map_err(|e| fail(Check::TransparencyLog, e.to_string()))? == leaf.public_key,
                };
            if !same_key {
                return Err(entry_mismatch("DSSE signing certificate does not match the intoto Rekor verifier"));
            }
        }
        (RekorEntryBody::HashedRekordV002(r), content) => {
            let logged = &r.spec.hashed_rekord_v002;
            let hash = match content {
                SignatureContent::DsseEnvelope(env) => sigstore_crypto::sha256(&env.pae()),
                _ => artifact_sha256()?,
            };
            if logged.data.algorithm != HashAlgorithm::Sha2256 {
                return Err(fail(Check::Unsupported, format!("unsupported Rekor v2 digest algorithm: {}", logged.data.algorithm)));
            }
            let expected = Sha256Hash::try_from(&logged.data.digest)
                .map_err(|e| fail(Check::TransparencyLog, format!("invalid digest in Rekor entry: {e}")))?;
            if hash != expected {
                return Err(fail(Check::Artifact, "artifact hash mismatch for hashedrekord entry"));
            }
            // the certificate, or its public key (bound to it at 0)
            let v = &logged.signature.verifier;
            let same = match (&v.x509_certificate, &v.public_key) {
                (Some(c), _) => c.raw_bytes.as_bytes() == leaf_der,
                (None, Some(k)) => k.raw_bytes.as_bytes() == leaf.public_key.as_bytes(),
                (None, None) => return Err(entry_mismatch("certificate-backed Rekor entry contains no certificate")),
            };
            if !same {
                return Err(entry_mismatch("certificate in bundle does not match certificate in Rekor entry"));
            }
            if logged.signature.content != *signature {
                return Err(entry_mismatch("signature in bundle does not match signature in Rekor entry"));
            }
        }
        _ => return Err(fail(Check::TransparencyLog, "the Rekor entry's body is not of its declared kind")),
    }

    // 8. the inclusion proof and its checkpoint
    structure(true)?;
    if let Some(proof) = &entry.inclusion_proof {
        super::rekor_log::verify_inclusion(entry, proof, tm.rekor_keys(), now)?;
    }
    // last, as on the sigstore-verify path: a signing time after the verifier's clock
    if let Some(t) = times.iter().find(|t| **t > now) {
        return Err(fail(Check::Timestamp, format!("signing time {t} is after the verification time {now}")));
    }
    Ok(Signed { san: leaf.san, issuer: leaf.issuer, claims: leaf.claims, times, logged, statement })
}
