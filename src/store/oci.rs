//! Mirrored OCI signature material: per (repository, image digest), every signature, attestation
//! and bundle found for it, each verified on the way in (with the evidence verification
//! established) or recorded as rejected with its reason, content-addressed in `blobs`; tag →
//! digest resolutions with their time.
//!
//! | table | key | value |
//! |---|---|---|
//! | `oci_material` | subject digest | [`MaterialRecord`] JSON |
//! | `oci_tags` | (`registry/repo`, tag) | [`TagRecord`] JSON |
//! | `oci_repos` | `registry/repo` | [`RepoRecord`] JSON (tag-list state for incremental sync) |
//! | `oci_by_predicate` | (predicate type, subject digest) | `()` — the index admission reads |
//!
//! An ingested digest is one transaction: its record, its blobs and its index rows appear
//! together or not at all.

use std::collections::BTreeSet;

use jiff::Timestamp;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::schema::{BLOBS, OCI_BY_PREDICATE, OCI_ETAGS, OCI_MATERIAL, OCI_REPOS, OCI_TAGS};
use super::{Store, StoreError};

pub use crate::core::material::{Item, ItemKind, ItemStatus, MaterialRecord};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: String,
    pub resolved_at: Timestamp,
}

/// Last-seen state of a repository, for tag-list diffs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    pub tags: BTreeSet<String>,
    pub synced_at: Option<Timestamp>,
    pub full_check_at: Option<Timestamp>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what: what.into(), detail: e.to_string() }
}

/// A mirrored record in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaterialSummary {
    pub repository: String,
    pub digest: String,
    pub etag: String,
    pub synced_at: Timestamp,
}

impl Store {
    /// Store one (repository, digest)'s material: record, blobs and predicate index, in one
    /// transaction.
    pub fn oci_put_material(&self, rec: &MaterialRecord, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let (repo, digest) = (rec.repository.as_str(), rec.subject.as_str());
        let tx = self.begin_write()?;
        {
            let mut b = tx.open_table(BLOBS)?;
            for (sha, bytes) in blobs {
                if b.get(sha.as_str())?.is_none() {
                    b.insert(sha.as_str(), bytes.as_slice())?;
                }
            }
            for i in &rec.items {
                for sha in i.bundle.iter().chain(i.payload.iter()) {
                    if b.get(sha.as_str())?.is_none() {
                        return Err(corrupt(&format!("material {repo}@{digest}"), format!("blob {sha} not staged")));
                    }
                }
            }
            let mut idx = tx.open_table(OCI_BY_PREDICATE)?;
            let mut m = tx.open_table(OCI_MATERIAL)?;
            if let Some(old) = m.get((repo, digest))? {
                let old: MaterialRecord = serde_json::from_str(old.value()).map_err(|e| corrupt("oci_material", e))?;
                for pt in old.items.iter().filter_map(|i| i.verified_predicate_type()) {
                    idx.remove((pt, repo, digest))?;
                }
            }
            for pt in rec.items.iter().filter_map(|i| i.verified_predicate_type()) {
                idx.insert((pt, repo, digest), ())?;
            }
            m.insert((repo, digest), serde_json::to_string(rec).expect("serializable").as_str())?;
            tx.open_table(OCI_ETAGS)?.insert((repo, digest), rec.etag().as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The record of `digest` as mirrored from repository `repo` (`registry/repo`).
    pub fn oci_material(&self, repo: &str, digest: &str) -> Result<Option<MaterialRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_MATERIAL)?;
        t.get((repo, digest))?.map(|v| serde_json::from_str(v.value()).map_err(|e| corrupt("oci_material", e))).transpose()
    }

    /// Every repository's record of `digest`.
    pub fn oci_records(&self, digest: &str) -> Result<Vec<MaterialRecord>, StoreError> {
        Ok(self
            .oci_list()?
            .into_iter()
            .filter(|s| s.digest == digest)
            .filter_map(|s| self.oci_material(&s.repository, &s.digest).ok().flatten())
            .collect())
    }

    pub fn oci_has_material(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(OCI_MATERIAL)?.get((repo, digest))?.is_some())
    }

    /// Every mirrored (repository, digest) with its record's ETag and sync time.
    pub fn oci_list(&self) -> Result<Vec<MaterialSummary>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_MATERIAL)?;
        t.iter()?
            .map(|i| {
                let (k, v) = i?;
                let (repo, digest) = k.value();
                let r: MaterialRecord = serde_json::from_str(v.value()).map_err(|e| corrupt("oci_material", e))?;
                Ok(MaterialSummary { repository: repo.to_string(), digest: digest.to_string(), etag: r.etag(), synced_at: r.synced_at })
            })
            .collect()
    }

    /// (repository, digest) of records with verified material of a predicate type.
    pub fn oci_subjects_with_predicate(&self, predicate_type: &str) -> Result<Vec<(String, String)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_BY_PREDICATE)?;
        let mut out = vec![];
        for i in t.range((predicate_type, "", "")..)? {
            let (k, _) = i?;
            let (pt, repo, digest) = k.value();
            if pt != predicate_type {
                break;
            }
            out.push((repo.to_string(), digest.to_string()));
        }
        Ok(out)
    }

    pub fn oci_put_tag(&self, repo: &str, tag: &str, rec: &TagRecord) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        tx.open_table(OCI_TAGS)?.insert((repo, tag), serde_json::to_string(rec).expect("serializable").as_str())?;
        tx.commit()?;
        Ok(())
    }

    pub fn oci_tag(&self, repo: &str, tag: &str) -> Result<Option<TagRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_TAGS)?;
        t.get((repo, tag))?.map(|v| serde_json::from_str(v.value()).map_err(|e| corrupt("oci_tags", e))).transpose()
    }

    pub fn oci_tags(&self) -> Result<Vec<(String, String, TagRecord)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_TAGS)?;
        t.iter()?
            .map(|i| {
                let (k, v) = i?;
                let (r, tag) = k.value();
                Ok((r.to_string(), tag.to_string(), serde_json::from_str(v.value()).map_err(|e| corrupt("oci_tags", e))?))
            })
            .collect()
    }

    /// Record a repository's tag-list state (and drop resolutions of tags that disappeared).
    pub fn oci_put_repo(&self, repo: &str, rec: &RepoRecord) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut tags = tx.open_table(OCI_TAGS)?;
            let gone: Vec<String> = tags
                .range((repo, "")..)?
                .map_while(|i| i.ok().filter(|(k, _)| k.value().0 == repo).map(|(k, _)| k.value().1.to_string()))
                .filter(|t| !rec.tags.contains(t))
                .collect();
            for t in gone {
                tags.remove((repo, t.as_str()))?;
            }
            tx.open_table(OCI_REPOS)?.insert(repo, serde_json::to_string(rec).expect("serializable").as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How many repositories have completed at least one sync (readiness of a webhook that
    /// decides from mirrored material).
    pub fn oci_repos_synced(&self) -> Result<usize, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_REPOS)?;
        let mut n = 0;
        for i in t.iter()? {
            let (_, v) = i?;
            let r: RepoRecord = serde_json::from_str(v.value()).map_err(|e| corrupt("oci_repos", e))?;
            n += r.synced_at.is_some() as usize;
        }
        Ok(n)
    }

    pub fn oci_repo(&self, repo: &str) -> Result<Option<RepoRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_REPOS)?;
        t.get(repo)?.map(|v| serde_json::from_str(v.value()).map_err(|e| corrupt("oci_repos", e))).transpose()
    }
}
