//! Witnessed transparency-log state.
//!
//! | table | key | value |
//! |---|---|---|
//! | `tlog_state` | log id (hex) | [`LogState`] JSON: newest witnessed checkpoint (cosigned), open alarm |
//! | `tlog_checkpoints` | (log id, size) | every witnessed checkpoint, cosigned (existed since schema 1) |
//! | `tlog_roots` | (log id, size) | root hex: witnessed, or proven consistent with a witnessed one (bundle checkpoints) |
//! | `tlog_alarms` | sequence | [`Alarm`] JSON: both signed checkpoints and the proof, kept forever |
//!
//! Accepting a checkpoint is a compare-and-set on the witnessed size inside one write
//! transaction (tlog-witness requires it: two concurrent submissions must not roll back).

use jiff::Timestamp;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::schema::{TLOG_ALARMS, TLOG_CHECKPOINTS, TLOG_PROOFS, TLOG_ROOTS, TLOG_STATE};
use super::{Store, StoreError};
use crate::core::tlog::history::TlogFact;
use crate::core::tlog::{Hash, HistoryVerdict, TlogErrorKind, Verified, against_history};

/// Evidence of log misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: u64,
    pub log: String,
    pub kind: TlogErrorKind,
    pub detail: String,
    pub detected_at: Timestamp,
    /// The witnessed checkpoint (signed note, cosigned).
    pub witnessed: String,
    /// The conflicting checkpoint, signed by the log.
    pub conflicting: String,
    /// The consistency proof the log offered (hex), if any.
    pub proof: Vec<String>,
    pub resolved: Option<Resolution>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub at: Timestamp,
    pub by: String,
    pub reason: String,
}

/// A log's witnessed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    pub log: String,
    pub base_url: String,
    /// The newest witnessed checkpoint (the log's signature and the witness's cosignature).
    pub latest: Option<Verified>,
    pub witnessed_at: Option<Timestamp>,
    pub last_sync: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Open alarm: the log is untrusted until an operator resolves it.
    pub alarm: Option<u64>,
}

impl LogState {
    pub fn new(log: &str, base_url: &str) -> Self {
        Self {
            log: log.into(),
            base_url: base_url.into(),
            latest: None,
            witnessed_at: None,
            last_sync: None,
            last_error: None,
            alarm: None,
        }
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what: what.into(), detail: e.to_string() }
}

/// Outcome of [`Store::tlog_accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    Stored,
    /// Someone witnessed another size meanwhile (tlog-witness 409): the current size.
    Conflict(u64),
}

