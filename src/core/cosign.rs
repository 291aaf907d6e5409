//! cosign's OCI storage forms, adapted to Sigstore bundles so that one verifier handles every
//! signed entity (pure: bytes in, bundles out).
//!
//! * `sha256-<hex>.sig` layers: a simple-signing payload signed with ECDSA; the signature,
//!   certificate, Rekor "bundle" (SET + entry) and RFC 3161 timestamp ride in annotations. They
//!   become a v0.1-style bundle with a message signature over the payload.
//! * `sha256-<hex>.att` layers: a DSSE envelope over an in-toto statement, with the same
//!   annotations (and `predicateType`). They become a bundle with that envelope.
//! * Sigstore bundles attached as OCI referrers need no adapting.
//!
//! After cryptographic verification, the caller checks what the signature is *about*:
//! [`check_simple_signing`] (the payload names the image digest) and the in-toto subject (the
//! engine, through `Subject::Sha256`).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::core::verify::{Check, VerifyError, VerifyResult};

pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const ANN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANN_CERT: &str = "dev.sigstore.cosign/certificate";
pub const ANN_BUNDLE: &str = "dev.sigstore.cosign/bundle";
pub const ANN_RFC3161: &str = "dev.sigstore.cosign/rfc3161timestamp";
pub const ANN_PREDICATE_TYPE: &str = "predicateType";

/// A layer of a cosign `.sig`/`.att` manifest: its media type, content and annotations.
#[derive(Debug, Clone)]
pub struct CosignLayer {
    pub media_type: String,
    pub content: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

fn err(detail: impl Into<String>) -> VerifyError {
    VerifyError::new(Check::Parse, detail)
}

/// PEM → DER of the first CERTIFICATE block.
fn pem_cert_der(pem: &str) -> VerifyResult<Vec<u8>> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let s = pem.find(begin).ok_or_else(|| err("certificate annotation holds no PEM certificate"))? + begin.len();
    let e = pem[s..].find(end).ok_or_else(|| err("certificate annotation: unterminated PEM"))? + s;
    let b64: String = pem[s..e].chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(b64).map_err(|e| err(format!("certificate annotation: {e}")))
}

/// The verification material and tlog entry from cosign annotations, in bundle JSON form.
fn material(ann: &BTreeMap<String, String>) -> VerifyResult<Value> {
    let mut vm = match ann.get(ANN_CERT) {
        Some(pem) if !pem.trim().is_empty() => {
            json!({"x509CertificateChain": {"certificates": [{"rawBytes": B64.encode(pem_cert_der(pem)?)}]}})
        }
        _ => json!({"publicKey": {"hint": ""}}),
    };
    let mut entries = vec![];
    if let Some(b) = ann.get(ANN_BUNDLE) {
        let rb: Value = serde_json::from_str(b).map_err(|e| err(format!("{ANN_BUNDLE} annotation is not JSON: {e}")))?;
        let p = &rb["Payload"];
        let body_b64 = p["body"].as_str().ok_or_else(|| err(format!("{ANN_BUNDLE}: Payload.body missing")))?;
        let body: Value = serde_json::from_slice(&B64.decode(body_b64).map_err(|e| err(format!("{ANN_BUNDLE}: body: {e}")))?)
            .map_err(|e| err(format!("{ANN_BUNDLE}: body is not JSON: {e}")))?;
        let log_id = hex::decode(p["logID"].as_str().unwrap_or_default()).map_err(|e| err(format!("{ANN_BUNDLE}: logID: {e}")))?;
        entries.push(json!({
            "logIndex": p["logIndex"].as_i64().ok_or_else(|| err(format!("{ANN_BUNDLE}: logIndex missing")))?.to_string(),
            "logId": {"keyId": B64.encode(log_id)},
            "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
            "integratedTime": p["integratedTime"].as_i64().ok_or_else(|| err(format!("{ANN_BUNDLE}: integratedTime missing")))?.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": rb["SignedEntryTimestamp"]},
            "canonicalizedBody": body_b64,
        }));
    }
    vm["tlogEntries"] = json!(entries);
    if let Some(t) = ann.get(ANN_RFC3161) {
        let tv: Value = serde_json::from_str(t).map_err(|e| err(format!("{ANN_RFC3161} annotation is not JSON: {e}")))?;
        if let Some(ts) = tv["SignedRFC3161Timestamp"].as_str() {
            vm["timestampVerificationData"] = json!({"rfc3161Timestamps": [{"signedTimestamp": ts}]});
        }
    }
    Ok(vm)
}

fn bundle_json(vm: Value, content_key: &str, content: Value) -> Vec<u8> {
    let mut b = json!({"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1", "verificationMaterial": vm});
    b[content_key] = content;
    serde_json::to_vec(&b).expect("json")
}

