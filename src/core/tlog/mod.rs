//! Transparency-log witnessing, pure: signed checkpoints of the logs in a trusted root, the
//! witness's decision (first / unchanged / advanced, or rollback / split view), C2SP
//! `cosignature/v1` signatures by the witness's Ed25519 key, C2SP `tlog-policy` quorums, and the
//! check of a bundle's checkpoint against the witnessed history.
//!
//! Parsing and log-signature checks are `sigstore-types`/`sigstore-crypto`'s (`Checkpoint`,
//! `CheckpointVerifyExt`); proofs are `sigstore-merkle`'s RFC 6962 verifiers. What is written
//! here is what no crate does: the witness state machine, cosignatures (a 76-byte timestamped
//! note signature over a prefixed message) and the policy grammar.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | errors, the logs of a trusted root, checkpoint verification |
//! | [`proofs`] | consistency/inclusion proofs, the witness step |
//! | [`tiles`] | C2SP tlog-tiles paths and a hash source over fetched tiles |
//! | [`cosign`] | C2SP cosignature/v1: the witness's key, cosigners |
//! | [`policy`] | C2SP tlog-policy: witnesses, groups, quorums |
//! | [`history`] | a bundle's checkpoints judged against the witnessed history |
//! | [`wire`] | C2SP tlog-witness `add-checkpoint` request bodies |

pub mod cosign;
pub mod history;
pub mod policy;
pub mod proofs;
pub mod tiles;
pub mod wire;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigstore_types::{Checkpoint, DerPublicKey};

use crate::core::verify::TrustedMaterial;

pub use cosign::{Cosigner, Witness, cosigner_key_id};
pub use history::{Cited, HistoryVerdict, against_history, bundle_checkpoints};
pub use policy::WitnessPolicy;
pub use proofs::{Step, verify_consistency, verify_inclusion, witness_step};
pub use tiles::{TileSet, tile_path};
pub use wire::parse_add_checkpoint;

pub use crate::core::merkle::HashSource;

pub type Hash = [u8; 32];

/// Why a checkpoint or proof was refused. `kind` is stable (metrics, exit codes, evidence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{kind}: {detail}")]
pub struct TlogError {
    pub kind: TlogErrorKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum TlogErrorKind {
    /// Not a checkpoint, or oversized.
    Malformed,
    /// No signature line by the log's key (e.g. signed by another key).
    UnknownKey,
    /// A signature line by the log's key hint that does not verify.
    Signature,
    /// The origin is not the log's.
    Origin,
    /// A smaller tree than already witnessed.
    Rollback,
    /// Same size, other root; or a consistency proof that does not verify: two views.
    SplitView,
    /// Fetching from the log failed.
    Fetch,
    /// The log is marked untrusted after misbehaviour; an operator must act.
    Untrusted,
    /// The submitter's idea of the witnessed size is stale (detail: the witnessed size).
    Conflict,
    Store,
}

impl std::fmt::Display for TlogErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TlogErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown-key",
            Self::Signature => "signature",
            Self::Origin => "origin",
            Self::Rollback => "rollback",
            Self::SplitView => "split-view",
            Self::Fetch => "fetch",
            Self::Untrusted => "untrusted",
            Self::Conflict => "conflict",
            Self::Store => "store",
        }
    }
    /// Misbehaviour of the log (kept as evidence, raises the alarm), as opposed to an error.
    pub fn is_misbehaviour(self) -> bool {
        matches!(self, Self::Rollback | Self::SplitView)
    }
}

pub fn err(kind: TlogErrorKind, detail: impl Into<String>) -> TlogError {
    TlogError { kind, detail: detail.into() }
}

/// Largest checkpoint accepted (real ones are a few hundred bytes).
pub const MAX_CHECKPOINT: usize = 16 * 1024;
/// Longest consistency/inclusion proof accepted (a 2^64-leaf tree needs at most 128 hashes).
pub const MAX_PROOF: usize = 128;

/// A log of the trusted root, with the key its checkpoints must be signed by.
#[derive(Debug, Clone)]
pub struct LogKey {
    /// hex of the trusted root's `logId.keyId`: how trustmirror names the log.
    pub id: String,
    pub base_url: String,
    pub spki: Vec<u8>,
}

