//! SLSA Verification Summary Attestations (VSA v1): what the deploy gate signs for an image it
//! passed, and what admission accepts instead of re-evaluating, from a verifier it trusts.
//!
//! A VSA is an in-toto v1 statement (`predicateType: https://slsa.dev/verification_summary/v1`)
//! about the image digest, in a DSSE envelope signed with the gate's key, carried as a Sigstore
//! bundle v0.3 (`verificationMaterial.publicKey.hint` = the key's id; no transparency-log entry:
//! the gate runs where no log may be reachable, and the verifier key is what a policy names).
//!
//! Verification ([`verify`]) accepts a VSA only when the DSSE signature verifies under one of the
//! policy's verifier keys, the statement is about this digest, its result is `PASSED`, and its
//! `timeVerified` is neither in the future (beyond a small skew) nor older than the policy's
//! `maxAge`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

pub const PREDICATE_VSA: &str = "https://slsa.dev/verification_summary/v1";
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Clock skew tolerated for `timeVerified`.
const SKEW: SignedDuration = SignedDuration::from_mins(5);

/// What a VSA says about the image.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `registry/repo` (the statement subject's name).
    pub repository: String,
    /// `sha256:…`.
    pub digest: String,
    pub verifier_id: String,
    pub time_verified: Timestamp,
    /// Where the policy lives (file path or URL) and the SHA-256 of its text.
    pub policy_uri: String,
    pub policy_sha256: String,
    /// The evidence the decision rested on: (uri, sha256 of the bundle).
    pub inputs: Vec<(String, String)>,
    /// `SLSA_BUILD_LEVEL_n`, … (what the policy required and the evidence met).
    pub levels: Vec<String>,
}

/// The in-toto statement of a passing summary.
pub fn statement(s: &Summary) -> Value {
    let hex = s.digest.strip_prefix("sha256:").unwrap_or(&s.digest);
    json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": s.repository, "digest": {"sha256": hex}}],
        "predicateType": PREDICATE_VSA,
        "predicate": {
            "verifier": {"id": s.verifier_id},
            "timeVerified": s.time_verified.to_string(),
            "resourceUri": format!("oci://{}@{}", s.repository, s.digest),
            "policy": {"uri": s.policy_uri, "digest": {"sha256": s.policy_sha256}},
            "inputAttestations": s.inputs.iter().map(|(u, d)| json!({"uri": u, "digest": {"sha256": d}})).collect::<Vec<_>>(),
            "verificationResult": "PASSED",
            "verifiedLevels": s.levels,
            "slsaVersion": "1.0",
        }
    })
}

/// A signing key for summaries: PKCS#8 (ECDSA P-256 or Ed25519).
pub type VsaSigner = crate::core::dsse::Signer;

/// The statement signed in a DSSE envelope, as a Sigstore bundle v0.3 (key hint, no log entry).
pub fn sign(signer: &VsaSigner, statement: &Value) -> Result<Value, String> {
    let env = signer.envelope(INTOTO_PAYLOAD_TYPE, &serde_json::to_vec(statement).expect("json"))?;
    Ok(json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": signer.keyid}, "tlogEntries": []},
        "dsseEnvelope": env,
    }))
}

/// What admission learned from an accepted VSA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The policy's name for the verifier key that signed it.
    pub verifier: String,
    pub verifier_id: String,
    pub time_verified: Timestamp,
    pub policy_uri: String,
}

