//! Mirroring a TUF repository into the store: run the client workflow against the upstream,
//! download every target a client could resolve, and commit the verified result in one store
//! transaction. A failed refresh leaves the served state exactly as it was.
//!
//! Request economy: the refresh starts with `timestamp.json`. When it is byte-identical to the
//! stored one and the root was probed recently (`root_probe_interval`), nothing else is fetched —
//! one request per refresh in the steady state. Otherwise the full workflow runs (root chain
//! walk first, then the already-fetched timestamp is verified against the newest root), and only
//! metadata and targets that changed are downloaded.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::core::clock::Clock;
use crate::core::digest::sha256_hex;
use crate::core::tuf::{TufError, TufErrorKind, TufResult, consistent_target_path, peek};
use crate::mirror::tuf_client::{Limits, LocalMetadata, RefreshReport, Updater};
use crate::mirror::upstream::Upstream;
use crate::store::{ServedTarget, Store, TufCommit, TufState, TufStatus};

#[derive(Debug, Clone)]
pub struct TufMirrorConfig {
    /// Name of the repository in the store (`default` unless several are mirrored).
    pub repo: String,
    pub upstream: Upstream,
    /// Root trusted when the store has none yet.
    pub pinned_root: Vec<u8>,
    pub limits: Limits,
    /// Probe for a new root at least this often even when the timestamp is unchanged.
    pub root_probe_interval: SignedDuration,
    /// Mirror only targets whose path matches one of these globs (`*` crosses `/`); `None`
    /// mirrors every target.
    pub targets: Option<Vec<glob::Pattern>>,
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshSummary {
    pub changed: bool,
    pub report: RefreshReport,
    pub delegated_downloaded: usize,
    pub targets_downloaded: usize,
    pub targets_total: usize,
    /// Upstream requests made by this refresh.
    pub requests: u64,
}

pub struct TufMirror {
    store: Arc<Store>,
    cfg: TufMirrorConfig,
    clock: Arc<dyn Clock>,
}

/// Staging area for one refresh: reads fall through to the stored state, writes collect here and
/// reach the store only when the whole refresh has succeeded.
struct Staging<'a> {
    state: &'a TufState,
    files: Vec<(String, u64, Vec<u8>)>,
}

impl LocalMetadata for Staging<'_> {
    fn load(&self, role: &str) -> Option<Vec<u8>> {
        if let Some((_, _, b)) = self.files.iter().rev().find(|(r, _, _)| r == role) {
            return Some(b.clone());
        }
        self.state.bytes(role).map(|b| b.to_vec())
    }
    fn persist(&mut self, role: &str, version: u64, bytes: &[u8]) -> TufResult<()> {
        self.files.push((role.to_string(), version, bytes.to_vec()));
        Ok(())
    }
}

fn store_err(e: crate::store::StoreError) -> TufError {
    TufError::new("store", TufErrorKind::Store, e.to_string())
}

/// Check that every stored role is unexpired at `now` (the steady-state path re-verifies
/// freshness without downloading).
pub fn check_stored_freshness(state: &TufState, now: Timestamp) -> TufResult<()> {
    for (role, (_, bytes)) in &state.current {
        if let Some((_, _, expires)) = peek(bytes)
            && expires < now
        {
            return Err(TufError::new(role, TufErrorKind::Expired, format!("expired at {expires} and the upstream offers nothing newer")));
        }
    }
    Ok(())
}

impl TufMirror {
    pub fn new(store: Arc<Store>, cfg: TufMirrorConfig, clock: Arc<dyn Clock>) -> Self {
        Self { store, cfg, clock }
    }

    pub fn set_target_filter(&mut self, globs: Vec<glob::Pattern>) {
        self.cfg.targets = Some(globs);
    }

    pub fn config(&self) -> &TufMirrorConfig {
        &self.cfg
    }
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// One refresh. On failure the error is recorded in the repository's status (and counted by
    /// reason); the trusted data is untouched.
    pub async fn refresh(&self) -> TufResult<RefreshSummary> {
        let now = self.clock.now();
        let state = self.store.tuf_state(&self.cfg.repo).map_err(store_err)?;
        let mut status = state.status.clone();
        status.upstream = self.cfg.upstream.describe();
        status.last_attempt = Some(now);
        let before = self.cfg.upstream.requests();
        let res = self.refresh_inner(&state, &mut status, now).await;
        match res {
            Ok(mut s) => {
                s.requests = self.cfg.upstream.requests() - before;
                Ok(s)
            }
            Err(e) => {
                tracing::warn!(repo = %self.cfg.repo, upstream = %status.upstream, error = %e, "TUF refresh failed; still serving the last verified state");
                status.last_error = Some(e.clone());
                status.consecutive_failures += 1;
                *status.failures.entry(e.kind.as_str().to_string()).or_default() += 1;
                if let Err(se) = self.store.tuf_put_status(&self.cfg.repo, &status) {
                    tracing::error!(error = %se, "could not record refresh failure");
                }
                Err(e)
            }
        }
    }

