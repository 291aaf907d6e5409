//! The signed certificate timestamp embedded in a Fulcio certificate (RFC 6962 §3.2), for the
//! paths that verify certificates outside sigstore-verify (`core::keyless`, `core::legacy_att`):
//! sigstore-verify checks SCTs on its own path, but its SCT code is private.
//!
//! Hand-written because no crate verifies an embedded precertificate SCT: x509-cert parses the
//! SCT list (tls_codec), this module rebuilds the signed structure — the precertificate's TBS is
//! the certificate's TBS without the SCT extension, cut out with `der` — and the CT log's key
//! from the trusted root, found as sigstore-verify finds it (by scheme, log ID and the SCT's
//! time), verifies it. One rule for every path: exactly one SCT, as sigstore-verify requires.

use der::{Decode, Encode};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sigstore_crypto::{Keyring, SigningScheme};
use sigstore_trust_root::TrustedRoot;
use sigstore_types::{Sha256Hash, SignatureBytes};
use x509_cert::Certificate;
use x509_cert::ext::pkix::sct::SignedCertificateTimestampList;

use super::verify::error::{Check, VerifyError, VerifyResult};

const SCT_LIST_OID: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

fn err(m: impl Into<String>) -> VerifyError {
    VerifyError::new(Check::Sct, m)
}

/// The RFC 6962 `digitally-signed` input of a precertificate SCT.
fn signed_data(timestamp: u64, issuer_spki_der: &[u8], precert_tbs_der: &[u8], extensions: &[u8]) -> VerifyResult<Vec<u8>> {
    let tbs_len =
        u32::try_from(precert_tbs_der.len()).ok().filter(|n| *n < 1 << 24).ok_or_else(|| err("certificate too large for an SCT"))?;
    let ext_len = u16::try_from(extensions.len()).map_err(|_| err("SCT extensions too large"))?;
    let mut m = Vec::with_capacity(precert_tbs_der.len() + extensions.len() + 64);
    m.push(0); // version v1
    m.push(0); // signature_type certificate_timestamp
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    m.extend_from_slice(&Sha256::digest(issuer_spki_der));
    m.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    m.extend_from_slice(precert_tbs_der);
    m.extend_from_slice(&ext_len.to_be_bytes());
    m.extend_from_slice(extensions);
    Ok(m)
}

/// The trusted root's CT log keys, one keyring per signature scheme an SCT may name.
pub(crate) struct CtKeys(Vec<(SigningScheme, Keyring)>);

impl CtKeys {
    pub fn from_root(root: &TrustedRoot) -> Result<Self, String> {
        [
            SigningScheme::EcdsaP256Sha256,
            SigningScheme::EcdsaP384Sha384,
            SigningScheme::RsaPkcs1Sha256,
            SigningScheme::RsaPkcs1Sha384,
            SigningScheme::RsaPkcs1Sha512,
        ]
        .into_iter()
        .map(|s| root.ctfe_keys(s).map(|k| (s, k)).map_err(|e| format!("CT log keys: {e}")))
        .collect::<Result<_, _>>()
        .map(Self)
    }
}

