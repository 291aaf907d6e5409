//! A TUF repository writer: the testbed's internal TUF repository, the demo bundle, and the
//! repositories tests throw at the mirror (rotations, delegations, hash bins, expiry, tampering).
//!
//! Layout is Sigstore's CDN layout: metadata at the top (`N.root.json`, `timestamp.json`,
//! `N.snapshot.json`, `N.targets.json`, `N.<role>.json`), targets below `targets/` as
//! `HASH.name` (or `dir/HASH.name`) with consistent snapshots, plain names without.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::core::tuf::{consistent_target_path, quote_role};
use crate::testbed::keys::{KeyKind, SigningKey};

/// A role's targets: path → (content, `custom` field).
pub type RoleTargets = BTreeMap<String, (Vec<u8>, Option<Value>)>;

/// A delegated targets role.
#[derive(Debug)]
pub struct Delegation {
    pub name: String,
    pub delegator: String,
    pub keys: Vec<SigningKey>,
    pub threshold: usize,
    pub paths: Option<Vec<String>>,
    pub path_hash_prefixes: Option<Vec<String>>,
    pub terminating: bool,
}

/// A TAP 15 succinct hash-bin delegation from top-level targets.
#[derive(Debug)]
pub struct Succinct {
    pub name_prefix: String,
    pub bit_length: u32,
    pub keys: Vec<SigningKey>,
    pub threshold: usize,
}

#[derive(Debug)]
pub struct RoleState {
    pub keys: Vec<SigningKey>,
    pub threshold: usize,
    pub version: u64,
    pub expires: Timestamp,
    /// Last published bytes.
    pub bytes: Vec<u8>,
}

/// An in-memory TUF repository that publishes to a directory.
#[derive(Debug)]
pub struct TufRepo {
    pub dir: PathBuf,
    pub consistent: bool,
    pub spec_version: String,
    seed: String,
    key_counter: u64,
    pub roles: BTreeMap<String, RoleState>,
    /// Targets by role (top-level `targets` or a delegated role): path → (content, custom).
    pub targets: BTreeMap<String, RoleTargets>,
    pub delegations: Vec<Delegation>,
    pub succinct: Option<Succinct>,
    /// Hash algorithms listed for targets.
    pub hash_algs: Vec<&'static str>,
    /// Extra signatures (role → keys) added to the next signing of a role, for tests.
    pub extra_signers: BTreeMap<String, Vec<SigningKey>>,
    pub key_kind: KeyKind,
}

fn hash(alg: &str, b: &[u8]) -> String {
    match alg {
        "sha512" => hex::encode(Sha512::digest(b)),
        _ => hex::encode(Sha256::digest(b)),
    }
}

