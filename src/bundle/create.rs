//! `bundle create`: everything a disconnected cluster needs to decide offline, from a store on
//! the connected side — no network needed (the witness kept the consistency proofs it accepted).
//!
//! | path in the bundle | |
//! |---|---|
//! | `tuf/<served path>` | the TUF repository as served: every root version held, timestamp, snapshot, targets and delegations (`N.role.json` and `role.json`), targets by hash |
//! | `oci/material/<n>.json`, `blobs/<sha256>` | material records and the bundles and payloads they reference (the importer re-verifies every item) |
//! | `oci/tags.json` | tag resolutions with their time |
//! | `tlog/<log id>.json` | each log's witnessed history (cosigned checkpoints) and the consistency proofs between them |
//! | `policy/<file>` | policy, banned list, exemptions (optional) |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::json;

use super::layout::{BundleConfig, Writer};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub output: PathBuf,
    pub tuf_repo: String,
    /// Only images matching these patterns (`registry/repo/**`); empty: all.
    pub images: Vec<glob::Pattern>,
    /// A previous bundle: only what changed since it.
    pub since: Option<PathBuf>,
    pub exporter: Option<String>,
    pub files: Vec<PathBuf>,
}

/// What went in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Created {
    pub manifest_digest: String,
    pub config: BundleConfig,
    pub bytes: u64,
}

/// What a previous bundle held, to leave out of an incremental one.
struct Previous {
    digest: String,
    etags: BTreeMap<(String, String), String>,
    tags: BTreeMap<(String, String), String>,
    checkpoints: BTreeMap<String, u64>,
}

fn previous(p: &Path) -> Result<Previous, String> {
    let b = super::layout::open(p).map_err(|e| format!("--since {}: {e}", p.display()))?;
    let mut etags = BTreeMap::new();
    for path in b.under("oci/material/") {
        let r: crate::core::material::MaterialRecord = serde_json::from_slice(&b.read(path)?).map_err(|e| format!("{path}: {e}"))?;
        etags.insert((r.repository.clone(), r.subject.clone()), r.etag());
    }
    let mut tags = BTreeMap::new();
    if b.files.contains_key("oci/tags.json") {
        let v: Vec<(String, String, crate::store::oci::TagRecord)> =
            serde_json::from_slice(&b.read("oci/tags.json")?).map_err(|e| e.to_string())?;
        for (r, t, rec) in v {
            tags.insert((r, t), rec.digest);
        }
    }
    let mut checkpoints = BTreeMap::new();
    for path in b.under("tlog/") {
        let v: serde_json::Value = serde_json::from_slice(&b.read(path)?).map_err(|e| e.to_string())?;
        let max = v["history"].as_array().into_iter().flatten().filter_map(|h| h[0].as_u64()).max().unwrap_or(0);
        checkpoints.insert(v["log"].as_str().unwrap_or_default().to_string(), max);
    }
    Ok(Previous { digest: b.manifest_digest.clone(), etags, tags, checkpoints })
}

/// The exporter's sequence: one more than the last bundle it made (kept in its store).
fn next_sequence(store: &Store, exporter: &str) -> Result<u64, String> {
    let key = format!("@export:{exporter}");
    let last = store.bundle_ledger(&key).map_err(|e| e.to_string())?.map(|l| l.sequence).unwrap_or(0);
    Ok(last + 1)
}

