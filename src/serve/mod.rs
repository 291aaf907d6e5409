//! The cluster service's HTTP side: the verified TUF repository re-served in the standard
//! consistent-snapshot layout under `/tuf/`, the mirrored image material, the witness, and
//! `/healthz`, `/readyz`, `/metrics`. (The admission webhook is HTTPS on its own port:
//! `admission::server`.)
//!
//! | path | content |
//! |---|---|
//! | `/tuf/root.json`, `/tuf/N.root.json` | newest root, every root version (clients walk the chain) |
//! | `/tuf/timestamp.json` | current timestamp |
//! | `/tuf/N.snapshot.json`, `/tuf/N.targets.json`, `/tuf/N.<role>.json` | versioned metadata (recent versions kept) |
//! | `/tuf/targets/HASH.NAME`, `/tuf/targets/dir/HASH.NAME` | targets by hash (every listed hash), and by plain path |
//! | `/oci/v1/material`, `/oci/v1/material/{digest}` | mirrored material records (ETag, `If-None-Match`) |
//! | `/oci/v1/blobs/{sha256}`, `/oci/v1/tags` | material blobs; tag → digest resolutions |
//! | `POST /oci/v1/ingest?ref=REF` | queue an on-demand ingestion |
//! | `POST /tlog/v1/add-checkpoint` | C2SP tlog-witness submissions |
//! | `/tlog/v1/witness`, `/tlog/v1/logs`, `/tlog/v1/{log}/checkpoint` | the witness's vkey, witnessed logs, cosigned checkpoints |
//! | `/healthz`, `/readyz`, `/metrics` | liveness, readiness (verified unexpired root and timestamp), Prometheus |
//!
//! Everything served is byte-identical to what was verified upstream, so downstream TUF clients
//! verify it themselves with the same root.

pub mod metrics;
pub mod oci;
pub mod tlog;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::core::clock::Clock;
use crate::mirror::tuf_mirror::TufMirror;
use crate::store::Store;
use crate::store::repo_view;

/// Does a reference fall inside the mirror's configured image patterns?
pub type Covers = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    pub repo: String,
    pub metrics: Arc<metrics::Metrics>,
    /// On-demand OCI ingestion queue, when OCI mirroring is configured.
    pub ingest: Option<tokio::sync::mpsc::Sender<String>>,
    /// The bearer token `POST /oci/v1/ingest` requires (`None`: the endpoint is closed).
    pub ingest_token: Option<String>,
    /// Is a reference inside the mirror's configured patterns?
    pub covers: Option<Covers>,
    /// The supervised background tasks (readiness).
    pub tasks: std::sync::Arc<crate::supervise::Tasks>,
    /// The transparency-log witness, when configured.
    pub tlog: Option<std::sync::Arc<crate::mirror::tlog_mirror::TlogMirror>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/tuf/{*path}", get(tuf_file))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/oci/v1/material", get(oci::list))
        .route("/oci/v1/material/{digest}", get(oci::material))
        .route("/oci/v1/blobs/{sha}", get(oci::blob))
        .route("/oci/v1/tags", get(oci::tags))
        .route("/oci/v1/ingest", axum::routing::post(oci::ingest))
        .route("/tlog/v1/add-checkpoint", axum::routing::post(tlog::add_checkpoint))
        .route("/tlog/v1/witness", get(tlog::witness))
        .route("/tlog/v1/logs", get(tlog::logs))
        .route("/tlog/v1/{log}/checkpoint", get(tlog::checkpoint))
        .with_state(state)
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Split `N.role.json` into (N, role); role names are URL-quoted in file names.
fn versioned(name: &str) -> Option<(u64, String)> {
    let stem = name.strip_suffix(".json")?;
    let (v, role) = stem.split_once('.')?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let role = percent_encoding::percent_decode_str(role).decode_utf8().ok()?.into_owned();
    Some((v.parse().ok()?, role))
}

async fn tuf_file(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    let store = s.store.clone();
    let repo = s.repo.clone();
    let res = tokio::task::spawn_blocking(move || lookup(&store, &repo, &path)).await;
    match res {
        Ok(Ok(Some((bytes, immutable, json)))) => {
            let ct = if json { "application/json" } else { "application/octet-stream" };
            let cc = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
            (StatusCode::OK, [(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, cc)], bytes).into_response()
        }
        Ok(Ok(None)) => text(StatusCode::NOT_FOUND, "not found\n".into()),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

type Found = Option<(Vec<u8>, bool, bool)>;

fn lookup(store: &Store, repo: &str, path: &str) -> Result<Found, crate::store::StoreError> {
    if let Some(t) = path.strip_prefix("targets/") {
        // Hash-prefixed paths are immutable; plain paths follow the newest version.
        return Ok(store.tuf_target(repo, t)?.map(|(st, b)| (b, t != st.path, false)));
    }
    if path.contains('/') {
        return Ok(None);
    }
    if let Some((v, role)) = versioned(path) {
        return Ok(store.tuf_meta(repo, &role, v)?.map(|b| (b, true, true)));
    }
    let Some(stem) = path.strip_suffix(".json") else { return Ok(None) };
    let role = percent_encoding::percent_decode_str(stem).decode_utf8().map(|c| c.into_owned()).unwrap_or_default();
    Ok(store.tuf_current(repo, &role)?.map(|(_, b)| (b, false, true)))
}

async fn readyz(State(s): State<AppState>) -> Response {
    if let Err(e) = s.tasks.ready() {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n"));
    }
    match repo_view(&s.store, &s.repo, s.clock.now()) {
        Ok(v) if v.ready => text(StatusCode::OK, "ready\n".into()),
        Ok(v) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", v.not_ready_reason.unwrap_or_default())),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}

async fn metrics_handler(State(s): State<AppState>) -> Response {
    let body = s.metrics.render(&s.store, &s.repo, s.clock.now());
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// Refresh forever: every `interval` after a success; after a failure, exponential backoff from
/// `interval / 8` up to `max_backoff`, with jitter. Stops when `stop` fires.
pub async fn refresh_loop(
    mirror: Arc<TufMirror>,
    metrics: Arc<metrics::Metrics>,
    interval: Duration,
    max_backoff: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        let delay = if failures == 0 {
            interval
        } else {
            let base = (interval / 8).max(Duration::from_secs(1));
            let exp = base.saturating_mul(1u32 << failures.min(16)).min(max_backoff);
            let jitter = rand::random_range(0.0..0.25);
            exp.mul_f64(1.0 + jitter).min(max_backoff)
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        match mirror.refresh().await {
            Ok(s) => {
                failures = 0;
                metrics.record_refresh(&mirror.config().repo, "success", s.requests);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                metrics.record_refresh(&mirror.config().repo, e.kind.as_str(), 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_names_parse() {
        assert_eq!(versioned("12.root.json"), Some((12, "root".into())));
        assert_eq!(versioned("3.registry.npmjs.org.json"), Some((3, "registry.npmjs.org".into())));
        assert_eq!(versioned("2.a%2Fb.json"), Some((2, "a/b".into())));
        assert_eq!(versioned("timestamp.json"), None);
        assert_eq!(versioned("x1.root.json"), None);
    }
}
