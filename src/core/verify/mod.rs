//! The offline verification engine: bytes, trusted material and a clock in; a verified signer (and
//! in-toto statement) or a typed refusal out. No I/O.
//!
//! Cryptographic verification of Sigstore bundles (v0.1–v0.3: certificate chain to Fulcio, SCTs
//! against CT log keys, Rekor v1 SETs and inclusion proofs with signed checkpoints, Rekor v2,
//! RFC 3161 timestamps, integrated time within the certificate's validity, message signatures
//! and DSSE) is `sigstore-verify`'s (see README "Design"), except: keyless bundles with one
//! Rekor v1 entry and its SET, verified in one pass by `core::keyless` (held to sigstore-verify's
//! answers); the transparency-log checks of the other keyless bundles, `core::rekor_log`'s (each
//! SET verified once; Rekor v2 entries that log the certificate's key); cosign's intoto 0.0.1
//! attestations (`core::legacy_att`). The vocabulary they share sits below this engine:
//! [`error`] (why a check refused), [`terms`] (authorities, subjects, results), [`trusted`]
//! (trusted roots). This module adds what sigstore-verify lacks or what trustmirror decides
//! differently:
//!
//! * identity policy (`core::identity`) applied to the verified certificate;
//! * the injected clock (sigstore-verify reads the system clock only to refuse integrated times
//!   in the future; the engine applies the same rule with its clock);
//! * several trust roots side by side, each with a stable content digest that caches key on;
//! * M-of-N over independent authorities;
//! * errors that name the check that failed ([`Check`]), for CLI messages, admission denials
//!   and audit records alike;
//! * size limits on everything parsed.

use jiff::Timestamp;
use sigstore_types::{Artifact, Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy};

pub use crate::core::digest::parse_digest;
use crate::core::identity::check_identity;
pub use crate::core::identity::{Claims, IdentityPolicy, Matcher};

pub(crate) mod error;
pub(crate) mod terms;
pub(crate) mod trusted;

pub use error::{Check, VerifyError, VerifyResult};
pub use terms::{Authority, Statement, Subject, Verified};
pub use trusted::{MAX_DOCUMENT, TrustStore, TrustedMaterial};

/// Protobuf JSON carries bytes as base64; encoders that wrap lines (and Go's decoder, which
/// ignores CR/LF) exist in the wild. Strings made only of base64 characters and line breaks are
/// unwrapped, so a wrapped field is judged on its content, not its layout. Returns whether
/// anything changed.
#[allow(clippy::unnecessary_fold)] // every element must be visited: no short circuit
fn unwrap_base64(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) if s.contains(['\n', '\r']) => {
            let is_b64 = s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'\n' | b'\r'));
            if is_b64 {
                s.retain(|c| c != '\n' && c != '\r');
            }
            is_b64
        }
        serde_json::Value::Array(a) => a.iter_mut().fold(false, |acc, x| unwrap_base64(x) || acc),
        serde_json::Value::Object(o) => o.values_mut().fold(false, |acc, x| unwrap_base64(x) || acc),
        _ => false,
    }
}

fn bundle_parse_error(e: sigstore_types::Error) -> VerifyError {
    let d = crate::core::tuf::display_chain(&e);
    // a malformed checkpoint note is a transparency-log problem, whatever layer noticed it
    let check = if d.contains("checkpoint") { Check::TransparencyLog } else { Check::Parse };
    VerifyError::new(check, format!("bundle: {d}"))
}

pub fn parse_bundle(json: &[u8]) -> VerifyResult<Bundle> {
    if json.len() > MAX_DOCUMENT {
        return Err(VerifyError::new(Check::Parse, format!("bundle of {} bytes exceeds the {MAX_DOCUMENT}-byte limit", json.len())));
    }
    let text = std::str::from_utf8(json).map_err(|e| VerifyError::new(Check::Parse, format!("bundle is not UTF-8: {e}")))?;
    let b = match Bundle::from_json(text) {
        Ok(b) => b,
        Err(first) => {
            // the slow path: only for documents that are JSON but may carry wrapped base64
            let mut v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| VerifyError::new(Check::Parse, format!("bundle is not valid JSON: {e}")))?;
            if !unwrap_base64(&mut v) {
                return Err(bundle_parse_error(first));
            }
            Bundle::from_json(&v.to_string()).map_err(bundle_parse_error)?
        }
    };
    check_chain_shape(&b)?;
    Ok(b)
}

