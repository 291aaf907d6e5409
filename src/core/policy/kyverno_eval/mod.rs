//! Kyverno `verifyImages[].attestations[].conditions`, decided offline the way Kyverno's engine
//! decides them (kyverno/kyverno `pkg/engine/internal/utils.go` `EvaluateConditions`,
//! `pkg/engine/variables`), and the go-wildcard matching Kyverno uses everywhere
//! (`imageReferences`, keyless `subject`/`issuer`, `Equals` values). Semantics and provenance:
//! `tests/fixtures/policy-formats/kyverno/SEMANTICS.md`; corpus: `tests/kyverno_eval_corpus.rs`.
//!
//! [`evaluate_conditions`], step by step as Kyverno:
//! 1. no conditions → pass (the statement is not even looked at);
//! 2. `statement.predicate` must be an object; it is merged into the context ROOT (recursive map
//!    merge; `_type`, `predicateType`, `subject` are not reachable), so `{{ builder.id }}`
//!    resolves and `{{ predicate.builder.id }}` fails with `Unknown key "predicate" in path`;
//! 3. the conditions go through Kyverno's typed round trip (`any`/`all`/`key`/`value`/`message`
//!    are `omitempty`: an empty `any` disappears and then counts as true; unknown fields are
//!    dropped, as the CRD schema prunes them), then every string in them — map keys, `key`,
//!    `operator`, `value`, `message` — is substituted: a string that is exactly `{{ expr }}`
//!    becomes the JMESPath result with its type, an embedded `{{ expr }}` is replaced by the
//!    result's string (non-strings JSON-encoded, Go style), the result is re-scanned until no
//!    `{{ }}` is left, `{{- expr }}` is shallow, `\{{` escapes and is unescaped afterwards;
//! 4. each condition's key and value are substituted once more (Kyverno's `Evaluate` does, so an
//!    escaped `\{{` in a condition is in the end substituted too), then the operator applies
//!    ([`apply_operator`]);
//! 5. blocks are ANDed (the first false block decides); inside a block `any` (absent → true) and
//!    `all` (empty → true) must both hold. The failure message is the block's false conditions'
//!    messages joined with "; " (a description of the condition where no message is set).
//!
//! Resolution is strict: any missing key (outside the places JMESPath tolerates it, see
//! [`query`]) aborts the whole evaluation with an error, which Kyverno counts as a failed
//! attestation. `{{ a || 'x' }}` is Kyverno's way to default: `'x'` when `a` is missing, null,
//! false or empty. A key that resolves to null makes every operator false (`NotEquals`
//! included).
//!
//! For policy loading: [`parse_conditions`] checks conditions once (shape, operator names,
//! JMESPath syntax and subset of every `{{ }}`), [`check_statement`] then decides a statement.
//!
//! Not reproduced (always an `Err` naming it, never a guess): `$(…)` references, the `{{ @ }}`
//! foreach variable, JMESPath functions outside [`query`]'s set, a non-ASCII character right
//! before `{{` (Kyverno's substitution never terminates there).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

mod gocompat;
mod operators;
pub mod query;

use gocompat::go_json;
pub use operators::{apply_operator, wildcard_match};
use query::JpError;

const MAX_DEPTH: usize = 128;
const MAX_ROUNDS: usize = 64;
const MAX_STRING: usize = 1 << 20;

static RE_VARIABLES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").expect("valid regex"));
static RE_VARIABLE_INIT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\{\{(\{[^{}]*\}|[^{}])*\}\}").expect("valid regex"));
static RE_REFERENCES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\$\(.[^ ]*\)|[^\\]\$\(.[^ ]*\)").expect("valid regex"));
static RE_ESC_REFERENCES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\\\$\(.[^ )]*\)").expect("valid regex"));

