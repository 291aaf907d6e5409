//! The node agent's TUF client and its cache. The cache is the metadata directory of a TUF
//! client for the mirror, in the layout cosign (sigstore-go) uses under `TUF_ROOT`:
//! `DIR/tuf/remote.json` names the mirror, `DIR/tuf/<mirror as a path>/` holds the trusted
//! `root.json`, `timestamp.json`, `snapshot.json`, `targets.json` and `targets/<name>`. Every file
//! there was verified before it was written (the client persists each role only after verifying
//! it, targets only after their length and hashes matched), and each is replaced atomically.
//!
//! Online, a refresh runs the TUF workflow against the mirror from the newest root the cache
//! holds (or the pinned one). Offline, the cache is verified again from its root — signatures,
//! versions, hashes — and judged by the freshness policy: unexpired, or expired for less than the
//! grace the operator allowed (then it is served as stale, and said to be).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use crate::core::tuf::{Trusted, TufError, TufErrorKind, TufResult, check_target, peek};
use crate::mirror::tuf_client::{DirMetadata, Limits, ResolvedTarget, Updater};
use crate::mirror::upstream::Upstream;

/// The target every node needs.
pub const TRUSTED_ROOT: &str = "trusted_root.json";
/// Wanted when the repository has it (sigstore-python's trust config needs it).
pub const SIGNING_CONFIG: &str = "signing_config.v0.2.json";

/// Where the material came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A refresh against the mirror just verified it.
    Mirror,
    /// The mirror was not reachable (or failed); the cache verified on its own.
    Cache,
}

/// Verified material: the trusted roles and the targets the node needs.
#[derive(Debug, Clone)]
pub struct Verified {
    pub source: Source,
    /// `Some(why)` when served under the grace period (something has expired).
    pub stale: Option<String>,
    /// role → (version, expires).
    pub roles: BTreeMap<String, (u64, Timestamp)>,
    /// target name → bytes (length and hashes checked against the trusted targets metadata).
    pub targets: BTreeMap<String, Vec<u8>>,
}

impl Verified {
    /// When the material stops being fresh: the earliest expiry of a role.
    pub fn expires(&self) -> Option<Timestamp> {
        self.roles.values().map(|(_, e)| *e).min()
    }
}

/// sigstore-go's `URLToPath` (≥ 0.7.1, cosign ≥ 2.5): the scheme dropped, `/` and `:` as `-`,
/// lower case. The mirror string is used without a trailing slash, as in `remote.json`.
pub fn url_to_path(mirror: &str) -> String {
    let s = mirror.trim_end_matches('/');
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    s.replace(['/', ':'], "-").to_lowercase()
}

/// The node's TUF cache for one mirror.
pub struct TufCache {
    /// `DIR/tuf` (cosign's `TUF_ROOT`).
    pub tuf_root: PathBuf,
    /// `DIR/tuf/<url_to_path(mirror)>`.
    pub meta: PathBuf,
    pub mirror: String,
    pinned_root: Vec<u8>,
}

fn err(role: &str, kind: TufErrorKind, detail: impl Into<String>) -> TufError {
    TufError::new(role, kind, detail)
}

impl TufCache {
    pub fn new(out: &Path, mirror: &str, pinned_root: Vec<u8>) -> Self {
        let tuf_root = out.join("tuf");
        let meta = tuf_root.join(url_to_path(mirror));
        Self { tuf_root, meta, mirror: mirror.trim_end_matches('/').to_string(), pinned_root }
    }

    fn local(&self, role: &str) -> Option<Vec<u8>> {
        std::fs::read(self.meta.join(format!("{role}.json"))).ok()
    }

    fn target_path(&self, name: &str) -> PathBuf {
        // go-tuf stores targets under their plain name, escaped as Go's url.PathEscape does (a
        // path segment: unreserved characters and `$&+,:;=@` stay as they are)
        const GO_PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~')
            .remove(b'$')
            .remove(b'&')
            .remove(b'+')
            .remove(b',')
            .remove(b':')
            .remove(b';')
            .remove(b'=')
            .remove(b'@');
        self.meta.join("targets").join(percent_encoding::utf8_percent_encode(name, GO_PATH_SEGMENT).to_string())
    }

    /// The root to start from: the cached one when it is at least as new as the pinned one (a
    /// newer pinned root — an operator re-pinning — wins), else the pinned one.
    fn start_root(&self) -> TufResult<Trusted> {
        let pinned =
            Trusted::from_root(&self.pinned_root).map_err(|e| err("root", e.kind, format!("the pinned root (--root): {}", e.detail)))?;
        if let Some(b) = self.local("root")
            && let Ok(t) = Trusted::from_root(&b)
            && t.root().version >= pinned.root().version
            && (t.root().version > pinned.root().version || b == self.pinned_root)
        {
            return Ok(t);
        }
        Ok(pinned)
    }

    fn write_remote(&self) -> TufResult<()> {
        let remote = serde_json::to_vec(&serde_json::json!({"mirror": self.mirror})).expect("json");
        write_if_changed(&self.tuf_root.join("remote.json"), &remote)
            .map_err(|e| err("remote.json", TufErrorKind::Store, e.to_string()))
            .map(|_| ())
    }

