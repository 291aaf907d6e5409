//! `trustmirror serve --config FILE` (YAML): the service's configuration.
//!
//! ```yaml
//! listen: 127.0.0.1:8080            # HTTP address
//! store: /var/lib/trustmirror/store.redb
//! tuf:
//!   upstream: https://tuf.internal/   # or a directory holding an air-gap copy; absent: no refresh,
//!                                     #   the state comes only from imported bundles (bundle.inbox)
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
//!   ingest_token_file: /etc/trustmirror/ingest/token   # POST /oci/v1/ingest needs this bearer token
//! tlog:                               # optional: witness the trusted root's transparency logs
//!   witness_key: /var/lib/trustmirror/witness.key   # generated if missing
//!   witness_name: trustmirror.internal/witness
//!   interval: 5m
//! bundle:                             # optional: import air-gap bundles dropped here
//!   inbox: /var/lib/trustmirror/inbox #   (→ inbox/imported/, inbox/refused/ + reason)
//!   keys: [/etc/trustmirror/exporter.pub]   # only bundles signed by these exporters
//!   interval: 30s
//!   shared: false                     # true: several replicas read it; files stay where they are
//! freshness:                          # optional: how long decisions go on without new material
//!   tuf: {warnAfter: 1d, onExpiry: keepLastKnownGood, grace: 30d}   # (the defaults)
//!   trustedRoot: {onExpiry: warn}
//!   checkpoints: {warnAfter: 1d, onExpiry: warn}
//! admission:                          # optional: the HTTPS admission webhook
//!   listen: 0.0.0.0:8443
//!   tls:                              # either files (reloaded on change) …
//!     cert_file: /etc/trustmirror/tls/tls.crt
//!     key_file: /etc/trustmirror/tls/tls.key
//!   # tls: {generate_dir: /var/run/trustmirror/tls, dns_names: [trustmirror.trustmirror-system.svc]}
//!   policies: [/etc/trustmirror/policy/policy.yaml]   # ClusterImagePolicy / ImagePolicy documents
//!   banned_packages: /etc/trustmirror/banned/banned.yaml
//!   exemptions: /etc/trustmirror/exemptions/exemptions.yaml   # break-glass (ConfigMap)
//!   trust_roots: {staging: /etc/trustmirror/staging_trusted_root.json}
//!   failure_mode: closed              # closed: deny on internal errors; open: allow with a warning
//!   breakglass_max: 4h
//!   cache_ttl: 60s
//!   timeout: 5s
//!   max_concurrency: 256
//!   max_body: 4194304
//!   audit_file: /var/log/trustmirror/audit.jsonl
//!   record_allowed: false
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
    #[serde(default)]
    pub admission: Option<AdmissionConfig>,
    #[serde(default)]
    pub tlog: Option<TlogConfig>,
    #[serde(default)]
    pub bundle: Option<BundleInboxConfig>,
    /// How long decisions go on without new trust material (default: see core::freshness).
    #[serde(default)]
    pub freshness: Option<crate::core::freshness::FreshnessPolicy>,
}

/// Air-gap bundles dropped into a directory (`bundle:` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleInboxConfig {
    pub inbox: PathBuf,
    /// Exporter public keys: when given, only bundles signed by one of them are imported.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    #[serde(default = "d30s", deserialize_with = "de_duration")]
    pub interval: Duration,
    /// The inbox is shared by several replicas (and read-only to them): files are never moved,
    /// each replica imports every bundle once; refusals are logged and counted, not filed.
    #[serde(default)]
    pub shared: bool,
}

fn d30s() -> Duration {
    Duration::from_secs(30)
}

/// The transparency-log witness (`tlog:` section): every log of the trusted root.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlogConfig {
    /// Ed25519 seed (64 hex characters); generated (mode 0600) if the file does not exist.
    pub witness_key: PathBuf,
    #[serde(default = "default_witness_name")]
    pub witness_name: String,
    #[serde(default = "d5m", deserialize_with = "de_duration")]
    pub interval: Duration,
}

fn default_witness_name() -> String {
    "trustmirror.internal/witness".into()
}

/// The admission webhook (`admission:` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    #[serde(default = "default_webhook_listen")]
    pub listen: String,
    pub tls: WebhookTls,
    pub policies: Vec<PathBuf>,
    #[serde(default)]
    pub banned_packages: Option<PathBuf>,
    #[serde(default)]
    pub exemptions: Option<PathBuf>,
    /// The default trust root from this file instead of the mirrored TUF repository.
    #[serde(default)]
    pub trusted_root: Option<PathBuf>,
    #[serde(default)]
    pub trust_roots: std::collections::BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub failure_mode: FailureMode,
    #[serde(default = "d4h", deserialize_with = "de_duration")]
    pub breakglass_max: Duration,
    #[serde(default = "d60s", deserialize_with = "de_duration")]
    pub cache_ttl: Duration,
    #[serde(default = "d5s", deserialize_with = "de_duration")]
    pub timeout: Duration,
    #[serde(default = "d256")]
    pub max_concurrency: usize,
    #[serde(default = "d4m")]
    pub max_body: usize,
    #[serde(default)]
    pub audit_file: Option<PathBuf>,
    #[serde(default)]
    pub record_allowed: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    #[default]
    Closed,
    Open,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTls {
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub generate_dir: Option<PathBuf>,
    #[serde(default)]
    pub dns_names: Vec<String>,
}

