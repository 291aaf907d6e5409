//! Kyverno `ClusterPolicy` / `Policy` (kyverno.io/v1) `verifyImages` rules, compiled into the
//! policy model and decided as Kyverno decides them (tests/fixtures/policy-formats/kyverno/
//! SEMANTICS.md has the rules with their sources):
//!
//! * each `verifyImages[]` entry of a rule is a policy named `<policy>/<rule>` covering its
//!   `imageReferences` (Kyverno wildcards), in the namespaces its `match`/`exclude` select (a
//!   namespaced `Policy`: its own namespace), with the mode of `failureAction` /
//!   `validationFailureAction` (default Audit) and `validationFailureActionOverrides`;
//! * an attestor set is `count` (default: all) of its entries; several sets must all pass;
//!   keyless entries match `subject`/`issuer` as wildcards and `subjectRegExp`/`issuerRegExp`
//!   as regular expressions, key entries by their PEM public keys;
//! * `attestations[]`: a verified statement of `type` (or `predicateType`), signed by the
//!   attestation's own attestors (by anyone the trust root certifies when it has none), every
//!   one satisfying `conditions` ([`super::kyverno_eval`]).
//!
//! Whatever Kyverno would look up at admission time (registry credentials, remote context,
//! signatures in another repository, custom roots, KMS keys) cannot be decided offline and is a
//! load-time error; what changes nothing here, or is stricter here, is a warning.

use std::collections::BTreeMap;

use serde_json::Value;

mod spec;
use spec::*;

use super::attestation::{Check, Signers};
use super::kyverno_eval::Conditions;
use super::model::*;
use super::selector::Selector;
use crate::core::reference::normalize_repository;
use crate::core::verify::{Authority, IdentityPolicy, Matcher};

/// What a Kyverno document compiles into.
pub struct Compiled {
    pub policies: Vec<Policy>,
    pub warnings: Vec<String>,
}

fn mode(action: &str, at: &str) -> Result<Mode, String> {
    match action {
        "Enforce" | "enforce" => Ok(Mode::Enforce),
        "Audit" | "audit" => Ok(Mode::Audit),
        o => Err(format!("{at}: {o:?} is not a failure action (Enforce or Audit)")),
    }
}

/// Kyverno's image reference wildcard as a repository glob (`*` and `?` mean the same; `[` is
/// literal in Kyverno). Kyverno matches `registry/path:tag` (or `registry/path@digest`); a
/// policy here covers repositories, so a tag part widens the pattern to its repository — a
/// stricter reading (more images verified), said in a warning.
fn image_pattern(p: &str, at: &str, warnings: &mut Vec<String>) -> Result<glob::Pattern, String> {
    if p.is_empty() {
        return Err(format!("{at}: an empty image reference matches nothing"));
    }
    if p.contains('@') {
        return Err(format!("{at}: {p:?} names a digest: write the repository and let the policy verify what it holds"));
    }
    let last = p.rsplit('/').next().unwrap_or(p);
    let repo = match last.split_once(':') {
        Some((_, tag)) => {
            let r = &p[..p.len() - tag.len() - 1];
            warnings.push(format!(
                "{at}: {p:?} is read as the repository {r:?}: trustmirror verifies every image of it, including those referenced by digest, which Kyverno would skip{}",
                if tag == "*" { "" } else { ", and tags other than the pattern's" }
            ));
            r
        }
        None => p,
    };
    // the registry part is normalized like image repositories, unless it is itself a wildcard
    let first = repo.split('/').next().unwrap_or_default();
    let text = if first.contains(['*', '?']) { repo.to_string() } else { normalize_repository(repo) };
    glob::Pattern::new(&glob::Pattern::escape(&text).replace("[*]", "*").replace("[?]", "?")).map_err(|e| format!("{at}: {p:?}: {e}"))
}

