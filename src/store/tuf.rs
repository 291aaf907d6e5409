//! The mirrored TUF repositories: verified metadata by role and version, the current version of
//! each role, the served target set and refresh bookkeeping. A refresh is one transaction
//! ([`Store::tuf_commit`]): the served state changes whole or not at all.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::schema::{BLOBS, TUF_CURRENT, TUF_META, TUF_STATUS, TUF_TARGETS};
use super::{Store, StoreError};
use crate::core::tuf::TufError;

/// Older versions of each non-root role kept (roots are all kept: clients walk the chain).
pub const KEEP_VERSIONS: u64 = 16;

/// A target as the mirror serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedTarget {
    /// The TUF target path (`trusted_root.json`, `dir/name`).
    pub path: String,
    pub sha256: String,
    pub length: u64,
    /// The role that lists it.
    pub role: String,
    /// Refresh generation that last listed it (targets of the previous generation stay served
    /// so a client in the middle of a refresh still finds them).
    pub generation: u64,
}

/// Refresh bookkeeping for one mirrored repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TufStatus {
    pub upstream: String,
    pub last_attempt: Option<Timestamp>,
    /// Last refresh that ended with verified, unexpired metadata (changed or not).
    pub last_success: Option<Timestamp>,
    /// Last refresh that changed what is served.
    pub last_change: Option<Timestamp>,
    pub last_root_probe: Option<Timestamp>,
    pub last_error: Option<TufError>,
    pub consecutive_failures: u64,
    /// Failed refreshes by reason (TufErrorKind string), since the store was created.
    pub failures: BTreeMap<String, u64>,
    pub generation: u64,
}

/// The trusted state of one mirrored repository.
#[derive(Debug, Clone, Default)]
pub struct TufState {
    /// Trusted version and bytes of each role currently trusted.
    pub current: BTreeMap<String, (u64, Vec<u8>)>,
    pub status: TufStatus,
}

impl TufState {
    pub fn bytes(&self, role: &str) -> Option<&[u8]> {
        self.current.get(role).map(|(_, b)| b.as_slice())
    }
    pub fn version(&self, role: &str) -> Option<u64> {
        self.current.get(role).map(|(v, _)| *v)
    }
}

/// Everything one successful refresh changes, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct TufCommit {
    /// Newly verified metadata `(role, version, bytes)`; each becomes the role's current version.
    pub files: Vec<(String, u64, Vec<u8>)>,
    /// Delegated roles no longer reachable (dropped from the current set).
    pub dropped_roles: Vec<String>,
    /// The complete current target set, with the served path(s) of each. `None` keeps the served
    /// set as it is (nothing below the timestamp changed).
    pub targets: Option<Vec<(Vec<String>, ServedTarget)>>,
    /// New target contents by sha256.
    pub blobs: Vec<(String, Vec<u8>)>,
    pub status: TufStatus,
}

impl Store {
    /// Current trusted metadata and status of a mirrored repository.
    pub fn tuf_state(&self, repo: &str) -> Result<TufState, StoreError> {
        let tx = self.db.begin_read()?;
        let cur = tx.open_table(TUF_CURRENT)?;
        let meta = tx.open_table(TUF_META)?;
        let mut state = TufState::default();
        for item in cur.range((repo, "")..)? {
            let (k, v) = item?;
            let (r, role) = k.value();
            if r != repo {
                break;
            }
            let version = v.value();
            let bytes = meta
                .get((repo, role, version))?
                .ok_or_else(|| StoreError::Corrupt {
                    what: format!("tuf_meta {repo}/{role} v{version}"),
                    detail: "current version missing".into(),
                })?
                .value()
                .to_vec();
            state.current.insert(role.to_string(), (version, bytes));
        }
        let st = tx.open_table(TUF_STATUS)?;
        if let Some(s) = st.get(repo)? {
            state.status = serde_json::from_str(s.value())
                .map_err(|e| StoreError::Corrupt { what: format!("tuf_status {repo}"), detail: e.to_string() })?;
        }
        Ok(state)
    }