/// A `.sig` simple-signing layer as a bundle (message signature over the payload).
pub fn bundle_from_sig_layer(l: &CosignLayer) -> VerifyResult<Vec<u8>> {
    if l.media_type != SIMPLESIGNING {
        return Err(VerifyError::new(Check::Unsupported, format!("signature layer media type {:?} is not {SIMPLESIGNING}", l.media_type)));
    }
    let sig = l
        .annotations
        .get(ANN_SIGNATURE)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| err(format!("signature layer has no {ANN_SIGNATURE} annotation")))?;
    B64.decode(sig).map_err(|e| err(format!("{ANN_SIGNATURE}: {e}")))?;
    let vm = material(&l.annotations)?;
    let digest = Sha256::digest(&l.content);
    Ok(bundle_json(
        vm,
        "messageSignature",
        json!({"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(digest)}, "signature": sig}),
    ))
}

/// A `.att` DSSE layer as a bundle (DSSE envelope).
pub fn bundle_from_att_layer(l: &CosignLayer) -> VerifyResult<Vec<u8>> {
    if l.media_type != DSSE_ENVELOPE {
        return Err(VerifyError::new(
            Check::Unsupported,
            format!("attestation layer media type {:?} is not {DSSE_ENVELOPE}", l.media_type),
        ));
    }
    let env: Value = serde_json::from_slice(&l.content).map_err(|e| err(format!("DSSE envelope is not JSON: {e}")))?;
    let sigs = env["signatures"].as_array().ok_or_else(|| err("DSSE envelope has no signatures"))?;
    if sigs.len() != 1 {
        return Err(VerifyError::new(
            Check::Unsupported,
            format!("DSSE envelope has {} signatures; one is supported per layer", sigs.len()),
        ));
    }
    // cosign 1.x – 2.1 logged attestations as Rekor intoto 0.0.1, which only our own verifier
    // reads: keep the exact layer bytes with the certificate and the Rekor bundle
    if let Some(rb) = l.annotations.get(ANN_BUNDLE)
        && let Ok(rbv) = serde_json::from_str::<Value>(rb)
        && let Some(body) = rbv.pointer("/Payload/body").and_then(Value::as_str).and_then(|b| B64.decode(b).ok())
        && let Ok(bv) = serde_json::from_slice::<Value>(&body)
        && bv["kind"] == "intoto"
        && bv["apiVersion"] == "0.0.1"
    {
        let cert = l
            .annotations
            .get(ANN_CERT)
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| err("an intoto 0.0.1 attestation without a certificate"))?;
        // the chain comes from the trusted root's certificate authorities, not from annotations
        return Ok(crate::core::legacy_att::wrap(&l.content, &pem_cert_der(cert)?, &[], &rbv));
    }
    let vm = material(&l.annotations)?;
    let content = json!({"payload": env["payload"], "payloadType": env["payloadType"],
        "signatures": [{"sig": sigs[0]["sig"], "keyid": sigs[0]["keyid"].as_str().unwrap_or("")}]});
    Ok(bundle_json(vm, "dsseEnvelope", content))
}

/// The simple-signing payload must name the image being verified.
pub fn check_simple_signing(payload: &[u8], image_digest: &str) -> VerifyResult<()> {
    let p: Value = serde_json::from_slice(payload).map_err(|e| err(format!("simple-signing payload is not JSON: {e}")))?;
    let ty = p["critical"]["type"].as_str().unwrap_or_default();
    if ty != "cosign container image signature" && ty != "atomic container signature" {
        return Err(VerifyError::new(Check::Unsupported, format!("simple-signing payload type {ty:?} is not a container image signature")));
    }
    let d = p["critical"]["image"]["docker-manifest-digest"].as_str().unwrap_or_default();
    if d != image_digest {
        return Err(VerifyError::new(Check::Artifact, format!("the signature is for image {d:?}, not {image_digest}")));
    }
    Ok(())
}

/// The in-toto statement a bundle's DSSE envelope carries (JSON only: call it for bundles that
/// verified, to read what they say).
pub fn statement_of_bundle(bundle_json: &[u8]) -> Option<Value> {
    if crate::core::legacy_att::is_wrapped(bundle_json) {
        return crate::core::legacy_att::statement(bundle_json);
    }
    let b: Value = serde_json::from_slice(bundle_json).ok()?;
    let env = &b["dsseEnvelope"];
    if env["payloadType"] != "application/vnd.in-toto+json" {
        return None;
    }
    let payload = B64.decode(env["payload"].as_str()?).ok()?;
    serde_json::from_slice(&payload).ok()
}

/// cosign's `--type` names for predicate types.
pub fn predicate_type_for(t: &str) -> String {
    match t {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2".into(),
        "slsaprovenance1" => "https://slsa.dev/provenance/v1".into(),
        "spdx" | "spdxjson" => "https://spdx.dev/Document".into(),
        "cyclonedx" => "https://cyclonedx.org/bom".into(),
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1".into(),
        "link" => "https://in-toto.io/Link/v1".into(),
        "custom" => "https://cosign.sigstore.dev/attestation/v1".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_signing_must_name_the_image() {
        let p = br#"{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"sha256:aa"},"type":"cosign container image signature"},"optional":null}"#;
        check_simple_signing(p, "sha256:aa").unwrap();
        assert_eq!(check_simple_signing(p, "sha256:bb").unwrap_err().check, Check::Artifact);
        assert_eq!(check_simple_signing(b"[]", "sha256:aa").unwrap_err().check, Check::Unsupported);
        assert_eq!(check_simple_signing(b"{", "sha256:aa").unwrap_err().check, Check::Parse);
    }

    #[test]
    fn layers_without_signatures_or_with_wrong_types_are_refused() {
        let l = CosignLayer { media_type: SIMPLESIGNING.into(), content: b"{}".to_vec(), annotations: BTreeMap::new() };
        assert_eq!(bundle_from_sig_layer(&l).unwrap_err().check, Check::Parse);
        let l = CosignLayer { media_type: "text/plain".into(), content: vec![], annotations: BTreeMap::new() };
        assert_eq!(bundle_from_sig_layer(&l).unwrap_err().check, Check::Unsupported);
        assert_eq!(bundle_from_att_layer(&l).unwrap_err().check, Check::Unsupported);
        assert_eq!(predicate_type_for("spdxjson"), "https://spdx.dev/Document");
    }
}
