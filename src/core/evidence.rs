//! What verification established about a signature-bearing item, recorded once (at ingest, or at
//! admission for key-signed items the mirror holds no key for) and decided from many times:
//! who signed (certificate identity and claims, or a key), when (verified times), under which
//! trusted root, what it is about (an image signature for a digest, or an in-toto statement of
//! a predicate type about subjects), and the log checkpoint it cites (authenticated).
//!
//! Every field comes from verified content — the certificate, the signed payload, the log's
//! signed note — never from registry annotations or manifest fields, which anyone who can push
//! can write. What an item *is* (signature, provenance, SBOM, scan) is read from here.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::core::cosign::check_simple_signing;
use crate::core::verify::{
    Authority, Claims, IdentityPolicy, Subject, TrustedMaterial, Verified, VerifyError, VerifyResult, verify_bundle,
};

/// cosign v3's new-bundle-format image signature: a DSSE statement of this type about the image.
pub const COSIGN_SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";

/// Who signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum Signer {
    /// A Fulcio certificate: its SAN, OIDC issuer and CI claims.
    Keyless {
        san: String,
        issuer: Option<String>,
        #[serde(default)]
        claims: Claims,
    },
    /// A long-lived key: SHA-256 of its SubjectPublicKeyInfo DER.
    Key { spki_sha256: String },
}

/// What the signed content is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "kebab-case")]
pub enum Content {
    /// A signature over the image itself: a simple-signing payload naming the digest, a message
    /// signature over the digest, or a `cosign/sign/v1` statement about it.
    ImageSignature { digest: String },
    /// An in-toto statement (attestation) of `predicate_type` about `subjects` (`sha256:…`).
    Statement { predicate_type: String, subjects: Vec<String> },
}

/// A log checkpoint an item cites, authenticated with the log's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    /// hex of the log's key ID.
    pub log: String,
    pub size: u64,
    /// hex of the root hash.
    pub root: String,
    /// The log's signed note (evidence, should it contradict the witnessed history).
    pub note: String,
}

impl CheckpointRef {
    pub fn root_hash(&self) -> Option<crate::core::tlog::Hash> {
        hex::decode(&self.root).ok().and_then(|r| r.try_into().ok())
    }
}

/// Everything verification established about one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Digest of the trusted root it was verified under.
    pub trust: String,
    pub signer: Signer,
    /// Verified signing times (SETs, checkpoints' integrated times, RFC 3161).
    pub times: Vec<Timestamp>,
    pub content: Content,
    /// Authenticated checkpoints the item's log entries cite (empty: SET-only or no log entry).
    #[serde(default)]
    pub checkpoints: Vec<CheckpointRef>,
}

impl Evidence {
    /// Is this a signature over `digest`?
    pub fn signs_image(&self, digest: &str) -> bool {
        matches!(&self.content, Content::ImageSignature { digest: d } if d == digest)
    }

    /// The predicate type, when this is an attestation about `digest`.
    pub fn attests(&self, digest: &str) -> Option<&str> {
        match &self.content {
            Content::Statement { predicate_type, subjects } if subjects.iter().any(|s| s == digest) => Some(predicate_type),
            _ => None,
        }
    }

    /// Does `authority` accept this signer? Identity policy for keyless signers (no crypto: the
    /// certificate was verified when the evidence was established), key equality for keys.
    pub fn signed_by(&self, authority: &Authority) -> bool {
        match (&self.signer, authority) {
            (Signer::Keyless { san, issuer, claims }, Authority::Keyless(p)) => p.check(Some(san), issuer.as_deref(), claims).is_ok(),
            (Signer::Key { spki_sha256 }, Authority::Key { spki_der, .. }) => *spki_sha256 == crate::core::digest::sha256_hex(spki_der),
            _ => false,
        }
    }
}

/// How an item is stored: which of the forms verification has to treat differently.
#[derive(Debug, Clone, Copy)]
pub enum Form<'a> {
    /// A cosign `.sig` layer: the bundle signs this simple-signing payload.
    SimpleSigning(&'a [u8]),
    /// A bundle (adapted `.att` layer or a referrer) about the image digest.
    Bundle,
}

/// Verify an item of `image` (`sha256:…`) in `form` against `tm` for `authority`, and record
/// what was established. `logs` authenticate the cited checkpoints.
pub fn establish(
    tm: &TrustedMaterial,
    bundle: &[u8],
    form: Form<'_>,
    image: &str,
    authority: &Authority,
    now: Timestamp,
) -> VerifyResult<Evidence> {
    let (v, content) = match form {
        Form::SimpleSigning(payload) => {
            let v = verify_bundle(tm, bundle, Subject::Blob(payload), authority, now)?;
            check_simple_signing(payload, image)?;
            (v, Content::ImageSignature { digest: image.to_string() })
        }
        Form::Bundle => {
            let d = crate::core::digest::parse_digest(image)
                .ok_or_else(|| VerifyError::new(crate::core::verify::Check::Artifact, format!("{image} is not a sha256 digest")))?;
            let v = verify_bundle(tm, bundle, Subject::Sha256(d), authority, now)?;
            let content = match &v.statement {
                // an in-toto statement: the verifier checked that `image` is among its subjects
                Some(st) if st.predicate_type == COSIGN_SIGN_V1 => Content::ImageSignature { digest: image.to_string() },
                Some(st) => Content::Statement {
                    predicate_type: st.predicate_type.clone(),
                    subjects: st.subjects.iter().filter(|(_, h)| !h.is_empty()).map(|(_, h)| format!("sha256:{h}")).collect(),
                },
                // a message signature whose digest the verifier matched to the image digest
                None => Content::ImageSignature { digest: image.to_string() },
            };
            (v, content)
        }
    };
    Ok(record(tm, bundle, &v, authority, content))
}

fn record(tm: &TrustedMaterial, bundle: &[u8], v: &Verified, authority: &Authority, content: Content) -> Evidence {
    let signer = match authority {
        Authority::Keyless(_) => Signer::Keyless { san: v.signer.clone(), issuer: v.issuer.clone(), claims: v.claims.clone() },
        Authority::Key { spki_der, .. } => Signer::Key { spki_sha256: crate::core::digest::sha256_hex(spki_der) },
    };
    let logs = crate::core::tlog::log_keys(tm);
    let checkpoints = crate::core::tlog::bundle_checkpoints(bundle, &logs)
        .into_iter()
        .map(|c| CheckpointRef { log: c.log, size: c.size, root: hex::encode(c.root), note: c.note })
        .collect();
    Evidence { trust: tm.digest.clone(), signer, times: v.timestamps.clone(), content, checkpoints }
}

/// Any certificate identity (identity is the policy's business): how the mirror verifies
/// certificate-signed items at ingest.
pub fn any_identity() -> Authority {
    Authority::Keyless(IdentityPolicy::default())
}
