//! The TUF client workflow (TUF 1.0.x, section 5): root chaining, timestamp, snapshot, targets,
//! delegated targets and target downloads, over an [`Upstream`]. All verification is in
//! [`crate::core::tuf::Trusted`]; this module decides what to fetch next and where verified files
//! go ([`LocalMetadata`]): a metadata directory for the conformance client, a staging area that
//! commits in one store transaction for the mirror.

use std::collections::BTreeSet;

use jiff::Timestamp;
use sigstore_tuf::{Role as _, TargetFile};

use crate::core::tuf::{
    TimestampUpdate, Trusted, TufError, TufErrorKind, TufResult, check_target, consistent_target_path, preferred_hash, role_file_name,
};
use crate::mirror::upstream::{FetchError, Upstream};

/// Download limits and walk bounds (defaults follow python-tuf's `UpdaterConfig`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub root_max: u64,
    pub timestamp_max: u64,
    pub snapshot_max: u64,
    pub targets_max: u64,
    /// Upper bound for any target, whatever length its metadata pins.
    pub target_max: u64,
    pub max_root_rotations: u64,
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            root_max: 512_000,
            timestamp_max: 16_384,
            snapshot_max: 2_000_000,
            targets_max: 5_000_000,
            target_max: 64 * 1024 * 1024,
            max_root_rotations: 256,
            max_delegations: 32,
        }
    }
}

/// Where the client keeps what it trusts between runs.
pub trait LocalMetadata {
    /// The last trusted copy of `role` (`root`, `timestamp`, `snapshot`, `targets` or a delegated
    /// role name), if any. Loaded copies are verified again before use.
    fn load(&self, role: &str) -> Option<Vec<u8>>;
    /// A file that has just been verified, in workflow order.
    fn persist(&mut self, role: &str, version: u64, bytes: &[u8]) -> TufResult<()>;
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    pub root_updates: u64,
    pub timestamp_changed: bool,
    pub snapshot_changed: bool,
    pub targets_changed: bool,
}

/// A target found by the delegation search, with the role that lists it.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    pub path: String,
    pub role: String,
    pub info: TargetFile,
}

pub struct Updater {
    trusted: Trusted,
    upstream: Upstream,
    limits: Limits,
}

fn fetch_err(role: &str, e: FetchError) -> TufError {
    match e {
        FetchError::TooLarge { .. } => TufError::new(role, TufErrorKind::TooLarge, e.to_string()),
        FetchError::BadName { .. } => TufError::new(role, TufErrorKind::Malformed, e.to_string()),
        FetchError::Failed { .. } => TufError::new(role, TufErrorKind::Fetch, e.to_string()),
    }
}

impl Updater {
    /// Start from a trusted root (pinned, or the newest one kept locally).
    pub fn new(upstream: Upstream, root: &[u8], limits: Limits) -> TufResult<Self> {
        Ok(Self { trusted: Trusted::from_root(root)?, upstream, limits })
    }

    pub fn trusted(&self) -> &Trusted {
        &self.trusted
    }
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    async fn required(&self, role: &str, name: &str, max: u64) -> TufResult<Vec<u8>> {
        self.upstream
            .fetch_metadata(name, max)
            .await
            .map_err(|e| fetch_err(role, e))?
            .ok_or_else(|| TufError::new(role, TufErrorKind::NotFound, format!("{name} not found upstream")))
    }

    /// Fetch `timestamp.json` without verifying it (the mirror compares it with its stored copy
    /// before deciding whether anything else needs fetching).
    pub async fn fetch_timestamp(&self) -> TufResult<Vec<u8>> {
        self.required("timestamp", "timestamp.json", self.limits.timestamp_max).await
    }

    /// Walk `N+1.root.json` until the upstream has no newer root. Returns the number of updates.
    pub async fn update_root(&mut self, local: &mut (dyn LocalMetadata + Send)) -> TufResult<u64> {
        let start = self.trusted.root().version;
        let mut n = 0;
        loop {
            let next = self.trusted.root().version + 1;
            if next - start > self.limits.max_root_rotations {
                return Err(TufError::new(
                    "root",
                    TufErrorKind::RootVersion,
                    format!("more than {} root rotations in one refresh", self.limits.max_root_rotations),
                ));
            }
            let name = format!("{next}.root.json");
            let Some(bytes) = self
                .upstream
                .fetch_metadata(&name, self.limits.root_max)
                .await
                .map_err(|e| fetch_err(&format!("root (version {next})"), e))?
            else {
                return Ok(n);
            };
            self.trusted.update_root(&bytes)?;
            local.persist("root", next, &bytes)?;
            tracing::info!(version = next, "root updated");
            n += 1;
        }
    }

