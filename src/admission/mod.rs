//! The embedded admission verifier: Kubernetes `AdmissionReview`s decided from the local store.
//!
//! ```text
//!   API server ──HTTPS──▶ server (axum + rustls) ──▶ Engine::review ──▶ core::policy (pure)
//!                                                     │   ▲
//!                                     store lookups ◀─┘   └─ decision cache, exemptions
//! ```
//!
//! The [`Engine`] never talks to a registry, TUF, Rekor or Fulcio: it reads the mirrored tag
//! resolutions, per-digest material and trust root from the [`Store`], evaluates the one policy
//! engine ([`PolicySet::evaluate`]) and, on a miss, queues the reference for the mirror. Decisions
//! are cached by (repository, digest, material ETag, policy version, trust-root digest), so any
//! change to the evidence, the policy or the trust root is a different key.

pub mod review;
pub mod server;
pub mod tls;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::clock::Clock;
use crate::core::material::MaterialRecord;
use crate::core::policy::{BannedList, Evaluation, Facts, Mode, PolicySet, Property, Violation};
use crate::core::verify::{TrustStore, TrustedMaterial};
use crate::store::Store;
use crate::store::admission::{AuditRecord, Exemption, Scope};

use review::{ImageRef, Request, Response};

/// What the admission engine is told at start.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Policy files (YAML, several documents each).
    pub policy_files: Vec<PathBuf>,
    pub banned_file: Option<PathBuf>,
    /// Break-glass exemptions from a file (a ConfigMap every replica sees).
    pub exemptions_file: Option<PathBuf>,
    /// The default trust root: this file instead of the mirrored TUF `trusted_root.json`.
    pub trusted_root: Option<PathBuf>,
    /// Further named trust roots (`trustRootRef` in a policy).
    pub trust_roots: BTreeMap<String, PathBuf>,
    /// How long a cached decision lives (scan ages and exemptions depend on the clock).
    pub cache_ttl: Duration,
    /// Longest break-glass exemption honoured.
    pub breakglass_max: SignedDuration,
    /// On an internal error: deny (closed) or allow with a warning (open).
    pub fail_open: bool,
    /// Record allowed admissions without violations in the audit log too.
    pub record_allowed: bool,
    /// Append JSON audit records to this file (`-`: standard output).
    pub audit_file: Option<PathBuf>,
    /// Not ready until the OCI mirror has synced at least one repository (a fresh replica would
    /// otherwise deny everything it has not mirrored yet).
    pub require_mirror_sync: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            policy_files: vec![],
            banned_file: None,
            exemptions_file: None,
            trusted_root: None,
            trust_roots: BTreeMap::new(),
            cache_ttl: Duration::from_secs(60),
            breakglass_max: SignedDuration::from_hours(4),
            fail_open: false,
            record_allowed: false,
            audit_file: None,
            require_mirror_sync: false,
        }
    }
}

type Labels = Vec<(String, String)>;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0])
}

/// Admission metrics (registered under `trustmirror_admission_`).
#[derive(Clone)]
pub struct AdmissionMetrics {
    /// Reviews by endpoint and verdict (allowed / denied / error).
    pub reviews: Family<Labels, Counter>,
    /// Images decided, by verdict, namespace and policy.
    pub images: Family<Labels, Counter>,
    /// Violations by policy, property, namespace and the mode that handled them — the
    /// `mode="audit"` series is what a team watches before switching to enforce.
    pub violations: Family<Labels, Counter>,
    pub latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub cache: Family<Labels, Counter>,
    pub breakglass: Family<Labels, Counter>,
    pub misses_queued: Counter,
    pub policy_reloads: Family<Labels, Counter>,
    pub audit_dropped: Counter,
}

impl AdmissionMetrics {
    pub fn new() -> Self {
        Self {
            reviews: Family::default(),
            images: Family::default(),
            violations: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            cache: Family::default(),
            breakglass: Family::default(),
            misses_queued: Counter::default(),
            policy_reloads: Family::default(),
            audit_dropped: Counter::default(),
        }
    }

    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        let r = r.sub_registry_with_prefix("trustmirror_admission");
        r.register("reviews", "AdmissionReviews answered, by endpoint and verdict", self.reviews.clone());
        r.register("images", "Images decided, by verdict, namespace and policy", self.images.clone());
        r.register("violations", "Policy violations by policy, property, namespace and handling mode", self.violations.clone());
        r.register("review_duration_seconds", "Time to answer an AdmissionReview", self.latency.clone());
        r.register("cache_lookups", "Decision cache lookups by result (hit/miss)", self.cache.clone());
        r.register("breakglass_uses", "Admissions allowed by a break-glass exemption", self.breakglass.clone());
        r.register("misses_queued", "Images not in the store, queued for the mirror", self.misses_queued.clone());
        r.register("policy_reloads", "Policy, banned-list and exemption reloads by result", self.policy_reloads.clone());
        r.register("audit_records_dropped", "Audit records dropped because the writer fell behind", self.audit_dropped.clone());
    }
}

