//! The policy model every input format compiles into: policies with their authorities and the
//! five properties' requirements, the banned list, the facts an evaluation reads and the
//! violations it returns.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::core::material::MaterialRecord;
use crate::core::tlog::history::TlogFact;
use crate::core::verify::Authority;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Allow and record.
    Audit,
    /// Allow with a warning.
    Warn,
    /// Deny.
    Enforce,
}

/// The properties a decision is about (stable names: metrics, audit records, reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    Registry,
    Digest,
    Mirror,
    Signature,
    Provenance,
    Sbom,
    Vulnerabilities,
    BaseImage,
    Attestation,
    /// The bundles' transparency-log checkpoints against the witnessed history.
    Transparency,
    NoPolicy,
    /// The trust material itself is too old (the freshness policy).
    Freshness,
    /// A Gatekeeper constraint over the admitted object.
    Constraint,
}

impl Mode {
    /// The one spelling of each mode (configuration, query strings, metrics, audit records).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "warn" => Ok(Mode::Warn),
            "audit" => Ok(Mode::Audit),
            o => Err(format!("unknown mode {o:?} (enforce, warn or audit)")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Property {
    pub fn as_str(self) -> &'static str {
        match self {
            Property::Registry => "registry",
            Property::Digest => "digest",
            Property::Mirror => "mirror",
            Property::Signature => "signature",
            Property::Provenance => "provenance",
            Property::Sbom => "sbom",
            Property::Vulnerabilities => "vulnerabilities",
            Property::BaseImage => "base-image",
            Property::Attestation => "attestation",
            Property::Transparency => "transparency",
            Property::NoPolicy => "no-policy",
            Property::Freshness => "freshness",
            Property::Constraint => "constraint",
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub policy: String,
    pub property: Property,
    pub message: String,
    /// The mode of the policy that found it.
    pub mode: Mode,
}

/// One authority of a policy. Its alternatives (the identities of a keyless authority) are
/// interchangeable: a signature by any of them satisfies the authority, and counts once.
#[derive(Debug, Clone)]
pub struct NamedAuthority {
    pub name: String,
    pub alternatives: Vec<Authority>,
    /// policy-controller's `static: {action: pass|fail}`: satisfied (or not) without a signature.
    pub static_pass: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct AttestationReq {
    pub name: String,
    pub predicate_type: String,
    pub check: Option<super::attestation::Check>,
    pub signers: super::attestation::Signers,
    /// Every signed attestation of the type must pass the check (Kyverno), rather than one
    /// (policy-controller).
    pub every: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ProvenanceReq {
    pub min_level: u8,
    /// builder.id → SLSA build level.
    pub builders: BTreeMap<String, u8>,
    pub build_types: Vec<String>,
    pub source_repositories: Vec<String>,
    pub source_refs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Severity {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" => Severity::Low,
            "negligible" => Severity::Negligible,
            _ => Severity::Unknown,
        }
    }
}

#[derive(Debug, Clone)]
pub struct VulnReq {
    pub deny_at_or_above: Severity,
    pub max_age: SignedDuration,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub kind: String,
    pub images: Vec<glob::Pattern>,
    /// Repositories the policy leaves alone although `images` covers them (Kyverno
    /// `skipImageReferences`).
    pub skip_images: Vec<glob::Pattern>,
    pub mode: Mode,
    pub namespace_modes: BTreeMap<String, Mode>,
    /// The namespaces it applies in (Kyverno `match`/`exclude`, a namespaced Kyverno
    /// `Policy`); `None`: every namespace.
    pub scope: Option<NamespaceScope>,
    pub trust_root: Option<String>,
    pub authorities: Vec<NamedAuthority>,
    pub threshold: usize,
    pub attestations: Vec<AttestationReq>,
    pub provenance: Option<ProvenanceReq>,
    pub sbom_required: bool,
    pub vulnerabilities: Option<VulnReq>,
    pub base_images: Option<Vec<glob::Pattern>>,
    pub registries: Option<Vec<glob::Pattern>>,
    pub require_digest: bool,
    pub transparency: Option<TransparencyReq>,
    /// Accept a SLSA verification summary from one of these verifiers instead of evaluating the
    /// properties here (the deploy gate already did).
    pub vsa: Option<VsaReq>,
}

impl Policy {
    /// A policy that requires `threshold` of `authorities` (and `attestations`) for `images`,
    /// enforced everywhere, with no other requirement; formats set the rest with `..`.
    pub fn new(
        name: String,
        kind: &str,
        images: Vec<glob::Pattern>,
        authorities: Vec<NamedAuthority>,
        threshold: usize,
        attestations: Vec<AttestationReq>,
    ) -> Self {
        Policy {
            name,
            kind: kind.into(),
            images,
            skip_images: vec![],
            mode: Mode::Enforce,
            namespace_modes: BTreeMap::new(),
            scope: None,
            trust_root: None,
            authorities,
            threshold,
            attestations,
            provenance: None,
            sbom_required: false,
            vulnerabilities: None,
            base_images: None,
            registries: None,
            require_digest: false,
            transparency: None,
            vsa: None,
        }
    }
}

/// `vsa:` — verifiers whose summaries (VSA v1, signed with their key, about this digest, PASSED)
/// stand for this policy's properties while younger than `max_age`.
#[derive(Debug, Clone)]
pub struct VsaReq {
    /// (name, SubjectPublicKeyInfo DER).
    pub verifiers: Vec<(String, Vec<u8>)>,
    pub max_age: SignedDuration,
}

/// `transparency:` — the log checkpoints of the image's signatures and attestations must be in
/// the witnessed history (`required`), or only warn when they are not yet (`warn`); a checkpoint
/// the history contradicts, or a log under alarm, is always a violation. `witnessPolicy` (C2SP
/// tlog-policy) additionally requires the witnessed checkpoint's cosignatures to meet a quorum.
#[derive(Debug, Clone)]
pub struct TransparencyReq {
    pub unwitnessed: Mode,
    pub witness_policy: Option<crate::core::tlog::WitnessPolicy>,
}

/// One namespace filter: names (wildcards; empty: any) and a selector on the name label.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter {
    pub names: Vec<glob::Pattern>,
    pub selector: Option<super::selector::Selector>,
}

impl NamespaceFilter {
    fn matches(&self, namespace: &str) -> bool {
        (self.names.is_empty() || self.names.iter().any(|p| p.matches(namespace)))
            && self.selector.as_ref().is_none_or(|s| s.matches_namespace(namespace))
    }
}

/// Applies where one of `any` matches (all of them with `all`) and `exclude` does not.
#[derive(Debug, Clone, Default)]
pub struct NamespaceScope {
    pub filters: Vec<NamespaceFilter>,
    /// every filter must match (Kyverno `match.all`) rather than one (`match.any`)
    pub all: bool,
    pub exclude: Vec<NamespaceFilter>,
    pub exclude_all: bool,
}

impl NamespaceScope {
    pub fn applies(&self, namespace: &str) -> bool {
        let hit = |fs: &[NamespaceFilter], all: bool| {
            if all { fs.iter().all(|f| f.matches(namespace)) } else { fs.iter().any(|f| f.matches(namespace)) }
        };
        (self.filters.is_empty() || hit(&self.filters, self.all)) && (self.exclude.is_empty() || !hit(&self.exclude, self.exclude_all))
    }
}

impl Policy {
    /// Does the policy apply to objects in `namespace`?
    pub fn applies_in(&self, namespace: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.applies(namespace))
    }
    pub fn mode_for(&self, namespace: &str) -> Mode {
        self.namespace_modes.get(namespace).copied().unwrap_or(self.mode)
    }
    /// Does the policy cover `repository` (`registry/repo`, normalized)?
    pub fn matches(&self, repository: &str) -> bool {
        let hit = |gs: &[glob::Pattern]| gs.iter().any(|g| g.matches(repository) || g.matches(&format!("{repository}:")));
        hit(&self.images) && !hit(&self.skip_images)
    }
}

/// A banned package: by name (any ecosystem) or by purl prefix (`pkg:npm/event-stream@3.3.6`,
/// `pkg:npm/event-stream` for every version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banned {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub purl: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BannedList {
    #[serde(default)]
    pub banned: Vec<Banned>,
}

impl BannedList {
    /// YAML (`banned: [{name, purl, reason}]`), or plain text: one package name per line (`#`
    /// starts a comment), as scripts keep their lists.
    pub fn parse(text: &str) -> Result<Self, String> {
        match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(serde_yaml::Value::Mapping(_)) => serde_yaml::from_str(text).map_err(|e| format!("banned packages: {e}")),
            Ok(serde_yaml::Value::Null) => Ok(Self::default()),
            _ => Ok(Self {
                banned: text
                    .lines()
                    .map(|l| l.split('#').next().unwrap_or_default().trim())
                    .filter(|l| !l.is_empty())
                    .map(|n| Banned { name: Some(n.to_string()), purl: None, reason: None })
                    .collect(),
            }),
        }
    }
    pub fn hit(&self, name: &str, purl: &str) -> Option<&Banned> {
        self.banned.iter().find(|b| {
            b.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name))
                || b.purl.as_deref().is_some_and(|p| {
                    !purl.is_empty() && (purl == p || purl.starts_with(&format!("{p}@")) || purl.starts_with(&format!("{p}?")))
                })
        })
    }
}

