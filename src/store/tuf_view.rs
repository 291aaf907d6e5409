//! The read view of a mirrored TUF repository: role versions and expiry, served targets, refresh
//! bookkeeping and readiness, as `tuf status`, `/readyz` and `/metrics` show them.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{ServedTarget, Store, StoreError};
use crate::core::tuf::{TufError, peek};

/// A human/JSON view of what a mirrored repository holds and how fresh it is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoView {
    pub repo: String,
    pub upstream: String,
    pub roles: BTreeMap<String, RoleView>,
    pub targets: Vec<ServedTarget>,
    pub last_success: Option<Timestamp>,
    pub seconds_since_last_success: Option<i64>,
    pub last_change: Option<Timestamp>,
    pub last_error: Option<TufError>,
    pub consecutive_failures: u64,
    pub failures: BTreeMap<String, u64>,
    /// True when a verified, unexpired root and timestamp are held.
    pub ready: bool,
    pub not_ready_reason: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleView {
    pub version: u64,
    pub expires: Option<Timestamp>,
    pub expires_in_seconds: Option<i64>,
    pub expired: bool,
}

pub fn repo_view(store: &Store, repo: &str, now: Timestamp) -> Result<RepoView, StoreError> {
    let state = store.tuf_state(repo)?;
    let mut roles = BTreeMap::new();
    for (role, (v, b)) in &state.current {
        let exp = peek(b).map(|(_, _, e)| e);
        roles.insert(
            role.clone(),
            RoleView {
                version: *v,
                expires: exp,
                expires_in_seconds: exp.map(|e| e.as_second() - now.as_second()),
                expired: exp.is_some_and(|e| e < now),
            },
        );
    }
    let reason = readiness(&roles);
    let targets = store.tuf_targets(repo)?.into_values().collect();
    let st = state.status;
    Ok(RepoView {
        repo: repo.into(),
        upstream: st.upstream,
        roles,
        targets,
        seconds_since_last_success: st.last_success.map(|t| now.as_second() - t.as_second()),
        last_success: st.last_success,
        last_change: st.last_change,
        last_error: st.last_error,
        consecutive_failures: st.consecutive_failures,
        failures: st.failures,
        ready: reason.is_none(),
        not_ready_reason: reason,
    })
}

fn readiness(roles: &BTreeMap<String, RoleView>) -> Option<String> {
    for r in ["root", "timestamp"] {
        match roles.get(r) {
            None => return Some(format!("no verified {r} yet")),
            Some(v) if v.expired => {
                return Some(format!("{r} version {} expired at {}", v.version, v.expires.map(|e| e.to_string()).unwrap_or_default()));
            }
            _ => {}
        }
    }
    None
}
