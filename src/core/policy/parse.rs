//! Reading policy documents (YAML, several per file): Sigstore policy-controller
//! `ClusterImagePolicy`, trustmirror `ImagePolicy` and `PolicyDefaults`, into the [`model`].
//!
//! Strict: every document is deserialized into a typed spec with unknown fields refused, so a
//! misspelled field (`requireDigset`, `sbom: {requried: true}`) is an error naming the file, the
//! document and the field — never a policy that silently requires less. Fields of
//! policy-controller's ClusterImagePolicy that cannot be decided offline from the store are
//! refused with the reason; fields that change nothing here are accepted with a warning
//! ([`PolicySet::warnings`]).
//!
//! [`model`]: super::model

use std::collections::{BTreeMap, BTreeSet};

use jiff::SignedDuration;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::attestation::{Check, Signers};
use super::model::*;
use super::sources::Sources;
use crate::core::cosign::predicate_type_for;
use crate::core::reference::normalize_repository;
use crate::core::verify::{Authority, IdentityPolicy, Matcher};

/// Largest policy text accepted (all files together).
pub const MAX_POLICY_TEXT: usize = 4 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: Meta,
    #[serde(default)]
    spec: serde_yaml::Value,
    /// `kubectl get -o yaml` output carries a status; it decides nothing.
    #[serde(default)]
    #[allow(dead_code)]
    status: serde_yaml::Value,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// `images:` entries: a glob string, or `{glob: …}` as policy-controller writes them.
#[derive(Deserialize)]
#[serde(untagged)]
enum ImageGlob {
    Bare(String),
    Glob { glob: String },
}

