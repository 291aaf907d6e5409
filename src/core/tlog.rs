//! Transparency-log witnessing, pure: signed checkpoints of the logs in a trusted root, the
//! witness's decision (first / unchanged / advanced, or rollback / split view), C2SP
//! `cosignature/v1` signatures by the witness's Ed25519 key, C2SP `tlog-policy` quorums, and the
//! check of a bundle's checkpoint against the witnessed history.
//!
//! Parsing and log-signature checks are `sigstore-types`/`sigstore-crypto`'s (`Checkpoint`,
//! `CheckpointVerifyExt`); proofs are `sigstore-merkle`'s RFC 6962 verifiers. What is written
//! here is what no crate does: the witness state machine, cosignatures (a 76-byte timestamped
//! note signature over a prefixed message) and the policy grammar.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigstore_types::{Checkpoint, DerPublicKey, Sha256Hash};

use crate::core::verify::TrustedMaterial;

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

// ------------------------------------------------------------------ C2SP tlog-tiles

/// Path of a tile (`tile/<L>/<N>[.p/<W>]`) with N in 3-digit `x`-prefixed groups.
pub fn tile_path(level: u32, index: u64, width: u32) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    let n = groups.join("/");
    if width == 256 { format!("tile/{level}/{n}") } else { format!("tile/{level}/{n}.p/{width}") }
}

/// The tiles of a tree of `size` leaves: which tile (level, index, width) holds the complete
/// subtree `start, height`, and how to hash it from that tile's entries. A [`merkle::HashSource`]
/// over fetched tiles; [`TileSet::needed`] lists the tiles a computation will ask for (the
/// shapes of RFC 6962's recursions do not depend on hash values).
pub struct TileSet {
    pub size: u64,
    pub tiles: BTreeMap<(u32, u64), Vec<u8>>,
    /// Record requests instead of answering them.
    recording: bool,
    pub needed: BTreeSet<(u32, u64, u32)>,
}

impl TileSet {
    pub fn recorder(size: u64) -> Self {
        Self { size, tiles: BTreeMap::new(), recording: true, needed: BTreeSet::new() }
    }
    pub fn with_tiles(size: u64, tiles: BTreeMap<(u32, u64), Vec<u8>>) -> Self {
        Self { size, tiles, recording: false, needed: BTreeSet::new() }
    }
    /// Width of tile (level, index) in a tree of `self.size` leaves.
    pub fn width(&self, level: u32, index: u64) -> u32 {
        let entries = self.size.checked_shr(8 * level).unwrap_or(0);
        if (index + 1).saturating_mul(256) <= entries { 256 } else { (entries % 256) as u32 }
    }
}

impl crate::core::merkle::HashSource for TileSet {
    type Error = String;
    fn complete(&mut self, start: u64, height: u32) -> Result<Hash, String> {
        let (level, r) = (height / 8, height % 8);
        let first = start >> (8 * level); // index of the first entry at tile level `level`
        let (index, pos) = (first / 256, (first % 256) as usize);
        let width = self.width(level, index);
        if self.recording {
            self.needed.insert((level, index, width));
            return Ok([0; 32]);
        }
        let tile = self.tiles.get(&(level, index)).ok_or_else(|| format!("tile {} not fetched", tile_path(level, index, width)))?;
        let count = 1usize << r;
        if (pos + count) * 32 > tile.len() {
            return Err(format!("tile {} is too short for entries {pos}..{}", tile_path(level, index, width), pos + count));
        }
        let mut layer: Vec<Hash> = (pos..pos + count).map(|i| tile[i * 32..i * 32 + 32].try_into().expect("32")).collect();
        while layer.len() > 1 {
            layer = layer.chunks(2).map(|c| crate::core::merkle::node_hash(&c[0], &c[1])).collect();
        }
        Ok(layer[0])
    }
}

fn hashes(v: &[Hash]) -> Vec<Sha256Hash> {
    v.iter().map(|h| Sha256Hash::new(*h)).collect()
}

/// RFC 6962 §2.1.2 consistency between (m, old) and (n, new).
pub fn verify_consistency(m: u64, old: &Hash, n: u64, new: &Hash, proof: &[Hash]) -> Result<(), String> {
    if proof.len() > MAX_PROOF {
        return Err(format!("consistency proof of {} hashes", proof.len()));
    }
    // transparency-dev's rule (its vectors test it): a proof from the empty tree proves nothing
    // and is refused unless both trees are empty; sigstore-merkle accepts any such proof.
    if m == 0 {
        return if n == 0 && proof.is_empty() && old == new {
            Ok(())
        } else {
            Err("consistency from the empty tree proves nothing".into())
        };
    }
    sigstore_merkle::verify_consistency_proof(m, n, &hashes(proof), &Sha256Hash::new(*old), &Sha256Hash::new(*new))
        .map_err(|e| e.to_string())
}