    /// The top-level refresh: root → timestamp → snapshot → targets. `prefetched_timestamp` lets
    /// the caller hand over a `timestamp.json` it already downloaded in this refresh.
    pub async fn refresh(
        &mut self,
        local: &mut (dyn LocalMetadata + Send),
        now: Timestamp,
        prefetched_timestamp: Option<Vec<u8>>,
    ) -> TufResult<RefreshReport> {
        let mut report = RefreshReport { root_updates: self.update_root(local).await?, ..Default::default() };
        self.trusted.check_root_expired(now)?;

        // Local copies establish rollback floors (verified again against the current root; a copy
        // signed by rotated-out keys is dropped, which is how fast-forward attacks are recovered).
        if let Some(b) = local.load("timestamp")
            && let Err(e) = self.trusted.seed_timestamp(&b)
        {
            tracing::debug!(error = %e, "ignoring local timestamp");
        }
        if self.trusted.timestamp().is_some()
            && let Some(b) = local.load("snapshot")
            && let Err(e) = self.trusted.seed_snapshot(&b)
        {
            tracing::debug!(error = %e, "ignoring local snapshot");
        }

        // timestamp
        let ts = match prefetched_timestamp {
            Some(b) => b,
            None => self.fetch_timestamp().await?,
        };
        if self.trusted.update_timestamp(&ts, now)? == TimestampUpdate::Updated {
            let v = self.trusted.timestamp().map(|t| t.version).unwrap_or(0);
            local.persist("timestamp", v, &ts)?;
            report.timestamp_changed = true;
        }
        self.trusted.check_timestamp_expired(now)?;

        // snapshot
        let pinned = self.trusted.pinned_snapshot_version()?;
        let reuse = self.trusted.snapshot().is_some_and(|s| s.version == pinned && !s.is_expired(now));
        if !reuse {
            let name = if self.trusted.root().consistent_snapshot { format!("{pinned}.snapshot.json") } else { "snapshot.json".into() };
            let bytes = self.required("snapshot", &name, self.limits.snapshot_max).await?;
            self.trusted.update_snapshot(&bytes, now)?;
            local.persist("snapshot", pinned, &bytes)?;
            report.snapshot_changed = true;
        }
        self.trusted.check_snapshot_expired(now)?;

        // top-level targets: a valid local copy at the pinned version is reused
        let pinned_t = self
            .trusted
            .pinned_role_version("targets")
            .ok_or_else(|| TufError::new("snapshot", TufErrorKind::Malformed, "does not list targets.json"))?;
        let mut have = false;
        if let Some(b) = local.load("targets") {
            have = self.trusted.update_targets(&b, now).is_ok();
        }
        if !have {
            let name = role_file_name("targets", pinned_t, self.trusted.root().consistent_snapshot);
            let bytes = self.required("targets", &name, self.limits.targets_max).await?;
            self.trusted.update_targets(&bytes, now)?;
            local.persist("targets", pinned_t, &bytes)?;
            report.targets_changed = true;
        }
        Ok(report)
    }

    /// Make delegated role `role` trusted, as delegated by `delegator`: reuse it if already loaded
    /// (re-checking it against this delegator's keys), else a valid local copy, else download.
    /// Returns whether it was downloaded.
    async fn load_delegated(
        &mut self,
        local: &mut (dyn LocalMetadata + Send),
        role: &str,
        delegator: &str,
        now: Timestamp,
    ) -> TufResult<bool> {
        if self.trusted.targets_role(role).is_some() {
            self.trusted.verify_delegated_via(role, delegator, now)?;
            return Ok(false);
        }
        if let Some(b) = local.load(role)
            && self.trusted.update_delegated(&b, role, delegator, now).is_ok()
        {
            return Ok(false);
        }
        let version = self
            .trusted
            .pinned_role_version(role)
            .ok_or_else(|| TufError::new(role, TufErrorKind::Delegation, "delegated role is not listed in the trusted snapshot"))?;
        let name = role_file_name(role, version, self.trusted.root().consistent_snapshot);
        let bytes = self.required(role, &name, self.limits.targets_max).await?;
        self.trusted.update_delegated(&bytes, role, delegator, now)?;
        local.persist(role, version, &bytes)?;
        Ok(true)
    }

    /// Find a target by path with TUF's pre-order depth-first delegation search (python-tuf's
    /// order, `terminating` honoured, at most `max_delegations` roles visited). Requires a
    /// successful [`Updater::refresh`].
    pub async fn find_target(
        &mut self,
        local: &mut (dyn LocalMetadata + Send),
        path: &str,
        now: Timestamp,
    ) -> TufResult<Option<ResolvedTarget>> {
        let mut stack: Vec<(String, String)> = vec![("targets".into(), "root".into())];
        let mut visited: BTreeSet<String> = BTreeSet::new();
        while visited.len() <= self.limits.max_delegations {
            let Some((role, delegator)) = stack.pop() else { break };
            if visited.contains(&role) {
                continue;
            }
            if role != "targets" {
                if self.trusted.pinned_role_version(&role).is_none() {
                    tracing::debug!(%role, "delegated role not in snapshot; not used");
                    visited.insert(role);
                    continue;
                }
                self.load_delegated(local, &role, &delegator, now).await?;
            }
            let t = self.trusted.targets_role(&role).expect("loaded above");
            if let Some(info) = t.targets.get(path) {
                return Ok(Some(ResolvedTarget { path: path.into(), role, info: info.clone() }));
            }
            let children = self.trusted.children_for_target(&role, path)?;
            visited.insert(role.clone());
            let mut next: Vec<(String, String)> = Vec::new();
            for c in children {
                next.push((c.role.clone(), c.delegator.clone()));
                if c.terminating {
                    stack.clear();
                    break;
                }
            }
            next.reverse();
            stack.extend(next);
        }
        Ok(None)
    }

