//! `trustmirror serve --config FILE` (YAML).
//!
//! ```yaml
//! listen: 127.0.0.1:8080            # HTTP address
//! store: /var/lib/trustmirror/store.redb
//! tuf:
//!   upstream: https://tuf.internal/   # or a directory holding an air-gap copy
//!   root: /etc/trustmirror/root.json  # pinned initial root; default: embedded Sigstore production root
//!   ca_file: /etc/trustmirror/ca.pem  # extra CA for an HTTPS upstream
//!   refresh_interval: 5m
//!   root_probe_interval: 1h
//!   max_backoff: 30m
//!   targets: ["trusted_root.json", "*.pub"]   # optional: mirror only these targets (globs)
//! oci:                                # optional: mirror image signatures and attestations
//!   images: ["registry.internal/myorg/**", "registry.internal/vendor/tool:v3"]
//!   insecure_registries: []           # hosts reachable over plain HTTP
//!   auth: {registry.internal: {username: u, password: p}}
//!   keys: [/etc/trustmirror/vendor.pub]
//!   interval: 5m
//!   full_recheck_interval: 1h
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_store")]
    pub store: PathBuf,
    pub tuf: TufConfig,
    #[serde(default)]
    pub oci: Option<OciConfig>,
}

/// Mirroring image signatures and attestations (`oci:` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciConfig {
    /// Patterns (`registry.internal/myorg/**`) and references.
    #[serde(default)]
    pub images: Vec<String>,
    /// OCI layout directories carried across the gap.
    #[serde(default)]
    pub layouts: Vec<PathBuf>,
    /// Registries reachable over plain HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Credentials per registry host.
    #[serde(default)]
    pub auth: std::collections::BTreeMap<String, RegistryCredentials>,
    /// Public keys (PEM) to verify key-signed material with at ingest.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Verify with this trusted_root.json instead of the mirrored TUF repository's.
    #[serde(default)]
    pub trusted_root: Option<PathBuf>,
    #[serde(default = "d5m", deserialize_with = "de_duration")]
    pub interval: Duration,
    #[serde(default = "d1h", deserialize_with = "de_duration")]
    pub full_recheck_interval: Duration,
    #[serde(default = "d8")]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentials {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

fn d8() -> usize {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufConfig {
    pub upstream: String,
    #[serde(default)]
    pub root: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_repo")]
    pub repo: String,
    /// Mirror only these targets (globs); default: all.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    #[serde(default = "d5m", deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
    #[serde(default = "d1h", deserialize_with = "de_duration")]
    pub root_probe_interval: Duration,
    #[serde(default = "d30m", deserialize_with = "de_duration")]
    pub max_backoff: Duration,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_store() -> PathBuf {
    "trustmirror.redb".into()
}
fn default_repo() -> String {
    "default".into()
}
fn d5m() -> Duration {
    Duration::from_secs(300)
}
fn d1h() -> Duration {
    Duration::from_secs(3600)
}
fn d30m() -> Duration {
    Duration::from_secs(1800)
}

pub use crate::core::clock::parse_duration;

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(Duration::from_secs(n)),
        Raw::S(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

impl Config {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_defaults() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("PT2M").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        let c: Config = serde_yaml::from_str("tuf:\n  upstream: /srv/tuf\n  refresh_interval: 2m\n").unwrap();
        assert_eq!(c.tuf.refresh_interval, Duration::from_secs(120));
        assert_eq!(c.tuf.root_probe_interval, Duration::from_secs(3600));
        assert_eq!(c.listen, "127.0.0.1:8080");
        let e = serde_yaml::from_str::<Config>("tuf:\n  upstream: x\n  refresh_intervall: 2m\n").unwrap_err();
        assert!(e.to_string().contains("refresh_intervall"), "{e}");
    }
}
