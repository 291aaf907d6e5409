//! The one policy engine: admission, the deploy gate and the CLI all decide through
//! [`PolicySet::evaluate`]. Pure: the caller gathers the image's mirrored material ([`Facts`]); the
//! engine verifies what it needs with [`crate::core::verify`] and returns a [`Evaluation`] naming
//! every failed property.
//!
//! Input formats (YAML, several documents per file):
//! * Sigstore policy-controller `ClusterImagePolicy` (`policy.sigstore.dev/v1beta1`/`v1alpha1`):
//!   `images[].glob`, `mode`, `authorities[]` with `key.data` or `keyless.identities[]`
//!   (`issuer`/`issuerRegExp`/`subject`/`subjectRegExp`), `attestations[]` with `predicateType`
//!   (cosign names or URIs) and an optional `policy: {type: rego, data: …}` evaluated with
//!   regorus (`data.sigstore.isCompliant`, as policy-controller does). `ctlog` is accepted and
//!   ignored: transparency is checked from mirrored material.
//! * trustmirror `ImagePolicy` (`trustmirror.dev/v1alpha1`): the same `images`, `mode` and
//!   `authorities`, plus the five properties as built-in checks — `provenance` (SLSA level by
//!   builder, buildType, source repository/ref), `sbom` (required; banned packages from the
//!   banned list), `vulnerabilities` (deny at/above a severity, maximum scan age), `baseImages`
//!   (approved, from the provenance's resolved dependencies) — and structural rules
//!   (`registries.allowed`, `requireDigest`), per-namespace modes, `threshold` (M of N
//!   authorities) and `trustRootRef`.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::core::cosign::{check_simple_signing, predicate_type_for};
use crate::core::material::{ItemKind, ItemStatus, MaterialRecord};
use crate::core::verify::{Authority, IdentityPolicy, Matcher, Subject, TrustStore, Verified, verify_bundle};

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

#[derive(Debug, Clone)]
pub struct NamedAuthority {
    pub name: String,
    pub authority: Authority,
}

