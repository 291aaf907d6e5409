//! The testbed's certificate authorities: a Fulcio-like CA (root → intermediate → short-lived leaf
//! bound to an OIDC identity, with Fulcio's extensions and an embedded SCT), the CT log that signs
//! those SCTs, and the chain of the timestamp authority. Certificates are made with rcgen; keys
//! are ECDSA P-256 derived from the testbed seed (aws-lc-rs).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use der::{Decode, Encode};
use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};

/// An ECDSA P-256 key usable both for raw signatures (aws-lc-rs) and for rcgen certificates.
pub struct EcKey {
    aws: EcdsaKeyPair,
    rc: KeyPair,
    /// SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcKey({})", hex::encode(&self.key_id()[..8]))
    }
}

impl EcKey {
    /// Deterministic P-256 key from a seed.
    pub fn from_seed(seed: &[u8]) -> Self {
        let mut h: [u8; 32] = Sha256::digest(seed).into();
        let aws = loop {
            let mut der = vec![0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20];
            der.extend_from_slice(&h);
            der.extend_from_slice(&[0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
            if let Ok(k) = EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der) {
                break k;
            }
            h = Sha256::digest(h).into();
        };
        let pkcs8 = aws.to_pkcs8v1().expect("pkcs8");
        let rc = KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .expect("rcgen accepts aws-lc P-256 keys");
        let spki = aws.public_key().as_der().expect("spki").as_ref().to_vec();
        Self { aws, rc, spki }
    }

    /// ECDSA-SHA256 signature over `msg`, ASN.1 DER.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.aws.sign(&SystemRandom::new(), msg).expect("sign").as_ref().to_vec()
    }

    /// SHA-256 of the SubjectPublicKeyInfo: Rekor's log ID and the CT log ID.
    pub fn key_id(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }

    pub fn public_pem(&self) -> String {
        super::keys::pem("PUBLIC KEY", &self.spki)
    }

    /// Private key as PKCS#8 DER (for writing cosign-format key files).
    pub fn pkcs8(&self) -> Vec<u8> {
        self.aws.to_pkcs8v1().expect("pkcs8").as_ref().to_vec()
    }

    pub fn rcgen(&self) -> &KeyPair {
        &self.rc
    }
}

fn odt(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).expect("in range")
}

fn serial(seed: &[u8]) -> SerialNumber {
    let mut s = Sha256::digest(seed)[..16].to_vec();
    s[0] &= 0x7f; // positive
    SerialNumber::from_slice(&s)
}

/// A subject public key that is not ours (the signer's), for rcgen.
struct ForeignKey {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl ForeignKey {
    fn from_spki(spki: &[u8]) -> Option<Self> {
        let info = spki::SubjectPublicKeyInfoRef::from_der(spki).ok()?;
        let alg_oid = info.algorithm.oid;
        let param = info.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        let alg = match (alg_oid.to_string().as_str(), param.map(|p| p.to_string())) {
            ("1.2.840.10045.2.1", Some(c)) if c == "1.2.840.10045.3.1.7" => &rcgen::PKCS_ECDSA_P256_SHA256,
            ("1.2.840.10045.2.1", Some(c)) if c == "1.3.132.0.34" => &rcgen::PKCS_ECDSA_P384_SHA384,
            ("1.3.101.112", _) => &rcgen::PKCS_ED25519,
            ("1.2.840.113549.1.1.1", _) => &rcgen::PKCS_RSA_SHA256,
            _ => return None,
        };
        Some(Self { raw: info.subject_public_key.raw_bytes().to_vec(), alg })
    }
}

impl rcgen::PublicKeyData for ForeignKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// A two-level CA: a self-signed root and an intermediate that issues leaves.
pub struct CertAuthority {
    pub root_key: EcKey,
    pub root_der: Vec<u8>,
    pub inter_key: EcKey,
    pub inter_der: Vec<u8>,
    inter_params: CertificateParams,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

fn dn(org: &str, cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, org);
    d.push(DnType::CommonName, cn);
    d
}

impl CertAuthority {
    /// `intermediate_eku`: Fulcio's intermediate carries codeSigning; a TSA's carries timeStamping.
    pub fn new(
        seed: &str,
        org: &str,
        name: &str,
        not_before: Timestamp,
        not_after: Timestamp,
        intermediate_eku: ExtendedKeyUsagePurpose,
    ) -> Self {
        let root_key = EcKey::from_seed(format!("{seed}/root").as_bytes());
        let mut rp = CertificateParams::default();
        rp.distinguished_name = dn(org, name);
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        rp.not_before = odt(not_before);
        rp.not_after = odt(not_after);
        rp.serial_number = Some(serial(format!("{seed}/root").as_bytes()));
        let root_der = rp.self_signed(root_key.rcgen()).expect("root cert").der().to_vec();
        let root_issuer = Issuer::new(rp, root_key.rcgen());

        let inter_key = EcKey::from_seed(format!("{seed}/intermediate").as_bytes());
        let mut ip = CertificateParams::default();
        ip.distinguished_name = dn(org, &format!("{name} intermediate"));
        ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ip.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ip.extended_key_usages = vec![intermediate_eku];
        ip.not_before = odt(not_before);
        ip.not_after = odt(not_after);
        ip.serial_number = Some(serial(format!("{seed}/intermediate").as_bytes()));
        ip.use_authority_key_identifier_extension = true;
        let inter_der = ip.signed_by(inter_key.rcgen(), &root_issuer).expect("intermediate cert").der().to_vec();
        Self { root_key, root_der, inter_key, inter_der, inter_params: ip }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.inter_params, self.inter_key.rcgen())
    }