/// RFC 6962 §2.1.1 inclusion of `leaf` (a leaf hash) at `index` in (size, root).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, root: &Hash, proof: &[Hash]) -> Result<(), String> {
    if proof.len() > MAX_PROOF {
        return Err(format!("inclusion proof of {} hashes", proof.len()));
    }
    sigstore_merkle::verify_inclusion_proof(&Sha256Hash::new(*leaf), index, size, &hashes(proof), &Sha256Hash::new(*root))
        .map_err(|e| e.to_string())
}

/// What the witness does with a new verified checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing witnessed yet: trust on first use.
    First,
    /// Same size and root as witnessed.
    Unchanged,
    /// Larger, and the consistency proof from the witnessed size verified.
    Advanced { from: u64 },
}

/// The witness's decision. `proof` is the consistency proof from `prev.size` to `new.size`
/// (required when the tree grew). Misbehaviour comes back as `Rollback` or `SplitView`.
pub fn witness_step(prev: Option<(u64, &Hash)>, new: &Verified, proof: Option<&[Hash]>) -> Result<Step, TlogError> {
    let Some((m, old)) = prev else { return Ok(Step::First) };
    if new.size < m {
        return Err(err(TlogErrorKind::Rollback, format!("log presents size {} after size {m} was witnessed", new.size)));
    }
    if new.size == m {
        return if &new.root == old {
            Ok(Step::Unchanged)
        } else {
            Err(err(
                TlogErrorKind::SplitView,
                format!("two roots for size {m}: witnessed {} now {}", hex::encode(old), hex::encode(new.root)),
            ))
        };
    }
    let proof = proof.ok_or_else(|| err(TlogErrorKind::Fetch, format!("no consistency proof from {m} to {}", new.size)))?;
    verify_consistency(m, old, new.size, &new.root, proof).map_err(|e| {
        err(
            TlogErrorKind::SplitView,
            format!(
                "size {} (root {}) is not consistent with witnessed size {m} (root {}): {e}",
                new.size,
                hex::encode(new.root),
                hex::encode(old)
            ),
        )
    })?;
    Ok(Step::Advanced { from: m })
}

// ------------------------------------------------------------------ cosignatures (C2SP tlog-cosignature, Ed25519)

/// Key ID of an Ed25519 cosigner: SHA-256(name || "\n" || 0x04 || key)[:4].
pub fn cosigner_key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x04");
    h.update(public);
    h.finalize()[..4].try_into().expect("4 bytes")
}

fn cosigned_message(body: &str, time: u64) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(body.as_bytes());
    if !body.ends_with('\n') {
        m.push(b'\n');
    }
    m
}

/// The witness: a name and an Ed25519 key.
pub struct Witness {
    pub name: String,
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness").field("name", &self.name).finish()
    }
}

impl Witness {
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, String> {
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
            return Err(format!("witness name {name:?}: a non-empty name without spaces or '+'"));
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| format!("witness key: {e}"))?;
        Ok(Self { name: name.into(), key })
    }
    pub fn public(&self) -> [u8; 32] {
        self.key.public_key().as_ref().try_into().expect("ed25519 public key")
    }
    /// The verifier key in signed-note `vkey` form: `name+hex(keyid)+base64(0x04 || key)`.
    pub fn vkey(&self) -> String {
        let mut k = vec![0x04];
        k.extend_from_slice(&self.public());
        format!("{}+{}+{}", self.name, hex::encode(cosigner_key_id(&self.name, &self.public())), B64.encode(k))
    }
    /// A cosignature line (`— name base64(keyid || time || sig)\n`) over a checkpoint body.
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let sig = self.key.sign(&cosigned_message(body, time));
        let mut blob = cosigner_key_id(&self.name, &self.public()).to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(sig.as_ref());
        format!("\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// A cosigner a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    pub public: [u8; 32],
}

