//! The agent's node port: `/healthz` (the process answers), `/readyz` (verified material is in
//! place and the runtime policy is this pass's, or no policy was asked for), `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Shared;

type Labels = Vec<(String, String)>;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn gauge(r: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    r.register(name, help, g);
}

fn metrics(s: &Shared) -> String {
    let mut root = Registry::default();
    let r = root.sub_registry_with_prefix("trustmirror_node");
    r.register("passes", "Provisioning passes, by result and where the material came from", s.passes.clone());
    let last = s.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (ready, stale, written, partial) = match &last {
        Some((st, err)) => (st.ok && err.is_none(), st.stale.is_some(), st.policy.written, st.policy.partial),
        None => (false, false, false, false),
    };
    gauge(r, "ready", "1 when verified material is in place and the runtime policy is current", ready as i64);
    gauge(r, "stale", "1 while serving cached material past an expiry (within the grace period)", stale as i64);
    gauge(r, "policy_written", "1 when containers/policy.json is this pass's rendering", written as i64);
    gauge(r, "policy_partial", "1 when the runtime policy enforces less than the webhook (--allow-partial)", partial as i64);
    let versions: Family<Labels, Gauge> = Family::default();
    let expiries: Family<Labels, Gauge> = Family::default();
    let success: Family<Labels, Gauge> = Family::default();
    if let Some((st, _)) = &last {
        for (role, rs) in &st.roles {
            versions.get_or_create(&l(&[("role", role)])).set(rs.version as i64);
            expiries.get_or_create(&l(&[("role", role)])).set(rs.expires.as_second());
        }
        if let Some(t) = st.last_mirror_success {
            success.get_or_create(&l(&[])).set(t.as_second());
        }
    }
    r.register("role_version", "Version of each trusted TUF role in the node's cache", versions);
    r.register("role_expiry_timestamp_seconds", "Expiry of each trusted TUF role in the node's cache (Unix time)", expiries);
    r.register("last_mirror_success_timestamp_seconds", "Last pass that refreshed from the mirror (Unix time)", success);
    let mut out = String::new();
    encode(&mut out, &root).expect("encoding metrics");
    out
}

pub async fn serve(listen: &str, shared: Arc<Shared>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<Arc<Shared>>| async move {
                match &*s.last.lock().unwrap_or_else(|e| e.into_inner()) {
                    None => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no pass has finished yet\n".to_string()),
                    Some((st, Some(err))) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {err}\n{}", if st.ok { "(verified trust material is in place)\n" } else { "" }),
                    ),
                    Some((st, None)) => match &st.stale {
                        Some(s) => (StatusCode::OK, format!("ready (stale: {s})\n")),
                        None => (StatusCode::OK, "ready\n".to_string()),
                    },
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<Arc<Shared>>| async move {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics(&s)).into_response()
            }),
        )
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "node agent listening");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "node agent HTTP server stopped");
        }
    }))
}
