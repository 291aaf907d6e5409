//! A bundle's log checkpoints judged against the witnessed history of their logs: consistent,
//! a split view, not (yet) witnessed, or a log under alarm.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use super::Hash;
use super::policy::WitnessPolicy;

/// Where a bundle's log entry stands against the witnessed history of its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum HistoryVerdict {
    /// The bundle's checkpoint (size, root) is a witnessed root, or proven consistent with one.
    Consistent { size: u64, witnessed: u64 },
    /// The witnessed history has another root at that size: a split view.
    Inconsistent { size: u64, detail: String },
    /// Newer than anything witnessed, or never proven: the policy decides.
    Unwitnessed { size: u64, witnessed: Option<u64> },
    /// The log is marked untrusted after misbehaviour.
    LogUntrusted { detail: String },
    /// The log is not in the witnessed set at all.
    UnknownLog { log: String },
}

/// Judge (size, root) of a log against its history: `root_at(size)` is the witnessed (or
/// proven-consistent) root at that size, `latest` the newest witnessed size, `alarm` any open alarm.
pub fn against_history(size: u64, root: &Hash, root_at: Option<Hash>, latest: Option<u64>, alarm: Option<&str>) -> HistoryVerdict {
    if let Some(a) = alarm {
        return HistoryVerdict::LogUntrusted { detail: a.to_string() };
    }
    match root_at {
        Some(r) if &r == root => HistoryVerdict::Consistent { size, witnessed: latest.unwrap_or(size).max(size) },
        Some(r) => HistoryVerdict::Inconsistent {
            size,
            detail: format!("witnessed root at size {size} is {}, the bundle's is {}", hex::encode(r), hex::encode(root)),
        },
        None => HistoryVerdict::Unwitnessed { size, witnessed: latest },
    }
}

/// (log id hex, tree size, root) of every checkpoint a bundle's tlog entries cite, **taken
/// from the signed note** and kept only when the note verifies with that log's key from `logs`
/// and agrees with the entry's bare `treeSize`/`rootHash` fields. Bare fields alone are never
/// evidence: anyone who can push a bundle can write them.
pub fn bundle_checkpoints(bundle_json: &[u8], logs: &[super::LogKey]) -> Vec<Cited> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bundle_json) else { return vec![] };
    let mut out = vec![];
    for e in v["verificationMaterial"]["tlogEntries"].as_array().into_iter().flatten() {
        let Some(id) = e["logId"]["keyId"].as_str().and_then(|k| B64.decode(k).ok()) else { continue };
        let id = hex::encode(id);
        let Some(log) = logs.iter().find(|l| l.id == id) else { continue };
        let ip = &e["inclusionProof"];
        let Some(note) = ip["checkpoint"]["envelope"].as_str() else { continue };
        let Ok(cp) = super::verify_checkpoint(note, log, None) else { continue };
        let size = ip["treeSize"].as_str().and_then(|s| s.parse().ok()).or(ip["treeSize"].as_u64());
        let root = ip["rootHash"].as_str().and_then(|r| B64.decode(r).ok()).and_then(|r| <Hash>::try_from(r.as_slice()).ok());
        // Rekor v2 entries carry no bare fields (the note is the only source); v1 ones must agree
        if size.is_some_and(|s| s != cp.size) || root.is_some_and(|r| r != cp.root) {
            continue;
        }
        out.push(Cited { log: id, size: cp.size, root: cp.root, note: note.to_string() });
    }
    out
}

/// A checkpoint a bundle cites, authenticated: the log (key ID hex), tree size and root from the
/// signed note, and the note itself (evidence, should it contradict the witnessed history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cited {
    pub log: String,
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

/// What the store knows about one log checkpoint cited by a bundle.
#[derive(Debug, Clone)]
pub struct TlogFact {
    pub verdict: HistoryVerdict,
    /// The log's newest witnessed checkpoint (with cosignatures), for witness policies.
    pub witnessed_note: Option<String>,
}

/// What to do with a checkpoint the history has not (yet) witnessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unwitnessed {
    Accept,
    Warn,
    #[default]
    Deny,
}

/// Judge a bundle's checkpoints (`cps`, from [`bundle_checkpoints`]) with what the store knows
/// of each (`facts`): `Ok(notes)` when every one is consistent with the witnessed history (and
/// its witnessed checkpoint meets `policy`), or unwitnessed and `unwitnessed` allows it;
/// otherwise the refusal.
pub fn history_check(
    cps: &[Cited],
    facts: &std::collections::BTreeMap<(String, u64), TlogFact>,
    policy: Option<&WitnessPolicy>,
    unwitnessed: Unwitnessed,
) -> Result<Vec<String>, String> {
    let mut notes = vec![];
    let unwitnessed_note = |msg: String, notes: &mut Vec<String>| match unwitnessed {
        Unwitnessed::Deny => Err(msg),
        Unwitnessed::Warn => {
            notes.push(format!("warning: {msg}"));
            Ok(())
        }
        Unwitnessed::Accept => Ok(()),
    };
    if cps.is_empty() {
        unwitnessed_note("the bundle has no log entry with an inclusion proof to check against the witnessed history".into(), &mut notes)?;
        return Ok(notes);
    }
    for Cited { log, size, .. } in cps {
        let Some(fact) = facts.get(&(log.clone(), *size)) else {
            unwitnessed_note(format!("log {log} has never been witnessed"), &mut notes)?;
            continue;
        };
        match &fact.verdict {
            HistoryVerdict::Consistent { witnessed, .. } => {
                if let Some(p) = policy {
                    let (signed, ok) = p.evaluate(fact.witnessed_note.as_deref().unwrap_or(""));
                    if !ok {
                        return Err(format!(
                            "the witnessed checkpoint of log {log} (size {witnessed}) does not meet the witness policy: cosigned by {}",
                            if signed.is_empty() { "nobody".into() } else { signed.into_iter().collect::<Vec<_>>().join(", ") }
                        ));
                    }
                }
                notes.push(format!("log {log}: checkpoint size {size} is consistent with the witnessed size {witnessed}"));
            }
            HistoryVerdict::Inconsistent { detail, .. } => return Err(format!("split view on log {log}: {detail}")),
            HistoryVerdict::LogUntrusted { detail } => return Err(format!("log {log} is untrusted: {detail}")),
            HistoryVerdict::UnknownLog { .. } => unwitnessed_note(format!("log {log} has never been witnessed"), &mut notes)?,
            HistoryVerdict::Unwitnessed { size, witnessed } => unwitnessed_note(
                format!(
                    "log {log}: checkpoint size {size} has not been proven consistent with the witnessed history (witnessed up to {})",
                    witnessed.map(|w| w.to_string()).unwrap_or_else(|| "nothing".into())
                ),
                &mut notes,
            )?,
        }
    }
    Ok(notes)
}
