//! `bundle verify` and `bundle import`: everything checked offline before the store is touched.
//!
//! The bundle is unpacked and every blob re-hashed ([`super::layout::open`]); the exporter's
//! signature checked against the configured keys; the sequence checked against the import
//! ledger (an older or replayed bundle is refused, the same one again is a no-op). Then the whole
//! content is *applied to a staging store* seeded from the live one, with the same code that
//! mirrors from the network: the TUF client walks the bundle's repository from the trusted (or
//! pinned) root — rollback and freeze protection included; every OCI item is verified again
//! under the resulting trust root (nothing the exporter says about an item is trusted); each
//! log's checkpoints are verified with the log's key and chained to the witnessed history by
//! the consistency proofs they carry, and a checkpoint that contradicts it refuses the bundle.
//! Only when all of that succeeded does [`crate::store::Store::merge_verified`] copy the staging
//! store into the live one, in one transaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use super::layout::{Bundle, MT_MANIFEST};
use crate::core::clock::ManualClock;
use crate::core::tlog::{self, Hash, LogKey, Step};
use crate::mirror::oci::{OciMirror, OciMirrorConfig};
use crate::mirror::tuf_client::Limits;
use crate::mirror::tuf_mirror::{TufMirror, TufMirrorConfig};
use crate::mirror::upstream::{HttpOptions, Upstream};
use crate::store::Store;
use crate::store::bundle::{ImportLedger, MergeCounts};
use crate::trust::{TrustConfig, TrustSource};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Exporter keys (name, SPKI DER). Given: a bundle must be signed by one of them.
    pub keys: Vec<(String, Vec<u8>)>,
    /// The TUF repository's pinned root, for a store that holds none yet (and for `verify`).
    pub pinned_root: Option<Vec<u8>>,
}

/// Why a bundle was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the bundle file: {0}")]
    File(String),
    #[error("the exporter's signature: {0}")]
    Signature(String),
    #[error("rollback or replay: {0}")]
    Sequence(String),
    /// Older than the last bundle imported from its exporter (checked before anything else: the
    /// file may be an earlier, superseded bundle, or anything claiming to be one).
    #[error("rollback or replay: {0}")]
    Older(String),
    #[error("TUF: {0}")]
    Tuf(String),
    #[error("image material: {0}")]
    Oci(String),
    #[error("transparency log: {0}")]
    Tlog(String),
    #[error("the store: {0}")]
    Store(String),
}

impl ImportError {
    pub fn kind(&self) -> &'static str {
        match self {
            ImportError::File(_) => "file",
            ImportError::Signature(_) => "signature",
            ImportError::Sequence(_) | ImportError::Older(_) => "sequence",
            ImportError::Tuf(_) => "tuf",
            ImportError::Oci(_) => "oci",
            ImportError::Tlog(_) => "tlog",
            ImportError::Store(_) => "store",
        }
    }
}

/// What a verified bundle holds, for people.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub exporter: String,
    pub sequence: u64,
    pub created: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub manifest_digest: String,
    pub bytes: u64,
    /// `signed by NAME`, `signed by key ID (not checked: no key given)`, or `unsigned`.
    pub signature: String,
    pub tuf_root_version: u64,
    pub tuf_timestamp_expires: Option<Timestamp>,
    pub tuf_targets_expires: Option<Timestamp>,
    /// The TUF chain's anchor: the store's trusted root, the pinned root, or the bundle's own.
    pub tuf_anchor: String,
    /// Certificate authorities of the trusted root and when each stops being valid.
    pub certificate_authorities: Vec<(String, Option<Timestamp>)>,
    pub materials: usize,
    pub items_verified: usize,
    pub items_rejected: usize,
    pub tags: usize,
    /// Per log: newest checkpoint size accepted, and when it was cosigned.
    pub logs: Vec<(String, Option<u64>, Option<Timestamp>)>,
    pub notes: Vec<String>,
    pub policy_files: Vec<String>,
}

/// The outcome of an import.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Imported {
    Imported { summary: Summary, merged: MergeCounts },
    AlreadyImported { summary: Summary },
}

