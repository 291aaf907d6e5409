//! TUF metadata verification: the pure half of the TUF client (no I/O, no async, time passed in).
//!
//! Signature thresholds, root chaining, timestamp/snapshot/top-level-targets version, length, hash
//! and expiry checks are delegated to `sigstore_tuf::TrustedMetadataSet` (see README "Design").
//! This module adds what that crate does not cover for a mirror:
//!
//! * delegated targets roles verified against their delegator, for classic `roles` delegations
//!   *and* TAP 15 succinct hash-bin delegations (`succinct_roles`), which `sigstore-tuf` does not
//!   model;
//! * errors that always name the role and the reason ([`TufError`]);
//! * helpers shared by the updater and the re-serving code: consistent-snapshot target paths
//!   (`dir/HASH.basename`), role-name URL quoting and target integrity checks.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use sigstore_tuf::{DelegatedRole, Key, Metadata, Role, RoleKeys, TargetFile, Targets, TrustedMetadataSet};

/// Why a piece of TUF metadata (or a target) was refused. Stable strings: they are metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TufErrorKind {
    /// Not JSON, wrong `_type`, missing fields, unsupported spec version.
    Malformed,
    /// Fewer valid signatures than the role's threshold, or duplicate signatures.
    Signature,
    /// Expired (freeze protection).
    Expired,
    /// Version lower than the trusted one (rollback protection).
    Rollback,
    /// Root version not exactly trusted+1.
    RootVersion,
    /// Length or hash differs from what the parent role pinned, or version differs from the pin.
    Integrity,
    /// A key type or signature scheme this client does not implement.
    UnsupportedKey,
    /// The upstream could not be reached or answered with an error status.
    Fetch,
    /// The upstream sent more bytes than allowed for this file.
    TooLarge,
    /// A file the workflow requires is missing upstream.
    NotFound,
    /// A delegation is invalid, or a target is not delegated to any role.
    Delegation,
    /// The local store failed.
    Store,
}

impl TufErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::Rollback => "rollback",
            Self::RootVersion => "root_version",
            Self::Integrity => "integrity",
            Self::UnsupportedKey => "unsupported_key",
            Self::Fetch => "fetch",
            Self::TooLarge => "too_large",
            Self::NotFound => "not_found",
            Self::Delegation => "delegation",
            Self::Store => "store",
        }
    }
    pub const ALL: [TufErrorKind; 12] = [
        Self::Malformed,
        Self::Signature,
        Self::Expired,
        Self::Rollback,
        Self::RootVersion,
        Self::Integrity,
        Self::UnsupportedKey,
        Self::Fetch,
        Self::TooLarge,
        Self::NotFound,
        Self::Delegation,
        Self::Store,
    ];
}

impl std::fmt::Display for TufErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal that names the role (or target) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{role}: {kind}: {detail}")]
pub struct TufError {
    /// `root`, `timestamp`, `snapshot`, `targets`, a delegated role name, or `target <path>`.
    pub role: String,
    pub kind: TufErrorKind,
    pub detail: String,
}

impl TufError {
    pub fn new(role: impl Into<String>, kind: TufErrorKind, detail: impl Into<String>) -> Self {
        Self { role: role.into(), kind, detail: detail.into() }
    }

    /// Classify a `sigstore_tuf` error and attach the role it concerns.
    pub fn from_tuf(role: &str, e: sigstore_tuf::Error) -> Self {
        use sigstore_tuf::Error as E;
        let kind = match &e {
            E::Json(_) | E::Malformed(_) | E::NonIntegerNumber | E::UnknownRole(_) => TufErrorKind::Malformed,
            E::UnusableKey { .. } | E::UnsupportedScheme { .. } => TufErrorKind::UnsupportedKey,
            E::DuplicateSignature { .. } | E::ThresholdNotMet { .. } | E::Crypto(_) => TufErrorKind::Signature,
            E::Rollback { .. } | E::EqualVersion { .. } => TufErrorKind::Rollback,
            E::BadRootVersion { .. } => TufErrorKind::RootVersion,
            E::Expired { .. } => TufErrorKind::Expired,
            E::IntegrityMismatch(_) => TufErrorKind::Integrity,
            E::TargetNotFound(_) | E::NotRefreshed => TufErrorKind::NotFound,
            E::Transport { .. } | E::Io { .. } => TufErrorKind::Fetch,
            _ => TufErrorKind::Malformed,
        };
        Self::new(role, kind, display_chain(&e))
    }
}

