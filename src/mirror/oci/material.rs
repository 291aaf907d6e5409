//! What every OCI source (a registry, a layout directory) yields and how reading one fails: the
//! limits on what anyone who can push may make a read cost, the error, an image's cosign
//! material, the credentials and options a registry is read with, and the manifest helpers both
//! sources share.

use std::collections::BTreeMap;
use std::time::Duration;

use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use serde_json::Value;

use crate::core::cosign::CosignLayer;
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

/// Why reading from a registry or layout failed. `what` names the reference, tag or blob.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OciError {
    #[error("{what}: {detail}")]
    Fetch { what: String, detail: String },
    #[error("{what}: digest mismatch: content hashes to {got}, expected {want}")]
    Digest { what: String, got: String, want: String },
    #[error("{what}: {size} bytes exceeds the {max}-byte limit")]
    TooLarge { what: String, size: usize, max: usize },
    #[error("{what}: {count} exceeds the limit of {max}")]
    TooMany { what: String, count: usize, max: usize },
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
        return Err(OciError::TooMany { what: format!("{what}: layers"), count: layers.len(), max: MAX_LAYERS });
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

#[cfg(test)]
mod tests {
    use super::*;

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
