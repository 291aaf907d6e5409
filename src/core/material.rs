//! What the mirror knows about an image digest: its signature-bearing items and their state.
//! Plain data shared by the mirror (which writes it), the store (which keeps it) and the policy
//! engine (which reads it).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// A `.sig` simple-signing layer (stored as an adapted bundle + its payload).
    Signature,
    /// A `.att` DSSE layer (stored as an adapted bundle).
    Attestation,
    /// A Sigstore bundle attached as a referrer.
    Bundle,
    /// A `.sbom` layer (cosign attach sbom): unsigned content.
    Sbom,
}

/// Verification state at ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ItemStatus {
    /// Cryptographically verified against the mirrored trust root (identity is policy's job).
    Verified { signer: String, issuer: Option<String> },
    /// Signed with a key the mirror does not know: verified at admission with the policy's keys.
    NeedsKey,
    /// Unsigned content (cosign `.sbom`).
    Unsigned,
    /// Refused; never served as valid.
    Rejected { check: String, reason: String },
}

/// One signature-bearing item about a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub kind: ItemKind,
    /// Where it came from (`sha256-….sig layer 0`, `referrer sha256:…`).
    pub source: String,
    /// sha256 (hex) of the stored bundle JSON (in `blobs`).
    pub bundle: Option<String>,
    /// sha256 (hex) of the `.sig` simple-signing payload (in `blobs`).
    pub payload: Option<String>,
    /// The predicate type of the verified statement (never an annotation's claim).
    pub predicate_type: Option<String>,
    #[serde(flatten)]
    pub status: ItemStatus,
    /// What verification established (absent: not verified yet, e.g. key-signed without a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::core::evidence::Evidence>,
}

impl Item {
    /// The verified statement's predicate type, when the item verified.
    pub fn verified_predicate_type(&self) -> Option<&str> {
        match &self.evidence {
            Some(e) => match &e.content {
                crate::core::evidence::Content::Statement { predicate_type, .. } => Some(predicate_type),
                _ => None,
            },
            None => None,
        }
    }
}

/// Everything mirrored about one image digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialRecord {
    pub subject: String,
    /// `registry/repo` it was found in.
    pub repository: String,
    pub media_type: String,
    /// Platform manifests, when the subject is an index.
    pub children: Vec<String>,
    pub items: Vec<Item>,
    pub synced_at: Timestamp,
    /// Manifest digests of the cosign tags and referrers index this record was built from: a
    /// re-sync that sees the same ones has nothing to fetch.
    pub sources: BTreeMap<String, String>,
    /// Trust material digest the items were verified with.
    pub trust: String,
}

impl MaterialRecord {
    /// An ETag for followers: changes whenever the record changes.
    pub fn etag(&self) -> String {
        let j = serde_json::to_vec(self).expect("serializable");
        format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&j))[..32])
    }
}