/// When a role fails its signature threshold because some of its keys use a type or scheme this
/// client cannot verify, say so: "unsupported key" is actionable, "threshold not met" is not.
fn explain_unsupported(err: TufError, keys: &BTreeMap<String, Key>, keyids: &[String]) -> TufError {
    if err.kind != TufErrorKind::Signature {
        return err;
    }
    let bad: Vec<String> = keyids
        .iter()
        .filter_map(|id| keys.get(id).map(|k| (id, k)))
        .filter_map(|(id, k)| {
            k.verification_key()
                .err()
                // key IDs come from the peer's metadata: cut by characters, never by bytes
                .map(|e| format!("key {}… ({}/{}): {}", id.chars().take(12).collect::<String>(), k.keytype, k.scheme, display_chain(&e)))
        })
        .collect();
    if bad.is_empty() {
        return err;
    }
    TufError::new(err.role, TufErrorKind::UnsupportedKey, format!("{}; unusable keys: {}", err.detail, bad.join("; ")))
}

/// Render an error with its whole `source()` chain.
pub fn display_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let cs = c.to_string();
        if !s.ends_with(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        src = c.source();
    }
    s
}

pub type TufResult<T> = Result<T, TufError>;

/// Outcome of offering a new timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// A newer timestamp was accepted.
    Updated,
    /// The offered timestamp has the trusted version: keep the trusted one.
    Unchanged,
}

/// One step of a delegation search: a role to visit and the role that delegated to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationEdge {
    pub role: String,
    pub delegator: String,
    pub terminating: bool,
}

/// The set of TUF metadata currently trusted, top-level and delegated.
#[derive(Debug, Clone)]
pub struct Trusted {
    set: TrustedMetadataSet,
    /// Verified delegated targets roles by name (cleared when the snapshot changes).
    delegated: BTreeMap<String, Metadata<Targets>>,
}

fn header(bytes: &[u8]) -> Option<(String, u64, Timestamp)> {
    #[derive(Deserialize)]
    struct Signed {
        #[serde(rename = "_type")]
        ty: String,
        version: u64,
        expires: Timestamp,
    }
    #[derive(Deserialize)]
    struct Env {
        signed: Signed,
    }
    let e: Env = serde_json::from_slice(bytes).ok()?;
    Some((e.signed.ty, e.signed.version, e.signed.expires))
}

/// `(_type, version, expires)` of a metadata file, without verifying it. For status output and
/// error messages only.
pub fn peek(bytes: &[u8]) -> Option<(String, u64, Timestamp)> {
    header(bytes)
}

impl Trusted {
    /// Trust a pinned root (it must be self-signed to threshold; expiry is checked later, as the
    /// workflow says).
    pub fn from_root(bytes: &[u8]) -> TufResult<Self> {
        let set = TrustedMetadataSet::from_root(bytes).map_err(|e| TufError::from_tuf("root", e))?;
        Ok(Self { set, delegated: BTreeMap::new() })
    }

    pub fn root(&self) -> &sigstore_tuf::Root {
        self.set.root()
    }
    pub fn root_bytes(&self) -> &[u8] {
        self.set.root_bytes()
    }
    pub fn timestamp(&self) -> Option<&sigstore_tuf::Timestamp> {
        self.set.timestamp()
    }
    pub fn snapshot(&self) -> Option<&sigstore_tuf::Snapshot> {
        self.set.snapshot()
    }
    pub fn top_targets(&self) -> Option<&Targets> {
        self.set.targets_role("targets")
    }
    pub fn targets_role(&self, name: &str) -> Option<&Targets> {
        if name == "targets" { self.top_targets() } else { self.delegated.get(name).map(|m| m.signed()) }
    }
    pub fn delegated_roles(&self) -> impl Iterator<Item = (&String, &Targets)> {
        self.delegated.iter().map(|(k, v)| (k, v.signed()))
    }

    /// Chain to root version N+1 (signed by both the trusted and the new root's threshold).
    pub fn update_root(&mut self, bytes: &[u8]) -> TufResult<()> {
        let v = self.root().version + 1;
        let role = format!("root (version {v})");
        if let Err(e) = self.set.update_root(bytes) {
            let mut err = TufError::from_tuf(&role, e);
            err = self.explain_top("root", err);
            if let Ok(new) = Metadata::<sigstore_tuf::Root>::from_slice(bytes)
                && let Some(r) = new.signed().role("root")
            {
                err = explain_unsupported(err, &new.signed().keys, &r.keyids);
            }
            return Err(err);
        }
        self.delegated.clear();
        Ok(())
    }