/// Evaluate a `conditions` list (`[{any: [...], all: [...]}]`, each condition {key, operator, value, message?}) against an attestation's in-toto statement, as Kyverno's EvaluateConditions does (predicate merged into the context root; `{{ }}` substitution in key and value; strict missing keys).
///
/// `Ok(Ok(()))`: the conditions hold. `Ok(Err(message))`: they are false; `message` is the
/// failing block's false conditions' messages joined with "; " (a description naming key,
/// operator and value for a condition without a message). `Err(error)`: evaluation error
/// (unknown key in a path, JMESPath syntax, unknown operator, unsupported construct), which
/// Kyverno counts as a failed attestation too. The error names the variable and the path inside
/// the conditions (`failed to resolve predicate.builder.id at path /0/all/0/key: JMESPath query
/// failed: Unknown key "predicate" in path`) and, for the classic SLSA mistakes — a `predicate.`
/// prefix, `builder.id` on a SLSA v1 predicate (builder at `runDetails.builder.id`) or the
/// reverse on v0.2 — a hint naming the right path.
pub fn evaluate_conditions(conditions: &Value, statement: &Value) -> Result<Result<(), String>, String> {
    evaluate_conditions_with_context(conditions, statement, &Value::Null)
}

/// [`evaluate_conditions`] over a context root that already holds Kyverno's other entries
/// (`request`, `images`, …; a JSON object, or null for none). The predicate is merged over it.
pub fn evaluate_conditions_with_context(conditions: &Value, statement: &Value, context: &Value) -> Result<Result<(), String>, String> {
    let blocks = normalize(conditions)?;
    if blocks.is_empty() {
        return Ok(Ok(()));
    }
    let Some(Value::Object(predicate)) = statement.get("predicate") else {
        return Err(format!("failed to extract predicate from statement: {}", clip(&go_json(statement))));
    };
    let mut root = match context {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err("the context must be a JSON object".into()),
    };
    merge_maps(predicate, &mut root);
    let root = Value::Object(root);
    let delete = root.pointer("/request/operation").and_then(Value::as_str) == Some("DELETE");
    let ctx = Ctx { root: &root, predicate, delete };
    let doc = Value::Array(blocks.clone());
    let substituted =
        ctx.substitute_all(&doc, "", 0).map_err(|e| format!("failed to substitute variables in attestation conditions: {e}"))?;
    for block in typed_blocks(&substituted, &blocks)? {
        let (ok, messages) = ctx.eval_block(&block)?;
        if !ok {
            return Ok(Err(messages.join("; ")));
        }
    }
    Ok(Ok(()))
}

/// One block of attestation `conditions`, checked and in Kyverno's typed form (`any`/`all`
/// lists of `{key, operator, value, message}`), as [`parse_conditions`] returns it.
#[derive(Debug, Clone)]
pub struct ConditionBlock(Value);

/// The operators Kyverno's CRD admits (`+kubebuilder:validation:Enum`, case-sensitive).
const CRD_OPERATORS: [&str; 16] = [
    "Equals",
    "NotEquals",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThanOrEquals",
    "GreaterThan",
    "LessThanOrEquals",
    "LessThan",
    "DurationGreaterThanOrEquals",
    "DurationGreaterThan",
    "DurationLessThanOrEquals",
    "DurationLessThan",
];

/// Check attestation `conditions` when a policy is loaded: the block/condition shape, the
/// operator (one of the CRD's names; a missing one fails every evaluation in Kyverno), and every
/// `{{ }}` variable in any string (JMESPath syntax, constructs outside the implemented subset,
/// `$(…)` references, `{{ @ }}`). Whether paths exist is only known per statement.
pub fn parse_conditions(conditions: &[Value]) -> Result<Vec<ConditionBlock>, String> {
    let blocks = normalize(&Value::Array(conditions.to_vec()))?;
    for (i, b) in blocks.iter().enumerate() {
        for field in ["any", "all"] {
            for (j, c) in b.get(field).and_then(Value::as_array).into_iter().flatten().enumerate() {
                let at = format!("conditions[{i}].{field}[{j}]");
                match c.get("operator").and_then(Value::as_str) {
                    None => return Err(format!("{at}.operator is missing (Kyverno fails every evaluation without one)")),
                    Some(op) if op.contains("{{") || CRD_OPERATORS.contains(&op) => {}
                    Some(op) => {
                        return Err(format!("{at}.operator {op:?} is not a Kyverno operator (one of {})", CRD_OPERATORS.join(", ")));
                    }
                }
                check_strings(c, &at)?;
            }
        }
    }
    Ok(blocks.into_iter().map(ConditionBlock).collect())
}