impl Default for AdmissionMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Load policy documents and the banned list from files.
pub fn load_policy(files: &[PathBuf], banned: Option<&PathBuf>) -> Result<PolicySet, String> {
    let mut text = String::new();
    for f in files {
        let t = std::fs::read_to_string(f).map_err(|e| format!("reading policy {}: {e}", f.display()))?;
        if t.len() > 4 << 20 {
            return Err(format!("policy {}: larger than 4 MiB", f.display()));
        }
        text.push_str("\n---\n");
        text.push_str(&t);
    }
    let banned = match banned {
        None => BannedList::default(),
        Some(p) => BannedList::parse(&std::fs::read_to_string(p).map_err(|e| format!("reading banned list {}: {e}", p.display()))?)
            .map_err(|e| format!("{}: {e}", p.display()))?,
    };
    PolicySet::parse(&text, banned)
}

/// Exemptions file (`exemptions:` list), as a ConfigMap carries it.
#[derive(Debug, Deserialize)]
struct ExemptionsFile {
    #[serde(default)]
    exemptions: Vec<FileExemption>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileExemption {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    reason: String,
    #[serde(default)]
    created_by: Option<String>,
    created_at: Timestamp,
    expires_at: Timestamp,
}

/// File exemptions get ids above this (store ids count from 1).
pub const FILE_EXEMPTION_BASE: u64 = 1 << 40;

pub fn load_exemptions_file(path: &PathBuf) -> Result<Vec<Exemption>, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("reading exemptions {}: {e}", path.display()))?;
    let f: ExemptionsFile = serde_yaml::from_str(&t).map_err(|e| format!("exemptions {}: {e}", path.display()))?;
    f.exemptions
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let scope = match (e.namespace, e.digest) {
                (Some(n), None) => Scope::Namespace(n),
                (None, Some(d)) => Scope::Digest(d),
                _ => return Err(format!("exemption {i}: exactly one of namespace or digest")),
            };
            if e.reason.trim().is_empty() {
                return Err(format!("exemption {i}: a reason is required"));
            }
            Ok(Exemption {
                id: FILE_EXEMPTION_BASE + i as u64,
                scope,
                reason: e.reason,
                created_by: e.created_by.unwrap_or_else(|| "exemptions file".into()),
                created_at: e.created_at,
                expires_at: e.expires_at,
                revoked: false,
            })
        })
        .collect()
}

/// The trust roots policies verify with: the mirrored TUF repository's `trusted_root.json` (or an
/// explicit file) as `default`, plus named extra roots. Re-read only when the mirrored target
/// changes (checked at most once a second).
pub struct TrustSource {
    store: Arc<Store>,
    explicit: Option<PathBuf>,
    extra: BTreeMap<String, PathBuf>,
    state: Mutex<(Option<Instant>, String, Arc<TrustStore>)>,
}

impl TrustSource {
    pub fn new(store: Arc<Store>, explicit: Option<PathBuf>, extra: BTreeMap<String, PathBuf>) -> Self {
        Self { store, explicit, extra, state: Mutex::new((None, String::new(), Arc::new(TrustStore::default()))) }
    }