/// Is `bundle` a VSA for `digest`, signed by one of `verifiers` (name, SPKI DER), within
/// `max_age` of `now`? `Ok(None)`: not a VSA at all (another kind of item).
pub fn verify(
    bundle: &[u8],
    verifiers: &[(String, Vec<u8>)],
    digest: &str,
    now: Timestamp,
    max_age: SignedDuration,
) -> Result<Option<Accepted>, String> {
    let Ok(b) = serde_json::from_slice::<Value>(bundle) else { return Ok(None) };
    let Some(env) = b.get("dsseEnvelope") else { return Ok(None) };
    let payload_type = env.get("payloadType").and_then(Value::as_str).unwrap_or_default();
    let Some(payload) = env.get("payload").and_then(Value::as_str).and_then(|p| B64.decode(p).ok()) else { return Ok(None) };
    let Ok(st) = serde_json::from_slice::<Value>(&payload) else { return Ok(None) };
    if st.get("predicateType").and_then(Value::as_str) != Some(PREDICATE_VSA) {
        return Ok(None);
    }
    // a VSA: from here on every failure is a reason
    if payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(format!("payloadType {payload_type:?} is not {INTOTO_PAYLOAD_TYPE}"));
    }
    let name = match crate::core::dsse::verify(env, verifiers) {
        Ok((name, _, _)) => name,
        Err(_) => return Err("not signed by any verifier the policy names".into()),
    };
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let about = st
        .get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| s.pointer("/digest/sha256").and_then(Value::as_str) == Some(hex));
    if !about {
        return Err(format!("signed by {name}, but about another image (no subject is {digest})"));
    }
    let p = &st["predicate"];
    if p.get("verificationResult").and_then(Value::as_str) != Some("PASSED") {
        return Err(format!("signed by {name}: verificationResult is {}", p.get("verificationResult").unwrap_or(&Value::Null)));
    }
    let t: Timestamp = p
        .get("timeVerified")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("signed by {name}: no valid timeVerified"))?;
    if t > now + SKEW {
        return Err(format!("signed by {name}: timeVerified {t} is in the future"));
    }
    if now.duration_since(t) > max_age {
        return Err(format!("signed by {name}: verified at {t}, older than the policy's maxAge of {max_age:#}"));
    }
    Ok(Some(Accepted {
        verifier: name.clone(),
        verifier_id: p.pointer("/verifier/id").and_then(Value::as_str).unwrap_or_default().to_string(),
        time_verified: t,
        policy_uri: p.pointer("/policy/uri").and_then(Value::as_str).unwrap_or_default().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> VsaSigner {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        VsaSigner::from_pkcs8_der(der.as_ref()).unwrap()
    }

    fn summary(at: Timestamp) -> Summary {
        Summary {
            repository: "registry.internal/app".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            verifier_id: "https://trustmirror.dev/gate".into(),
            time_verified: at,
            policy_uri: "policy.yaml".into(),
            policy_sha256: "00".repeat(32),
            inputs: vec![("oci://registry.internal/app@sha256:..".into(), "cd".repeat(32))],
            levels: vec!["SLSA_BUILD_LEVEL_3".into()],
        }
    }

    #[test]
    fn a_summary_verifies_only_for_its_digest_verifier_and_age() {
        let s = signer();
        let now: Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        let sum = summary(now);
        let b = serde_json::to_vec(&sign(&s, &statement(&sum)).unwrap()).unwrap();
        let v = vec![("gate".to_string(), s.spki_der.clone())];
        let day = SignedDuration::from_hours(24);
        let ok = verify(&b, &v, &sum.digest, now + SignedDuration::from_hours(1), day).unwrap().unwrap();
        assert_eq!((ok.verifier.as_str(), ok.time_verified), ("gate", now));
        // another image
        let e = verify(&b, &v, &format!("sha256:{}", "ef".repeat(32)), now, day).unwrap_err();
        assert!(e.contains("another image"), "{e}");
        // another verifier
        let e = verify(&b, &[("other".into(), signer().spki_der)], &sum.digest, now, day).unwrap_err();
        assert!(e.contains("not signed by any verifier"), "{e}");
        // too old, and from the future
        let e = verify(&b, &v, &sum.digest, now + SignedDuration::from_hours(25), day).unwrap_err();
        assert!(e.contains("older than"), "{e}");
        let e = verify(&b, &v, &sum.digest, now - SignedDuration::from_hours(1), day).unwrap_err();
        assert!(e.contains("future"), "{e}");
        // a flipped byte in the payload
        let mut bad: Value = serde_json::from_slice(&b).unwrap();
        let mut st = statement(&sum);
        st["predicate"]["verificationResult"] = json!("PASSED ");
        bad["dsseEnvelope"]["payload"] = json!(B64.encode(serde_json::to_vec(&st).unwrap()));
        let e = verify(&serde_json::to_vec(&bad).unwrap(), &v, &sum.digest, now, day).unwrap_err();
        assert!(e.contains("not signed"), "{e}");
        // not a VSA: another item kind, no opinion
        assert_eq!(verify(br#"{"messageSignature":{}}"#, &v, &sum.digest, now, day).unwrap(), None);
    }
}
