//! The runtime's share of a policy: a containers-policy.json(5) and a containers-registries.d(5)
//! file for CRI-O, podman and skopeo (containers/image), rendered from the same [`PolicySet`] the
//! webhook enforces and the verified Sigstore trusted root.
//!
//! containers/image can say much less than a trustmirror policy. Per repository scope it can
//! require a cosign signature (`sigstoreSigned`) by a public key (`keyData`, `keyDatas`), or by a
//! Fulcio certificate whose **e-mail** SAN and OIDC issuer are given exactly (`fulcio`, which
//! also needs a Rekor key: the signature must carry a Rekor SET). Several requirements in a scope
//! all have to hold, and only the most specific scope applies. It cannot express URI identities
//! (GitHub workflows, SPIFFE), regular expressions, GitHub claims, "one of several keyless
//! identities", M-of-N thresholds below N, attestations (SLSA, SBOM, vulnerabilities, custom
//! predicates), base images, registry allowlists, required digests or namespaces.
//!
//! The renderer says so instead of guessing: each policy yields findings, and a finding that
//! leaves the runtime enforcing *less* than the webhook ([`Severity::Weaker`]) stops the
//! rendering unless the operator allowed it (`--allow-partial`). It never renders a requirement
//! *stricter* than the policy (that would refuse images the webhook admits): what cannot be
//! rendered exactly is left out of the scope, and reported.
//!
//! Pure: fed the policy set and the trusted root's bytes; no disk.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::{Value, json};

use super::policy::{Mode, Policy, PolicySet};
use super::verify::{Authority, IdentityPolicy, Matcher};

/// How the runtime treats images no policy covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultRule {
    /// `insecureAcceptAnything`: the webhook decides them (the runtime cannot tell a system
    /// image from a workload's).
    Accept,
    /// `reject`: nothing runs on the node unless a scope below allows it.
    Reject,
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub allow_partial: bool,
    pub default_rule: DefaultRule,
    /// The containers/image version of the node's runtime (major, minor): a field it does not
    /// know makes the whole file invalid and every pull fail, so only fields it accepts are
    /// written — `fulcio` and `rekorPublicKeyData` from 5.24 (CRI-O 1.27, podman 4.4),
    /// `keyDatas` and `rekorPublicKeyDatas` from 5.33 (CRI-O 1.32, podman 5.3).
    pub containers_image: (u32, u32),
}

/// The oldest containers/image with `fulcio` / with the plural key fields.
const FULCIO: (u32, u32) = (5, 24);
const PLURAL: (u32, u32) = (5, 33);

fn version(v: (u32, u32)) -> String {
    format!("{}.{}", v.0, v.1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The runtime enforces less than the webhook here.
    Weaker,
    /// Worth knowing; the runtime enforces what the policy says.
    Info,
}

/// Something the runtime's policy does not carry over, or carries over with a caveat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The policy it is about (empty: the whole rendering).
    pub policy: String,
    /// The containers/image scope it is about, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub message: String,
}

/// One scope as rendered.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedScope {
    pub scope: String,
    pub policies: Vec<String>,
    /// Requirements, in words (`key <name>`, `fulcio <email> from <issuer>`).
    pub requirements: Vec<String>,
}

/// The rendering.
#[derive(Debug, Clone)]
pub struct NodePolicy {
    /// containers-policy.json(5).
    pub policy_json: Vec<u8>,
    /// containers-registries.d(5): `use-sigstore-attachments: true` for each rendered scope.
    pub registries_d: Vec<u8>,
    pub scopes: Vec<RenderedScope>,
    pub findings: Vec<Finding>,
    /// Public keys the policies name, for tools on the node (`file name`, PEM).
    pub keys: Vec<(String, String)>,
}

impl NodePolicy {
    /// Does the runtime enforce less than the webhook anywhere?
    pub fn partial(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Weaker)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the trusted root: {0}")]
    TrustedRoot(String),
    #[error(
        "the runtime would enforce less than the policy ({} finding(s); allow it with --allow-partial): {}",
        .0.len(),
        .0.iter().map(|f| format!("[{}{}] {}", f.policy, f.scope.as_deref().map(|s| format!(" {s}")).unwrap_or_default(), f.message)).collect::<Vec<_>>().join("; ")
    )]
    Weaker(Vec<Finding>),
}

/// What the trusted root offers a `fulcio` requirement.
struct Sigstore {
    /// Every Fulcio CA certificate (PEM bundle): containers/image checks the chain at the
    /// signature's SET time, so CAs no longer issuing still verify older signatures.
    ca_pem: Option<String>,
    /// ECDSA Rekor keys (PEM). containers/image accepts only ECDSA Rekor keys.
    rekor_pems: Vec<String>,
    notes: Vec<String>,
}

