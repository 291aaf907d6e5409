//! The store's one schema: every table, and the migrations that build them. Nothing else in
//! `store/` defines a table, so the modules that read and write them never import each other.
//!
//! The `meta` table holds `schema_version`. [`MIGRATIONS`]`[i]` upgrades a store from version `i`
//! to `i + 1`; opening a store runs the missing ones in a single transaction, and a store written
//! by a newer trustmirror is refused rather than misread.
//!
//! | table | key | value | since |
//! |---|---|---|---|
//! | `meta` | name | text | 1 |
//! | `blobs` | sha256 hex | bytes (content-addressed, deduplicated) | 1 |
//! | `tuf_meta` | (repo, role, version) | verified metadata bytes, as served upstream | 1 |
//! | `tuf_current` | (repo, role) | trusted version of the role | 1 |
//! | `tuf_targets` | (repo, served path) | `ServedTarget` JSON (→ `blobs`) | 1 |
//! | `tuf_status` | repo | `TufStatus` JSON | 1 |
//! | `tlog_checkpoints` | (log id, tree size) | every witnessed checkpoint, cosigned | 1 |
//! | `audit_log` | sequence | `AuditRecord` JSON (append-only) | 1 |
//! | `oci_material_by_repo` | (`registry/repo`, subject digest) | `MaterialRecord` JSON | 5 (`oci_material` by digest: 2–4) |
//! | `oci_tags` | (`registry/repo`, tag) | `TagRecord` JSON | 2 |
//! | `oci_repos` | `registry/repo` | `RepoRecord` JSON (tag-list state for incremental sync) | 2 |
//! | `oci_by_predicate_v5` | (verified predicate type, `registry/repo`, digest) | `()` | 5 (2–4 by digest) |
//! | `exemptions` | id | `Exemption` JSON | 3 |
//! | `oci_etags_by_repo` | (`registry/repo`, subject digest) | the material record's ETag | 5 (3–4 by digest) |
//! | `tlog_state` | log id (hex) | `LogState` JSON: newest witnessed checkpoint, open alarm | 4 |
//! | `tlog_roots` | (log id, size) | root hex: witnessed, or proven consistent with a witnessed one | 4 |
//! | `tlog_alarms` | sequence | `Alarm` JSON: both signed checkpoints and the proof, kept forever | 4 |
//! | `tlog_proofs` | (log id, old size, new size) | the consistency proof a witnessed extension was accepted with (hex hashes, `,`-separated) | 6 |
//! | `bundle_imports` | exporter | `ImportLedger` JSON: last imported air-gap bundle (sequence, manifest digest, time) | 6 |

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::StoreError;

pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
pub const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
pub const TUF_META: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("tuf_meta");
pub const TUF_CURRENT: TableDefinition<(&str, &str), u64> = TableDefinition::new("tuf_current");
pub const TUF_TARGETS: TableDefinition<(&str, &str), &str> = TableDefinition::new("tuf_targets");
pub const TUF_STATUS: TableDefinition<&str, &str> = TableDefinition::new("tuf_status");
pub const TLOG_CHECKPOINTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("tlog_checkpoints");
pub const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
/// Schema 2–4 (keyed by digest alone); replaced by [`OCI_MATERIAL`] in 5.
const OCI_MATERIAL_V2: TableDefinition<&str, &str> = TableDefinition::new("oci_material");
pub const OCI_MATERIAL: TableDefinition<(&str, &str), &str> = TableDefinition::new("oci_material_by_repo");
pub const OCI_TAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("oci_tags");
pub const OCI_REPOS: TableDefinition<&str, &str> = TableDefinition::new("oci_repos");
const OCI_BY_PREDICATE_V2: TableDefinition<(&str, &str), ()> = TableDefinition::new("oci_by_predicate");
pub const OCI_BY_PREDICATE: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("oci_by_predicate_v5");
pub const EXEMPTIONS: TableDefinition<u64, &str> = TableDefinition::new("exemptions");
const OCI_ETAGS_V3: TableDefinition<&str, &str> = TableDefinition::new("oci_etags");
pub const OCI_ETAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("oci_etags_by_repo");
pub const TLOG_STATE: TableDefinition<&str, &str> = TableDefinition::new("tlog_state");
pub const TLOG_ROOTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("tlog_roots");
pub const TLOG_ALARMS: TableDefinition<u64, &str> = TableDefinition::new("tlog_alarms");
pub const TLOG_PROOFS: TableDefinition<(&str, u64, u64), &str> = TableDefinition::new("tlog_proofs");
pub const BUNDLE_IMPORTS: TableDefinition<&str, &str> = TableDefinition::new("bundle_imports");