    /// The current trust store (possibly empty: policies then fail with "no trusted root").
    pub fn get(&self) -> Arc<TrustStore> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return st.2.clone();
        }
        st.0 = Some(Instant::now());
        let key = match &self.explicit {
            Some(p) => std::fs::metadata(p).and_then(|m| m.modified()).map(|m| format!("{m:?}")).unwrap_or_default(),
            None => self
                .store
                .tuf_targets("default")
                .ok()
                .and_then(|t| t.get("trusted_root.json").map(|t| t.sha256.clone()))
                .unwrap_or_default(),
        };
        if key == st.1 && !key.is_empty() {
            return st.2.clone();
        }
        let mut ts = TrustStore::default();
        let default = match &self.explicit {
            Some(p) => std::fs::read(p)
                .map_err(|e| e.to_string())
                .and_then(|b| TrustedMaterial::from_json("default", &b).map_err(|e| e.to_string())),
            None => match self.store.tuf_targets("default").ok().and_then(|t| t.get("trusted_root.json").cloned()) {
                Some(t) => match self.store.blob(&t.sha256) {
                    Ok(Some(b)) => TrustedMaterial::from_json("default", &b).map_err(|e| e.to_string()),
                    _ => Err("trusted_root.json is listed but its bytes are missing from the store".into()),
                },
                None => Err("the TUF mirror holds no trusted_root.json yet".into()),
            },
        };
        match default {
            Ok(tm) => ts.insert(tm),
            Err(e) => tracing::warn!(error = %e, "admission: no default trust root"),
        }
        for (name, p) in &self.extra {
            match std::fs::read(p).map_err(|e| e.to_string()).and_then(|b| TrustedMaterial::from_json(name, &b).map_err(|e| e.to_string()))
            {
                Ok(tm) => ts.insert(tm),
                Err(e) => tracing::warn!(root = %name, error = %e, "admission: trust root unusable"),
            }
        }
        *st = (Some(Instant::now()), key, Arc::new(ts));
        st.2.clone()
    }
}

/// Which webhook endpoint a review came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// What was decided about one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageOutcome {
    pub image: String,
    pub repository: String,
    pub digest: Option<String>,
    pub by_tag: bool,
    pub policies: Vec<String>,
    /// Violations with the mode that applies in this namespace (after any endpoint cap).
    pub violations: Vec<Violation>,
    /// A matching policy verified a signature over this digest.
    pub verified: bool,
    pub cached: bool,
}

impl ImageOutcome {
    pub fn enforced(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.mode == Mode::Enforce)
    }
}

/// A cached evaluation. It expires after the TTL of wall time *and* of the engine's clock (scan
/// ages and certificate windows are judged at the clock's now; a clock that jumps must not be
/// answered from an evaluation made at another time).
struct Cached {
    at: Instant,
    at_clock: Timestamp,
    eval: Arc<Evaluation>,
}

const CACHE_MAX: usize = 100_000;

/// The admission engine: policy, trust, cache, exemptions, audit.
pub struct Engine {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    opts: EngineOptions,
    policy: RwLock<Arc<PolicySet>>,
    file_exemptions: RwLock<Vec<Exemption>>,
    store_exemptions: Mutex<(Option<Instant>, Arc<Vec<Exemption>>)>,
    trust: TrustSource,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    ingest: Option<tokio::sync::mpsc::Sender<String>>,
    audit: audit::Sink,
    pub metrics: AdmissionMetrics,
}

impl Engine {
    /// Load the policy (an error here is fatal: a webhook must not start without its policy).
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        opts: EngineOptions,
        ingest: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> anyhow::Result<Self> {
        let policy = load_policy(&opts.policy_files, opts.banned_file.as_ref()).map_err(|e| anyhow::anyhow!(e))?;
        let file_exemptions = match &opts.exemptions_file {
            Some(p) if p.exists() => load_exemptions_file(p).map_err(|e| anyhow::anyhow!(e))?,
            _ => vec![],
        };
        let metrics = AdmissionMetrics::new();
        let audit = audit::Sink::start(store.clone(), opts.audit_file.clone(), metrics.audit_dropped.clone())?;
        let trust = TrustSource::new(store.clone(), opts.trusted_root.clone(), opts.trust_roots.clone());
        tracing::info!(policies = policy.policies.len(), version = %policy.version, banned = policy.banned.banned.len(), "admission policy loaded");
        Ok(Self {
            store,
            clock,
            opts,
            policy: RwLock::new(Arc::new(policy)),
            file_exemptions: RwLock::new(file_exemptions),
            store_exemptions: Mutex::new((None, Arc::new(vec![]))),
            trust,
            cache: Mutex::new(HashMap::new()),
            ingest,
            audit,
            metrics,
        })
    }

