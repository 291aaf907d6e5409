//! The node agent (`trustmirror node`): puts verified Sigstore trust material and the container
//! runtime's signature policy on a node, and keeps them fresh — from the mirror when it answers,
//! from its own verified cache when it does not.
//!
//! One provisioning pass ([`provision`]):
//! 1. a TUF refresh against the mirror into the cache ([`cache::TufCache::refresh`]); when that
//!    fails, the cache verified on its own under the freshness policy (unexpired, or within
//!    `--grace`) — nothing is written from material that did not verify;
//! 2. the trust material written out ([`publish::trust_material`]);
//! 3. the runtime policy rendered from the policy files and the verified trusted root
//!    ([`crate::core::nodepolicy`]) and written, unless it would enforce less than the webhook
//!    and `--allow-partial` was not given (then the previous policy stays and the report says why);
//! 4. `status.json`.
//!
//! `--once` runs one pass (node boot: an init container, a systemd oneshot); without it the agent
//! repeats the pass every `--interval` (retrying sooner, with backoff, after a failure) and serves
//! `/healthz`, `/readyz` and `/metrics` on `--listen`.

pub mod cache;
mod http;
pub mod publish;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::core::clock::Clock;
use crate::core::nodepolicy::{DefaultRule, RenderError, RenderOptions};
use crate::core::policy::{BannedList, PolicySet};
use crate::mirror::upstream::{HttpOptions, Upstream};
use cache::{SIGNING_CONFIG, Source, TRUSTED_ROOT, TufCache};

#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The TUF repository: the cluster service's `/tuf/`, or any TUF repository URL.
    pub mirror: String,
    /// The pinned initial root.
    pub root: PathBuf,
    /// The directory it provisions.
    pub out: PathBuf,
    pub policies: Vec<PathBuf>,
    pub allow_partial: bool,
    pub default_rule: DefaultRule,
    /// The runtime's containers/image version (see [`RenderOptions::containers_image`]).
    pub containers_image: (u32, u32),
    /// How long past an expiry cached material may still be used when the mirror is down.
    pub grace: SignedDuration,
    pub interval: Duration,
    pub listen: Option<String>,
    pub http: HttpOptions,
    /// The whole refresh from the mirror gives up after this (then the cache is used): a node
    /// booting during an outage must not wait on a black-holed mirror.
    pub timeout: Duration,
}

/// Why a pass did not put verified material in place, or left the runtime policy out.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("the pinned root {path}: {detail}")]
    PinnedRoot { path: String, detail: String },
    #[error("no verified material: the mirror failed ({mirror}) and the cache did too ({cache})")]
    NoMaterial { mirror: String, cache: String },
    #[error("writing {what}: {detail}")]
    Write { what: String, detail: String },
    #[error("the runtime policy was not written: {0}")]
    Policy(String),
}