fn keyless(k: &Keyless, at: &str, warnings: &mut Vec<String>) -> Result<Authority, String> {
    if k.roots.is_some() {
        return Err(format!("{at}.roots: custom Fulcio roots are not a trust root here; put them in a trustmirror trust root instead"));
    }
    if k.additional_extensions.is_some() {
        return Err(format!("{at}.additionalExtensions is not supported (use subject/issuer)"));
    }
    let pick = |exact: &Option<String>, re: &Option<String>, what: &str| -> Result<Option<Matcher>, String> {
        match (exact, re) {
            (Some(_), Some(_)) => Err(format!("{at}: give {what} or {what}RegExp, not both")),
            (Some(w), None) => Ok(Some(Matcher::wildcard(w))),
            // Kyverno: Go regexp.MatchString, unanchored
            (None, Some(r)) => regex::Regex::new(r).map(|re| Some(Matcher::Regex(re))).map_err(|e| format!("{at}.{what}RegExp: {e}")),
            (None, None) => Ok(None),
        }
    };
    let san = pick(&k.subject, &k.subject_reg_exp, "subject")?;
    let issuer = pick(&k.issuer, &k.issuer_reg_exp, "issuer")?;
    if k.rekor.is_none() {
        warnings.push(format!(
            "{at}: Kyverno refuses a keyless attestor with neither rekor nor roots (\"Either Rekor URL or roots are required\"); trustmirror accepts it and verifies against its trust root's logs"
        ));
    }
    if let Some(s) = &k.subject
        && s.contains("/github/workflows/")
        && !s.contains(".github/workflows/")
    {
        warnings.push(format!(
            "{at}.subject: {s:?} never matches a GitHub Actions certificate, whose subjects contain /.github/workflows/: every image is denied (as Kyverno denies it)"
        ));
    }
    if san.is_none() && issuer.is_none() {
        warnings.push(format!("{at}: no subject and no issuer: any certificate the trust root issues is accepted"));
    }
    Ok(Authority::Keyless(IdentityPolicy { san, issuer, ..Default::default() }))
}

/// One attestor set: its entries (keys expanded, one entry per PEM block) and the count.
fn attestor_set(s: &AttestorSet, at: &str, warnings: &mut Vec<String>) -> Result<(Vec<Authority>, usize), String> {
    let mut entries = vec![];
    for (i, e) in s.entries.iter().enumerate() {
        let at = format!("{at}.entries[{i}]");
        if e.attestor.is_some() {
            return Err(format!("{at}.attestor: nested attestor sets are not supported"));
        }
        if e.certificates.is_some() {
            return Err(format!("{at}.certificates: certificate attestors are not supported (keys and keyless are)"));
        }
        if e.repository.is_some() {
            return Err(format!(
                "{at}.repository: signatures in another repository are looked up at admission time; mirror them with the image"
            ));
        }
        if e.annotations.is_some() {
            return Err(format!("{at}.annotations: signature annotations are not supported"));
        }
        match (&e.keyless, &e.keys) {
            (Some(k), None) => entries.push(keyless(k, &format!("{at}.keyless"), warnings)?),
            (None, Some(k)) => {
                if k.kms.is_some() || k.secret.is_some() {
                    return Err(format!("{at}.keys: KMS and Secret keys are fetched at admission time; give publicKeys (PEM)"));
                }
                let pem = k.public_keys.as_deref().ok_or_else(|| format!("{at}.keys: publicKeys is required"))?;
                let blocks: Vec<&str> =
                    pem.split_inclusive("-----END PUBLIC KEY-----").map(str::trim).filter(|b| b.contains("BEGIN")).collect();
                if blocks.is_empty() {
                    return Err(format!("{at}.keys.publicKeys: no PEM public key"));
                }
                for (j, b) in blocks.iter().enumerate() {
                    entries.push(Authority::key_pem(&format!("{at}.keys[{j}]"), b).map_err(|e| format!("{at}.keys.publicKeys: {e}"))?);
                }
            }
            _ => return Err(format!("{at}: keys, certificates, keyless, or a nested attestor is required (exactly one)")),
        }
    }
    if entries.is_empty() {
        return Err(format!("{at}: An entry is required"));
    }
    let count = match s.count {
        None | Some(0) => entries.len(),
        Some(c) if c > entries.len() => return Err(format!("{at}: Count cannot exceed length of entries")),
        Some(c) => c,
    };
    Ok((entries, count))
}