    /// Drop every cached decision (benchmarks measure cold decisions with it).
    pub fn clear_cache(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Wait until queued audit records are written.
    pub fn flush_audit(&self) {
        self.audit.flush();
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    pub fn policy(&self) -> Arc<PolicySet> {
        self.policy.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn trust(&self) -> Arc<TrustStore> {
        self.trust.get()
    }

    /// Re-read policy and banned list; keep the old policy when the new one does not parse.
    pub fn reload_policy(&self) -> Result<bool, String> {
        match load_policy(&self.opts.policy_files, self.opts.banned_file.as_ref()) {
            Ok(p) => {
                let changed = p.version != self.policy().version;
                if changed {
                    tracing::info!(policies = p.policies.len(), version = %p.version, banned = p.banned.banned.len(), "admission policy reloaded");
                    *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
                    self.metrics.policy_reloads.get_or_create(&l(&[("what", "policy"), ("result", "success")])).inc();
                }
                Ok(changed)
            }
            Err(e) => {
                tracing::error!(error = %e, "admission policy reload failed; keeping the previous policy");
                self.metrics.policy_reloads.get_or_create(&l(&[("what", "policy"), ("result", "error")])).inc();
                Err(e)
            }
        }
    }

    pub fn reload_exemptions(&self) -> Result<(), String> {
        let Some(p) = &self.opts.exemptions_file else { return Ok(()) };
        let res = if p.exists() { load_exemptions_file(p) } else { Ok(vec![]) };
        match res {
            Ok(v) => {
                *self.file_exemptions.write().unwrap_or_else(|e| e.into_inner()) = v;
                self.metrics.policy_reloads.get_or_create(&l(&[("what", "exemptions"), ("result", "success")])).inc();
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "exemptions reload failed; keeping the previous list");
                self.metrics.policy_reloads.get_or_create(&l(&[("what", "exemptions"), ("result", "error")])).inc();
                Err(e)
            }
        }
    }

    /// Ready: a policy is loaded, the default trust root is usable, and (when required) the OCI
    /// mirror has synced.
    pub fn ready(&self) -> Result<(), String> {
        let t = self.trust.get();
        t.get("default").map_err(|_| "no default trust root yet (the TUF mirror holds no trusted_root.json)".to_string())?;
        if self.opts.require_mirror_sync && self.store.oci_repos_synced().map_err(|e| e.to_string())? == 0 {
            return Err("the OCI mirror has not completed a sync yet".into());
        }
        Ok(())
    }

    fn store_exemptions(&self) -> Arc<Vec<Exemption>> {
        let mut s = self.store_exemptions.lock().unwrap_or_else(|e| e.into_inner());
        if s.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            match self.store.exemptions() {
                Ok(v) => s.1 = Arc::new(v),
                Err(e) => tracing::error!(error = %e, "reading exemptions from the store"),
            }
            s.0 = Some(Instant::now());
        }
        s.1.clone()
    }

    /// Forget the exemptions snapshot (after the CLI or a test adds one to the store).
    pub fn refresh_exemptions_now(&self) {
        self.store_exemptions.lock().unwrap_or_else(|e| e.into_inner()).0 = None;
    }

    /// The active exemption covering `namespace` or `digest` at `now`, if any. Exemptions longer
    /// than the configured maximum are ignored (and logged) wherever they came from.
    pub fn exemption_for(&self, namespace: &str, digest: Option<&str>, now: Timestamp) -> Option<Exemption> {
        let store = self.store_exemptions();
        let file = self.file_exemptions.read().unwrap_or_else(|e| e.into_inner());
        store
            .iter()
            .chain(file.iter())
            .filter(|e| e.active(now))
            .filter(|e| {
                let ok = e.expires_at.duration_since(e.created_at) <= self.opts.breakglass_max;
                if !ok {
                    tracing::warn!(id = e.id, "ignoring break-glass exemption longer than the maximum");
                }
                ok
            })
            .find(|e| match &e.scope {
                Scope::Namespace(n) => n == namespace,
                Scope::Digest(d) => Some(d.as_str()) == digest,
            })
            .cloned()
    }

    /// Decide one image in a namespace. `cap` lowers enforce to warn/audit (the webhook
    /// configuration selected by a namespace label says how far).
    pub fn decide_image(&self, namespace: &str, image: &str, cap: Option<Mode>) -> ImageOutcome {
        let policy = self.policy();
        let trust = self.trust.get();
        let now = self.clock.now();
        let mut out = ImageOutcome {
            image: image.to_string(),
            repository: String::new(),
            digest: None,
            by_tag: false,
            policies: vec![],
            violations: vec![],
            verified: false,
            cached: false,
        };
        let internal = |msg: String| Violation {
            policy: "(trustmirror)".into(),
            property: Property::Mirror,
            message: msg,
            mode: if self.opts.fail_open { Mode::Warn } else { Mode::Enforce },
        };
        let parsed: oci_client::Reference = match image.parse() {
            Ok(r) => r,
            Err(e) => {
                out.violations.push(Violation {
                    policy: "(trustmirror)".into(),
                    property: Property::Digest,
                    message: format!("{image:?} is not a valid image reference: {e}"),
                    mode: Mode::Enforce,
                });
                return out;
            }
        };
        out.repository = format!("{}/{}", parsed.registry(), parsed.repository());
        out.by_tag = parsed.digest().is_none();
        out.digest = match parsed.digest() {
            Some(d) => Some(d.to_string()),
            None => match self.store.oci_tag(&out.repository, parsed.tag().unwrap_or("latest")) {
                Ok(t) => t.map(|t| t.digest),
                Err(e) => {
                    out.violations.push(internal(format!("{image}: reading the mirrored tag failed: {e} (failing closed)")));
                    return out;
                }
            },
        };
        let etag = match out.digest.as_deref().map(|d| self.store.oci_etag(d)).transpose() {
            Ok(e) => e.flatten(),
            Err(e) => {
                out.violations.push(internal(format!("{image}: reading the store failed: {e} (failing closed)")));
                return out;
            }
        };
        // the witnessed logs' state, when a policy looks at it (an alarm or a new witnessed
        // checkpoint changes decisions)
        let tlog_epoch = if policy.uses_transparency() {
            match self.store.tlog_states() {
                Ok(states) => {
                    let mut h = Sha256::new();
                    for s in states {
                        h.update(s.log.as_bytes());
                        h.update(s.latest.map(|l| l.size).unwrap_or(0).to_be_bytes());
                        h.update(s.alarm.unwrap_or(0).to_be_bytes());
                    }
                    hex::encode(h.finalize())
                }
                Err(e) => {
                    out.violations.push(internal(format!("{image}: reading the witnessed log state failed: {e} (failing closed)")));
                    return out;
                }
            }
        } else {
            String::new()
        };
        let mut h = Sha256::new();
        for part in [
            out.repository.as_str(),
            out.digest.as_deref().unwrap_or(image),
            if out.by_tag { "t" } else { "d" },
            etag.as_deref().unwrap_or("-"),
            &policy.version,
            &trust.digest(),
            &tlog_epoch,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let key: [u8; 32] = h.finalize().into();
        let hit = {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let ttl = SignedDuration::try_from(self.opts.cache_ttl).unwrap_or(SignedDuration::ZERO);
            c.get(&key)
                .filter(|c| c.at.elapsed() < self.opts.cache_ttl && now.duration_since(c.at_clock).abs() < ttl)
                .map(|c| c.eval.clone())
        };
        let eval = match hit {
            Some(e) => {
                out.cached = true;
                self.metrics.cache.get_or_create(&l(&[("result", "hit")])).inc();
                e
            }
            None => {
                self.metrics.cache.get_or_create(&l(&[("result", "miss")])).inc();
                let facts = match self.facts(image, &out, etag.is_some(), policy.uses_transparency()) {
                    Ok(f) => f,
                    Err(e) => {
                        out.violations.push(internal(format!("{image}: reading material from the store failed: {e} (failing closed)")));
                        return out;
                    }
                };
                if facts.material.is_none() {
                    self.queue(image, &out);
                }
                let e = Arc::new(policy.evaluate(&trust, &facts, now));
                // misses are not cached: the material may land any second (and a checkpoint
                // not yet proven against the witnessed history may be proven any second)
                let unproven = facts.tlog.values().any(|f| {
                    matches!(
                        f.verdict,
                        crate::core::tlog::HistoryVerdict::Unwitnessed { .. } | crate::core::tlog::HistoryVerdict::UnknownLog { .. }
                    )
                });
                if facts.material.is_some() && !unproven {
                    let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    if c.len() >= CACHE_MAX {
                        c.clear();
                    }
                    c.insert(key, Cached { at: Instant::now(), at_clock: now, eval: e.clone() });
                }
                e
            }
        };
        out.policies = eval.policies.clone();
        out.violations = policy.apply_namespace(&eval, namespace);
        if let Some(cap) = cap {
            for v in &mut out.violations {
                v.mode = v.mode.min(cap);
            }
        }
        out.verified = out.digest.is_some()
            && !eval.policies.is_empty()
            && !eval.violations.iter().any(|v| matches!(v.property, Property::Signature | Property::Mirror | Property::Registry));
        out
    }

    fn facts(&self, image: &str, o: &ImageOutcome, has_material: bool, tlog: bool) -> Result<Facts, crate::store::StoreError> {
        let mut f = Facts {
            reference: image.to_string(),
            repository: o.repository.clone(),
            digest: o.digest.clone(),
            by_tag: o.by_tag,
            ..Default::default()
        };
        if !has_material {
            return Ok(f);
        }
        let Some(d) = &o.digest else { return Ok(f) };
        let m: Option<MaterialRecord> = self.store.oci_material(d)?;
        if let Some(m) = &m {
            for i in &m.items {
                for sha in i.bundle.iter().chain(i.payload.iter()) {
                    if !f.blobs.contains_key(sha)
                        && let Some(b) = self.store.blob(sha)?
                    {
                        f.blobs.insert(sha.clone(), b);
                    }
                }
            }
        }
        f.material = m;
        if tlog {
            self.tlog_facts(&mut f)?;
        }
        Ok(f)
    }

    /// What the witnessed history says of every checkpoint the material's bundles cite.
    fn tlog_facts(&self, f: &mut Facts) -> Result<(), crate::store::StoreError> {
        use crate::core::tlog::{HistoryVerdict, against_history, bundle_checkpoints};
        let mut states = BTreeMap::new();
        for b in f.blobs.values() {
            for (log, size, root) in bundle_checkpoints(b) {
                if f.tlog.contains_key(&(log.clone(), size)) {
                    continue;
                }
                if !states.contains_key(&log) {
                    states.insert(log.clone(), self.store.tlog_state(&log)?);
                }
                let fact = match &states[&log] {
                    None => {
                        crate::core::policy::TlogFact { verdict: HistoryVerdict::UnknownLog { log: log.clone() }, witnessed_note: None }
                    }
                    Some(st) => {
                        let known = self.store.tlog_root(&log, size)?;
                        let alarm = st.alarm.map(|a| format!("alarm #{a} is open (trustmirror tlog status)"));
                        crate::core::policy::TlogFact {
                            verdict: against_history(size, &root, known, st.latest.as_ref().map(|l| l.size), alarm.as_deref()),
                            witnessed_note: st.latest.as_ref().map(|l| l.text.clone()),
                        }
                    }
                };
                f.tlog.insert((log, size), fact);
            }
        }
        Ok(())
    }

    fn queue(&self, image: &str, o: &ImageOutcome) {
        let Some(tx) = &self.ingest else { return };
        let r = match (&o.digest, o.by_tag) {
            (Some(d), _) => format!("{}@{d}", o.repository),
            (None, _) => image.to_string(),
        };
        if tx.try_send(r).is_ok() {
            self.metrics.misses_queued.inc();
        }
    }

    /// Answer one review. Blocking (store reads, signature checks): call from a blocking thread.
    pub fn review(&self, req: &Request, endpoint: Endpoint, cap: Option<Mode>) -> Response {
        let t0 = Instant::now();
        let resp = self.review_inner(req, endpoint, cap);
        let verdict = if resp.allowed { "allowed" } else { "denied" };
        self.metrics.reviews.get_or_create(&l(&[("endpoint", endpoint.as_str()), ("verdict", verdict)])).inc();
        self.metrics.latency.get_or_create(&l(&[("endpoint", endpoint.as_str())])).observe(t0.elapsed().as_secs_f64());
        resp
    }

    fn review_inner(&self, req: &Request, endpoint: Endpoint, cap: Option<Mode>) -> Response {
        if matches!(req.operation.as_str(), "DELETE" | "CONNECT") {
            return Response::allow(&req.uid);
        }
        let Some(object) = &req.object else { return Response::allow(&req.uid) };
        let refs = match review::images(&req.kind.kind, object) {
            Ok(r) => r,
            Err(e) => {
                return if endpoint == Endpoint::Mutate {
                    Response::allow(&req.uid)
                } else {
                    Response::deny(&req.uid, format!("trustmirror: cannot read the {} object: {e}", req.kind.kind))
                };
            }
        };
        if refs.is_empty() {
            return Response::allow(&req.uid);
        }
        let namespace = req
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| object["metadata"]["namespace"].as_str().map(str::to_string))
            .unwrap_or_else(|| "default".into());
        let mut decided: BTreeMap<&str, ImageOutcome> = BTreeMap::new();
        for r in &refs {
            if !decided.contains_key(r.image.as_str()) {
                decided.insert(&r.image, self.decide_image(&namespace, &r.image, cap));
            }
        }
        match endpoint {
            Endpoint::Mutate => {
                let ops: Vec<(String, String)> = refs
                    .iter()
                    .filter_map(|r| {
                        let o = &decided[r.image.as_str()];
                        (o.by_tag && o.verified).then(|| (r.path.clone(), review::pin(&r.image, o.digest.as_deref().unwrap_or_default())))
                    })
                    .collect();
                Response::allow(&req.uid).with_patch(&ops)
            }
            Endpoint::Validate => self.validate(req, &namespace, &refs, &decided),
        }
    }

    fn validate(&self, req: &Request, namespace: &str, refs: &[ImageRef], decided: &BTreeMap<&str, ImageOutcome>) -> Response {
        let now = self.clock.now();
        let object = review::object_name(req);
        let mut denials = vec![];
        let mut warnings = vec![];
        let mut records = vec![];
        let mut sync_records = vec![];
        for r in refs {
            let o = &decided[r.image.as_str()];
            let shown = match (&o.digest, o.by_tag) {
                (Some(d), true) => format!("{} (tag → {})", r.image, short(d)),
                _ => r.image.clone(),
            };
            for v in &o.violations {
                let policy_label = v.policy.as_str();
                self.metrics
                    .violations
                    .get_or_create(&l(&[
                        ("policy", policy_label),
                        ("property", v.property.as_str()),
                        ("namespace", namespace),
                        ("mode", mode_str(v.mode)),
                    ]))
                    .inc();
            }
            let enforced: Vec<&Violation> = o.enforced().collect();
            let mut exemption = None;
            if !enforced.is_empty() {
                exemption = self.exemption_for(namespace, o.digest.as_deref(), now);
                match &exemption {
                    Some(e) => {
                        self.metrics.breakglass.get_or_create(&l(&[("namespace", namespace)])).inc();
                        warnings.push(format!(
                            "{}: admitted under break-glass exemption #{} ({}; expires {}) despite: {}",
                            r.container,
                            e.id,
                            e.reason,
                            e.expires_at,
                            enforced.iter().map(|v| format!("{}: {}", v.property.as_str(), v.message)).collect::<Vec<_>>().join("; ")
                        ));
                    }
                    None => {
                        let why: Vec<String> =
                            enforced.iter().map(|v| format!("[{}] {}: {}", v.policy, v.property.as_str(), v.message)).collect();
                        denials.push(format!("{} {shown}: {}", r.container, why.join("; ")));
                    }
                }
            }
            for v in o.violations.iter().filter(|v| v.mode == Mode::Warn) {
                warnings.push(format!("{} {}: [{}] {}: {}", r.container, shown, v.policy, v.property.as_str(), v.message));
            }
            let allowed = enforced.is_empty() || exemption.is_some();
            let policies = if o.policies.is_empty() { vec!["(none)".to_string()] } else { o.policies.clone() };
            for p in &policies {
                self.metrics
                    .images
                    .get_or_create(&l(&[("verdict", if allowed { "allowed" } else { "denied" }), ("namespace", namespace), ("policy", p)]))
                    .inc();
            }
            if o.violations.is_empty() && exemption.is_none() && !self.opts.record_allowed {
                continue;
            }
            let rec = AuditRecord {
                time: now,
                uid: req.uid.clone(),
                namespace: namespace.to_string(),
                object: object.clone(),
                image: r.image.clone(),
                digest: o.digest.clone(),
                allowed,
                mode: o.violations.iter().map(|v| v.mode).max(),
                violations: o.violations.clone(),
                exemption: exemption.as_ref().map(|e| e.id),
            };
            if exemption.is_some() { sync_records.push(rec) } else { records.push(rec) }
        }
        // Every use of an exemption is on disk before the admission is answered.
        if !sync_records.is_empty()
            && let Err(e) = self.audit.write_now(&sync_records)
        {
            return Response::deny(
                &req.uid,
                format!(
                    "trustmirror: {object}: a break-glass exemption applies but its use could not be recorded in the audit log ({e}); denying"
                ),
            );
        }
        self.audit.send(records);
        if denials.is_empty() {
            let mut r = Response::allow(&req.uid);
            r.warnings = warnings;
            r
        } else {
            let mut r = Response::deny(&req.uid, format!("trustmirror denied {object} in {namespace}: {}", denials.join(" | ")));
            r.warnings = warnings;
            r
        }
    }
}

fn short(d: &str) -> String {
    d.chars().take(19).collect()
}

pub fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Audit => "audit",
        Mode::Warn => "warn",
        Mode::Enforce => "enforce",
    }
}

