//! OPA Gatekeeper ConstraintTemplates (Rego, target `admission.k8s.gatekeeper.sh`) and their
//! Constraints, evaluated with regorus as Gatekeeper evaluates them, so structural rules
//! (digest pinning, registry allowlists) run in the same webhook as the cryptographic ones.
//!
//! * The template's Rego is compiled as Rego v0 unless `version: v1` says otherwise (Gatekeeper's
//!   default); its `violation` set is queried with `input = {review, parameters}` — `review` the
//!   AdmissionRequest, `parameters` the constraint's `spec.parameters` (or `{}`).
//! * Each result needs a `msg`; identical results collapse (a set).
//! * `match`: `kinds` (apiGroups × kinds, `*` wildcards), `namespaces` / `excludedNamespaces`
//!   (exact, or a leading/trailing `*`), `scope`, `labelSelector` (the object's labels),
//!   `namespaceSelector` on `kubernetes.io/metadata.name` (other Namespace labels are not seen
//!   here: refused at load time, see [`super::selector`]).
//! * `enforcementAction`: `deny` (default) denies, `warn` warns, `dryrun` only records.
//!
//! Evaluation is bounded in time like attestation Rego ([`super::rego::EVAL_LIMIT`]).

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::Deserialize;
use serde_json::{Value, json};

use super::selector::Selector;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deny,
    Warn,
    DryRun,
}

#[derive(Clone)]
struct Template {
    package: String,
    engine: regorus::Engine,
}

#[derive(Debug, Clone, Default)]
struct Match {
    kinds: Vec<(Vec<String>, Vec<String>)>,
    namespaces: Option<Vec<String>>,
    excluded: Option<Vec<String>>,
    scope: Option<String>,
    labels: Option<Selector>,
    namespace_selector: Option<Selector>,
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub name: String,
    pub kind: String,
    pub action: Action,
    matcher: Match,
    parameters: Value,
}

/// The templates and constraints of a policy set.
#[derive(Clone, Default)]
pub struct Gatekeeper {
    templates: BTreeMap<String, Template>,
    pub constraints: Vec<Constraint>,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper")
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .field("constraints", &self.constraints)
            .finish()
    }
}

