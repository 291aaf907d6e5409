//! The deploy gate (`trustmirror gate`): the admission engine's decision for targets outside
//! Kubernetes and for CD systems that must fail before they apply anything — the same policies,
//! banned list, evidence and messages as the webhook.
//!
//! Evidence comes from a store (offline, exactly as admission reads it) or straight from the
//! registries: then each image is ingested into a private, temporary store through the mirror's
//! own ingest path (the same verification, the same recorded evidence) and decided from there, so
//! both modes give the same verdict by construction. Tags are resolved to the digest whose
//! material was read, and that digest is what is decided (as `/mutate` pins and `/validate`
//! decides).
//!
//! For every image that passes, [`summaries`] builds a SLSA verification summary (VSA v1) and
//! signs it ([`crate::core::vsa`]); [`push_summary`] attaches it to the image as an OCI referrer,
//! where the mirror picks it up like any attestation and a policy's `vsa:` can accept it.

pub mod report;

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use crate::admission::{Engine, EngineOptions, ImageOutcome};
use crate::core::clock::Clock;
use crate::core::policy::{Mode, Violation};
use crate::core::vsa::{Summary, VsaSigner};
use crate::mirror::oci::{OciMirror, OciMirrorConfig, RegistryOptions};
use crate::store::Store;
use crate::trust::{TrustConfig, TrustSource};

/// Where the evidence comes from.
#[derive(Debug, Clone)]
pub enum Evidence {
    /// A trustmirror store (mirrored and verified already), read offline.
    Store(PathBuf),
    /// The registries, verified against this trusted root.
    Registry { trusted_root: PathBuf, registry: RegistryOptions },
}

#[derive(Debug, Clone)]
pub struct GateOptions {
    pub policies: Vec<PathBuf>,
    pub banned: Option<PathBuf>,
    pub evidence: Evidence,
    /// The namespace whose modes apply (policies' `namespaces` overrides).
    pub namespace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// No decision: the evidence could not be read (registry unreachable, store unreadable).
    Undecided,
}

/// One image's decision.
#[derive(Debug, Clone, Serialize)]
pub struct Decided {
    pub image: String,
    /// `registry/repo@sha256:…` that was decided (a tag resolved to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    pub verdict: Verdict,
    pub policies: Vec<String>,
    pub violations: Vec<Violation>,
    /// Why no decision could be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Policies satisfied by a verification summary.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_vsa: Vec<(String, String)>,
}

/// Failures of the gate itself (configuration), as opposed to images that fail.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    Config(String),
}

/// A decision context: the engine over a store (the given one, or a private one the registries
/// are ingested into), and for registry mode the mirror that fills it.
pub struct Gate {
    engine: Engine,
    store: Arc<Store>,
    mirror: Option<OciMirror>,
    namespace: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Gate {
    pub fn new(o: &GateOptions, clock: Arc<dyn Clock>) -> Result<Self, GateError> {
        let cfg = |e: String| GateError::Config(e);
        let (store, trust_cfg, tmp, registry) = match &o.evidence {
            Evidence::Store(p) => {
                if !p.exists() {
                    return Err(cfg(format!("--store {}: no such store", p.display())));
                }
                (Store::open(p).map_err(|e| cfg(format!("--store {}: {e}", p.display())))?, TrustConfig::default(), None, None)
            }
            Evidence::Registry { trusted_root, registry } => {
                std::fs::read(trusted_root).map_err(|e| cfg(format!("--trusted-root {}: {e}", trusted_root.display())))?;
                let tmp = tempfile::tempdir().map_err(|e| cfg(format!("a temporary store: {e}")))?;
                let s = Store::open(tmp.path().join("gate.redb")).map_err(|e| cfg(format!("a temporary store: {e}")))?;
                (s, TrustConfig { explicit: Some(trusted_root.clone()), ..Default::default() }, Some(tmp), Some(registry.clone()))
            }
        };
        let store = Arc::new(store);
        let opts = EngineOptions {
            policy_files: o.policies.clone(),
            banned_file: o.banned.clone(),
            trust: trust_cfg.clone(),
            ..Default::default()
        };
        let engine = Engine::new(store.clone(), clock.clone(), opts, None).map_err(|e| cfg(format!("{e:#}")))?;
        let mirror = registry.map(|registry| {
            let trust = Arc::new(TrustSource::new(store.clone(), trust_cfg));
            OciMirror::new(store.clone(), OciMirrorConfig { registry, retries: 1, ..Default::default() }, clock, trust)
        });
        Ok(Self { engine, store, mirror, namespace: o.namespace.clone(), _tmp: tmp })
    }