impl WebhookTls {
    pub fn source(&self) -> anyhow::Result<crate::admission::tls::TlsSource> {
        use crate::admission::tls::TlsSource;
        match (&self.cert_file, &self.key_file, &self.generate_dir) {
            (Some(c), Some(k), None) => Ok(TlsSource::Files { cert: c.clone(), key: k.clone() }),
            (None, None, Some(d)) => {
                let names = if self.dns_names.is_empty() { vec!["localhost".into(), "127.0.0.1".into()] } else { self.dns_names.clone() };
                Ok(TlsSource::Generate { dir: d.clone(), names })
            }
            _ => Err(anyhow::anyhow!("admission.tls: give cert_file and key_file, or generate_dir (with dns_names)")),
        }
    }
}

fn default_webhook_listen() -> String {
    "0.0.0.0:8443".into()
}
fn d4h() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn d60s() -> Duration {
    Duration::from_secs(60)
}
fn d5s() -> Duration {
    Duration::from_secs(5)
}
fn d256() -> usize {
    256
}
fn d4m() -> usize {
    4 << 20
}

impl AdmissionConfig {
    pub fn engine_options(&self) -> crate::admission::EngineOptions {
        crate::admission::EngineOptions {
            freshness: Default::default(),
            policy_files: self.policies.clone(),
            banned_file: self.banned_packages.clone(),
            exemptions_file: self.exemptions.clone(),
            trust: crate::trust::TrustConfig { explicit: self.trusted_root.clone(), named: self.trust_roots.clone(), ..Default::default() },
            cache_ttl: self.cache_ttl,
            breakglass_max: jiff::SignedDuration::try_from(self.breakglass_max).unwrap_or(jiff::SignedDuration::from_hours(4)),
            fail_open: self.failure_mode == FailureMode::Open,
            record_allowed: self.record_allowed,
            audit_file: self.audit_file.clone(),
            require_mirror_sync: false,
        }
    }
    pub fn webhook_options(&self) -> anyhow::Result<crate::admission::server::WebhookOptions> {
        let mut o = crate::admission::server::WebhookOptions::new(&self.listen, self.tls.source()?);
        o.max_body = self.max_body;
        anyhow::ensure!(self.max_concurrency >= 1, "admission.max_concurrency: at least 1");
        o.max_concurrency = self.max_concurrency;
        o.timeout = self.timeout;
        Ok(o)
    }
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
    pub auth: std::collections::BTreeMap<String, crate::mirror::oci::Credentials>,
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
    /// A file holding the bearer token `POST /oci/v1/ingest` requires; without it the endpoint
    /// is closed (admission misses are still queued internally).
    #[serde(default)]
    pub ingest_token_file: Option<PathBuf>,
}

fn d8() -> usize {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufConfig {
    /// URL or directory; `None`: nothing is refreshed, the TUF state comes only from imported
    /// air-gap bundles.
    #[serde(default)]
    pub upstream: Option<String>,
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
        let c: Self = serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        c.trust_config().map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        Ok(c)
    }

    /// The sections this configuration turns on, for `serve --check-config`.
    pub fn sections(&self) -> Vec<&'static str> {
        let mut s = vec![if self.tuf.upstream.is_some() { "tuf" } else { "tuf (no upstream: imported bundles only)" }];
        for (on, name) in [
            (self.oci.is_some(), "oci"),
            (self.admission.is_some(), "admission"),
            (self.tlog.is_some(), "tlog"),
            (self.bundle.is_some(), "bundle"),
            (self.freshness.is_some(), "freshness"),
        ] {
            if on {
                s.push(name);
            }
        }
        s
    }

    /// The one trust source of the service: the mirrored TUF repository's `trusted_root.json`,
    /// or one explicit file (`admission.trusted_root` or `oci.trusted_root`: the same file if
    /// both are given), plus `admission.trust_roots`.
    pub fn trust_config(&self) -> Result<crate::trust::TrustConfig, String> {
        let a = self.admission.as_ref().and_then(|a| a.trusted_root.clone());
        let o = self.oci.as_ref().and_then(|o| o.trusted_root.clone());
        let explicit = match (a, o) {
            (Some(a), Some(o)) if a != o => {
                return Err(format!(
                    "admission.trusted_root ({}) and oci.trusted_root ({}) differ: the service verifies with one trusted root",
                    a.display(),
                    o.display()
                ));
            }
            (a, o) => a.or(o),
        };
        Ok(crate::trust::TrustConfig {
            explicit,
            tuf_repo: self.tuf.repo.clone(),
            named: self.admission.as_ref().map(|a| a.trust_roots.clone()).unwrap_or_default(),
            fallback_production: false,
        })
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
        // an air-gapped service: no upstream at all
        let c: Config = serde_yaml::from_str("tuf:\n  root: /etc/trustmirror/root.json\n").unwrap();
        assert!(c.tuf.upstream.is_none());
    }
}