/// Parsed policies, the banned list, and a version that changes whenever either does.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    pub banned: BannedList,
    /// What happens to images no policy covers (`None`: allowed). Denied unless a
    /// `PolicyDefaults` document says otherwise.
    pub no_match: Option<Mode>,
    /// What the documents said that changes nothing here (logged at load, printed by `policy check`).
    pub warnings: Vec<String>,
    pub version: String,
    /// Gatekeeper constraints, evaluated over the whole admitted object.
    pub gatekeeper: super::gatekeeper::Gatekeeper,
}

/// What the engine needs to know about an image, gathered by the caller from the store.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// As written in the workload (`registry/repo:tag` or `…@sha256:…`).
    pub reference: String,
    /// `registry/repo`.
    pub repository: String,
    /// Digest, from the reference or from the mirrored tag resolution.
    pub digest: Option<String>,
    /// The reference named no digest (it was resolved from a tag).
    pub by_tag: bool,
    pub material: Option<MaterialRecord>,
    /// Blobs the material's items reference (sha256 hex → bytes).
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// (log id, tree size) → what the witnessed history says of each checkpoint the material's
    /// bundles cite (gathered only when a policy asks for transparency).
    pub tlog: BTreeMap<(String, u64), TlogFact>,
}

impl PolicySet {
    /// Does any authority of any policy accept this signer? (Only such items feed the witness.)
    pub fn accepts_signer(&self, e: &crate::core::evidence::Evidence) -> bool {
        use super::attestation::Signers;
        self.policies.iter().flat_map(|p| p.authorities.iter()).flat_map(|a| a.alternatives.iter()).any(|alt| e.signed_by(alt))
            || self.policies.iter().flat_map(|p| p.attestations.iter()).any(|r| match &r.signers {
                // an attestation anyone may sign: every item may count
                Signers::Anyone => true,
                Signers::Entries { entries, .. } => entries.iter().any(|a| e.signed_by(a)),
                Signers::Policy | Signers::Authority(_) => false,
            })
    }

    /// Does any policy need [`Facts::tlog`]?
    pub fn uses_transparency(&self) -> bool {
        self.policies.iter().any(|p| p.transparency.is_some())
    }
}

/// The outcome of evaluating one image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation {
    pub reference: String,
    pub digest: Option<String>,
    pub policies: Vec<String>,
    pub violations: Vec<Violation>,
    /// Verified signers, by authority name.
    pub signers: Vec<(String, String)>,
    /// Policies satisfied by a verification summary instead of their own checks: (policy, what
    /// was accepted — verifier, time verified, the verifier's policy).
    pub by_vsa: Vec<(String, String)>,
    /// Verification summaries present but not accepted, per policy, with the reasons.
    pub vsa_refused: Vec<(String, String)>,
    /// When a part of this evaluation stops holding on its own (an accepted summary reaching its
    /// `maxAge`): a cached copy must not be used from then on.
    pub valid_until: Option<jiff::Timestamp>,
}

impl Evaluation {
    /// The strongest mode among violations (None: no violation).
    pub fn worst(&self) -> Option<Mode> {
        self.violations.iter().map(|v| v.mode).max()
    }
}