/// Kyverno attestation `conditions`, compiled: what an attestation check of a Kyverno policy is
/// (beside policy-controller's Rego and CUE in `policy::attestation`).
#[derive(Debug, Clone)]
pub struct Conditions {
    blocks: Vec<ConditionBlock>,
}

impl Conditions {
    pub fn new(blocks: Vec<ConditionBlock>) -> Self {
        Self { blocks }
    }

    /// Every block over the statement's predicate (merged at the context root, as Kyverno does).
    pub fn check(&self, statement: &Value) -> Result<(), String> {
        check_statement(&self.blocks, statement)
    }
}

/// Kyverno's verdict on one statement: `Ok(())` when the conditions hold; otherwise `Err` with
/// the failure message (see [`evaluate_conditions`]) or the evaluation error — Kyverno fails the
/// attestation either way.
pub fn check_statement(blocks: &[ConditionBlock], statement: &Value) -> Result<(), String> {
    let conditions = Value::Array(blocks.iter().map(|b| b.0.clone()).collect());
    match evaluate_conditions(&conditions, statement) {
        Ok(verdict) => verdict,
        Err(e) => Err(e),
    }
}

fn check_strings(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::String(s) => check_variables(s).map_err(|e| format!("{at}: {e}")),
        Value::Array(items) => items.iter().try_for_each(|x| check_strings(x, at)),
        Value::Object(m) => m.iter().try_for_each(|(k, x)| {
            check_variables(k).map_err(|e| format!("{at}: {e}"))?;
            check_strings(x, &format!("{at}.{k}"))
        }),
        _ => Ok(()),
    }
}

fn check_variables(s: &str) -> Result<(), String> {
    if let Some(m) = RE_REFERENCES.find(s) {
        return Err(format!("the $(…) reference {:?} is not supported", m.as_str()));
    }
    for m in find_vars(s) {
        let v = if RE_VARIABLE_INIT.is_match(&m) { m.as_str() } else { &m[m.chars().next().map_or(0, char::len_utf8)..] };
        let (variable, _) = braces_trimmed(v);
        if variable == "@" {
            return Err("{{ @ }} (Kyverno's foreach/target path variable) is not supported".into());
        }
        if variable.is_empty() {
            return Err(format!("the empty variable {m:?} fails every evaluation"));
        }
        query::check(&variable).map_err(|e| format!("{{{{ {variable} }}}}: {e}"))?;
    }
    Ok(())
}

/// `mergeMaps(src, dst, overwriteMaps=false)` of pkg/engine/context.
fn merge_maps(src: &Map<String, Value>, dst: &mut Map<String, Value>) {
    for (k, v) in src {
        if let Value::Object(sm) = v
            && let Some(Value::Object(dm)) = dst.get_mut(k)
        {
            merge_maps(sm, dm);
            continue;
        }
        dst.insert(k.clone(), v.clone());
    }
}

/// Kyverno's marshal of `[]AnyAllConditions`: `any`/`all` and the condition fields are
/// `omitempty`, unknown fields do not exist in the Go types.
fn normalize(conditions: &Value) -> Result<Vec<Value>, String> {
    let blocks = match conditions {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => return Err("conditions must be a list of {any, all} blocks".into()),
    };
    let mut out = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let Value::Object(obj) = b else {
            return Err(format!("conditions[{i}]: expected an object with any/all"));
        };
        let mut nb = Map::new();
        for field in ["any", "all"] {
            let list = match obj.get(field) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(list)) => list,
                Some(_) => return Err(format!("conditions[{i}].{field}: expected a list")),
            };
            if list.is_empty() {
                continue;
            }
            let mut conds = Vec::with_capacity(list.len());
            for (j, c) in list.iter().enumerate() {
                let Value::Object(co) = c else {
                    return Err(format!("conditions[{i}].{field}[{j}]: expected an object"));
                };
                let mut nc = Map::new();
                for f in ["key", "value"] {
                    if let Some(v) = co.get(f).filter(|v| !v.is_null()) {
                        nc.insert(f.to_string(), v.clone());
                    }
                }
                for f in ["operator", "message"] {
                    match co.get(f) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) => {
                            if !s.is_empty() {
                                nc.insert(f.to_string(), Value::String(s.clone()));
                            }
                        }
                        Some(_) => return Err(format!("conditions[{i}].{field}[{j}].{f}: expected a string")),
                    }
                }
                conds.push(Value::Object(nc));
            }
            nb.insert(field.to_string(), Value::Array(conds));
        }
        out.push(Value::Object(nb));
    }
    Ok(out)
}

