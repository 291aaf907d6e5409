//! Registry access (oci-client; anonymous, basic or bearer; HTTPS, plain HTTP only for hosts
//! explicitly marked insecure): listing, tag resolution, and an image's cosign material — `.sig`,
//! `.att` and `.sbom` layers, and Sigstore bundles attached as referrers (the referrers API, or
//! the referrers tag schema). Sizes are bounded and every blob is checked against its digest.
//! [`Registry`] adds what a mirror needs on top: per-host credentials, retries with backoff and a
//! time limit per operation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use serde_json::Value;

use crate::core::cosign::{BUNDLE_V03, CosignLayer};
use crate::core::digest::sha256_digest;

pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;
pub const MAX_BLOB: usize = 16 * 1024 * 1024;
/// Caps per digest, so that what anyone can push to a registry cannot make one digest cost
/// without bound: signature-bearing items kept, layers read per cosign manifest, referrers
/// followed, bytes fetched in all, platform manifests of an index followed.
pub const MAX_ITEMS: usize = 256;
pub const MAX_LAYERS: usize = 64;
pub const MAX_REFERRERS: usize = 128;
pub const MAX_DIGEST_BYTES: usize = 64 * 1024 * 1024;
pub const MAX_CHILDREN: usize = 64;

pub const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Why reading from a registry or layout failed. `what` names the reference, tag or blob.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OciError {
    #[error("{what}: {detail}")]
    Fetch { what: String, detail: String },
    #[error("{what}: digest mismatch: content hashes to {got}, expected {want}")]
    Digest { what: String, got: String, want: String },
    #[error("{what}: {size} bytes exceeds the {max}-byte limit")]
    TooLarge { what: String, size: usize, max: usize },
    #[error("{what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: {last} (after {attempts} attempts)")]
    Exhausted { what: String, attempts: u32, last: Box<OciError> },
    #[error("{what}: {detail}")]
    Store { what: String, detail: String },
}

impl OciError {
    pub fn store(what: &str, e: crate::store::StoreError) -> Self {
        OciError::Store { what: what.into(), detail: e.to_string() }
    }
    pub fn reference(what: &str, e: impl std::fmt::Display) -> Self {
        OciError::Malformed { what: what.into(), detail: format!("invalid reference: {e}") }
    }
}

pub(super) fn check_digest(what: &str, bytes: &[u8], want: &str) -> Result<(), OciError> {
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

/// Credentials for one registry: a bearer token, or a username and password, or none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl Credentials {
    /// The one place registry authentication is decided: a token wins, then basic, else
    /// anonymous.
    pub fn auth(&self) -> RegistryAuth {
        match (&self.token, &self.username, &self.password) {
            (Some(t), _, _) => RegistryAuth::Bearer(t.clone()),
            (None, Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        }
    }
}

/// Registry connection settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host:port`) that may be reached over plain HTTP.
    pub insecure_hosts: Vec<String>,
    /// Credentials for every host without its own entry in `per_host`.
    pub credentials: Credentials,
    /// Credentials by host (`host:port`).
    pub per_host: BTreeMap<String, Credentials>,
    /// Extra CA certificates (PEM) for HTTPS registries.
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request read timeout (a registry that stops answering).
    pub timeout: Option<Duration>,
}

impl RegistryOptions {
    pub fn auth_for(&self, host: &str) -> RegistryAuth {
        self.per_host.get(host).unwrap_or(&self.credentials).auth()
    }

    /// The oci-client for these options.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig {
            protocol: if self.insecure_hosts.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(self.insecure_hosts.clone())
            },
            ..Default::default()
        })
    }
}

/// Where `verify` reads an image from: a registry or a layout directory.
pub enum OciSource {
    Registry { client: Client, opts: RegistryOptions },
    Layout { dir: PathBuf },
}

impl OciSource {
    pub fn registry(o: &RegistryOptions) -> Self {
        OciSource::Registry { client: o.client(), opts: o.clone() }
    }

    pub fn layout(dir: &Path) -> Self {
        OciSource::Layout { dir: dir.to_path_buf() }
    }

    /// Fetch an image (by tag or digest; for layouts, `reference` may be empty) and its material.
    pub async fn image_material(&self, reference: &str) -> Result<ImageMaterial, OciError> {
        match self {
            OciSource::Registry { client, opts } => {
                let host = reference.split('/').next().unwrap_or_default();
                registry_material(client, &opts.auth_for(host), reference).await
            }
            OciSource::Layout { dir } => super::layout::layout_material(dir, reference),
        }
    }
}

pub(super) fn fetch_err(what: &str, e: impl std::fmt::Display) -> OciError {
    OciError::Fetch { what: what.into(), detail: e.to_string() }
}

/// A manifest layer: media type, digest, annotations.
pub(super) type LayerDesc = (String, String, BTreeMap<String, String>);

