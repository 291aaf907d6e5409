//! Rego attestation policies (policy-controller's contract: `data.sigstore.isCompliant` over
//! `{predicateType, predicate}`), evaluated with regorus: compiled once when the policy loads,
//! and every evaluation bounded in time (a policy that loops, or a predicate built to make it
//! slow, costs at most [`EVAL_LIMIT`] and fails closed).

use std::num::NonZeroU32;
use std::time::Duration;

use serde_json::Value;

/// Longest a single Rego evaluation may run.
pub const EVAL_LIMIT: Duration = Duration::from_millis(200);

/// A compiled attestation policy.
#[derive(Clone)]
pub struct Rego {
    pub source: String,
    engine: regorus::Engine,
}

impl std::fmt::Debug for Rego {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rego").field("bytes", &self.source.len()).finish()
    }
}

/// A Rego engine for a policy: Rego v1 syntax, or v0 (what most policy-controller policies are
/// written in) when v1 does not parse.
pub fn compile(path: &str, rego: &str) -> Result<Rego, String> {
    before_parse(rego)?;
    let mut e = regorus::Engine::new();
    if e.add_policy(path.into(), rego.into()).is_err() {
        e = regorus::Engine::new();
        e.set_rego_v0(true);
        e.add_policy(path.into(), rego.into()).map_err(|e| e.to_string())?;
    }
    e.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: EVAL_LIMIT,
        check_interval: NonZeroU32::new(256).expect("non-zero"),
    });
    Ok(Rego { source: rego.to_string(), engine: e })
}

impl Rego {
    /// policy-controller's Rego contract: `data.sigstore.isCompliant` over the attestation.
    pub fn compliant(&self, predicate_type: &str, predicate: &Value) -> Result<bool, String> {
        self.compliant_statement(predicate_type, &serde_json::json!({"predicateType": predicate_type, "predicate": predicate}))
    }

    /// The same over a whole in-toto statement (`input.predicateType`, `input.predicate`,
    /// `input.subject`), as policy-controller passes it.
    pub fn compliant_statement(&self, predicate_type: &str, statement: &Value) -> Result<bool, String> {
        let mut e = self.engine.clone();
        let input = match statement {
            Value::Object(_) => statement.clone(),
            _ => serde_json::json!({"predicateType": predicate_type}),
        };
        e.set_input_json(&input.to_string()).map_err(|e| e.to_string())?;
        e.eval_bool_query("data.sigstore.isCompliant".into(), false).map_err(|e| e.to_string())
    }
}

/// Deepest nesting of `(`, `[` and `{` accepted. regorus's parser backtracks exponentially in
/// the nesting depth (each level doubles the work: ~1 s at 16 `[` in a debug build, hours at
/// 40); policies people write stay under 8.
pub const MAX_NESTING: usize = 12;

/// What is checked before regorus sees a text: no builtin reaching the network, no nesting
/// deeper than [`MAX_NESTING`].
pub fn before_parse(rego: &str) -> Result<(), String> {
    offline(rego)?;
    nesting(rego)
}

/// Nesting depth of brackets outside strings and comments (hand-written: a scan, not a parser —
/// it only has to bound regorus's work, and refuses nothing a Rego parser would accept at a
/// depth people write).
fn nesting(rego: &str) -> Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = rego.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => {
                            line += usize::from(c == '\n');
                            break;
                        }
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if c == '`' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "line {line}: brackets nested more than {MAX_NESTING} deep (refused: Rego parsers take exponential time on them)"
                    ));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Builtins that reach the network: a policy calling them could only fail at admission
/// (offline), so it is refused when it loads. A textual check (a mention in a comment is
/// refused too — the message says which call).
pub fn offline(rego: &str) -> Result<(), String> {
    for b in ["http.send", "net.lookup_ip_addr", "opa.runtime"] {
        if rego.lines().any(|l| l.split('#').next().unwrap_or_default().contains(b)) {
            return Err(format!("{b} reaches the network (or the host) at admission time; trustmirror decides offline, from its store"));
        }
    }
    Ok(())
}

/// Compile and evaluate in one go (tests, one-off checks).
pub fn compliant(rego: &str, predicate_type: &str, predicate: &Value) -> Result<bool, String> {
    compile("attestation.rego", rego)?.compliant(predicate_type, predicate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_that_never_ends_is_cut_off_and_fails_closed() {
        let r = compile(
            "loop.rego",
            "package sigstore\nimport rego.v1\nisCompliant if { count([[x, y] | some x in numbers.range(1, 5000); some y in numbers.range(1, 5000)]) > 0 }\n",
        )
        .unwrap();
        let t0 = std::time::Instant::now();
        let res = r.compliant("x", &serde_json::json!({}));
        assert!(res.is_err(), "{res:?}");
        // the limit is checked between evaluation steps (a single builtin call runs to its end)
        assert!(t0.elapsed() < EVAL_LIMIT * 5, "cut off after {:?}", t0.elapsed());
    }
}