fn namespace_filter(d: &Description, at: &str, warnings: &mut Vec<String>) -> Result<NamespaceFilter, String> {
    if d.selector.is_some() || d.names.is_some() || d.name.is_some() || d.annotations.is_some() {
        return Err(format!(
            "{at}: selector/names/annotations select objects; trustmirror decides images per namespace (use kinds and namespaces)"
        ));
    }
    const POD_KINDS: [&str; 8] = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController"];
    let kind_of = |k: &str| k.rsplit('/').next().unwrap_or(k).to_string();
    if !d.kinds.is_empty() && !d.kinds.iter().any(|k| kind_of(k) == "Pod" || k == "*") {
        warnings.push(format!(
            "{at}.kinds {:?}: trustmirror verifies the images of Pods and of every pod controller (as Kyverno's autogen does for Pod rules)",
            d.kinds
        ));
    }
    if let Some(k) = d.kinds.iter().find(|k| !POD_KINDS.contains(&kind_of(k).as_str()) && *k != "*") {
        warnings.push(format!("{at}.kinds: {k} has no pod spec: nothing to verify for it"));
    }
    if d.operations.is_some() {
        warnings.push(format!("{at}.operations: images are verified on every create and update"));
    }
    Ok(NamespaceFilter {
        names: d
            .namespaces
            .iter()
            .map(|n| glob::Pattern::new(n).map_err(|e| format!("{at}.namespaces: {n:?}: {e}")))
            .collect::<Result<_, _>>()?,
        selector: d.namespace_selector.as_ref().map(Selector::namespace).transpose().map_err(|e| format!("{at}.namespaceSelector: {e}"))?,
    })
}

fn filters(m: &MatchSpec, at: &str, warnings: &mut Vec<String>) -> Result<(Vec<NamespaceFilter>, bool), String> {
    if m.subjects.is_some() || m.roles.is_some() || m.cluster_roles.is_some() {
        return Err(format!("{at}: subjects/roles/clusterRoles are not supported (images are verified for every requester)"));
    }
    let mut out = vec![];
    let mut all = false;
    let list: Vec<(&Filter, String)> = match (&m.resources, m.any.is_empty(), m.all.is_empty()) {
        (Some(d), true, true) => return Ok((vec![namespace_filter(d, &format!("{at}.resources"), warnings)?], false)),
        (None, false, true) => m.any.iter().enumerate().map(|(i, f)| (f, format!("{at}.any[{i}]"))).collect(),
        (None, true, false) => {
            all = true;
            m.all.iter().enumerate().map(|(i, f)| (f, format!("{at}.all[{i}]"))).collect()
        }
        (None, true, true) => return Err(format!("{at}: match cannot be empty")),
        _ => return Err(format!("{at}: give one of resources, any, all")),
    };
    for (f, at) in list {
        if f.subjects.is_some() || f.roles.is_some() || f.cluster_roles.is_some() {
            return Err(format!("{at}: subjects/roles/clusterRoles are not supported (images are verified for every requester)"));
        }
        out.push(namespace_filter(f.resources.as_ref().unwrap_or(&Description::default()), &format!("{at}.resources"), warnings)?);
    }
    Ok((out, all))
}