/// The certificate carries exactly one SCT, and it is signed — by the key of the CT log it names,
/// valid at the SCT's time — over the precertificate issued by the holder of `issuer_spki_der`
/// (the issuer the verified chain names). sigstore-verify's rule, for the certificates checked
/// outside it (`core::keyless`); `cert` is the parse the caller already holds.
pub(crate) fn verify_one(cert: &Certificate, cert_der: &[u8], issuer_spki_der: &[u8], keys: &CtKeys) -> VerifyResult<()> {
    let list: SignedCertificateTimestampList = match cert.tbs_certificate.get() {
        Ok(Some((_, l))) => l,
        _ => return Err(err("certificate is missing SCT extension (Signed Certificate Timestamp)")),
    };
    let scts = list.parse_timestamps().map_err(|e| err(format!("failed to parse SCT list: {e:?}")))?;
    let sct = match scts.as_slice() {
        [one] => one.parse_timestamp().map_err(|e| err(format!("failed to parse SCT: {e:?}")))?,
        [] => return Err(err("no SCTs found in certificate")),
        _ => return Err(err("certificate contains multiple SCTs, expected exactly one")),
    };
    let alg = u16::from_be_bytes([sct.signature.algorithm.hash as u8, sct.signature.algorithm.signature as u8]);
    let scheme = match alg {
        0x0403 => SigningScheme::EcdsaP256Sha256,
        0x0503 => SigningScheme::EcdsaP384Sha384,
        0x0401 => SigningScheme::RsaPkcs1Sha256,
        0x0501 => SigningScheme::RsaPkcs1Sha384,
        0x0601 => SigningScheme::RsaPkcs1Sha512,
        other => return Err(err(format!("unsupported SCT signature algorithm: 0x{other:04x}"))),
    };
    let keyring = &keys.0.iter().find(|(s, _)| *s == scheme).ok_or_else(|| err("unsupported SCT signing scheme"))?.1;
    if keyring.is_empty() {
        return Err(VerifyError::new(Check::TrustRoot, "no CT log keys in trusted root"));
    }
    let precert = precert_tbs(cert_der).map_err(|e| err(format!("failed to encode precert TBS: {e}")))?;
    let issued_at = i64::try_from(sct.timestamp)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .ok_or_else(|| err("SCT timestamp is out of range"))?;
    let data = signed_data(sct.timestamp, issuer_spki_der, &precert, sct.extensions.as_slice())?;
    keyring
        .verify_with_key_id_at(
            &Sha256Hash::new(sct.log_id.key_id),
            issued_at,
            &data,
            &SignatureBytes::new(sct.signature.signature.as_slice().to_vec()),
        )
        .map_err(|e| err(format!("SCT signature verification failed: {e}")))
}