use super::pem::encode as pem;

fn sigstore_material(trusted_root: &[u8]) -> Result<Sigstore, RenderError> {
    let bad = |m: String| RenderError::TrustedRoot(m);
    let v: Value = serde_json::from_slice(trusted_root).map_err(|e| bad(format!("not JSON: {e}")))?;
    let raw = |x: &Value, what: &str| -> Result<Vec<u8>, RenderError> {
        let s = x.get("rawBytes").and_then(Value::as_str).ok_or_else(|| bad(format!("{what}: no rawBytes")))?;
        B64.decode(s).map_err(|e| bad(format!("{what}: rawBytes is not base64: {e}")))
    };
    let mut ca = String::new();
    for (i, a) in v.get("certificateAuthorities").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for (j, c) in a.pointer("/certChain/certificates").and_then(Value::as_array).into_iter().flatten().enumerate() {
            ca.push_str(&pem("CERTIFICATE", &raw(c, &format!("certificateAuthorities[{i}].certChain.certificates[{j}]"))?));
        }
    }
    let mut rekor_pems = vec![];
    let mut notes = vec![];
    for (i, t) in v.get("tlogs").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let Some(k) = t.get("publicKey") else { continue };
        let details = k.get("keyDetails").and_then(Value::as_str).unwrap_or_default();
        if details.starts_with("PKIX_ECDSA") {
            rekor_pems.push(pem("PUBLIC KEY", &raw(k, &format!("tlogs[{i}].publicKey"))?));
        } else {
            let url = t.get("baseUrl").and_then(Value::as_str).unwrap_or("?");
            notes
                .push(format!("transparency log {url} ({details}) is not usable by containers/image, which accepts only ECDSA Rekor keys"));
        }
    }
    Ok(Sigstore { ca_pem: (!ca.is_empty()).then_some(ca), rekor_pems, notes })
}

/// A containers/image scope for an image glob, when there is an exact one: a repository, a
/// namespace (`…/**`, or `…/*`: trustmirror's `*` crosses `/`), a host wildcard (`*.example.com/**`),
/// or every docker image (`**`).
fn scope_of(glob: &str) -> Option<String> {
    let special = |s: &str| s.contains(['*', '?', '[', ']', '{', '}', '!']);
    if !special(glob) {
        return Some(glob.to_string());
    }
    if glob == "*" || glob == "**" {
        return Some(String::new());
    }
    for suffix in ["/**", "/*"] {
        if let Some(prefix) = glob.strip_suffix(suffix) {
            if !special(prefix) && !prefix.is_empty() {
                return Some(prefix.to_string());
            }
            // `*.example.com/**`: a host wildcard (containers/image strips the port and matches
            // hosts only, so the prefix must be a bare domain)
            if let Some(domain) = prefix.strip_prefix("*.")
                && !special(domain)
                && !domain.contains(['/', ':'])
                && domain.contains('.')
            {
                return Some(prefix.to_string());
            }
        }
    }
    None
}

/// Does scope `outer` apply to every image of scope `inner` (so that, as containers/image uses
/// only the most specific scope, `outer`'s requirements must be repeated in `inner`)?
fn covers(outer: &str, inner: &str) -> bool {
    if outer == inner || outer.is_empty() {
        return true;
    }
    if let Some(domain) = outer.strip_prefix("*.") {
        let host = inner.split('/').next().unwrap_or_default();
        let host = host.split(':').next().unwrap_or_default();
        return host.ends_with(&format!(".{domain}")) || inner.strip_prefix("*.").is_some_and(|d| d.ends_with(&format!(".{domain}")));
    }
    inner.starts_with(&format!("{outer}/"))
}

fn email_like(s: &str) -> bool {
    !s.contains("://") && s.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
}