#[derive(Debug, Clone)]
pub struct AttestationReq {
    pub name: String,
    pub predicate_type: String,
    pub rego: Option<String>,
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
    pub mode: Mode,
    pub namespace_modes: BTreeMap<String, Mode>,
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

/// What the store knows about one log checkpoint cited by a bundle.
#[derive(Debug, Clone)]
pub struct TlogFact {
    pub verdict: crate::core::tlog::HistoryVerdict,
    /// The log's newest witnessed checkpoint (with cosignatures), for witness policies.
    pub witnessed_note: Option<String>,
}

impl Policy {
    pub fn mode_for(&self, namespace: &str) -> Mode {
        self.namespace_modes.get(namespace).copied().unwrap_or(self.mode)
    }
    fn matches(&self, repository: &str) -> bool {
        self.images.iter().any(|g| g.matches(repository) || g.matches(&format!("{repository}:")))
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
    pub fn parse(yaml: &str) -> Result<Self, String> {
        serde_yaml::from_str(yaml).map_err(|e| format!("banned packages: {e}"))
    }
    fn hit(&self, name: &str, purl: &str) -> Option<&Banned> {
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
    /// What happens to images no policy covers.
    pub no_match: Option<Mode>,
    pub version: String,
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
}

impl Evaluation {
    /// The strongest mode among violations (None: no violation).
    pub fn worst(&self) -> Option<Mode> {
        self.violations.iter().map(|v| v.mode).max()
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

// ---------------------------------------------------------------- parsing

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: Meta,
    spec: Value,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
}

fn mode_of(v: &Value) -> Result<Option<Mode>, String> {
    match v.as_str() {
        None => Ok(None),
        Some("enforce") => Ok(Some(Mode::Enforce)),
        Some("warn") => Ok(Some(Mode::Warn)),
        Some("audit") => Ok(Some(Mode::Audit)),
        Some(o) => Err(format!("unknown mode {o:?} (enforce, warn or audit)")),
    }
}

fn matcher(exact: &Value, re: &Value, what: &str) -> Result<Option<Matcher>, String> {
    if let Some(s) = exact.as_str() {
        return Ok(Some(Matcher::Exact(s.into())));
    }
    if let Some(r) = re.as_str() {
        return Matcher::regex(r).map(Some).map_err(|e| format!("{what}: {e}"));
    }
    Ok(None)
}

fn parse_authorities(spec: &Value, policy: &str) -> Result<Vec<NamedAuthority>, String> {
    let mut out = vec![];
    for (i, a) in spec["authorities"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        let name = a["name"].as_str().map(str::to_string).unwrap_or_else(|| format!("authority-{i}"));
        if let Some(k) = a.get("key") {
            let pem = k["data"].as_str().ok_or_else(|| format!("{policy}/{name}: key.data (PEM) is required"))?;
            let auth = Authority::key_pem(&name, pem).map_err(|e| format!("{policy}/{name}: {e}"))?;
            out.push(NamedAuthority { name, authority: auth });
        } else if let Some(k) = a.get("keyless") {
            let ids = k["identities"].as_array().cloned().unwrap_or_default();
            if ids.is_empty() {
                return Err(format!("{policy}/{name}: keyless.identities must list at least one identity"));
            }
            for (j, id) in ids.iter().enumerate() {
                let p = IdentityPolicy {
                    issuer: matcher(&id["issuer"], &id["issuerRegExp"], "issuerRegExp")?,
                    san: matcher(&id["subject"], &id["subjectRegExp"], "subjectRegExp")?,
                    github_repository: id["githubRepository"].as_str().map(str::to_string),
                    github_ref: id["githubRef"].as_str().map(|s| Matcher::Exact(s.into())),
                    github_workflow: None,
                };
                if p.issuer.is_none() || p.san.is_none() {
                    return Err(format!("{policy}/{name}: identity {j} needs issuer(RegExp) and subject(RegExp)"));
                }
                out.push(NamedAuthority {
                    name: if ids.len() == 1 { name.clone() } else { format!("{name}[{j}]") },
                    authority: Authority::Keyless(p),
                });
            }
        } else if a.get("static").is_some() {
            return Err(format!("{policy}/{name}: static authorities are not supported"));
        } else {
            return Err(format!("{policy}/{name}: an authority needs `key` or `keyless`"));
        }
    }
    Ok(out)
}

fn globs(v: &Value, what: &str) -> Result<Vec<glob::Pattern>, String> {
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|g| {
            let s = g["glob"].as_str().or(g.as_str()).ok_or_else(|| format!("{what}: expected globs"))?;
            glob::Pattern::new(s).map_err(|e| format!("{what}: {s:?}: {e}"))
        })
        .collect()
}

impl PolicySet {
    /// Parse policy documents (YAML, `---`-separated) and a banned list.
    pub fn parse(policy_yaml: &str, banned: BannedList) -> Result<Self, String> {
        let mut policies = vec![];
        let mut no_match = None;
        for d in serde_yaml::Deserializer::from_str(policy_yaml) {
            let v = Value::deserialize(d).map_err(|e| format!("policy YAML: {e}"))?;
            if v.is_null() {
                continue;
            }
            let doc: Doc = serde_json::from_value(v).map_err(|e| format!("policy document: {e}"))?;
            let name = doc.metadata.name.clone();
            let spec = &doc.spec;
            let kind_ok = (doc.kind == "ClusterImagePolicy" && doc.api_version.starts_with("policy.sigstore.dev/"))
                || (doc.kind == "ImagePolicy" && doc.api_version.starts_with("trustmirror.dev/"))
                || (doc.kind == "PolicyDefaults" && doc.api_version.starts_with("trustmirror.dev/"));
            if !kind_ok {
                return Err(format!("{name}: unsupported kind {}/{}", doc.api_version, doc.kind));
            }
            if doc.kind == "PolicyDefaults" {
                no_match = mode_of(&spec["noMatch"]).map_err(|e| format!("{name}: {e}"))?;
                continue;
            }
            let images = globs(&spec["images"], &format!("{name}.images"))?;
            if images.is_empty() {
                return Err(format!("{name}: images must list at least one glob"));
            }
            let authorities = parse_authorities(spec, &name)?;
            let attestations = spec["authorities"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .flat_map(|a| a["attestations"].as_array().cloned().unwrap_or_default())
                .chain(spec["attestations"].as_array().cloned().unwrap_or_default())
                .map(|a| {
                    let pt = a["predicateType"].as_str().ok_or_else(|| format!("{name}: attestation without predicateType"))?;
                    let rego = match a["policy"]["type"].as_str() {
                        None => None,
                        Some("rego") => {
                            Some(a["policy"]["data"].as_str().ok_or_else(|| format!("{name}: rego policy without data"))?.to_string())
                        }
                        Some(t) => return Err(format!("{name}: attestation policy type {t:?} is not supported (rego is)")),
                    };
                    Ok(AttestationReq { name: a["name"].as_str().unwrap_or(pt).to_string(), predicate_type: predicate_type_for(pt), rego })
                })
                .collect::<Result<Vec<_>, String>>()?;
            for a in &attestations {
                if let Some(r) = &a.rego {
                    rego_engine(&format!("{name}/{}.rego", a.name), r).map_err(|e| format!("{name}/{}: rego: {e}", a.name))?;
                }
            }
            let mut namespace_modes = BTreeMap::new();
            if let Some(m) = spec["namespaces"].as_object() {
                for (ns, v) in m {
                    namespace_modes
                        .insert(ns.clone(), mode_of(v).map_err(|e| format!("{name}: namespace {ns}: {e}"))?.unwrap_or(Mode::Enforce));
                }
            }
            let provenance = spec.get("provenance").filter(|p| !p.is_null()).map(|p| ProvenanceReq {
                min_level: p["minLevel"].as_u64().unwrap_or(0) as u8,
                builders: p["builders"]
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0) as u8)).collect())
                    .unwrap_or_default(),
                build_types: p["buildTypes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                source_repositories: p["sourceRepositories"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                source_refs: p["sourceRefs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            });
            let vulnerabilities = match spec.get("vulnerabilities").filter(|v| !v.is_null()) {
                None => None,
                Some(v) => Some(VulnReq {
                    deny_at_or_above: Severity::parse(v["denySeverity"].as_str().unwrap_or("critical")),
                    max_age: v["maxAge"]
                        .as_str()
                        .map(|s| crate::core::clock::parse_duration(s).map(|d| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)))
                        .transpose()
                        .map_err(|e| format!("{name}.vulnerabilities.maxAge: {e}"))?
                        .unwrap_or(SignedDuration::from_hours(24 * 7)),
                }),
            };
            policies.push(Policy {
                name: name.clone(),
                kind: doc.kind.clone(),
                images,
                mode: mode_of(&spec["mode"]).map_err(|e| format!("{name}: {e}"))?.unwrap_or(Mode::Enforce),
                namespace_modes,
                trust_root: spec["trustRootRef"].as_str().map(str::to_string),
                threshold: spec["threshold"].as_u64().unwrap_or(1).max(1) as usize,
                authorities,
                attestations,
                provenance,
                sbom_required: spec["sbom"]["required"].as_bool().unwrap_or(false),
                vulnerabilities,
                base_images: spec
                    .get("baseImages")
                    .filter(|v| !v.is_null())
                    .map(|b| globs(&b["approved"], &format!("{name}.baseImages")))
                    .transpose()?,
                registries: spec
                    .get("registries")
                    .filter(|v| !v.is_null())
                    .map(|r| globs(&r["allowed"], &format!("{name}.registries")))
                    .transpose()?,
                require_digest: spec["requireDigest"].as_bool().unwrap_or(false),
                transparency: match spec.get("transparency").filter(|v| !v.is_null()) {
                    None => None,
                    Some(t) => Some(TransparencyReq {
                        unwitnessed: match t["witnessed"].as_str().unwrap_or("required") {
                            "required" => Mode::Enforce,
                            "warn" => Mode::Warn,
                            "audit" => Mode::Audit,
                            o => return Err(format!("{name}.transparency.witnessed: {o:?} (required, warn or audit)")),
                        },
                        witness_policy: t["witnessPolicy"]
                            .as_str()
                            .map(crate::core::tlog::WitnessPolicy::parse)
                            .transpose()
                            .map_err(|e| format!("{name}.transparency.witnessPolicy: {e}"))?,
                    }),
                },
            });
        }
        let mut h = Sha256::new();
        h.update(policy_yaml.as_bytes());
        h.update(serde_json::to_vec(&banned).expect("json"));
        Ok(Self { policies, banned, no_match, version: hex::encode(&h.finalize()[..16]) })
    }