struct Staged {
    _dir: tempfile::TempDir,
    store: Store,
    summary: Summary,
}

fn cosigned_at(text: &str) -> Option<Timestamp> {
    // cosignature/v1 lines: key hash (4), big-endian seconds (8), Ed25519 signature (64)
    use base64::Engine as _;
    text.split("\n\n")
        .nth(1)?
        .lines()
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .filter(|b| b.len() == 76)
        .filter_map(|b| Timestamp::from_second(i64::from_be_bytes(b[4..12].try_into().ok()?)).ok())
        .max()
}

fn signature(b: &Bundle, o: &ImportOptions) -> Result<String, ImportError> {
    let Some(env) = &b.signature else {
        if !o.keys.is_empty() {
            return Err(ImportError::Signature(
                "the bundle is unsigned, and this store accepts only bundles signed by its exporter keys".into(),
            ));
        }
        return Ok("unsigned".into());
    };
    if o.keys.is_empty() {
        let kid = env["signatures"][0]["keyid"].as_str().unwrap_or("?").chars().take(16).collect::<String>();
        return Ok(format!("signed by key {kid}… (not checked: no exporter key given)"));
    }
    let (name, pt, payload) = crate::core::dsse::verify(env, &o.keys).map_err(ImportError::Signature)?;
    if pt != MT_MANIFEST || payload != b.manifest {
        return Err(ImportError::Signature("the signature is over something other than this bundle's manifest".into()));
    }
    Ok(format!("signed by {name}"))
}

