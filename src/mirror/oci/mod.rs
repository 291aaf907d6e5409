//! Mirroring signatures and attestations from OCI sources into the store, ahead of admission.
//!
//! For each configured image pattern (`registry.internal/myorg/**`, or a single reference), the
//! sync lists repositories and tags, resolves image tags to digests (recording when), and for each
//! digest fetches its cosign `.sig`/`.att`/`.sbom` tags and Sigstore bundle referrers (referrers
//! API, else the tag schema), verifies every item with the offline engine against the trust root,
//! and stores the result — verified items, and rejected ones with their reason — in one
//! transaction per digest. Multi-arch indexes bring their platform manifests along.
//!
//! Incremental: a repository's tag list is diffed against the previous sync; only new image tags
//! are resolved and only digests whose cosign tags appeared (or that are not held yet) are fetched.
//! Every `full_recheck_interval`, all tags are re-resolved (moved tags) and held digests' cosign
//! tags are re-checked by digest (appended signatures). Bounded concurrency, retries with backoff;
//! a crash loses at most the digests in flight (each is committed whole).
//!
//! | file | what |
//! |---|---|
//! | [`registry`] | registry access: credentials, retries, listing, manifests, material |
//! | [`layout`] | OCI image layouts on disk |
//! | [`plan`] | what a sync must fetch: patterns → repositories → tags → digests |
//! | [`ingest`] | fetch, verify and store one digest's material |
//! | [`queue`] | the on-demand ingestion queue admission feeds on a miss |

pub mod http;
pub mod ingest;
pub mod layout;
pub mod material;
pub mod plan;
pub mod push;
pub mod queue;
pub mod registry;
pub mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use serde::Serialize;

use crate::core::clock::Clock;
use crate::store::Store;
use crate::trust::TrustRoot;

pub use material::{Credentials, ImageMaterial, MAX_BLOB, MAX_MANIFEST, OciError, RegistryOptions};
pub use queue::{QueueRx, queue, run_queue, spawn_queue};
pub use registry::Registry;
pub use source::OciSource;

#[derive(Debug, Clone)]
pub struct OciMirrorConfig {
    /// Patterns (`host/path/**`, `host/repo*`) and references (`host/repo:tag`, `host/repo@sha256:…`).
    pub images: Vec<String>,
    /// OCI layout directories carried across the gap.
    pub layouts: Vec<PathBuf>,
    /// Connection settings and credentials (per host).
    pub registry: RegistryOptions,
    pub concurrency: usize,
    pub full_recheck_interval: SignedDuration,
    pub retries: u32,
    /// Public keys (name, SPKI DER) key-signed material is verified with at ingest.
    pub keys: Vec<(String, Vec<u8>)>,
    /// Limit for one registry operation (a request, or fetching one digest's material): a
    /// registry that stops answering costs this much, then the sync goes on.
    pub op_timeout: Duration,
}

impl Default for OciMirrorConfig {
    fn default() -> Self {
        Self {
            images: vec![],
            layouts: vec![],
            registry: RegistryOptions::default(),
            concurrency: 8,
            full_recheck_interval: SignedDuration::from_hours(1),
            retries: 3,
            keys: vec![],
            op_timeout: Duration::from_secs(60),
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub repositories: usize,
    pub tags_resolved: usize,
    pub digests_ingested: usize,
    pub digests_skipped: usize,
    pub items_verified: usize,
    pub items_rejected: usize,
    /// Failures that did not stop the sync: (what, error).
    pub errors: Vec<(String, String)>,
}

impl SyncReport {
    fn error(&mut self, what: impl Into<String>, e: impl std::fmt::Display) {
        self.errors.push((what.into(), e.to_string()));
    }
}

pub struct OciMirror {
    store: Arc<Store>,
    cfg: OciMirrorConfig,
    clock: Arc<dyn Clock>,
    trust: Arc<dyn TrustRoot>,
    registry: Registry,
    progress: bool,
}

impl OciMirror {
    /// `trust` hands out the trust root to verify with (normally the [`crate::trust::TrustSource`]).
    pub fn new(store: Arc<Store>, cfg: OciMirrorConfig, clock: Arc<dyn Clock>, trust: Arc<dyn TrustRoot>) -> Self {
        let registry = Registry::new(cfg.registry.clone(), cfg.retries, cfg.op_timeout).unwrap_or_else(|e| {
            tracing::error!(error = %e, "registry client: falling back to the defaults");
            Registry::new(RegistryOptions::default(), cfg.retries, cfg.op_timeout).expect("default registry client")
        });
        Self { store, cfg, clock, trust, registry, progress: false }
    }

    /// Show a progress bar (for a terminal).
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn config(&self) -> &OciMirrorConfig {
        &self.cfg
    }

    /// Is `reference` inside the configured image patterns (by repository, normalized)? Only
    /// such references are ingested on demand.
    pub fn covers(&self, reference: &str) -> bool {
        let Ok(r) = crate::core::reference::parse(reference) else { return false };
        self.cfg.images.iter().any(|p| {
            if p.contains(['*', '?', '[']) {
                glob::Pattern::new(&crate::core::reference::normalize_repository(p)).is_ok_and(|g| g.matches(&r.repository))
            } else {
                crate::core::reference::parse(p).is_ok_and(|c| c.repository == r.repository)
            }
        })
    }

    /// One full sync pass over every configured source.
    pub async fn sync(&self) -> SyncReport {
        let mut report = SyncReport::default();
        let work = self.plan(&mut report).await;
        self.ingest_all(work.digests, &work.listed, &mut report).await;
        for dir in self.cfg.layouts.clone() {
            if let Err(e) = self.ingest_layout(&dir, &mut report).await {
                report.error(dir.display().to_string(), e);
            }
        }
        for (what, e) in &report.errors {
            tracing::warn!(what, error = %e, "sync error (the sync went on)");
        }
        tracing::info!(
            repositories = report.repositories,
            tags = report.tags_resolved,
            ingested = report.digests_ingested,
            skipped = report.digests_skipped,
            verified = report.items_verified,
            rejected = report.items_rejected,
            errors = report.errors.len(),
            "OCI mirror sync"
        );
        report
    }
}