pub fn create(store: &Store, o: &CreateOptions, signer: Option<&crate::core::dsse::Signer>, now: Timestamp) -> Result<Created, String> {
    let prev = o.since.as_deref().map(previous).transpose()?;
    let exporter = match (&o.exporter, signer) {
        (Some(e), _) => e.clone(),
        (None, Some(s)) => format!("key:{}", &s.keyid[..16]),
        (None, None) => "unsigned".into(),
    };
    let mut w = Writer::create(&o.output, now)?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = |k: &str| *counts.entry(k.into()).or_default() += 1;
    let st = |e: crate::store::StoreError| e.to_string();

    // TUF, whole (kilobytes): every root version held, the current roles, the targets
    let state = store.tuf_state(&o.tuf_repo).map_err(st)?;
    let Some((root_v, _)) = state.current.get("root") else {
        return Err(format!("the store holds no TUF repository {:?} (mirror it first: tuf refresh)", o.tuf_repo));
    };
    for v in 1..=*root_v {
        if let Some(b) = store.tuf_meta(&o.tuf_repo, "root", v).map_err(st)? {
            w.add(&format!("tuf/{v}.root.json"), b);
            count("tuf");
        }
    }
    for (role, (v, bytes)) in &state.current {
        let q = crate::core::tuf::quote_role(role);
        w.add(&format!("tuf/{q}.json"), bytes.clone());
        if role != "timestamp" {
            w.add(&format!("tuf/{v}.{q}.json"), bytes.clone());
        }
        count("tuf");
    }
    for (served, _) in store.tuf_served(&o.tuf_repo).map_err(st)? {
        if let Some((_, b)) = store.tuf_target(&o.tuf_repo, &served).map_err(st)? {
            // targets are served under targets/ (hash-prefixed when the repository uses
            // consistent snapshots), where the TUF client on the other side looks for them
            let path = format!("tuf/targets/{}", served.trim_start_matches('/').trim_start_matches("targets/"));
            if !w.has(&path) {
                w.add(&path, b);
                count("tuf");
            }
        }
    }

    // OCI material (what changed since the previous bundle)
    let wanted = |repo: &str| o.images.is_empty() || o.images.iter().any(|g| g.matches(repo) || g.matches(&format!("{repo}/")));
    let mut n = 0usize;
    for s in store.oci_list().map_err(st)? {
        if !wanted(&s.repository) {
            continue;
        }
        let Some(rec) = store.oci_material(&s.repository, &s.digest).map_err(st)? else { continue };
        if prev.as_ref().is_some_and(|p| p.etags.get(&(rec.repository.clone(), rec.subject.clone())) == Some(&rec.etag())) {
            continue;
        }
        for sha in rec.items.iter().flat_map(|i| i.bundle.iter().chain(i.payload.iter())) {
            let path = format!("blobs/{sha}");
            if !w.has(&path)
                && let Some(b) = store.blob(sha).map_err(st)?
            {
                w.add(&path, b);
                count("blob");
            }
        }
        w.add(&format!("oci/material/{n:06}.json"), serde_json::to_vec(&rec).expect("json"));
        count("oci");
        n += 1;
    }
    let tags: Vec<_> = store
        .oci_tags()
        .map_err(st)?
        .into_iter()
        .filter(|(r, t, rec)| wanted(r) && prev.as_ref().is_none_or(|p| p.tags.get(&(r.clone(), t.clone())) != Some(&rec.digest)))
        .collect();
    if !tags.is_empty() {
        count("tag");
        w.add("oci/tags.json", serde_json::to_vec(&tags).expect("json"));
    }

    // the witnessed history of every log, with the proofs between consecutive checkpoints
    for s in store.tlog_states().map_err(st)? {
        let since = prev.as_ref().and_then(|p| p.checkpoints.get(&s.log)).copied().unwrap_or(0);
        let history: Vec<(u64, String)> = store.tlog_history(&s.log).map_err(st)?.into_iter().filter(|(size, _)| *size >= since).collect();
        if history.iter().all(|(size, _)| *size <= since) && since > 0 {
            continue;
        }
        let proofs: Vec<crate::store::tlog::StoredProof> =
            store.tlog_proofs(&s.log).map_err(st)?.into_iter().filter(|p| p.new > since || p.old_root.is_some()).collect();
        w.add(
            &format!("tlog/{}.json", s.log),
            serde_json::to_vec(&json!({"log": s.log, "base_url": s.base_url, "history": history, "proofs": proofs})).expect("json"),
        );
        count("tlog");
    }
    for f in &o.files {
        let name = f.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{}: no file name", f.display()))?;
        w.add(&format!("policy/{name}"), std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?);
        count("policy");
    }

    let config = BundleConfig {
        exporter: exporter.clone(),
        sequence: next_sequence(store, &exporter)?,
        created: now,
        since: prev.map(|p| p.digest),
        tuf_repo: o.tuf_repo.clone(),
        counts,
    };
    let sign = signer.map(|s| move |m: &[u8]| s.envelope(super::layout::MT_MANIFEST, m));
    let digest = w.finish(&config, sign.as_ref().map(|f| f as &dyn Fn(&[u8]) -> Result<serde_json::Value, String>))?;
    // the exporter's own ledger entry: its sequence for the next bundle
    let ledger = crate::store::bundle::ImportLedger {
        exporter: format!("@export:{exporter}"),
        sequence: config.sequence,
        digest: digest.clone(),
        imported_at: now,
    };
    store.bundle_record_export(&ledger).map_err(st)?;
    let bytes = std::fs::metadata(&o.output).map(|m| m.len()).unwrap_or(0);
    Ok(Created { manifest_digest: digest, config, bytes })
}
