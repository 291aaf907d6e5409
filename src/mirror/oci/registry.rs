//! Reading signed images from OCI sources: a registry (oci-client; anonymous, basic or bearer;
//! HTTPS, plain HTTP only for hosts explicitly marked insecure) or an OCI image layout directory
//! (what `cosign save`, oras and skopeo `oci:` write). Collects an image's manifest and its cosign
//! material: `.sig` and `.att` layers, and Sigstore bundles attached as referrers (the referrers
//! API, or the referrers tag schema). Sizes are bounded and every blob is checked against its
//! digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::core::cosign::{BUNDLE_V03, CosignLayer};

pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;
pub const MAX_BLOB: usize = 16 * 1024 * 1024;

const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{what}: {detail}")]
    Fetch { what: String, detail: String },
    #[error("{what}: digest mismatch: content hashes to {got}, expected {want}")]
    Digest { what: String, got: String, want: String },
    #[error("{what}: {size} bytes exceeds the {max}-byte limit")]
    TooLarge { what: String, size: usize, max: usize },
    #[error("{what}: {detail}")]
    Malformed { what: String, detail: String },
}

fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn check_digest(what: &str, bytes: &[u8], want: &str) -> Result<(), OciError> {
    let got = sha256_digest(bytes);
    if got != want {
        return Err(OciError::Digest { what: what.into(), got, want: want.into() });
    }
    Ok(())
}

/// An image and the signed material about it.
#[derive(Debug, Clone, Default)]
pub struct ImageMaterial {
    /// `registry/repo` (or the layout directory).
    pub name: String,
    pub digest: String,
    pub manifest: Vec<u8>,
    pub sig_layers: Vec<CosignLayer>,
    pub att_layers: Vec<CosignLayer>,
    /// Sigstore bundles attached as referrers: (predicate type annotation, bundle JSON).
    pub bundles: Vec<(Option<String>, Vec<u8>)>,
    /// `.sbom` layers (cosign attach sbom): unsigned.
    pub sbom_layers: Vec<CosignLayer>,
    /// Manifest digest of each cosign tag / referrers index the material came from.
    pub sources: BTreeMap<String, String>,
    /// Referrer manifests that were skipped, with why (a subject that is not this image, …).
    pub skipped: Vec<String>,
}

/// Registry connection settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host:port`) that may be reached over plain HTTP.
    pub insecure_hosts: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer: Option<String>,
    /// Extra CA certificates (PEM) for HTTPS registries.
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request read timeout (a registry that stops answering).
    pub timeout: Option<std::time::Duration>,
}

pub enum OciSource {
    Registry { client: Client, auth: RegistryAuth },
    Layout { dir: PathBuf },
}

impl OciSource {
    pub fn registry(o: &RegistryOptions) -> Self {
        let client = Client::new(ClientConfig {
            protocol: if o.insecure_hosts.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(o.insecure_hosts.clone())
            },
            ..Default::default()
        });
        let auth = match (&o.bearer, &o.username, &o.password) {
            (Some(t), _, _) => RegistryAuth::Bearer(t.clone()),
            (None, Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        };
        OciSource::Registry { client, auth }
    }

    pub fn layout(dir: &Path) -> Self {
        OciSource::Layout { dir: dir.to_path_buf() }
    }

    /// Fetch an image (by tag or digest; for layouts, `reference` may be empty) and its material.
    pub async fn image_material(&self, reference: &str) -> Result<ImageMaterial, OciError> {
        match self {
            OciSource::Registry { client, auth } => registry_material(client, auth, reference).await,
            OciSource::Layout { dir } => layout_material(dir, reference),
        }
    }
}

fn fetch_err(what: &str, e: impl std::fmt::Display) -> OciError {
    OciError::Fetch { what: what.into(), detail: e.to_string() }
}

/// A manifest layer: media type, digest, annotations.
type LayerDesc = (String, String, BTreeMap<String, String>);

