//! The local store: the only code that touches persistent state.
//!
//! One redb file (ACID, copy-on-write B-trees, fsync on commit). Every logical update — a TUF
//! refresh, later a checkpoint, an ingested signature set, an exemption — is one write
//! transaction: after a crash the file reopens to the last committed state, whole.
//!
//! The file is opened in redb's multi-writer mode so the daemon and CLI commands (`tuf status`,
//! `tuf refresh`) can use the same store at once; redb serialises write transactions.
//!
//! # Schema
//! The `meta` table holds `schema_version`. [`MIGRATIONS`]`[i]` upgrades a store from version `i`
//! to `i + 1`; opening a store runs the missing ones in a single transaction, and a store written
//! by a newer trustmirror is refused rather than misread. Version 1 tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | text |
//! | `blobs` | sha256 hex | bytes (content-addressed, deduplicated) |
//! | `tuf_meta` | (repo, role, version) | verified metadata bytes, as served upstream |
//! | `tuf_current` | (repo, role) | trusted version of the role |
//! | `tuf_targets` | (repo, served path) | [`ServedTarget`] JSON (→ `blobs`) |
//! | `tuf_status` | repo | [`TufStatus`] JSON |
//! | `tlog_checkpoints` | (log id, tree size) | signed checkpoint (filled by the log mirror) |
//! | `audit_log` | sequence | JSON record (append-only) |
//!
//! Version 2 adds the mirrored OCI material (see [`oci`]); version 3 break-glass exemptions and
//! material ETags (see [`admission`]); version 4 the witnessed transparency-log state (see
//! [`tlog`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::tuf::TufError;

pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
pub const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
pub const TUF_META: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("tuf_meta");
pub const TUF_CURRENT: TableDefinition<(&str, &str), u64> = TableDefinition::new("tuf_current");
pub const TUF_TARGETS: TableDefinition<(&str, &str), &str> = TableDefinition::new("tuf_targets");
pub const TUF_STATUS: TableDefinition<&str, &str> = TableDefinition::new("tuf_status");
pub const TLOG_CHECKPOINTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("tlog_checkpoints");
pub const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");

pub mod admission;
pub mod oci;
pub mod tlog;

/// The schema this binary writes.
pub const SCHEMA_VERSION: u32 = 4;

type Migration = fn(&WriteTransaction) -> Result<(), StoreError>;

/// `MIGRATIONS[i]` takes a store from schema `i` to `i + 1`.
pub const MIGRATIONS: &[Migration] = &[migrate_0_to_1, oci::migrate_1_to_2, admission::migrate_2_to_3, tlog::migrate_3_to_4];

fn migrate_0_to_1(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(BLOBS)?;
    tx.open_table(TUF_META)?;
    tx.open_table(TUF_CURRENT)?;
    tx.open_table(TUF_TARGETS)?;
    tx.open_table(TUF_STATUS)?;
    tx.open_table(TLOG_CHECKPOINTS)?;
    tx.open_table(AUDIT_LOG)?;
    Ok(())
}