    /// Issue a leaf certificate from the intermediate.
    pub fn issue(&self, params: &CertificateParams, subject_spki: &[u8]) -> Vec<u8> {
        let pk = ForeignKey::from_spki(subject_spki).expect("supported SPKI");
        params.signed_by(&pk, &self.issuer()).expect("leaf cert").der().to_vec()
    }

    /// The chain as trusted_root.json lists it: intermediate first, then root.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.inter_der.clone(), self.root_der.clone()]
    }
}

/// The GitHub Actions claims Fulcio copies into certificates.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct GithubWorkflow {
    /// `owner/repo`
    pub repository: String,
    /// `.github/workflows/build.yml`
    pub workflow_path: String,
    /// `refs/heads/main`
    pub git_ref: String,
    pub trigger: String,
    pub sha: String,
}

/// The OIDC identity a Fulcio certificate is bound to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The SAN: a URI (workflows, SPIFFE) or an email.
    pub san: String,
    pub san_is_email: bool,
    pub issuer: String,
    pub github: Option<GithubWorkflow>,
}

pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

impl Identity {
    /// A GitHub Actions workflow identity, as Fulcio issues it.
    pub fn github_workflow(repository: &str, workflow_path: &str, git_ref: &str) -> Self {
        let sha = hex::encode(&Sha256::digest(format!("{repository}@{git_ref}").as_bytes())[..20]);
        Self {
            san: format!("https://github.com/{repository}/{workflow_path}@{git_ref}"),
            san_is_email: false,
            issuer: GITHUB_ISSUER.into(),
            github: Some(GithubWorkflow {
                repository: repository.into(),
                workflow_path: workflow_path.into(),
                git_ref: git_ref.into(),
                trigger: "push".into(),
                sha,
            }),
        }
    }

    pub fn email(email: &str, issuer: &str) -> Self {
        Self { san: email.into(), san_is_email: true, issuer: issuer.into(), github: None }
    }
}

/// Fulcio's OID arc 1.3.6.1.4.1.57264.1.N
fn fulcio_oid(n: u64) -> Vec<u64> {
    vec![1, 3, 6, 1, 4, 1, 57264, 1, n]
}

fn utf8_der(s: &str) -> Vec<u8> {
    der::asn1::Utf8StringRef::new(s).expect("utf8").to_der().expect("der")
}

/// OID of the embedded SCT list extension (RFC 6962).
pub const SCT_LIST_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// A Certificate Transparency log that only signs SCTs for the testbed's Fulcio.
pub struct CtLog {
    pub key: EcKey,
}

impl CtLog {
    pub fn log_id(&self) -> [u8; 32] {
        self.key.key_id()
    }

    /// A v1 SCT for a precertificate: signs `tbs` (the certificate's TBS without the SCT list)
    /// for the issuer whose SPKI hashes to `issuer_key_hash` (RFC 6962 §3.2).
    pub fn sign_precert(&self, tbs: &[u8], issuer_key_hash: &[u8; 32], timestamp_ms: u64) -> Vec<u8> {
        let mut signed = vec![0u8, 0u8]; // version v1, signature_type certificate_timestamp
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
        signed.extend_from_slice(issuer_key_hash);
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]); // uint24 length
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&0u16.to_be_bytes()); // no extensions
        let sig = self.key.sign(&signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&self.log_id());
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        sct.extend_from_slice(&sig);
        sct
    }
}

/// Fulcio: issues 10-minute code-signing certificates bound to an identity, with an SCT.
pub struct Fulcio {
    pub ca: CertAuthority,
    pub ctlog: CtLog,
}

