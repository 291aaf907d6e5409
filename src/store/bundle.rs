//! The store's side of air-gap bundles: the import ledger (per exporter, the last bundle
//! imported: rollback and replay protection), and the one-transaction merge of a verified
//! staging store into this one.
//!
//! | table | |
//! |---|---|
//! | `bundle_imports` | exporter → [`ImportLedger`] JSON |
//!
//! An import is verified entirely in a staging store (seeded from this one, so TUF and the
//! witness see the same rollback floors), then [`Store::merge_verified`] copies what the staging
//! store holds into this store in a single write transaction — or nothing, if any guard fails.
//! The guards keep everything monotonic even if this store moved on while the bundle was being
//! verified: a TUF role's trusted version and a log's witnessed size never go down.

use jiff::Timestamp;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::schema::*;
use super::{Store, StoreError};

/// The last bundle imported from one exporter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportLedger {
    pub exporter: String,
    pub sequence: u64,
    /// The bundle manifest's digest.
    pub digest: String,
    pub imported_at: Timestamp,
}

/// What a merge wrote, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeCounts {
    pub tuf_metadata: usize,
    pub tuf_targets: usize,
    pub materials: usize,
    pub tags: usize,
    pub blobs: usize,
    pub checkpoints: usize,
    /// Rows this store already held newer (left as they were).
    pub kept_newer: usize,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what: what.into(), detail: e.to_string() }
}

