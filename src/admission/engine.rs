//! The admission engine: the policy set (hot-reloaded), trust roots, the decision cache,
//! break-glass exemptions and the audit sink; [`Engine::decide_image`] decides one image from the
//! store. The review as a whole — every image of a workload, the response — is [`super::validate`].

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::audit;
use super::cache::{self, DecisionCache, EvidenceCache};
use super::loaders::{LoadError, load_exemptions_file, load_policy_and_sources};
use super::metrics::{AdmissionMetrics, l};
use crate::core::clock::Clock;
use crate::core::material::MaterialRecord;
use crate::core::policy::{Facts, Mode, PolicySet, Property, Violation};
use crate::core::verify::TrustStore;
use crate::store::Store;
use crate::store::admission::{Exemption, Scope};
use crate::trust::{TrustConfig, TrustSource};

use std::path::PathBuf;

/// What the admission engine is told at start.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Policy files (YAML, several documents each).
    pub policy_files: Vec<PathBuf>,
    pub banned_file: Option<PathBuf>,
    /// Break-glass exemptions from a file (a ConfigMap every replica sees).
    pub exemptions_file: Option<PathBuf>,
    /// Where trust roots come from (when the engine builds its own [`TrustSource`]).
    pub trust: TrustConfig,
    /// How long a cached decision lives (scan ages and exemptions depend on the clock).
    pub cache_ttl: Duration,
    /// Longest break-glass exemption honoured.
    pub breakglass_max: SignedDuration,
    /// On an internal error: deny (closed) or allow with a warning (open).
    pub fail_open: bool,
    /// Record allowed admissions without violations in the audit log too.
    pub record_allowed: bool,
    /// How long decisions go on without new trust material.
    pub freshness: crate::core::freshness::FreshnessPolicy,
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
            trust: TrustConfig::default(),
            cache_ttl: Duration::from_secs(60),
            breakglass_max: SignedDuration::from_hours(4),
            fail_open: false,
            record_allowed: false,
            freshness: Default::default(),
            audit_file: None,
            require_mirror_sync: false,
        }
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
    /// Policies satisfied by a verification summary: (policy, what was accepted).
    pub by_vsa: Vec<(String, String)>,
}

impl ImageOutcome {
    pub fn enforced(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.mode == Mode::Enforce)
    }
}

/// Clock skew tolerated for an exemption's creation time.
const EXEMPTION_SKEW: SignedDuration = SignedDuration::from_mins(2);

/// Why an active exemption is not honoured, if it is not: created in the future (a window that
/// would start later and run long), or a window longer than `max` — measured from its creation
/// and from now, so no exemption is good for more than `max` from the moment it is used.
pub fn exemption_refusal(e: &Exemption, now: Timestamp, max: SignedDuration) -> Option<&'static str> {
    if e.created_at.duration_since(now) > EXEMPTION_SKEW {
        return Some("created in the future");
    }
    if e.expires_at.duration_since(e.created_at) > max {
        return Some("longer than the maximum");
    }
    if e.expires_at.duration_since(now) > max {
        return Some("expires further from now than the maximum");
    }
    None
}

/// The admission engine: policy, trust, cache, exemptions, audit.
pub struct Engine {
    /// Attestation policy files the current policy documents reference (watched with them).
    policy_sources: RwLock<Vec<PathBuf>>,
    pub(super) store: Arc<Store>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) opts: EngineOptions,
    policy: RwLock<Arc<PolicySet>>,
    file_exemptions: RwLock<Vec<Exemption>>,
    store_exemptions: Mutex<(Option<Instant>, Arc<Vec<Exemption>>)>,
    trust: Arc<TrustSource>,
    cache: DecisionCache,
    memo: EvidenceCache,
    /// Why the last policy reload failed (cleared by a good one): readiness says it.
    reload_error: Mutex<Option<String>>,
    ingest: OnceLock<tokio::sync::mpsc::Sender<String>>,
    pub(super) audit: audit::Sink,
    pub metrics: AdmissionMetrics,
    /// The freshness verdicts, re-judged at most once a second of wall time (and whenever the
    /// clock has moved).
    freshness: Mutex<Option<(Instant, Timestamp, Arc<Vec<Violation>>)>>,
}

