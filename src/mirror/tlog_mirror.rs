//! The transparency-log witness: for each log of the trusted root, fetch the signed checkpoint
//! (Rekor v1 `GET /api/v1/log`; tlog-tiles / Rekor v2 `GET <base>/checkpoint`), verify the log's
//! signature, and — when the tree grew — the consistency proof from the witnessed size (Rekor v1
//! `GET /api/v1/log/proof`; computed from O(log n) tiles for tlog-tiles logs); cosign what verified
//! (C2SP tlog-cosignature/v1) and store it as the newest witnessed checkpoint. A smaller tree, or
//! another root for a witnessed size, or a proof that does not verify, raises an alarm with both
//! signed checkpoints kept as evidence, and the log stays untrusted until an operator resolves it.
//!
//! Steady state: one request per log when nothing changed, two (checkpoint + a proof of
//! O(log n) hashes) when it grew. The same acceptance path serves C2SP tlog-witness
//! `add-checkpoint` submissions (logs pushing to the witness) and proves bundles' checkpoints
//! consistent with the witnessed history (`prove`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::core::clock::Clock;
use crate::core::evidence::Evidence;
use crate::core::tlog::{self, Hash, HistoryVerdict, LogKey, Step, TlogError, TlogErrorKind, Verified, Witness, err};
use crate::store::Store;
use crate::store::tlog::{Alarm, Cas};
use crate::trust::TrustRoot;

/// Largest response accepted from a log (a checkpoint JSON, a proof of ≤ 128 hashes).
const MAX_RESPONSE: usize = 64 * 1024;

pub struct TlogMirror {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    trust: Arc<dyn TrustRoot>,
    witness: Arc<Witness>,
    client: reqwest::Client,
    requests: AtomicU64,
}

/// What one log's sync did.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    pub log: String,
    pub base_url: String,
    /// `first`, `unchanged`, `advanced` — or the refusal.
    pub outcome: String,
    pub size: Option<u64>,
    pub error: Option<TlogError>,
}

fn step_name(s: &Step) -> String {
    match s {
        Step::First => "first".into(),
        Step::Unchanged => "unchanged".into(),
        Step::Advanced { from } => format!("advanced from {from}"),
        Step::Stale { witnessed } => format!("stale (witnessed {witnessed})"),
    }
}

fn hex_hashes(v: &serde_json::Value) -> Result<Vec<Hash>, String> {
    let arr = match v {
        serde_json::Value::Null => return Ok(vec![]),
        serde_json::Value::Array(a) => a,
        _ => return Err("hashes is not a list".into()),
    };
    if arr.len() > tlog::MAX_PROOF {
        return Err(format!("{} proof hashes", arr.len()));
    }
    arr.iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| hex::decode(s).ok())
                .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
                .ok_or_else(|| format!("proof hash {h} is not 32 hex bytes"))
        })
        .collect()
}

