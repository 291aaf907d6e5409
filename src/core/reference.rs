//! Image references normalized before anything is matched against them: the host lower-cased,
//! the HTTPS default port dropped, Docker Hub's aliases folded into `docker.io` with its implicit
//! `library/` namespace. `Registry.Internal:443/MyOrg/app` and `registry.internal/MyOrg/app` are
//! one repository to a registry, so they must be one repository to a policy (otherwise a
//! reference written differently escapes the policy that covers it).

/// The names Docker Hub answers to.
const DOCKER_HUB: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

/// Normalize a registry host (`Host:443` → `host`, Docker Hub aliases → `docker.io`).
pub fn normalize_host(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    let h = h.strip_suffix(":443").map(str::to_string).unwrap_or(h);
    if DOCKER_HUB.contains(&h.as_str()) { "docker.io".into() } else { h }
}

/// Normalize `registry/repo` (or a glob over it): the host part as [`normalize_host`], and Docker
/// Hub's one-segment repositories under `library/`.
pub fn normalize_repository(repository: &str) -> String {
    let (host, path) = match repository.split_once('/') {
        Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => (normalize_host(h), p.to_string()),
        // no registry host: Docker Hub, as every container runtime reads it
        _ => ("docker.io".to_string(), repository.to_string()),
    };
    let path = if host == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
    format!("{host}/{path}")
}

/// A parsed image reference: normalized repository, and the tag or digest it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `registry/repo`, normalized.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Parse and normalize a reference as a workload writes it (`nginx`, `nginx:1.25`,
/// `reg:5000/a/b@sha256:…`, `reg/a/b:t@sha256:…`).
pub fn parse(reference: &str) -> Result<ImageRef, String> {
    let r: oci_client::Reference = reference.parse().map_err(|e| format!("{reference:?} is not a valid image reference: {e}"))?;
    let digest = r.digest().map(str::to_string);
    if let Some(d) = &digest
        && !crate::core::digest::is_digest(d)
    {
        return Err(format!("{reference:?}: only sha256 digests are supported"));
    }
    Ok(ImageRef {
        repository: normalize_repository(&format!("{}/{}", r.registry(), r.repository())),
        tag: if digest.is_some() { None } else { Some(r.tag().unwrap_or("latest").to_string()) },
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_repository_normalize_to_one() {
        for (a, b) in [
            ("Registry.Internal:443/myorg/app", "registry.internal/myorg/app"),
            ("index.docker.io/library/nginx", "docker.io/library/nginx"),
            ("registry-1.docker.io/nginx", "docker.io/library/nginx"),
            ("nginx", "docker.io/library/nginx"),
            ("docker.io/bitnami/redis", "docker.io/bitnami/redis"),
            ("127.0.0.1:5000/myorg/app", "127.0.0.1:5000/myorg/app"),
            ("localhost/x", "localhost/x"),
        ] {
            assert_eq!(normalize_repository(a), b, "{a}");
        }
        let r = parse("Registry.Internal:443/myorg/app:v1").unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_deref(), r.digest), ("registry.internal/myorg/app", Some("v1"), None));
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse(&format!("nginx@{d}")).unwrap().digest.as_deref(), Some(d.as_str()));
        assert!(parse("UPPER/Case:tag@@").is_err());
        assert!(parse(&format!("x/y@sha512:{}", "a".repeat(128))).is_err());
    }
}
