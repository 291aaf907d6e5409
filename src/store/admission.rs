//! Admission state: break-glass exemptions, the append-only audit log, and per-digest
//! material ETags (so the admission cache can key on them without parsing records).
//!
//! | table | key | value |
//! |---|---|---|
//! | `exemptions` | id | [`Exemption`] JSON |
//! | `audit_log` | sequence | [`AuditRecord`] JSON (append-only; existed since schema 1) |
//! | `oci_etags_by_repo` | (repository, subject digest) | the material record's ETag |

use jiff::Timestamp;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::schema::{AUDIT_LOG, EXEMPTIONS, OCI_ETAGS};
use super::{Store, StoreError};
use crate::core::policy::{Mode, Violation};

/// What a break-glass exemption covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "scope", content = "value")]
pub enum Scope {
    Namespace(String),
    Digest(String),
}

/// A time-limited exemption from enforcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemption {
    pub id: u64,
    #[serde(flatten)]
    pub scope: Scope,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default)]
    pub revoked: bool,
}

impl Exemption {
    pub fn active(&self, now: Timestamp) -> bool {
        !self.revoked && now < self.expires_at
    }
}

/// One admission decision, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: Timestamp,
    pub uid: String,
    pub namespace: String,
    /// `Pod/name`, `Deployment/name`, …
    pub object: String,
    pub image: String,
    pub digest: Option<String>,
    pub allowed: bool,
    /// The mode that decided (`enforce` for denials; `warn`/`audit` for allowed violations).
    pub mode: Option<Mode>,
    pub violations: Vec<Violation>,
    /// Break-glass exemption used, if any.
    pub exemption: Option<u64>,
    /// What the decision rested on besides the image's own evidence (a verification summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what: what.into(), detail: e.to_string() }
}

impl Store {
    /// Add an exemption; returns its id.
    pub fn exemption_add(&self, mut e: Exemption) -> Result<u64, StoreError> {
        let tx = self.begin_write()?;
        let id;
        {
            let mut t = tx.open_table(EXEMPTIONS)?;
            id = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            e.id = id;
            t.insert(id, serde_json::to_string(&e).expect("json").as_str())?;
        }
        tx.commit()?;
        Ok(id)
    }

    pub fn exemption_revoke(&self, id: u64) -> Result<bool, StoreError> {
        let tx = self.begin_write()?;
        let found;
        {
            let mut t = tx.open_table(EXEMPTIONS)?;
            let cur = t.get(id)?.map(|v| v.value().to_string());
            found = cur.is_some();
            if let Some(c) = cur {
                let mut e: Exemption = serde_json::from_str(&c).map_err(|e| corrupt("exemptions", e))?;
                e.revoked = true;
                t.insert(id, serde_json::to_string(&e).expect("json").as_str())?;
            }
        }
        tx.commit()?;
        Ok(found)
    }

    pub fn exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(EXEMPTIONS)?;
        t.iter()?
            .map(|i| i.map_err(StoreError::from).and_then(|(_, v)| serde_json::from_str(v.value()).map_err(|e| corrupt("exemptions", e))))
            .collect()
    }

    /// Append records to the audit log in one transaction.
    pub fn audit_append(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self.begin_write()?;
        {
            let mut t = tx.open_table(AUDIT_LOG)?;
            let first = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            for (seq, r) in (first..).zip(records) {
                t.insert(seq, serde_json::to_vec(r).expect("json").as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Audit records at or after `since`, oldest first.
    pub fn audit_since(&self, since: Timestamp) -> Result<Vec<AuditRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(AUDIT_LOG)?;
        let mut out = vec![];
        for i in t.iter()? {
            let (_, v) = i?;
            let r: AuditRecord = serde_json::from_slice(v.value()).map_err(|e| corrupt("audit_log", e))?;
            if r.time >= since {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The ETag of (repository, digest)'s material record: what the decision cache keys on.
    pub fn oci_etag(&self, repo: &str, digest: &str) -> Result<Option<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OCI_ETAGS)?;
        Ok(t.get((repo, digest))?.map(|v| v.value().to_string()))
    }
}
