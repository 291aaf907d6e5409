//! An RFC 3161 timestamp authority: CMS SignedData over a TSTInfo, signed by a P-256 key whose
//! certificate carries the critical timeStamping EKU, with the ESS signingCertificateV2 attribute
//! verifiers require. Built from the RustCrypto `cms`/`x509-tsp` types (no hand-rolled ASN.1
//! beyond the two small ESS structures `cms` does not define, derived with `der`).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos};
use const_oid::ObjectIdentifier;
use der::asn1::{GeneralizedTime, Int, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion, TstInfo};

use crate::testbed::pki::{CertAuthority, EcKey};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TSTINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SIGNING_CERT_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// The policy OID the testbed TSA stamps (Sigstore's TSA uses this arc too).
pub const TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.2");

#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    #[error("timestamp request: {0}")]
    BadRequest(String),
}

pub struct Tsa {
    pub ca: CertAuthority,
    pub key: EcKey,
    pub leaf_der: Vec<u8>,
    serial: std::sync::atomic::AtomicU64,
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: ID_SHA256, parameters: None }
}

fn attr(oid: ObjectIdentifier, value: Any) -> Attribute {
    let mut values = SetOfVec::new();
    values.insert(value).expect("one value");
    Attribute { oid, values }
}

impl Tsa {
    pub fn new(ca: CertAuthority, key: EcKey, leaf_der: Vec<u8>) -> Self {
        Self { ca, key, leaf_der, serial: std::sync::atomic::AtomicU64::new(1) }
    }

    /// The chain as trusted_root.json lists a TSA: leaf, intermediate, root.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.leaf_der.clone(), self.ca.inter_der.clone(), self.ca.root_der.clone()]
    }

    /// A granted TimeStampResp (DER) over SHA-256(`message`) at `at`: what Sigstore bundles carry
    /// as `signedTimestamp` and cosign as `SignedRFC3161Timestamp`.
    pub fn stamp(&self, message: &[u8], at: Timestamp, nonce: Option<Int>) -> Vec<u8> {
        Self::granted(self.token(&Sha256::digest(message), at, nonce))
    }

    fn granted(token: Vec<u8>) -> Vec<u8> {
        let resp = x509_tsp::TimeStampResp {
            status: cmpv2::status::PkiStatusInfo { status: cmpv2::status::PkiStatus::Accepted, status_string: None, fail_info: None },
            time_stamp_token: Some(ContentInfo::from_der(&token).expect("own token")),
        };
        resp.to_der().expect("TimeStampResp encodes")
    }

    /// The TimeStampToken (CMS ContentInfo, DER) over a SHA-256 message imprint.
    pub fn token(&self, sha256: &[u8], at: Timestamp, nonce: Option<Int>) -> Vec<u8> {
        let serial = self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Whole seconds: some verifiers (@sigstore/core) parse only 3 fractional digits.
        let gen_time =
            GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(at.as_second().max(0) as u64)).expect("time in range");
        let tst = TstInfo {
            version: TspVersion::V1,
            policy: TSA_POLICY,
            message_imprint: MessageImprint {
                hash_algorithm: spki::AlgorithmIdentifier { oid: ID_SHA256, parameters: None },
                hashed_message: OctetString::new(sha256.to_vec()).expect("octets"),
            },
            serial_number: der_uint(serial),
            gen_time,
            accuracy: None,
            ordering: false,
            nonce,
            tsa: None,
            extensions: None,
        };
        let tst_der = tst.to_der().expect("TSTInfo encodes");
        let leaf = x509_cert::Certificate::from_der(&self.leaf_der).expect("own certificate");

        let signing_cert_v2 = SigningCertificateV2 {
            certs: vec![EssCertIdV2 { cert_hash: OctetString::new(Sha256::digest(&self.leaf_der).to_vec()).expect("octets") }],
        }
        .to_der()
        .expect("ESS encodes");

        let mut signed_attrs = SetOfVec::new();
        signed_attrs.insert(attr(ID_CONTENT_TYPE, Any::from(&ID_CT_TSTINFO))).expect("attr");
        signed_attrs
            .insert(attr(
                ID_MESSAGE_DIGEST,
                Any::from_der(&OctetString::new(Sha256::digest(&tst_der).to_vec()).expect("o").to_der().expect("der")).expect("any"),
            ))
            .expect("attr");
        signed_attrs
            .insert(attr(
                ID_SIGNING_TIME,
                Any::from_der(&x509_cert::time::Time::GeneralTime(gen_time).to_der().expect("der")).expect("any"),
            ))
            .expect("attr");
        signed_attrs.insert(attr(ID_SIGNING_CERT_V2, Any::from_der(&signing_cert_v2).expect("any"))).expect("attr");
        let signature = self.key.sign(&signed_attrs.to_der().expect("SET OF attributes"));

        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: leaf.tbs_certificate.issuer.clone(),
                serial_number: leaf.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: sha256_alg(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: AlgorithmIdentifierOwned { oid: ID_ECDSA_SHA256, parameters: None },
            signature: OctetString::new(signature).expect("octets"),
            unsigned_attrs: None,
        };
        let mut digest_algorithms = SetOfVec::new();
        digest_algorithms.insert(sha256_alg()).expect("alg");
        let mut certs = SetOfVec::new();
        certs.insert(CertificateChoices::Certificate(leaf)).expect("cert");
        let mut signers = SetOfVec::new();
        signers.insert(signer).expect("signer");
        let sd = SignedData {
            version: CmsVersion::V3,
            digest_algorithms,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_CT_TSTINFO,
                econtent: Some(Any::from_der(&OctetString::new(tst_der).expect("o").to_der().expect("der")).expect("any")),
            },
            certificates: Some(CertificateSet(certs)),
            crls: None,
            signer_infos: SignerInfos(signers),
        };
        let ci =
            ContentInfo { content_type: ID_SIGNED_DATA, content: Any::from_der(&sd.to_der().expect("SignedData encodes")).expect("any") };
        ci.to_der().expect("ContentInfo encodes")
    }

    /// Answer a DER TimeStampReq with a DER TimeStampResp (status granted).
    pub fn respond(&self, req: &[u8], at: Timestamp) -> Result<Vec<u8>, TsaError> {
        let r = TimeStampReq::from_der(req).map_err(|e| TsaError::BadRequest(e.to_string()))?;
        if r.message_imprint.hash_algorithm.oid != ID_SHA256 || r.message_imprint.hashed_message.as_bytes().len() != 32 {
            return Err(TsaError::BadRequest("only SHA-256 message imprints are supported".into()));
        }
        Ok(Self::granted(self.token(r.message_imprint.hashed_message.as_bytes(), at, r.nonce.clone())))
    }
}

/// A non-negative INTEGER in minimal (canonical DER) form.
fn der_uint(n: u64) -> Int {
    let b = n.to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(7);
    let mut v = b[first..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    Int::new(&v).expect("canonical integer")
}

/// ESSCertIDv2 (RFC 5035) with the default hash algorithm (SHA-256) and no issuerSerial.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
}

/// SigningCertificateV2 (RFC 5035), without policies. `cms` does not define these.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}