/// A v0.1/v0.2 `x509CertificateChain` must hold the leaf (and may hold intermediates) but never
/// be empty and never carry a root: trust anchors come from the trusted root only.
fn check_chain_shape(b: &Bundle) -> VerifyResult<()> {
    use der::Decode;
    if let sigstore_types::bundle::VerificationMaterialContent::X509CertificateChain { certificates } = &b.verification_material.content {
        if certificates.is_empty() {
            return Err(VerifyError::new(Check::Certificate, "the bundle's certificate chain is empty: no signing certificate"));
        }
        // the leaf (0) is parsed by the verifier; only the others are looked at here
        for (i, c) in certificates.iter().enumerate().skip(1) {
            let cert = x509_cert::Certificate::from_der(c.raw_bytes.as_bytes())
                .map_err(|e| VerifyError::new(Check::Certificate, format!("certificate {i} of the bundle's chain is malformed: {e}")))?;
            if cert.tbs_certificate.issuer == cert.tbs_certificate.subject {
                return Err(VerifyError::new(
                    Check::Certificate,
                    format!(
                        "the bundle's certificate chain contains a self-signed root (certificate {i}); roots come only from the trusted root"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn artifact(s: Subject<'_>) -> Artifact<'_> {
    match s {
        Subject::Blob(b) => Artifact::from(b),
        Subject::Sha256(d) => Artifact::from(Sha256Hash::new(d)),
        Subject::Sha512(d) => Artifact::from_digest(
            sigstore_types::ArtifactDigest::new(sigstore_types::HashAlgorithm::Sha2512, d.to_vec()).expect("64 bytes is a SHA-512"),
        ),
    }
}

fn statement_of(bundle: &Bundle) -> Option<Statement> {
    let env = match &bundle.content {
        sigstore_types::SignatureContent::DsseEnvelope(e) => e,
        _ => return None,
    };
    if env.payload_type != "application/vnd.in-toto+json" {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(env.payload.as_bytes()).ok()?;
    let subjects = v["subject"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (s["name"].as_str().unwrap_or_default().to_string(), s["digest"]["sha256"].as_str().unwrap_or_default().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Statement {
        predicate_type: v["predicateType"].as_str().unwrap_or_default().to_string(),
        subjects,
        predicate: v["predicate"].clone(),
    })
}

/// Verify one Sigstore bundle (JSON) for `subject`, signed by `authority`, at `now`.
pub fn verify_bundle(
    tm: &TrustedMaterial,
    bundle_json: &[u8],
    subject: Subject<'_>,
    authority: &Authority,
    now: Timestamp,
) -> VerifyResult<Verified> {
    if crate::core::legacy_att::is_wrapped(bundle_json) {
        return crate::core::legacy_att::verify(tm, bundle_json, subject, authority, now);
    }
    let bundle = parse_bundle(bundle_json)?;
    verify_parsed(tm, &bundle, subject, authority, now)
}

/// As [`verify_bundle`], for an already parsed bundle (the OCI adapters build bundles).
pub fn verify_parsed(
    tm: &TrustedMaterial,
    bundle: &Bundle,
    subject: Subject<'_>,
    authority: &Authority,
    now: Timestamp,
) -> VerifyResult<Verified> {
    if let Authority::Keyless(p) = authority
        && crate::core::keyless::covers(bundle)
    {
        let s = crate::core::keyless::verify(tm, bundle, subject, now)?;
        check_identity(p, s.san.as_deref(), s.issuer.as_deref(), &s.claims)?;
        return Ok(Verified {
            signer: s.san.unwrap_or_default(),
            issuer: s.issuer,
            claims: s.claims,
            integrated_time: s.logged,
            timestamps: s.times,
            statement: s.statement.map(Statement::from),
        });
    }
    verify_with_sigstore(tm, bundle, subject, authority, now)
}

/// As [`verify_parsed`], with every bundle verified by sigstore-verify (and `core::rekor_log`),
/// including those `core::keyless` verifies in one pass: the reference that path is tested and
/// benchmarked against.
pub fn verify_with_sigstore(
    tm: &TrustedMaterial,
    bundle: &Bundle,
    subject: Subject<'_>,
    authority: &Authority,
    now: Timestamp,
) -> VerifyResult<Verified> {
    let (result, signer, issuer, claims) = match authority {
        Authority::Keyless(p) => {
            // The log checks are ours, each SET verified once (see core::rekor_log); everything
            // else, including the SETs that give signing times, is sigstore-verify's, in its
            // order (certificate, SCT, then the log).
            let bound = crate::core::rekor_log::bind_logged_keys(bundle)?;
            let r = tm
                .verifier
                .verify(artifact(subject), bound.as_ref().unwrap_or(bundle), &VerificationPolicy::any_identity().skip_tlog_unsafe())
                .map_err(VerifyError::from_sigstore)?;
            crate::core::rekor_log::verify_log_entries(tm.rekor_keys(), bundle, now)?;
            let cert =
                r.certificate().ok_or_else(|| VerifyError::new(Check::Certificate, "keyless verification produced no certificate"))?;
            let claims = Claims::from(&cert.ci_claims);
            let san = r.identity().map(|s| s.as_str().to_string());
            let issuer = r.issuer().map(str::to_string);
            check_identity(p, san.as_deref(), issuer.as_deref(), &claims)?;
            (r, san.unwrap_or_default(), issuer, claims)
        }
        Authority::Key { name, spki_der } => {
            if !matches!(bundle.verification_material.content, sigstore_types::bundle::VerificationMaterialContent::PublicKey(_)) {
                // A certificate-bearing bundle for a key policy: the certificate's key must be ours.
                return Err(VerifyError::new(Check::Key, format!("bundle is signed with a certificate, not with key {name}")));
            }
            let policy = PublicKeyVerificationPolicy::new(DerPublicKey::new(spki_der.clone()));
            let r = tm.verifier.verify(artifact(subject), bundle, &policy).map_err(|e| {
                let mut v = VerifyError::from_sigstore(e);
                if v.check == Check::Signature {
                    v.check = Check::Key;
                    v.detail = format!("not signed by key {name}: {}", v.detail);
                }
                v
            })?;
            (r, name.clone(), None, Claims::default())
        }
    };
    let times = result.verified_timestamps().to_vec();
    if let Some(t) = times.iter().find(|t| **t > now) {
        return Err(VerifyError::new(Check::Timestamp, format!("signing time {t} is after the verification time {now}")));
    }
    // under skip_tlog_unsafe sigstore-verify reports no integrated time; the SETs it verified
    // (those of Rekor v1 entries) are the logged times
    let logged = || {
        bundle
            .verification_material
            .tlog_entries
            .iter()
            .filter(|e| e.inclusion_promise.is_some() && e.kind_version != sigstore_types::KindVersion::HashedRekordV002)
            .filter_map(|e| e.integrated_time)
            .min()
    };
    let integrated_time = result.integrated_time().or_else(|| times.iter().any(|t| Some(*t) == logged()).then(logged).flatten());
    Ok(Verified { signer, issuer, claims, integrated_time, timestamps: times, statement: statement_of(bundle) })
}

/// M-of-N: at least `m` distinct authorities among `authorities` must each have produced one of
/// `bundles` (verified for `subject`). Returns the verified signatures, one per satisfied authority.
pub fn verify_threshold(
    tm: &TrustedMaterial,
    bundles: &[Vec<u8>],
    subject: Subject<'_>,
    authorities: &[Authority],
    m: usize,
    now: Timestamp,
) -> VerifyResult<Vec<Verified>> {
    let mut satisfied = Vec::new();
    let mut last_err: Option<VerifyError> = None;
    for a in authorities {
        let found = bundles.iter().find_map(|b| match verify_bundle(tm, b, subject, a, now) {
            Ok(v) => Some(v),
            Err(e) => {
                last_err = Some(e);
                None
            }
        });
        if let Some(v) = found {
            satisfied.push(v);
        }
    }
    if satisfied.len() >= m {
        return Ok(satisfied);
    }
    Err(VerifyError::new(
        Check::Threshold,
        format!(
            "{} of {} required authorities signed ({} signatures examined){}",
            satisfied.len(),
            m,
            bundles.len(),
            last_err.map(|e| format!("; last refusal: {e}")).unwrap_or_default()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_and_malformed_bundles_are_parse_errors() {
        let tm = TrustedMaterial::production();
        let a = Authority::Keyless(IdentityPolicy::default());
        let e = verify_bundle(tm, &vec![b' '; MAX_DOCUMENT + 1], Subject::Blob(b""), &a, Timestamp::now()).unwrap_err();
        assert_eq!(e.check, Check::Parse);
        let e = verify_bundle(tm, b"{\"mediaType\": 5", Subject::Blob(b""), &a, Timestamp::now()).unwrap_err();
        assert_eq!(e.check, Check::Parse, "{e}");
        let e = verify_bundle(tm, &[0xff, 0xfe], Subject::Blob(b""), &a, Timestamp::now()).unwrap_err();
        assert_eq!(e.check, Check::Parse, "{e}");
    }
}
