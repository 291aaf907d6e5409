//! Writing to a registry: blobs, manifests, and Sigstore bundles attached to an image as OCI
//! referrers (with the referrers tag schema's index, for registries without the referrers API).
//! The gate pushes its verification summaries through it; the testbed builds its images with it.

use anyhow::{Context, anyhow};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{Value, json};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn digest_of(b: &[u8]) -> String {
    crate::core::digest::sha256_digest(b)
}

/// Pushes blobs and manifests (oci-client): plain HTTP for loopback and insecure registries,
/// HTTPS otherwise.
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
    pub registry: String,
}

impl Pusher {
    /// Over plain HTTP (a loopback registry).
    pub fn new(registry: &str, auth: RegistryAuth) -> Self {
        Self::with_tls(registry, auth, false)
    }

    /// Over HTTPS when `tls`, else plain HTTP.
    pub fn with_tls(registry: &str, auth: RegistryAuth, tls: bool) -> Self {
        let protocol = if tls { ClientProtocol::Https } else { ClientProtocol::Http };
        let client = Client::new(ClientConfig { protocol, use_monolithic_push: true, ..Default::default() });
        Self { client, auth, registry: registry.into() }
    }

    fn reference(&self, repo: &str, tag_or_digest: &str) -> anyhow::Result<Reference> {
        let s = if tag_or_digest.starts_with("sha256:") {
            format!("{}/{repo}@{tag_or_digest}", self.registry)
        } else {
            format!("{}/{repo}:{tag_or_digest}", self.registry)
        };
        s.parse().with_context(|| format!("reference {s}"))
    }

    async fn authed(&self, r: &Reference) -> anyhow::Result<()> {
        self.client.store_auth_if_needed(r.resolve_registry(), &self.auth).await;
        if !matches!(self.auth, RegistryAuth::Anonymous) {
            self.client.auth(r, &self.auth, oci_client::RegistryOperation::Push).await?;
        }
        Ok(())
    }

    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> anyhow::Result<String> {
        let digest = digest_of(data);
        let r = self.reference(repo, "latest")?;
        self.authed(&r).await?;
        if !self.client.blob_exists(&r, &digest).await.unwrap_or(false) {
            self.client.push_blob(&r, data.to_vec(), &digest).await.with_context(|| format!("pushing blob {digest} to {repo}"))?;
        }
        Ok(digest)
    }

    /// Push a manifest (JSON bytes) under `tag` (or by digest when `tag` is None). Returns its digest.
    pub async fn push_manifest(&self, repo: &str, tag: Option<&str>, media_type: &str, manifest: &[u8]) -> anyhow::Result<String> {
        let digest = digest_of(manifest);
        let r = self.reference(repo, tag.unwrap_or(&digest))?;
        self.authed(&r).await?;
        self.client
            .push_manifest_raw(&r, manifest.to_vec(), media_type.parse().map_err(|_| anyhow!("bad media type"))?)
            .await
            .with_context(|| format!("pushing manifest to {repo}:{}", tag.unwrap_or(&digest)))?;
        Ok(digest)
    }

    /// Fetch a manifest by tag or digest: `(bytes, digest)`, or None when absent.
    pub async fn get_manifest(&self, repo: &str, tag_or_digest: &str) -> anyhow::Result<Option<(Vec<u8>, String)>> {
        let r = self.reference(repo, tag_or_digest)?;
        self.authed(&r).await?;
        match self.client.pull_manifest_raw(&r, &self.auth, &[OCI_MANIFEST, OCI_INDEX]).await {
            Ok((b, d)) => Ok(Some((b.to_vec(), d))),
            Err(oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)) => Ok(None),
            Err(oci_client::errors::OciDistributionError::RegistryError { envelope, .. })
                if envelope.errors.iter().any(|e| e.code == oci_client::errors::OciErrorCode::ManifestUnknown) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Attach a Sigstore bundle to `subject_digest` as an OCI referrer (artifactType: the bundle
/// v0.3 media type, as cosign v3 does) and list it in the referrers tag schema's index
/// (`sha256-<hex>`). Returns the referrer manifest's digest.
pub async fn attach_bundle(
    p: &Pusher,
    repo: &str,
    subject_digest: &str,
    subject_size: usize,
    bundle: &Value,
    predicate_type: Option<&str>,
) -> anyhow::Result<String> {
    let bytes = serde_json::to_vec(bundle)?;
    let mut ann = json!({"dev.sigstore.bundle.content": if bundle.get("dsseEnvelope").is_some() { "dsse-envelope" } else { "message-signature" },
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z"});
    if let Some(pt) = predicate_type {
        ann["dev.sigstore.bundle.predicateType"] = json!(pt);
    }
    let empty = b"{}";
    let config_digest = p.push_blob(repo, empty).await?;
    let layer_digest = p.push_blob(repo, &bytes).await?;
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_V03,
        "config": {"mediaType": OCI_EMPTY, "digest": config_digest, "size": 2},
        "layers": [{"mediaType": BUNDLE_V03, "digest": layer_digest, "size": bytes.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_size},
        "annotations": ann});
    let mbytes = serde_json::to_vec(&m)?;
    let mdigest = p.push_manifest(repo, None, OCI_MANIFEST, &mbytes).await?;
    // referrers tag schema: append to the index at sha256-<hex>
    let tag = subject_digest.replacen(':', "-", 1);
    let mut manifests = match p.get_manifest(repo, &tag).await? {
        Some((b, _)) => serde_json::from_slice::<Value>(&b)?["manifests"].as_array().cloned().unwrap_or_default(),
        None => vec![],
    };
    manifests
        .push(json!({"mediaType": OCI_MANIFEST, "digest": mdigest, "size": mbytes.len(), "artifactType": BUNDLE_V03, "annotations": ann}));
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    p.push_manifest(repo, Some(&tag), OCI_INDEX, &serde_json::to_vec(&index)?).await?;
    Ok(mdigest)
}
