//! Where TUF metadata and targets come from: an HTTP(S) repository or a local directory (an
//! air-gap copy). Every fetch is bounded by a maximum length, read incrementally so an endless
//! response cannot grow memory, and (for HTTP) bounded in time against slow-retrieval attacks.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use url::Url;

/// A failed fetch, with the URL or path it concerned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("{what}: more than {max} bytes (download limit)")]
    TooLarge { what: String, max: u64 },
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what}: invalid name: {detail}")]
    BadName { what: String, detail: String },
}

/// Options for HTTP upstreams.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Extra CA certificates (PEM) trusted for HTTPS upstreams, beside the system roots.
    pub ca_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    /// No byte for this long aborts the transfer.
    pub read_timeout: Duration,
    /// Whole request limit.
    pub total_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            ca_pem: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
        }
    }
}

/// A TUF repository to read from.
#[derive(Debug, Clone)]
pub enum Upstream {
    Http(HttpUpstream),
    Dir(DirUpstream),
    /// None at all: the repository's state arrives only in imported air-gap bundles.
    None,
}

#[derive(Debug, Clone)]
pub struct HttpUpstream {
    metadata_base: Url,
    targets_base: Url,
    client: reqwest::Client,
    requests: Arc<AtomicU64>,
}

#[derive(Debug, Clone)]
pub struct DirUpstream {
    metadata_dir: PathBuf,
    targets_dir: PathBuf,
    requests: Arc<AtomicU64>,
}

fn with_slash(s: &str) -> String {
    if s.ends_with('/') { s.to_string() } else { format!("{s}/") }
}

impl Upstream {
    /// `http(s)://…` is a repository URL (targets under `targets/`); anything else is a directory
    /// with the same layout.
    pub fn parse(spec: &str, opts: &HttpOptions) -> Result<Self, FetchError> {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let base = Url::parse(&with_slash(spec)).map_err(|e| FetchError::BadName { what: spec.into(), detail: e.to_string() })?;
            let targets = base.join("targets/").map_err(|e| FetchError::BadName { what: spec.into(), detail: e.to_string() })?;
            Ok(Upstream::Http(HttpUpstream::new(base, targets, opts)?))
        } else {
            let dir = PathBuf::from(spec.strip_prefix("file://").unwrap_or(spec));
            Ok(Upstream::Dir(DirUpstream { targets_dir: dir.join("targets"), metadata_dir: dir, requests: Default::default() }))
        }
    }

    /// Metadata and targets at separate bases (the tuf-conformance contract).
    pub fn parse_split(metadata: &str, targets: &str, opts: &HttpOptions) -> Result<Self, FetchError> {
        let mut up = Self::parse(metadata, opts)?;
        match &mut up {
            Upstream::Http(h) => {
                h.targets_base =
                    Url::parse(&with_slash(targets)).map_err(|e| FetchError::BadName { what: targets.into(), detail: e.to_string() })?;
            }
            Upstream::Dir(d) => d.targets_dir = PathBuf::from(targets),
            Upstream::None => {}
        }
        Ok(up)
    }

    pub fn describe(&self) -> String {
        match self {
            Upstream::Http(h) => h.metadata_base.to_string(),
            Upstream::Dir(d) => d.metadata_dir.display().to_string(),
            Upstream::None => String::new(),
        }
    }

    /// No upstream: nothing to refresh from.
    pub fn is_none(&self) -> bool {
        matches!(self, Upstream::None)
    }

    fn none(what: &str) -> FetchError {
        FetchError::Failed { what: what.into(), detail: "no upstream is configured (the state comes from imported bundles)".into() }
    }

    /// Number of fetches attempted so far (requests for HTTP, file opens for directories).
    pub fn requests(&self) -> u64 {
        match self {
            Upstream::Http(h) => h.requests.load(Ordering::Relaxed),
            Upstream::Dir(d) => d.requests.load(Ordering::Relaxed),
            Upstream::None => 0,
        }
    }

    /// Fetch a metadata file by name. `Ok(None)` means not found (404/403, or no such file).
    pub async fn fetch_metadata(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, FetchError> {
        check_relative(name)?;
        match self {
            Upstream::Http(h) => {
                let url = h.metadata_base.join(name).map_err(|e| FetchError::BadName { what: name.into(), detail: e.to_string() })?;
                h.get(url, max).await
            }
            Upstream::Dir(d) => d.read(&d.metadata_dir, name, max).await,
            Upstream::None => Err(Self::none(name)),
        }
    }

    /// Fetch a target by its repository-relative path (already hash-prefixed if consistent).
    pub async fn fetch_target(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FetchError> {
        check_relative(path)?;
        match self {
            Upstream::Http(h) => {
                let url = h.targets_base.join(path).map_err(|e| FetchError::BadName { what: path.into(), detail: e.to_string() })?;
                h.get(url, max).await
            }
            Upstream::Dir(d) => d.read(&d.targets_dir, path, max).await,
            Upstream::None => Err(Self::none(path)),
        }
    }
}

/// Names come from metadata (i.e. from the upstream): never let one escape the base.
fn check_relative(name: &str) -> Result<(), FetchError> {
    let p = Path::new(name);
    let bad = name.is_empty() || name.contains('\0') || name.contains('\\') || p.components().any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(FetchError::BadName { what: name.into(), detail: "must be a relative path without `..`".into() });
    }
    Ok(())
}

