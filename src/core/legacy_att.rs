//! cosign 1.x – 2.1 attestations: an `.att` layer (a DSSE envelope) logged in Rekor as an
//! `intoto` **v0.0.1** entry. sigstore-verify 0.15 cannot parse that entry kind (it knows
//! hashedrekord, dsse and intoto 0.0.2), and has no hook for a caller's body reconstruction, so
//! these are verified here, with the same checks in the same order:
//!
//! 1. the logged body is rebuilt from the layer and the certificate exactly as Rekor
//!    canonicalized it — `{"apiVersion":"0.0.1","kind":"intoto","spec":{"content":{"hash":
//!    sha256(layer bytes), "payloadHash": sha256(payload)}, "publicKey": base64(PEM of the
//!    certificate)}}` in RFC 8785 form — and must equal the logged body byte for byte (the
//!    signature is bound to the entry only through `content.hash`; entries logged before Rekor
//!    v0.6 have no `payloadHash`, so that form is accepted too);
//! 2. the SET: the log's key (by log ID, from the trusted root, valid at the integrated time)
//!    signs RFC 8785 `{body, integratedTime, logID, logIndex}`;
//! 3. the certificate chains to a Fulcio CA of the trusted root at the integrated time, with
//!    the code-signing EKU (rustls-webpki, the anchors sigstore-verify builds: `core::fulcio`),
//!    and carries exactly one SCT, signed by a CT log of the trusted root (`core::sct`);
//! 4. the DSSE signature (PAE) verifies with the certificate's key;
//! 5. the in-toto statement names the image digest among its subjects;
//! 6. the identity (SAN, issuer, Fulcio CI claims) is checked against the policy.
//!
//! The mirror stores such an item as a small JSON wrapper ([`wrap`]) in place of a bundle, so it
//! travels through ingest, admission and air-gap bundles like any other item and is verified
//! again wherever a bundle would be.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde_json::{Value, json};
use sigstore_types::SignatureBytes;

use super::fulcio::LeafCert;
use super::verify::error::{Check, VerifyError, VerifyResult};
use super::verify::terms::{Authority, Statement, Subject, Verified};
use super::verify::trusted::TrustedMaterial;

pub const MEDIA_TYPE: &str = "application/vnd.trustmirror.cosign-att.intoto-v0.0.1+json";

fn err(check: Check, m: impl Into<String>) -> VerifyError {
    VerifyError::new(check, m.into())
}

/// The stored form of a cosign `.att` layer logged as intoto 0.0.1: the exact layer bytes, the
/// certificate (and chain, if annotated) and the Rekor bundle annotation.
pub fn wrap(layer: &[u8], cert_der: &[u8], chain: &[Vec<u8>], rekor_bundle: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "mediaType": MEDIA_TYPE,
        "layer": B64.encode(layer),
        "certificate": B64.encode(cert_der),
        "chain": chain.iter().map(|c| B64.encode(c)).collect::<Vec<_>>(),
        "rekorBundle": rekor_bundle,
    }))
    .expect("json")
}

pub fn is_wrapped(bundle: &[u8]) -> bool {
    /// Only the media type: the rest of the document is skipped, not built.
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "mediaType", borrow)]
        media_type: Option<std::borrow::Cow<'a, str>>,
    }
    // Every bundle verification asks; most are not wrapped, and say so without a JSON parse.
    // (A media type spelled with JSON escapes misses the fast path and is refused as a bundle.)
    memchr::memmem::find(bundle, MEDIA_TYPE.as_bytes()).is_some()
        && serde_json::from_slice::<Head>(bundle).is_ok_and(|h| h.media_type.as_deref() == Some(MEDIA_TYPE))
}

fn jcs(v: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(v).expect("JSON values canonicalize")
}

/// The in-toto statement inside a wrapped layer (unverified: call after [`verify`]).
pub fn statement(bundle: &[u8]) -> Option<Value> {
    let w: Value = serde_json::from_slice(bundle).ok()?;
    let layer = B64.decode(w["layer"].as_str()?).ok()?;
    let env: Value = serde_json::from_slice(&layer).ok()?;
    serde_json::from_slice(&B64.decode(env["payload"].as_str()?).ok()?).ok()
}