fn layers_of(what: &str, manifest: &[u8]) -> Result<Vec<LayerDesc>, OciError> {
    let m: Value = serde_json::from_slice(manifest)
        .map_err(|e| OciError::Malformed { what: what.into(), detail: format!("manifest is not JSON: {e}") })?;
    let layers =
        m["layers"].as_array().ok_or_else(|| OciError::Malformed { what: what.into(), detail: "manifest has no layers".into() })?;
    layers
        .iter()
        .map(|l| {
            let mt = l["mediaType"].as_str().unwrap_or_default().to_string();
            let d = l["digest"]
                .as_str()
                .ok_or_else(|| OciError::Malformed { what: what.into(), detail: "layer without digest".into() })?
                .to_string();
            let size = l["size"].as_u64().unwrap_or(0) as usize;
            if size > MAX_BLOB {
                return Err(OciError::TooLarge { what: format!("{what} layer {d}"), size, max: MAX_BLOB });
            }
            let ann = l["annotations"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            Ok((mt, d, ann))
        })
        .collect()
}

async fn registry_material(client: &Client, auth: &RegistryAuth, reference: &str) -> Result<ImageMaterial, OciError> {
    let r: Reference =
        reference.parse().map_err(|e| OciError::Malformed { what: reference.into(), detail: format!("invalid image reference: {e}") })?;
    let (manifest, digest) = client.pull_manifest_raw(&r, auth, ACCEPT).await.map_err(|e| fetch_err(reference, e))?;
    if manifest.len() > MAX_MANIFEST {
        return Err(OciError::TooLarge { what: reference.into(), size: manifest.len(), max: MAX_MANIFEST });
    }
    check_digest(reference, &manifest, &digest)?;
    if let Some(d) = r.digest()
        && d != digest
    {
        return Err(OciError::Digest { what: reference.into(), got: digest, want: d.into() });
    }
    let name = format!("{}/{}", r.registry(), r.repository());
    let mut out = ImageMaterial { name: name.clone(), digest: digest.clone(), manifest: manifest.to_vec(), ..Default::default() };
    material_for_digest(client, auth, &name, &digest, None, &mut out).await?;
    Ok(out)
}

/// Is this a "not found" from the registry (no such tag / manifest)?
pub fn is_not_found(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::RegistryError { envelope, .. } => {
            envelope.errors.iter().any(|x| matches!(x.code, C::ManifestUnknown | C::NameUnknown | C::NotFound))
        }
        E::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

/// The cosign tags and referrers of `digest` in repository `name` (`registry/repo`). With
/// `present` (the repository's tag list), cosign tags that are not listed are not requested.
pub async fn material_for_digest(
    client: &Client,
    auth: &RegistryAuth,
    name: &str,
    digest: &str,
    present: Option<&std::collections::BTreeSet<String>>,
    out: &mut ImageMaterial,
) -> Result<(), OciError> {
    let prefix = digest.replacen(':', "-", 1);
    for suffix in ["sig", "att", "sbom"] {
        let tag = format!("{prefix}.{suffix}");
        if present.is_some_and(|p| !p.contains(&tag)) {
            continue;
        }
        let tr: Reference = format!("{name}:{tag}").parse().map_err(|e| fetch_err(name, e))?;
        let (m, md) = match client.pull_manifest_raw(&tr, auth, ACCEPT).await {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => continue, // no material of that kind
            Err(e) => return Err(fetch_err(&format!("{name}:{tag}"), e)),
        };
        if m.len() > MAX_MANIFEST {
            return Err(OciError::TooLarge { what: format!("{name}:{tag}"), size: m.len(), max: MAX_MANIFEST });
        }
        out.sources.insert(tag.clone(), md);
        let what = format!("{name}:{tag}");
        for (mt, d, ann) in layers_of(&what, &m)? {
            let content = pull_blob(client, &tr, &d).await?;
            let l = CosignLayer { media_type: mt, content, annotations: ann };
            match suffix {
                "sig" => out.sig_layers.push(l),
                "att" => out.att_layers.push(l),
                _ => out.sbom_layers.push(l),
            }
        }
    }
    let ir: Reference = format!("{name}@{digest}").parse().map_err(|e| fetch_err(name, e))?;
    if let Ok(index) = client.pull_referrers(&ir, None).await {
        if !index.manifests.is_empty() {
            let mut ids: Vec<&str> = index.manifests.iter().map(|d| d.digest.as_str()).collect();
            ids.sort();
            out.sources.insert("referrers".into(), sha256_digest(ids.join(",").as_bytes()));
        }
        for desc in index.manifests.iter().filter(|d| d.artifact_type.as_deref() == Some(BUNDLE_V03)) {
            let what = format!("{name}@{}", desc.digest);
            let mr: Reference = what.parse().map_err(|e| fetch_err(name, e))?;
            let (m, _) = client.pull_manifest_raw(&mr, auth, ACCEPT).await.map_err(|e| fetch_err(&what, e))?;
            check_digest(&what, &m, &desc.digest)?;
            let mv: Value = serde_json::from_slice(&m).map_err(|e| OciError::Malformed { what: what.clone(), detail: e.to_string() })?;
            // the tag-schema index is just a tag: anyone who can push can list a manifest there
            if mv["subject"]["digest"].as_str() != Some(digest) {
                out.skipped.push(format!("{what}: its subject is {:?}, not {digest}", mv["subject"]["digest"].as_str()));
                continue;
            }
            let pt = desc.annotations.as_ref().and_then(|a| a.get("dev.sigstore.bundle.predicateType").cloned());
            for (mt, d, _) in layers_of(&what, &m)? {
                if mt == BUNDLE_V03 {
                    out.bundles.push((pt.clone(), pull_blob(client, &mr, &d).await?));
                }
            }
        }
    }
    Ok(())
}

/// Read a blob, refusing more than [`MAX_BLOB`] bytes while streaming, and check its digest.
pub async fn pull_blob(client: &Client, r: &Reference, digest: &str) -> Result<Vec<u8>, OciError> {
    use futures_util::StreamExt;
    let what = format!("blob {digest}");
    let mut s = client.pull_blob_stream(r, digest).await.map_err(|e| fetch_err(&what, e))?;
    if let Some(l) = s.content_length
        && l as usize > MAX_BLOB
    {
        return Err(OciError::TooLarge { what, size: l as usize, max: MAX_BLOB });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = s.stream.next().await {
        let chunk = chunk.map_err(|e| fetch_err(&what, e))?;
        if buf.len() + chunk.len() > MAX_BLOB {
            return Err(OciError::TooLarge { what, size: buf.len() + chunk.len(), max: MAX_BLOB });
        }
        buf.extend_from_slice(&chunk);
    }
    check_digest(&what, &buf, digest)?;
    Ok(buf)
}

fn layout_blob(dir: &Path, digest: &str, max: usize) -> Result<Vec<u8>, OciError> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| OciError::Malformed { what: digest.into(), detail: "only sha256 digests are supported".into() })?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(OciError::Malformed { what: digest.into(), detail: "not a sha256 digest".into() });
    }
    let p = dir.join("blobs/sha256").join(hex);
    let meta = std::fs::metadata(&p).map_err(|e| fetch_err(&p.display().to_string(), e))?;
    if meta.len() as usize > max {
        return Err(OciError::TooLarge { what: p.display().to_string(), size: meta.len() as usize, max });
    }
    let b = std::fs::read(&p).map_err(|e| fetch_err(&p.display().to_string(), e))?;
    check_digest(&p.display().to_string(), &b, digest)?;
    Ok(b)
}

