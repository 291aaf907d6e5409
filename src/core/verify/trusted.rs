//! Trusted material: a parsed `trusted_root.json` with what each verification path needs from it
//! prepared once (sigstore-verify's verifier, the Rekor keyring, the Fulcio trust anchors, the CT
//! log keys), and several of them side by side.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use sigstore_trust_root::TrustedRoot;
use sigstore_verify::Verifier;

use super::error::{Check, VerifyError, VerifyResult};

/// Largest bundle (or trusted root) accepted, in bytes.
pub const MAX_DOCUMENT: usize = 16 * 1024 * 1024;

/// A parsed `trusted_root.json`, ready to verify against.
pub struct TrustedMaterial {
    /// A name policies refer to (`production`, `staging`, `internal`, a file name).
    pub name: String,
    /// SHA-256 of the document: the "trust version" decision caches key on.
    pub digest: String,
    pub root: TrustedRoot,
    pub(super) verifier: Verifier,
    /// The trusted root's Rekor keys, for the log checks done in `rekor_log`.
    rekor_keys: sigstore_crypto::Keyring,
    /// Its Fulcio CAs and CT log keys, for the certificates checked in `keyless`.
    anchors: crate::core::fulcio::Anchors,
    ct_keys: crate::core::sct::CtKeys,
}

impl std::fmt::Debug for TrustedMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedMaterial").field("name", &self.name).field("digest", &self.digest).finish()
    }
}

impl TrustedMaterial {
    pub fn from_json(name: &str, json: &[u8]) -> VerifyResult<Self> {
        if json.len() > MAX_DOCUMENT {
            return Err(VerifyError::new(
                Check::TrustRoot,
                format!("trusted root {name}: {} bytes exceeds the {MAX_DOCUMENT}-byte limit", json.len()),
            ));
        }
        let text =
            std::str::from_utf8(json).map_err(|e| VerifyError::new(Check::TrustRoot, format!("trusted root {name}: not UTF-8: {e}")))?;
        let mt: serde_json::Value =
            serde_json::from_str(text).map_err(|e| VerifyError::new(Check::TrustRoot, format!("trusted root {name}: not JSON: {e}")))?;
        match mt.get("mediaType").and_then(|m| m.as_str()) {
            Some("application/vnd.dev.sigstore.trustedroot+json;version=0.1")
            | Some("application/vnd.dev.sigstore.trustedroot.v0.2+json") => {}
            other => {
                return Err(VerifyError::new(
                    Check::TrustRoot,
                    format!(
                        "trusted root {name}: unsupported mediaType {other:?} (expected application/vnd.dev.sigstore.trustedroot+json;version=0.1 or …trustedroot.v0.2+json)"
                    ),
                ));
            }
        }
        let root = TrustedRoot::from_json(text)
            .map_err(|e| VerifyError::new(Check::TrustRoot, format!("trusted root {name}: {}", crate::core::tuf::display_chain(&e))))?;
        let verifier = Verifier::new(&root)
            .map_err(|e| VerifyError::new(Check::TrustRoot, format!("trusted root {name}: {}", crate::core::tuf::display_chain(&e))))?;
        let rekor_keys = root
            .rekor_keys()
            .map_err(|e| VerifyError::new(Check::TrustRoot, format!("trusted root {name}: {}", crate::core::tuf::display_chain(&e))))?;
        let anchors = crate::core::fulcio::Anchors::from_root(&root)
            .map_err(|e| VerifyError::new(Check::TrustRoot, format!("trusted root {name}: {e}")))?;
        let ct_keys = crate::core::sct::CtKeys::from_root(&root)
            .map_err(|e| VerifyError::new(Check::TrustRoot, format!("trusted root {name}: {e}")))?;
        Ok(Self { name: name.into(), digest: hex::encode(Sha256::digest(json)), root, verifier, rekor_keys, anchors, ct_keys })
    }

    /// The trusted root's Rekor keys.
    pub(crate) fn rekor_keys(&self) -> &sigstore_crypto::Keyring {
        &self.rekor_keys
    }

    pub(crate) fn anchors(&self) -> &crate::core::fulcio::Anchors {
        &self.anchors
    }

    pub(crate) fn ct_keys(&self) -> &crate::core::sct::CtKeys {
        &self.ct_keys
    }

    /// The Sigstore public-good production trusted root, embedded.
    pub fn production() -> &'static TrustedMaterial {
        static P: OnceLock<TrustedMaterial> = OnceLock::new();
        P.get_or_init(|| {
            TrustedMaterial::from_json("production", crate::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT)
                .expect("embedded production trusted root parses")
        })
    }

    /// The production root as a shared handle.
    pub fn production_arc() -> std::sync::Arc<TrustedMaterial> {
        static P: OnceLock<std::sync::Arc<TrustedMaterial>> = OnceLock::new();
        P.get_or_init(|| {
            std::sync::Arc::new(
                TrustedMaterial::from_json("production", crate::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT).expect("embedded"),
            )
        })
        .clone()
    }

    /// The Sigstore staging trusted root, embedded.
    pub fn staging() -> &'static TrustedMaterial {
        static S: OnceLock<TrustedMaterial> = OnceLock::new();
        S.get_or_init(|| {
            TrustedMaterial::from_json("staging", crate::bundles::SIGSTORE_STAGING_TRUSTED_ROOT)
                .expect("embedded staging trusted root parses")
        })
    }
}

/// Several trust roots side by side (production, staging, an internal instance, …); a policy
/// names the one it uses.
#[derive(Debug, Default)]
pub struct TrustStore {
    roots: std::collections::BTreeMap<String, std::sync::Arc<TrustedMaterial>>,
}

impl TrustStore {
    pub fn insert(&mut self, tm: TrustedMaterial) {
        self.roots.insert(tm.name.clone(), std::sync::Arc::new(tm));
    }
    pub fn get(&self, name: &str) -> VerifyResult<std::sync::Arc<TrustedMaterial>> {
        self.roots.get(name).cloned().ok_or_else(|| {
            VerifyError::new(
                Check::TrustRoot,
                format!("no trusted root named {name:?} (have: {})", self.roots.keys().cloned().collect::<Vec<_>>().join(", ")),
            )
        })
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roots.keys().map(String::as_str)
    }
    /// A combined digest of every root: changes whenever any root changes (caches key on it).
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (n, tm) in &self.roots {
            h.update(n.as_bytes());
            h.update(tm.digest.as_bytes());
        }
        hex::encode(h.finalize())
    }
}