/// The trusted root as JSON (the typed model is non-exhaustive; its serialization is the
/// protobuf-specs shape).
pub fn verify(tm: &TrustedMaterial, wrapped: &[u8], subject: Subject<'_>, authority: &Authority, now: Timestamp) -> VerifyResult<Verified> {
    let parse = |m: String| err(Check::Parse, m);
    let w: Value = serde_json::from_slice(wrapped).map_err(|e| parse(format!("wrapped attestation: {e}")))?;
    let b64 = |k: &str| -> VerifyResult<Vec<u8>> {
        B64.decode(w[k].as_str().ok_or_else(|| parse(format!("wrapped attestation: no {k}")))?).map_err(|e| parse(format!("{k}: {e}")))
    };
    let layer = b64("layer")?;
    let cert = b64("certificate")?;
    let rb = &w["rekorBundle"];
    let env: Value = serde_json::from_slice(&layer).map_err(|e| parse(format!("the DSSE envelope: {e}")))?;
    let payload_type = env["payloadType"].as_str().ok_or_else(|| parse("the DSSE envelope has no payloadType".into()))?;
    let payload = B64.decode(env["payload"].as_str().unwrap_or_default()).map_err(|e| parse(format!("the DSSE payload: {e}")))?;
    let sigs = env["signatures"].as_array().ok_or_else(|| parse("the DSSE envelope has no signatures".into()))?;

    // 1. the logged body is exactly this layer and this certificate
    let body_b64 = rb
        .pointer("/Payload/body")
        .and_then(Value::as_str)
        .ok_or_else(|| err(Check::TransparencyLog, "the Rekor bundle has no Payload.body"))?;
    let logged = B64.decode(body_b64).map_err(|e| err(Check::TransparencyLog, format!("Payload.body: {e}")))?;
    let pem = crate::core::pem::encode("CERTIFICATE", &cert);
    let content = |with_payload_hash: bool| {
        let mut c = json!({"hash": {"algorithm": "sha256", "value": crate::core::digest::sha256_hex(&layer)}});
        if with_payload_hash {
            c["payloadHash"] = json!({"algorithm": "sha256", "value": crate::core::digest::sha256_hex(&payload)});
        }
        jcs(&json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {"content": c, "publicKey": B64.encode(pem.as_bytes())}}))
    };
    if logged != content(true) && logged != content(false) {
        return Err(err(Check::TransparencyLog, "the Rekor intoto 0.0.1 entry does not record this attestation layer and certificate"));
    }

    // 2. the SET, by the log's key valid at the integrated time
    let p = &rb["Payload"];
    let t = p["integratedTime"].as_i64().ok_or_else(|| err(Check::TransparencyLog, "no integratedTime"))?;
    let index = p["logIndex"].as_i64().ok_or_else(|| err(Check::TransparencyLog, "no logIndex"))?;
    let log_id = p["logID"].as_str().ok_or_else(|| err(Check::TransparencyLog, "no logID"))?;
    let integrated = Timestamp::from_second(t).map_err(|e| err(Check::TransparencyLog, format!("integratedTime: {e}")))?;
    if integrated > now {
        return Err(err(Check::Timestamp, format!("signing time {integrated} is after the verification time {now}")));
    }
    let id = hex::decode(log_id)
        .ok()
        .and_then(|b| sigstore_types::Sha256Hash::try_from(b.as_slice()).ok())
        .ok_or_else(|| err(Check::TransparencyLog, format!("logID {log_id:?} is not a SHA-256")))?;
    let set = B64
        .decode(rb["SignedEntryTimestamp"].as_str().unwrap_or_default())
        .map_err(|e| err(Check::TransparencyLog, format!("SignedEntryTimestamp: {e}")))?;
    super::rekor_log::verify_set_of(tm.rekor_keys(), &id, Some(integrated), index, body_b64.to_string(), &set, now)?;

    // 3. the certificate chains to a Fulcio CA at the integrated time, for code signing, was
    //    valid then, and carries its SCT (as on every keyless path: core::fulcio, core::sct)
    let leaf = LeafCert::parse(&cert)?;
    let issuer_spki = tm.anchors().verify_chain(&cert, &[], integrated)?;
    leaf.check_time(integrated)?;
    crate::core::sct::verify_one(&leaf.cert, &cert, &issuer_spki, tm.ct_keys())?;

    // 4. the DSSE signature with the certificate's key
    let key = sigstore_crypto::VerificationKey::from_spki(&leaf.public_key)
        .map_err(|e| err(Check::Certificate, format!("the certificate's key: {e}")))?;
    let pae = sigstore_types::dsse::pae(payload_type, &payload);
    let ok = sigs
        .iter()
        .filter_map(|s| s["sig"].as_str().and_then(|x| B64.decode(x).ok()))
        .any(|s| key.verify(&pae, &SignatureBytes::new(s)).is_ok());
    if !ok {
        return Err(err(Check::Signature, "the DSSE signature does not verify with the certificate's key"));
    }

    // 5. about this image
    let st: Value = serde_json::from_slice(&payload).map_err(|e| parse(format!("the in-toto statement: {e}")))?;
    let subjects: Vec<(String, String)> = st["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s.pointer("/digest/sha256").and_then(Value::as_str).unwrap_or_default().to_string(),
            )
        })
        .collect();
    match subject {
        Subject::Sha256(d) => {
            let h = hex::encode(d);
            if !subjects.iter().any(|(_, s)| *s == h) {
                return Err(err(Check::Artifact, format!("the statement is not about sha256:{h}")));
            }
        }
        _ => return Err(err(Check::Artifact, "an attestation is verified against an image digest")),
    }

    // 6. who signed
    let (san, issuer, claims) = (leaf.san, leaf.issuer, leaf.claims);
    match authority {
        Authority::Keyless(p) => p.check(san.as_deref(), issuer.as_deref(), &claims)?,
        Authority::Key { name, .. } => {
            return Err(err(Check::Key, format!("the attestation is signed with a certificate, not with key {name}")));
        }
    }
    Ok(Verified {
        signer: san.unwrap_or_default(),
        issuer,
        claims,
        integrated_time: Some(integrated),
        timestamps: vec![integrated],
        statement: Some(Statement {
            predicate_type: st["predicateType"].as_str().unwrap_or_default().to_string(),
            subjects,
            predicate: st["predicate"].clone(),
        }),
    })
}
