//! npm's registry attestations: the document the registry serves for a package version
//! (`{"attestations": [{"predicateType", "bundle"}, …]}`) and the registry key that signs publish
//! attestations (`registry.npmjs.org/keys.json`, a target of the Sigstore TUF repository).

use base64::Engine;
use serde_json::Value;

use crate::core::verify::Authority;

/// The bundles in an npm attestations document, or the document itself when it is a bundle.
///
/// npm's registry served 2023 bundles (v0.1) whose chain ends with the Fulcio root. The
/// conformance rule refuses a root in a bundle's chain (a client must never anchor on it);
/// anchors come only from the trusted root, so for npm's documents the redundant root is dropped
/// rather than the attestation refused.
pub fn attestation_bundles(doc: Value) -> Vec<Value> {
    match doc.get("attestations").and_then(Value::as_array) {
        Some(list) => list.iter().map(|x| without_trailing_root(x["bundle"].clone())).collect(),
        None => vec![doc],
    }
}

/// The npm key a bundle's hint names, if valid at `t`.
pub fn registry_key(keys: &Value, hint: &str, t: Option<jiff::Timestamp>) -> Result<Authority, String> {
    let k = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["keyId"] == hint && k["keyUsage"] == "npm:attestations")
        .ok_or_else(|| format!("no npm attestation key {hint} in the registry keys"))?;
    if let Some(t) = t {
        let start = k.pointer("/publicKey/validFor/start").and_then(Value::as_str).and_then(|s| s.parse::<jiff::Timestamp>().ok());
        let end = k.pointer("/publicKey/validFor/end").and_then(Value::as_str).and_then(|s| s.parse::<jiff::Timestamp>().ok());
        if start.is_some_and(|s| t < s) || end.is_some_and(|e| t > e) {
            return Err(format!("npm key {hint} was not valid at the signing time {t}"));
        }
    }
    let raw = k.pointer("/publicKey/rawBytes").and_then(Value::as_str).ok_or("the key has no rawBytes")?;
    let spki = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|e| e.to_string())?;
    Ok(Authority::Key { name: format!("npm:{hint}"), spki_der: spki })
}

fn without_trailing_root(mut b: Value) -> Value {
    use der::Decode;
    let Some(certs) = b.pointer_mut("/verificationMaterial/x509CertificateChain/certificates").and_then(Value::as_array_mut) else {
        return b;
    };
    if certs.len() > 1
        && let Some(last) =
            certs.last().and_then(|c| c["rawBytes"].as_str()).and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
        && let Ok(c) = x509_cert::Certificate::from_der(&last)
        && c.tbs_certificate.issuer == c.tbs_certificate.subject
    {
        certs.pop();
    }
    b
}
