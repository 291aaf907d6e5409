//! Fulcio signing certificates, for the verification paths that check certificates themselves
//! (`core::keyless`, `core::legacy_att`): the leaf parsed once into the facts a verifier needs,
//! and its chain to the trusted root's certificate authorities.
//!
//! * [`LeafCert`]: validity, public key, identity (the first e-mail or URI SAN), OIDC issuer
//!   (Fulcio extension `1.3.6.1.4.1.57264.1.8`, or the legacy `.1.1` when `.1.8` is absent; a
//!   malformed `.1.8` is an error) and the CI claims policies match on (`.1.9`, `.1.11`, `.1.12`,
//!   `.1.14`, `.1.18`: DER UTF8Strings; an unreadable claim is left unset). These are the rules
//!   sigstore-crypto's `parse_certificate_info` applies — a unit test holds the two to the same
//!   answers on every certificate in the fixtures — read from one x509-cert parse that the SCT
//!   check then reuses (that function parses again and keeps no parse to reuse).
//! * [`Anchors`]: every certificate of every Fulcio CA in the trusted root is a trust anchor
//!   within its CA's validity window, and the chain (rustls-webpki, code-signing EKU) is checked
//!   at a verified signing time, as sigstore-verify builds and checks it. The verified path names
//!   the leaf's issuer, whose key the SCT was signed over.

use der::asn1::{ObjectIdentifier, Utf8StringRef};
use der::{Decode, Encode};
use jiff::Timestamp;
use rustls::pki_types::{CertificateDer, Der, TrustAnchor, UnixTime};
use sigstore_crypto::KeyAlgorithm;
use sigstore_trust_root::TrustedRoot;
use sigstore_types::{DerPublicKey, TimeRange};
use x509_cert::Certificate;

use super::identity::Claims;
use super::verify::error::{Check, VerifyError, VerifyResult};

const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const BUILD_SIGNER_URI: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.9");
const RUNNER_ENVIRONMENT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.11");
const SOURCE_REPOSITORY_URI: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.12");
const SOURCE_REPOSITORY_REF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.14");
const BUILD_CONFIG_URI: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.18");
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

fn cert_err(m: impl Into<String>) -> VerifyError {
    VerifyError::new(Check::Certificate, m)
}

/// A certificate's SubjectPublicKeyInfo (DER).
pub(crate) fn public_key_of(der: &[u8]) -> VerifyResult<DerPublicKey> {
    let cert = Certificate::from_der(der).map_err(|e| cert_err(format!("failed to parse signing certificate: {e}")))?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| cert_err(format!("failed to encode SPKI: {e}")))?;
    Ok(DerPublicKey::new(spki))
}

/// A signing certificate, parsed once.
pub(crate) struct LeafCert {
    pub cert: Certificate,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// SubjectPublicKeyInfo DER.
    pub public_key: DerPublicKey,
    pub key_algorithm: KeyAlgorithm,
    pub san: Option<String>,
    pub issuer: Option<String>,
    pub claims: Claims,
}

fn time(t: &x509_cert::time::Time, what: &str) -> VerifyResult<Timestamp> {
    Timestamp::try_from(t.to_system_time()).map_err(|e| cert_err(format!("invalid {what} time: {e}")))
}

fn der_string(bytes: &[u8]) -> Option<String> {
    Utf8StringRef::from_der(bytes).ok().map(|s| s.as_str().to_owned())
}

