//! Mirroring signatures and attestations from OCI sources into the store, ahead of admission.
//!
//! For each configured image pattern (`registry.internal/myorg/**`, or a single reference), the
//! sync lists repositories and tags, resolves image tags to digests (recording when), and for each
//! digest fetches its cosign `.sig`/`.att`/`.sbom` tags and Sigstore bundle referrers (referrers
//! API, else the tag schema), verifies every item with the offline engine against the mirrored
//! trust root, and stores the result — verified items, and rejected ones with their reason — in
//! one transaction per digest. Multi-arch indexes bring their platform manifests along.
//!
//! Incremental: a repository's tag list is diffed against the previous sync; only new image tags
//! are resolved and only digests whose cosign tags appeared (or that are not held yet) are fetched.
//! Every `full_recheck_interval`, all tags are re-resolved (moved tags) and held digests' cosign
//! tags are re-checked by digest (appended signatures). Bounded concurrency, retries with backoff;
//! a crash loses at most the digests in flight (each is committed whole).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::core::clock::Clock;
use crate::core::cosign::{bundle_from_att_layer, bundle_from_sig_layer, check_simple_signing};
use crate::core::verify::{Authority, Check, IdentityPolicy, Subject, TrustedMaterial, VerifyError, verify_bundle};
use crate::mirror::oci::{ImageMaterial, OciError, OciSource, RegistryOptions, material_for_digest};
use crate::store::oci::{Item, ItemKind, ItemStatus, MaterialRecord, RepoRecord, TagRecord};
use crate::store::{Store, sha256_hex};

const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

#[derive(Debug, Clone)]
pub struct OciMirrorConfig {
    /// Patterns (`host/path/**`, `host/repo*`) and references (`host/repo:tag`, `host/repo@sha256:…`).
    pub images: Vec<String>,
    /// OCI layout directories carried across the gap.
    pub layouts: Vec<PathBuf>,
    pub registry: RegistryOptions,
    /// Per-registry credentials (`host` → options), overriding `registry`'s.
    pub auth: BTreeMap<String, RegistryAuth>,
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
            auth: BTreeMap::new(),
            concurrency: 8,
            full_recheck_interval: SignedDuration::from_hours(1),
            retries: 3,
            keys: vec![],
            op_timeout: Duration::from_secs(60),
        }
    }
}

/// Outcome of ingesting one digest: `Some((verified, rejected))`, `None` when unchanged.
type IngestResult = Result<Option<(usize, usize)>, String>;

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

pub struct OciMirror {
    store: Arc<Store>,
    cfg: OciMirrorConfig,
    clock: Arc<dyn Clock>,
    trust: Arc<dyn Fn() -> Arc<TrustedMaterial> + Send + Sync>,
    client: Client,
    progress: bool,
}

fn is_cosign_tag(t: &str) -> Option<(String, &str)> {
    let rest = t.strip_prefix("sha256-")?;
    let (hex, suffix) = match rest.split_once('.') {
        Some((h, s)) => (h, s),
        None => (rest, ""),
    };
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (format!("sha256:{hex}"), suffix))
}

/// Page size asked for in `_catalog` and `tags/list`.
const PAGE: usize = 1000;

/// Add a page to `out`; whether to ask for another. Registries differ: some honour `n`/`last`,
/// distribution 2.8 ignores both and returns everything, unsorted, every time. Another page is
/// asked for only when this one was exactly full and brought something new.
fn paginate(out: &mut Vec<String>, page: Vec<String>, last: &mut Option<String>) -> bool {
    let full = page.len() == PAGE;
    let before = out.len();
    let seen: BTreeSet<String> = out.iter().cloned().collect();
    let mut newest = None;
    for t in page {
        if !seen.contains(&t) {
            newest = Some(t.clone());
            out.push(t);
        }
    }
    if let Some(n) = newest {
        *last = Some(n);
    }
    full && out.len() > before && out.len() < 1_000_000
}

fn glob_to_pattern(p: &str) -> Option<glob::Pattern> {
    glob::Pattern::new(p).ok()
}