/// The audit log writer: records go to the store's append-only `audit_log` table in batches, and
/// as JSON lines to a file when configured.
pub mod audit {
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

    use prometheus_client::metrics::counter::Counter;

    use crate::store::Store;
    use crate::store::admission::AuditRecord;

    /// Where JSON audit lines go besides the store.
    pub enum Out {
        File(std::sync::Mutex<std::fs::File>),
        Stdout,
    }

    enum Msg {
        Records(Vec<AuditRecord>),
        Flush(std::sync::mpsc::SyncSender<()>),
    }

    pub struct Sink {
        tx: SyncSender<Msg>,
        store: Arc<Store>,
        file: Option<Arc<Out>>,
        dropped: Counter,
    }

    impl Sink {
        pub fn start(store: Arc<Store>, path: Option<PathBuf>, dropped: Counter) -> anyhow::Result<Self> {
            let file = match path {
                Some(p) if p.as_os_str() == "-" => Some(Arc::new(Out::Stdout)),
                Some(p) => Some(Arc::new(Out::File(std::sync::Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)
                        .map_err(|e| anyhow::anyhow!("audit log {}: {e}", p.display()))?,
                )))),
                None => None,
            };
            let (tx, rx) = sync_channel::<Msg>(8192);
            let (s2, f2) = (store.clone(), file.clone());
            std::thread::Builder::new().name("audit-writer".into()).spawn(move || writer(rx, s2, f2))?;
            Ok(Self { tx, store, file, dropped })
        }

        /// Queue records (never blocks admission; counts what it has to drop).
        pub fn send(&self, records: Vec<AuditRecord>) {
            if records.is_empty() {
                return;
            }
            let n = records.len() as u64;
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(Msg::Records(records)) {
                self.dropped.inc_by(n);
            }
        }

        /// Wait until everything queued so far is written.
        pub fn flush(&self) {
            let (ack, done) = sync_channel(1);
            if self.tx.send(Msg::Flush(ack)).is_ok() {
                let _ = done.recv_timeout(std::time::Duration::from_secs(10));
            }
        }

        /// Write records now, durably (break-glass uses).
        pub fn write_now(&self, records: &[AuditRecord]) -> Result<(), String> {
            self.store.audit_append(records).map_err(|e| e.to_string())?;
            emit(records, self.file.as_deref());
            Ok(())
        }
    }

    fn emit(records: &[AuditRecord], file: Option<&Out>) {
        for r in records {
            let line = serde_json::to_string(r).expect("json");
            tracing::debug!(target: "trustmirror::audit", record = %line, "admission");
            match file {
                Some(Out::File(f)) => {
                    let _ = writeln!(f.lock().unwrap_or_else(|e| e.into_inner()), "{line}");
                }
                Some(Out::Stdout) => println!("{line}"),
                None => {}
            }
        }
    }

    fn writer(rx: Receiver<Msg>, store: Arc<Store>, file: Option<Arc<Out>>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![];
            let mut acks = vec![];
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Msg::Records(r) => batch.extend(r),
                    Msg::Flush(a) => acks.push(a),
                }
                if batch.len() < 4096 {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                if let Err(e) = store.audit_append(&batch) {
                    tracing::error!(error = %e, records = batch.len(), "writing audit records to the store failed");
                }
                emit(&batch, file.as_deref());
            }
            for a in acks {
                let _ = a.send(());
            }
        }
    }
}