impl LeafCert {
    pub fn parse(der: &[u8]) -> VerifyResult<Self> {
        let cert = Certificate::from_der(der).map_err(|e| cert_err(format!("failed to parse certificate: {e}")))?;
        let tbs = &cert.tbs_certificate;
        let not_before = time(&tbs.validity.not_before, "notBefore")?;
        let not_after = time(&tbs.validity.not_after, "notAfter")?;
        let public_key =
            DerPublicKey::new(tbs.subject_public_key_info.to_der().map_err(|e| cert_err(format!("failed to encode SPKI: {e}")))?);
        let key_algorithm = KeyAlgorithm::from_spki(&public_key).map_err(|e| cert_err(format!("the certificate's key algorithm: {e}")))?;
        let san = Self::san(&cert)?;
        let exts = tbs.extensions.as_deref().unwrap_or_default();
        let issuer = match exts.iter().find(|e| e.extn_id == ISSUER_V2) {
            Some(e) => Some(
                Utf8StringRef::from_der(e.extn_value.as_bytes())
                    .map_err(|e| cert_err(format!("malformed Fulcio issuer v2 extension: {e}")))?
                    .to_string(),
            ),
            None => match exts.iter().find(|e| e.extn_id == ISSUER_V1) {
                Some(e) => {
                    let b = e.extn_value.as_bytes();
                    Some(
                        der_string(b)
                            .or_else(|| std::str::from_utf8(b).ok().map(str::to_owned))
                            .ok_or_else(|| cert_err("malformed Fulcio issuer extension"))?,
                    )
                }
                None => None,
            },
        };
        let mut claims = Claims::default();
        for e in exts {
            let slot = match e.extn_id {
                BUILD_SIGNER_URI => &mut claims.build_signer,
                RUNNER_ENVIRONMENT => &mut claims.runner_environment,
                SOURCE_REPOSITORY_URI => &mut claims.source_repository,
                SOURCE_REPOSITORY_REF => &mut claims.source_ref,
                BUILD_CONFIG_URI => &mut claims.build_config,
                _ => continue,
            };
            if let Some(v) = der_string(e.extn_value.as_bytes()) {
                *slot = Some(v);
            }
        }
        Ok(Self { not_before, not_after, public_key, key_algorithm, san, issuer, claims, cert })
    }

    /// The first e-mail address or URI among the subject alternative names.
    fn san(cert: &Certificate) -> VerifyResult<Option<String>> {
        use x509_cert::ext::pkix::SubjectAltName;
        use x509_cert::ext::pkix::name::GeneralName;
        let Some((_, san)) =
            cert.tbs_certificate.get::<SubjectAltName>().map_err(|e| cert_err(format!("failed to get SAN extension: {e}")))?
        else {
            return Ok(None);
        };
        Ok(san.0.iter().find_map(|n| match n {
            GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
            _ => None,
        }))
    }

    /// The certificate was valid at `t`.
    pub fn check_time(&self, t: Timestamp) -> VerifyResult<()> {
        if t < self.not_before {
            return Err(cert_err(format!("certificate not yet valid at {t} (not before {})", self.not_before)));
        }
        if t > self.not_after {
            return Err(cert_err(format!("certificate expired at {t} (not after {})", self.not_after)));
        }
        Ok(())
    }
}

/// An anchor borrowing the owned one's bytes (cloning copies three buffers per anchor, per bundle).
fn borrowed<'a>(a: &'a TrustAnchor<'static>) -> TrustAnchor<'a> {
    TrustAnchor {
        subject: Der::from(a.subject.as_ref()),
        subject_public_key_info: Der::from(a.subject_public_key_info.as_ref()),
        name_constraints: a.name_constraints.as_ref().map(|n| Der::from(n.as_ref())),
    }
}

/// A verified chain: the leaf's issuer's key, and the anchor (subject, key) when the leaf was
/// signed by an anchor directly.
struct Path {
    issuer_spki: Vec<u8>,
    anchor: Option<(Vec<u8>, Vec<u8>)>,
}