fn conditions(c: &[Value], at: &str) -> Result<Option<Conditions>, String> {
    if c.is_empty() {
        return Ok(None);
    }
    let blocks = super::kyverno_eval::parse_conditions(c).map_err(|e| format!("{at}: {e}"))?;
    let text = serde_json::to_string(c).unwrap_or_default();
    if text.contains("request.") || text.contains("images.") || text.contains("serviceAccountName") {
        return Err(format!(
            "{at}: conditions read the admission request (request.*, images.*); trustmirror evaluates attestation conditions per image, over the statement's predicate"
        ));
    }
    Ok(Some(Conditions::new(blocks)))
}

/// The most common migration mistake, said when the policy loads (the denial says it again).
fn predicate_prefix_warning(c: &[Value], at: &str, warnings: &mut Vec<String>) {
    let text = serde_json::to_string(c).unwrap_or_default();
    if text.contains("{{ predicate.") || text.contains("{{predicate.") {
        warnings.push(format!(
            "{at}: Kyverno puts the predicate's fields at the root of the condition context, so {{{{ predicate.… }}}} never resolves and the condition fails for every image (SLSA v1 builder: {{{{ runDetails.builder.id }}}}, v0.2: {{{{ builder.id }}}})"
        ));
    }
}

/// Compile one ClusterPolicy (`namespace: None`) or namespaced Policy.
pub fn compile(name: &str, namespace: Option<&str>, spec: Value) -> Result<Compiled, String> {
    let spec: Spec = serde_path_to_error::deserialize(spec).map_err(|e| format!("spec.{}: {}", e.path(), e.inner()))?;
    let mut warnings = vec![];
    let default_mode = mode(spec.validation_failure_action.as_deref().unwrap_or("Audit"), "spec.validationFailureAction")?;
    let mut namespace_modes = BTreeMap::new();
    for (i, o) in spec.validation_failure_action_overrides.iter().enumerate() {
        let at = format!("spec.validationFailureActionOverrides[{i}]");
        if o.namespace_selector.is_some() {
            return Err(format!("{at}.namespaceSelector is not supported (list the namespaces)"));
        }
        let m = mode(&o.action, &format!("{at}.action"))?;
        for n in &o.namespaces {
            if n.contains('*') || n.contains('?') {
                return Err(format!("{at}.namespaces: {n:?}: wildcards are not supported here (list the namespaces)"));
            }
            namespace_modes.insert(n.clone(), m);
        }
    }
    if spec.failure_policy.as_deref() == Some("Ignore") {
        warnings.push("spec.failurePolicy Ignore: trustmirror decides from its store and fails closed on its own errors".into());
    }
    let mut policies = vec![];
    for (r, rule) in spec.rules.iter().enumerate() {
        let at = format!("spec.rules[{r}] ({})", rule.name);
        if rule.verify_images.is_empty() {
            let what = [("validate", rule.validate.is_some()), ("mutate", rule.mutate.is_some()), ("generate", rule.generate.is_some())]
                .iter()
                .filter(|(_, x)| *x)
                .map(|(w, _)| *w)
                .collect::<Vec<_>>()
                .join("/");
            warnings
                .push(format!("{at}: a {what} rule, not an image verification rule: not evaluated by trustmirror (keep it in Kyverno)"));
            continue;
        }
        if rule.context.is_some() {
            return Err(format!(
                "{at}.context: context entries (API calls, ConfigMaps, registry lookups) are resolved at admission time and cannot be decided offline"
            ));
        }
        if rule.preconditions.is_some() || rule.cel_preconditions.is_some() {
            return Err(format!(
                "{at}.preconditions are evaluated over the admission request: not supported (a rule without them applies always)"
            ));
        }
        if rule.image_extractors.is_some() {
            return Err(format!("{at}.imageExtractors: images of custom resources are not supported"));
        }
        let mut scope = NamespaceScope::default();
        let m = rule.matcher.as_ref().ok_or_else(|| format!("{at}: match is required"))?;
        (scope.filters, scope.all) = filters(m, &format!("{at}.match"), &mut warnings)?;
        if let Some(x) = &rule.exclude {
            (scope.exclude, scope.exclude_all) = filters(x, &format!("{at}.exclude"), &mut warnings)?;
        }
        if let Some(ns) = namespace {
            // a namespaced Policy applies only in its own namespace
            scope.filters = scope
                .filters
                .into_iter()
                .map(|mut f| {
                    f.names = if f.names.is_empty() || f.names.iter().any(|p| p.matches(ns)) {
                        vec![glob::Pattern::new(&glob::Pattern::escape(ns)).expect("escaped")]
                    } else {
                        vec![]
                    };
                    f
                })
                .filter(|f| !f.names.is_empty())
                .collect();
            if scope.filters.is_empty() {
                warnings.push(format!("{at}: matches no resource of the Policy's own namespace {ns}"));
                continue;
            }
        }
        for (v, vi) in rule.verify_images.iter().enumerate() {
            let at = format!("{at}.verifyImages[{v}]");
            let pname = if rule.verify_images.len() == 1 { format!("{name}/{}", rule.name) } else { format!("{name}/{}[{v}]", rule.name) };
            policies.extend(verify_images(&pname, vi, &at, default_mode, &namespace_modes, &scope, &mut warnings)?);
        }
    }
    Ok(Compiled { policies, warnings })
}