fn layout_material(dir: &Path, reference: &str) -> Result<ImageMaterial, OciError> {
    let what = dir.display().to_string();
    let idx = std::fs::read(dir.join("index.json")).map_err(|e| fetch_err(&format!("{what}/index.json"), e))?;
    let index: Value =
        serde_json::from_slice(&idx).map_err(|e| OciError::Malformed { what: format!("{what}/index.json"), detail: e.to_string() })?;
    let descs = index["manifests"].as_array().cloned().unwrap_or_default();
    let ref_name = |d: &Value| d["annotations"]["org.opencontainers.image.ref.name"].as_str().map(str::to_string);
    let kind = |d: &Value| d["annotations"]["kind"].as_str().map(str::to_string);
    let is_cosign_tag = |n: &str| n.starts_with("sha256-");
    // the image: named by the reference (tag or digest), cosign's kind annotation, or the one
    // descriptor that is not signature material
    let image = descs
        .iter()
        .find(|d| !reference.is_empty() && (ref_name(d).as_deref() == Some(reference) || d["digest"].as_str() == Some(reference)))
        .or_else(|| descs.iter().find(|d| kind(d).as_deref() == Some("dev.cosignproject.cosign/image")))
        .or_else(|| {
            let cands: Vec<&Value> = descs
                .iter()
                .filter(|d| !ref_name(d).is_some_and(|n| is_cosign_tag(&n)) && kind(d).is_none_or(|k| k.ends_with("/image")))
                .collect();
            (cands.len() == 1).then(|| cands[0])
        })
        .ok_or_else(|| OciError::Malformed {
            what: what.clone(),
            detail: "cannot tell which manifest is the image (name it with a tag or digest)".into(),
        })?;
    let digest = image["digest"].as_str().unwrap_or_default().to_string();
    let manifest = layout_blob(dir, &digest, MAX_MANIFEST)?;
    let mut out = ImageMaterial { name: what.clone(), digest: digest.clone(), manifest, ..Default::default() };
    let prefix = digest.replacen(':', "-", 1);
    for d in &descs {
        let name = ref_name(d).unwrap_or_default();
        let k = kind(d).unwrap_or_default();
        let is_sig = name == format!("{prefix}.sig") || k == "dev.cosignproject.cosign/sigs";
        let is_att = name == format!("{prefix}.att") || k == "dev.cosignproject.cosign/atts";
        let md = d["digest"].as_str().unwrap_or_default();
        if is_sig || is_att {
            let m = layout_blob(dir, md, MAX_MANIFEST)?;
            for (mt, ld, ann) in layers_of(&format!("{what} {name}"), &m)? {
                let content = layout_blob(dir, &ld, MAX_BLOB)?;
                let l = CosignLayer { media_type: mt, content, annotations: ann };
                if is_sig { out.sig_layers.push(l) } else { out.att_layers.push(l) }
            }
            continue;
        }
        // referrers: bundle manifests whose subject is the image (listed directly, or through the
        // referrers tag schema index)
        let m = match layout_blob(dir, md, MAX_MANIFEST) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let v: Value = serde_json::from_slice(&m).unwrap_or(Value::Null);
        let candidates: Vec<Value> = if name == prefix { v["manifests"].as_array().cloned().unwrap_or_default() } else { vec![d.clone()] };
        for c in candidates {
            let cm = if name == prefix {
                layout_blob(dir, c["digest"].as_str().unwrap_or_default(), MAX_MANIFEST).unwrap_or_default()
            } else {
                m.clone()
            };
            let cv: Value = serde_json::from_slice(&cm).unwrap_or(Value::Null);
            if cv["artifactType"].as_str() == Some(BUNDLE_V03) && cv["subject"]["digest"].as_str() == Some(digest.as_str()) {
                let pt = cv["annotations"]["dev.sigstore.bundle.predicateType"].as_str().map(str::to_string);
                for (mt, ld, _) in layers_of(&what, &cm)? {
                    if mt == BUNDLE_V03 && !out.bundles.iter().any(|(_, b)| sha256_digest(b) == ld) {
                        out.bundles.push((pt.clone(), layout_blob(dir, &ld, MAX_BLOB)?));
                    }
                }
            }
        }
    }
    Ok(out)
}
