//! Image signatures and attestations laid out exactly as cosign 2.4+ stores them:
//!
//! * `sha256-<hex>.sig`: an OCI manifest whose layers are simple-signing payloads
//!   (`application/vnd.dev.cosign.simplesigning.v1+json`) annotated with the signature,
//!   certificate, chain, Rekor bundle and RFC 3161 timestamp; signing again appends a layer.
//! * `sha256-<hex>.att`: layers are DSSE envelopes (`application/vnd.dsse.envelope.v1+json`)
//!   over in-toto statements, annotated with `predicateType`.
//! * Sigstore bundles v0.3 as OCI 1.1 referrers (`artifactType`
//!   `application/vnd.dev.sigstore.bundle.v0.3+json`, `subject` = the image), plus the referrers
//!   tag schema (`sha256-<hex>` → an OCI index) for registries without the referrers API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::testbed::keys::pem;
use crate::testbed::oci::{OCI_CONFIG, OCI_MANIFEST, Pusher, digest_of};
use crate::testbed::sigstore::{INTOTO_PAYLOAD_TYPE, Signer, SigstoreStack};

pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const ANN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANN_CERT: &str = "dev.sigstore.cosign/certificate";
pub const ANN_CHAIN: &str = "dev.sigstore.cosign/chain";
pub const ANN_BUNDLE: &str = "dev.sigstore.cosign/bundle";
pub const ANN_RFC3161: &str = "dev.sigstore.cosign/rfc3161timestamp";
pub const ANN_PREDICATE_TYPE: &str = "predicateType";
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// `sha256-<hex>` for a digest, the prefix of cosign's tags.
pub fn tag_prefix(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The simple-signing payload cosign signs for an image.
pub fn simple_signing_payload(docker_reference: &str, digest: &str, annotations: Option<&Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {"identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"},
        "optional": annotations.cloned().unwrap_or(Value::Null),
    }))
    .expect("json")
}

/// An in-toto statement about one image digest.
pub fn statement(statement_type: &str, name: &str, digest: &str, predicate_type: &str, predicate: &Value) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    json!({"_type": statement_type, "predicateType": predicate_type,
        "subject": [{"name": name, "digest": {"sha256": hex}}], "predicate": predicate})
}

fn signer_annotations(stack: &SigstoreStack, signer: &Signer, ann: &mut serde_json::Map<String, Value>) {
    if let Signer::Keyless { cert_der, .. } = signer {
        ann.insert(ANN_CERT.into(), json!(pem("CERTIFICATE", cert_der)));
        let chain: String = stack.fulcio.ca.chain().iter().map(|c| pem("CERTIFICATE", c)).collect();
        ann.insert(ANN_CHAIN.into(), json!(chain));
    }
}

/// The layers currently under a cosign tag (to append to, as cosign does).
async fn existing_layers(p: &Pusher, repo: &str, tag: &str) -> anyhow::Result<Vec<Value>> {
    match p.get_manifest(repo, tag).await? {
        Some((bytes, _)) => {
            let m: Value = serde_json::from_slice(&bytes)?;
            Ok(m["layers"].as_array().cloned().unwrap_or_default())
        }
        None => Ok(vec![]),
    }
}

/// Write the cosign tag manifest: layers (descriptors, blobs already pushed) and a config whose
/// `rootfs.diff_ids` lists them, as cosign does.
async fn put_cosign_manifest(p: &Pusher, repo: &str, tag: &str, layers: Vec<Value>) -> anyhow::Result<String> {
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({"architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "", "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {}}))?;
    let config_digest = p.push_blob(repo, &config).await?;
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": config_digest}, "layers": layers});
    p.push_manifest(repo, Some(tag), OCI_MANIFEST, &serde_json::to_vec(&m)?).await
}

/// `cosign sign`: append a signature layer to `sha256-<hex>.sig`.
pub async fn sign_image(
    stack: &SigstoreStack,
    p: &Pusher,
    repo: &str,
    digest: &str,
    signer: &Signer,
    at: Timestamp,
    annotations: Option<&Value>,
) -> anyhow::Result<()> {
    let docker_ref = format!("{}/{repo}", p.registry);
    let payload = simple_signing_payload(&docker_ref, digest, annotations);
    let sig = signer.key().sign(&payload);
    let entry = stack.log_payload_signature(signer, &payload, &sig, at);
    let ts = stack.tsa.stamp(&sig, at, None);
    let mut ann = serde_json::Map::new();
    ann.insert(ANN_SIGNATURE.into(), json!(B64.encode(&sig)));
    signer_annotations(stack, signer, &mut ann);
    ann.insert(ANN_BUNDLE.into(), json!(serde_json::to_string(&entry.cosign_bundle_json())?));
    ann.insert(ANN_RFC3161.into(), json!(serde_json::to_string(&json!({"SignedRFC3161Timestamp": B64.encode(&ts)}))?));
    let layer_digest = p.push_blob(repo, &payload).await?;
    let tag = format!("{}.sig", tag_prefix(digest));
    let mut layers = existing_layers(p, repo, &tag).await?;
    layers.push(json!({"mediaType": SIMPLESIGNING, "size": payload.len(), "digest": layer_digest, "annotations": ann}));
    put_cosign_manifest(p, repo, &tag, layers).await?;
    Ok(())
}

/// `cosign attest`: append a DSSE attestation layer to `sha256-<hex>.att` (intoto 0.0.2 entry).
pub async fn attest_image(
    stack: &SigstoreStack,
    p: &Pusher,
    repo: &str,
    digest: &str,
    signer: &Signer,
    (predicate_type, predicate): (&str, &Value),
    at: Timestamp,
) -> anyhow::Result<()> {
    let name = format!("{}/{repo}", p.registry);
    let st = statement(STATEMENT_V01, &name, digest, predicate_type, predicate);
    let payload = serde_json::to_vec(&st)?;
    let (env, sig) = stack.dsse(signer, INTOTO_PAYLOAD_TYPE, &payload);
    let entry = stack.log_intoto(signer, &env, &payload, &sig, at);
    let mut ann = serde_json::Map::new();
    ann.insert(ANN_SIGNATURE.into(), json!(""));
    ann.insert(ANN_PREDICATE_TYPE.into(), json!(predicate_type));
    signer_annotations(stack, signer, &mut ann);
    ann.insert(ANN_BUNDLE.into(), json!(serde_json::to_string(&entry.cosign_bundle_json())?));
    let layer_digest = p.push_blob(repo, &env).await?;
    let tag = format!("{}.att", tag_prefix(digest));
    let mut layers = existing_layers(p, repo, &tag).await?;
    layers.push(json!({"mediaType": DSSE_ENVELOPE, "size": env.len(), "digest": layer_digest, "annotations": ann}));
    put_cosign_manifest(p, repo, &tag, layers).await?;
    Ok(())
}

pub use crate::mirror::oci::push::attach_bundle;

/// Digest of a manifest's bytes (re-exported for callers that build statements).
pub fn manifest_digest(m: &[u8]) -> String {
    digest_of(m)
}