fn verify_images(
    name: &str,
    vi: &VerifyImages,
    at: &str,
    default_mode: Mode,
    namespace_modes: &BTreeMap<String, Mode>,
    scope: &NamespaceScope,
    warnings: &mut Vec<String>,
) -> Result<Vec<Policy>, String> {
    match vi.kind.as_deref() {
        None | Some("Cosign") | Some("SigstoreBundle") => {}
        Some(t) => return Err(format!("{at}.type {t}: only Cosign and SigstoreBundle signatures are verified")),
    }
    if vi.image_registry_credentials.is_some() {
        return Err(format!(
            "{at}.imageRegistryCredentials: the registry is read by the mirror, not at admission; configure its credentials there"
        ));
    }
    if vi.repository.is_some() {
        return Err(format!(
            "{at}.repository: signatures in another repository are looked up at admission time; mirror them with the image"
        ));
    }
    if vi.validate.is_some() {
        return Err(format!("{at}.validate: deny conditions over attestation contexts are not supported (use attestations[].conditions)"));
    }
    if vi.roots.is_some() || vi.additional_extensions.is_some() || vi.annotations.is_some() {
        return Err(format!("{at}: legacy roots/additionalExtensions/annotations are not supported"));
    }
    let mode = vi.failure_action.as_deref().map(|a| mode(a, &format!("{at}.failureAction"))).transpose()?.unwrap_or(default_mode);
    if mode == Mode::Audit && vi.mutate_digest.unwrap_or(true) {
        warnings.push(format!("{at}: Kyverno refuses mutateDigest (default true) with the Audit action; trustmirror only audits"));
    }
    if vi.verify_digest == Some(false) {
        warnings.push(format!(
            "{at}.verifyDigest false: trustmirror still admits only digests (a tag is whatever the registry serves at pull time; the mutating webhook pins tags)"
        ));
    }
    // references: imageReferences plus the legacy `image`
    let mut refs: Vec<&str> = vi.image_references.iter().map(String::as_str).collect();
    refs.extend(vi.image.as_deref());
    if refs.is_empty() {
        return Err(format!("{at}: An image reference is required"));
    }
    let images = refs
        .iter()
        .enumerate()
        .map(|(i, p)| image_pattern(p, &format!("{at}.imageReferences[{i}]"), warnings))
        .collect::<Result<Vec<_>, _>>()?;
    let mut skip_images = vec![];
    for (i, p) in vi.skip_image_references.iter().enumerate() {
        let at = format!("{at}.skipImageReferences[{i}]");
        if p.contains('@') || p.rsplit('/').next().is_some_and(|l| l.contains(':')) {
            // skipping one tag cannot be narrowed to a repository without skipping more
            return Err(format!("{at}: {p:?} names a tag or digest: only whole repositories can be skipped here"));
        }
        skip_images.push(image_pattern(p, &at, warnings)?);
    }
    // legacy key/subject/issuer: one more attestor, on the attestations when there are some
    let mut sets: Vec<(Vec<Authority>, usize)> = vi
        .attestors
        .iter()
        .enumerate()
        .map(|(i, s)| attestor_set(s, &format!("{at}.attestors[{i}]"), warnings))
        .collect::<Result<_, _>>()?;
    let legacy = match (&vi.key, &vi.subject, &vi.issuer) {
        (None, None, None) => None,
        (Some(k), _, _) => Some(Authority::key_pem(&format!("{at}.key"), k).map_err(|e| format!("{at}.key: {e}"))?),
        (None, s, i) => Some(Authority::Keyless(IdentityPolicy {
            san: s.as_deref().map(Matcher::wildcard),
            issuer: i.as_deref().map(Matcher::wildcard),
            ..Default::default()
        })),
    };
    let mut attestations = vec![];
    for (i, a) in vi.attestations.iter().enumerate() {
        let at = format!("{at}.attestations[{i}]");
        let pt = match (&a.kind, &a.predicate_type) {
            (Some(t), _) | (None, Some(t)) => t.clone(),
            (None, None) => return Err(format!("{at}: missing type")),
        };
        let check = conditions(&a.conditions, &format!("{at}.conditions"))?.map(Check::Kyverno);
        predicate_prefix_warning(&a.conditions, &format!("{at}.conditions"), warnings);
        let label = a.name.clone().unwrap_or_else(|| pt.clone());
        let mut att_sets: Vec<(Vec<Authority>, usize)> = a
            .attestors
            .iter()
            .enumerate()
            .map(|(j, s)| attestor_set(s, &format!("{at}.attestors[{j}]"), warnings))
            .collect::<Result<_, _>>()?;
        if let Some(l) = &legacy {
            att_sets.push((vec![l.clone()], 1));
        }
        if att_sets.is_empty() {
            warnings.push(format!(
                "{at}: no attestors: Kyverno accepts a {pt} attestation signed by anyone the trust root certifies, and so does trustmirror (name its signers)"
            ));
            attestations.push(AttestationReq { name: label, predicate_type: pt, check, signers: Signers::Anyone, every: true });
        } else {
            for (entries, count) in att_sets {
                attestations.push(AttestationReq {
                    name: label.clone(),
                    predicate_type: pt.clone(),
                    check: check.clone(),
                    signers: Signers::Entries { entries, count },
                    every: true,
                });
            }
        }
    }
    if let Some(l) = legacy
        && vi.attestations.is_empty()
    {
        sets.push((vec![l], 1));
    }
    let policy = |name: String, set: Option<(Vec<Authority>, usize)>, attestations: Vec<AttestationReq>| {
        let (authorities, threshold) = match set {
            Some((entries, count)) => (
                entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| NamedAuthority { name: format!("entries[{i}]"), alternatives: vec![a], static_pass: None })
                    .collect(),
                count,
            ),
            None => (vec![], 0),
        };
        Policy {
            skip_images: skip_images.clone(),
            mode,
            namespace_modes: namespace_modes.clone(),
            scope: Some(scope.clone()),
            require_digest: true,
            ..Policy::new(name, "KyvernoPolicy", images.clone(), authorities, threshold, attestations)
        }
    };
    // several attestor sets must all pass: one policy per set (the attestations go with the first)
    let mut out = vec![];
    let mut sets = sets.into_iter();
    out.push(policy(name.to_string(), sets.next(), attestations));
    for (i, s) in sets.enumerate() {
        out.push(policy(format!("{name}/attestors[{}]", i + 1), Some(s), vec![]));
    }
    Ok(out)
}