    /// Over a store the caller already holds open (in-process use: the store is not opened
    /// twice). `o.evidence` is ignored.
    pub fn over_store(store: Arc<Store>, o: &GateOptions, clock: Arc<dyn Clock>) -> Result<Self, GateError> {
        let opts = EngineOptions { policy_files: o.policies.clone(), banned_file: o.banned.clone(), ..Default::default() };
        let engine = Engine::new(store.clone(), clock, opts, None).map_err(|e| GateError::Config(format!("{e:#}")))?;
        Ok(Self { engine, store, mirror: None, namespace: o.namespace.clone(), _tmp: None })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Decide one image.
    pub async fn decide(&self, image: &str) -> Decided {
        let mut d = Decided {
            image: image.to_string(),
            decided: None,
            verdict: Verdict::Undecided,
            policies: vec![],
            violations: vec![],
            error: None,
            by_vsa: vec![],
        };
        let parsed = match crate::core::reference::parse(image) {
            Ok(p) => p,
            Err(e) => {
                d.error = Some(format!("not an image reference: {e}"));
                return d;
            }
        };
        if let Some(m) = &self.mirror
            && let Err(e) = m.ingest_reference(image).await
        {
            d.error = Some(format!("reading {image} from its registry: {e}"));
            return d;
        }
        let digest = match parsed.digest {
            Some(dg) => Some(dg),
            None => match self.store.oci_tag(&parsed.repository, parsed.tag.as_deref().unwrap_or("latest")) {
                Ok(t) => t.map(|t| t.digest),
                Err(e) => {
                    d.error = Some(format!("reading the store: {e}"));
                    return d;
                }
            },
        };
        // decide the digest (a tag is whatever the registry says now; what was read is this)
        let target = match &digest {
            Some(dg) => format!("{}@{dg}", parsed.repository),
            None => image.to_string(),
        };
        let mut o: ImageOutcome = self.engine.decide_image(&self.namespace, &target, None);
        // Gatekeeper constraints see the image as the deployment names it
        o.violations.extend(self.engine.constraints_for_images(&self.namespace, &[image]));
        d.decided = digest.as_ref().map(|_| target.clone());
        d.policies = o.policies.clone();
        d.by_vsa = o.by_vsa.clone();
        d.verdict = if o.enforced().next().is_some() { Verdict::Fail } else { Verdict::Pass };
        d.violations = o.violations;
        d
    }

    /// The verification summary of a passing image: what counted (items whose signer a policy's
    /// authority accepts), the policy set's version as its digest, the SLSA build level the
    /// policies required.
    pub fn summary(&self, d: &Decided, verifier_id: &str, policy_uri: &str, now: Timestamp) -> Option<Summary> {
        if d.verdict != Verdict::Pass {
            return None;
        }
        let decided = d.decided.as_ref()?;
        let (repository, digest) = decided.split_once('@')?;
        let policy = self.engine.policy();
        let material = self.store.oci_material(repository, digest).ok().flatten();
        let inputs = material
            .iter()
            .flat_map(|m| m.items.iter())
            .filter(|i| i.evidence.as_ref().is_some_and(|e| policy.accepts_signer(e)))
            .filter_map(|i| i.bundle.as_ref().map(|b| (format!("oci://{decided}#{}", i.source), b.clone())))
            .collect();
        let level = policy
            .matching(repository)
            .iter()
            .filter(|p| p.mode == Mode::Enforce)
            .filter_map(|p| p.provenance.as_ref().map(|r| r.min_level))
            .max()
            .filter(|l| *l > 0);
        Some(Summary {
            repository: repository.to_string(),
            digest: digest.to_string(),
            verifier_id: verifier_id.to_string(),
            time_verified: now,
            policy_uri: policy_uri.to_string(),
            policy_sha256: policy.version.clone(),
            inputs,
            levels: level.map(|l| vec![format!("SLSA_BUILD_LEVEL_{l}")]).unwrap_or_default(),
        })
    }
}

/// Sign the summaries of passing images: (image decided, bundle).
pub fn summaries(
    gate: &Gate,
    decided: &[Decided],
    signer: &VsaSigner,
    verifier_id: &str,
    policy_uri: &str,
    now: Timestamp,
) -> Result<Vec<(String, serde_json::Value)>, String> {
    let mut out = vec![];
    for d in decided {
        if let Some(s) = gate.summary(d, verifier_id, policy_uri, now) {
            let b = crate::core::vsa::sign(signer, &crate::core::vsa::statement(&s))?;
            out.push((format!("{}@{}", s.repository, s.digest), b));
        }
    }
    Ok(out)
}

/// Attach a summary to its image in the registry (an OCI referrer holding the bundle).
pub async fn push_summary(decided: &str, bundle: &serde_json::Value, registry: &RegistryOptions) -> anyhow::Result<String> {
    let (repository, digest) = decided.split_once('@').ok_or_else(|| anyhow::anyhow!("{decided}: not a digest reference"))?;
    let (host, repo) = repository.split_once('/').ok_or_else(|| anyhow::anyhow!("{repository}: no registry host"))?;
    let p = crate::mirror::oci::push::Pusher::with_tls(host, registry.auth_for(host), !registry.insecure_hosts.iter().any(|h| h == host));
    let (manifest, _) =
        p.get_manifest(repo, digest).await?.ok_or_else(|| anyhow::anyhow!("{decided}: no such manifest in the registry"))?;
    crate::mirror::oci::push::attach_bundle(&p, repo, digest, manifest.len(), bundle, Some(crate::core::vsa::PREDICATE_VSA)).await
}