impl Store {
    pub fn bundle_ledger(&self, exporter: &str) -> Result<Option<ImportLedger>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BUNDLE_IMPORTS)?;
        t.get(exporter)?.map(|v| serde_json::from_str(v.value()).map_err(|e| corrupt("bundle_imports", e))).transpose()
    }

    pub fn bundle_ledgers(&self) -> Result<Vec<ImportLedger>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BUNDLE_IMPORTS)?;
        t.iter()?
            .map(|i| {
                i.map_err(StoreError::from).and_then(|(_, v)| serde_json::from_str(v.value()).map_err(|e| corrupt("bundle_imports", e)))
            })
            .collect()
    }

    /// The exporter's own record of the last bundle it made (its next sequence follows it).
    pub fn bundle_record_export(&self, ledger: &ImportLedger) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let json = serde_json::to_string(ledger).expect("json");
            tx.open_table(BUNDLE_IMPORTS)?.insert(ledger.exporter.as_str(), json.as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Seed a staging store with what verification must see of this one: the TUF state of
    /// `repo` (rollback floors), the witnessed logs (history, roots, states) and the material
    /// records of the given (repository, digest) pairs (retained items).
    pub fn seed_staging(&self, staging: &Store, repo: &str, materials: &[(String, String)]) -> Result<(), StoreError> {
        let rtx = self.db.begin_read()?;
        let wtx = staging.begin_write()?;
        {
            copy_prefix(&rtx.open_table(TUF_META)?, &mut wtx.open_table(TUF_META)?, |k: &(&str, &str, u64)| k.0 == repo)?;
            copy_prefix(&rtx.open_table(TUF_CURRENT)?, &mut wtx.open_table(TUF_CURRENT)?, |k: &(&str, &str)| k.0 == repo)?;
            copy_all(&rtx.open_table(TLOG_STATE)?, &mut wtx.open_table(TLOG_STATE)?)?;
            copy_all(&rtx.open_table(TLOG_CHECKPOINTS)?, &mut wtx.open_table(TLOG_CHECKPOINTS)?)?;
            copy_all(&rtx.open_table(TLOG_ROOTS)?, &mut wtx.open_table(TLOG_ROOTS)?)?;
            let m = rtx.open_table(OCI_MATERIAL)?;
            let mut wm = wtx.open_table(OCI_MATERIAL)?;
            let blobs = rtx.open_table(BLOBS)?;
            let mut wb = wtx.open_table(BLOBS)?;
            for (r, d) in materials {
                if let Some(v) = m.get((r.as_str(), d.as_str()))? {
                    let rec: crate::core::material::MaterialRecord =
                        serde_json::from_str(v.value()).map_err(|e| corrupt("oci_material", e))?;
                    for sha in rec.items.iter().flat_map(|i| i.bundle.iter().chain(i.payload.iter())) {
                        if let Some(b) = blobs.get(sha.as_str())? {
                            wb.insert(sha.as_str(), b.value())?;
                        }
                    }
                    wm.insert((r.as_str(), d.as_str()), v.value())?;
                }
            }
        }
        wtx.commit()?;
        Ok(())
    }

    /// Copy everything a verified staging store holds into this store, in one transaction, and
    /// record the import in the ledger. TUF roles and witnessed logs only move forward: a row
    /// this store holds newer is kept (counted in `kept_newer`).
    pub fn merge_verified(&self, staging: &Store, repo: &str, ledger: &ImportLedger) -> Result<MergeCounts, StoreError> {
        let mut c = MergeCounts::default();
        let rtx = staging.db.begin_read()?;
        let wtx = self.begin_write()?;
        {
            // TUF: metadata versions are immutable; the current pointer only increases
            let mut wm = wtx.open_table(TUF_META)?;
            for i in rtx.open_table(TUF_META)?.iter()? {
                let (k, v) = i?;
                let key = k.value();
                if key.0 == repo && wm.get(key)?.is_none() {
                    wm.insert(key, v.value())?;
                    c.tuf_metadata += 1;
                }
            }
            let mut wc = wtx.open_table(TUF_CURRENT)?;
            for i in rtx.open_table(TUF_CURRENT)?.iter()? {
                let (k, v) = i?;
                let key = k.value();
                if key.0 != repo {
                    continue;
                }
                let mine = wc.get(key)?.map(|x| x.value());
                if mine.is_none_or(|m| m < v.value()) {
                    wc.insert(key, v.value())?;
                } else if mine.is_some_and(|m| m > v.value()) {
                    c.kept_newer += 1;
                }
            }
            let mut wt = wtx.open_table(TUF_TARGETS)?;
            for i in rtx.open_table(TUF_TARGETS)?.iter()? {
                let (k, v) = i?;
                if k.value().0 == repo {
                    wt.insert(k.value(), v.value())?;
                    c.tuf_targets += 1;
                }
            }
            let mut ws = wtx.open_table(TUF_STATUS)?;
            if let Some(v) = rtx.open_table(TUF_STATUS)?.get(repo)? {
                ws.insert(repo, v.value())?;
            }
            // blobs are content-addressed
            let mut wb = wtx.open_table(BLOBS)?;
            for i in rtx.open_table(BLOBS)?.iter()? {
                let (k, v) = i?;
                if wb.get(k.value())?.is_none() {
                    wb.insert(k.value(), v.value())?;
                    c.blobs += 1;
                }
            }
            // material, with its indexes
            let mut wmat = wtx.open_table(OCI_MATERIAL)?;
            let mut we = wtx.open_table(OCI_ETAGS)?;
            let mut wp = wtx.open_table(OCI_BY_PREDICATE)?;
            for i in rtx.open_table(OCI_MATERIAL)?.iter()? {
                let (k, v) = i?;
                let (r, d) = k.value();
                let rec: crate::core::material::MaterialRecord = serde_json::from_str(v.value()).map_err(|e| corrupt("oci_material", e))?;
                wmat.insert((r, d), v.value())?;
                we.insert((r, d), rec.etag().as_str())?;
                for it in &rec.items {
                    if let (Some(pt), crate::core::material::ItemStatus::Verified { .. }) = (&it.predicate_type, &it.status) {
                        wp.insert((pt.as_str(), r, d), ())?;
                    }
                }
                c.materials += 1;
            }
            let mut wtag = wtx.open_table(OCI_TAGS)?;
            for i in rtx.open_table(OCI_TAGS)?.iter()? {
                let (k, v) = i?;
                let newer = |x: &str| serde_json::from_str::<super::oci::TagRecord>(x).ok().map(|t| t.resolved_at);
                let mine = wtag.get(k.value())?.and_then(|x| newer(x.value()));
                if mine.is_none_or(|m| Some(m) <= newer(v.value())) {
                    wtag.insert(k.value(), v.value())?;
                    c.tags += 1;
                } else {
                    c.kept_newer += 1;
                }
            }
            // witnessed logs: history rows are immutable; the state moves only forward
            let mut wcp = wtx.open_table(TLOG_CHECKPOINTS)?;
            for i in rtx.open_table(TLOG_CHECKPOINTS)?.iter()? {
                let (k, v) = i?;
                if wcp.get(k.value())?.is_none() {
                    wcp.insert(k.value(), v.value())?;
                    c.checkpoints += 1;
                }
            }
            let mut wr = wtx.open_table(TLOG_ROOTS)?;
            for i in rtx.open_table(TLOG_ROOTS)?.iter()? {
                let (k, v) = i?;
                if wr.get(k.value())?.is_none() {
                    wr.insert(k.value(), v.value())?;
                }
            }
            let mut wpf = wtx.open_table(TLOG_PROOFS)?;
            for i in rtx.open_table(TLOG_PROOFS)?.iter()? {
                let (k, v) = i?;
                wpf.insert(k.value(), v.value())?;
            }
            let mut wst = wtx.open_table(TLOG_STATE)?;
            for i in rtx.open_table(TLOG_STATE)?.iter()? {
                let (k, v) = i?;
                let parse = |x: &str| serde_json::from_str::<super::tlog::LogState>(x).map_err(|e| corrupt("tlog_state", e));
                let theirs = parse(v.value())?;
                let size = |s: &super::tlog::LogState| s.latest.as_ref().map(|l| l.size);
                let mine = wst.get(k.value())?.map(|x| parse(x.value())).transpose()?.map(|m| (size(&m), m.alarm.is_some()));
                match mine {
                    // a log this store has under alarm stays so
                    Some((_, true)) => c.kept_newer += 1,
                    Some((m, false)) if m > size(&theirs) => c.kept_newer += 1,
                    _ => {
                        wst.insert(k.value(), v.value())?;
                    }
                }
            }
            let json = serde_json::to_string(ledger).expect("json");
            wtx.open_table(BUNDLE_IMPORTS)?.insert(ledger.exporter.as_str(), json.as_str())?;
        }
        wtx.commit()?;
        Ok(c)
    }
}

fn copy_all<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &impl ReadableTable<K, V>,
    to: &mut redb::Table<'_, K, V>,
) -> Result<(), StoreError>
where
    for<'a> K::SelfType<'a>: Clone,
{
    for i in from.iter()? {
        let (k, v) = i?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

fn copy_prefix<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &impl ReadableTable<K, V>,
    to: &mut redb::Table<'_, K, V>,
    keep: impl for<'a> Fn(&K::SelfType<'a>) -> bool,
) -> Result<(), StoreError> {
    for i in from.iter()? {
        let (k, v) = i?;
        let key = k.value();
        if keep(&key) {
            to.insert(key, v.value())?;
        }
    }
    Ok(())
}