struct Cond {
    key: Value,
    op: String,
    value: Value,
    message: String,
    orig_key: Value,
    orig_value: Value,
}

struct Block {
    any: Option<Vec<Cond>>,
    all: Vec<Cond>,
}

/// `JSONObjectToConditions` after substitution (operator and message must still be strings).
fn typed_blocks(substituted: &Value, orig: &[Value]) -> Result<Vec<Block>, String> {
    let list = substituted.as_array().ok_or_else(|| "substituted conditions are not a list".to_string())?;
    let mut out = Vec::with_capacity(list.len());
    for (i, b) in list.iter().enumerate() {
        let mut lists: [Option<Vec<Cond>>; 2] = [None, None];
        for (slot, field) in ["any", "all"].into_iter().enumerate() {
            let Some(Value::Array(items)) = b.get(field) else { continue };
            let origs = orig.get(i).and_then(|o| o.get(field)).and_then(Value::as_array);
            let mut conds = Vec::with_capacity(items.len());
            for (j, c) in items.iter().enumerate() {
                let text = |f: &str| -> Result<String, String> {
                    match c.get(f) {
                        None | Some(Value::Null) => Ok(String::new()),
                        Some(Value::String(s)) => Ok(s.clone()),
                        Some(other) => Err(format!(
                            "conditions[{i}].{field}[{j}].{f} is {} after variable substitution, not a string",
                            clip(&go_json(other))
                        )),
                    }
                };
                let oc = origs.and_then(|o| o.get(j));
                let field_of = |v: Option<&Value>, f: &str| v.and_then(|x| x.get(f)).cloned().unwrap_or(Value::Null);
                conds.push(Cond {
                    key: field_of(Some(c), "key"),
                    op: text("operator")?,
                    value: field_of(Some(c), "value"),
                    message: text("message")?,
                    orig_key: field_of(oc, "key"),
                    orig_value: field_of(oc, "value"),
                });
            }
            lists[slot] = Some(conds);
        }
        let [any, all] = lists;
        out.push(Block { any, all: all.unwrap_or_default() });
    }
    Ok(out)
}

struct Ctx<'a> {
    root: &'a Value,
    predicate: &'a Map<String, Value>,
    delete: bool,
}