impl NodeError {
    /// `--once`'s exit status: 1 when no verified material is in place, 3 when the material is in
    /// place but the runtime policy could not be written faithfully.
    pub fn exit_code(&self) -> i32 {
        match self {
            NodeError::Policy(_) => 3,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyStatus {
    /// `containers/policy.json` is this pass's rendering.
    pub written: bool,
    /// It enforces less than the webhook (`--allow-partial`).
    pub partial: bool,
    pub scopes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleStatus {
    pub version: u64,
    pub expires: Timestamp,
}

/// `status.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Verified material is in place (fresh, or within the grace period).
    pub ok: bool,
    pub at: Timestamp,
    pub mirror: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
    /// The last pass that refreshed from the mirror (kept across restarts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_mirror_success: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub roles: std::collections::BTreeMap<String, RoleStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_root_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    pub policy: PolicyStatus,
}

fn previous_mirror_success(out: &std::path::Path) -> Option<Timestamp> {
    let b = std::fs::read(out.join("status.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v.get("last_mirror_success")?.as_str()?.parse().ok()
}

fn read_policies(files: &[PathBuf]) -> Result<Option<PolicySet>, String> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut texts = vec![];
    for f in files {
        let t = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        texts.push((f.display().to_string(), t));
    }
    let refs: Vec<(&str, &str)> = texts.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    PolicySet::parse_files(&refs, BannedList::default()).map(Some)
}

/// One provisioning pass. Returns the status written to `status.json`; `Err` when verified
/// material is not in place, or the runtime policy could not be written.
pub async fn provision(o: &NodeOptions, clock: &dyn Clock) -> (Status, Result<(), NodeError>) {
    let now = clock.now();
    let mut st = Status {
        ok: false,
        at: now,
        mirror: o.mirror.trim_end_matches('/').to_string(),
        source: None,
        stale: None,
        last_mirror_success: previous_mirror_success(&o.out),
        last_error: None,
        roles: Default::default(),
        trusted_root_sha256: None,
        expires: None,
        policy: PolicyStatus::default(),
    };
    let res = pass(o, now, &mut st).await;
    if let Err(e) = &res {
        st.last_error = Some(e.to_string());
    }
    if let Err(e) = cache::write_if_changed(&o.out.join("status.json"), &serde_json::to_vec_pretty(&st).expect("json")) {
        tracing::error!(error = %e, "writing status.json");
    }
    (st, res)
}

async fn pass(o: &NodeOptions, now: Timestamp, st: &mut Status) -> Result<(), NodeError> {
    let pinned = std::fs::read(&o.root).map_err(|e| NodeError::PinnedRoot { path: o.root.display().to_string(), detail: e.to_string() })?;
    crate::core::tuf::Trusted::from_root(&pinned)
        .map_err(|e| NodeError::PinnedRoot { path: o.root.display().to_string(), detail: format!("not a TUF root: {e}") })?;
    let c = TufCache::new(&o.out, &o.mirror, pinned);
    let online = match Upstream::parse(&o.mirror, &o.http) {
        Ok(up) => match tokio::time::timeout(o.timeout, c.refresh(up, now, &[SIGNING_CONFIG])).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", o.timeout)),
        },
        Err(e) => Err(e.to_string()),
    };
    let v = match online {
        Ok(v) => {
            st.last_mirror_success = Some(now);
            v
        }
        Err(mirror) => {
            tracing::warn!(mirror = %o.mirror, error = %mirror, "refresh from the mirror failed; verifying the cache");
            match c.verify_offline(now, o.grace, &[SIGNING_CONFIG]) {
                Ok(v) => {
                    st.last_error = Some(format!("mirror: {mirror}"));
                    v
                }
                Err(cache) => return Err(NodeError::NoMaterial { mirror, cache: cache.to_string() }),
            }
        }
    };
    publish::trust_material(&o.out, &o.mirror, &v)
        .map_err(|e| NodeError::Write { what: "trust material".into(), detail: e.to_string() })?;
    st.ok = true;
    st.source = Some(v.source);
    st.stale = v.stale.clone();
    st.roles = v.roles.iter().map(|(r, (ver, exp))| (r.clone(), RoleStatus { version: *ver, expires: *exp })).collect();
    st.expires = v.expires();
    st.trusted_root_sha256 = Some(crate::core::digest::sha256_hex(&v.targets[TRUSTED_ROOT]));
    if let Some(s) = &v.stale {
        tracing::warn!(stale = %s, "serving cached material past its expiry");
    }

    let set = match read_policies(&o.policies) {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(()),
        Err(e) => {
            let why = format!("the policy files: {e}");
            let _ = publish::refusal(&o.out, &why);
            st.policy.error = Some(why.clone());
            return Err(NodeError::Policy(why));
        }
    };
    let ro = RenderOptions { allow_partial: o.allow_partial, default_rule: o.default_rule, containers_image: o.containers_image };
    match crate::core::nodepolicy::render(&set, &v.targets[TRUSTED_ROOT], &ro) {
        Ok(np) => {
            publish::runtime_policy(&o.out, &np)
                .map_err(|e| NodeError::Write { what: "the runtime policy".into(), detail: e.to_string() })?;
            st.policy = PolicyStatus { written: true, partial: np.partial(), scopes: np.scopes.len(), error: None };
            for f in np.findings.iter().filter(|f| f.severity == crate::core::nodepolicy::Severity::Weaker) {
                tracing::warn!(policy = %f.policy, scope = f.scope.as_deref().unwrap_or(""), "{}", f.message);
            }
            Ok(())
        }
        Err(e) => {
            let why = e.to_string();
            if let RenderError::Weaker(fs) = &e {
                for f in fs {
                    tracing::error!(policy = %f.policy, scope = f.scope.as_deref().unwrap_or(""), "{}", f.message);
                }
            }
            let _ = publish::refusal(&o.out, &why);
            st.policy.error = Some(why.clone());
            Err(NodeError::Policy(why))
        }
    }
}

/// The agent's state between passes (health, metrics).
#[derive(Default)]
pub struct Shared {
    pub last: Mutex<Option<(Status, Option<String>)>>,
    pub passes: prometheus_client::metrics::family::Family<Vec<(String, String)>, prometheus_client::metrics::counter::Counter>,
}

/// Run `--once`: one pass; the process exit status.
pub async fn once(o: &NodeOptions, clock: &dyn Clock) -> i32 {
    let (st, res) = provision(o, clock).await;
    match res {
        Ok(()) => {
            tracing::info!(
                source = ?st.source,
                stale = st.stale.as_deref().unwrap_or(""),
                policy_written = st.policy.written,
                "node provisioned"
            );
            0
        }
        Err(e @ NodeError::Policy(_)) => {
            tracing::error!(error = %e, "trust material provisioned; the runtime policy was not");
            e.exit_code()
        }
        Err(e) => {
            tracing::error!(error = %e, "node not provisioned");
            e.exit_code()
        }
    }
}

/// Run the agent until SIGTERM: a pass every `interval`, sooner after a failure (5 s, doubling).
pub async fn run(o: NodeOptions, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    let server = match &o.listen {
        Some(l) => Some(http::serve(l, shared.clone()).await?),
        None => None,
    };
    let mut backoff = Duration::from_secs(5);
    let stop = crate::signals::wait_for_signal(None);
    tokio::pin!(stop);
    loop {
        let (st, res) = provision(&o, &*clock).await;
        let result = match &res {
            Ok(()) => "success",
            Err(NodeError::Policy(_)) => "policy-error",
            Err(_) => "failure",
        };
        let source = st.source.map(|s| if s == Source::Mirror { "mirror" } else { "cache" }).unwrap_or("none");
        shared.passes.get_or_create(&vec![("result".into(), result.into()), ("source".into(), source.into())]).inc();
        let next = match &res {
            Ok(()) if st.source == Some(Source::Mirror) => {
                backoff = Duration::from_secs(5);
                o.interval
            }
            _ => {
                if let Err(e) = &res {
                    tracing::warn!(error = %e, retry_in = ?backoff, "node pass failed");
                }
                let b = backoff.min(o.interval);
                backoff = (backoff * 2).min(o.interval);
                b
            }
        };
        *shared.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((st, res.err().map(|e| e.to_string())));
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = &mut stop => break,
        }
    }
    if let Some(s) = server {
        s.abort();
    }
    Ok(())
}