impl HttpUpstream {
    fn new(metadata_base: Url, targets_base: Url, opts: &HttpOptions) -> Result<Self, FetchError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .timeout(opts.total_timeout)
            .user_agent(concat!("trustmirror/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(pem) = &opts.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| FetchError::Failed { what: "upstream CA bundle".into(), detail: e.to_string() })?;
            if certs.is_empty() {
                return Err(FetchError::Failed { what: "upstream CA bundle".into(), detail: "no PEM certificate found".into() });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(|e| FetchError::Failed { what: "HTTP client".into(), detail: e.to_string() })?;
        Ok(Self { metadata_base, targets_base, client, requests: Default::default() })
    }

    async fn get(&self, url: Url, max: u64) -> Result<Option<Vec<u8>>, FetchError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let what = url.to_string();
        let fail = |detail: String| FetchError::Failed { what: what.clone(), detail };
        let mut resp = self.client.get(url.clone()).send().await.map_err(|e| fail(crate::core::tuf::display_chain(&e)))?;
        let status = resp.status();
        // 403 counts as "not found": object stores answer it for missing keys.
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP status {status}")));
        }
        if resp.content_length().is_some_and(|l| l > max) {
            return Err(FetchError::TooLarge { what, max });
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(crate::core::tuf::display_chain(&e)))? {
            if buf.len() as u64 + chunk.len() as u64 > max {
                return Err(FetchError::TooLarge { what, max });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf))
    }
}

impl DirUpstream {
    async fn read(&self, base: &Path, name: &str, max: u64) -> Result<Option<Vec<u8>>, FetchError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let path = base.join(name);
        let what = path.display().to_string();
        let path2 = path.clone();
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
            use std::io::Read;
            let f = match std::fs::File::open(&path2) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if !f.metadata()?.is_file() {
                return Ok(None);
            }
            let mut buf = Vec::new();
            f.take(max.saturating_add(1)).read_to_end(&mut buf)?;
            Ok(Some(buf))
        })
        .await
        .map_err(|e| FetchError::Failed { what: what.clone(), detail: e.to_string() })?
        .map_err(|e| FetchError::Failed { what: what.clone(), detail: e.to_string() })?;
        match res {
            Some(b) if b.len() as u64 > max => Err(FetchError::TooLarge { what, max }),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_base() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "a\\b", "./a"] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
        for ok in ["1.root.json", "targets/abc.x", "dir/sub/hash.name", "a%2Fb.json"] {
            assert!(check_relative(ok).is_ok(), "{ok}");
        }
    }

    #[tokio::test]
    async fn dir_reads_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("timestamp.json"), vec![b'x'; 100]).unwrap();
        let up = Upstream::parse(d.path().to_str().unwrap(), &HttpOptions::default()).unwrap();
        assert_eq!(up.fetch_metadata("timestamp.json", 100).await.unwrap().unwrap().len(), 100);
        let e = up.fetch_metadata("timestamp.json", 99).await.unwrap_err();
        assert!(matches!(e, FetchError::TooLarge { max: 99, .. }), "{e}");
        assert!(up.fetch_metadata("2.root.json", 10).await.unwrap().is_none());
        assert_eq!(up.requests(), 3);
    }
}