/// Unpack, check and stage a bundle against `live` (or nothing, for `verify` alone).
async fn stage(file: &Path, live: Option<&Store>, o: &ImportOptions, now: Timestamp) -> Result<(Bundle, Staged), ImportError> {
    let b = super::layout::open(file).map_err(ImportError::File)?;
    let sig = signature(&b, o)?;
    let repo = b.config.tuf_repo.clone();
    let dir = tempfile::tempdir().map_err(|e| ImportError::Store(e.to_string()))?;
    let staging = Store::open_ephemeral(dir.path().join("staging.redb")).map_err(|e| ImportError::Store(e.to_string()))?;
    let st = |e: crate::store::StoreError| ImportError::Store(e.to_string());

    // the material records (parsed first: seeding needs their keys)
    let mut records = vec![];
    for path in b.under("oci/material/") {
        let bytes = b.read(path).map_err(ImportError::File)?;
        let r: crate::core::material::MaterialRecord =
            serde_json::from_slice(&bytes).map_err(|e| ImportError::Oci(format!("{path}: {e}")))?;
        records.push(r);
    }
    let keys: Vec<(String, String)> = records.iter().map(|r| (r.repository.clone(), r.subject.clone())).collect();
    if let Some(live) = live {
        live.seed_staging(&staging, &repo, &keys).map_err(st)?;
    }
    let staging = Arc::new(staging);

    // TUF: the bundle's repository, walked by the TUF client from the trusted or pinned root
    let tuf_dir = dir.path().join("tuf");
    for path in b.under("tuf/") {
        let dest = tuf_dir.join(path.trim_start_matches("tuf/"));
        std::fs::create_dir_all(dest.parent().expect("parent")).map_err(|e| ImportError::Store(e.to_string()))?;
        std::fs::write(&dest, b.read(path).map_err(ImportError::File)?).map_err(|e| ImportError::Store(e.to_string()))?;
    }
    let held = staging.tuf_state(&repo).map_err(st)?;
    let (pinned, anchor) = match (held.bytes("root"), &o.pinned_root) {
        (Some(r), _) => (r.to_vec(), format!("the store's trusted root (version {})", held.version("root").unwrap_or(0))),
        (None, Some(p)) => (p.clone(), "the pinned root (--root)".into()),
        (None, None) if live.is_none() => (
            b.read("tuf/1.root.json").map_err(|_| ImportError::Tuf("the bundle has no 1.root.json to start from; give --root".into()))?,
            "the bundle's own root version 1 (not pinned: give --root to check it against yours)".into(),
        ),
        (None, None) => {
            return Err(ImportError::Tuf(format!("the store holds no TUF repository {repo:?} yet: give the pinned root with --root")));
        }
    };
    let clock = Arc::new(ManualClock::new(now));
    let upstream =
        Upstream::parse(tuf_dir.to_str().unwrap_or_default(), &HttpOptions::default()).map_err(|e| ImportError::Tuf(e.to_string()))?;
    let tuf = TufMirror::new(
        staging.clone(),
        TufMirrorConfig {
            repo: repo.clone(),
            upstream,
            pinned_root: pinned,
            limits: Limits::default(),
            root_probe_interval: jiff::SignedDuration::ZERO,
            targets: None,
        },
        clock.clone(),
    );
    tuf.refresh().await.map_err(|e| ImportError::Tuf(e.to_string()))?;
    let state = staging.tuf_state(&repo).map_err(st)?;
    let expires = |role: &str| state.bytes(role).and_then(crate::core::tuf::peek).map(|(_, _, e)| e);

    // the trust root that verification now rests on
    let trust = Arc::new(TrustSource::new(staging.clone(), TrustConfig { tuf_repo: repo.clone(), ..Default::default() }));
    let tm = trust.default_root().map_err(|e| ImportError::Tuf(format!("the repository's trusted root: {e}")))?;
    let cas = certificate_authorities(&tm);

    // OCI: every record re-verified under that root, on every core (verification is the cost;
    // the staging store serializes the writes)
    let oci = OciMirror::new(staging.clone(), OciMirrorConfig::default(), clock.clone(), trust.clone());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, records.len().max(1));
    let per_worker = records.len().div_ceil(workers).max(1);
    let results: Vec<Result<(usize, usize), ImportError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks(per_worker)
            .map(|chunk| {
                let (oci, b) = (&oci, &b);
                scope.spawn(move || {
                    let (mut verified, mut rejected) = (0, 0);
                    for r in chunk {
                        let blob = |sha: &str| b.read(&format!("blobs/{sha}")).ok();
                        let (v, x) = oci.ingest_record(r, &blob).map_err(|e| ImportError::Oci(e.to_string()))?;
                        verified += v;
                        rejected += x;
                    }
                    Ok((verified, rejected))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(ImportError::Oci("verification failed unexpectedly".into())))).collect()
    });
    let (mut verified, mut rejected) = (0, 0);
    for r in results {
        let (v, x) = r?;
        verified += v;
        rejected += x;
    }
    let mut tags = 0;
    if b.files.contains_key("oci/tags.json") {
        let v: Vec<(String, String, crate::store::oci::TagRecord)> =
            serde_json::from_slice(&b.read("oci/tags.json").map_err(ImportError::File)?)
                .map_err(|e| ImportError::Oci(format!("oci/tags.json: {e}")))?;
        for (r, t, rec) in v {
            if !crate::core::digest::is_digest(&rec.digest) {
                return Err(ImportError::Oci(format!("tag {r}:{t}: {:?} is not a digest", rec.digest)));
            }
            staging.oci_put_tag(&r, &t, &rec).map_err(st)?;
            tags += 1;
        }
    }

    // transparency logs: verified and chained to the witnessed history
    let mut notes = vec![];
    let mut logs = vec![];
    let known = tlog::log_keys(&tm);
    for path in b.under("tlog/") {
        let v: serde_json::Value =
            serde_json::from_slice(&b.read(path).map_err(ImportError::File)?).map_err(|e| ImportError::Tlog(format!("{path}: {e}")))?;
        let id = v["log"].as_str().unwrap_or_default().to_string();
        let Some(key) = known.iter().find(|k| k.id == id) else {
            notes.push(format!("log {id}: not a log of the trusted root; its checkpoints were not imported"));
            continue;
        };
        let (size, at) = chain(&staging, key, &v, now, &mut notes)?;
        logs.push((id, size, at));
    }
    let policy_files: Vec<String> = b.under("policy/").map(|p| p.trim_start_matches("policy/").to_string()).collect();
    let summary = Summary {
        exporter: b.config.exporter.clone(),
        sequence: b.config.sequence,
        created: b.config.created,
        since: b.config.since.clone(),
        manifest_digest: b.manifest_digest.clone(),
        bytes: b.size,
        signature: sig,
        tuf_root_version: state.version("root").unwrap_or(0),
        tuf_timestamp_expires: expires("timestamp"),
        tuf_targets_expires: expires("targets"),
        tuf_anchor: anchor,
        certificate_authorities: cas,
        materials: records.len(),
        items_verified: verified,
        items_rejected: rejected,
        tags,
        logs,
        notes,
        policy_files,
    };
    drop(oci);
    drop(trust);
    drop(tuf);
    let store = Arc::try_unwrap(staging).map_err(|_| ImportError::Store("the staging store is still in use".into()))?;
    Ok((b, Staged { _dir: dir, store, summary }))
}