/// Older versions of each non-root role kept (roots are all kept: clients walk the chain).
pub const KEEP_VERSIONS: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: schema version {found} is newer than this trustmirror understands ({supported}); upgrade trustmirror")]
    TooNew { path: String, found: u32, supported: u32 },
    #[error("store {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("store: {0}")]
    Db(String),
    #[error("store: corrupt record {what}: {detail}")]
    Corrupt { what: String, detail: String },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(impl From<$t> for StoreError { fn from(e: $t) -> Self { StoreError::Db(e.to_string()) } })*};
}
from_redb!(redb::Error, redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

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

pub struct Store {
    pub(crate) db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

impl Store {
    /// Open (creating if missing) and migrate to [`SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open { path: p.clone(), detail: e.to_string() })?;
        }
        let db = Database::builder()
            .set_cache_size(64 * 1024 * 1024)
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .create(&path)
            .map_err(|e| StoreError::Open { path: p.clone(), detail: e.to_string() })?;
        let store = Self { db, path };
        store.migrate(MIGRATIONS)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run the migrations this store lacks, all in one transaction.
    pub fn migrate(&self, migrations: &[Migration]) -> Result<u32, StoreError> {
        let target = migrations.len() as u32;
        let current = self.schema_version()?;
        if current > target {
            return Err(StoreError::TooNew { path: self.path.display().to_string(), found: current, supported: target });
        }
        if current == target {
            return Ok(current);
        }
        let tx = self.db.begin_write()?;
        for (i, m) in migrations.iter().enumerate().skip(current as usize) {
            tracing::info!(from = i, to = i + 1, "migrating store schema");
            m(&tx)?;
        }
        tx.open_table(META)?.insert("schema_version", target.to_string().as_str())?;
        tx.commit()?;
        Ok(target)
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let tx = self.db.begin_read()?;
        let t = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        match t.get("schema_version")? {
            None => Ok(0),
            Some(v) => v.value().parse().map_err(|_| StoreError::Corrupt { what: "meta.schema_version".into(), detail: v.value().into() }),
        }
    }

    /// For tests and `store` maintenance: overwrite the recorded schema version.
    pub fn set_schema_version_for_test(&self, v: u32) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?.insert("schema_version", v.to_string().as_str())?;
        tx.commit()?;
        Ok(())
    }

    // ---- TUF ----

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
        let tx = self.db.begin_write()?;
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
        let tx = self.db.begin_write()?;
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

    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        Ok(t.get(sha256)?.map(|v| v.value().to_vec()))
    }

    pub fn has_blob(&self, sha256: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        Ok(t.get(sha256)?.is_some())
    }

    /// Names of the mirrored repositories.
    pub fn tuf_repos(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TUF_STATUS)?;
        t.iter()?.map(|i| i.map(|(k, _)| k.value().to_string()).map_err(Into::into)).collect()
    }

    /// Consistency check used by crash tests and `store check`: every current role's bytes are
    /// present, every served target's blob exists and hashes to its key.
    pub fn check(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_read()?;
        let cur = tx.open_table(TUF_CURRENT)?;
        let meta = tx.open_table(TUF_META)?;
        for item in cur.iter()? {
            let (k, v) = item?;
            let (repo, role) = k.value();
            if meta.get((repo, role, v.value()))?.is_none() {
                return Err(StoreError::Corrupt {
                    what: format!("{repo}/{role}"),
                    detail: format!("current version {} missing", v.value()),
                });
            }
        }
        let targets = tx.open_table(TUF_TARGETS)?;
        let blobs = tx.open_table(BLOBS)?;
        for item in targets.iter()? {
            let (k, v) = item?;
            let st: ServedTarget =
                serde_json::from_str(v.value()).map_err(|e| StoreError::Corrupt { what: "tuf_targets".into(), detail: e.to_string() })?;
            let b = blobs
                .get(st.sha256.as_str())?
                .ok_or_else(|| StoreError::Corrupt { what: format!("target {}", k.value().1), detail: "blob missing".into() })?;
            if sha256_hex(b.value()) != st.sha256 {
                return Err(StoreError::Corrupt { what: format!("blob {}", st.sha256), detail: "content does not match its hash".into() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_store_gets_current_schema_and_reopens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.redb");
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        drop(s);
        assert_eq!(Store::open(&p).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_version_1_store_is_migrated_to_2_keeping_its_data() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.redb");
        {
            let s = Store::open(&p).unwrap();
            s.tuf_commit("r", &TufCommit { files: vec![("root".into(), 1, b"root v1".to_vec())], ..Default::default() }).unwrap();
            // pretend this store was written by a schema-1 trustmirror
            let tx = s.db.begin_write().unwrap();
            tx.delete_table(oci::OCI_MATERIAL).unwrap();
            tx.open_table(META).unwrap().insert("schema_version", "1").unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.tuf_meta("r", "root", 1).unwrap().unwrap(), b"root v1");
        assert!(s.oci_material("sha256:00").unwrap().is_none(), "the new tables exist");
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.redb");
        Store::open(&p).unwrap().set_schema_version_for_test(SCHEMA_VERSION + 1).unwrap();
        let e = Store::open(&p).unwrap_err().to_string();
        assert!(e.contains("newer than this trustmirror understands"), "{e}");
    }

    #[test]
    fn migrations_run_in_order_once() {
        static CALLS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
        fn m4(_: &WriteTransaction) -> Result<(), StoreError> {
            CALLS.lock().unwrap().push(4);
            Ok(())
        }
        fn m5(tx: &WriteTransaction) -> Result<(), StoreError> {
            CALLS.lock().unwrap().push(5);
            tx.open_table(META)?.insert("migrated", "yes")?;
            Ok(())
        }
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path().join("s.redb")).unwrap();
        let migs: &[Migration] = &[migrate_0_to_1, oci::migrate_1_to_2, admission::migrate_2_to_3, tlog::migrate_3_to_4, m4, m5];
        assert_eq!(s.migrate(migs).unwrap(), 6);
        assert_eq!(s.migrate(migs).unwrap(), 6);
        assert_eq!(*CALLS.lock().unwrap(), vec![4, 5]);
        assert_eq!(s.schema_version().unwrap(), 6);
    }

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