/// property → mode → count
pub type ByProperty = BTreeMap<String, BTreeMap<String, u64>>;

/// The violations summary `trustmirror report` prints: per (policy, namespace), counts by mode.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub since: Option<Timestamp>,
    pub decisions: usize,
    pub denied: usize,
    pub breakglass_uses: usize,
    /// (policy, namespace) → property → mode → count
    pub violations: BTreeMap<String, BTreeMap<String, ByProperty>>,
    /// Images with the most violations.
    pub top_images: Vec<(String, u64)>,
}

pub fn report(records: &[AuditRecord], since: Option<Timestamp>) -> Report {
    let mut r = Report { since, decisions: records.len(), ..Default::default() };
    let mut imgs: BTreeMap<String, u64> = BTreeMap::new();
    for rec in records {
        if !rec.allowed {
            r.denied += 1;
        }
        if rec.exemption.is_some() {
            r.breakglass_uses += 1;
        }
        for v in &rec.violations {
            *r.violations
                .entry(v.policy.clone())
                .or_default()
                .entry(rec.namespace.clone())
                .or_default()
                .entry(v.property.as_str().to_string())
                .or_default()
                .entry(mode_str(v.mode).to_string())
                .or_default() += 1;
            *imgs.entry(rec.digest.clone().unwrap_or_else(|| rec.image.clone())).or_default() += 1;
        }
    }
    let mut top: Vec<(String, u64)> = imgs.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    r.top_images = top;
    r
}
