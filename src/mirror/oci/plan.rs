//! What a sync must fetch: configured patterns → repositories (the registry's catalog, matched by
//! glob) → tags (diffed against the previous sync) → digests, each marked whether its material
//! must be re-fetched even if the stored record looks current.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use oci_client::Reference;

use super::material::OciError;
use super::{OciMirror, SyncReport};
use crate::core::reference::normalize_repository;
use crate::store::oci::{RepoRecord, TagRecord};

/// (repository, digest, force) to ingest.
pub type Work = (String, String, bool);

/// The outcome of planning: the digests to ingest, and the tag list of every listed repository
/// (cosign tags that are not listed are not requested).
#[derive(Default)]
pub struct Plan {
    pub digests: Vec<Work>,
    pub listed: BTreeMap<String, Arc<BTreeSet<String>>>,
}

/// `sha256-<hex>[.suffix]` cosign tags: the digest they are about, and the suffix.
pub fn is_cosign_tag(t: &str) -> Option<(String, &str)> {
    let rest = t.strip_prefix("sha256-")?;
    let (hex, suffix) = match rest.split_once('.') {
        Some((h, s)) => (h, s),
        None => (rest, ""),
    };
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (format!("sha256:{hex}"), suffix))
}

fn is_pattern(p: &str) -> bool {
    p.contains('*') || p.contains('?') || p.contains('[')
}

impl OciMirror {
    pub(super) async fn plan(&self, report: &mut SyncReport) -> Plan {
        let now = self.clock.now();
        let (repos, refs) = self.targets(report).await;
        report.repositories = repos.len();
        let mut plan = Plan::default();
        for repo in &repos {
            match self.plan_repo(repo, now, report).await {
                Ok((w, tags)) => {
                    plan.digests.extend(w);
                    plan.listed.insert(repo.clone(), Arc::new(tags));
                }
                Err(e) => report.error(repo.clone(), e),
            }
        }
        for r in &refs {
            match self.plan_reference(r, report).await {
                Ok(w) => plan.digests.extend(w),
                Err(e) => report.error(r.clone(), e),
            }
        }
        plan.digests.sort();
        plan.digests.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        plan
    }

    /// Expand the configured patterns into repositories (`registry/repo`) and explicit references.
    async fn targets(&self, report: &mut SyncReport) -> (BTreeSet<String>, Vec<String>) {
        let mut repos = BTreeSet::new();
        let mut refs = vec![];
        let mut catalogs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &self.cfg.images {
            if !is_pattern(p) {
                refs.push(p.clone());
                continue;
            }
            let host = p.split('/').next().unwrap_or_default().to_string();
            if !catalogs.contains_key(&host) {
                let c = self.registry.catalog(&host).await.unwrap_or_else(|e| {
                    report.error(format!("catalog of {host}"), e);
                    vec![]
                });
                catalogs.insert(host.clone(), c);
            }
            let Ok(pat) = glob::Pattern::new(p) else {
                report.error(p.clone(), "invalid pattern");
                continue;
            };
            for r in &catalogs[&host] {
                let full = format!("{host}/{r}");
                if pat.matches(&full) {
                    // stored under the name admission looks it up by
                    repos.insert(normalize_repository(&full));
                }
            }
        }
        (repos, refs)
    }

    async fn plan_repo(&self, repo: &str, now: Timestamp, report: &mut SyncReport) -> Result<(Vec<Work>, BTreeSet<String>), OciError> {
        let st = |e| OciError::store(repo, e);
        let tags = self.registry.list_tags(repo).await?;
        let prev = self.store.oci_repo(repo).map_err(st)?.unwrap_or_default();
        let full = prev.full_check_at.is_none_or(|t| now.duration_since(t) >= self.cfg.full_recheck_interval);
        let mut work = vec![];
        let mut held_in_repo = BTreeSet::new();
        for t in &tags {
            if let Some((digest, _)) = is_cosign_tag(t) {
                // material appeared or changed for this digest
                if !prev.tags.contains(t) || !self.store.oci_has_material(repo, &digest).map_err(st)? {
                    work.push((repo.to_string(), digest.clone(), !prev.tags.contains(t)));
                }
                held_in_repo.insert(digest);
                continue;
            }
            let known = self.store.oci_tag(repo, t).map_err(st)?;
            if !full && prev.tags.contains(t) && known.is_some() {
                continue;
            }
            match self.registry.resolve(&format!("{repo}:{t}")).await {
                Ok(digest) => {
                    report.tags_resolved += 1;
                    if known.as_ref().map(|k| &k.digest) != Some(&digest) {
                        self.store
                            .oci_put_tag(repo, t, &TagRecord { digest: digest.clone(), resolved_at: self.clock.now() })
                            .map_err(st)?;
                    }
                    work.push((repo.to_string(), digest, false));
                }
                Err(e) => report.error(format!("{repo}:{t}"), e),
            }
        }
        if full {
            // appended signatures do not change the tag list: re-check held digests by their sources
            work.extend(held_in_repo.into_iter().map(|d| (repo.to_string(), d, false)));
        }
        let rec = RepoRecord { tags: tags.clone(), synced_at: Some(now), full_check_at: if full { Some(now) } else { prev.full_check_at } };
        self.store.oci_put_repo(repo, &rec).map_err(st)?;
        Ok((work, tags))
    }

    pub(super) async fn plan_reference(&self, r: &str, report: &mut SyncReport) -> Result<Vec<Work>, OciError> {
        let parsed: Reference = r.parse().map_err(|e| OciError::reference(r, e))?;
        let repo = normalize_repository(&format!("{}/{}", parsed.registry(), parsed.repository()));
        let digest = match parsed.digest() {
            Some(d) => d.to_string(),
            None => {
                let d = self.registry.resolve(r).await?;
                report.tags_resolved += 1;
                let tag = parsed.tag().unwrap_or("latest");
                self.store
                    .oci_put_tag(&repo, tag, &TagRecord { digest: d.clone(), resolved_at: self.clock.now() })
                    .map_err(|e| OciError::store(r, e))?;
                d
            }
        };
        Ok(vec![(repo, digest, false)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_tags_name_their_digest() {
        let hex = "a".repeat(64);
        assert_eq!(is_cosign_tag(&format!("sha256-{hex}.sig")), Some((format!("sha256:{hex}"), "sig")));
        assert!(is_cosign_tag("v1").is_none() && is_cosign_tag("sha256-abc.sig").is_none());
    }
}