    /// Load every delegated role reachable from `targets` that the snapshot lists, and return every
    /// target a client could resolve (listed by a role whose whole delegation chain covers the
    /// path). Roles are visited breadth-first, each once; the first role to list a path wins in
    /// delegation order, as in a client's search.
    pub async fn load_everything(
        &mut self,
        local: &mut (dyn LocalMetadata + Send),
        now: Timestamp,
    ) -> TufResult<(Vec<ResolvedTarget>, usize)> {
        // (role, chain of (delegator, role) edges from the top)
        let mut queue: std::collections::VecDeque<(String, Vec<(String, String)>)> = std::collections::VecDeque::new();
        queue.push_back(("targets".into(), vec![]));
        let mut visited = BTreeSet::new();
        let mut out: Vec<ResolvedTarget> = Vec::new();
        let mut seen_paths = BTreeSet::new();
        let mut downloaded = 0usize;
        while let Some((role, chain)) = queue.pop_front() {
            if !visited.insert(role.clone()) {
                continue;
            }
            if role != "targets" {
                if self.trusted.pinned_role_version(&role).is_none() {
                    continue;
                }
                let delegator = &chain.last().expect("delegated roles have a delegator").0;
                if self.load_delegated(local, &role, delegator, now).await? {
                    downloaded += 1;
                }
            }
            let t = self.trusted.targets_role(&role).expect("loaded above").clone();
            for (path, info) in &t.targets {
                let allowed = chain.iter().all(|(d, r)| self.trusted.delegation_allows(d, r, path));
                if allowed && seen_paths.insert(path.clone()) {
                    out.push(ResolvedTarget { path: path.clone(), role: role.clone(), info: info.clone() });
                }
            }
            for child in self.trusted.all_children(&role) {
                if !visited.contains(&child) {
                    let mut c = chain.clone();
                    c.push((role.clone(), child.clone()));
                    queue.push_back((child, c));
                }
            }
        }
        Ok((out, downloaded))
    }

    /// Where a target lives upstream (hash-prefixed when the repository uses consistent snapshots).
    pub fn target_location(&self, t: &ResolvedTarget) -> TufResult<String> {
        if self.trusted.root().consistent_snapshot {
            let (_, hash) = preferred_hash(&t.info)
                .ok_or_else(|| TufError::new(format!("target {}", t.path), TufErrorKind::Malformed, "lists no hash"))?;
            Ok(consistent_target_path(&t.path, hash))
        } else {
            Ok(t.path.clone())
        }
    }

    /// Download a target and verify its length and hashes.
    pub async fn download_target(&self, t: &ResolvedTarget) -> TufResult<Vec<u8>> {
        let role = format!("target {}", t.path);
        if t.info.length > self.limits.target_max {
            return Err(TufError::new(
                role,
                TufErrorKind::TooLarge,
                format!("pinned length {} exceeds the limit {}", t.info.length, self.limits.target_max),
            ));
        }
        let loc = self.target_location(t)?;
        let bytes = self
            .upstream
            .fetch_target(&loc, t.info.length)
            .await
            .map_err(|e| fetch_err(&role, e))?
            .ok_or_else(|| TufError::new(&role, TufErrorKind::NotFound, format!("{loc} not found upstream")))?;
        check_target(&bytes, &t.info, &t.path)?;
        Ok(bytes)
    }
}

/// A metadata directory holding one unversioned file per trusted role (`root.json`,
/// `timestamp.json`, …, delegated roles URL-quoted), written atomically. This is python-tuf's
/// local layout and the tuf-conformance contract.
pub struct DirMetadata {
    pub dir: std::path::PathBuf,
}

impl DirMetadata {
    fn path(&self, role: &str) -> std::path::PathBuf {
        self.dir.join(format!("{}.json", crate::core::tuf::quote_role(role)))
    }
}

impl LocalMetadata for DirMetadata {
    fn load(&self, role: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(role)).ok()
    }
    fn persist(&mut self, role: &str, _version: u64, bytes: &[u8]) -> TufResult<()> {
        crate::files::write_atomic(&self.path(role), bytes)
            .map_err(|e| TufError::new(role, TufErrorKind::Store, format!("writing local copy: {e}")))
    }
}