impl Cosigner {
    /// Parse a vkey of signature type 0x04 (Ed25519 cosignature/v1).
    pub fn from_vkey(vkey: &str) -> Result<Self, String> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("vkey {vkey:?}: expected name+keyid+key"));
        };
        let raw = B64.decode(key).map_err(|e| format!("vkey {name}: {e}"))?;
        if raw.len() != 33 || raw[0] != 0x04 {
            return Err(format!("vkey {name}: not an Ed25519 cosignature/v1 key (type 0x04, 32 bytes)"));
        }
        let public: [u8; 32] = raw[1..].try_into().expect("32");
        if hex::encode(cosigner_key_id(name, &public)) != id.to_ascii_lowercase() {
            return Err(format!("vkey {name}: key ID {id} does not match the key"));
        }
        Ok(Self { name: name.into(), public })
    }

    /// Does `note` (checkpoint text with signature lines) carry a valid cosignature by this
    /// cosigner? Returns its timestamp.
    pub fn cosigned(&self, note: &str) -> Option<u64> {
        let (body, sigs) = note.split_once("\n\n")?;
        let body = format!("{body}\n");
        let id = cosigner_key_id(&self.name, &self.public);
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else { continue };
            let Some((name, b64)) = rest.rsplit_once(' ') else { continue };
            if name != self.name {
                continue;
            }
            let Ok(blob) = B64.decode(b64) else { continue };
            if blob.len() != 4 + 8 + 64 || blob[..4] != id {
                continue;
            }
            let time = u64::from_be_bytes(blob[4..12].try_into().expect("8"));
            if UnparsedPublicKey::new(&ED25519, &self.public).verify(&cosigned_message(&body, time), &blob[12..]).is_ok() {
                return Some(time);
            }
        }
        None
    }
}

// ------------------------------------------------------------------ C2SP tlog-policy

/// A parsed `tlog-policy` file: witnesses, groups, the quorum. `log` lines are checked for
/// syntax; which logs count comes from the trusted root.
#[derive(Debug, Clone, Default)]
pub struct WitnessPolicy {
    pub witnesses: BTreeMap<String, Cosigner>,
    groups: BTreeMap<String, (usize, Vec<String>)>,
    quorum: Option<String>,
}

impl WitnessPolicy {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = WitnessPolicy::default();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split([' ', '\t']).filter(|s| !s.is_empty()).collect();
            let at = |m: String| format!("policy line {}: {m}", n + 1);
            match f[0] {
                "log" if f.len() == 2 || f.len() == 3 => {}
                "witness" if f.len() == 3 || f.len() == 4 => {
                    let c = Cosigner::from_vkey(f[2]).map_err(at)?;
                    if !names.insert(f[1].to_string()) || f[1] == "none" {
                        return Err(at(format!("name {} defined twice or reserved", f[1])));
                    }
                    if p.witnesses.values().any(|w| w.public == c.public) {
                        return Err(at("duplicate witness key".into()));
                    }
                    p.witnesses.insert(f[1].to_string(), c);
                }
                "group" if f.len() >= 4 => {
                    let members: Vec<String> = f[3..].iter().map(|s| s.to_string()).collect();
                    let mut seen = BTreeSet::new();
                    for m in &members {
                        if !names.contains(m) || m == "none" || !seen.insert(m) {
                            return Err(at(format!("group member {m} is undefined, reserved or repeated")));
                        }
                    }
                    let k = match f[2] {
                        "all" => members.len(),
                        "any" => 1,
                        k => k
                            .parse::<usize>()
                            .ok()
                            .filter(|k| *k >= 1 && *k <= members.len())
                            .ok_or_else(|| at(format!("threshold {k}: 1..={}", members.len())))?,
                    };
                    if !names.insert(f[1].to_string()) || f[1] == "none" {
                        return Err(at(format!("name {} defined twice or reserved", f[1])));
                    }
                    p.groups.insert(f[1].to_string(), (k, members));
                }
                "quorum" if f.len() == 2 => {
                    if p.quorum.is_some() {
                        return Err(at("a second quorum line".into()));
                    }
                    if f[1] != "none" && !names.contains(f[1]) {
                        return Err(at(format!("quorum {} is not defined above", f[1])));
                    }
                    p.quorum = Some(f[1].to_string());
                }
                other => return Err(at(format!("unexpected {other:?} line"))),
            }
        }
        if p.quorum.is_none() {
            return Err("policy has no quorum line".into());
        }
        Ok(p)
    }

    /// A policy with one witness required (the mirror's own).
    pub fn single(w: Cosigner) -> Self {
        let name = w.name.clone();
        Self { witnesses: [(name.clone(), w)].into(), groups: BTreeMap::new(), quorum: Some(name) }
    }

    /// Witnesses with a valid cosignature on `note`, and whether they meet the quorum.
    pub fn evaluate(&self, note: &str) -> (BTreeSet<String>, bool) {
        let signed: BTreeSet<String> = self.witnesses.iter().filter(|(_, c)| c.cosigned(note).is_some()).map(|(n, _)| n.clone()).collect();
        let q = self.quorum.as_deref().unwrap_or("none");
        let ok = q == "none" || self.satisfied(q, &signed, 0);
        (signed, ok)
    }

    fn satisfied(&self, name: &str, signed: &BTreeSet<String>, depth: usize) -> bool {
        if depth > 64 {
            return false;
        }
        if self.witnesses.contains_key(name) {
            return signed.contains(name);
        }
        match self.groups.get(name) {
            Some((k, members)) => members.iter().filter(|m| self.satisfied(m, signed, depth + 1)).count() >= *k,
            None => false,
        }
    }
}