impl Engine {
    /// Load the policy (an error here is fatal: a webhook must not start without its policy),
    /// with a trust source of its own built from `opts.trust`.
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        opts: EngineOptions,
        ingest: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> anyhow::Result<Self> {
        let trust = Arc::new(TrustSource::new(store.clone(), opts.trust.clone()));
        Self::with_trust(store, clock, trust, opts, ingest)
    }

    /// As [`Engine::new`], sharing the service's trust source.
    pub fn with_trust(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        trust: Arc<TrustSource>,
        opts: EngineOptions,
        ingest: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> anyhow::Result<Self> {
        let (policy, policy_sources) = load_policy_and_sources(&opts.policy_files, opts.banned_file.as_ref())?;
        let file_exemptions = match &opts.exemptions_file {
            Some(p) if p.exists() => load_exemptions_file(p)?,
            _ => vec![],
        };
        let metrics = AdmissionMetrics::new();
        let audit = audit::Sink::start(store.clone(), opts.audit_file.clone(), metrics.audit_dropped.clone())?;
        tracing::info!(policies = policy.policies.len(), version = %policy.version, banned = policy.banned.banned.len(), "admission policy loaded");
        for w in &policy.warnings {
            tracing::warn!(warning = %w, "policy");
        }
        let slot = OnceLock::new();
        if let Some(q) = ingest {
            let _ = slot.set(q);
        }
        Ok(Self {
            store,
            clock,
            cache: DecisionCache::new(opts.cache_ttl),
            memo: EvidenceCache::new(),
            reload_error: Mutex::new(None),
            opts,
            policy: RwLock::new(Arc::new(policy)),
            policy_sources: RwLock::new(policy_sources),
            file_exemptions: RwLock::new(file_exemptions),
            store_exemptions: Mutex::new((None, Arc::new(vec![]))),
            trust,
            ingest: slot,
            audit,
            metrics,
            freshness: Mutex::new(None),
        })
    }

    /// What the freshness policy says of the trust material now: a violation per kind that is
    /// past its warning (`warn`) or its expiry (`enforce`, unless the rule keeps it).
    pub fn freshness(&self) -> Arc<Vec<Violation>> {
        let now = self.clock.now();
        {
            let c = self.freshness.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, t, v)) = &*c
                && at.elapsed() < Duration::from_secs(1)
                && *t == now
            {
                return v.clone();
            }
        }
        use crate::core::freshness::Verdict;
        let v: Vec<Violation> = match crate::trust::freshness::facts(&self.store, &self.trust.config().tuf_repo) {
            Ok(f) => crate::core::freshness::judge_all(&self.opts.freshness, &f, now)
                .into_values()
                .filter_map(|v| match v {
                    Verdict::Fresh => None,
                    Verdict::Warn(m) => Some((m, Mode::Warn)),
                    Verdict::Deny(m) => Some((m, Mode::Enforce)),
                })
                .map(|(message, mode)| Violation { policy: "(freshness)".into(), property: Property::Freshness, message, mode })
                .collect(),
            Err(e) => vec![Violation {
                policy: "(freshness)".into(),
                property: Property::Freshness,
                message: format!("reading the trust material's state failed: {e} (failing closed)"),
                mode: if self.opts.fail_open { Mode::Warn } else { Mode::Enforce },
            }],
        };
        let v = Arc::new(v);
        *self.freshness.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), now, v.clone()));
        v
    }

    /// Attach the mirror's on-demand queue (once; the service starts the queue after the engine).
    pub fn set_ingest(&self, q: tokio::sync::mpsc::Sender<String>) {
        let _ = self.ingest.set(q);
    }

    /// Drop every cached decision (benchmarks measure cold decisions with it).
    pub fn clear_cache(&self) {
        self.cache.clear();
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

    /// Attestation policy files the current policy documents reference.
    pub fn policy_sources(&self) -> Vec<PathBuf> {
        self.policy_sources.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn trust(&self) -> Arc<TrustStore> {
        self.trust.roots()
    }

    /// Re-read policy and banned list; keep the old policy when the new one does not parse.
    pub fn reload_policy(&self) -> Result<bool, LoadError> {
        match load_policy_and_sources(&self.opts.policy_files, self.opts.banned_file.as_ref()) {
            Ok((p, sources)) => {
                *self.policy_sources.write().unwrap_or_else(|e| e.into_inner()) = sources;
                *self.reload_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                for w in &p.warnings {
                    tracing::warn!(warning = %w, "policy");
                }
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
                *self.reload_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                self.metrics.policy_reloads.get_or_create(&l(&[("what", "policy"), ("result", "error")])).inc();
                Err(e)
            }
        }
    }

    pub fn reload_exemptions(&self) -> Result<(), LoadError> {
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
        self.trust.default_root().map_err(|e| e.to_string())?;
        if self.opts.require_mirror_sync && self.store.oci_repos_synced().map_err(|e| e.to_string())? == 0 {
            return Err("the OCI mirror has not completed a sync yet".into());
        }
        Ok(())
    }

    /// What an operator should know although the webhook is ready (a policy file that no longer
    /// loads: the last good policy is still enforced).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = vec![];
        if let Some(e) = self.reload_error.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            w.push(format!("policy reload failed: {e}; enforcing the last good policy (version {})", self.policy().version));
        }
        w
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
            .filter(|e| match exemption_refusal(e, now, self.opts.breakglass_max) {
                None => true,
                Some(why) => {
                    tracing::warn!(id = e.id, reason = why, "ignoring break-glass exemption");
                    false
                }
            })
            .find(|e| match &e.scope {
                Scope::Namespace(n) => n == namespace,
                Scope::Digest(d) => Some(d.as_str()) == digest,
            })
            .cloned()
    }

    /// Decide one image in a namespace. `cap` lowers enforce to warn/audit (the webhook
    /// configuration selected by a namespace label says how far).
    /// Gatekeeper constraints over a Pod running `images` in `namespace`: for callers that
    /// decide images without an object (`policy check`, the deploy gate).
    pub fn constraints_for_images(&self, namespace: &str, images: &[&str]) -> Vec<Violation> {
        let policy = self.policy();
        if policy.gatekeeper.is_empty() {
            return vec![];
        }
        let pod = super::review::pod("trustmirror-check", namespace, images);
        let req = super::review::request_for("trustmirror-check", namespace, &pod);
        policy.gatekeeper.evaluate(&req["request"]).iter().map(constraint_violation).collect()
    }

    pub fn decide_image(&self, namespace: &str, image: &str, cap: Option<Mode>) -> ImageOutcome {
        let policy = self.policy();
        let trust = self.trust.roots();
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
            by_vsa: vec![],
        };
        let internal = |msg: String| Violation {
            policy: "(trustmirror)".into(),
            property: Property::Mirror,
            message: msg,
            mode: if self.opts.fail_open { Mode::Warn } else { Mode::Enforce },
        };
        let parsed = match crate::core::reference::parse(image) {
            Ok(r) => r,
            Err(e) => {
                out.violations.push(Violation {
                    policy: "(trustmirror)".into(),
                    property: Property::Digest,
                    message: e,
                    mode: Mode::Enforce,
                });
                return out;
            }
        };
        out.repository = parsed.repository.clone();
        out.by_tag = parsed.digest.is_none();
        out.digest = match parsed.digest {
            Some(d) => Some(d),
            None => match self.store.oci_tag(&out.repository, parsed.tag.as_deref().unwrap_or("latest")) {
                Ok(t) => t.map(|t| t.digest),
                Err(e) => {
                    out.violations.push(internal(format!("{image}: reading the mirrored tag failed: {e} (failing closed)")));
                    return out;
                }
            },
        };
        let etag = match out.digest.as_deref().map(|d| self.store.oci_etag(&out.repository, d)).transpose() {
            Ok(e) => e.flatten(),
            Err(e) => {
                out.violations.push(internal(format!("{image}: reading the store failed: {e} (failing closed)")));
                return out;
            }
        };
        // the witnessed logs' state, when a policy looks at it (an alarm or a new witnessed
        // checkpoint changes decisions)
        let tlog_epoch = if policy.uses_transparency() {
            match self.store.tlog_states().and_then(|s| Ok((s, self.store.tlog_roots_count()?))) {
                Ok((states, proven)) => {
                    let mut h = Sha256::new();
                    // a bundle checkpoint proven since is a different decision
                    h.update(proven.to_be_bytes());
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
        let key = cache::key(&[
            out.repository.as_str(),
            out.digest.as_deref().unwrap_or(image),
            if out.by_tag { "t" } else { "d" },
            etag.as_deref().unwrap_or("-"),
            &policy.version,
            &trust.digest(),
            &tlog_epoch,
        ]);
        let hit = self.cache.get(&key, now);
        let eval = match hit {
            Some(e) => {
                out.cached = true;
                self.metrics.cache.get_or_create(&l(&[("result", "hit")])).inc();
                e
            }
            None => {
                self.metrics.cache.get_or_create(&l(&[("result", "miss")])).inc();
                let facts = match self.facts(image, &out, etag.is_some(), &policy) {
                    Ok(f) => f,
                    Err(e) => {
                        out.violations.push(internal(format!("{image}: reading material from the store failed: {e} (failing closed)")));
                        return out;
                    }
                };
                if facts.material.is_none() {
                    self.queue(image, &out);
                }
                let e = Arc::new(policy.evaluate_with(&trust, &facts, now, &self.memo));
                // misses are not cached: the material may land any second (and a checkpoint
                // not yet proven against the witnessed history may be proven any second)
                let unproven = facts.tlog.values().any(|f| {
                    matches!(
                        f.verdict,
                        crate::core::tlog::HistoryVerdict::Unwitnessed { .. } | crate::core::tlog::HistoryVerdict::UnknownLog { .. }
                    )
                });
                if facts.material.is_some() && !unproven {
                    self.cache.insert(key, now, e.clone());
                }
                e
            }
        };
        out.policies = eval.policies.clone();
        out.by_vsa = eval.by_vsa.clone();
        out.violations = policy.apply_namespace(&eval, namespace);
        // trust material past its freshness policy concerns every image a policy covers
        if !out.policies.is_empty() {
            out.violations.extend(self.freshness().iter().cloned());
        }
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
    /// What the store holds for the image. Bundle bytes are read only for items that can still
    /// count: an item whose recorded evidence names a signer no authority of the policy accepts
    /// never will (its identity does not change under another trust root), so a digest carrying
    /// hundreds of items signed by someone else costs no reads of them.
    fn facts(&self, image: &str, o: &ImageOutcome, has_material: bool, policy: &PolicySet) -> Result<Facts, crate::store::StoreError> {
        let tlog = policy.uses_transparency();
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
        let m: Option<MaterialRecord> = self.store.oci_material(&o.repository, d)?;
        if let Some(m) = &m {
            for i in m.items.iter().filter(|i| i.evidence.as_ref().is_none_or(|e| policy.accepts_signer(e))) {
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
        let Some(m) = &f.material else { return Ok(()) };
        let cps: Vec<(&str, u64, crate::core::tlog::Hash)> = m
            .items
            .iter()
            .filter_map(|i| i.evidence.as_ref())
            .flat_map(|e| e.checkpoints.iter())
            .filter_map(|c| c.root_hash().map(|r| (c.log.as_str(), c.size, r)))
            .collect();
        f.tlog = self.store.tlog_facts(cps.iter().map(|(l, s, r)| (*l, *s, r)))?;
        Ok(())
    }

    fn queue(&self, image: &str, o: &ImageOutcome) {
        let Some(tx) = self.ingest.get() else { return };
        let r = match (&o.digest, o.by_tag) {
            (Some(d), _) => format!("{}@{d}", o.repository),
            (None, _) => image.to_string(),
        };
        if tx.try_send(r).is_ok() {
            self.metrics.misses_queued.inc();
        }
    }
}

/// A Gatekeeper finding as a violation: `deny` enforces, `warn` warns, `dryrun` audits.
pub fn constraint_violation(f: &crate::core::policy::gatekeeper::Finding) -> Violation {
    use crate::core::policy::gatekeeper::Action;
    let mode = match f.action {
        Action::Deny => Mode::Enforce,
        Action::Warn => Mode::Warn,
        Action::DryRun => Mode::Audit,
    };
    Violation { policy: f.constraint.clone(), property: Property::Constraint, message: f.msg.clone(), mode }
}