    async fn refresh_inner(&self, state: &TufState, status: &mut TufStatus, now: Timestamp) -> TufResult<RefreshSummary> {
        let root = state.bytes("root").map(|b| b.to_vec()).unwrap_or_else(|| self.cfg.pinned_root.clone());
        let mut up = Updater::new(self.cfg.upstream.clone(), &root, self.cfg.limits)?;
        let ts = up.fetch_timestamp().await?;
        let probe_due = status.last_root_probe.is_none_or(|t| now.duration_since(t) >= self.cfg.root_probe_interval);
        if state.bytes("timestamp") == Some(ts.as_slice()) && !probe_due {
            check_stored_freshness(state, now)?;
            status.last_success = Some(now);
            status.last_error = None;
            status.consecutive_failures = 0;
            self.store.tuf_put_status(&self.cfg.repo, status).map_err(store_err)?;
            tracing::debug!(repo = %self.cfg.repo, "timestamp unchanged");
            let targets_total = self.store.tuf_targets(&self.cfg.repo).map_err(store_err)?.len();
            return Ok(RefreshSummary { targets_total, ..Default::default() });
        }

        let mut staging = Staging { state, files: vec![] };
        if state.bytes("root").is_none() {
            // First refresh: the pinned root is trusted (self-signed to threshold, checked by
            // `Updater::new`) and served too, so clients pinned to it can start their chain here.
            let v = up.trusted().root().version;
            staging.persist("root", v, &root)?;
        }
        let report = up.refresh(&mut staging, now, Some(ts)).await?;
        status.last_root_probe = Some(now);
        let (mut targets, delegated_downloaded) = up.load_everything(&mut staging, now).await?;
        if let Some(globs) = &self.cfg.targets {
            targets.retain(|t| globs.iter().any(|g| g.matches(&t.path)));
        }
        // Every role in the store that is not reachable any more is dropped from the current set.
        let mut reachable: BTreeSet<String> = ["root", "timestamp", "snapshot", "targets"].iter().map(|s| s.to_string()).collect();
        reachable.extend(up.trusted().delegated_roles().map(|(n, _)| n.clone()));
        let dropped: Vec<String> = state.current.keys().filter(|r| !reachable.contains(*r)).cloned().collect();

        // targets: download what the store does not hold yet
        let consistent = up.trusted().root().consistent_snapshot;
        let mut served = Vec::new();
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut downloaded = 0;
        let generation = status.generation + 1;
        for t in &targets {
            let known = t.info.hashes.get("sha256").map(|h| h.to_ascii_lowercase());
            let sha = match known {
                Some(h) if self.store.has_blob(&h).map_err(store_err)? || blobs.iter().any(|(s, _)| *s == h) => h,
                _ => {
                    let bytes = up.download_target(t).await?;
                    downloaded += 1;
                    let h = sha256_hex(&bytes);
                    if !blobs.iter().any(|(s, _)| *s == h) {
                        blobs.push((h.clone(), bytes));
                    }
                    h
                }
            };
            let mut paths = vec![t.path.clone()];
            if consistent {
                for h in t.info.hashes.values() {
                    paths.push(consistent_target_path(&t.path, h));
                }
            }
            served
                .push((paths, ServedTarget { path: t.path.clone(), sha256: sha, length: t.info.length, role: t.role.clone(), generation }));
        }

        let changed = !staging.files.is_empty() || !dropped.is_empty() || !blobs.is_empty();
        status.last_success = Some(now);
        status.last_error = None;
        status.consecutive_failures = 0;
        let summary = RefreshSummary {
            changed,
            report,
            delegated_downloaded,
            targets_downloaded: downloaded,
            targets_total: targets.len(),
            requests: 0,
        };
        if !changed {
            self.store.tuf_put_status(&self.cfg.repo, status).map_err(store_err)?;
            return Ok(summary);
        }
        status.generation = generation;
        status.last_change = Some(now);
        let commit = TufCommit { files: staging.files, dropped_roles: dropped, targets: Some(served), blobs, status: status.clone() };
        self.store.tuf_commit(&self.cfg.repo, &commit).map_err(store_err)?;
        tracing::info!(
            repo = %self.cfg.repo,
            root = up.trusted().root().version,
            timestamp = up.trusted().timestamp().map(|t| t.version),
            snapshot = up.trusted().snapshot().map(|s| s.version),
            targets = summary.targets_total,
            downloaded = summary.targets_downloaded,
            "TUF mirror updated"
        );
        Ok(summary)
    }
}