impl OciMirror {
    /// `trust` returns the trust material to verify with (e.g. the mirrored TUF trusted_root.json).
    pub fn new(
        store: Arc<Store>,
        cfg: OciMirrorConfig,
        clock: Arc<dyn Clock>,
        trust: Arc<dyn Fn() -> Arc<TrustedMaterial> + Send + Sync>,
    ) -> Self {
        let client = match OciSource::registry(&cfg.registry) {
            OciSource::Registry { client, .. } => client,
            OciSource::Layout { .. } => unreachable!(),
        };
        Self { store, cfg, clock, trust, client, progress: false }
    }

    /// Show a progress bar (for a terminal).
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    fn auth_for(&self, host: &str) -> RegistryAuth {
        if let Some(a) = self.cfg.auth.get(host) {
            return a.clone();
        }
        let o = &self.cfg.registry;
        match (&o.bearer, &o.username, &o.password) {
            (Some(t), _, _) => RegistryAuth::Bearer(t.clone()),
            (None, Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        }
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 0..=self.cfg.retries {
            let res = match tokio::time::timeout(self.cfg.op_timeout, f()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {:?}", self.cfg.op_timeout)),
            };
            match res {
                Ok(v) => return Ok(v),
                Err(e) => {
                    last = e;
                    if attempt < self.cfg.retries {
                        tracing::debug!(what, attempt, error = %last, "retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        Err(format!("{what}: {last} (after {} attempts)", self.cfg.retries + 1))
    }

    /// Expand the configured patterns into repositories (`registry/repo`) and explicit references.
    async fn targets(&self, report: &mut SyncReport) -> (BTreeSet<String>, Vec<String>) {
        let mut repos = BTreeSet::new();
        let mut refs = vec![];
        let mut catalogs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &self.cfg.images {
            if p.contains('*') || p.contains('?') || p.contains('[') {
                let host = p.split('/').next().unwrap_or_default().to_string();
                if !catalogs.contains_key(&host) {
                    match self.catalog(&host).await {
                        Ok(c) => {
                            catalogs.insert(host.clone(), c);
                        }
                        Err(e) => {
                            report.errors.push((format!("catalog of {host}"), e));
                            catalogs.insert(host.clone(), vec![]);
                        }
                    }
                }
                let Some(pat) = glob_to_pattern(p) else {
                    report.errors.push((p.clone(), "invalid pattern".into()));
                    continue;
                };
                for r in &catalogs[&host] {
                    let full = format!("{host}/{r}");
                    if pat.matches(&full) {
                        repos.insert(full);
                    }
                }
            } else {
                refs.push(p.clone());
            }
        }
        (repos, refs)
    }

    async fn catalog(&self, host: &str) -> Result<Vec<String>, String> {
        let r: Reference = format!("{host}/catalog:latest").parse().map_err(|e| format!("{e}"))?;
        let auth = self.auth_for(host);
        let mut out = vec![];
        let mut last: Option<String> = None;
        loop {
            let page = self
                .retry(&format!("catalog of {host}"), || {
                    let (r, auth, last) = (r.clone(), auth.clone(), last.clone());
                    async move { self.client.catalog(&r, &auth, Some(PAGE), last.as_deref()).await.map_err(|e| e.to_string()) }
                })
                .await?;
            if !paginate(&mut out, page.repositories, &mut last) {
                return Ok(out);
            }
        }
    }

    async fn list_tags(&self, repo: &str) -> Result<BTreeSet<String>, String> {
        let r: Reference = format!("{repo}:latest").parse().map_err(|e| format!("{e}"))?;
        let auth = self.auth_for(r.registry());
        let mut out = vec![];
        let mut last: Option<String> = None;
        loop {
            let page = self
                .retry(&format!("tags of {repo}"), || {
                    let (r, auth, last) = (r.clone(), auth.clone(), last.clone());
                    async move { self.client.list_tags(&r, &auth, Some(PAGE), last.as_deref()).await.map_err(|e| e.to_string()) }
                })
                .await?;
            if !paginate(&mut out, page.tags, &mut last) {
                return Ok(out.into_iter().collect());
            }
        }
    }

    async fn resolve(&self, reference: &str) -> Result<String, String> {
        let r: Reference = reference.parse().map_err(|e| format!("{reference}: {e}"))?;
        let auth = self.auth_for(r.registry());
        self.retry(&format!("resolve {reference}"), || {
            let (r, auth) = (r.clone(), auth.clone());
            async move { self.client.fetch_manifest_digest(&r, &auth).await.map_err(|e| e.to_string()) }
        })
        .await
    }

    /// One full sync pass over every configured source.
    pub async fn sync(&self) -> SyncReport {
        let mut report = SyncReport::default();
        let now = self.clock.now();
        let (repos, refs) = self.targets(&mut report).await;
        report.repositories = repos.len();
        // (repository, digest, force) to ingest
        let mut work: Vec<(String, String, bool)> = vec![];
        let mut listed: BTreeMap<String, Arc<BTreeSet<String>>> = BTreeMap::new();
        for repo in &repos {
            match self.plan_repo(repo, now, &mut report).await {
                Ok((w, tags)) => {
                    work.extend(w);
                    listed.insert(repo.clone(), Arc::new(tags));
                }
                Err(e) => report.errors.push((repo.clone(), e)),
            }
        }
        for r in &refs {
            match self.plan_reference(r, now, &mut report).await {
                Ok(w) => work.extend(w),
                Err(e) => report.errors.push((r.clone(), e)),
            }
        }
        work.sort();
        work.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        self.ingest_all(work, &listed, &mut report).await;
        for dir in self.cfg.layouts.clone() {
            if let Err(e) = self.ingest_layout(&dir, &mut report).await {
                report.errors.push((dir.display().to_string(), e));
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

    async fn plan_repo(
        &self,
        repo: &str,
        now: Timestamp,
        report: &mut SyncReport,
    ) -> Result<(Vec<(String, String, bool)>, BTreeSet<String>), String> {
        let tags = self.list_tags(repo).await?;
        let prev = self.store.oci_repo(repo).map_err(|e| e.to_string())?.unwrap_or_default();
        let full = prev.full_check_at.is_none_or(|t| now.duration_since(t) >= self.cfg.full_recheck_interval);
        let mut work = vec![];
        let mut held_in_repo = BTreeSet::new();
        for t in &tags {
            if let Some((digest, _)) = is_cosign_tag(t) {
                // material appeared or changed for this digest
                if !prev.tags.contains(t) || !self.store.oci_has_material(&digest).map_err(|e| e.to_string())? {
                    work.push((repo.to_string(), digest.clone(), !prev.tags.contains(t)));
                }
                held_in_repo.insert(digest);
                continue;
            }
            let known = self.store.oci_tag(repo, t).map_err(|e| e.to_string())?;
            if !full && prev.tags.contains(t) && known.is_some() {
                continue;
            }
            match self.resolve(&format!("{repo}:{t}")).await {
                Ok(digest) => {
                    report.tags_resolved += 1;
                    if known.as_ref().map(|k| &k.digest) != Some(&digest) {
                        self.store
                            .oci_put_tag(repo, t, &TagRecord { digest: digest.clone(), resolved_at: self.clock.now() })
                            .map_err(|e| e.to_string())?;
                    }
                    work.push((repo.to_string(), digest, false));
                }
                Err(e) => report.errors.push((format!("{repo}:{t}"), e)),
            }
        }
        if full {
            // appended signatures do not change the tag list: re-check held digests by their sources
            for d in held_in_repo {
                work.push((repo.to_string(), d, false));
            }
        }
        self.store
            .oci_put_repo(
                repo,
                &RepoRecord { tags: tags.clone(), synced_at: Some(now), full_check_at: if full { Some(now) } else { prev.full_check_at } },
            )
            .map_err(|e| e.to_string())?;
        Ok((work, tags))
    }

    async fn plan_reference(&self, r: &str, _now: Timestamp, report: &mut SyncReport) -> Result<Vec<(String, String, bool)>, String> {
        let parsed: Reference = r.parse().map_err(|e| format!("{e}"))?;
        let repo = format!("{}/{}", parsed.registry(), parsed.repository());
        let digest = match parsed.digest() {
            Some(d) => d.to_string(),
            None => {
                let d = self.resolve(r).await?;
                report.tags_resolved += 1;
                let tag = parsed.tag().unwrap_or("latest");
                self.store
                    .oci_put_tag(&repo, tag, &TagRecord { digest: d.clone(), resolved_at: self.clock.now() })
                    .map_err(|e| e.to_string())?;
                d
            }
        };
        Ok(vec![(repo, digest, false)])
    }

    async fn ingest_all(
        &self,
        work: Vec<(String, String, bool)>,
        listed: &BTreeMap<String, Arc<BTreeSet<String>>>,
        report: &mut SyncReport,
    ) {
        use futures_util::StreamExt;
        let bar = self.progress.then(|| {
            let b = indicatif::ProgressBar::new(work.len() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} digests {bar:40} {elapsed} {msg}").expect("template"),
            );
            b
        });
        let results: Vec<(String, IngestResult)> = futures_util::stream::iter(work.into_iter().map(|(repo, digest, force)| {
            let bar = bar.clone();
            async move {
                let present = listed.get(&repo).cloned();
                let r = self.ingest_with(&repo, &digest, force, present).await;
                if let Some(b) = &bar {
                    b.inc(1);
                }
                (format!("{repo}@{digest}"), r)
            }
        }))
        .buffer_unordered(self.cfg.concurrency.max(1))
        .collect()
        .await;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        for (what, r) in results {
            match r {
                Ok(Some((v, rej))) => {
                    report.digests_ingested += 1;
                    report.items_verified += v;
                    report.items_rejected += rej;
                }
                Ok(None) => report.digests_skipped += 1,
                Err(e) => report.errors.push((what, e)),
            }
        }
    }

    /// Fetch, verify and store the material of one digest (and, for an index, its platforms).
    /// `Ok(None)`: nothing changed since the stored record. Errors leave the store untouched.
    pub async fn ingest(&self, repo: &str, digest: &str, force: bool) -> Result<Option<(usize, usize)>, String> {
        self.ingest_with(repo, digest, force, None).await
    }

    /// As [`OciMirror::ingest`], knowing the repository's tag list (cosign tags that are not
    /// listed are not requested).
    pub async fn ingest_with(
        &self,
        repo: &str,
        digest: &str,
        force: bool,
        present: Option<Arc<BTreeSet<String>>>,
    ) -> Result<Option<(usize, usize)>, String> {
        let host = repo.split('/').next().unwrap_or_default().to_string();
        let auth = self.auth_for(&host);
        let existing = self.store.oci_material(digest).map_err(|e| e.to_string())?;
        let r: Reference = format!("{repo}@{digest}").parse().map_err(|e| format!("{e}"))?;
        let (manifest, md) = self
            .retry(&format!("{repo}@{digest}"), || {
                let (r, auth) = (r.clone(), auth.clone());
                async move { self.client.pull_manifest_raw(&r, &auth, ACCEPT).await.map_err(|e| e.to_string()) }
            })
            .await?;
        if manifest.len() > crate::mirror::oci::MAX_MANIFEST || md != digest || format!("sha256:{}", sha256_hex(&manifest)) != digest {
            return Err(format!("{repo}@{digest}: manifest does not match its digest or is too large"));
        }
        let mut m = ImageMaterial { name: repo.to_string(), digest: digest.to_string(), manifest: manifest.to_vec(), ..Default::default() };
        let attempt = || {
            let mut fresh = m.clone();
            let auth = auth.clone();
            let present = present.clone();
            async move {
                material_for_digest(&self.client, &auth, repo, digest, present.as_deref(), &mut fresh)
                    .await
                    .map_err(|e: OciError| e.to_string())?;
                Ok::<ImageMaterial, String>(fresh)
            }
        };
        m = self.retry(&format!("material of {repo}@{digest}"), attempt).await?;
        let trust = (self.trust)();
        if !force
            && let Some(ex) = &existing
            && ex.sources == m.sources
            && ex.trust == trust.digest
        {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&manifest).unwrap_or(Value::Null);
        let children: Vec<String> = v["manifests"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["digest"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let media_type = v["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
        let counts = self.verify_and_store(&m, &media_type, children.clone(), &trust)?;
        // platform manifests of an index carry their own signatures, if any
        for c in children.iter().filter(|c| c.starts_with("sha256:")) {
            if let Err(e) = Box::pin(self.ingest_with(repo, c, false, present.clone())).await {
                tracing::warn!(child = %c, error = %e, "platform manifest");
            }
        }
        Ok(Some(counts))
    }

    fn authority_for(&self, bundle: &[u8]) -> Vec<Authority> {
        let has_cert =
            serde_json::from_slice::<Value>(bundle).map(|v| v["verificationMaterial"].get("publicKey").is_none()).unwrap_or(true);
        if has_cert {
            vec![Authority::Keyless(IdentityPolicy::default())]
        } else {
            self.cfg.keys.iter().map(|(n, k)| Authority::Key { name: n.clone(), spki_der: k.clone() }).collect()
        }
    }

    fn check(&self, tm: &TrustedMaterial, bundle: &[u8], subject: Subject<'_>) -> (ItemStatus, Option<String>) {
        let auths = self.authority_for(bundle);
        if auths.is_empty() {
            return (ItemStatus::NeedsKey, None);
        }
        let now = self.clock.now();
        let mut last: Option<VerifyError> = None;
        for a in &auths {
            match verify_bundle(tm, bundle, subject, a, now) {
                Ok(v) => return (ItemStatus::Verified { signer: v.signer, issuer: v.issuer }, v.statement.map(|s| s.predicate_type)),
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("at least one authority");
        if e.check == Check::Key {
            // signed with a key we do not hold: admission may hold it
            return (ItemStatus::NeedsKey, None);
        }
        (ItemStatus::Rejected { check: e.check.as_str().into(), reason: e.detail }, None)
    }

    /// Verify every item of `m` and store the record (one transaction). Returns (verified, rejected).
    fn verify_and_store(
        &self,
        m: &ImageMaterial,
        media_type: &str,
        children: Vec<String>,
        tm: &TrustedMaterial,
    ) -> Result<(usize, usize), String> {
        let mut blobs: Vec<(String, Vec<u8>)> = vec![];
        let mut items = vec![];
        let d: [u8; 32] = crate::cli::verify::parse_digest(&m.digest).ok_or_else(|| format!("{}: not a sha256 digest", m.digest))?;
        let mut keep = |b: Vec<u8>| {
            let h = sha256_hex(&b);
            blobs.push((h.clone(), b));
            h
        };
        for (i, l) in m.sig_layers.iter().enumerate() {
            let source = format!("{}.sig layer {i}", m.digest.replacen(':', "-", 1));
            let payload = keep(l.content.clone());
            let item = match bundle_from_sig_layer(l) {
                Ok(b) => {
                    let (mut status, _) = self.check(tm, &b, Subject::Blob(&l.content));
                    if let (ItemStatus::Verified { .. } | ItemStatus::NeedsKey, Err(e)) =
                        (&status, check_simple_signing(&l.content, &m.digest))
                    {
                        status = ItemStatus::Rejected { check: e.check.as_str().into(), reason: e.detail };
                    }
                    Item { kind: ItemKind::Signature, source, bundle: Some(keep(b)), payload: Some(payload), predicate_type: None, status }
                }
                Err(e) => Item {
                    kind: ItemKind::Signature,
                    source,
                    bundle: None,
                    payload: Some(payload),
                    predicate_type: None,
                    status: ItemStatus::Rejected { check: e.check.as_str().into(), reason: e.detail },
                },
            };
            items.push(item);
        }
        for (i, l) in m.att_layers.iter().enumerate() {
            let source = format!("{}.att layer {i}", m.digest.replacen(':', "-", 1));
            let annotated = l.annotations.get(crate::core::cosign::ANN_PREDICATE_TYPE).cloned();
            let item = match bundle_from_att_layer(l) {
                Ok(b) => {
                    let (status, pt) = self.check(tm, &b, Subject::Sha256(d));
                    Item {
                        kind: ItemKind::Attestation,
                        source,
                        bundle: Some(keep(b)),
                        payload: None,
                        predicate_type: pt.or(annotated),
                        status,
                    }
                }
                Err(e) => Item {
                    kind: ItemKind::Attestation,
                    source,
                    bundle: None,
                    payload: None,
                    predicate_type: annotated,
                    status: ItemStatus::Rejected { check: e.check.as_str().into(), reason: e.detail },
                },
            };
            items.push(item);
        }
        for (i, (pt, b)) in m.bundles.iter().enumerate() {
            let (status, spt) = self.check(tm, b, Subject::Sha256(d));
            items.push(Item {
                kind: ItemKind::Bundle,
                source: format!("referrer {i}"),
                bundle: Some(keep(b.clone())),
                payload: None,
                predicate_type: spt.or(pt.clone()),
                status,
            });
        }
        for (i, l) in m.sbom_layers.iter().enumerate() {
            items.push(Item {
                kind: ItemKind::Sbom,
                source: format!("{}.sbom layer {i}", m.digest.replacen(':', "-", 1)),
                bundle: None,
                payload: Some(keep(l.content.clone())),
                predicate_type: Some(l.media_type.clone()),
                status: ItemStatus::Unsigned,
            });
        }
        for s in &m.skipped {
            items.push(Item {
                kind: ItemKind::Bundle,
                source: s.split(':').next().unwrap_or_default().to_string(),
                bundle: None,
                payload: None,
                predicate_type: None,
                status: ItemStatus::Rejected { check: "artifact".into(), reason: s.clone() },
            });
        }
        let verified = items.iter().filter(|i| matches!(i.status, ItemStatus::Verified { .. })).count();
        let rejected = items.iter().filter(|i| matches!(i.status, ItemStatus::Rejected { .. })).count();
        let rec = MaterialRecord {
            subject: m.digest.clone(),
            repository: m.name.clone(),
            media_type: media_type.into(),
            children,
            items,
            synced_at: self.clock.now(),
            sources: m.sources.clone(),
            trust: tm.digest.clone(),
        };
        self.store.oci_put_material(&rec, &blobs).map_err(|e| e.to_string())?;
        Ok((verified, rejected))
    }

    async fn ingest_layout(&self, dir: &std::path::Path, report: &mut SyncReport) -> Result<(), String> {
        let m = OciSource::layout(dir).image_material("").await.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&m.manifest).unwrap_or(Value::Null);
        let mt = v["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
        let tm = (self.trust)();
        let (ok, rej) = self.verify_and_store(&m, &mt, vec![], &tm)?;
        report.digests_ingested += 1;
        report.items_verified += ok;
        report.items_rejected += rej;
        Ok(())
    }

    /// On-demand ingestion of one reference (`registry/repo@sha256:…` or `:tag`), as the admission
    /// path requests on a miss.
    pub async fn ingest_reference(&self, reference: &str) -> Result<(), String> {
        let mut report = SyncReport::default();
        let work = self.plan_reference(reference, self.clock.now(), &mut report).await?;
        for (repo, d, _) in work {
            self.ingest(&repo, &d, true).await?;
        }
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// A queue of on-demand ingestion requests, served in the background (the admission path never
/// waits on a registry: it queues and answers from what the store holds).
pub fn spawn_queue(mirror: Arc<OciMirror>) -> tokio::sync::mpsc::Sender<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
    tokio::spawn(async move {
        let mut recent: BTreeMap<String, std::time::Instant> = BTreeMap::new();
        while let Some(r) = rx.recv().await {
            // the same miss from many admissions is fetched once a minute at most
            if recent.get(&r).is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
                continue;
            }
            recent.insert(r.clone(), std::time::Instant::now());
            if let Err(e) = mirror.ingest_reference(&r).await {
                tracing::warn!(reference = %r, error = %e, "on-demand ingestion failed");
            }
        }
    });
    tx
}

/// sha256 of arbitrary bytes as `sha256:<hex>`.
pub fn digest_of(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_stops_when_the_registry_ignores_it() {
        // a registry that ignores n/last returns the same (oversized) list every time
        let all: Vec<String> = (0..2000).map(|i| format!("t{i}")).collect();
        let (mut out, mut last) = (vec![], None);
        assert!(!paginate(&mut out, all.clone(), &mut last), "more than a page: the registry ignored n");
        assert_eq!(out.len(), 2000);
        // a registry that honours it: full pages continue, a short one ends
        let (mut out, mut last) = (vec![], None);
        assert!(paginate(&mut out, all[..1000].to_vec(), &mut last));
        assert_eq!(last.as_deref(), Some("t999"));
        assert!(!paginate(&mut out, all[1000..1500].to_vec(), &mut last));
        // a full page with nothing new ends too
        let (mut out, mut last) = (all[..1000].to_vec(), None);
        assert!(!paginate(&mut out, all[..1000].to_vec(), &mut last));
        assert!(is_cosign_tag(&format!("sha256-{}.sig", "a".repeat(64))).is_some() && is_cosign_tag("v1").is_none());
    }
}