/// Accept a log's checkpoints into the staging store: each signed by the log, each extension
/// proven consistent with what is witnessed. A checkpoint that contradicts the history refuses
/// the bundle. Returns the newest accepted size and its cosignature time.
fn chain(
    staging: &Store,
    key: &LogKey,
    v: &serde_json::Value,
    now: Timestamp,
    notes: &mut Vec<String>,
) -> Result<(Option<u64>, Option<Timestamp>), ImportError> {
    let e = |m: String| ImportError::Tlog(format!("log {}: {m}", key.id));
    let st = |x: crate::store::StoreError| ImportError::Store(x.to_string());
    let mut history: Vec<(u64, String)> = serde_json::from_value(v["history"].clone()).map_err(|x| e(format!("history: {x}")))?;
    history.sort_by_key(|(s, _)| *s);
    let stored: Vec<crate::store::tlog::StoredProof> =
        serde_json::from_value(v["proofs"].clone()).map_err(|x| e(format!("proofs: {x}")))?;
    let mut proofs: BTreeMap<(u64, u64), Vec<Hash>> = BTreeMap::new();
    let mut cited: Vec<(u64, u64, Hash, Vec<Hash>)> = vec![];
    for p in &stored {
        let hashes = p.hashes().ok_or_else(|| e(format!("proof {}→{}: not 32-byte hex hashes", p.old, p.new)))?;
        match &p.old_root {
            None => {
                proofs.insert((p.old, p.new), hashes);
            }
            Some(r) => {
                let root: Hash =
                    hex::decode(r).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| e(format!("proof {}→{}: bad root", p.old, p.new)))?;
                cited.push((p.old, p.new, root, hashes));
            }
        }
    }
    let state = staging.tlog_state(&key.id).map_err(st)?;
    if let Some(a) = state.as_ref().and_then(|s| s.alarm) {
        notes.push(format!("log {}: under alarm #{a} in this store; its checkpoints were not imported", key.id));
        return Ok((None, None));
    }
    let mut prev = state.and_then(|s| s.latest);
    let mut newest = (prev.as_ref().map(|p| p.size), prev.as_ref().and_then(|p| cosigned_at(&p.text)));
    for (size, text) in &history {
        let mut c = tlog::verify_checkpoint(text, key, prev.as_ref().map(|p| p.origin.as_str()))
            .map_err(|x| e(format!("checkpoint {size}: {x}")))?;
        c.text = text.clone();
        if let Some(root) = staging.tlog_root(&key.id, c.size).map_err(st)?
            && root != c.root
        {
            return Err(e(format!(
                "SPLIT VIEW: the bundle's checkpoint of size {} has root {}, the witnessed history has {} for that size (import refused; the log has shown two histories)",
                c.size,
                hex::encode(c.root),
                hex::encode(root)
            )));
        }
        let step = match &prev {
            None => Step::First,
            Some(p) if c.size <= p.size => continue,
            Some(p) => {
                let Some(proof) = proofs.get(&(p.size, c.size)) else {
                    notes.push(format!(
                        "log {}: no consistency proof from the witnessed size {} to {}; newer checkpoints not imported",
                        key.id, p.size, c.size
                    ));
                    break;
                };
                tlog::witness_step(Some((p.size, &p.root)), &c, Some(proof)).map_err(|x| e(format!("checkpoint {}: {x}", c.size)))?
            }
        };
        let proof = prev.as_ref().and_then(|p| proofs.get(&(p.size, c.size))).cloned();
        let current = prev.as_ref().map(|p| p.size);
        // witnessed when the exporter's witness cosigned it, not when it crossed the gap
        let at = cosigned_at(text).filter(|t| *t <= now).unwrap_or(now);
        match staging.tlog_accept(&key.id, &key.base_url, current, &c, at, proof.as_deref()).map_err(st)? {
            crate::store::tlog::Cas::Stored => {}
            crate::store::tlog::Cas::Conflict(n) => return Err(e(format!("the staging store moved to {n}"))),
        }
        let _ = step;
        newest = (Some(c.size), cosigned_at(text));
        prev = Some(c);
    }
    // cited checkpoints (those bundles' items name) the exporter proved consistent with its
    // history: proven again here against the witnessed roots
    let mut proven = 0;
    for (size, witnessed, root, proof) in &cited {
        let Some(wroot) = staging.tlog_root(&key.id, *witnessed).map_err(st)? else { continue };
        if let Some(known) = staging.tlog_root(&key.id, *size).map_err(st)? {
            if known != *root {
                return Err(e(format!(
                    "SPLIT VIEW: a cited checkpoint of size {size} has root {}, the history has {}",
                    hex::encode(root),
                    hex::encode(known)
                )));
            }
            continue;
        }
        tlog::verify_consistency(*size, root, *witnessed, &wroot, proof)
            .map_err(|x| e(format!("the cited checkpoint of size {size} is not consistent with witnessed size {witnessed}: {x}")))?;
        staging.tlog_put_proven(&key.id, *size, root, *witnessed, proof).map_err(st)?;
        proven += 1;
    }
    if proven > 0 {
        notes.push(format!("log {}: {proven} cited checkpoint(s) proven consistent with the history", key.id));
    }
    Ok(newest)
}