    /// The policies covering `repository` (`registry/repo`).
    pub fn matching(&self, repository: &str) -> Vec<&Policy> {
        self.policies.iter().filter(|p| p.matches(repository)).collect()
    }

    /// Evaluate every matching policy for one image. Namespace modes are applied by
    /// [`Evaluation`] consumers through `mode_for`; violations carry the policy's default mode
    /// here and are re-moded per namespace by [`PolicySet::apply_namespace`].
    pub fn evaluate(&self, trust: &TrustStore, facts: &Facts, now: Timestamp) -> Evaluation {
        let mut ev = Evaluation { reference: facts.reference.clone(), digest: facts.digest.clone(), ..Default::default() };
        let policies = self.matching(&facts.repository);
        if policies.is_empty() {
            if let Some(m) = self.no_match {
                ev.violations.push(Violation {
                    policy: "(none)".into(),
                    property: Property::NoPolicy,
                    message: format!("no policy covers {}", facts.repository),
                    mode: m,
                });
            }
            return ev;
        }
        for p in policies {
            ev.policies.push(p.name.clone());
            self.evaluate_one(p, trust, facts, now, &mut ev);
        }
        ev
    }

    /// Re-mode violations for a namespace (a policy's `namespaces` overrides).
    pub fn apply_namespace(&self, ev: &Evaluation, namespace: &str) -> Vec<Violation> {
        ev.violations
            .iter()
            .map(|v| {
                // a violation the policy itself lowered (e.g. `transparency.witnessed: warn`)
                // stays at most that low in every namespace
                let mode = match self.policies.iter().find(|p| p.name == v.policy) {
                    Some(p) if v.mode < p.mode => v.mode.min(p.mode_for(namespace)),
                    Some(p) => p.mode_for(namespace),
                    None => v.mode,
                };
                Violation { mode, ..v.clone() }
            })
            .collect()
    }