impl Fulcio {
    /// Issue a leaf for `subject_spki` bound to `id`, valid from `at` for 10 minutes, with an
    /// embedded SCT from the testbed CT log. `serial_seed` makes the serial reproducible.
    pub fn issue(&self, subject_spki: &[u8], id: &Identity, at: Timestamp, serial_seed: &str) -> Vec<u8> {
        self.issue_with(
            subject_spki,
            id,
            at,
            serial_seed,
            vec![ExtendedKeyUsagePurpose::CodeSigning],
            vec![KeyUsagePurpose::DigitalSignature],
        )
    }

    /// As [`Fulcio::issue`] with chosen key usages (tests of certificates Fulcio would not issue).
    pub fn issue_with(
        &self,
        subject_spki: &[u8],
        id: &Identity,
        at: Timestamp,
        serial_seed: &str,
        ekus: Vec<ExtendedKeyUsagePurpose>,
        key_usages: Vec<KeyUsagePurpose>,
    ) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.not_before = odt(at);
        p.not_after = odt(at.checked_add(SignedDuration::from_mins(10)).expect("range"));
        p.serial_number = Some(serial(serial_seed.as_bytes()));
        p.key_usages = key_usages;
        p.extended_key_usages = ekus;
        p.use_authority_key_identifier_extension = true;
        p.subject_alt_names = vec![if id.san_is_email {
            SanType::Rfc822Name(id.san.clone().try_into().expect("ia5 email"))
        } else {
            SanType::URI(id.san.clone().try_into().expect("ia5 uri"))
        }];
        let mut ext = vec![
            CustomExtension::from_oid_content(&fulcio_oid(1), id.issuer.as_bytes().to_vec()),
            CustomExtension::from_oid_content(&fulcio_oid(8), utf8_der(&id.issuer)),
        ];
        if let Some(g) = &id.github {
            let server = "https://github.com";
            let repo_uri = format!("{server}/{}", g.repository);
            let workflow_name = g.workflow_path.rsplit('/').next().unwrap_or("build").trim_end_matches(".yml").to_string();
            for (n, v) in [(2, &g.trigger), (3, &g.sha), (4, &workflow_name), (5, &g.repository), (6, &g.git_ref)] {
                ext.push(CustomExtension::from_oid_content(&fulcio_oid(n), v.as_bytes().to_vec()));
            }
            let v2: Vec<(u64, String)> = vec![
                (9, id.san.clone()),
                (10, g.sha.clone()),
                (11, "github-hosted".into()),
                (12, repo_uri.clone()),
                (13, g.sha.clone()),
                (14, g.git_ref.clone()),
                (18, id.san.clone()),
                (19, g.sha.clone()),
                (20, g.trigger.clone()),
                (21, format!("{repo_uri}/actions/runs/1/attempts/1")),
            ];
            for (n, v) in v2 {
                ext.push(CustomExtension::from_oid_content(&fulcio_oid(n), utf8_der(&v)));
            }
        }
        // The subject is empty, so rcgen marks the SAN critical (RFC 5280 §4.2.1.6), as Fulcio does.
        p.custom_extensions = ext.clone();

        // Pass 1: the precertificate TBS (everything but the SCT list), which the CT log signs.
        let pre = self.ca.issue(&p, subject_spki);
        let pre_cert = x509_cert::Certificate::from_der(&pre).expect("parse own cert");
        let tbs = pre_cert.tbs_certificate.to_der().expect("tbs");
        let issuer_key_hash: [u8; 32] = Sha256::digest(&self.ca.inter_key.spki).into();
        let ts_ms = (at.as_millisecond().max(0)) as u64;
        let sct = self.ctlog.sign_precert(&tbs, &issuer_key_hash, ts_ms);
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        let ext_value = der::asn1::OctetString::new(list).expect("octets").to_der().expect("der");
        // Pass 2: the same certificate with the SCT list appended as the last extension.
        ext.push(CustomExtension::from_oid_content(SCT_LIST_OID, ext_value));
        p.custom_extensions = ext;
        self.ca.issue(&p, subject_spki)
    }
}

/// The timestamp authority's signing certificate (EKU timeStamping, critical) under its CA.
pub fn tsa_leaf(ca: &CertAuthority, key: &EcKey, not_before: Timestamp, not_after: Timestamp) -> Vec<u8> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("trustmirror testbed", "testbed TSA");
    p.not_before = odt(not_before);
    p.not_after = odt(not_after);
    p.serial_number = Some(serial(b"tsa-leaf"));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    // extKeyUsage timeStamping, critical (RFC 3161 §2.3): encoded by hand for the critical flag.
    // SEQUENCE { id-kp-timeStamping 1.3.6.1.5.5.7.3.8 }
    let eku_der = vec![0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 37], eku_der);
    ext.set_criticality(true);
    p.custom_extensions = vec![ext];
    ca.issue(&p, &key.spki)
}