    /// Attach "unsupported key" to a signature failure of a top-level role.
    fn explain_top(&self, role: &str, err: TufError) -> TufError {
        match self.root().role(role) {
            Some(r) => explain_unsupported(err, &self.root().keys, &r.keyids),
            None => err,
        }
    }

    pub fn check_root_expired(&self, now: Timestamp) -> TufResult<()> {
        self.set.check_root_expired(now).map_err(|e| TufError::from_tuf("root", e))
    }

    /// Load a timestamp this client verified earlier, as a rollback floor: signatures and versions
    /// are checked against the trusted root, expiry is not (an expired local timestamp still forbids
    /// rolling back below it).
    pub fn seed_timestamp(&mut self, bytes: &[u8]) -> TufResult<()> {
        let (_, _, expires) = header(bytes).ok_or_else(|| TufError::new("timestamp", TufErrorKind::Malformed, "unparseable local copy"))?;
        // `sigstore_tuf` treats metadata as expired when `expires < now`; verifying "as of" its own
        // expiry time therefore skips only the freshness check.
        self.set.update_timestamp(bytes, expires).map_err(|e| TufError::from_tuf("timestamp", e))
    }

    /// Load a snapshot verified earlier (rollback floor for targets versions); see
    /// [`Trusted::seed_timestamp`].
    pub fn seed_snapshot(&mut self, bytes: &[u8]) -> TufResult<()> {
        let (_, _, expires) = header(bytes).ok_or_else(|| TufError::new("snapshot", TufErrorKind::Malformed, "unparseable local copy"))?;
        let ts_exp = self.timestamp().map(|t| t.expires).unwrap_or(expires);
        self.set.update_snapshot(bytes, expires.min(ts_exp)).map_err(|e| TufError::from_tuf("snapshot", e))?;
        self.delegated.clear();
        Ok(())
    }

    pub fn update_timestamp(&mut self, bytes: &[u8], now: Timestamp) -> TufResult<TimestampUpdate> {
        match self.set.update_timestamp(bytes, now) {
            Ok(()) => Ok(TimestampUpdate::Updated),
            Err(sigstore_tuf::Error::EqualVersion { .. }) => Ok(TimestampUpdate::Unchanged),
            Err(e) => Err(self.explain_top("timestamp", TufError::from_tuf("timestamp", e))),
        }
    }

    pub fn check_timestamp_expired(&self, now: Timestamp) -> TufResult<()> {
        self.set.check_timestamp_expired(now).map_err(|e| TufError::from_tuf("timestamp", e))
    }
    pub fn check_snapshot_expired(&self, now: Timestamp) -> TufResult<()> {
        self.set.check_snapshot_expired(now).map_err(|e| TufError::from_tuf("snapshot", e))
    }

    /// The snapshot version the trusted timestamp pins.
    pub fn pinned_snapshot_version(&self) -> TufResult<u64> {
        self.timestamp()
            .and_then(|t| t.snapshot_meta())
            .map(|m| m.version)
            .ok_or_else(|| TufError::new("timestamp", TufErrorKind::Malformed, "does not list snapshot.json in meta"))
    }

    /// The version the trusted snapshot pins for a targets role (`targets` or delegated).
    pub fn pinned_role_version(&self, role: &str) -> Option<u64> {
        self.snapshot().and_then(|s| s.meta.get(&format!("{role}.json"))).map(|m| m.version)
    }

    pub fn update_snapshot(&mut self, bytes: &[u8], now: Timestamp) -> TufResult<()> {
        self.set.update_snapshot(bytes, now).map_err(|e| self.explain_top("snapshot", TufError::from_tuf("snapshot", e)))?;
        self.delegated.clear();
        Ok(())
    }