pub(super) fn layers_of(what: &str, manifest: &[u8]) -> Result<Vec<LayerDesc>, OciError> {
    let m: Value = serde_json::from_slice(manifest)
        .map_err(|e| OciError::Malformed { what: what.into(), detail: format!("manifest is not JSON: {e}") })?;
    let layers =
        m["layers"].as_array().ok_or_else(|| OciError::Malformed { what: what.into(), detail: "manifest has no layers".into() })?;
    if layers.len() > MAX_LAYERS {
        return Err(OciError::TooLarge { what: format!("{what}: layers"), size: layers.len(), max: MAX_LAYERS });
    }
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
    present: Option<&BTreeSet<String>>,
    out: &mut ImageMaterial,
) -> Result<(), OciError> {
    let prefix = digest.replacen(':', "-", 1);
    let mut fetched = 0usize;
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
            budget(&mut fetched, content.len(), &what)?;
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
        let bundles: Vec<_> = index.manifests.iter().filter(|d| d.artifact_type.as_deref() == Some(BUNDLE_V03)).collect();
        if bundles.len() > MAX_REFERRERS {
            return Err(OciError::TooLarge { what: format!("{name}@{digest}: referrers"), size: bundles.len(), max: MAX_REFERRERS });
        }
        for desc in bundles {
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
                    let b = pull_blob(client, &mr, &d).await?;
                    budget(&mut fetched, b.len(), &what)?;
                    out.bundles.push((pt.clone(), b));
                }
            }
        }
    }
    Ok(())
}