    fn evaluate_one(&self, p: &Policy, trust: &TrustStore, facts: &Facts, now: Timestamp, ev: &mut Evaluation) {
        let mut fail =
            |property: Property, message: String| ev.violations.push(Violation { policy: p.name.clone(), property, message, mode: p.mode });
        if let Some(allowed) = &p.registries
            && !allowed.iter().any(|g| g.matches(&facts.repository))
        {
            fail(Property::Registry, format!("{} is not in an approved registry", facts.repository));
        }
        if p.require_digest && facts.by_tag {
            fail(Property::Digest, format!("{} is not pinned by digest", facts.reference));
        }
        let Some(digest) = facts.digest.clone() else {
            fail(Property::Mirror, format!("{}: the tag has not been mirrored yet (queued for the mirror)", facts.reference));
            return;
        };
        let Some(material) = &facts.material else {
            fail(Property::Mirror, format!("{digest}: no signature material mirrored yet (queued for the mirror)"));
            return;
        };
        let tm = match trust.get(p.trust_root.as_deref().unwrap_or("default")) {
            Ok(t) => t,
            Err(e) => {
                fail(Property::Signature, e.to_string());
                return;
            }
        };
        let Some(d) = crate::core::verify::parse_digest(&digest) else {
            fail(Property::Digest, format!("{digest}: only sha256 digests are supported"));
            return;
        };
        let blob = |id: &Option<String>| id.as_ref().and_then(|i| facts.blobs.get(i));

        // Signatures: every authority that produced a valid signature over this digest.
        let mut signed_by: Vec<(String, Verified)> = vec![];
        let mut refusals: Vec<String> = vec![];
        for a in &p.authorities {
            let mut found = None;
            for item in material.items.iter().filter(|i| matches!(i.status, ItemStatus::Verified { .. } | ItemStatus::NeedsKey)) {
                let res = match item.kind {
                    ItemKind::Signature => match (blob(&item.bundle), blob(&item.payload)) {
                        (Some(b), Some(pl)) => verify_bundle(&tm, b, Subject::Blob(pl), &a.authority, now)
                            .and_then(|v| check_simple_signing(pl, &digest).map(|_| v)),
                        _ => continue,
                    },
                    ItemKind::Bundle if item.predicate_type.is_none() => match blob(&item.bundle) {
                        Some(b) => verify_bundle(&tm, b, Subject::Sha256(d), &a.authority, now),
                        None => continue,
                    },
                    _ => continue,
                };
                match res {
                    Ok(v) => {
                        found = Some(v);
                        break;
                    }
                    Err(e) => refusals.push(format!("{}: {e}", item.source)),
                }
            }
            if let Some(v) = found {
                signed_by.push((a.name.clone(), v));
            }
        }
        let sig_items = material
            .items
            .iter()
            .filter(|i| i.kind == ItemKind::Signature || (i.kind == ItemKind::Bundle && i.predicate_type.is_none()))
            .count();
        if !p.authorities.is_empty() && signed_by.len() < p.threshold {
            let msg = if sig_items == 0 {
                format!("{digest} is not signed")
            } else if let Some(r) = refusals.first() {
                let names: Vec<&str> = p.authorities.iter().map(|a| a.name.as_str()).collect();
                format!("no signature from {} ({} of {} required): {r}", names.join(", "), signed_by.len(), p.threshold)
            } else {
                format!("{} of {} required signatures", signed_by.len(), p.threshold)
            };
            fail(Property::Signature, msg);
        }
        ev.signers.extend(signed_by.iter().map(|(n, v)| (n.clone(), v.signer.clone())));
        let signers: Vec<&Authority> = p.authorities.iter().map(|a| &a.authority).collect();

        // Attestations signed by one of the policy's authorities, by predicate type.
        let attested = |types: &[&str]| -> Vec<(String, Value)> {
            let mut out = vec![];
            for item in material.items.iter().filter(|i| matches!(i.kind, ItemKind::Attestation | ItemKind::Bundle)) {
                if !item.predicate_type.as_deref().is_some_and(|t| types.contains(&t))
                    || !matches!(item.status, ItemStatus::Verified { .. } | ItemStatus::NeedsKey)
                {
                    continue;
                }
                let Some(b) = blob(&item.bundle) else { continue };
                for a in &signers {
                    if let Ok(v) = verify_bundle(&tm, b, Subject::Sha256(d), a, now)
                        && let Some(st) = v.statement
                    {
                        out.push((st.predicate_type.clone(), st.predicate.clone()));
                        break;
                    }
                }
            }
            out
        };

        for req in &p.attestations {
            let found = attested(&[req.predicate_type.as_str()]);
            if found.is_empty() {
                fail(
                    Property::Attestation,
                    format!("attestation {:?} ({}) is missing or not signed by an authority", req.name, req.predicate_type),
                );
                continue;
            }
            if let Some(rego) = &req.rego {
                let ok = found.iter().any(|(pt, pred)| rego_compliant(rego, pt, pred).unwrap_or(false));
                if !ok {
                    fail(
                        Property::Attestation,
                        format!("attestation {:?}: no {} attestation satisfies the policy", req.name, req.predicate_type),
                    );
                }
            }
        }

        let provenance = attested(&["https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"]);
        if let Some(req) = &p.provenance {
            match provenance.first() {
                None => fail(Property::Provenance, "no SLSA provenance attestation signed by an authority".into()),
                Some((pt, pred)) => {
                    if let Err(m) = check_provenance(req, pt, pred) {
                        fail(Property::Provenance, m);
                    }
                }
            }
        }
        if p.sbom_required {
            let sboms = attested(&["https://spdx.dev/Document", "https://cyclonedx.org/bom"]);
            if sboms.is_empty() {
                fail(Property::Sbom, "missing SBOM attestation (SPDX or CycloneDX) signed by an authority".into());
            }
            let mut hits = vec![];
            for (pt, pred) in &sboms {
                for (name, version, purl) in sbom_packages(pt, pred) {
                    if let Some(b) = self.banned.hit(&name, &purl) {
                        let why = b.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                        let s = format!("{name} {version} {purl}{why}");
                        if !hits.contains(&s) {
                            hits.push(s);
                        }
                    }
                }
            }
            if !hits.is_empty() {
                fail(Property::Sbom, format!("SBOM lists banned package(s): {}", hits.join(", ")));
            }
        }
        if let Some(req) = &p.vulnerabilities {
            let scans = attested(&["https://cosign.sigstore.dev/attestation/vuln/v1", "https://in-toto.io/attestation/vulns/v0.2"]);
            if scans.is_empty() {
                fail(Property::Vulnerabilities, "missing vulnerability scan attestation signed by an authority".into());
            } else {
                // the newest scan decides
                let newest = scans.iter().filter_map(|(pt, pr)| scan_result(pt, pr)).max_by_key(|s| s.finished);
                match newest {
                    None => fail(Property::Vulnerabilities, "vulnerability scan attestation has no readable result".into()),
                    Some(s) => {
                        let age = now.duration_since(s.finished);
                        if age > req.max_age {
                            fail(
                                Property::Vulnerabilities,
                                format!(
                                    "newest vulnerability scan is {}h old (maximum {}h)",
                                    age.as_secs() / 3600,
                                    req.max_age.as_secs() / 3600
                                ),
                            );
                        }
                        let bad: Vec<String> = s
                            .findings
                            .iter()
                            .filter(|(_, sev)| *sev >= req.deny_at_or_above)
                            .map(|(id, sev)| format!("{id} ({sev:?})"))
                            .collect();
                        if !bad.is_empty() {
                            fail(Property::Vulnerabilities, format!("vulnerability scan reports {}", bad.join(", ")));
                        }
                    }
                }
            }
        }
        if let Some(approved) = &p.base_images {
            match provenance.iter().find_map(|(_, pred)| base_image(pred)) {
                None => fail(Property::BaseImage, "the provenance names no base image".into()),
                Some(base) => {
                    if !approved.iter().any(|g| g.matches(&base)) {
                        fail(Property::BaseImage, format!("base image {base} is not approved"));
                    }
                }
            }
        }
        if let Some(req) = &p.transparency {
            self.check_transparency(p, req, material, facts, ev);
        }
    }
}