impl ImageGlob {
    fn text(&self) -> &str {
        match self {
            ImageGlob::Bare(s) | ImageGlob::Glob { glob: s } => s,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Identity {
    issuer: Option<String>,
    issuer_reg_exp: Option<String>,
    subject: Option<String>,
    subject_reg_exp: Option<String>,
    github_repository: Option<String>,
    github_ref: Option<String>,
    github_workflow: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeySpec {
    data: Option<String>,
    secret_ref: Option<serde_yaml::Value>,
    kms: Option<String>,
    hash_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeylessSpec {
    #[serde(default)]
    identities: Vec<Identity>,
    url: Option<String>,
    ca_cert: Option<serde_yaml::Value>,
    trust_root_ref: Option<String>,
    #[serde(rename = "insecureIgnoreSCT")]
    insecure_ignore_sct: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StaticSpec {
    action: String,
}

/// Accepted for compatibility; the trusted root and the mirrored material decide these offline.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct TrustRefSpec {
    url: Option<String>,
    trust_root_ref: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceSpec {
    oci: Option<String>,
    signature_pull_secrets: Option<serde_yaml::Value>,
    tag_prefix: Option<String>,
}

/// An attestation (or policy-level) policy. `include*`/`fetchConfigFile` shape policy-level
/// inputs in policy-controller; they are accepted and change nothing for attestation policies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct PolicyBody {
    #[serde(rename = "type")]
    kind: String,
    data: Option<String>,
    config_map_ref: Option<serde_yaml::Value>,
    url: Option<String>,
    include_spec: Option<bool>,
    include_object_meta: Option<bool>,
    include_type_meta: Option<bool>,
    fetch_config_file: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AttestationSpec {
    name: Option<String>,
    predicate_type: String,
    policy: Option<PolicyBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AuthoritySpec {
    name: Option<String>,
    key: Option<KeySpec>,
    keyless: Option<KeylessSpec>,
    #[serde(rename = "static")]
    static_: Option<StaticSpec>,
    ctlog: Option<TrustRefSpec>,
    rfc3161timestamp: Option<TrustRefSpec>,
    #[serde(default)]
    source: Vec<SourceSpec>,
    #[serde(default)]
    attestations: Vec<AttestationSpec>,
    signature_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClusterImagePolicySpec {
    images: Vec<ImageGlob>,
    #[serde(default)]
    authorities: Vec<AuthoritySpec>,
    mode: Option<Mode>,
    policy: Option<PolicyBody>,
    #[serde(rename = "match")]
    match_: Option<serde_yaml::Value>,
    /// trustmirror's extension: M-of-N over the authorities (policy-controller has none).
    threshold: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProvenanceSpec {
    #[serde(default)]
    min_level: u8,
    #[serde(default)]
    builders: BTreeMap<String, u8>,
    #[serde(default)]
    build_types: Vec<String>,
    #[serde(default)]
    source_repositories: Vec<String>,
    #[serde(default)]
    source_refs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SbomSpec {
    required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VulnSpec {
    deny_severity: Option<String>,
    max_age: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GlobList {
    #[serde(default)]
    approved: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RegistryList {
    #[serde(default)]
    allowed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TransparencySpec {
    witnessed: Option<String>,
    witness_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImagePolicySpec {
    images: Vec<ImageGlob>,
    mode: Option<Mode>,
    #[serde(default)]
    namespaces: BTreeMap<String, Mode>,
    trust_root_ref: Option<String>,
    #[serde(default)]
    authorities: Vec<AuthoritySpec>,
    threshold: Option<usize>,
    #[serde(default)]
    attestations: Vec<AttestationSpec>,
    provenance: Option<ProvenanceSpec>,
    sbom: Option<SbomSpec>,
    vulnerabilities: Option<VulnSpec>,
    base_images: Option<GlobList>,
    registries: Option<RegistryList>,
    require_digest: Option<bool>,
    transparency: Option<TransparencySpec>,
    vsa: Option<VsaSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VsaSpec {
    verifiers: Vec<VsaVerifierSpec>,
    max_age: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VsaVerifierSpec {
    name: String,
    key: KeyData,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyData {
    data: String,
}

fn vsa_req(v: VsaSpec) -> Result<VsaReq, String> {
    if v.verifiers.is_empty() {
        return Err("spec.vsa.verifiers must name at least one verifier key".into());
    }
    let mut verifiers = vec![];
    for (i, x) in v.verifiers.iter().enumerate() {
        let spki = match Authority::key_pem(&x.name, &x.key.data).map_err(|e| format!("spec.vsa.verifiers[{i}].key.data: {e}"))? {
            Authority::Key { spki_der, .. } => spki_der,
            Authority::Keyless(_) => unreachable!("key_pem makes a key authority"),
        };
        verifiers.push((x.name.clone(), spki));
    }
    let max_age = crate::core::clock::parse_duration(&v.max_age)
        .map_err(|e| format!("spec.vsa.maxAge: {e}"))
        .map(|d| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))?;
    Ok(VsaReq { verifiers, max_age })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DefaultsSpec {
    no_match: Option<String>,
}

/// Deserialize `v` as `T`, naming the field path on error (`sbom.requried: unknown field`).
fn typed<T: serde::de::DeserializeOwned>(v: serde_yaml::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() { inner } else { format!("spec.{path}: {inner}") }
    })
}

fn glob(s: &str, what: &str) -> Result<glob::Pattern, String> {
    glob::Pattern::new(s).map_err(|e| format!("{what}: {s:?}: {e}"))
}

/// Image globs match normalized repositories, so the globs' host parts are normalized too.
fn image_globs(gs: &[ImageGlob], what: &str) -> Result<Vec<glob::Pattern>, String> {
    gs.iter().map(|g| glob(&normalize_repository(g.text()), what)).collect()
}

fn matcher(exact: &Option<String>, re: &Option<String>, what: &str) -> Result<Option<Matcher>, String> {
    match (exact, re) {
        (Some(_), Some(_)) => Err(format!("{what}: give the exact value or the regular expression, not both")),
        (Some(s), None) => Ok(Some(Matcher::Exact(s.clone()))),
        (None, Some(r)) => Matcher::regex(r).map(Some).map_err(|e| format!("{what}RegExp: {e}")),
        (None, None) => Ok(None),
    }
}

/// What a document compiles into, and what it said that changes nothing here.
struct Compiled {
    policy: Policy,
    warnings: Vec<String>,
}

fn attestation(
    a: &AttestationSpec,
    authority: Option<usize>,
    at: &str,
    warnings: &mut Vec<String>,
    sources: &Sources,
) -> Result<AttestationReq, String> {
    let name = a.name.clone().unwrap_or_else(|| a.predicate_type.clone());
    let check = match &a.policy {
        None => None,
        Some(p) => {
            let text = |kind: &str| sources.policy_text(p.data.as_deref(), p.url.as_deref(), p.config_map_ref.is_some(), kind, at);
            match p.kind.as_str() {
                "rego" => {
                    let data = text("rego")?;
                    Some(Check::Rego(super::rego::compile(&format!("{name}.rego"), &data).map_err(|e| format!("{at}.policy: rego: {e}"))?))
                }
                "cue" => {
                    let data = text("cue")?;
                    let (cue, unused) = super::cue::compile_tolerant(&data).map_err(|e| format!("{at}.policy: cue: {e}"))?;
                    for u in unused {
                        warnings.push(format!(
                            "{at}.policy: cue: {u}: CUE v0.13 and later (policy-controller v0.15 and later) refuse this policy at admission, older versions accept it, and so does trustmirror; remove the import"
                        ));
                    }
                    Some(Check::Cue(cue))
                }
                t => return Err(format!("{at}.policy.type: attestation policy type {t:?} is not supported (rego and cue are)")),
            }
        }
    };
    let signers = authority.map(Signers::Authority).unwrap_or_default();
    Ok(AttestationReq { name, predicate_type: predicate_type_for(&a.predicate_type), check, signers, every: false })
}

fn authorities(
    specs: &[AuthoritySpec],
    warnings: &mut Vec<String>,
    sources: &Sources,
) -> Result<(Vec<NamedAuthority>, Vec<AttestationReq>), String> {
    let mut out = vec![];
    let mut atts = vec![];
    let mut names = BTreeSet::new();
    for (i, a) in specs.iter().enumerate() {
        let name = a.name.clone().unwrap_or_else(|| format!("authority-{i}"));
        let at = format!("spec.authorities[{i}] ({name})");
        if !names.insert(name.clone()) {
            return Err(format!("{at}: two authorities named {name:?}"));
        }
        if let Some(src) = a.source.iter().find(|s| s.oci.is_some()) {
            return Err(format!(
                "{at}.source.oci {:?}: signatures kept in another repository are not mirrored; mirror that repository and drop source",
                src.oci.as_deref().unwrap_or_default()
            ));
        }
        if a.source.iter().any(|s| s.signature_pull_secrets.is_some() || s.tag_prefix.is_some()) {
            warnings.push(format!("{at}.source: pull secrets and tag prefixes are the mirror's business; ignored here"));
        }
        if a.ctlog.as_ref().is_some_and(|c| c.url.is_some()) || a.rfc3161timestamp.is_some() {
            warnings.push(format!("{at}: ctlog/rfc3161timestamp are taken from the trusted root and the mirrored material"));
        }
        if let Some(f) = &a.signature_format {
            warnings.push(format!("{at}.signatureFormat {f:?}: every format the mirror stores is considered"));
        }
        let kinds = [a.key.is_some(), a.keyless.is_some(), a.static_.is_some()].iter().filter(|x| **x).count();
        if kinds != 1 {
            return Err(format!("{at}: an authority needs exactly one of key, keyless or static"));
        }
        let alternatives = if let Some(k) = &a.key {
            if k.kms.is_some() || k.secret_ref.is_some() {
                return Err(format!(
                    "{at}.key: KMS and secret references are resolved at admission time; give the public key as key.data (PEM)"
                ));
            }
            if let Some(h) = &k.hash_algorithm
                && h != "sha256"
            {
                return Err(format!("{at}.key.hashAlgorithm {h:?}: only sha256"));
            }
            let pem = k.data.as_deref().ok_or_else(|| format!("{at}.key: key.data (PEM) is required"))?;
            vec![Authority::key_pem(&name, pem).map_err(|e| format!("{at}.key.data: {e}"))?]
        } else if let Some(k) = &a.keyless {
            if k.identities.is_empty() {
                return Err(format!("{at}.keyless: identities must list at least one identity"));
            }
            if k.ca_cert.is_some() {
                return Err(format!("{at}.keyless.caCert: give the CA as a trusted root (trustRootRef)"));
            }
            if k.insecure_ignore_sct == Some(true) {
                return Err(format!("{at}.keyless.insecureIgnoreSCT: trustmirror does not weaken certificate checks"));
            }
            if k.url.is_some() || k.trust_root_ref.is_some() {
                warnings.push(format!("{at}.keyless: url/trustRootRef: the policy's trust root (spec.trustRootRef) decides"));
            }
            k.identities
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    let p = IdentityPolicy {
                        issuer: matcher(&id.issuer, &id.issuer_reg_exp, &format!("{at}.keyless.identities[{j}].issuer"))?,
                        san: matcher(&id.subject, &id.subject_reg_exp, &format!("{at}.keyless.identities[{j}].subject"))?,
                        github_repository: id.github_repository.clone(),
                        github_ref: id.github_ref.clone().map(Matcher::Exact),
                        github_workflow: id.github_workflow.clone().map(Matcher::Exact),
                    };
                    if p.issuer.is_none() || p.san.is_none() {
                        return Err(format!("{at}.keyless.identities[{j}]: needs issuer(RegExp) and subject(RegExp)"));
                    }
                    Ok(Authority::Keyless(p))
                })
                .collect::<Result<Vec<_>, String>>()?
        } else {
            vec![]
        };
        let static_pass = match a.static_.as_ref().map(|s| s.action.as_str()) {
            None => None,
            Some("pass") => Some(true),
            Some("fail") => Some(false),
            Some(o) => return Err(format!("{at}.static.action {o:?}: pass or fail")),
        };
        for (j, att) in a.attestations.iter().enumerate() {
            atts.push(attestation(att, Some(out.len()), &format!("{at}.attestations[{j}]"), warnings, sources)?);
        }
        out.push(NamedAuthority { name, alternatives, static_pass });
    }
    Ok((out, atts))
}

/// `threshold` (default 1): signatures from that many distinct authorities; more than there are
/// authorities could never be met, so it is an error rather than a policy that denies everything.
fn threshold(t: Option<usize>, authorities: usize) -> Result<usize, String> {
    let t = t.unwrap_or(1);
    if t == 0 {
        return Err("spec.threshold: at least 1".into());
    }
    if t > authorities.max(1) {
        return Err(format!(
            "spec.threshold: {t} signatures from distinct authorities can never be met with {authorities} authorit{}",
            if authorities == 1 { "y" } else { "ies" }
        ));
    }
    Ok(t)
}

fn cluster_image_policy(name: &str, spec: ClusterImagePolicySpec, sources: &Sources) -> Result<Compiled, String> {
    let mut warnings = vec![];
    if spec.policy.is_some() {
        return Err("spec.policy: policy-level CUE/Rego over the authorities' results is not supported; use attestation policies".into());
    }
    if spec.match_.is_some() {
        return Err("spec.match: resource selectors are not supported; scope the webhook with namespace labels instead".into());
    }
    let images = image_globs(&spec.images, "spec.images")?;
    if images.is_empty() {
        return Err("spec.images must list at least one glob".into());
    }
    let (authorities, attestations) = authorities(&spec.authorities, &mut warnings, sources)?;
    let threshold = threshold(spec.threshold, authorities.len())?;
    if spec.threshold.is_some() {
        warnings.push("spec.threshold is trustmirror's extension: policy-controller would refuse this document".into());
    }
    Ok(Compiled {
        policy: Policy {
            mode: spec.mode.unwrap_or(Mode::Enforce),
            ..Policy::new(name.into(), "ClusterImagePolicy", images, authorities, threshold, attestations)
        },
        warnings,
    })
}

fn image_policy(name: &str, spec: ImagePolicySpec, sources: &Sources) -> Result<Compiled, String> {
    let mut warnings = vec![];
    let images = image_globs(&spec.images, "spec.images")?;
    if images.is_empty() {
        return Err("spec.images must list at least one glob".into());
    }
    let (authorities, mut attestations) = authorities(&spec.authorities, &mut warnings, sources)?;
    for (j, a) in spec.attestations.iter().enumerate() {
        attestations.push(attestation(a, None, &format!("spec.attestations[{j}]"), &mut warnings, sources)?);
    }
    let threshold = threshold(spec.threshold, authorities.len())?;
    let vulnerabilities = match spec.vulnerabilities {
        None => None,
        Some(v) => Some(VulnReq {
            deny_at_or_above: match v.deny_severity.as_deref() {
                None => Severity::Critical,
                Some(s) => match Severity::parse(s) {
                    Severity::Unknown => {
                        return Err(format!("spec.vulnerabilities.denySeverity {s:?}: critical, high, medium, low or negligible"));
                    }
                    sev => sev,
                },
            },
            max_age: v
                .max_age
                .as_deref()
                .map(|s| crate::core::clock::parse_duration(s).map(|d| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)))
                .transpose()
                .map_err(|e| format!("spec.vulnerabilities.maxAge: {e}"))?
                .unwrap_or(SignedDuration::from_hours(24 * 7)),
        }),
    };
    let transparency = match spec.transparency {
        None => None,
        Some(t) => Some(TransparencyReq {
            unwitnessed: match t.witnessed.as_deref().unwrap_or("required") {
                "required" => Mode::Enforce,
                "warn" => Mode::Warn,
                "audit" => Mode::Audit,
                o => return Err(format!("spec.transparency.witnessed {o:?}: required, warn or audit")),
            },
            witness_policy: t
                .witness_policy
                .as_deref()
                .map(crate::core::tlog::WitnessPolicy::parse)
                .transpose()
                .map_err(|e| format!("spec.transparency.witnessPolicy: {e}"))?,
        }),
    };
    if let Some(p) = &spec.provenance
        && p.min_level > 4
    {
        return Err(format!("spec.provenance.minLevel {}: SLSA build levels are 0 to 3", p.min_level));
    }
    Ok(Compiled {
        policy: Policy {
            mode: spec.mode.unwrap_or(Mode::Enforce),
            namespace_modes: spec.namespaces,
            trust_root: spec.trust_root_ref,
            provenance: spec.provenance.map(|p| ProvenanceReq {
                min_level: p.min_level,
                builders: p.builders,
                build_types: p.build_types,
                source_repositories: p.source_repositories,
                source_refs: p.source_refs,
            }),
            sbom_required: spec.sbom.is_some_and(|s| s.required),
            vulnerabilities,
            base_images: spec.base_images.map(|b| b.approved.iter().map(|g| glob(g, "spec.baseImages.approved")).collect()).transpose()?,
            registries: spec
                .registries
                .map(|r| r.allowed.iter().map(|g| glob(&normalize_repository(g), "spec.registries.allowed")).collect())
                .transpose()?,
            require_digest: spec.require_digest.unwrap_or(false),
            transparency,
            vsa: spec.vsa.map(vsa_req).transpose()?,
            ..Policy::new(name.into(), "ImagePolicy", images, authorities, threshold, attestations)
        },
        warnings,
    })
}

impl PolicySet {
    /// Parse policy documents (YAML, `---`-separated) and a banned list; errors name the
    /// document and field.
    pub fn parse(policy_yaml: &str, banned: BannedList) -> Result<Self, String> {
        Self::parse_files(&[("policy", policy_yaml)], banned)
    }

    /// Parse policy files (name, YAML); errors name the file, the document and the field.
    pub fn parse_files(files: &[(&str, &str)], banned: BannedList) -> Result<Self, String> {
        Self::parse_files_with(files, banned, &Sources::default())
    }

    /// As [`PolicySet::parse_files`], reading attestation policies kept in files (`url: file:…`)
    /// through `sources`; what it reads is part of the version.
    pub fn parse_files_with(files: &[(&str, &str)], banned: BannedList, sources: &Sources) -> Result<Self, String> {
        let total: usize = files.iter().map(|(_, t)| t.len()).sum();
        if total > MAX_POLICY_TEXT {
            return Err(format!("policies: {total} bytes in all, more than the {MAX_POLICY_TEXT}-byte limit"));
        }
        let mut policies: Vec<Policy> = vec![];
        let mut warnings = vec![];
        let mut no_match: Option<Option<Mode>> = None;
        let mut gatekeeper = super::gatekeeper::Gatekeeper::default();
        let mut h = Sha256::new();
        for (file, text) in files {
            h.update(file.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
            for (n, d) in serde_yaml::Deserializer::from_str(text).enumerate() {
                let at = |m: String| format!("{file}: document {}: {m}", n + 1);
                let v = serde_yaml::Value::deserialize(d).map_err(|e| at(format!("not YAML: {e}")))?;
                if v.is_null() {
                    continue;
                }
                let doc: Doc = typed(v).map_err(|e| at(e.replace("spec.", "")))?;
                let name = doc.metadata.name.clone();
                let at = |m: String| format!("{file}: document {} ({} {name}): {m}", n + 1, doc.kind);
                let compiled = match (doc.kind.as_str(), doc.api_version.as_str()) {
                    ("ClusterImagePolicy", v) if v.starts_with("policy.sigstore.dev/") => {
                        cluster_image_policy(&name, typed(doc.spec).map_err(at)?, sources).map_err(at)?
                    }
                    ("ImagePolicy", v) if v.starts_with("trustmirror.dev/") => {
                        image_policy(&name, typed(doc.spec).map_err(at)?, sources).map_err(at)?
                    }
                    ("PolicyDefaults", v) if v.starts_with("trustmirror.dev/") => {
                        let d: DefaultsSpec = typed(doc.spec).map_err(at)?;
                        if no_match.is_some() {
                            return Err(at("a second PolicyDefaults document".into()));
                        }
                        no_match = Some(match d.no_match.as_deref() {
                            None | Some("enforce") => Some(Mode::Enforce),
                            Some("allow") => None,
                            Some("warn") => Some(Mode::Warn),
                            Some("audit") => Some(Mode::Audit),
                            Some(o) => return Err(at(format!("spec.noMatch {o:?}: allow, audit, warn or enforce"))),
                        });
                        continue;
                    }
                    ("ClusterPolicy" | "Policy", "kyverno.io/v1" | "kyverno.io/v2beta1") => {
                        let ns = (doc.kind == "Policy").then(|| doc.metadata.namespace.clone().unwrap_or_else(|| "default".into()));
                        let c =
                            super::kyverno::compile(&name, ns.as_deref(), serde_json::to_value(&doc.spec).map_err(|e| at(e.to_string()))?)
                                .map_err(at)?;
                        warnings.extend(c.warnings.into_iter().map(at));
                        for p in c.policies {
                            if policies.iter().any(|x| x.name == p.name) {
                                return Err(at(format!("a second policy named {:?}", p.name)));
                            }
                            policies.push(p);
                        }
                        continue;
                    }
                    ("ConstraintTemplate", v) if v.starts_with("templates.gatekeeper.sh/") => {
                        gatekeeper.add_template(&name, serde_json::to_value(&doc.spec).map_err(|e| at(e.to_string()))?).map_err(at)?;
                        continue;
                    }
                    (k, v) if v.starts_with("constraints.gatekeeper.sh/") => {
                        gatekeeper.add_constraint(k, &name, serde_json::to_value(&doc.spec).map_err(|e| at(e.to_string()))?).map_err(at)?;
                        continue;
                    }
                    (k, v) => {
                        return Err(at(format!(
                            "unsupported kind {v}/{k} (ClusterImagePolicy policy.sigstore.dev/v1beta1, ImagePolicy or PolicyDefaults trustmirror.dev/v1alpha1, Kyverno ClusterPolicy/Policy kyverno.io/v1, Gatekeeper ConstraintTemplate and constraints)"
                        )));
                    }
                };
                if policies.iter().any(|p| p.name == name) {
                    return Err(at(format!("a second policy named {name:?}")));
                }
                warnings.extend(compiled.warnings.into_iter().map(at));
                policies.push(compiled.policy);
            }
        }
        gatekeeper.check()?;
        if no_match.is_none() && policies.iter().any(|p| p.kind == "KyvernoPolicy") {
            warnings.push(
                "images no policy covers are denied (Kyverno admits them); a PolicyDefaults document with spec.noMatch: allow restores Kyverno's behaviour".into(),
            );
        }
        for (path, text) in sources.read_so_far.borrow().iter() {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        h.update(serde_json::to_vec(&banned).expect("json"));
        Ok(Self {
            gatekeeper,
            policies,
            banned,
            // images no policy covers are denied unless PolicyDefaults says otherwise
            no_match: no_match.unwrap_or(Some(Mode::Enforce)),
            warnings,
            version: hex::encode(&h.finalize()[..16]),
        })
    }
}