fn ts(t: Timestamp) -> String {
    // TUF wants second precision "YYYY-MM-DDTHH:MM:SSZ".
    Timestamp::from_second(t.as_second()).expect("in range").strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl TufRepo {
    /// A new repository: one key per top-level role, threshold 1, version 1 of everything,
    /// metadata valid for `valid_for` from `now`.
    pub fn new(dir: impl AsRef<Path>, seed: &str, key_kind: KeyKind, now: Timestamp, valid_for: SignedDuration) -> Self {
        let mut r = Self {
            dir: dir.as_ref().to_path_buf(),
            consistent: true,
            spec_version: "1.0.31".into(),
            seed: seed.into(),
            key_counter: 0,
            roles: BTreeMap::new(),
            targets: BTreeMap::new(),
            delegations: vec![],
            succinct: None,
            hash_algs: vec!["sha256"],
            extra_signers: BTreeMap::new(),
            key_kind,
        };
        let expires = now.checked_add(valid_for).expect("in range");
        for role in ["root", "timestamp", "snapshot", "targets"] {
            let k = r.new_key();
            r.roles.insert(role.into(), RoleState { keys: vec![k], threshold: 1, version: 0, expires, bytes: vec![] });
        }
        r.targets.insert("targets".into(), BTreeMap::new());
        r
    }

    /// A fresh key derived from the repository seed (deterministic for Ed25519/P-256).
    pub fn new_key(&mut self) -> SigningKey {
        self.key_counter += 1;
        SigningKey::new(self.key_kind, Some(format!("{}/key/{}", self.seed, self.key_counter).as_bytes()))
    }

    pub fn role(&self, role: &str) -> &RoleState {
        &self.roles[role]
    }
    pub fn role_mut(&mut self, role: &str) -> &mut RoleState {
        self.roles.get_mut(role).expect("known role")
    }
    pub fn set_expiry(&mut self, role: &str, at: Timestamp) {
        self.role_mut(role).expires = at;
    }

    pub fn add_target(&mut self, role: &str, path: &str, content: &[u8]) {
        self.targets.entry(role.into()).or_default().insert(path.into(), (content.to_vec(), None));
    }
    pub fn remove_target(&mut self, role: &str, path: &str) {
        if let Some(t) = self.targets.get_mut(role) {
            t.remove(path);
        }
    }

    /// Delegate from `delegator` to a new role with its own key.
    pub fn delegate(&mut self, delegator: &str, name: &str, paths: &[&str], terminating: bool) {
        let k = self.new_key();
        self.delegations.push(Delegation {
            name: name.into(),
            delegator: delegator.into(),
            keys: vec![k],
            threshold: 1,
            paths: Some(paths.iter().map(|s| s.to_string()).collect()),
            path_hash_prefixes: None,
            terminating,
        });
        let expires = self.roles["targets"].expires;
        self.roles.insert(name.into(), RoleState { keys: vec![], threshold: 1, version: 0, expires, bytes: vec![] });
        self.targets.entry(name.into()).or_default();
    }

    /// Succinct hash-bin delegation (TAP 15) from top-level targets: `2^bit_length` bins
    /// `prefix-XX`, all signed by one key. Targets added with [`TufRepo::add_binned_target`].
    pub fn delegate_succinct(&mut self, prefix: &str, bit_length: u32) {
        let k = self.new_key();
        self.succinct = Some(Succinct { name_prefix: prefix.into(), bit_length, keys: vec![k], threshold: 1 });
        let expires = self.roles["targets"].expires;
        let s = crate::core::tuf::SuccinctRoles { keyids: vec![], threshold: 1, bit_length, name_prefix: prefix.into() };
        for name in s.all_roles() {
            self.roles.insert(name.clone(), RoleState { keys: vec![], threshold: 1, version: 0, expires, bytes: vec![] });
            self.targets.entry(name).or_default();
        }
    }

    /// Add a target to the hash bin that holds its path.
    pub fn add_binned_target(&mut self, path: &str, content: &[u8]) -> String {
        let s = self.succinct.as_ref().expect("delegate_succinct first");
        let bin =
            crate::core::tuf::SuccinctRoles { keyids: vec![], threshold: 1, bit_length: s.bit_length, name_prefix: s.name_prefix.clone() }
                .role_for_target(path);
        self.add_target(&bin, path, content);
        bin
    }

    fn signers(&self, role: &str) -> Vec<&SigningKey> {
        if let Some(d) = self.delegations.iter().find(|d| d.name == role) {
            return d.keys.iter().collect();
        }
        if let Some(s) = &self.succinct
            && role.starts_with(&format!("{}-", s.name_prefix))
        {
            return s.keys.iter().collect();
        }
        self.roles[role].keys.iter().collect()
    }

    /// Sign a `signed` object with the role's keys (plus any extra signers queued for it).
    pub fn sign(&self, role: &str, signed: &Value) -> Vec<u8> {
        let canonical = sigstore_tuf::canonical_json::to_canonical_bytes(signed).expect("integers only");
        let mut sigs = vec![];
        let extra = self.extra_signers.get(role).map(|v| v.iter().collect::<Vec<_>>()).unwrap_or_default();
        for k in self.signers(role).into_iter().chain(extra) {
            sigs.push(json!({"keyid": k.keyid, "sig": hex::encode(k.sign(&canonical))}));
        }
        serde_json::to_vec_pretty(&json!({"signatures": sigs, "signed": signed})).expect("json")
    }

    fn root_signed(&self, version: u64) -> Value {
        let mut keys = Map::new();
        let mut roles = Map::new();
        for r in ["root", "timestamp", "snapshot", "targets"] {
            let st = &self.roles[r];
            for k in &st.keys {
                keys.insert(k.keyid.clone(), k.public.clone());
            }
            roles.insert(
                r.into(),
                json!({"keyids": st.keys.iter().map(|k| k.keyid.clone()).collect::<Vec<_>>(), "threshold": st.threshold}),
            );
        }
        json!({
            "_type": "root", "spec_version": self.spec_version, "version": version,
            "expires": ts(self.roles["root"].expires), "consistent_snapshot": self.consistent,
            "keys": keys, "roles": roles,
        })
    }

    fn target_entry(&self, content: &[u8], custom: &Option<Value>) -> Value {
        let mut hashes = Map::new();
        for alg in &self.hash_algs {
            hashes.insert((*alg).into(), Value::String(hash(alg, content)));
        }
        let mut e = json!({"length": content.len(), "hashes": hashes});
        if let Some(c) = custom {
            e["custom"] = c.clone();
        }
        e
    }

    fn targets_signed(&self, role: &str, version: u64) -> Value {
        let mut t = Map::new();
        for (p, (c, custom)) in self.targets.get(role).into_iter().flatten() {
            t.insert(p.clone(), self.target_entry(c, custom));
        }
        let mut signed = json!({
            "_type": "targets", "spec_version": self.spec_version, "version": version,
            "expires": ts(self.roles[role].expires), "targets": t,
        });
        let children: Vec<&Delegation> = self.delegations.iter().filter(|d| d.delegator == role).collect();
        if role == "targets"
            && let Some(s) = &self.succinct
        {
            let mut keys = Map::new();
            for k in &s.keys {
                keys.insert(k.keyid.clone(), k.public.clone());
            }
            signed["delegations"] = json!({"keys": keys, "succinct_roles": {
                "keyids": s.keys.iter().map(|k| k.keyid.clone()).collect::<Vec<_>>(), "threshold": s.threshold,
                "bit_length": s.bit_length, "name_prefix": s.name_prefix}});
        } else if !children.is_empty() {
            let mut keys = Map::new();
            let mut roles = vec![];
            for d in children {
                for k in &d.keys {
                    keys.insert(k.keyid.clone(), k.public.clone());
                }
                let mut r = json!({"name": d.name, "keyids": d.keys.iter().map(|k| k.keyid.clone()).collect::<Vec<_>>(),
                    "threshold": d.threshold, "terminating": d.terminating});
                if let Some(p) = &d.paths {
                    r["paths"] = json!(p);
                }
                if let Some(p) = &d.path_hash_prefixes {
                    r["path_hash_prefixes"] = json!(p);
                }
                roles.push(r);
            }
            signed["delegations"] = json!({"keys": keys, "roles": roles});
        }
        signed
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
        let p = self.dir.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, bytes)
    }

    fn meta_entry(bytes: &[u8], version: u64, with_hashes: bool) -> Value {
        if with_hashes {
            json!({"version": version, "length": bytes.len(), "hashes": {"sha256": hash("sha256", bytes)}})
        } else {
            json!({"version": version})
        }
    }

    /// Publish a new version of the root (call after changing keys/thresholds/expiry). The new
    /// root is signed by the previous root's keys too, as the TUF chain requires.
    pub fn publish_root(&mut self, previous_root_keys: Option<Vec<SigningKey>>) -> std::io::Result<u64> {
        let v = self.roles["root"].version + 1;
        let signed = self.root_signed(v);
        if let Some(prev) = previous_root_keys {
            let mut extra = self.extra_signers.remove("root").unwrap_or_default();
            extra.extend(prev);
            self.extra_signers.insert("root".into(), extra);
        }
        let bytes = self.sign("root", &signed);
        self.extra_signers.remove("root");
        self.write(&format!("{v}.root.json"), &bytes)?;
        self.write("root.json", &bytes)?;
        let st = self.role_mut("root");
        st.version = v;
        st.bytes = bytes;
        Ok(v)
    }

    /// Replace the keys of `role` by a fresh key and publish a new root signed by old and new
    /// root keys.
    pub fn rotate_keys(&mut self, role: &str) -> std::io::Result<u64> {
        let k = self.new_key();
        let old = std::mem::replace(&mut self.role_mut(role).keys, vec![k]);
        let prev_root = if role == "root" { Some(old) } else { None };
        self.publish_root(prev_root)
    }

    /// Publish the given targets roles (new versions), then snapshot and timestamp.
    pub fn publish_targets(&mut self, roles: &[&str]) -> std::io::Result<()> {
        for role in roles {
            let v = self.roles[*role].version + 1;
            let signed = self.targets_signed(role, v);
            let bytes = self.sign(role, &signed);
            let name = if self.consistent { format!("{v}.{}.json", quote_role(role)) } else { format!("{}.json", quote_role(role)) };
            self.write(&name, &bytes)?;
            let st = self.role_mut(role);
            st.version = v;
            st.bytes = bytes;
            // target files
            let files: Vec<(String, Vec<u8>)> =
                self.targets.get(*role).into_iter().flatten().map(|(p, (c, _))| (p.clone(), c.clone())).collect();
            for (p, c) in files {
                if self.consistent {
                    for alg in self.hash_algs.clone() {
                        self.write(&format!("targets/{}", consistent_target_path(&p, &hash(alg, &c))), &c)?;
                    }
                } else {
                    self.write(&format!("targets/{p}"), &c)?;
                }
            }
        }
        self.publish_snapshot()?;
        self.publish_timestamp()
    }

    /// Publish every role (first publication, or after bulk changes).
    pub fn publish_all(&mut self) -> std::io::Result<()> {
        if self.roles["root"].version == 0 {
            self.publish_root(None)?;
        }
        let roles: Vec<String> = self.roles.keys().filter(|r| !matches!(r.as_str(), "root" | "timestamp" | "snapshot")).cloned().collect();
        let refs: Vec<&str> = roles.iter().map(|s| s.as_str()).collect();
        self.publish_targets(&refs)
    }

    pub fn publish_snapshot(&mut self) -> std::io::Result<()> {
        let v = self.roles["snapshot"].version + 1;
        let mut meta = Map::new();
        for (name, st) in &self.roles {
            if matches!(name.as_str(), "root" | "timestamp" | "snapshot") || st.version == 0 {
                continue;
            }
            meta.insert(format!("{name}.json"), Self::meta_entry(&st.bytes, st.version, false));
        }
        let signed = json!({"_type": "snapshot", "spec_version": self.spec_version, "version": v,
            "expires": ts(self.roles["snapshot"].expires), "meta": meta});
        let bytes = self.sign("snapshot", &signed);
        self.write(&if self.consistent { format!("{v}.snapshot.json") } else { "snapshot.json".into() }, &bytes)?;
        let st = self.role_mut("snapshot");
        st.version = v;
        st.bytes = bytes;
        Ok(())
    }

    pub fn publish_timestamp(&mut self) -> std::io::Result<()> {
        let v = self.roles["timestamp"].version + 1;
        let snap = &self.roles["snapshot"];
        let signed = json!({"_type": "timestamp", "spec_version": self.spec_version, "version": v,
            "expires": ts(self.roles["timestamp"].expires),
            "meta": {"snapshot.json": Self::meta_entry(&snap.bytes, snap.version, true)}});
        let bytes = self.sign("timestamp", &signed);
        self.write("timestamp.json", &bytes)?;
        let st = self.role_mut("timestamp");
        st.version = v;
        st.bytes = bytes;
        Ok(())
    }

    /// The first root (what a client pins).
    pub fn initial_root(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("1.root.json")).expect("published")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tuf::Trusted;

    #[test]
    fn published_repository_verifies_with_sigstore_tuf() {
        let d = tempfile::tempdir().unwrap();
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut r = TufRepo::new(d.path(), "t", KeyKind::Ed25519, now, SignedDuration::from_hours(24));
        r.add_target("targets", "trusted_root.json", b"{}");
        r.delegate("targets", "npm", &["npm/*"], true);
        r.add_target("npm", "npm/keys.json", b"[]");
        r.publish_all().unwrap();
        let mut t = Trusted::from_root(&r.initial_root()).unwrap();
        t.update_timestamp(&std::fs::read(d.path().join("timestamp.json")).unwrap(), now).unwrap();
        t.update_snapshot(&std::fs::read(d.path().join("1.snapshot.json")).unwrap(), now).unwrap();
        t.update_targets(&std::fs::read(d.path().join("1.targets.json")).unwrap(), now).unwrap();
        t.update_delegated(&std::fs::read(d.path().join("1.npm.json")).unwrap(), "npm", "targets", now).unwrap();
        let h = hex::encode(Sha256::digest(b"[]"));
        assert!(d.path().join(format!("targets/npm/{h}.keys.json")).exists());

        // root rotation chains
        r.rotate_keys("root").unwrap();
        t.update_root(&std::fs::read(d.path().join("2.root.json")).unwrap()).unwrap();
        assert_eq!(t.root().version, 2);
    }
}