// ------------------------------------------------------------------ offline check of a bundle's checkpoint

/// Where a bundle's log entry stands against the witnessed history of its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum HistoryVerdict {
    /// The bundle's checkpoint (size, root) is a witnessed root, or proven consistent with one.
    Consistent { size: u64, witnessed: u64 },
    /// The witnessed history has another root at that size: a split view.
    Inconsistent { size: u64, detail: String },
    /// Newer than anything witnessed, or never proven: the policy decides.
    Unwitnessed { size: u64, witnessed: Option<u64> },
    /// The log is marked untrusted after misbehaviour.
    LogUntrusted { detail: String },
    /// The log is not in the witnessed set at all.
    UnknownLog { log: String },
}

/// Judge (size, root) of a log against its history: `root_at(size)` is the witnessed (or
/// proven-consistent) root at that size, `latest` the newest witnessed size, `alarm` any open alarm.
pub fn against_history(size: u64, root: &Hash, root_at: Option<Hash>, latest: Option<u64>, alarm: Option<&str>) -> HistoryVerdict {
    if let Some(a) = alarm {
        return HistoryVerdict::LogUntrusted { detail: a.to_string() };
    }
    match root_at {
        Some(r) if &r == root => HistoryVerdict::Consistent { size, witnessed: latest.unwrap_or(size).max(size) },
        Some(r) => HistoryVerdict::Inconsistent {
            size,
            detail: format!("witnessed root at size {size} is {}, the bundle's is {}", hex::encode(r), hex::encode(root)),
        },
        None => HistoryVerdict::Unwitnessed { size, witnessed: latest },
    }
}