    /// Refresh against the mirror; on success every wanted target is in the cache, verified.
    pub async fn refresh(&self, upstream: Upstream, now: Timestamp, optional: &[&str]) -> TufResult<Verified> {
        std::fs::create_dir_all(self.meta.join("targets")).map_err(|e| err("cache", TufErrorKind::Store, e.to_string()))?;
        self.write_remote()?;
        let start = self.start_root()?;
        if self.local("root").as_deref() != Some(start.root_bytes()) {
            write_if_changed(&self.meta.join("root.json"), start.root_bytes())
                .map_err(|e| err("root", TufErrorKind::Store, e.to_string()))?;
        }
        let mut u = Updater::new(upstream, start.root_bytes(), Limits::default())?;
        let mut local = DirMetadata { dir: self.meta.clone() };
        u.refresh(&mut local, now, None).await?;
        let mut targets = BTreeMap::new();
        for (name, required) in std::iter::once((TRUSTED_ROOT, true)).chain(optional.iter().map(|n| (*n, false))) {
            let Some(t) = u.find_target(&mut local, name, now).await? else {
                if required {
                    return Err(err(&format!("target {name}"), TufErrorKind::NotFound, "the repository does not list it"));
                }
                continue;
            };
            let bytes = match self.cached_target(&t) {
                Some(b) => b,
                None => {
                    let b = u.download_target(&t).await?;
                    write_if_changed(&self.target_path(name), &b).map_err(|e| err(name, TufErrorKind::Store, e.to_string()))?;
                    b
                }
            };
            targets.insert(name.to_string(), bytes);
        }
        Ok(Verified { source: Source::Mirror, stale: None, roles: roles(u.trusted()), targets })
    }

    fn cached_target(&self, t: &ResolvedTarget) -> Option<Vec<u8>> {
        let b = std::fs::read(self.target_path(&t.path)).ok()?;
        check_target(&b, &t.info, &t.path).ok().map(|_| b)
    }

    /// Verify the cache on its own at `now`; if something has expired and `grace` allows it,
    /// again at `now - grace`, and say it is stale.
    pub fn verify_offline(&self, now: Timestamp, grace: SignedDuration, optional: &[&str]) -> TufResult<Verified> {
        match self.verify_at(now, optional) {
            Err(e) if e.kind == TufErrorKind::Expired && grace > SignedDuration::ZERO => {
                let mut v = self.verify_at(now - grace, optional).map_err(|e2| {
                    if e2.kind == TufErrorKind::Expired {
                        err(&e2.role, TufErrorKind::Expired, format!("{}; past the grace period of {grace:#}", e2.detail))
                    } else {
                        e2
                    }
                })?;
                v.stale = Some(format!("{} (within the grace period of {grace:#})", e));
                Ok(v)
            }
            r => r,
        }
    }

    fn verify_at(&self, at: Timestamp, optional: &[&str]) -> TufResult<Verified> {
        let none = |role: &str| err(role, TufErrorKind::NotFound, format!("not in the cache {}", self.meta.display()));
        let mut t = self.start_root()?;
        if self.local("root").is_none() {
            return Err(none("root"));
        }
        t.check_root_expired(at)?;
        t.update_timestamp(&self.local("timestamp").ok_or_else(|| none("timestamp"))?, at)?;
        t.check_timestamp_expired(at)?;
        t.update_snapshot(&self.local("snapshot").ok_or_else(|| none("snapshot"))?, at)?;
        t.check_snapshot_expired(at)?;
        t.update_targets(&self.local("targets").ok_or_else(|| none("targets"))?, at)?;
        let top = t.top_targets().expect("just verified");
        if top.signed_expired(at) {
            return Err(err("targets", TufErrorKind::Expired, "expired"));
        }
        let mut targets = BTreeMap::new();
        for (name, required) in std::iter::once((TRUSTED_ROOT, true)).chain(optional.iter().map(|n| (*n, false))) {
            let Some(info) = top.targets.get(name) else {
                if required {
                    return Err(err(&format!("target {name}"), TufErrorKind::NotFound, "the cached targets metadata does not list it"));
                }
                continue;
            };
            let Ok(b) = std::fs::read(self.target_path(name)) else {
                if required {
                    return Err(none(&format!("target {name}")));
                }
                continue;
            };
            check_target(&b, info, name)?;
            targets.insert(name.to_string(), b);
        }
        Ok(Verified { source: Source::Cache, stale: None, roles: roles(&t), targets })
    }
}

trait Expiring {
    fn signed_expired(&self, at: Timestamp) -> bool;
}

impl Expiring for sigstore_tuf::Targets {
    fn signed_expired(&self, at: Timestamp) -> bool {
        self.expires < at
    }
}

fn roles(t: &Trusted) -> BTreeMap<String, (u64, Timestamp)> {
    let mut out = BTreeMap::new();
    out.insert("root".into(), (t.root().version, t.root().expires));
    if let Some(x) = t.timestamp() {
        out.insert("timestamp".into(), (x.version, x.expires));
    }
    if let Some(x) = t.snapshot() {
        out.insert("snapshot".into(), (x.version, x.expires));
    }
    if let Some(x) = t.top_targets() {
        out.insert("targets".into(), (x.version, x.expires));
    }
    out
}

/// Replace `path` atomically unless it already holds `bytes` (no needless writes on every
/// cycle; a reader never sees half a file).
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    if std::fs::read(path).is_ok_and(|b| b == bytes) {
        return Ok(false);
    }
    crate::files::write_atomic(path, bytes)?;
    Ok(true)
}

/// What `peek` says of a cached role (status output when nothing verifies).
pub fn peek_cached(meta: &Path, role: &str) -> Option<(u64, Timestamp)> {
    let b = std::fs::read(meta.join(format!("{role}.json"))).ok()?;
    peek(&b).map(|(_, v, e)| (v, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_to_path_matches_sigstore_go() {
        assert_eq!(url_to_path("http://trustmirror.trustmirror-system.svc:8080/tuf"), "trustmirror.trustmirror-system.svc-8080-tuf");
        assert_eq!(url_to_path("http://trustmirror.trustmirror-system.svc:8080/tuf/"), "trustmirror.trustmirror-system.svc-8080-tuf");
        assert_eq!(url_to_path("https://TUF.Example.com/repo"), "tuf.example.com-repo");
    }
}