fn certificate_authorities(tm: &crate::core::verify::TrustedMaterial) -> Vec<(String, Option<Timestamp>)> {
    tm.root
        .certificate_authorities
        .iter()
        .map(|ca| {
            let name = ca.subject.common_name.clone().unwrap_or_else(|| ca.uri.clone());
            let end = ca.valid_for.as_ref().and_then(|v| v.end.as_ref()).and_then(|e| e.to_string().parse().ok());
            (name, end)
        })
        .collect()
}

/// Verify a bundle on its own (no store): a summary, or why it is refused.
pub async fn verify(file: &Path, o: &ImportOptions, now: Timestamp) -> Result<Summary, ImportError> {
    stage(file, None, o, now).await.map(|(_, s)| s.summary)
}

enum Staging {
    Already(Summary),
    Ready(Bundle, Staged),
}

/// Ledger checks and staging against `live` (read only).
async fn import_staged(file: &Path, live: &Store, o: &ImportOptions, now: Timestamp) -> Result<Staging, ImportError> {
    let head = super::layout::open(file).map_err(ImportError::File)?;
    let last = live.bundle_ledger(&head.config.exporter).map_err(|e| ImportError::Store(e.to_string()))?;
    if let Some(l) = &last {
        if head.config.sequence < l.sequence {
            return Err(ImportError::Older(format!(
                "bundle {} of exporter {} is older than bundle {} already imported",
                head.config.sequence, head.config.exporter, l.sequence
            )));
        }
        if head.config.sequence == l.sequence && head.manifest_digest != l.digest {
            return Err(ImportError::Sequence(format!(
                "exporter {} already had a different bundle {} imported (a replay with altered content?)",
                head.config.exporter, l.sequence
            )));
        }
    }
    // the same bundle again: its file checked above; nothing else to do
    if last.as_ref().is_some_and(|l| l.sequence == head.config.sequence && l.digest == head.manifest_digest) {
        let summary = Summary {
            exporter: head.config.exporter.clone(),
            sequence: head.config.sequence,
            created: head.config.created,
            since: head.config.since.clone(),
            manifest_digest: head.manifest_digest.clone(),
            bytes: head.size,
            signature: signature(&head, o)?,
            tuf_root_version: 0,
            tuf_timestamp_expires: None,
            tuf_targets_expires: None,
            tuf_anchor: "(already imported)".into(),
            certificate_authorities: vec![],
            materials: 0,
            items_verified: 0,
            items_rejected: 0,
            tags: 0,
            logs: vec![],
            notes: vec!["this bundle was imported before; nothing was re-applied".into()],
            policy_files: vec![],
        };
        return Ok(Staging::Already(summary));
    }
    if let Some(since) = &head.config.since {
        let on_top =
            last.as_ref().is_some_and(|l| l.digest == *since || (l.sequence == head.config.sequence && l.digest == head.manifest_digest));
        if !on_top {
            return Err(ImportError::Sequence(format!(
                "an incremental bundle on top of {since}, which is not the last bundle this store imported from {} (import that one first)",
                head.config.exporter
            )));
        }
    }
    drop(head);
    let (b, staged) = stage(file, Some(live), o, now).await?;
    if last.as_ref().is_some_and(|l| l.sequence == b.config.sequence && l.digest == b.manifest_digest) {
        return Ok(Staging::Already(staged.summary));
    }
    Ok(Staging::Ready(b, staged))
}

