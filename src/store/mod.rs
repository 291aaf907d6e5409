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
//! One schema for the whole file: every table and migration is in [`schema`]. The other modules
//! own the operations on their tables: [`tuf`] (mirrored TUF repositories) and [`tuf_view`] (their
//! read view), [`oci`] (image material, tags), [`admission`] (exemptions, audit log, material
//! ETags), [`tlog`] (the witnessed logs).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::core::digest::sha256_hex;

pub mod admission;
pub mod bundle;
pub mod oci;
pub mod schema;
pub mod tlog;
pub mod tuf;
pub mod tuf_view;

pub use schema::{MIGRATIONS, Migration, SCHEMA_VERSION};
pub use tuf::{KEEP_VERSIONS, ServedTarget, TufCommit, TufState, TufStatus};
pub use tuf_view::{RepoView, RoleView, repo_view};

use schema::*;

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

pub struct Store {
    pub(crate) db: Database,
    path: PathBuf,
    /// A scratch store (an import's staging area): commits are not synced to disk, since a crash
    /// throws the whole store away anyway.
    ephemeral: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// The store's page cache: 16 MiB unless `TRUSTMIRROR_STORE_CACHE_MB` says otherwise. Reads
/// beyond it come from the operating system's page cache; a larger one mostly grows the
/// process (measured: 64 MiB cost 80 MB of RSS and no latency on a 10,000-digest store).
fn cache_size() -> usize {
    std::env::var("TRUSTMIRROR_STORE_CACHE_MB").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(16) * 1024 * 1024
}

impl Store {
    /// Open (creating if missing) and migrate to [`SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open { path: p.clone(), detail: e.to_string() })?;
        }
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open { path: p.clone(), detail: e.to_string() };
        if !path.exists() {
            Self::create(&path).map_err(|e| open_err(&e))?;
        }
        let db = Self::builder().create(&path).map_err(|e| open_err(&e))?;
        let store = Self { db, path, ephemeral: false };
        store.migrate(MIGRATIONS)?;
        Ok(store)
    }

    /// A scratch store whose commits are not synced (staging areas thrown away on any failure).
    pub fn open_ephemeral(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let mut s = Self::open(path)?;
        s.ephemeral = true;
        Ok(s)
    }

    /// A write transaction (not synced to disk for an ephemeral store).
    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction, redb::TransactionError> {
        let mut tx = self.db.begin_write()?;
        if self.ephemeral {
            let _ = tx.set_durability(redb::Durability::None);
        }
        Ok(tx)
    }

    fn builder() -> redb::Builder {
        let mut b = Database::builder();
        b.set_cache_size(cache_size()).set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
        b
    }

    /// A new store appears whole or not at all: it is created and migrated under a temporary
    /// name, synced, and linked into place (a process killed while creating it leaves no
    /// half-written file at `path` for the next start to trip over; two processes creating the
    /// same store at once end up sharing one).
    fn create(path: &Path) -> Result<(), StoreError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("store");
        let tmp = path.with_file_name(format!(".{name}.creating-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let res = (|| {
            {
                let db = Self::builder().create(&tmp).map_err(|e| StoreError::Db(e.to_string()))?;
                Self { db, path: tmp.clone(), ephemeral: false }.migrate(MIGRATIONS)?;
            }
            let io = |e: std::io::Error| StoreError::Db(e.to_string());
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {} // another process won
                Err(e) => return Err(io(e)),
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io)?;
            }
            Ok(())
        })();
        let _ = std::fs::remove_file(&tmp);
        res
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
        let tx = self.begin_write()?;
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
        let tx = self.begin_write()?;
        tx.open_table(META)?.insert("schema_version", v.to_string().as_str())?;
        tx.commit()?;
        Ok(())
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
    use redb::WriteTransaction;

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
            tx.delete_table(schema::OCI_MATERIAL).unwrap();
            tx.open_table(META).unwrap().insert("schema_version", "1").unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.tuf_meta("r", "root", 1).unwrap().unwrap(), b"root v1");
        assert!(s.oci_material("r", "sha256:00").unwrap().is_none(), "the new tables exist");
    }

    #[test]
    fn a_version_4_store_keeps_its_material_under_the_repository() {
        use redb::TableDefinition;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.redb");
        let rec = crate::core::material::MaterialRecord {
            subject: "sha256:aa".into(),
            repository: "reg/myorg/app".into(),
            media_type: "m".into(),
            children: vec![],
            items: vec![],
            synced_at: jiff::Timestamp::UNIX_EPOCH,
            sources: Default::default(),
            trust: "t".into(),
        };
        {
            // a schema-4 store: material keyed by digest alone
            let s = Store::open(&p).unwrap();
            let tx = s.db.begin_write().unwrap();
            {
                let old: TableDefinition<&str, &str> = TableDefinition::new("oci_material");
                tx.open_table(old).unwrap().insert("sha256:aa", serde_json::to_string(&rec).unwrap().as_str()).unwrap();
                let e: TableDefinition<&str, &str> = TableDefinition::new("oci_etags");
                tx.open_table(e).unwrap();
                let i: TableDefinition<(&str, &str), ()> = TableDefinition::new("oci_by_predicate");
                tx.open_table(i).unwrap();
            }
            tx.open_table(META).unwrap().insert("schema_version", "4").unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.oci_material("reg/myorg/app", "sha256:aa").unwrap().unwrap(), rec);
        assert_eq!(s.oci_etag("reg/myorg/app", "sha256:aa").unwrap().unwrap(), rec.etag());
        assert!(s.oci_material("reg/other/app", "sha256:aa").unwrap().is_none());
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
        let mut migs: Vec<Migration> = MIGRATIONS.to_vec();
        migs.extend([m4 as Migration, m5 as Migration]);
        let migs = migs.as_slice();
        let base = MIGRATIONS.len() as u32;
        assert_eq!(s.migrate(migs).unwrap(), base + 2);
        assert_eq!(s.migrate(migs).unwrap(), base + 2);
        assert_eq!(*CALLS.lock().unwrap(), vec![4, 5]);
        assert_eq!(s.schema_version().unwrap(), base + 2);
    }
}