impl Store {
    pub fn tlog_state(&self, log: &str) -> Result<Option<LogState>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TLOG_STATE)?;
        t.get(log)?.map(|v| serde_json::from_str(v.value()).map_err(|e| corrupt("tlog_state", e))).transpose()
    }

    /// What the witnessed history says of checkpoint (`size`, `root`) of `log`.
    pub fn tlog_fact(&self, log: &str, size: u64, root: &Hash) -> Result<TlogFact, StoreError> {
        let Some(st) = self.tlog_state(log)? else {
            return Ok(TlogFact { verdict: HistoryVerdict::UnknownLog { log: log.into() }, witnessed_note: None });
        };
        let known = self.tlog_root(log, size)?;
        let alarm = st.alarm.map(|a| format!("alarm #{a} is open (trustmirror tlog status)"));
        Ok(TlogFact {
            verdict: against_history(size, root, known, st.latest.as_ref().map(|l| l.size), alarm.as_deref()),
            witnessed_note: st.latest.map(|l| l.text),
        })
    }

    /// [`Store::tlog_fact`] of each checkpoint (log, size, root) a bundle cites.
    pub fn tlog_facts<'a>(
        &self,
        cps: impl IntoIterator<Item = (&'a str, u64, &'a Hash)>,
    ) -> Result<std::collections::BTreeMap<(String, u64), TlogFact>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for (log, size, root) in cps {
            let (log, size) = (&log.to_string(), &size);
            if let std::collections::btree_map::Entry::Vacant(e) = out.entry((log.clone(), *size)) {
                e.insert(self.tlog_fact(log, *size, root)?);
            }
        }
        Ok(out)
    }

    pub fn tlog_states(&self) -> Result<Vec<LogState>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TLOG_STATE)?;
        t.iter()?
            .map(|i| i.map_err(StoreError::from).and_then(|(_, v)| serde_json::from_str(v.value()).map_err(|e| corrupt("tlog_state", e))))
            .collect()
    }

    /// Record sync bookkeeping (time, error) without touching the witnessed checkpoint.
    pub fn tlog_note(&self, log: &str, base_url: &str, at: Timestamp, error: Option<String>) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut t = tx.open_table(TLOG_STATE)?;
            let mut s: LogState = match t.get(log)? {
                Some(v) => serde_json::from_str(v.value()).map_err(|e| corrupt("tlog_state", e))?,
                None => LogState::new(log, base_url),
            };
            s.last_sync = Some(at);
            s.last_error = error;
            t.insert(log, serde_json::to_string(&s).expect("json").as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Store `cosigned` as the newest witnessed checkpoint if the witnessed size is still
    /// `expected` (None: nothing witnessed); record its root. One transaction.
    pub fn tlog_accept(
        &self,
        log: &str,
        base_url: &str,
        expected: Option<u64>,
        cosigned: &Verified,
        at: Timestamp,
        proof: Option<&[Hash]>,
    ) -> Result<Cas, StoreError> {
        let tx = self.begin_write()?;
        {
            let mut t = tx.open_table(TLOG_STATE)?;
            let mut s: LogState = match t.get(log)? {
                Some(v) => serde_json::from_str(v.value()).map_err(|e| corrupt("tlog_state", e))?,
                None => LogState::new(log, base_url),
            };
            let current = s.latest.as_ref().map(|l| l.size);
            if current != expected {
                return Ok(Cas::Conflict(current.unwrap_or(0)));
            }
            s.latest = Some(cosigned.clone());
            s.witnessed_at = Some(at);
            s.last_sync = Some(at);
            s.last_error = None;
            t.insert(log, serde_json::to_string(&s).expect("json").as_str())?;
            tx.open_table(TLOG_CHECKPOINTS)?.insert((log, cosigned.size), cosigned.text.as_bytes())?;
            tx.open_table(TLOG_ROOTS)?.insert((log, cosigned.size), hex::encode(cosigned.root).as_str())?;
            if let (Some(old), Some(p)) = (current, proof) {
                tx.open_table(TLOG_PROOFS)?.insert((log, old, cosigned.size), proof_json(p, None).as_str())?;
            }
        }
        tx.commit()?;
        Ok(Cas::Stored)
    }

    /// Record roots proven consistent with the witnessed history (bundle checkpoints).
    pub fn tlog_put_roots(&self, log: &str, roots: &[(u64, Hash)]) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut t = tx.open_table(TLOG_ROOTS)?;
            for (size, root) in roots {
                t.insert((log, *size), hex::encode(root).as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record a cited checkpoint's root proven consistent with witnessed size `witnessed`, with
    /// the proof (so an air-gap bundle can carry the proof, not just the claim).
    pub fn tlog_put_proven(&self, log: &str, size: u64, root: &Hash, witnessed: u64, proof: &[Hash]) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            tx.open_table(TLOG_ROOTS)?.insert((log, size), hex::encode(root).as_str())?;
            tx.open_table(TLOG_PROOFS)?.insert((log, size, witnessed), proof_json(proof, Some(root)).as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How many roots are known (witnessed or proven): it only grows, so it tells a reader
    /// whether anything was proven since it last looked.
    pub fn tlog_roots_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(TLOG_ROOTS)?.len()?)
    }

    pub fn tlog_root(&self, log: &str, size: u64) -> Result<Option<Hash>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TLOG_ROOTS)?;
        t.get((log, size))?
            .map(|v| hex::decode(v.value()).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| corrupt("tlog_roots", "not 32 hex bytes")))
            .transpose()
    }

    /// The consistency proofs kept: those the witness accepted extensions with, and those that
    /// proved a cited checkpoint (with that checkpoint's root).
    pub fn tlog_proofs(&self, log: &str) -> Result<Vec<StoredProof>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TLOG_PROOFS)?;
        let mut out = vec![];
        for i in t.range((log, 0u64, 0u64)..=(log, u64::MAX, u64::MAX))? {
            let (k, v) = i?;
            let (_, old, new) = k.value();
            let mut p: StoredProof = serde_json::from_str(v.value()).map_err(|e| corrupt("tlog_proofs", e))?;
            (p.old, p.new) = (old, new);
            out.push(p);
        }
        Ok(out)
    }

    /// Every witnessed checkpoint of a log, oldest first.
    pub fn tlog_history(&self, log: &str) -> Result<Vec<(u64, String)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TLOG_CHECKPOINTS)?;
        let mut out = vec![];
        for i in t.range((log, 0u64)..=(log, u64::MAX))? {
            let (k, v) = i?;
            out.push((k.value().1, String::from_utf8_lossy(v.value()).into_owned()));
        }
        Ok(out)
    }

    /// Raise an alarm: keep the evidence, mark the log untrusted. One transaction.
    pub fn tlog_raise(&self, mut a: Alarm, base_url: &str) -> Result<u64, StoreError> {
        let tx = self.begin_write()?;
        let id;
        {
            let mut al = tx.open_table(TLOG_ALARMS)?;
            id = al.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            a.id = id;
            al.insert(id, serde_json::to_string(&a).expect("json").as_str())?;
            let mut t = tx.open_table(TLOG_STATE)?;
            let mut s: LogState = match t.get(a.log.as_str())? {
                Some(v) => serde_json::from_str(v.value()).map_err(|e| corrupt("tlog_state", e))?,
                None => LogState::new(&a.log, base_url),
            };
            if s.alarm.is_none() {
                s.alarm = Some(id);
            }
            s.last_sync = Some(a.detected_at);
            s.last_error = Some(format!("{}: {}", a.kind, a.detail));
            t.insert(a.log.as_str(), serde_json::to_string(&s).expect("json").as_str())?;
        }
        tx.commit()?;
        Ok(id)
    }

    pub fn tlog_alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TLOG_ALARMS)?;
        t.iter()?
            .map(|i| i.map_err(StoreError::from).and_then(|(_, v)| serde_json::from_str(v.value()).map_err(|e| corrupt("tlog_alarms", e))))
            .collect()
    }

    /// An operator resolves a log's alarms: the evidence stays; the log is trusted again and
    /// `rebaseline` makes the next checkpoint the new trust-on-first-use starting point.
    pub fn tlog_resolve(&self, log: &str, r: Resolution, rebaseline: bool) -> Result<usize, StoreError> {
        let tx = self.begin_write()?;
        let mut n = 0;
        {
            let mut al = tx.open_table(TLOG_ALARMS)?;
            let open: Vec<(u64, Alarm)> = al
                .iter()?
                .filter_map(|i| i.ok())
                .filter_map(|(k, v)| serde_json::from_str::<Alarm>(v.value()).ok().map(|a| (k.value(), a)))
                .filter(|(_, a)| a.log == log && a.resolved.is_none())
                .collect();
            for (k, mut a) in open {
                a.resolved = Some(r.clone());
                al.insert(k, serde_json::to_string(&a).expect("json").as_str())?;
                n += 1;
            }
            let mut t = tx.open_table(TLOG_STATE)?;
            let cur = t.get(log)?.map(|v| v.value().to_string());
            if let Some(v) = cur {
                let mut s: LogState = serde_json::from_str(&v).map_err(|e| corrupt("tlog_state", e))?;
                s.alarm = None;
                if rebaseline {
                    s.latest = None;
                }
                t.insert(log, serde_json::to_string(&s).expect("json").as_str())?;
            }
        }
        tx.commit()?;
        Ok(n)
    }
}

/// A consistency proof from `old` to `new` the store keeps (hex hashes; `old_root` when `old` is
/// a cited checkpoint rather than a witnessed one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProof {
    #[serde(default)]
    pub old: u64,
    #[serde(default)]
    pub new: u64,
    pub hashes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_root: Option<String>,
}

impl StoredProof {
    pub fn hashes(&self) -> Option<Vec<Hash>> {
        self.hashes.iter().map(|h| hex::decode(h).ok().and_then(|b| <Hash>::try_from(b.as_slice()).ok())).collect()
    }
}

fn proof_json(p: &[Hash], old_root: Option<&Hash>) -> String {
    serde_json::to_string(&StoredProof { old: 0, new: 0, hashes: p.iter().map(hex::encode).collect(), old_root: old_root.map(hex::encode) })
        .expect("json")
}
