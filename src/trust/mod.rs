//! Where trust comes from: one provider of trusted roots shared by admission, the OCI mirror, the
//! witness, the gate and the CLI, so they never disagree about what "the trusted root" is.
//!
//! The default root is, in order: an explicit `trusted_root.json` file; the `trusted_root.json`
//! target of the mirrored TUF repository (its name from the configuration, `default` unless
//! several are mirrored); and — only where the caller allows it (`fallback_production`), as
//! cosign does for a connected host — the Sigstore production root compiled into the binary.
//! Named roots (`trustRootRef` in a policy) come from files. Every root is re-read when its
//! source changes (the mirrored target's hash, a file's content), checked at most once a
//! second; the combined digest ([`TrustStore::digest`]) changes with any of them, and the
//! admission decision cache keys on it.
//!
//! Public keys and the witness's signing key are loaded by [`keys`].

pub mod freshness;
pub mod keys;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::digest::sha256_hex;
use crate::core::verify::{TrustStore, TrustedMaterial};
use crate::store::Store;

/// Anything that hands out the trust root to verify with now (the mirror and the witness call it
/// once per unit of work). Implemented by [`TrustSource`] and by closures (tests, one-off CLI
/// commands with a fixed root).
pub trait TrustRoot: Send + Sync {
    fn current(&self) -> Arc<TrustedMaterial>;
}

impl<F: Fn() -> Arc<TrustedMaterial> + Send + Sync> TrustRoot for F {
    fn current(&self) -> Arc<TrustedMaterial> {
        self()
    }
}

/// Where a [`TrustSource`] finds its roots.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The default root from this file instead of the mirrored TUF repository.
    pub explicit: Option<PathBuf>,
    /// The mirrored TUF repository whose `trusted_root.json` is the default root.
    pub tuf_repo: String,
    /// Further named roots (`trustRootRef`), from files.
    pub named: BTreeMap<String, PathBuf>,
    /// With no explicit file and nothing mirrored yet, use the embedded production root.
    pub fallback_production: bool,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self { explicit: None, tuf_repo: "default".into(), named: BTreeMap::new(), fallback_production: false }
    }
}

/// Why a root is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("no trusted root yet: the TUF mirror (repository {0:?}) holds no trusted_root.json")]
    NotMirrored(String),
    #[error("trusted root {name}: {detail}")]
    Unusable { name: String, detail: String },
}

struct Cached {
    checked: Option<Instant>,
    /// Source fingerprint (name → hash of what was read) of the cached store.
    key: BTreeMap<String, String>,
    roots: Arc<TrustStore>,
    errors: BTreeMap<String, TrustError>,
}

/// The one trust provider: reads its roots from the store and files, caches them, re-reads them
/// when their sources change.
pub struct TrustSource {
    store: Arc<Store>,
    cfg: TrustConfig,
    state: Mutex<Cached>,
}

const RECHECK: Duration = Duration::from_secs(1);

impl TrustSource {
    pub fn new(store: Arc<Store>, cfg: TrustConfig) -> Self {
        Self {
            store,
            cfg,
            state: Mutex::new(Cached {
                checked: None,
                key: BTreeMap::new(),
                roots: Arc::new(TrustStore::default()),
                errors: BTreeMap::new(),
            }),
        }
    }

    pub fn config(&self) -> &TrustConfig {
        &self.cfg
    }

    /// Every usable root (`default` and the named ones). A root that cannot be read is absent
    /// (policies naming it fail with "no trusted root named …"); see [`TrustSource::errors`].
    pub fn roots(&self) -> Arc<TrustStore> {
        self.refresh();
        self.state.lock().unwrap_or_else(|e| e.into_inner()).roots.clone()
    }

    /// The default root, or why there is none.
    pub fn default_root(&self) -> Result<Arc<TrustedMaterial>, TrustError> {
        let roots = self.roots();
        roots.get("default").map_err(|_| {
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .errors
                .get("default")
                .cloned()
                .unwrap_or_else(|| TrustError::NotMirrored(self.cfg.tuf_repo.clone()))
        })
    }

    /// Why each unusable root is unusable (readiness and logs).
    pub fn errors(&self) -> BTreeMap<String, TrustError> {
        self.refresh();
        self.state.lock().unwrap_or_else(|e| e.into_inner()).errors.clone()
    }