/// The trusted root's Fulcio certificates as trust anchors, each with its CA's validity window.
pub(crate) struct Anchors(Vec<(TrustAnchor<'static>, Option<TimeRange>)>);

impl Anchors {
    pub fn from_root(root: &TrustedRoot) -> Result<Self, String> {
        let mut v = Vec::new();
        for ca in &root.certificate_authorities {
            for c in &ca.cert_chain.certificates {
                let der = CertificateDer::from(c.raw_bytes.as_bytes());
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| format!("a Fulcio CA certificate is not a usable trust anchor: {e}"))?;
                v.push((anchor.to_owned(), ca.valid_for));
            }
        }
        Ok(Self(v))
    }

    /// The leaf chains, through `intermediates`, to an anchor whose CA was valid at `t`, is valid
    /// itself at `t` and may sign code. Returns the issuer's SubjectPublicKeyInfo (DER).
    pub fn verify_chain(&self, leaf: &[u8], intermediates: &[&[u8]], t: Timestamp) -> VerifyResult<Vec<u8>> {
        self.verify_path(leaf, intermediates, t).map(|p| p.issuer_spki)
    }

    /// As [`Self::verify_chain`] at every time of `times` (each a verified signing time), as
    /// sigstore-verify requires. A path's signatures, names, constraints and key usages do not
    /// depend on the time; its validity windows do. So when the leaf was signed directly by an
    /// anchor, a later time needs only that anchor's CA window (here) and the leaf's own validity
    /// (`leaf_valid`, which the caller checks at every time anyway) — the same path webpki would
    /// build then, without repeating its signature check (one P-384 verification per extra time,
    /// ~240 µs). Any other case runs webpki again at that time.
    pub fn verify_chain_at(
        &self,
        leaf: &[u8],
        intermediates: &[&[u8]],
        times: &[Timestamp],
        leaf_valid: impl Fn(Timestamp) -> VerifyResult<()>,
    ) -> VerifyResult<Vec<u8>> {
        let mut path: Option<Path> = None;
        for &t in times {
            let reusable = path.as_ref().is_some_and(|p| {
                p.anchor.as_ref().is_some_and(|(subject, spki)| {
                    self.0.iter().any(|(a, w)| {
                        a.subject.as_ref() == subject.as_slice()
                            && a.subject_public_key_info.as_ref() == spki.as_slice()
                            && w.is_none_or(|w| w.contains(t))
                    })
                })
            });
            if !reusable {
                path = Some(self.verify_path(leaf, intermediates, t)?);
            }
            leaf_valid(t)?;
        }
        path.map(|p| p.issuer_spki).ok_or_else(|| cert_err("no verified signing time to check the certificate at"))
    }

    fn verify_path(&self, leaf: &[u8], intermediates: &[&[u8]], t: Timestamp) -> VerifyResult<Path> {
        let anchors: Vec<TrustAnchor<'_>> =
            self.0.iter().filter(|(_, w)| w.is_none_or(|w| w.contains(t))).map(|(a, _)| borrowed(a)).collect();
        if anchors.is_empty() {
            return Err(cert_err(format!("no certificate authority of the trusted root was valid at {t}")));
        }
        let inter: Vec<CertificateDer<'_>> = intermediates.iter().map(|d| CertificateDer::from(*d)).collect();
        let leaf = CertificateDer::from(leaf);
        let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| cert_err(format!("failed to parse end-entity certificate: {e}")))?;
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.as_second().max(0) as u64));
        let path = ee
            .verify_for_usage(
                sigstore_crypto::WEBPKI_VERIFICATION_ALGS,
                &anchors,
                &inter,
                at,
                webpki::KeyUsage::required(EKU_CODE_SIGNING),
                None,
                None,
            )
            .map_err(|e| cert_err(format!("certificate chain validation failed at {t}: {e}")))?;
        match path.intermediate_certificates().next() {
            Some(issuer) => Ok(Path { issuer_spki: issuer.subject_public_key_info().as_ref().to_vec(), anchor: None }),
            None => {
                let a = path.anchor();
                // webpki holds an anchor's SPKI without its SEQUENCE header
                let issuer_spki = der::asn1::AnyRef::new(der::Tag::Sequence, a.subject_public_key_info.as_ref())
                    .and_then(|a| a.to_der())
                    .map_err(|e| cert_err(format!("failed to encode the issuer's key: {e}")))?;
                Ok(Path { issuer_spki, anchor: Some((a.subject.as_ref().to_vec(), a.subject_public_key_info.as_ref().to_vec())) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;

    /// Every leaf certificate among the conformance bundles.
    fn leaves() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore/sigstore-conformance/test/assets/bundle-verify");
        let mut out = vec![];
        for d in std::fs::read_dir(dir).unwrap() {
            let p = d.unwrap().path().join("bundle.sigstore.json");
            let Ok(b) = std::fs::read(&p) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else { continue };
            let vm = &v["verificationMaterial"];
            let c = vm["certificate"]["rawBytes"].as_str().or(vm["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str());
            if let Some(d) = c.and_then(|c| B64.decode(c).ok()) {
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn the_facts_are_the_ones_sigstore_crypto_reads() {
        let leaves = leaves();
        assert!(leaves.len() > 30, "{}", leaves.len());
        for der in leaves {
            let theirs = sigstore_crypto::x509::parse_certificate_info(&sigstore_types::DerCertificate::new(der.clone()));
            let ours = LeafCert::parse(&der);
            match (theirs, ours) {
                (Ok(t), Ok(o)) => {
                    assert_eq!(t.identity.as_ref().map(|s| s.as_str().to_string()), o.san);
                    assert_eq!(t.issuer, o.issuer);
                    assert_eq!(Claims::from(&t.ci_claims), o.claims);
                    assert_eq!((t.not_before, t.not_after), (o.not_before, o.not_after));
                    assert_eq!(t.public_key, o.public_key);
                    assert_eq!(t.key_algorithm, o.key_algorithm);
                }
                (Err(_), Err(_)) => {}
                (t, o) => panic!("sigstore-crypto {:?} but ours {:?}", t.err(), o.err()),
            }
        }
    }
}