fn budget(fetched: &mut usize, n: usize, what: &str) -> Result<(), OciError> {
    *fetched += n;
    if *fetched > MAX_DIGEST_BYTES {
        return Err(OciError::TooLarge { what: format!("{what}: material"), size: *fetched, max: MAX_DIGEST_BYTES });
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

/// Page size asked for in `_catalog` and `tags/list`.
const PAGE: usize = 1000;

/// Add a page to `out`; whether to ask for another. Registries differ: some honour `n`/`last`,
/// distribution 2.8 ignores both and returns everything, unsorted, every time. Another page is
/// asked for only when this one was exactly full and brought something new.
pub(super) fn paginate(out: &mut Vec<String>, page: Vec<String>, last: &mut Option<String>) -> bool {
    let full = page.len() == PAGE;
    let before = out.len();
    let seen: BTreeSet<String> = out.iter().cloned().collect();
    let mut newest = None;
    for t in page {
        if !seen.contains(&t) {
            newest = Some(t.clone());
            out.push(t);
        }
    }
    if let Some(n) = newest {
        *last = Some(n);
    }
    full && out.len() > before && out.len() < 1_000_000
}

/// A registry client for mirroring: credentials per host, every operation retried with backoff
/// and bounded in time (a registry that stops answering costs one timeout per attempt).
pub struct Registry {
    pub client: Client,
    pub opts: RegistryOptions,
    pub retries: u32,
    pub op_timeout: Duration,
}

impl Registry {
    pub fn new(opts: RegistryOptions, retries: u32, op_timeout: Duration) -> Self {
        Self { client: opts.client(), opts, retries, op_timeout }
    }

    pub fn auth_for(&self, host: &str) -> RegistryAuth {
        self.opts.auth_for(host)
    }

    /// Run `f` until it succeeds, at most `retries + 1` times, each bounded by `op_timeout`.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, OciError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, OciError>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut last = None;
        for attempt in 0..=self.retries {
            let res = match tokio::time::timeout(self.op_timeout, f()).await {
                Ok(r) => r,
                Err(_) => Err(OciError::Timeout { what: what.into(), after: self.op_timeout }),
            };
            match res {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if attempt < self.retries {
                        tracing::debug!(what, attempt, error = %e, "retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    last = Some(e);
                }
            }
        }
        let last = last.expect("at least one attempt");
        Err(OciError::Exhausted { what: what.into(), attempts: self.retries + 1, last: Box::new(last) })
    }

    fn reference(s: &str) -> Result<Reference, OciError> {
        s.parse().map_err(|e| OciError::reference(s, e))
    }

    /// Collect a paginated listing: `page(last)` fetches the page after `last` (each retried).
    async fn paged<F, Fut>(&self, what: &str, page: F) -> Result<Vec<String>, OciError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>, OciError>>,
    {
        let mut out = vec![];
        let mut last: Option<String> = None;
        loop {
            let items = self.retry(what, || page(last.clone())).await?;
            if !paginate(&mut out, items, &mut last) {
                return Ok(out);
            }
        }
    }

    /// Every repository of `host` (`_catalog`, paginated).
    pub async fn catalog(&self, host: &str) -> Result<Vec<String>, OciError> {
        let r = Self::reference(&format!("{host}/catalog:latest"))?;
        let auth = self.auth_for(host);
        let what = format!("catalog of {host}");
        self.paged(&what, |last| {
            let (r, auth, what) = (r.clone(), auth.clone(), what.clone());
            async move {
                let p = self.client.catalog(&r, &auth, Some(PAGE), last.as_deref()).await.map_err(|e| fetch_err(&what, e))?;
                Ok(p.repositories)
            }
        })
        .await
    }

    /// Every tag of `repo` (`registry/repo`, paginated).
    pub async fn list_tags(&self, repo: &str) -> Result<BTreeSet<String>, OciError> {
        let r = Self::reference(&format!("{repo}:latest"))?;
        let auth = self.auth_for(r.registry());
        let what = format!("tags of {repo}");
        let tags = self
            .paged(&what, |last| {
                let (r, auth, what) = (r.clone(), auth.clone(), what.clone());
                async move {
                    let p = self.client.list_tags(&r, &auth, Some(PAGE), last.as_deref()).await.map_err(|e| fetch_err(&what, e))?;
                    Ok(p.tags)
                }
            })
            .await?;
        Ok(tags.into_iter().collect())
    }

    /// The digest a tag (or digest reference) resolves to now.
    pub async fn resolve(&self, reference: &str) -> Result<String, OciError> {
        let r = Self::reference(reference)?;
        let auth = self.auth_for(r.registry());
        let what = format!("resolve {reference}");
        self.retry(&what, || {
            let (r, auth, what) = (r.clone(), auth.clone(), what.clone());
            async move { self.client.fetch_manifest_digest(&r, &auth).await.map_err(|e| fetch_err(&what, e)) }
        })
        .await
    }

    /// The manifest `repo@digest`, checked against its digest and bounded in size.
    pub async fn manifest(&self, repo: &str, digest: &str) -> Result<Vec<u8>, OciError> {
        let what = format!("{repo}@{digest}");
        let r = Self::reference(&what)?;
        let auth = self.auth_for(r.registry());
        let (manifest, md) = self
            .retry(&what, || {
                let (r, auth, what) = (r.clone(), auth.clone(), what.clone());
                async move { self.client.pull_manifest_raw(&r, &auth, ACCEPT).await.map_err(|e| fetch_err(&what, e)) }
            })
            .await?;
        if manifest.len() > MAX_MANIFEST {
            return Err(OciError::TooLarge { what, size: manifest.len(), max: MAX_MANIFEST });
        }
        if md != digest {
            return Err(OciError::Digest { what, got: md, want: digest.into() });
        }
        check_digest(&what, &manifest, digest)?;
        Ok(manifest.to_vec())
    }

    /// The cosign material and referrers of `repo@digest` (see [`material_for_digest`]), retried
    /// as a whole: a half-fetched set is never returned.
    pub async fn material(
        &self,
        repo: &str,
        digest: &str,
        manifest: Vec<u8>,
        present: Option<&BTreeSet<String>>,
    ) -> Result<ImageMaterial, OciError> {
        let host = repo.split('/').next().unwrap_or_default();
        let auth = self.auth_for(host);
        let base = ImageMaterial { name: repo.to_string(), digest: digest.to_string(), manifest, ..Default::default() };
        self.retry(&format!("material of {repo}@{digest}"), || {
            let mut fresh = base.clone();
            let auth = auth.clone();
            async move {
                material_for_digest(&self.client, &auth, repo, digest, present, &mut fresh).await?;
                Ok(fresh)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_stops_when_the_registry_ignores_it() {
        // a registry that ignores n/last returns the same (oversized) list every time
        let all: Vec<String> = (0..2000).map(|i| format!("t{i}")).collect();
        let (mut out, mut last) = (vec![], None);
        assert!(!paginate(&mut out, all.clone(), &mut last), "more than a page: the registry ignored n");
        assert_eq!(out.len(), 2000);
        // a registry that honours it: full pages continue, a short one ends
        let (mut out, mut last) = (vec![], None);
        assert!(paginate(&mut out, all[..1000].to_vec(), &mut last));
        assert_eq!(last.as_deref(), Some("t999"));
        assert!(!paginate(&mut out, all[1000..1500].to_vec(), &mut last));
        // a full page with nothing new ends too
        let (mut out, mut last) = (all[..1000].to_vec(), None);
        assert!(!paginate(&mut out, all[..1000].to_vec(), &mut last));
    }

    #[test]
    fn credentials_decide_the_auth_in_one_place() {
        let c = |u: Option<&str>, p: Option<&str>, t: Option<&str>| Credentials {
            username: u.map(Into::into),
            password: p.map(Into::into),
            token: t.map(Into::into),
        };
        assert!(matches!(c(Some("u"), Some("p"), Some("t")).auth(), RegistryAuth::Bearer(_)));
        assert!(matches!(c(Some("u"), Some("p"), None).auth(), RegistryAuth::Basic(..)));
        assert!(matches!(c(Some("u"), None, None).auth(), RegistryAuth::Anonymous));
        let o = RegistryOptions { per_host: [("h:1".to_string(), c(None, None, Some("t")))].into(), ..Default::default() };
        assert!(matches!(o.auth_for("h:1"), RegistryAuth::Bearer(_)));
        assert!(matches!(o.auth_for("h:2"), RegistryAuth::Anonymous));
    }
}