    pub fn update_targets(&mut self, bytes: &[u8], now: Timestamp) -> TufResult<()> {
        match self.set.update_targets(bytes, now) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.explain_top("targets", TufError::from_tuf("targets", e))),
        }
    }

    /// Verify and trust delegated targets metadata `role`, delegated by the trusted role
    /// `delegator` (classic or succinct delegation).
    pub fn update_delegated(&mut self, bytes: &[u8], role: &str, delegator: &str, now: Timestamp) -> TufResult<()> {
        if matches!(role, "root" | "timestamp" | "snapshot" | "targets") {
            return Err(TufError::new(role, TufErrorKind::Delegation, "a delegated role may not reuse a top-level role name"));
        }
        let (keys, role_keys) = self.delegation_authority(delegator, role)?;
        let snapshot = self.snapshot().ok_or_else(|| TufError::new(role, TufErrorKind::Malformed, "no trusted snapshot"))?;
        if snapshot.expires < now {
            return Err(TufError::new("snapshot", TufErrorKind::Expired, format!("expired at {}", snapshot.expires)));
        }
        let pin = snapshot
            .meta
            .get(&format!("{role}.json"))
            .ok_or_else(|| TufError::new(role, TufErrorKind::Delegation, "not listed in the trusted snapshot"))?;
        check_length_and_hashes(bytes, pin.length, pin.hashes.as_ref()).map_err(|d| TufError::new(role, TufErrorKind::Integrity, d))?;
        let md = Metadata::<Targets>::from_slice(bytes).map_err(|e| TufError::from_tuf(role, e))?;
        if md.signed().version != pin.version {
            return Err(TufError::new(
                role,
                TufErrorKind::Integrity,
                format!("version {} differs from the version {} the snapshot pins", md.signed().version, pin.version),
            ));
        }
        md.verify_threshold(&keys, &role_keys, role)
            .map_err(|e| explain_unsupported(TufError::from_tuf(role, e), &keys, &role_keys.keyids))?;
        if md.signed().is_expired(now) {
            return Err(TufError::new(role, TufErrorKind::Expired, format!("expired at {}", md.signed().expires)));
        }
        self.delegated.insert(role.to_string(), md);
        Ok(())
    }

    /// Re-check an already trusted delegated role against another delegator (a role can be
    /// reachable through several parents with different keys).
    pub fn verify_delegated_via(&self, role: &str, delegator: &str, now: Timestamp) -> TufResult<()> {
        let (keys, role_keys) = self.delegation_authority(delegator, role)?;
        let md = self.delegated.get(role).ok_or_else(|| TufError::new(role, TufErrorKind::Delegation, "not loaded"))?;
        md.verify_threshold(&keys, &role_keys, role).map_err(|e| TufError::from_tuf(role, e))?;
        if md.signed().is_expired(now) {
            return Err(TufError::new(role, TufErrorKind::Expired, format!("expired at {}", md.signed().expires)));
        }
        Ok(())
    }

    fn delegation_authority(&self, delegator: &str, role: &str) -> TufResult<(BTreeMap<String, Key>, RoleKeys)> {
        let parent = self
            .targets_role(delegator)
            .ok_or_else(|| TufError::new(role, TufErrorKind::Delegation, format!("delegator {delegator} is not trusted")))?;
        let delegations = parent
            .delegations
            .as_ref()
            .ok_or_else(|| TufError::new(role, TufErrorKind::Delegation, format!("{delegator} delegates nothing")))?;
        let (keyids, threshold) = if let Some(r) = delegations.roles.iter().find(|r| r.name == role) {
            (r.keyids.clone(), r.threshold)
        } else if let Some(s) = succinct(delegations).filter(|s| s.is_delegated_role(role)) {
            (s.keyids.clone(), s.threshold)
        } else {
            return Err(TufError::new(role, TufErrorKind::Delegation, format!("{delegator} does not delegate to {role}")));
        };
        let keys = keyids.iter().filter_map(|k| delegations.keys.get(k).map(|key| (k.clone(), key.clone()))).collect();
        let role_keys: RoleKeys = serde_json::from_value(serde_json::json!({"keyids": keyids, "threshold": threshold}))
            .map_err(|e| TufError::new(role, TufErrorKind::Malformed, e.to_string()))?;
        Ok((keys, role_keys))
    }

    /// The children of `role` to visit when searching for `target_path`, in delegation order,
    /// cut after the first terminating one. `Ok(vec![])` when `role` delegates nothing.
    pub fn children_for_target(&self, role: &str, target_path: &str) -> TufResult<Vec<DelegationEdge>> {
        let Some(t) = self.targets_role(role) else {
            return Err(TufError::new(role, TufErrorKind::Delegation, "not loaded"));
        };
        let Some(d) = t.delegations.as_ref() else { return Ok(vec![]) };
        let mut out = Vec::new();
        if let Some(s) = succinct(d) {
            out.push(DelegationEdge { role: s.role_for_target(target_path), delegator: role.to_string(), terminating: true });
            return Ok(out);
        }
        for r in &d.roles {
            let matches = r.matches_path(target_path).map_err(|e| TufError::from_tuf(&r.name, e))?;
            if matches {
                out.push(DelegationEdge { role: r.name.clone(), delegator: role.to_string(), terminating: r.terminating });
                if r.terminating {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every role that `role` delegates to (for mirroring the whole repository).
    pub fn all_children(&self, role: &str) -> Vec<String> {
        let Some(d) = self.targets_role(role).and_then(|t| t.delegations.as_ref()) else { return vec![] };
        if let Some(s) = succinct(d) {
            return s.all_roles();
        }
        d.roles.iter().map(|r| r.name.clone()).collect()
    }

    /// Whether the chain of delegations from `targets` to `role` authorizes `target_path`.
    /// Used by the mirror to serve only targets a client could actually resolve.
    pub fn delegation_allows(&self, delegator: &str, role: &str, target_path: &str) -> bool {
        let Some(d) = self.targets_role(delegator).and_then(|t| t.delegations.as_ref()) else { return false };
        if let Some(s) = succinct(d) {
            return s.role_for_target(target_path) == role;
        }
        d.roles.iter().filter(|r| r.name == role).any(|r: &DelegatedRole| r.matches_path(target_path).unwrap_or(false))
    }
}

/// TAP 15 succinct hash-bin delegation, as python-tuf models it.
#[derive(Debug, Clone, Deserialize)]
pub struct SuccinctRoles {
    pub keyids: Vec<String>,
    pub threshold: usize,
    pub bit_length: u32,
    pub name_prefix: String,
}

fn succinct(d: &sigstore_tuf::Delegations) -> Option<SuccinctRoles> {
    let v = d.extra.get("succinct_roles")?;
    let s: SuccinctRoles = serde_json::from_value(v.clone()).ok()?;
    (1..=32).contains(&s.bit_length).then_some(s)
}

impl SuccinctRoles {
    fn suffix_len(&self) -> usize {
        let bins_minus_one: u64 = (1u64 << self.bit_length) - 1;
        format!("{bins_minus_one:x}").len()
    }
    fn name(&self, bin: u64) -> String {
        format!("{}-{:0width$x}", self.name_prefix, bin, width = self.suffix_len())
    }
    /// The bin that holds `target_path`: the first `bit_length` bits of SHA-256(path).
    pub fn role_for_target(&self, target_path: &str) -> String {
        let h = Sha256::digest(target_path.as_bytes());
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
        self.name(first >> (32 - self.bit_length))
    }
    pub fn is_delegated_role(&self, role: &str) -> bool {
        let Some(suffix) = role.strip_prefix(&format!("{}-", self.name_prefix)) else { return false };
        suffix.len() == self.suffix_len()
            && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < (1u64 << self.bit_length))
    }
    pub fn all_roles(&self) -> Vec<String> {
        (0..(1u64 << self.bit_length)).map(|b| self.name(b)).collect()
    }
}

/// Check bytes against a pinned length and hash set. At least one supported hash (sha256, sha512)
/// must be present when hashes are pinned.
pub fn check_length_and_hashes(bytes: &[u8], length: Option<u64>, hashes: Option<&BTreeMap<String, String>>) -> Result<(), String> {
    if let Some(len) = length
        && bytes.len() as u64 != len
    {
        return Err(format!("length {} differs from the pinned length {len}", bytes.len()));
    }
    let Some(hashes) = hashes else { return Ok(()) };
    let mut checked = 0;
    for (alg, want) in hashes {
        let got = match alg.as_str() {
            "sha256" => hex::encode(Sha256::digest(bytes)),
            "sha512" => hex::encode(Sha512::digest(bytes)),
            _ => continue,
        };
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("{alg} {got} differs from the pinned {want}"));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(format!("no supported hash algorithm among {:?}", hashes.keys().collect::<Vec<_>>()));
    }
    Ok(())
}

/// Verify a downloaded target against its metadata.
pub fn check_target(bytes: &[u8], target: &TargetFile, path: &str) -> TufResult<()> {
    check_length_and_hashes(bytes, Some(target.length), Some(&target.hashes))
        .map_err(|d| TufError::new(format!("target {path}"), TufErrorKind::Integrity, d))
}

/// The hash used to locate a consistent-snapshot target: sha256, else sha512, else the first.
pub fn preferred_hash(target: &TargetFile) -> Option<(&str, &str)> {
    for alg in ["sha256", "sha512"] {
        if let Some(h) = target.hashes.get(alg) {
            return Some((alg, h.as_str()));
        }
    }
    target.hashes.iter().next().map(|(a, h)| (a.as_str(), h.as_str()))
}

/// Consistent-snapshot path of a target: the hash prefixes the *basename*, so a delegated target
/// `dir/sub/name` lives at `dir/sub/HASH.name` (not `HASH.dir/sub/name`).
pub fn consistent_target_path(path: &str, hash: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{hash}.{name}"),
        None => format!("{hash}.{path}"),
    }
}