/// The schema this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub type Migration = fn(&WriteTransaction) -> Result<(), StoreError>;

/// `MIGRATIONS[i]` takes a store from schema `i` to `i + 1`.
pub const MIGRATIONS: &[Migration] = &[migrate_0_to_1, migrate_1_to_2, migrate_2_to_3, migrate_3_to_4, migrate_4_to_5, migrate_5_to_6];

/// TUF mirror, checkpoints, audit log.
pub fn migrate_0_to_1(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(BLOBS)?;
    tx.open_table(TUF_META)?;
    tx.open_table(TUF_CURRENT)?;
    tx.open_table(TUF_TARGETS)?;
    tx.open_table(TUF_STATUS)?;
    tx.open_table(TLOG_CHECKPOINTS)?;
    tx.open_table(AUDIT_LOG)?;
    Ok(())
}

/// Mirrored OCI material.
pub fn migrate_1_to_2(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(OCI_MATERIAL_V2)?;
    tx.open_table(OCI_TAGS)?;
    tx.open_table(OCI_REPOS)?;
    tx.open_table(OCI_BY_PREDICATE_V2)?;
    Ok(())
}

/// Break-glass exemptions; material ETags (computed for the records already held).
pub fn migrate_2_to_3(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(EXEMPTIONS)?;
    let mut etags = tx.open_table(OCI_ETAGS_V3)?;
    let m = tx.open_table(OCI_MATERIAL_V2)?;
    for i in m.iter()? {
        let (k, v) = i?;
        let r: crate::core::material::MaterialRecord =
            serde_json::from_str(v.value()).map_err(|e| StoreError::Corrupt { what: "oci_material".into(), detail: e.to_string() })?;
        etags.insert(k.value(), r.etag().as_str())?;
    }
    Ok(())
}

/// The witnessed transparency-log state.
pub fn migrate_3_to_4(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(TLOG_STATE)?;
    tx.open_table(TLOG_ROOTS)?;
    tx.open_table(TLOG_ALARMS)?;
    tx.open_table(TLOG_CHECKPOINTS)?;
    Ok(())
}

/// Material per (repository, digest): a manifest copied into another repository gets a record of
/// its own instead of rewriting the original's. Records carry verified evidence from now on;
/// existing ones keep their items (without evidence: re-verified when next decided or synced).
pub fn migrate_4_to_5(tx: &WriteTransaction) -> Result<(), StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt { what: "oci_material".into(), detail: e.to_string() };
    let mut old: Vec<(String, String)> = vec![];
    {
        let m = tx.open_table(OCI_MATERIAL_V2)?;
        for i in m.iter()? {
            let (k, v) = i?;
            old.push((k.value().to_string(), v.value().to_string()));
        }
    }
    {
        let mut m = tx.open_table(OCI_MATERIAL)?;
        let mut etags = tx.open_table(OCI_ETAGS)?;
        tx.open_table(OCI_BY_PREDICATE)?;
        for (digest, json) in &old {
            let r: crate::core::material::MaterialRecord = serde_json::from_str(json).map_err(corrupt)?;
            m.insert((r.repository.as_str(), digest.as_str()), json.as_str())?;
            etags.insert((r.repository.as_str(), digest.as_str()), r.etag().as_str())?;
        }
    }
    tx.delete_table(OCI_MATERIAL_V2)?;
    tx.delete_table(OCI_ETAGS_V3)?;
    tx.delete_table(OCI_BY_PREDICATE_V2)?;
    Ok(())
}

/// Air-gap bundles: the witness keeps the consistency proofs it accepted extensions with (so a
/// bundle can carry the history's proofs without the log), and the import ledger.
pub fn migrate_5_to_6(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(TLOG_PROOFS)?;
    tx.open_table(BUNDLE_IMPORTS)?;
    Ok(())
}