/// One authority as one requirement, or why it cannot be.
fn requirement(a: &super::policy::NamedAuthority, ss: &Sigstore, cimage: (u32, u32)) -> Result<(Value, String), String> {
    if a.static_pass.is_some() {
        return Err(format!("authority {}: a static authority has no containers/image equivalent", a.name));
    }
    let keys: Vec<&Vec<u8>> = a
        .alternatives
        .iter()
        .filter_map(|x| match x {
            Authority::Key { spki_der, .. } => Some(spki_der),
            _ => None,
        })
        .collect();
    let ident = || json!({"type": "matchRepository"});
    if keys.len() == a.alternatives.len() && !keys.is_empty() {
        let datas: Vec<String> = keys.iter().map(|k| B64.encode(pem("PUBLIC KEY", k))).collect();
        let r = if datas.len() == 1 {
            json!({"type": "sigstoreSigned", "keyData": datas[0], "signedIdentity": ident()})
        } else if cimage >= PLURAL {
            json!({"type": "sigstoreSigned", "keyDatas": datas, "signedIdentity": ident()})
        } else {
            return Err(format!(
                "authority {}: {} alternative keys need keyDatas (containers/image {})",
                a.name,
                datas.len(),
                version(PLURAL)
            ));
        };
        return Ok((r, format!("key {}", a.name)));
    }
    let [Authority::Keyless(IdentityPolicy { san, issuer, github_repository, github_ref, github_workflow })] = &a.alternatives[..] else {
        return Err(format!(
            "authority {}: {} alternative identities (containers/image takes one Fulcio identity per requirement, and keys and identities cannot be alternatives)",
            a.name,
            a.alternatives.len()
        ));
    };
    if github_repository.is_some() || github_ref.is_some() || github_workflow.is_some() {
        return Err(format!("authority {}: GitHub claims (repository, ref, workflow) cannot be checked by containers/image", a.name));
    }
    let (Some(Matcher::Exact(subject)), Some(Matcher::Exact(issuer))) = (san, issuer) else {
        return Err(format!("authority {}: containers/image matches only an exact subject and issuer, not regular expressions", a.name));
    };
    if !email_like(subject) {
        return Err(format!(
            "authority {}: subject {subject:?} is not an e-mail address; containers/image matches only e-mail SANs (subjectEmail)",
            a.name
        ));
    }
    if cimage < FULCIO {
        return Err(format!("authority {}: keyless identities need the fulcio field (containers/image {})", a.name, version(FULCIO)));
    }
    let Some(ca) = &ss.ca_pem else { return Err(format!("authority {}: the trusted root has no certificate authority", a.name)) };
    let mut r = json!({
        "type": "sigstoreSigned",
        "fulcio": {"caData": B64.encode(ca), "oidcIssuer": issuer, "subjectEmail": subject},
        "signedIdentity": ident(),
    });
    match &ss.rekor_pems[..] {
        [] => return Err(format!("authority {}: the trusted root has no ECDSA Rekor key, which a fulcio requirement needs", a.name)),
        [one] => r["rekorPublicKeyData"] = json!(B64.encode(one)),
        many if cimage >= PLURAL => r["rekorPublicKeyDatas"] = json!(many.iter().map(|p| B64.encode(p)).collect::<Vec<_>>()),
        many => {
            return Err(format!(
                "authority {}: the trusted root has {} Rekor keys; accepting any of them needs rekorPublicKeyDatas (containers/image {})",
                a.name,
                many.len(),
                version(PLURAL)
            ));
        }
    }
    Ok((r, format!("fulcio {subject} from {issuer}")))
}

/// What a policy asks that no containers/image requirement carries.
fn not_carried(p: &Policy) -> Vec<&'static str> {
    let mut out = vec![];
    if !p.attestations.is_empty() {
        out.push("attestations");
    }
    if p.provenance.is_some() {
        out.push("SLSA provenance");
    }
    if p.sbom_required {
        out.push("SBOM");
    }
    if p.vulnerabilities.is_some() {
        out.push("vulnerability scans");
    }
    if p.base_images.is_some() {
        out.push("base images");
    }
    if p.registries.is_some() {
        out.push("registry allowlist");
    }
    if p.require_digest {
        out.push("references by digest");
    }
    if p.transparency.is_some() {
        out.push("witnessed transparency-log checkpoints");
    }
    out
}

