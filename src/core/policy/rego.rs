//! Rego attestation policies (policy-controller's contract: `data.sigstore.isCompliant` over
//! `{predicateType, predicate}`), evaluated with regorus.

use serde_json::Value;

/// A Rego engine for a policy: Rego v1 syntax, or v0 (what most policy-controller policies are
/// written in) when v1 does not parse.
pub fn compile(path: &str, rego: &str) -> Result<regorus::Engine, String> {
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
pub fn compliant(rego: &str, predicate_type: &str, predicate: &Value) -> Result<bool, String> {
    let mut e = compile("attestation.rego", rego)?;
    let input = serde_json::json!({"predicateType": predicate_type, "predicate": predicate});
    e.set_input_json(&input.to_string()).map_err(|e| e.to_string())?;
    e.eval_bool_query("data.sigstore.isCompliant".into(), false).map_err(|e| e.to_string())
}