/// Quote a role name for a metadata file name / URL path the way python-tuf does
/// (`urllib.parse.quote(name, safe="")`).
pub fn quote_role(role: &str) -> String {
    let mut out = String::with_capacity(role.len());
    for &b in role.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Name of a targets-role metadata file for a repository (`N.role.json` with consistent snapshots).
pub fn role_file_name(role: &str, version: u64, consistent: bool) -> String {
    if consistent { format!("{version}.{}.json", quote_role(role)) } else { format!("{}.json", quote_role(role)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_key_ids_with_multibyte_characters_do_not_panic() {
        // a key ID is whatever the metadata says; cutting it for a message must not split a char
        let id = "ééééééééééééééé".to_string();
        let key: Key =
            serde_json::from_value(serde_json::json!({"keytype": "weird", "scheme": "weird", "keyval": {"public": "x"}})).unwrap();
        let keys: BTreeMap<String, Key> = [(id.clone(), key)].into();
        let e = explain_unsupported(TufError::new("root", TufErrorKind::Signature, "threshold"), &keys, &[id]);
        assert_eq!(e.kind, TufErrorKind::UnsupportedKey);
        assert!(e.detail.contains("éééééééééééé…"), "{}", e.detail);
    }

    #[test]
    fn consistent_paths_prefix_the_basename() {
        assert_eq!(consistent_target_path("trusted_root.json", "ab"), "ab.trusted_root.json");
        assert_eq!(consistent_target_path("registry.npmjs.org/keys.json", "ab"), "registry.npmjs.org/ab.keys.json");
        assert_eq!(consistent_target_path("a/b/c", "ff"), "a/b/ff.c");
    }

    #[test]
    fn role_quoting_matches_python_quote_safe_empty() {
        assert_eq!(quote_role("role1"), "role1");
        assert_eq!(quote_role("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(quote_role("../x"), "..%2Fx");
    }

    #[test]
    fn succinct_bins_match_python_tuf() {
        // python-tuf: SuccinctRoles([], 1, 8, "bin").get_role_for_target("some/path")
        let s = SuccinctRoles { keyids: vec![], threshold: 1, bit_length: 8, name_prefix: "bin".into() };
        let h = Sha256::digest(b"some/path");
        assert_eq!(s.role_for_target("some/path"), format!("bin-{:02x}", h[0]));
        assert!(s.is_delegated_role("bin-00") && s.is_delegated_role("bin-ff"));
        assert!(!s.is_delegated_role("bin-100") && !s.is_delegated_role("bin-0") && !s.is_delegated_role("bim-00"));
        assert_eq!(s.all_roles().len(), 256);
        let s3 = SuccinctRoles { keyids: vec![], threshold: 1, bit_length: 3, name_prefix: "b".into() };
        assert_eq!(s3.all_roles(), ["b-0", "b-1", "b-2", "b-3", "b-4", "b-5", "b-6", "b-7"]);
        assert_eq!(s3.role_for_target("some/path"), format!("b-{:x}", h[0] >> 5));
    }

    #[test]
    fn length_and_hash_checks_name_the_mismatch() {
        let data = b"hello";
        let sha = hex::encode(Sha256::digest(data));
        let mut h = BTreeMap::new();
        h.insert("sha256".to_string(), sha);
        assert!(check_length_and_hashes(data, Some(5), Some(&h)).is_ok());
        assert!(check_length_and_hashes(data, Some(6), Some(&h)).unwrap_err().contains("length 5"));
        assert!(check_length_and_hashes(b"hellp", Some(5), Some(&h)).unwrap_err().contains("sha256"));
        let mut only_md5 = BTreeMap::new();
        only_md5.insert("md5".to_string(), "00".to_string());
        assert!(check_length_and_hashes(data, None, Some(&only_md5)).unwrap_err().contains("no supported hash"));
    }
}