/// Render the runtime policy.
pub fn render(set: &PolicySet, trusted_root: &[u8], o: &RenderOptions) -> Result<NodePolicy, RenderError> {
    let ss = sigstore_material(trusted_root)?;
    let mut findings: Vec<Finding> =
        ss.notes.iter().map(|m| Finding { severity: Severity::Info, policy: String::new(), scope: None, message: m.clone() }).collect();
    let mut keys = vec![];
    // scope → (policies, requirements, words)
    let mut own: BTreeMap<String, (Vec<String>, Vec<Value>, Vec<String>)> = BTreeMap::new();
    for p in &set.policies {
        let f = |severity, scope: Option<&str>, message: String| Finding {
            severity,
            policy: p.name.clone(),
            scope: scope.map(str::to_string),
            message,
        };
        for a in &p.authorities {
            for alt in &a.alternatives {
                if let Authority::Key { spki_der, .. } = alt {
                    keys.push((format!("{}--{}.pub", p.name, a.name), pem("PUBLIC KEY", spki_der)));
                }
            }
        }
        if p.mode != Mode::Enforce {
            findings.push(f(Severity::Info, None, format!("mode {}: not rendered (the runtime can only enforce)", p.mode)));
            continue;
        }
        if p.namespace_modes.values().any(|m| *m != Mode::Enforce) {
            findings.push(f(
                Severity::Weaker,
                None,
                "lowers enforcement in some namespaces, which the runtime cannot tell apart: not rendered".into(),
            ));
            continue;
        }
        let mut scopes = vec![];
        for g in &p.images {
            match scope_of(g.as_str()) {
                Some(s) => scopes.push(s),
                None => findings.push(f(
                    Severity::Weaker,
                    None,
                    format!(
                        "image glob {:?} has no containers/image scope (a repository, `…/**`, `*.domain/**` or `**`): not rendered",
                        g.as_str()
                    ),
                )),
            }
        }
        if scopes.is_empty() {
            continue;
        }
        // the signature requirement: every authority when all are required, one requirement when
        // any key of several authorities will do; otherwise nothing exact exists
        let reqs: Vec<Result<(Value, String), String>> = p.authorities.iter().map(|a| requirement(a, &ss, o.containers_image)).collect();
        let n = p.authorities.len();
        let rendered: Option<Vec<(Value, String)>> = if n == 0 {
            Some(vec![])
        } else if p.threshold >= n {
            let ok: Vec<(Value, String)> = reqs.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
            for e in reqs.iter().filter_map(|r| r.as_ref().err()) {
                findings.push(f(Severity::Weaker, None, format!("{e}: left out of the runtime's requirement")));
            }
            Some(ok)
        } else if p.threshold == 1
            && o.containers_image >= PLURAL
            && p.authorities.iter().all(|a| a.static_pass.is_none() && a.alternatives.iter().all(|x| matches!(x, Authority::Key { .. })))
        {
            let datas: Vec<Value> = p
                .authorities
                .iter()
                .flat_map(|a| a.alternatives.iter())
                .filter_map(|x| match x {
                    Authority::Key { spki_der, .. } => Some(json!(B64.encode(pem("PUBLIC KEY", spki_der)))),
                    _ => None,
                })
                .collect();
            let names: Vec<&str> = p.authorities.iter().map(|a| a.name.as_str()).collect();
            Some(vec![(
                json!({"type": "sigstoreSigned", "keyDatas": datas, "signedIdentity": {"type": "matchRepository"}}),
                format!("any key of {}", names.join(", ")),
            )])
        } else {
            let why = if p.threshold == 1 && o.containers_image < PLURAL {
                format!("one of several authorities (keyDatas needs containers/image {})", version(PLURAL))
            } else if p.threshold == 1 {
                "one of several authorities that are not all keys".to_string()
            } else {
                format!("{} of {} authorities", p.threshold, n)
            };
            findings.push(f(
                Severity::Weaker,
                None,
                format!("{why} has no containers/image equivalent: no signature requirement rendered"),
            ));
            None
        };
        for what in not_carried(p) {
            findings.push(f(Severity::Weaker, None, format!("{what}: not enforced by the runtime (the webhook enforces it)")));
        }
        for s in scopes {
            let e = own.entry(s).or_default();
            e.0.push(p.name.clone());
            for (v, w) in rendered.iter().flatten() {
                if !e.1.contains(v) {
                    e.1.push(v.clone());
                    e.2.push(w.clone());
                }
            }
        }
    }
    // containers/image applies only the most specific scope: repeat every covering scope's
    // requirements in the scopes it covers
    let mut scopes: Vec<RenderedScope> = vec![];
    let mut docker = serde_json::Map::new();
    let mut attachments = vec![];
    for (scope, (pols, _, _)) in &own {
        let mut reqs: Vec<Value> = vec![];
        let mut words: Vec<String> = vec![];
        let mut policies = pols.clone();
        for (outer, (opols, oreqs, owords)) in &own {
            if covers(outer, scope) {
                for (v, w) in oreqs.iter().zip(owords) {
                    if !reqs.contains(v) {
                        reqs.push(v.clone());
                        words.push(w.clone());
                    }
                }
                for q in opols {
                    if !policies.contains(q) {
                        policies.push(q.clone());
                    }
                }
            }
        }
        if reqs.is_empty() {
            // a policy with no signature requirement the runtime can check: the scope accepts
            // anything (the webhook decides), which must be said
            findings.push(Finding {
                severity: Severity::Info,
                policy: policies.join(", "),
                scope: Some(scope.clone()),
                message: "no signature requirement rendered: the runtime accepts any image here".into(),
            });
            reqs.push(json!({"type": "insecureAcceptAnything"}));
            words.push("anything".into());
        } else if !scope.is_empty() && !scope.starts_with("*.") {
            attachments.push(scope.clone());
        }
        if !scope.is_empty() && scope.starts_with("*.") && words.iter().any(|w| w != "anything") {
            findings.push(Finding {
                severity: Severity::Info,
                policy: policies.join(", "),
                scope: Some(scope.clone()),
                message: "host wildcard: set `use-sigstore-attachments: true` for these registries in registries.d yourself (it has no wildcard keys)"
                    .into(),
            });
        }
        if scope.is_empty() && words.iter().any(|w| w != "anything") {
            findings.push(Finding {
                severity: Severity::Info,
                policy: policies.join(", "),
                scope: None,
                message: "every docker image: set `default-docker: {use-sigstore-attachments: true}` in registries.d's default.yaml (one file may define it)"
                    .into(),
            });
        }
        docker.insert(scope.clone(), Value::Array(reqs));
        scopes.push(RenderedScope { scope: scope.clone(), policies, requirements: words });
    }
    if scopes.iter().any(|s| s.requirements.iter().any(|w| w != "anything")) {
        findings.push(Finding {
            severity: Severity::Info,
            policy: String::new(),
            scope: None,
            message: "containers/image reads only cosign's `sha256-<digest>.sig` tag attachments: images signed only with OCI-referrer bundles (cosign v3's default) are refused at pull; sign with `--new-bundle-format=false` as well, or rely on the webhook for them".into(),
        });
    }
    let default = match o.default_rule {
        DefaultRule::Accept => json!([{"type": "insecureAcceptAnything"}]),
        DefaultRule::Reject => json!([{"type": "reject"}]),
    };
    if o.default_rule == DefaultRule::Accept && set.no_match.is_some_and(|m| m == Mode::Enforce) {
        findings.push(Finding {
            severity: Severity::Info,
            policy: String::new(),
            scope: None,
            message: "images no policy covers are accepted by the runtime (the webhook denies them; `--default-policy reject` refuses them on the node too)".into(),
        });
    }
    let policy = json!({"default": default, "transports": {"docker": Value::Object(docker)}});
    let mut yaml = String::from("# written by trustmirror node: cosign signatures live beside the image (sha256-<digest>.sig)\ndocker:\n");
    if attachments.is_empty() {
        yaml = String::from("# written by trustmirror node: no scope needs signature attachments\n{}\n");
    }
    for s in &attachments {
        yaml.push_str(&format!("  {}:\n    use-sigstore-attachments: true\n", serde_json::to_string(s).expect("json string")));
    }
    let weaker: Vec<Finding> = findings.iter().filter(|f| f.severity == Severity::Weaker).cloned().collect();
    if !weaker.is_empty() && !o.allow_partial {
        return Err(RenderError::Weaker(weaker));
    }
    findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.policy.cmp(&b.policy)));
    Ok(NodePolicy {
        policy_json: serde_json::to_vec_pretty(&policy).expect("json"),
        registries_d: yaml.into_bytes(),
        scopes,
        findings,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_exact_or_absent() {
        assert_eq!(scope_of("registry.internal/myorg/app").as_deref(), Some("registry.internal/myorg/app"));
        assert_eq!(scope_of("registry.internal/myorg/**").as_deref(), Some("registry.internal/myorg"));
        assert_eq!(scope_of("registry.internal:5000/*").as_deref(), Some("registry.internal:5000"));
        assert_eq!(scope_of("*.example.com/**").as_deref(), Some("*.example.com"));
        assert_eq!(scope_of("**").as_deref(), Some(""));
        for none in ["registry.internal/myorg/app-*", "*/myorg/**", "reg/**/app", "*.example.com:5000/**", "reg/a?c"] {
            assert_eq!(scope_of(none), None, "{none}");
        }
    }

    #[test]
    fn covering_scopes() {
        assert!(covers("registry.internal/myorg", "registry.internal/myorg/app"));
        assert!(!covers("registry.internal/my", "registry.internal/myorg/app"));
        assert!(covers("", "registry.internal/myorg"));
        assert!(covers("*.example.com", "r.example.com:5000/x"));
        assert!(!covers("*.example.com", "example.com/x"));
        assert!(!covers("registry.internal/myorg/app", "registry.internal/myorg"));
    }
}