    /// Apply a verified refresh: all of it or (on any error, or a crash) none of it.
    pub fn tuf_commit(&self, repo: &str, c: &TufCommit) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut meta = tx.open_table(TUF_META)?;
            let mut cur = tx.open_table(TUF_CURRENT)?;
            let mut blobs = tx.open_table(BLOBS)?;
            let mut targets = tx.open_table(TUF_TARGETS)?;
            for (role, version, bytes) in &c.files {
                meta.insert((repo, role.as_str(), *version), bytes.as_slice())?;
                cur.insert((repo, role.as_str()), *version)?;
                if role != "root" && *version > KEEP_VERSIONS {
                    let old: Vec<u64> = meta
                        .range((repo, role.as_str(), 0)..(repo, role.as_str(), version - KEEP_VERSIONS))?
                        .map(|i| i.map(|(k, _)| k.value().2))
                        .collect::<Result<_, _>>()?;
                    for v in old {
                        meta.remove((repo, role.as_str(), v))?;
                    }
                }
            }
            for role in &c.dropped_roles {
                cur.remove((repo, role.as_str()))?;
            }
            for (sha, bytes) in &c.blobs {
                if blobs.get(sha.as_str())?.is_none() {
                    blobs.insert(sha.as_str(), bytes.as_slice())?;
                }
            }
            if let Some(list) = &c.targets {
                let generation = c.status.generation;
                for (served, t) in list {
                    if blobs.get(t.sha256.as_str())?.is_none() {
                        return Err(StoreError::Corrupt { what: format!("target {}", t.path), detail: "content not staged".into() });
                    }
                    let v = serde_json::to_string(t).expect("serializable");
                    for p in served {
                        targets.insert((repo, p.as_str()), v.as_str())?;
                    }
                }
                // Drop targets older than the previous generation; then blobs nobody references.
                let mut stale = Vec::new();
                let mut maybe_unused = BTreeSet::new();
                for item in targets.range((repo, "")..)? {
                    let (k, v) = item?;
                    if k.value().0 != repo {
                        break;
                    }
                    let t: ServedTarget = serde_json::from_str(v.value())
                        .map_err(|e| StoreError::Corrupt { what: "tuf_targets".into(), detail: e.to_string() })?;
                    if t.generation + 1 < generation {
                        stale.push(k.value().1.to_string());
                        maybe_unused.insert(t.sha256);
                    }
                }
                for p in &stale {
                    targets.remove((repo, p.as_str()))?;
                }
                if !maybe_unused.is_empty() {
                    for item in targets.iter()? {
                        let (_, v) = item?;
                        if let Ok(t) = serde_json::from_str::<ServedTarget>(v.value()) {
                            maybe_unused.remove(&t.sha256);
                        }
                    }
                    for sha in maybe_unused {
                        blobs.remove(sha.as_str())?;
                    }
                }
            }
            let mut st = tx.open_table(TUF_STATUS)?;
            st.insert(repo, serde_json::to_string(&c.status).expect("serializable").as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record refresh bookkeeping only (a failed or no-change refresh). Trust data is untouched.
    pub fn tuf_put_status(&self, repo: &str, status: &TufStatus) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        tx.open_table(TUF_STATUS)?.insert(repo, serde_json::to_string(status).expect("serializable").as_str())?;
        tx.commit()?;
        Ok(())
    }