impl TlogMirror {
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>, trust: Arc<dyn TrustRoot>, witness: Arc<Witness>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("trustmirror/", env!("CARGO_PKG_VERSION"), " (witness)"))
            .build()
            .expect("HTTP client");
        Self { store, clock, trust, witness, client, requests: AtomicU64::new(0) }
    }

    pub fn witness(&self) -> &Witness {
        &self.witness
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Requests made to logs so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn logs(&self) -> Vec<LogKey> {
        tlog::log_keys(&self.trust.current())
    }

    pub fn log(&self, id: &str) -> Option<LogKey> {
        self.logs().into_iter().find(|l| l.id == id)
    }

    async fn get_bytes(&self, url: &str, max: usize) -> Result<Vec<u8>, TlogError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let fail = |d: String| err(TlogErrorKind::Fetch, format!("{url}: {d}"));
        let mut r = self.client.get(url).send().await.map_err(|e| fail(crate::core::tuf::display_chain(&e)))?;
        if !r.status().is_success() {
            return Err(fail(format!("HTTP {}", r.status())));
        }
        let mut buf = vec![];
        while let Some(c) = r.chunk().await.map_err(|e| fail(e.to_string()))? {
            if buf.len() + c.len() > max {
                return Err(fail(format!("response larger than {max} bytes")));
            }
            buf.extend_from_slice(&c);
        }
        Ok(buf)
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, TlogError> {
        let b = self.get_bytes(url, MAX_RESPONSE).await?;
        serde_json::from_slice(&b).map_err(|e| err(TlogErrorKind::Fetch, format!("{url}: not JSON: {e}")))
    }

    /// The log's current signed checkpoint: `<base>/checkpoint` for tlog-tiles logs (Ed25519
    /// keys, Rekor v2), `signedTreeHead` of `GET /api/v1/log` for Rekor v1.
    async fn fetch_checkpoint(&self, log: &LogKey) -> Result<String, TlogError> {
        let base = log.base_url.trim_end_matches('/');
        if log.is_ed25519() {
            let b = self.get_bytes(&format!("{base}/checkpoint"), tlog::MAX_CHECKPOINT).await?;
            return String::from_utf8(b).map_err(|_| err(TlogErrorKind::Malformed, format!("log {}: checkpoint is not UTF-8", log.id)));
        }
        let v = self.get_json(&format!("{base}/api/v1/log")).await?;
        v["signedTreeHead"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| err(TlogErrorKind::Malformed, format!("log {}: no signedTreeHead", log.id)))
    }

    /// A consistency proof from `m` to `n` (whose signed root is `root_n`): Rekor v1's proof
    /// endpoint, or computed from tlog-tiles — O(log n) tiles, which must first reproduce the
    /// signed root (so a proof computed from them that fails is evidence, not a bad download).
    async fn consistency_proof(&self, log: &LogKey, m: u64, n: u64, root_n: &Hash) -> Result<Vec<Hash>, TlogError> {
        let base = log.base_url.trim_end_matches('/');
        if !log.is_ed25519() {
            let v = self.get_json(&format!("{base}/api/v1/log/proof?firstSize={m}&lastSize={n}")).await?;
            return hex_hashes(&v["hashes"]).map_err(|e| err(TlogErrorKind::Malformed, format!("log {} proof {m}→{n}: {e}", log.id)));
        }
        use crate::core::merkle::{consistency_proof_from, subtree};
        let mut rec = tlog::TileSet::recorder(n);
        let _ = subtree(&mut rec, 0, n);
        let _ = consistency_proof_from(&mut rec, m, n);
        let mut tiles = std::collections::BTreeMap::new();
        for (level, index, width) in rec.needed {
            let b = self.get_bytes(&format!("{base}/{}", tlog::tile_path(level, index, width)), 256 * 32).await?;
            if b.len() != width as usize * 32 {
                return Err(err(
                    TlogErrorKind::Malformed,
                    format!("log {}: tile {} has {} bytes, expected {}", log.id, tlog::tile_path(level, index, width), b.len(), width * 32),
                ));
            }
            tiles.insert((level, index), b);
        }
        let mut ts = tlog::TileSet::with_tiles(n, tiles);
        let root = subtree(&mut ts, 0, n).map_err(|e| err(TlogErrorKind::Malformed, e))?;
        if &root != root_n {
            return Err(err(TlogErrorKind::Fetch, format!("log {}: its tiles do not reproduce the signed root of size {n}", log.id)));
        }
        consistency_proof_from(&mut ts, m, n).map_err(|e| err(TlogErrorKind::Malformed, e))
    }

    /// Witness every log of the trusted root once.
    pub async fn sync(&self) -> Vec<LogReport> {
        let mut out = vec![];
        for log in self.logs() {
            let res = self.sync_log(&log).await;
            let now = self.clock.now();
            let (outcome, size, error) = match res {
                Ok((s, v)) => (step_name(&s), Some(v.size), None),
                Err(e) => {
                    if !e.kind.is_misbehaviour() && e.kind != TlogErrorKind::Untrusted {
                        let _ = self.store.tlog_note(&log.id, &log.base_url, now, Some(e.to_string()));
                    }
                    tracing::warn!(log = %log.id, error = %e, "transparency log not witnessed");
                    (e.kind.as_str().to_string(), None, Some(e))
                }
            };
            out.push(LogReport { log: log.id.clone(), base_url: log.base_url.clone(), outcome, size, error });
        }
        out
    }

    async fn sync_log(&self, log: &LogKey) -> Result<(Step, Verified), TlogError> {
        let text = self.fetch_checkpoint(log).await?;
        let state = self.store.tlog_state(&log.id).map_err(|e| err(TlogErrorKind::Store, e.to_string()))?;
        if let Some(a) = state.as_ref().and_then(|s| s.alarm) {
            return Err(err(
                TlogErrorKind::Untrusted,
                format!("log {} is untrusted since alarm #{a}; resolve it with `trustmirror tlog resolve`", log.id),
            ));
        }
        let prev = state.as_ref().and_then(|s| s.latest.clone());
        let checked = tlog::verify_checkpoint(&text, log, prev.as_ref().map(|p| p.origin.as_str()))?;
        let proof = match &prev {
            Some(p) if checked.size > p.size => Some(self.consistency_proof(log, p.size, checked.size, &checked.root).await?),
            // a smaller tree: consistent with the witnessed one (a lagging cache) or evidence of
            // a fork; without a proof there is no evidence either way
            Some(p) if checked.size < p.size => match self.consistency_proof(log, checked.size, p.size, &p.root).await {
                Ok(proof) => {
                    return match tlog::witness_step(Some((p.size, &p.root)), &checked, Some(&proof)) {
                        Ok(step) => Ok((step, p.clone())),
                        Err(e) => Err(self.raise(log, e, Some(p), &text, Some(&proof))?),
                    };
                }
                Err(e) => {
                    // no evidence either way: reported, the witnessed state kept, no alarm
                    return Err(err(
                        TlogErrorKind::Rollback,
                        format!(
                            "log presents size {} after {} was witnessed and offers no consistency proof (a rollback, or a cache that cannot show it is only behind): {}",
                            checked.size, p.size, e.detail
                        ),
                    ));
                }
            },
            _ => None,
        };
        let step = self.accept(log, &text, prev.as_ref().map(|p| p.size), proof.as_deref())?;
        let latest = self.store.tlog_state(&log.id).ok().flatten().and_then(|s| s.latest).unwrap_or(checked);
        Ok((step, latest))
    }

    /// The witness's acceptance path (sync, add-checkpoint): verify, decide, cosign and store,
    /// or keep the evidence and raise the alarm. `old` is the size the submitter believes was
    /// witnessed last (`None`: nothing).
    pub fn accept(&self, log: &LogKey, text: &str, old: Option<u64>, proof: Option<&[Hash]>) -> Result<Step, TlogError> {
        let now = self.clock.now();
        let state = self.store.tlog_state(&log.id).map_err(|e| err(TlogErrorKind::Store, e.to_string()))?;
        if let Some(a) = state.as_ref().and_then(|s| s.alarm) {
            return Err(err(
                TlogErrorKind::Untrusted,
                format!("log {} is untrusted since alarm #{a}; resolve it with `trustmirror tlog resolve`", log.id),
            ));
        }
        let prev = state.and_then(|s| s.latest);
        let v = tlog::verify_checkpoint(text, log, prev.as_ref().map(|p| p.origin.as_str()))?;
        let current = prev.as_ref().map(|p| p.size);
        if old != current {
            return Err(err(TlogErrorKind::Conflict, format!("{}", current.unwrap_or(0))));
        }
        let step = match tlog::witness_step(prev.as_ref().map(|p| (p.size, &p.root)), &v, proof) {
            Ok(s) => s,
            Err(e) if e.kind.is_misbehaviour() => return Err(self.raise(log, e, prev.as_ref(), text, proof)?),
            Err(e) => return Err(e),
        };
        if step == Step::Unchanged {
            let _ = self.store.tlog_note(&log.id, &log.base_url, now, None);
            return Ok(step);
        }
        let mut cosigned = v.clone();
        let mut t = v.text.clone();
        if !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(&self.witness.cosign(&format!("{}\n", v.body()), now.as_second().max(0) as u64));
        cosigned.text = t;
        match self
            .store
            .tlog_accept(&log.id, &log.base_url, current, &cosigned, now, proof)
            .map_err(|e| err(TlogErrorKind::Store, e.to_string()))?
        {
            Cas::Stored => {
                tracing::info!(log = %log.id, size = v.size, step = %step_name(&step), "checkpoint witnessed");
                Ok(step)
            }
            Cas::Conflict(n) => Err(err(TlogErrorKind::Conflict, format!("{n}"))),
        }
    }

    /// Keep the evidence of misbehaviour `e` — the witnessed checkpoint and the conflicting one,
    /// both signed by the log, and the proof offered — and mark the log untrusted. Returns the
    /// error to report.
    fn raise(
        &self,
        log: &LogKey,
        e: TlogError,
        witnessed: Option<&Verified>,
        conflicting: &str,
        proof: Option<&[Hash]>,
    ) -> Result<TlogError, TlogError> {
        let alarm = Alarm {
            id: 0,
            log: log.id.clone(),
            kind: e.kind,
            detail: e.detail.clone(),
            detected_at: self.clock.now(),
            witnessed: witnessed.map(|p| p.text.clone()).unwrap_or_default(),
            conflicting: conflicting.to_string(),
            proof: proof.unwrap_or_default().iter().map(hex::encode).collect(),
            resolved: None,
        };
        let id = self.store.tlog_raise(alarm, &log.base_url).map_err(|e| err(TlogErrorKind::Store, e.to_string()))?;
        tracing::error!(log = %log.id, alarm = id, kind = %e.kind, detail = %e.detail, "TRANSPARENCY LOG MISBEHAVIOUR: evidence stored; the log is untrusted until resolved");
        Ok(TlogError { kind: e.kind, detail: format!("{} (alarm #{id}, evidence stored)", e.detail) })
    }

    /// Prove a checkpoint a bundle cites (`note`, which must be signed by the log) consistent
    /// with the witnessed history, fetching a consistency proof to the newest witnessed size when
    /// needed. A note the log did not sign is refused (nothing else happens: no alarm rests on
    /// anything but the log's own signatures); a signed one that contradicts the history raises
    /// the alarm with both signed checkpoints as evidence.
    pub async fn prove(&self, log_id: &str, note: &str) -> Result<HistoryVerdict, TlogError> {
        let Some(log) = self.log(log_id) else { return Ok(HistoryVerdict::UnknownLog { log: log_id.into() }) };
        let cited = tlog::verify_checkpoint(note, &log, None)?;
        let (size, root) = (cited.size, cited.root);
        let st = |e: crate::store::StoreError| err(TlogErrorKind::Store, e.to_string());
        let mut state = self.store.tlog_state(log_id).map_err(st)?;
        if state.as_ref().and_then(|s| s.latest.as_ref()).is_none_or(|l| l.size < size) {
            let _ = self.sync_log(&log).await;
            state = self.store.tlog_state(log_id).map_err(st)?;
        }
        let alarm = state.as_ref().and_then(|s| s.alarm).map(|a| format!("alarm #{a}"));
        let known = self.store.tlog_root(log_id, size).map_err(st)?;
        let latest = state.as_ref().and_then(|s| s.latest.clone());
        let verdict = tlog::against_history(size, &root, known, latest.as_ref().map(|l| l.size), alarm.as_deref());
        if let HistoryVerdict::Inconsistent { detail, .. } = &verdict {
            // two signed roots for one size: the history's and the one this note carries
            let witnessed = self.store.tlog_history(log_id).ok().and_then(|h| h.into_iter().find(|(s, _)| *s == size)).map(|(_, t)| t);
            let w = witnessed.as_deref().map(|t| Verified { origin: String::new(), size, root: [0; 32], text: t.to_string() });
            let e = self.raise(&log, err(TlogErrorKind::SplitView, detail.clone()), w.as_ref().or(latest.as_ref()), note, None)?;
            return Ok(HistoryVerdict::Inconsistent { size, detail: e.detail });
        }
        let HistoryVerdict::Unwitnessed { .. } = verdict else { return Ok(verdict) };
        let Some(l) = latest else { return Ok(verdict) };
        if size > l.size || size == 0 {
            return Ok(verdict);
        }
        let proof = self.consistency_proof(&log, size, l.size, &l.root).await?;
        match tlog::verify_consistency(size, &root, l.size, &l.root, &proof) {
            Ok(()) => {
                self.store.tlog_put_proven(log_id, size, &root, l.size, &proof).map_err(st)?;
                Ok(HistoryVerdict::Consistent { size, witnessed: l.size })
            }
            Err(e) => {
                let detail = format!(
                    "a checkpoint of size {size} (root {}) is not consistent with witnessed size {}: {e}",
                    hex::encode(root),
                    l.size
                );
                let e = self.raise(&log, err(TlogErrorKind::SplitView, detail), Some(&l), note, Some(&proof))?;
                Ok(HistoryVerdict::Inconsistent { size, detail: e.detail })
            }
        }
    }

    /// Prove the checkpoints cited by mirrored items not proven yet (after an OCI sync). Only
    /// items whose evidence `feeds` accepts are considered — the service passes "verified and
    /// signed by an authority of a policy": whatever else sits in the registry does not reach
    /// the witness.
    pub async fn prove_mirrored(&self, feeds: &(dyn Fn(&Evidence) -> bool + Send + Sync)) -> (usize, usize) {
        let (mut proven, mut failed) = (0, 0);
        let Ok(list) = self.store.oci_list() else { return (0, 0) };
        let mut seen = std::collections::BTreeSet::new();
        for s in list {
            let Ok(Some(m)) = self.store.oci_material(&s.repository, &s.digest) else { continue };
            for e in m.items.iter().filter_map(|i| i.evidence.as_ref()).filter(|e| feeds(e)) {
                for c in &e.checkpoints {
                    if !seen.insert((c.log.clone(), c.size)) || self.store.tlog_root(&c.log, c.size).ok().flatten().is_some() {
                        continue;
                    }
                    match self.prove(&c.log, &c.note).await {
                        Ok(HistoryVerdict::Consistent { .. }) => proven += 1,
                        _ => failed += 1,
                    }
                }
            }
        }
        (proven, failed)
    }

    /// The newest witnessed checkpoint of a log, with the cosignature.
    pub fn cosigned(&self, log: &str) -> Option<String> {
        self.store.tlog_state(log).ok().flatten().and_then(|s| s.latest).map(|l| l.text)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