impl Ctx<'_> {
    fn eval_block(&self, b: &Block) -> Result<(bool, Vec<String>), String> {
        let mut false_messages = Vec::new();
        let mut any_ok = true;
        if let Some(any) = &b.any {
            any_ok = false;
            for c in any {
                let (ok, msg) = self.eval_cond(c)?;
                if ok {
                    any_ok = true;
                    break;
                }
                false_messages.push(msg);
            }
        }
        let mut all_ok = true;
        for c in &b.all {
            let (ok, msg) = self.eval_cond(c)?;
            if !ok {
                all_ok = false;
                false_messages.push(msg);
                break;
            }
        }
        Ok((any_ok && all_ok, false_messages))
    }

    fn eval_cond(&self, c: &Cond) -> Result<(bool, String), String> {
        let key = self.substitute_all(&c.key, "", 0).map_err(|e| format!("failed to substitute variables in condition key: {e}"))?;
        let value = self.substitute_all(&c.value, "", 0).map_err(|e| format!("failed to substitute variables in condition value: {e}"))?;
        let ok = apply_operator(&key, &c.op, &value)?;
        let message = if c.message.is_empty() { describe(c, &key, &value) } else { c.message.clone() };
        Ok((ok, message))
    }

    /// `jsonUtils.NewTraversal(…, substituteVariablesIfAny)`: every string leaf and map key.
    fn substitute_all(&self, v: &Value, path: &str, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("conditions nested deeper than {MAX_DEPTH} levels at path {path}"));
        }
        Ok(match v {
            Value::String(s) => self.substitute_string(s, path)?,
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, x) in items.iter().enumerate() {
                    out.push(self.substitute_all(x, &format!("{path}/{i}"), depth + 1)?);
                }
                Value::Array(out)
            }
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let key = match self.substitute_string(k, path)? {
                        Value::String(s) => s,
                        Value::Null => k.clone(),
                        _ => return Err(format!("expected string after substituting variables in key \"{k}\"")),
                    };
                    let child = format!("{path}/{}", k.replace('/', "\\/"));
                    out.insert(key, self.substitute_all(x, &child, depth + 1)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// `substituteReferencesIfAny` + `substituteVariablesIfAny` for one string.
    fn substitute_string(&self, s: &str, path: &str) -> Result<Value, String> {
        if let Some(m) = RE_REFERENCES.find(s) {
            return Err(format!(
                "unsupported: the $(…) reference {:?} at path {path} (Kyverno resolves it against the policy document)",
                m.as_str()
            ));
        }
        let mut value = RE_ESC_REFERENCES.replace_all(s, |c: &regex::Captures| c[0][1..].to_string()).into_owned();
        let mut vars = find_vars(&value);
        let mut rounds = 0;
        while !vars.is_empty() {
            rounds += 1;
            if rounds > MAX_ROUNDS || value.len() > MAX_STRING {
                return Err(format!("variable substitution at path {path} does not terminate (Kyverno would loop)"));
            }
            let original = value.clone();
            let mut shallow = false;
            for m in &vars {
                let (prefix, v) = if RE_VARIABLE_INIT.is_match(m) {
                    ("", m.as_str())
                } else {
                    match m.chars().next() {
                        Some(c) if c.is_ascii() => (&m[..1], &m[1..]),
                        _ => {
                            return Err(format!(
                                "variable {m:?} at path {path}: a non-ASCII character right before \"{{{{\" makes \
                                 Kyverno's substitution loop forever (it re-encodes one byte of it); not evaluated"
                            ));
                        }
                    }
                };
                let (variable, is_shallow) = braces_trimmed(v);
                shallow = is_shallow;
                if variable == "@" {
                    return Err(format!("unsupported: {{{{ @ }}}} at path {path} (Kyverno's foreach/target path variable)"));
                }
                let variable = if self.delete { variable.replace("request.object", "request.oldObject") } else { variable };
                let sub = self.query(&variable, path)?;
                if original == v {
                    return Ok(sub);
                }
                let text = match sub {
                    Value::String(t) if shallow => t.replace("{{", "\\{{"),
                    Value::String(t) => t,
                    Value::Null => "null".to_string(),
                    other if shallow => {
                        return Err(format!(
                            "shallow substitution of {variable} at path {path} yields the non-string {} (Kyverno panics)",
                            clip(&go_json(&other))
                        ));
                    }
                    other => go_json(&other),
                };
                value = value.replacen(&format!("{prefix}{v}"), &format!("{prefix}{text}"), 1);
            }
            vars = if shallow { Vec::new() } else { find_vars(&value) };
        }
        Ok(Value::String(value.replace("\\{{", "{{")))
    }

    /// `ctx.Query` through `DefaultVariableResolver`, with Kyverno's error wording.
    fn query(&self, variable: &str, path: &str) -> Result<Value, String> {
        let q = variable.trim();
        let fail = |why: String| format!("failed to resolve {variable} at path {path}: {why}");
        if q.is_empty() {
            return Err(fail("invalid query (nil)".into()));
        }
        match query::search(q, self.root) {
            Ok(v) => Ok(v),
            Err(e @ JpError::Syntax(_)) => Err(fail(format!("incorrect query {q}: {e}"))),
            Err(JpError::NotFound(k)) => Err(fail(format!("JMESPath query failed: Unknown key \"{k}\" in path{}", self.hint(q, &k)))),
            Err(e @ JpError::Eval(_)) => Err(fail(format!("JMESPath query failed: {e}"))),
            Err(e @ JpError::Unsupported(_)) => Err(fail(e.to_string())),
        }
    }

    /// Point at the right path for the classic mistakes: the `predicate.` prefix, and the SLSA
    /// v0.2 / v1 builder id locations (`builder.id` vs `runDetails.builder.id`).
    fn hint(&self, query: &str, missing: &str) -> String {
        let p = self.predicate;
        let has_path = |path: &[&str]| {
            let mut cur = p;
            for (i, k) in path.iter().enumerate() {
                match cur.get(*k) {
                    Some(Value::Object(m)) => cur = m,
                    Some(_) if i + 1 == path.len() => return true,
                    _ => return false,
                }
            }
            true
        };
        let v1 = !p.contains_key("builder") && has_path(&["runDetails", "builder"]);
        let v02 = !p.contains_key("runDetails") && p.contains_key("builder");
        let fix = |rest: &str| -> String {
            if v1 && (rest == "builder" || rest.starts_with("builder.") || rest.starts_with("builder[")) {
                format!("runDetails.{rest}")
            } else if v02 && rest.starts_with("runDetails.builder") {
                rest["runDetails.".len()..].to_string()
            } else {
                rest.to_string()
            }
        };
        if missing == "predicate" && (query == "predicate" || query.starts_with("predicate.") || query.starts_with("predicate[")) {
            let rest = query["predicate".len()..].trim_start_matches('.');
            let suggestion = if rest.is_empty() { "@".to_string() } else { fix(rest) };
            return format!(
                " (hint: Kyverno merges the attestation's predicate into the context root, so a path starts inside \
                 the predicate, without \"predicate.\": write {} instead of {})",
                braces(&suggestion),
                braces(query)
            );
        }
        if missing == "builder" && v1 && query.starts_with("builder") {
            return format!(
                " (hint: this is a SLSA v1 predicate; its builder id is at {}, not at {} as in SLSA v0.2)",
                braces("runDetails.builder.id"),
                braces("builder.id")
            );
        }
        if missing == "runDetails" && v02 && query.starts_with("runDetails") {
            return format!(
                " (hint: this is a SLSA v0.2 predicate; its builder id is at {}, not at {} as in SLSA v1)",
                braces("builder.id"),
                braces("runDetails.builder.id")
            );
        }
        let mut keys: Vec<&str> = p.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let more = if keys.len() > 20 { ", …" } else { "" };
        keys.truncate(20);
        format!(" (the predicate's top-level keys: {}{more})", keys.join(", "))
    }
}

fn find_vars(s: &str) -> Vec<String> {
    RE_VARIABLES.find_iter(s).map(|m| m.as_str().to_string()).collect()
}

/// `replaceBracesAndTrimSpaces`: drop every `{{`/`}}`, trim; a leading `-` means shallow.
fn braces_trimmed(v: &str) -> (String, bool) {
    let t = v.replace("{{", "").replace("}}", "");
    let t = t.trim();
    match t.strip_prefix('-') {
        Some(rest) => (rest.trim().to_string(), true),
        None => (t.to_string(), false),
    }
}

fn braces(s: &str) -> String {
    format!("\"{{{{ {s} }}}}\"")
}

fn clip(s: &str) -> String {
    if s.len() <= 200 {
        return s.to_string();
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn describe(c: &Cond, key: &Value, value: &Value) -> String {
    let side = |orig: &Value, now: &Value| {
        let o = clip(&go_json(orig));
        if orig == now { o } else { format!("{o} (= {})", clip(&go_json(now))) }
    };
    format!("condition {} {} {} is false", side(&c.orig_key, key), c.op, side(&c.orig_value, value))
}
