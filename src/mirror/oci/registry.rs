//! Registry access (anonymous, basic or bearer; HTTPS, plain HTTP only for hosts explicitly marked
//! insecure) over the bounded client in [`super::http`]: listing, tag resolution, and an image's
//! cosign material — `.sig`, `.att` and `.sbom` layers, and Sigstore bundles attached as referrers
//! (the referrers API, or the referrers tag schema). Every response is bounded while it streams
//! and every blob and manifest is checked against its digest. [`Registry`] adds what a mirror
//! needs on top: per-host credentials, retries with backoff and a time limit per operation.

use std::collections::BTreeSet;
use std::time::Duration;

use oci_client::Reference;
use serde::Deserialize;
use serde_json::Value;

use super::http::Http;
use super::material::*;
use crate::core::cosign::{BUNDLE_V03, CosignLayer};
use crate::core::digest::sha256_digest;

pub const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn budget(fetched: &mut usize, n: usize, what: &str) -> Result<(), OciError> {
    *fetched += n;
    if *fetched > MAX_DIGEST_BYTES {
        return Err(OciError::TooLarge { what: format!("{what}: material"), size: *fetched, max: MAX_DIGEST_BYTES });
    }
    Ok(())
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

/// `registry/repo` → (`registry`, `repo`).
fn split(repo: &str) -> Result<(&str, &str), OciError> {
    repo.split_once('/')
        .filter(|(h, n)| !h.is_empty() && !n.is_empty())
        .ok_or_else(|| OciError::reference(repo, "expected registry/repository"))
}

fn json_of<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Result<T, OciError> {
    serde_json::from_slice(b).map_err(|e| OciError::Malformed { what: what.into(), detail: format!("not the expected JSON: {e}") })
}

#[derive(Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// A registry client for mirroring: credentials per host, every operation retried with backoff
/// and bounded in time (a registry that stops answering costs one timeout per attempt) and in
/// size (every response bounded while it streams).
pub struct Registry {
    http: Http,
    pub opts: RegistryOptions,
    pub retries: u32,
    pub op_timeout: Duration,
}

impl Registry {
    pub fn new(opts: RegistryOptions, retries: u32, op_timeout: Duration) -> Result<Self, OciError> {
        Ok(Self { http: Http::new(&opts)?, opts, retries, op_timeout })
    }

    /// Run `f` until it succeeds, at most `retries + 1` times, each bounded by `op_timeout`.
    /// A response over a size limit is not retried (it would be as large the next time).
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
                Err(e @ (OciError::TooLarge { .. } | OciError::TooMany { .. })) => return Err(e),
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

    fn page_query(last: &Option<String>) -> String {
        let mut q = format!("?n={PAGE}");
        if let Some(l) = last {
            q.push_str("&last=");
            q.push_str(&percent_encoding::utf8_percent_encode(l, percent_encoding::NON_ALPHANUMERIC).to_string());
        }
        q
    }

    /// Every repository of `host` (`_catalog`, paginated).
    pub async fn catalog(&self, host: &str) -> Result<Vec<String>, OciError> {
        let what = format!("catalog of {host}");
        self.paged(&what, |last| {
            let what = what.clone();
            async move {
                let r =
                    self.http.get(host, &format!("/v2/_catalog{}", Self::page_query(&last)), &["application/json"], MAX_MANIFEST).await?;
                let r = r.ok_or_else(|| OciError::Fetch { what: what.clone(), detail: "the registry has no catalog (HTTP 404)".into() })?;
                Ok(json_of::<CatalogPage>(&what, &r.body)?.repositories.unwrap_or_default())
            }
        })
        .await
    }

    /// Every tag of `repo` (`registry/repo`, paginated).
    pub async fn list_tags(&self, repo: &str) -> Result<BTreeSet<String>, OciError> {
        let (host, name) = split(repo)?;
        let what = format!("tags of {repo}");
        let tags = self
            .paged(&what, |last| {
                let what = what.clone();
                async move {
                    let path = format!("/v2/{name}/tags/list{}", Self::page_query(&last));
                    match self.http.get(host, &path, &["application/json"], MAX_MANIFEST).await? {
                        Some(r) => Ok(json_of::<TagsPage>(&what, &r.body)?.tags.unwrap_or_default()),
                        None => Ok(vec![]),
                    }
                }
            })
            .await?;
        Ok(tags.into_iter().collect())
    }

    /// A manifest by tag or digest: its bytes and digest (computed, and checked against the
    /// digest asked for). `Ok(None)`: not found.
    async fn fetch_manifest(&self, repo: &str, reference: &str) -> Result<Option<(Vec<u8>, String)>, OciError> {
        let (host, name) = split(repo)?;
        let what = format!("{repo}:{reference}");
        let Some(r) = self.http.get(host, &format!("/v2/{name}/manifests/{reference}"), ACCEPT, MAX_MANIFEST).await? else {
            return Ok(None);
        };
        let digest = sha256_digest(&r.body);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(OciError::Digest { what, got: digest, want: reference.into() });
        }
        Ok(Some((r.body, digest)))
    }

    /// The digest a tag (or digest reference) resolves to now.
    pub async fn resolve(&self, reference: &str) -> Result<String, OciError> {
        let r: Reference = reference.parse().map_err(|e| OciError::reference(reference, e))?;
        let repo = format!("{}/{}", r.registry(), r.repository());
        let tag = r.digest().map(str::to_string).unwrap_or_else(|| r.tag().unwrap_or("latest").to_string());
        let what = format!("resolve {reference}");
        self.retry(&what, || async {
            match self.fetch_manifest(&repo, &tag).await? {
                Some((_, d)) => Ok(d),
                None => Err(OciError::Fetch { what: what.clone(), detail: "manifest unknown (HTTP 404)".into() }),
            }
        })
        .await
    }

    /// The manifest `repo@digest`, checked against its digest and bounded in size.
    pub async fn manifest(&self, repo: &str, digest: &str) -> Result<Vec<u8>, OciError> {
        let what = format!("{repo}@{digest}");
        self.retry(&what, || async {
            match self.fetch_manifest(repo, digest).await? {
                Some((m, _)) => Ok(m),
                None => Err(OciError::Fetch { what: what.clone(), detail: "manifest unknown (HTTP 404)".into() }),
            }
        })
        .await
    }

    /// A blob of `repo`, bounded by [`MAX_BLOB`] while it streams, checked against its digest.
    pub async fn blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>, OciError> {
        let (host, name) = split(repo)?;
        let what = format!("blob {digest}");
        if !crate::core::digest::is_digest(digest) {
            return Err(OciError::Malformed { what, detail: "not a sha256 digest".into() });
        }
        let r = self
            .http
            .get(host, &format!("/v2/{name}/blobs/{digest}"), &["*/*"], MAX_BLOB)
            .await?
            .ok_or_else(|| OciError::Fetch { what: what.clone(), detail: "blob unknown (HTTP 404)".into() })?;
        check_digest(&what, &r.body, digest)?;
        Ok(r.body)
    }

    /// The referrers of `repo@digest`: the referrers API, else the tag schema (`sha256-<hex>`).
    async fn referrers(&self, repo: &str, digest: &str) -> Result<Option<Value>, OciError> {
        let (host, name) = split(repo)?;
        if let Some(r) = self
            .http
            .get(host, &format!("/v2/{name}/referrers/{digest}"), &["application/vnd.oci.image.index.v1+json"], MAX_MANIFEST)
            .await?
        {
            return json_of(&format!("referrers of {repo}@{digest}"), &r.body).map(Some);
        }
        Ok(self.fetch_manifest(repo, &digest.replacen(':', "-", 1)).await?.map(|(m, _)| serde_json::from_slice(&m).unwrap_or(Value::Null)))
    }

    /// An image by tag or digest, and its material (the CLI's `verify`).
    pub async fn image_material(&self, reference: &str) -> Result<ImageMaterial, OciError> {
        let r: Reference = reference.parse().map_err(|e| OciError::reference(reference, e))?;
        let repo = format!("{}/{}", r.registry(), r.repository());
        let digest = self.resolve(reference).await?;
        let manifest = self.manifest(&repo, &digest).await?;
        self.material(&repo, &digest, manifest, None).await
    }

    /// The cosign material and referrers of `repo@digest`, retried as a whole: a half-fetched
    /// set is never returned. With `present` (the repository's tag list), cosign tags that are
    /// not listed are not requested.
    pub async fn material(
        &self,
        repo: &str,
        digest: &str,
        manifest: Vec<u8>,
        present: Option<&BTreeSet<String>>,
    ) -> Result<ImageMaterial, OciError> {
        let base = ImageMaterial { name: repo.to_string(), digest: digest.to_string(), manifest, ..Default::default() };
        self.retry(&format!("material of {repo}@{digest}"), || {
            let mut fresh = base.clone();
            async move {
                self.material_once(repo, digest, present, &mut fresh).await?;
                Ok(fresh)
            }
        })
        .await
    }

    async fn material_once(
        &self,
        repo: &str,
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
            let Some((m, md)) = self.fetch_manifest(repo, &tag).await? else { continue };
            out.sources.insert(tag.clone(), md);
            let what = format!("{repo}:{tag}");
            for (mt, d, ann) in layers_of(&what, &m)? {
                let content = self.blob(repo, &d).await?;
                budget(&mut fetched, content.len(), &what)?;
                let l = CosignLayer { media_type: mt, content, annotations: ann };
                match suffix {
                    "sig" => out.sig_layers.push(l),
                    "att" => out.att_layers.push(l),
                    _ => out.sbom_layers.push(l),
                }
            }
        }
        let Some(index) = self.referrers(repo, digest).await? else { return Ok(()) };
        let descs = index["manifests"].as_array().cloned().unwrap_or_default();
        if !descs.is_empty() {
            let mut ids: Vec<&str> = descs.iter().filter_map(|d| d["digest"].as_str()).collect();
            ids.sort();
            out.sources.insert("referrers".into(), sha256_digest(ids.join(",").as_bytes()));
        }
        let bundles: Vec<&Value> = descs.iter().filter(|d| d["artifactType"].as_str() == Some(BUNDLE_V03)).collect();
        if bundles.len() > MAX_REFERRERS {
            return Err(OciError::TooMany { what: format!("{repo}@{digest}: referrers"), count: bundles.len(), max: MAX_REFERRERS });
        }
        for desc in bundles {
            let Some(md) = desc["digest"].as_str() else { continue };
            let what = format!("{repo}@{md}");
            let (m, _) = self
                .fetch_manifest(repo, md)
                .await?
                .ok_or_else(|| OciError::Fetch { what: what.clone(), detail: "referrer manifest unknown".into() })?;
            let mv: Value = json_of(&what, &m)?;
            // the tag-schema index is just a tag: anyone who can push can list a manifest there
            if mv["subject"]["digest"].as_str() != Some(digest) {
                out.skipped.push(format!("{what}: its subject is {:?}, not {digest}", mv["subject"]["digest"].as_str()));
                continue;
            }
            let pt = desc["annotations"]["dev.sigstore.bundle.predicateType"].as_str().map(str::to_string);
            for (mt, d, _) in layers_of(&what, &m)? {
                if mt == BUNDLE_V03 {
                    let b = self.blob(repo, &d).await?;
                    budget(&mut fetched, b.len(), &what)?;
                    out.bundles.push((pt.clone(), b));
                }
            }
        }
        Ok(())
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
}