impl PolicySet {
    fn check_transparency(&self, p: &Policy, req: &TransparencyReq, material: &MaterialRecord, facts: &Facts, ev: &mut Evaluation) {
        use crate::core::tlog::{HistoryVerdict, bundle_checkpoints};
        let mut fail = |mode: Mode, message: String| {
            ev.violations.push(Violation { policy: p.name.clone(), property: Property::Transparency, message, mode: mode.min(p.mode) })
        };
        let mut seen = std::collections::BTreeSet::new();
        for item in material.items.iter().filter(|i| matches!(i.status, ItemStatus::Verified { .. } | ItemStatus::NeedsKey)) {
            let Some(b) = item.bundle.as_ref().and_then(|b| facts.blobs.get(b)) else { continue };
            for (log, size, _) in bundle_checkpoints(b) {
                if !seen.insert((log.clone(), size)) {
                    continue;
                }
                let short = &log[..log.len().min(12)];
                match facts.tlog.get(&(log.clone(), size)).map(|f| (&f.verdict, f.witnessed_note.as_deref())) {
                    None | Some((HistoryVerdict::UnknownLog { .. }, _)) => {
                        fail(req.unwitnessed, format!("log {short}… has never been witnessed ({})", item.source))
                    }
                    Some((HistoryVerdict::Inconsistent { detail, .. }, _)) => {
                        fail(Mode::Enforce, format!("split view on log {short}…: {detail} ({})", item.source))
                    }
                    Some((HistoryVerdict::LogUntrusted { detail }, _)) => {
                        fail(Mode::Enforce, format!("log {short}… is untrusted: {detail}"))
                    }
                    Some((HistoryVerdict::Unwitnessed { size, witnessed }, _)) => fail(
                        req.unwitnessed,
                        format!(
                            "checkpoint size {size} of log {short}… is not yet proven consistent with the witnessed history (witnessed up to {}) ({})",
                            witnessed.map(|w| w.to_string()).unwrap_or_else(|| "nothing".into()),
                            item.source
                        ),
                    ),
                    Some((HistoryVerdict::Consistent { witnessed, .. }, note)) => {
                        if let Some(wp) = &req.witness_policy {
                            let (signed, ok) = wp.evaluate(note.unwrap_or(""));
                            if !ok {
                                fail(
                                    Mode::Enforce,
                                    format!(
                                        "witnessed checkpoint {witnessed} of log {short}… does not meet the witness policy (cosigned by {})",
                                        if signed.is_empty() {
                                            "nobody".to_string()
                                        } else {
                                            signed.into_iter().collect::<Vec<_>>().join(", ")
                                        }
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A Rego engine for a policy: Rego v1 syntax, or v0 (what most policy-controller policies are
/// written in) when v1 does not parse.
fn rego_engine(path: &str, rego: &str) -> Result<regorus::Engine, String> {
    let mut e = regorus::Engine::new();
    if e.add_policy(path.into(), rego.into()).is_ok() {
        return Ok(e);
    }
    let mut e = regorus::Engine::new();
    e.set_rego_v0(true);
    e.add_policy(path.into(), rego.into()).map_err(|e| e.to_string())?;
    Ok(e)
}

/// policy-controller's Rego contract: `data.sigstore.isCompliant` over the attestation.
fn rego_compliant(rego: &str, predicate_type: &str, predicate: &Value) -> Result<bool, String> {
    let mut e = rego_engine("attestation.rego", rego)?;
    let input = serde_json::json!({"predicateType": predicate_type, "predicate": predicate});
    e.set_input_json(&input.to_string()).map_err(|e| e.to_string())?;
    e.eval_bool_query("data.sigstore.isCompliant".into(), false).map_err(|e| e.to_string())
}

fn check_provenance(req: &ProvenanceReq, pt: &str, pred: &Value) -> Result<(), String> {
    let (builder, build_type) = if pt.ends_with("/v1") {
        (
            pred["runDetails"]["builder"]["id"].as_str().unwrap_or_default(),
            pred["buildDefinition"]["buildType"].as_str().unwrap_or_default(),
        )
    } else {
        (pred["builder"]["id"].as_str().unwrap_or_default(), pred["buildType"].as_str().unwrap_or_default())
    };
    let level = req.builders.get(builder).copied();
    match level {
        None if req.min_level > 0 => {
            return Err(format!("builder {builder:?} is not an approved builder (SLSA level {} required)", req.min_level));
        }
        Some(l) if l < req.min_level => {
            return Err(format!("builder {builder:?} provides SLSA build level {l}, level {} is required", req.min_level));
        }
        _ => {}
    }
    if !req.build_types.is_empty() && !req.build_types.iter().any(|t| t == build_type) {
        return Err(format!("buildType {build_type:?} is not allowed"));
    }
    let wf = &pred["buildDefinition"]["externalParameters"]["workflow"];
    if !req.source_repositories.is_empty() {
        let repo = wf["repository"].as_str().unwrap_or_default();
        if !req.source_repositories.iter().any(|r| r == repo) {
            return Err(format!("source repository {repo:?} is not allowed"));
        }
    }
    if !req.source_refs.is_empty() {
        let r = wf["ref"].as_str().unwrap_or_default();
        if !req.source_refs.iter().any(|x| x == r) {
            return Err(format!("source ref {r:?} is not allowed"));
        }
    }
    Ok(())
}

/// `registry/repo@sha256:…` of the base image named in a provenance's resolved dependencies.
fn base_image(pred: &Value) -> Option<String> {
    let deps = pred["buildDefinition"]["resolvedDependencies"].as_array().or(pred["materials"].as_array())?;
    let d = deps
        .iter()
        .find(|d| d["annotations"]["role"] == "base-image" || d["name"] == "base-image")
        .or_else(|| deps.iter().find(|d| d["uri"].as_str().is_some_and(|u| u.starts_with("pkg:docker/") || u.starts_with("oci://"))))?;
    let uri = d["uri"].as_str()?;
    let name = uri.strip_prefix("pkg:docker/").or(uri.strip_prefix("oci://")).unwrap_or(uri);
    let name = name.split(['?', '@']).next().unwrap_or(name);
    let digest = d["digest"]["sha256"].as_str()?;
    Some(format!("{name}@sha256:{digest}"))
}

/// (name, version, purl) of every package in an SPDX 2.3 or CycloneDX SBOM.
fn sbom_packages(pt: &str, pred: &Value) -> Vec<(String, String, String)> {
    if pt == "https://spdx.dev/Document" {
        pred["packages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        let purl = p["externalRefs"]
                            .as_array()
                            .and_then(|r| r.iter().find(|x| x["referenceType"] == "purl"))
                            .and_then(|x| x["referenceLocator"].as_str())
                            .unwrap_or_default();
                        (
                            p["name"].as_str().unwrap_or_default().to_string(),
                            p["versionInfo"].as_str().unwrap_or_default().to_string(),
                            purl.to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        let mut out = vec![];
        let mut stack: Vec<&Value> = pred["components"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        while let Some(c) = stack.pop() {
            out.push((
                c["name"].as_str().unwrap_or_default().to_string(),
                c["version"].as_str().unwrap_or_default().to_string(),
                c["purl"].as_str().unwrap_or_default().to_string(),
            ));
            if let Some(sub) = c["components"].as_array() {
                stack.extend(sub.iter());
            }
        }
        out
    }
}

struct Scan {
    finished: Timestamp,
    findings: Vec<(String, Severity)>,
}

/// A vulnerability scan: cosign vuln/v1 (Trivy or Grype result inside) or in-toto vulns v0.2.
fn scan_result(pt: &str, pred: &Value) -> Option<Scan> {
    let finished: Timestamp = pred["metadata"]["scanFinishedOn"].as_str()?.parse().ok()?;
    let mut findings = vec![];
    let result = &pred["scanner"]["result"];
    if pt == "https://in-toto.io/attestation/vulns/v0.2" {
        for r in result.as_array().into_iter().flatten() {
            let sev = r["severity"]
                .as_array()
                .and_then(|s| s.iter().map(|x| Severity::parse(x["score"].as_str().unwrap_or_default())).max())
                .unwrap_or(Severity::Unknown);
            findings.push((r["id"].as_str().unwrap_or_default().to_string(), sev));
        }
    } else {
        // Trivy JSON
        for r in result["Results"].as_array().into_iter().flatten() {
            for v in r["Vulnerabilities"].as_array().into_iter().flatten() {
                findings.push((
                    v["VulnerabilityID"].as_str().unwrap_or_default().to_string(),
                    Severity::parse(v["Severity"].as_str().unwrap_or_default()),
                ));
            }
        }
        // Grype JSON
        for m in result["matches"].as_array().into_iter().flatten() {
            findings.push((
                m["vulnerability"]["id"].as_str().unwrap_or_default().to_string(),
                Severity::parse(m["vulnerability"]["severity"].as_str().unwrap_or_default()),
            ));
        }
    }
    Some(Scan { finished, findings })
}

/// The digest of `facts` material blobs, for cache keys.
pub fn material_key(f: &Facts) -> String {
    f.material.as_ref().map(|m| m.etag()).unwrap_or_default() + &sha(f.digest.as_deref().unwrap_or("").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banned_list_matches_names_and_purl_prefixes() {
        let b = BannedList::parse(
            "banned:\n- purl: pkg:npm/event-stream@3.3.6\n  reason: malicious\n- name: log4j-core\n- purl: pkg:pypi/ctx\n",
        )
        .unwrap();
        assert!(b.hit("event-stream", "pkg:npm/event-stream@3.3.6").is_some());
        assert!(b.hit("event-stream", "pkg:npm/event-stream@3.3.5").is_none());
        assert!(b.hit("LOG4J-CORE", "").is_some());
        assert!(b.hit("ctx", "pkg:pypi/ctx@0.2.6").is_some());
        assert!(b.hit("ctxx", "pkg:pypi/ctxx@1").is_none());
    }

    #[test]
    fn policies_parse_both_kinds_and_refuse_nonsense() {
        let y = r#"
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: cip}
spec:
  images: [{glob: "registry.internal/**"}]
  authorities:
  - keyless:
      identities: [{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "https://github.com/myorg/.*"}]
    ctlog: {url: "https://rekor.internal"}
    attestations:
    - name: spdx
      predicateType: spdxjson
      policy:
        type: rego
        data: |
          package sigstore
          default isCompliant = false
          isCompliant { input.predicate.spdxVersion == "SPDX-2.3" }
---
apiVersion: trustmirror.dev/v1alpha1
kind: ImagePolicy
metadata: {name: tm}
spec:
  images: ["registry.internal/myorg/**"]
  mode: warn
  namespaces: {prod: enforce}
  provenance: {minLevel: 3, builders: {"b": 3}}
  sbom: {required: true}
  vulnerabilities: {denySeverity: high, maxAge: 2d}
"#;
        let ps = PolicySet::parse(y, BannedList::default()).unwrap();
        assert_eq!(ps.policies.len(), 2);
        assert_eq!(ps.policies[0].attestations[0].predicate_type, "https://spdx.dev/Document");
        assert_eq!(ps.policies[1].mode_for("prod"), Mode::Enforce);
        assert_eq!(ps.policies[1].mode_for("dev"), Mode::Warn);
        assert_eq!(ps.matching("registry.internal/myorg/app").len(), 2);
        assert_eq!(ps.matching("docker.io/library/nginx").len(), 0);
        assert!(
            rego_compliant(ps.policies[0].attestations[0].rego.as_ref().unwrap(), "x", &serde_json::json!({"spdxVersion": "SPDX-2.3"}))
                .unwrap()
        );
        assert!(
            !rego_compliant(ps.policies[0].attestations[0].rego.as_ref().unwrap(), "x", &serde_json::json!({"spdxVersion": "SPDX-2.2"}))
                .unwrap()
        );
        for bad in [
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {}\n",
            "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {images: []}\n",
            "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {images: [a], mode: loud}\n",
            "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {images: [a], authorities: [{keyless: {identities: [{issuer: i}]}}]}\n",
        ] {
            assert!(PolicySet::parse(bad, BannedList::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn provenance_base_image_sbom_and_scan_readers() {
        let b = crate::testbed::predicates::Build {
            builder_id: "b".into(),
            build_type: "t".into(),
            repository: "myorg/app".into(),
            git_ref: "refs/heads/main".into(),
            commit: "c".into(),
            workflow_path: "w".into(),
            base_image: Some(("reg/base/distroless".into(), "sha256:abc".into())),
            started: Timestamp::UNIX_EPOCH,
            finished: Timestamp::UNIX_EPOCH,
        };
        let p = crate::testbed::predicates::slsa_provenance_v1(&b);
        assert_eq!(base_image(&p).as_deref(), Some("reg/base/distroless@sha256:abc"));
        let req = ProvenanceReq { min_level: 3, builders: [("b".to_string(), 1u8)].into(), ..Default::default() };
        assert!(check_provenance(&req, "https://slsa.dev/provenance/v1", &p).unwrap_err().contains("level 1"));
        let pk = vec![crate::testbed::predicates::Package::new("a", "1", "pkg:npm/a@1")];
        let spdx = crate::testbed::predicates::spdx_2_3("x", &pk, Timestamp::UNIX_EPOCH);
        assert_eq!(sbom_packages("https://spdx.dev/Document", &spdx), vec![("a".into(), "1".into(), "pkg:npm/a@1".into())]);
        let cdx = crate::testbed::predicates::cyclonedx_1_5("x", &pk, Timestamp::UNIX_EPOCH);
        assert_eq!(sbom_packages("https://cyclonedx.org/bom", &cdx).len(), 1);
        let f = vec![crate::testbed::predicates::Finding {
            id: "CVE-1".into(),
            severity: "CRITICAL".into(),
            package: "p".into(),
            version: "1".into(),
        }];
        let s = scan_result(
            "https://cosign.sigstore.dev/attestation/vuln/v1",
            &crate::testbed::predicates::cosign_vuln_v1(&f, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
        )
        .unwrap();
        assert_eq!(s.findings, vec![("CVE-1".to_string(), Severity::Critical)]);
        let s = scan_result(
            "https://in-toto.io/attestation/vulns/v0.2",
            &crate::testbed::predicates::intoto_vulns_v02(&f, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
        )
        .unwrap();
        assert_eq!(s.findings[0].1, Severity::Critical);
    }
}