/// Import into an open `store` (the service's inbox): everything verified first, against the
/// store itself (read only); then one transaction, or nothing.
pub async fn import(file: &Path, store: &Store, o: &ImportOptions, now: Timestamp) -> Result<Imported, ImportError> {
    match import_staged(file, store, o, now).await? {
        Staging::Already(summary) => Ok(Imported::AlreadyImported { summary }),
        Staging::Ready(b, staged) => {
            let ledger = ImportLedger {
                exporter: b.config.exporter.clone(),
                sequence: b.config.sequence,
                digest: b.manifest_digest.clone(),
                imported_at: now,
            };
            let merged = store.merge_verified(&staged.store, &b.config.tuf_repo, &ledger).map_err(|e| ImportError::Store(e.to_string()))?;
            Ok(Imported::Imported { summary: staged.summary, merged })
        }
    }
}

/// Import into the store file at `path` (the command line): everything — ledger checks, staging,
/// verification — runs against a copy, and the store itself is opened only to merge a bundle
/// that passed. A refused bundle leaves the file byte-for-byte as it was (opening a database
/// writes to it, so it is not even opened).
pub async fn import_path(file: &Path, path: &Path, o: &ImportOptions, now: Timestamp) -> Result<Imported, ImportError> {
    let st = |e: String| ImportError::Store(e);
    let dir = tempfile::tempdir().map_err(|e| st(e.to_string()))?;
    let copy = dir.path().join("live-copy.redb");
    if path.exists() {
        std::fs::copy(path, &copy).map_err(|e| st(format!("copying {}: {e}", path.display())))?;
    }
    let snapshot = Store::open_ephemeral(&copy).map_err(|e| st(e.to_string()))?;
    let outcome = import_staged(file, &snapshot, o, now).await?;
    match outcome {
        Staging::Already(summary) => Ok(Imported::AlreadyImported { summary }),
        Staging::Ready(b, staged) => {
            drop(snapshot);
            let live = Store::open(path).map_err(|e| st(e.to_string()))?;
            let ledger = ImportLedger {
                exporter: b.config.exporter.clone(),
                sequence: b.config.sequence,
                digest: b.manifest_digest.clone(),
                imported_at: now,
            };
            let merged = live.merge_verified(&staged.store, &b.config.tuf_repo, &ledger).map_err(|e| st(e.to_string()))?;
            Ok(Imported::Imported { summary: staged.summary, merged })
        }
    }
}