    /// A metadata file by role and version.
    pub fn tuf_meta(&self, repo: &str, role: &str, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TUF_META)?;
        Ok(t.get((repo, role, version))?.map(|v| v.value().to_vec()))
    }

    /// The current version of a role.
    pub fn tuf_current(&self, repo: &str, role: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read()?;
        let cur = tx.open_table(TUF_CURRENT)?;
        let Some(v) = cur.get((repo, role))?.map(|v| v.value()) else { return Ok(None) };
        let t = tx.open_table(TUF_META)?;
        Ok(t.get((repo, role, v))?.map(|b| (v, b.value().to_vec())))
    }

    /// The content of a served target path (`HASH.name` or `dir/HASH.name`, or the plain path for
    /// repositories without consistent snapshots).
    pub fn tuf_target(&self, repo: &str, served_path: &str) -> Result<Option<(ServedTarget, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TUF_TARGETS)?;
        let Some(v) = t.get((repo, served_path))? else { return Ok(None) };
        let st: ServedTarget =
            serde_json::from_str(v.value()).map_err(|e| StoreError::Corrupt { what: "tuf_targets".into(), detail: e.to_string() })?;
        let b = tx.open_table(BLOBS)?;
        let bytes = b
            .get(st.sha256.as_str())?
            .ok_or_else(|| StoreError::Corrupt { what: format!("blob {}", st.sha256), detail: "referenced but missing".into() })?
            .value()
            .to_vec();
        Ok(Some((st, bytes)))
    }

    /// All served targets of the current generation, by TUF path.
    pub fn tuf_targets(&self, repo: &str) -> Result<BTreeMap<String, ServedTarget>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TUF_TARGETS)?;
        let gen_now = self.tuf_state(repo)?.status.generation;
        let mut out = BTreeMap::new();
        for item in t.range((repo, "")..)? {
            let (k, v) = item?;
            if k.value().0 != repo {
                break;
            }
            let st: ServedTarget =
                serde_json::from_str(v.value()).map_err(|e| StoreError::Corrupt { what: "tuf_targets".into(), detail: e.to_string() })?;
            if st.generation == gen_now {
                out.insert(st.path.clone(), st);
            }
        }
        Ok(out)
    }

    /// Every served path of the current generation (a target under each of its hashes, or its
    /// plain path), with its record.
    pub fn tuf_served(&self, repo: &str) -> Result<Vec<(String, ServedTarget)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TUF_TARGETS)?;
        let gen_now = self.tuf_state(repo)?.status.generation;
        let mut out = vec![];
        for item in t.range((repo, "")..)? {
            let (k, v) = item?;
            if k.value().0 != repo {
                break;
            }
            let st: ServedTarget =
                serde_json::from_str(v.value()).map_err(|e| StoreError::Corrupt { what: "tuf_targets".into(), detail: e.to_string() })?;
            if st.generation == gen_now {
                out.push((k.value().1.to_string(), st));
            }
        }
        Ok(out)
    }

    /// Names of the mirrored repositories.
    pub fn tuf_repos(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TUF_STATUS)?;
        t.iter()?.map(|i| i.map(|(k, _)| k.value().to_string()).map_err(Into::into)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::digest::sha256_hex;

    fn target(path: &str, content: &[u8], generation: u64) -> (Vec<String>, ServedTarget, (String, Vec<u8>)) {
        let sha = sha256_hex(content);
        let t = ServedTarget { path: path.into(), sha256: sha.clone(), length: content.len() as u64, role: "targets".into(), generation };
        (vec![format!("{sha}.{path}")], t, (sha, content.to_vec()))
    }

    #[test]
    fn commit_is_whole_and_old_targets_are_collected() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path().join("s.redb")).unwrap();
        let mut gen_contents = Vec::new();
        for g in 1..=4u64 {
            let content = format!("content {g}").into_bytes();
            let (served, t, blob) = target("a.txt", &content, g);
            gen_contents.push(blob.0.clone());
            let c = TufCommit {
                files: vec![("timestamp".into(), g, format!("ts{g}").into_bytes())],
                targets: Some(vec![(served, t)]),
                blobs: vec![blob],
                status: TufStatus { generation: g, ..Default::default() },
                ..Default::default()
            };
            s.tuf_commit("r", &c).unwrap();
        }
        s.check().unwrap();
        // generations 3 and 4 served, 1 and 2 collected with their blobs
        assert!(s.has_blob(&gen_contents[3]).unwrap() && s.has_blob(&gen_contents[2]).unwrap());
        assert!(!s.has_blob(&gen_contents[1]).unwrap() && !s.has_blob(&gen_contents[0]).unwrap());
        assert_eq!(s.tuf_targets("r").unwrap()["a.txt"].generation, 4);
        assert_eq!(s.tuf_state("r").unwrap().version("timestamp"), Some(4));

        // a commit naming a target whose content is not staged fails and changes nothing
        let (served, t, _) = target("b.txt", b"never staged", 5);
        let bad = TufCommit {
            files: vec![("timestamp".into(), 5, b"ts5".to_vec())],
            targets: Some(vec![(served, t)]),
            status: TufStatus { generation: 5, ..Default::default() },
            ..Default::default()
        };
        assert!(s.tuf_commit("r", &bad).is_err());
        assert_eq!(s.tuf_state("r").unwrap().version("timestamp"), Some(4));
        assert_eq!(s.tuf_state("r").unwrap().status.generation, 4);
    }

    #[test]
    fn old_versions_are_pruned_roots_are_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path().join("s.redb")).unwrap();
        for v in 1..=40u64 {
            let c =
                TufCommit { files: vec![("root".into(), v, b"r".to_vec()), ("snapshot".into(), v, b"s".to_vec())], ..Default::default() };
            s.tuf_commit("r", &c).unwrap();
        }
        assert!(s.tuf_meta("r", "root", 1).unwrap().is_some());
        assert!(s.tuf_meta("r", "snapshot", 40 - KEEP_VERSIONS).unwrap().is_some());
        assert!(s.tuf_meta("r", "snapshot", 40 - KEEP_VERSIONS - 1).unwrap().is_none());
    }
}