    /// Re-read the sources (at most once a second) and rebuild the roots when any changed.
    fn refresh(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.checked.is_some_and(|t| t.elapsed() < RECHECK) {
            return;
        }
        st.checked = Some(Instant::now());
        let mut read: BTreeMap<String, Result<(String, Vec<u8>), TrustError>> = BTreeMap::new();
        read.insert("default".into(), self.read_default());
        for (name, p) in &self.cfg.named {
            read.insert(name.clone(), read_file(name, p));
        }
        let key: BTreeMap<String, String> =
            read.iter().map(|(n, r)| (n.clone(), r.as_ref().map(|(h, _)| h.clone()).unwrap_or_else(|e| format!("error: {e}")))).collect();
        if key == st.key {
            return;
        }
        let mut roots = TrustStore::default();
        let mut errors = BTreeMap::new();
        for (name, r) in read {
            match r.and_then(|(_, bytes)| {
                TrustedMaterial::from_json(&name, &bytes).map_err(|e| TrustError::Unusable { name: name.clone(), detail: e.detail })
            }) {
                Ok(tm) => roots.insert(tm),
                Err(e) => {
                    tracing::warn!(root = %name, error = %e, "trusted root unusable");
                    errors.insert(name, e);
                }
            }
        }
        tracing::info!(roots = %roots.names().collect::<Vec<_>>().join(","), digest = %&roots.digest()[..16], "trusted roots loaded");
        *st = Cached { checked: Some(Instant::now()), key, roots: Arc::new(roots), errors };
    }

    fn read_default(&self) -> Result<(String, Vec<u8>), TrustError> {
        if let Some(p) = &self.cfg.explicit {
            return read_file("default", p);
        }
        let mirrored = self
            .store
            .tuf_targets(&self.cfg.tuf_repo)
            .map_err(|e| TrustError::Unusable { name: "default".into(), detail: e.to_string() })?
            .get("trusted_root.json")
            .cloned();
        match mirrored {
            Some(t) => match self.store.blob(&t.sha256) {
                Ok(Some(b)) => Ok((t.sha256, b)),
                Ok(None) => Err(TrustError::Unusable {
                    name: "default".into(),
                    detail: "trusted_root.json is listed but its bytes are missing from the store".into(),
                }),
                Err(e) => Err(TrustError::Unusable { name: "default".into(), detail: e.to_string() }),
            },
            None if self.cfg.fallback_production => {
                let b = crate::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT;
                Ok((sha256_hex(b), b.to_vec()))
            }
            None => Err(TrustError::NotMirrored(self.cfg.tuf_repo.clone())),
        }
    }
}

fn read_file(name: &str, p: &std::path::Path) -> Result<(String, Vec<u8>), TrustError> {
    let b = std::fs::read(p).map_err(|e| TrustError::Unusable { name: name.into(), detail: format!("reading {}: {e}", p.display()) })?;
    Ok((sha256_hex(&b), b))
}

impl TrustRoot for TrustSource {
    /// The default root; when none is usable, the embedded production root (verification then
    /// refuses internal material, which is re-verified once a root is mirrored: material records
    /// carry the digest of the root they were verified under).
    fn current(&self) -> Arc<TrustedMaterial> {
        match self.default_root() {
            Ok(tm) => tm,
            Err(e) => {
                tracing::error!(error = %e, "no usable trusted root; verifying with the embedded production root meanwhile");
                TrustedMaterial::production_arc()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_follow_their_files_and_the_combined_digest_changes() {
        let d = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(d.path().join("s.redb")).unwrap());
        let staging = d.path().join("staging.json");
        std::fs::write(&staging, crate::bundles::SIGSTORE_STAGING_TRUSTED_ROOT).unwrap();
        let cfg = TrustConfig { named: [("staging".to_string(), staging.clone())].into(), ..Default::default() };
        let ts = TrustSource::new(store.clone(), cfg);
        assert_eq!(ts.default_root().unwrap_err(), TrustError::NotMirrored("default".into()));
        let r1 = ts.roots();
        assert!(r1.get("staging").is_ok() && r1.get("default").is_err());
        // the named root's file changes: after the recheck interval the new content is used
        std::fs::write(&staging, crate::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT).unwrap();
        ts.state.lock().unwrap().checked = None;
        let r2 = ts.roots();
        assert_ne!(r1.digest(), r2.digest(), "a changed named root changes the combined digest");
        // a broken file: the root disappears and the error says why
        std::fs::write(&staging, b"{").unwrap();
        ts.state.lock().unwrap().checked = None;
        assert!(ts.roots().get("staging").is_err());
        assert!(matches!(ts.errors().get("staging"), Some(TrustError::Unusable { .. })));
        // fallback only when asked
        let fb = TrustSource::new(store, TrustConfig { fallback_production: true, ..Default::default() });
        assert_eq!(fb.default_root().unwrap().digest, sha256_hex(crate::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT));
    }
}