/// The transparency logs of a trusted root.
pub fn log_keys(tm: &TrustedMaterial) -> Vec<LogKey> {
    tm.root
        .tlogs
        .iter()
        .map(|t| LogKey {
            id: hex::encode(t.log_id.key_id.as_bytes()),
            base_url: t.base_url.clone(),
            spki: t.public_key.raw_bytes.as_bytes().to_vec(),
        })
        .collect()
}

/// A checkpoint whose log signature verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub origin: String,
    pub size: u64,
    #[serde(with = "hex_hash")]
    pub root: Hash,
    /// The note as received (body, blank line, signature lines).
    pub text: String,
}

impl Verified {
    /// The note body (what log signatures and cosignatures sign).
    pub fn body(&self) -> &str {
        self.text.split_once("\n\n").map(|(b, _)| b).unwrap_or(&self.text)
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s).ok().and_then(|v| v.try_into().ok()).ok_or_else(|| serde::de::Error::custom("expected 32 hex bytes"))
    }
}

/// Signed-note key ID of an Ed25519 log key: SHA-256(name || "\n" || 0x01 || key)[:4]
/// (C2SP signed-note; tlog-tiles logs such as Rekor v2 sign checkpoints this way).
pub fn note_key_id(name: &str, ed25519: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(ed25519);
    h.finalize()[..4].try_into().expect("4 bytes")
}

impl LogKey {
    /// The log's key is Ed25519 (a tlog-tiles log, like Rekor v2) rather than ECDSA (Rekor v1).
    pub fn is_ed25519(&self) -> bool {
        sigstore_crypto::VerificationKey::from_spki(&DerPublicKey::new(self.spki.clone()))
            .is_ok_and(|k| k.scheme() == sigstore_crypto::SigningScheme::Ed25519)
    }
}

/// Verify a checkpoint note against a log's key. `expected_origin`, when known (from the stored
/// state), must match: a log's identity does not change. Signature lines are matched by key
/// hint: SHA-256 of the key's SPKI (Rekor v1), or for Ed25519 keys the signed-note key ID under
/// the line's name (tlog-tiles, Rekor v2).
pub fn verify_checkpoint(text: &str, log: &LogKey, expected_origin: Option<&str>) -> Result<Verified, TlogError> {
    if text.len() > MAX_CHECKPOINT {
        return Err(err(TlogErrorKind::Malformed, format!("checkpoint of {} bytes exceeds {MAX_CHECKPOINT}", text.len())));
    }
    let cp = Checkpoint::from_text(text).map_err(|e| err(TlogErrorKind::Malformed, format!("not a signed-note checkpoint: {e}")))?;
    let der = DerPublicKey::new(log.spki.clone());
    let key = sigstore_crypto::VerificationKey::from_spki(&der)
        .map_err(|e| err(TlogErrorKind::UnknownKey, format!("log {}: unusable key: {e}", log.id)))?;
    let v1_hint = *sigstore_crypto::checkpoint::compute_key_hint(&der).as_bytes();
    let ed = key.scheme() == sigstore_crypto::SigningScheme::Ed25519;
    let candidates: Vec<_> = cp
        .signatures()
        .iter()
        .filter(|s| *s.key_id.as_bytes() == v1_hint || (ed && *s.key_id.as_bytes() == note_key_id(&s.name, key.as_bytes())))
        .collect();
    if candidates.is_empty() {
        let seen: Vec<String> = cp.signatures().iter().map(|s| format!("{} ({})", s.name, hex::encode(s.key_id.as_bytes()))).collect();
        return Err(err(
            TlogErrorKind::UnknownKey,
            format!("checkpoint is not signed by log {} (key hint {}); signature lines: {}", log.id, hex::encode(v1_hint), seen.join(", ")),
        ));
    }
    if !candidates.iter().any(|s| key.verify(cp.signed_data(), &s.signature).is_ok()) {
        return Err(err(TlogErrorKind::Signature, format!("log {}: the checkpoint signature does not verify", log.id)));
    }
    if let Some(o) = expected_origin
        && o != cp.origin()
    {
        return Err(err(TlogErrorKind::Origin, format!("origin {:?} is not the log's {o:?}", cp.origin())));
    }
    Ok(Verified { origin: cp.origin().to_string(), size: cp.tree_size(), root: *cp.root_hash().as_bytes(), text: text.to_string() })
}