/// The precertificate's TBS: the certificate's TBS without the SCT-list extension. sigstore-verify
/// gets it by cloning the decoded TBS, dropping the extension and re-encoding it all; DER has one
/// encoding per value, so for any certificate x509-cert decodes that is the original bytes with
/// the extension cut out and the three enclosing lengths (extensions SEQUENCE, its `[3]` wrapper,
/// the TBS) shortened — which is what this does, the `der` crate reading and writing every
/// header, at a tenth of the cost (a test holds the two to the same bytes on every fixture).
fn precert_tbs(cert_der: &[u8]) -> der::Result<Vec<u8>> {
    use der::asn1::{AnyRef, ObjectIdentifier};
    use der::{Reader, SliceReader, Tag, TagNumber, Tagged};
    let at = |r: &SliceReader<'_>| usize::try_from(r.position());
    let cert = AnyRef::from_der(cert_der)?;
    let mut c = SliceReader::new(cert.value())?;
    let tbs = AnyRef::decode(&mut c)?.value();
    let mut t = SliceReader::new(tbs)?;
    while !t.is_finished() {
        let start = at(&t)?;
        let el = AnyRef::decode(&mut t)?;
        if el.tag() != (Tag::ContextSpecific { constructed: true, number: TagNumber::N3 }) {
            continue;
        }
        let exts = AnyRef::from_der(el.value())?.value();
        let mut e = SliceReader::new(exts)?;
        let mut kept = Vec::with_capacity(exts.len());
        while !e.is_finished() {
            let s = at(&e)?;
            let ext = AnyRef::decode(&mut e)?;
            if ObjectIdentifier::decode(&mut SliceReader::new(ext.value())?)? != SCT_LIST_OID {
                kept.extend_from_slice(&exts[s..at(&e)?]);
            }
        }
        let wrapped = AnyRef::new(el.tag(), &AnyRef::new(Tag::Sequence, &kept)?.to_der()?)?.to_der()?;
        let mut body = Vec::with_capacity(tbs.len());
        body.extend_from_slice(&tbs[..start]);
        body.extend_from_slice(&wrapped);
        body.extend_from_slice(&tbs[at(&t)?..]);
        return AnyRef::new(Tag::Sequence, &body)?.to_der();
    }
    Err(der::ErrorKind::Failed.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;

    const BUNDLE: &[u8] =
        include_bytes!("../../tests/fixtures/sigstore/sigstore-conformance/test/assets/bundle-verify/happy-path-v0.3/bundle.sigstore.json");

    fn leaf() -> Vec<u8> {
        let b: serde_json::Value = serde_json::from_slice(BUNDLE).unwrap();
        B64.decode(b["verificationMaterial"]["certificate"]["rawBytes"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn the_precertificate_is_the_reencoded_tbs_without_the_sct_list() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore/sigstore-conformance/test/assets/bundle-verify");
        let mut n = 0;
        for d in std::fs::read_dir(dir).unwrap() {
            let Ok(b) = std::fs::read(d.unwrap().path().join("bundle.sigstore.json")) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else { continue };
            let vm = &v["verificationMaterial"];
            let Some(der) = vm["certificate"]["rawBytes"]
                .as_str()
                .or(vm["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str())
                .and_then(|c| B64.decode(c).ok())
            else {
                continue;
            };
            let Ok(cert) = Certificate::from_der(&der) else { continue };
            let mut tbs = cert.tbs_certificate.clone();
            tbs.extensions = tbs.extensions.map(|e| e.into_iter().filter(|e| e.extn_id != SCT_LIST_OID).collect());
            let expected = tbs.to_der().unwrap();
            assert_eq!(precert_tbs(&der).ok(), tbs.extensions.is_some().then_some(expected), "{}", hex::encode(&der[..16]));
            n += 1;
        }
        assert!(n > 30, "{n}");
    }

    #[test]
    fn a_production_certificates_sct_verifies_and_a_forged_one_does_not() {
        let tm = crate::core::verify::TrustedMaterial::production();
        let der = leaf();
        let cert = Certificate::from_der(&der).unwrap();
        let issuer = tm.anchors().verify_chain(&der, &[], cert_time(&cert)).unwrap();
        verify_one(&cert, &der, &issuer, tm.ct_keys()).unwrap();

        // one bit of the SCT signature flipped (the last bytes of the extension are the signature)
        let mut forged = cert.clone();
        let exts = forged.tbs_certificate.extensions.as_mut().unwrap();
        let e = exts.iter_mut().find(|e| e.extn_id == SCT_LIST_OID).unwrap();
        let mut v = e.extn_value.as_bytes().to_vec();
        let n = v.len();
        v[n - 3] ^= 1;
        e.extn_value = der::asn1::OctetString::new(v).unwrap();
        let forged_der = forged.to_der().unwrap();
        let e = verify_one(&forged, &forged_der, &issuer, tm.ct_keys()).unwrap_err();
        assert_eq!(e.check, Check::Sct, "{}", e.detail);

        // a trusted root without that CT log
        let mut no_ct = tm.root.clone();
        no_ct.ctlogs.retain(|l| l.public_key.raw_bytes.as_bytes().is_empty());
        let e = verify_one(&cert, &der, &issuer, &CtKeys::from_root(&no_ct).unwrap()).unwrap_err();
        assert_eq!(e.check, Check::TrustRoot, "{}", e.detail);

        // signed over another issuer's key
        let e = verify_one(&cert, &der, &issuer[..issuer.len() - 1], tm.ct_keys()).unwrap_err();
        assert_eq!(e.check, Check::Sct, "{}", e.detail);

        // no SCT at all
        let mut bare = cert.clone();
        bare.tbs_certificate.extensions.as_mut().unwrap().retain(|e| e.extn_id != SCT_LIST_OID);
        let bare_der = bare.to_der().unwrap();
        assert!(verify_one(&bare, &bare_der, &issuer, tm.ct_keys()).unwrap_err().detail.contains("missing SCT"));
    }

    /// A time inside the certificate's validity.
    fn cert_time(c: &Certificate) -> Timestamp {
        Timestamp::try_from(c.tbs_certificate.validity.not_before.to_system_time()).unwrap() + jiff::SignedDuration::from_secs(60)
    }
}