/// (log id hex, tree size, root) of every checkpoint in a bundle's tlog entries.
pub fn bundle_checkpoints(bundle_json: &[u8]) -> Vec<(String, u64, Hash)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bundle_json) else { return vec![] };
    let mut out = vec![];
    for e in v["verificationMaterial"]["tlogEntries"].as_array().into_iter().flatten() {
        let Some(id) = e["logId"]["keyId"].as_str().and_then(|k| B64.decode(k).ok()) else { continue };
        let ip = &e["inclusionProof"];
        let size = ip["treeSize"].as_str().and_then(|s| s.parse().ok()).or(ip["treeSize"].as_u64());
        let root = ip["rootHash"].as_str().and_then(|r| B64.decode(r).ok()).and_then(|r| <Hash>::try_from(r.as_slice()).ok());
        if let (Some(size), Some(root)) = (size, root) {
            out.push((hex::encode(id), size, root));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignatures_round_trip_and_bind_everything() {
        let w = Witness::from_seed("witness.internal/w1", &[7; 32]).unwrap();
        let body = "example.com/log\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let note = format!("{body}\n\u{2014} example.com/log AAAA\n{}", w.cosign(body, 1_679_315_147));
        let c = Cosigner::from_vkey(&w.vkey()).unwrap();
        assert_eq!(c.cosigned(&note), Some(1_679_315_147));
        // another body, another name, another key: no
        assert_eq!(c.cosigned(&note.replace("20852163", "20852164")), None);
        let other = Witness::from_seed("witness.internal/w1", &[8; 32]).unwrap();
        assert_eq!(Cosigner::from_vkey(&other.vkey()).unwrap().cosigned(&note), None);
        assert!(Cosigner::from_vkey(&w.vkey().replacen("witness.internal/w1", "w2", 1)).unwrap_err().contains("does not match"));
        assert!(Witness::from_seed("bad name", &[1; 32]).is_err());
    }

    #[test]
    fn policy_quorums() {
        let ws: Vec<Witness> = (1..=4).map(|i| Witness::from_seed(&format!("w{i}"), &[i as u8; 32]).unwrap()).collect();
        let body = "log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let note = |signers: &[usize]| format!("{body}\n{}", signers.iter().map(|i| ws[*i].cosign(body, 1)).collect::<String>());
        let text = format!(
            "# two of three, and the fourth\nwitness X1 {}\nwitness X2 {}\nwitness X3 {}\ngroup X 2 X1 X2 X3\nwitness Y {} https://y\ngroup XY all X Y\nquorum XY\n",
            ws[0].vkey(),
            ws[1].vkey(),
            ws[2].vkey(),
            ws[3].vkey()
        );
        let p = WitnessPolicy::parse(&text).unwrap();
        assert!(p.evaluate(&note(&[0, 1, 3])).1);
        assert!(!p.evaluate(&note(&[0, 3])).1, "only one X");
        assert!(!p.evaluate(&note(&[0, 1, 2])).1, "no Y");
        assert_eq!(p.evaluate(&note(&[0, 1, 2])).0.len(), 3);
        assert!(WitnessPolicy::parse("quorum none\n").unwrap().evaluate(body).1);
        for bad in [
            "witness A x\nquorum A\n",
            &format!("witness A {}\nquorum B\n", ws[0].vkey()),
            &format!("witness A {}\ngroup G 3 A\nquorum G\n", ws[0].vkey()),
            &format!("witness A {}\nwitness B {}\nquorum A\n", ws[0].vkey(), ws[0].vkey()),
            "",
            "frobnicate\nquorum none\n",
        ] {
            assert!(WitnessPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tiles_reproduce_roots_and_proofs() {
        use crate::core::merkle;
        assert_eq!(tile_path(0, 1_234_067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(1, 5, 17), "tile/1/005.p/17");
        for size in [1u64, 2, 255, 256, 257, 1000, 70_000] {
            let leaves: Vec<Hash> = (0..size).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
            // build every tile the tree has, as a log would
            let mut tiles = BTreeMap::new();
            let mut level_entries = leaves.clone();
            let mut level = 0;
            while !level_entries.is_empty() {
                for (n, chunk) in level_entries.chunks(256).enumerate() {
                    tiles.insert((level, n as u64), chunk.concat());
                }
                level_entries = level_entries.chunks(256).filter(|c| c.len() == 256).map(merkle::root).collect();
                level += 1;
            }
            let mut ts = TileSet::with_tiles(size, tiles);
            assert_eq!(merkle::subtree(&mut ts, 0, size).unwrap(), merkle::root(&leaves), "root size {size}");
            for m in [1, size / 3, size - 1].into_iter().filter(|m| *m > 0 && *m < size) {
                assert_eq!(
                    merkle::consistency_proof_from(&mut ts, m, size).unwrap(),
                    merkle::consistency_proof(m as usize, &leaves),
                    "{m}->{size}"
                );
                let mut rec = TileSet::recorder(size);
                merkle::consistency_proof_from(&mut rec, m, size).unwrap();
                assert!(rec.needed.len() <= 2 * (64 - size.leading_zeros() as usize) + 2, "O(log n) tiles: {:?}", rec.needed);
            }
        }
    }

    #[test]
    fn witness_steps() {
        use crate::core::merkle;
        let leaves: Vec<Hash> = (0..20u32).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let cp = |n: usize, root: Hash| Verified { origin: "o".into(), size: n as u64, root, text: String::new() };
        let r = |n: usize| merkle::root(&leaves[..n]);
        assert_eq!(witness_step(None, &cp(5, r(5)), None).unwrap(), Step::First);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(5, r(5)), None).unwrap(), Step::Unchanged);
        let p = merkle::consistency_proof(5, &leaves[..12]);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(12, r(12)), Some(&p)).unwrap(), Step::Advanced { from: 5 });
        assert_eq!(witness_step(Some((12, &r(12))), &cp(5, r(5)), None).unwrap_err().kind, TlogErrorKind::Rollback);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(5, r(6)), None).unwrap_err().kind, TlogErrorKind::SplitView);
        let mut forked = leaves[..12].to_vec();
        forked[3] = merkle::leaf_hash(b"evil");
        let fp = merkle::consistency_proof(5, &forked);
        assert_eq!(witness_step(Some((5, &r(5))), &cp(12, merkle::root(&forked)), Some(&fp)).unwrap_err().kind, TlogErrorKind::SplitView);
    }
}
