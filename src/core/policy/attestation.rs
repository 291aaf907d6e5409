//! What a required attestation must satisfy beyond being present and signed: the check its
//! format writes (policy-controller's Rego or CUE, Kyverno's conditions), and who may sign it.
//! Every check reads the verified in-toto statement (`_type`, `subject`, `predicateType`,
//! `predicate`), as the original controllers do.

use serde_json::Value;

use crate::core::verify::Authority;

/// A compiled attestation check.
#[derive(Debug, Clone)]
pub enum Check {
    /// policy-controller `type: rego`: `data.sigstore.isCompliant` over the statement.
    Rego(super::rego::Rego),
    /// policy-controller `type: cue`: the statement unified with the policy, validated.
    Cue(super::cue::Cue),
    /// Kyverno `conditions` (`all`/`any` blocks over JMESPath `{{ }}` variables).
    Kyverno(super::kyverno_eval::Conditions),
}

impl Check {
    /// `Ok` when the statement satisfies the check; otherwise why not (shown in the denial).
    pub fn check(&self, statement: &Value) -> Result<(), String> {
        match self {
            Check::Rego(r) => {
                let pt = statement["predicateType"].as_str().unwrap_or_default();
                match r.compliant_statement(pt, statement) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("rego: isCompliant is false".into()),
                    Err(e) => Err(format!("rego: {e}")),
                }
            }
            Check::Cue(c) => c.validate(statement).map_err(|errs| format!("cue: {}", errs.join("; "))),
            Check::Kyverno(k) => k.check(statement),
        }
    }

    pub fn format(&self) -> &'static str {
        match self {
            Check::Rego(_) => "rego",
            Check::Cue(_) => "cue",
            Check::Kyverno(_) => "conditions",
        }
    }
}

/// Who may sign a required attestation.
#[derive(Debug, Clone, Default)]
pub enum Signers {
    /// Any authority of the policy (an ImagePolicy's, a ClusterImagePolicy's top-level `attestations`).
    #[default]
    Policy,
    /// That authority of the policy (a ClusterImagePolicy authority's own `attestations`).
    Authority(usize),
    /// Anyone the trust root certifies (a Kyverno attestation without `attestors`).
    Anyone,
    /// `count` of these entries must each have signed a satisfying attestation (a Kyverno
    /// attestor set of the attestation).
    Entries { entries: Vec<Authority>, count: usize },
}