/// One violation: the constraint, its action, the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub constraint: String,
    pub action: Action,
    pub msg: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TemplateSpec {
    crd: CrdSpec,
    targets: Vec<TargetSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrdSpec {
    spec: CrdInner,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrdInner {
    names: CrdNames,
}

#[derive(Deserialize)]
struct CrdNames {
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TargetSpec {
    target: String,
    #[serde(default)]
    rego: Option<String>,
    #[serde(default)]
    libs: Vec<String>,
    #[serde(default)]
    code: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConstraintSpec {
    #[serde(default)]
    enforcement_action: Option<String>,
    #[serde(default, rename = "match")]
    matcher: Option<MatchSpec>,
    #[serde(default)]
    parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MatchSpec {
    #[serde(default)]
    kinds: Vec<KindsSpec>,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    excluded_namespaces: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    label_selector: Option<Value>,
    #[serde(default)]
    namespace_selector: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KindsSpec {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
}

fn package_of(rego: &str) -> Option<String> {
    rego.lines().map(str::trim).find_map(|l| l.strip_prefix("package ")).map(|p| p.trim().to_string())
}

impl Gatekeeper {
    /// A ConstraintTemplate document.
    pub fn add_template(&mut self, name: &str, spec: Value) -> Result<(), String> {
        let t: TemplateSpec = serde_path_to_error::deserialize(spec).map_err(|e| format!("spec.{}: {}", e.path(), e.inner()))?;
        let kind = t.crd.spec.names.kind;
        if name != kind.to_lowercase() {
            return Err(format!(
                "metadata.name {name:?} must be the lower-case of spec.crd.spec.names.kind {kind:?} (Gatekeeper refuses it)"
            ));
        }
        let target = t
            .targets
            .iter()
            .find(|t| t.target == "admission.k8s.gatekeeper.sh")
            .ok_or("no target admission.k8s.gatekeeper.sh: nothing this webhook can evaluate")?;
        let (rego, v1) = match (&target.rego, target.code.first()) {
            (Some(r), _) => (r.clone(), false),
            (None, Some(c)) if c["engine"] == "Rego" => (
                c.pointer("/source/rego").and_then(Value::as_str).ok_or("code[0].source.rego is missing")?.to_string(),
                c.pointer("/source/version").and_then(Value::as_str) == Some("v1"),
            ),
            (None, Some(c)) => return Err(format!("code engine {} is not supported (Rego is)", c["engine"])),
            (None, None) => return Err("the target has no rego".into()),
        };
        let package = package_of(&rego).ok_or("the template's Rego has no package line")?;
        super::rego::before_parse(&rego).map_err(|e| format!("the template's Rego: {e}"))?;
        for lib in &target.libs {
            super::rego::before_parse(lib).map_err(|e| format!("libs: {e}"))?;
        }
        let mut e = regorus::Engine::new();
        e.set_rego_v0(!v1);
        e.add_policy(format!("{name}.rego"), rego.clone()).map_err(|e| format!("the template's Rego: {e}"))?;
        for (i, lib) in target.libs.iter().enumerate() {
            e.add_policy(format!("{name}.lib{i}.rego"), lib.clone()).map_err(|e| format!("libs[{i}]: {e}"))?;
        }
        if !rego.contains("violation") {
            return Err("the template defines no `violation` rule (Gatekeeper requires one)".into());
        }
        e.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: super::rego::EVAL_LIMIT,
            check_interval: NonZeroU32::new(256).expect("non-zero"),
        });
        self.templates.insert(kind, Template { package, engine: e });
        Ok(())
    }

    /// A constraint document (`constraints.gatekeeper.sh/*`, kind = a template's kind).
    pub fn add_constraint(&mut self, kind: &str, name: &str, spec: Value) -> Result<(), String> {
        let c: ConstraintSpec = serde_path_to_error::deserialize(spec).map_err(|e| format!("spec.{}: {}", e.path(), e.inner()))?;
        let action = match c.enforcement_action.as_deref().unwrap_or("deny") {
            "deny" | "" => Action::Deny,
            "warn" => Action::Warn,
            "dryrun" => Action::DryRun,
            o => return Err(format!("enforcementAction {o:?}: deny, warn or dryrun (scoped actions are not supported)")),
        };
        let mut matcher = Match::default();
        if let Some(m) = c.matcher {
            if m.name.is_some() || m.source.as_deref().is_some_and(|s| s != "All") {
                return Err("match.name / match.source are not supported".into());
            }
            matcher = Match {
                kinds: m.kinds.into_iter().map(|k| (k.api_groups, k.kinds)).collect(),
                namespaces: m.namespaces,
                excluded: m.excluded_namespaces,
                scope: m.scope,
                labels: m.label_selector.as_ref().map(Selector::parse).transpose().map_err(|e| format!("match.labelSelector: {e}"))?,
                namespace_selector: m
                    .namespace_selector
                    .as_ref()
                    .map(Selector::namespace)
                    .transpose()
                    .map_err(|e| format!("match.namespaceSelector: {e}"))?,
            };
        }
        self.constraints.push(Constraint {
            name: name.into(),
            kind: kind.into(),
            action,
            matcher,
            parameters: c.parameters.unwrap_or_else(|| json!({})),
        });
        Ok(())
    }

    /// Every constraint has its template.
    pub fn check(&self) -> Result<(), String> {
        for c in &self.constraints {
            if !self.templates.contains_key(&c.kind) {
                return Err(format!("constraint {} is of kind {}, for which no ConstraintTemplate is loaded", c.name, c.kind));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    /// Evaluate every matching constraint over an AdmissionRequest (`input.review`).
    pub fn evaluate(&self, review: &Value) -> Vec<Finding> {
        let mut out: Vec<Finding> = vec![];
        // On DELETE Gatekeeper evaluates the old object (`setObjectOnDelete`).
        let deleted;
        let review = if review["operation"] == "DELETE" && review.get("object").is_none_or(Value::is_null) {
            let mut r = review.clone();
            r["object"] = review.get("oldObject").cloned().unwrap_or(Value::Null);
            deleted = r;
            &deleted
        } else {
            review
        };
        for c in self.constraints.iter().filter(|c| matches(&c.matcher, review)) {
            let t = &self.templates[&c.kind];
            let mut e = t.engine.clone();
            let input = json!({"review": review, "parameters": c.parameters});
            let results = e
                .set_input_json(&input.to_string())
                .map_err(|e| e.to_string())
                .and_then(|_| e.eval_rule(format!("data.{}.violation", t.package)).map_err(|e| e.to_string()));
            match results {
                Ok(v) => {
                    let v: Value = serde_json::from_str(&v.to_json_str().unwrap_or_else(|_| "[]".into())).unwrap_or(Value::Null);
                    for r in v.as_array().into_iter().flatten() {
                        if let Some(msg) = r["msg"].as_str() {
                            let f = Finding { constraint: c.name.clone(), action: c.action, msg: msg.to_string() };
                            if !out.contains(&f) {
                                out.push(f);
                            }
                        }
                    }
                }
                // Gatekeeper turns evaluation errors into results (they deny under `deny`)
                Err(err) => out.push(Finding {
                    constraint: c.name.clone(),
                    action: c.action,
                    msg: format!("evaluating the template failed: {err}"),
                }),
            }
        }
        out
    }
}

fn ns_match(pattern: &str, ns: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(p), _) if p.ends_with('*') => ns.contains(p.trim_end_matches('*')),
        (Some(suffix), _) => ns.ends_with(suffix),
        (None, Some(prefix)) => ns.starts_with(prefix),
        (None, None) => ns == pattern,
    }
}

fn matches(m: &Match, review: &Value) -> bool {
    let group = review.pointer("/kind/group").and_then(Value::as_str).unwrap_or_default();
    let kind = review.pointer("/kind/kind").and_then(Value::as_str).unwrap_or_default();
    if !m.kinds.is_empty()
        && !m.kinds.iter().any(|(gs, ks)| {
            (ks.is_empty() || ks.iter().any(|k| k == "*" || k == kind)) && (gs.is_empty() || gs.iter().any(|g| g == "*" || g == group))
        })
    {
        return false;
    }
    let ns = review.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty());
    let namespaced = ns.is_some() && kind != "Namespace";
    match m.scope.as_deref() {
        Some("Cluster") if namespaced => return false,
        Some("Namespaced") if !namespaced => return false,
        _ => {}
    }
    let subject = if kind == "Namespace" { review.get("name").and_then(Value::as_str) } else { ns };
    if let (Some(list), Some(n)) = (&m.namespaces, subject)
        && !list.iter().any(|p| ns_match(p, n))
    {
        return false;
    }
    if let (Some(list), Some(n)) = (&m.excluded, subject)
        && list.iter().any(|p| ns_match(p, n))
    {
        return false;
    }
    // cluster-scoped objects other than Namespaces always pass the namespace selector
    if let (Some(sel), Some(n)) = (&m.namespace_selector, subject)
        && !sel.matches_namespace(n)
    {
        return false;
    }
    if let Some(sel) = &m.labels {
        let obj = review.get("object").filter(|o| !o.is_null()).or_else(|| review.get("oldObject")).unwrap_or(&Value::Null);
        if !sel.matches_object(obj) {
            return false;
        }
    }
    true
}
