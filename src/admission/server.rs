//! The HTTPS webhook: `POST /validate` and `POST /mutate` (AdmissionReview v1), `/healthz`,
//! `/readyz`. A `?mode=warn` or `?mode=audit` query lowers enforcement for the namespaces the
//! webhook configuration routes there (policy-controller's namespace-label rollout).
//!
//! Limits: request bodies over `max_body` are refused (413) before parsing; at most
//! `max_concurrency` reviews are decided at once — past it a review is answered at once per the
//! failure mode (no unbounded queue); a review not decided within `timeout` is answered per the
//! failure mode, naming its images and the timeout, rather than leaving the API server to time
//! out. Every such answer is counted by reason and logged.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::review::{self, Response as Answer};
use super::tls::TlsSource;
use super::{Endpoint, Engine};
use crate::core::policy::Mode;

#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub listen: String,
    pub tls: TlsSource,
    pub max_body: usize,
    pub max_concurrency: usize,
    pub timeout: Duration,
    /// How often mounted files are re-checked when no change event arrives.
    pub poll: Duration,
}

impl WebhookOptions {
    pub fn new(listen: &str, tls: TlsSource) -> Self {
        Self {
            listen: listen.into(),
            tls,
            max_body: 4 << 20,
            max_concurrency: 256,
            timeout: Duration::from_secs(5),
            poll: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
struct Ctx {
    engine: Arc<Engine>,
    slots: Arc<tokio::sync::Semaphore>,
    limit: usize,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Q {
    #[serde(default)]
    mode: Option<String>,
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], serde_json::to_vec(&v).expect("json")).into_response()
}

async fn handle(ctx: Ctx, endpoint: Endpoint, q: Q, body: Bytes) -> Response {
    let cap = match q.mode.as_deref().map(str::parse::<Mode>).transpose() {
        Ok(None | Some(Mode::Enforce)) => None,
        Ok(m) => m,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let req = match review::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            ctx.engine
                .metrics
                .reviews
                .get_or_create(&vec![("endpoint".into(), endpoint.as_str().into()), ("verdict".into(), "bad-request".into())])
                .inc();
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let uid = req.uid.clone();
    let nimages = req.images.as_ref().map(|v| v.len()).unwrap_or(0);
    // Past the concurrency limit, answer at once per the failure mode rather than queue without
    // bound; the permit travels into the blocking task and is released only when the work ends
    // (a review that outlives its timeout still counts against the limit).
    let Ok(permit) = ctx.slots.clone().try_acquire_owned() else {
        let why = format!("trustmirror is at its limit of {} reviews in flight ({nimages} image(s) not decided)", ctx.limit);
        return json(StatusCode::OK, failure(&ctx.engine, &uid, endpoint, "overloaded", why).to_review());
    };
    let engine = ctx.engine.clone();
    let images: Vec<String> = req.images.as_ref().map(|v| v.iter().map(|i| i.image.clone()).collect()).unwrap_or_default();
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        engine.review(&req, endpoint, cap)
    });
    let answer = match tokio::time::timeout(ctx.timeout, work).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => failure(&ctx.engine, &uid, endpoint, "internal", format!("trustmirror could not decide (review task failed: {e})")),
        Err(_) => {
            // the review was running (it held a permit): its own images' material took too long
            let why = format!(
                "trustmirror did not decide within {:?} ({nimages} image(s): {}); deciding them took too long",
                ctx.timeout,
                images.join(", ")
            );
            failure(&ctx.engine, &uid, endpoint, "timeout", why)
        }
    };
    json(StatusCode::OK, answer.to_review())
}

/// The answer when no decision could be made: deny (fail closed) unless configured open. Never
/// silent: counted by reason (`trustmirror_admission_failures_total{endpoint,reason}`), logged,
/// and under `failure_mode: open` the admission carries the reason as a warning.
fn failure(engine: &Engine, uid: &str, endpoint: Endpoint, reason: &str, why: String) -> Answer {
    engine.metrics.reviews.get_or_create(&vec![("endpoint".into(), endpoint.as_str().into()), ("verdict".into(), "error".into())]).inc();
    engine.metrics.failures.get_or_create(&vec![("endpoint".into(), endpoint.as_str().into()), ("reason".into(), reason.into())]).inc();
    tracing::error!(uid, reason, error = %why, fail_open = engine.options().fail_open, "admission failure");
    if endpoint == Endpoint::Mutate {
        return Answer::allow(uid);
    }
    if engine.options().fail_open {
        let mut a = Answer::allow(uid);
        a.warnings.push(format!("{why}; admitted because the failure mode is open"));
        a
    } else {
        Answer::deny(uid, format!("{why}; denied (failure mode closed)"))
    }
}

pub fn router(engine: Arc<Engine>, o: &WebhookOptions) -> Router {
    let ctx = Ctx { engine, slots: Arc::new(tokio::sync::Semaphore::new(o.max_concurrency)), limit: o.max_concurrency, timeout: o.timeout };
    Router::new()
        .route(
            "/validate",
            post(|State(c): State<Ctx>, Query(q): Query<Q>, b: Bytes| async move { handle(c, Endpoint::Validate, q, b).await }),
        )
        .route("/mutate", post(|State(c): State<Ctx>, Query(q): Query<Q>, b: Bytes| async move { handle(c, Endpoint::Mutate, q, b).await }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(c): State<Ctx>| async move {
                match c.engine.ready() {
                    Ok(()) => (
                        StatusCode::OK,
                        std::iter::once("ready\n".to_string())
                            .chain(c.engine.warnings().into_iter().map(|w| format!("warning: {w}\n")))
                            .collect(),
                    ),
                    Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
                }
            }),
        )
        .layer(DefaultBodyLimit::max(o.max_body))
        .with_state(ctx)
}

/// A running webhook.
pub struct Webhook {
    pub addr: std::net::SocketAddr,
    /// The CA to trust (generated certificates), for the webhook configuration's `caBundle`.
    pub ca_pem: Option<String>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _watches: Vec<super::watch::Watch>,
}

impl Webhook {
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        self.task.await??;
        Ok(())
    }
}

/// Start the webhook: certificate, TLS listener, and watches that reload the certificate, the
/// policy, the banned list and the exemptions when their files change.
pub async fn start(engine: Arc<Engine>, o: &WebhookOptions) -> anyhow::Result<Webhook> {
    let ca_pem = match &o.tls {
        TlsSource::Generate { dir, names } => Some(super::tls::ensure_generated(dir, names)?),
        TlsSource::Files { .. } => None,
    };
    let (cert, key) = o.tls.files();
    let rustls_cfg = axum_server::tls_rustls::RustlsConfig::from_config(super::tls::server_config(&cert, &key)?);
    let listener = std::net::TcpListener::bind(&o.listen).map_err(|e| anyhow::anyhow!("binding the webhook on {}: {e}", o.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let app = router(engine.clone(), o);
    let server = axum_server::from_tcp_rustls(listener, rustls_cfg.clone())?.handle(handle.clone());
    let task = tokio::spawn(async move { server.serve(app.into_make_service()).await });

    let mut watches = vec![];
    {
        let (c2, k2, cfg) = (cert.clone(), key.clone(), rustls_cfg.clone());
        watches.push(super::watch::watch(vec![cert.clone(), key.clone()], o.poll, move || match super::tls::server_config(&c2, &k2) {
            Ok(sc) => {
                cfg.reload_from_config(sc);
                tracing::info!(cert = %c2.display(), "webhook certificate reloaded");
            }
            Err(e) => tracing::error!(error = %e, "webhook certificate reload failed; serving the previous one"),
        }));
    }
    let mut pfiles = engine.options().policy_files.clone();
    pfiles.extend(engine.options().banned_file.clone());
    if !pfiles.is_empty() {
        let (e, e2) = (engine.clone(), engine.clone());
        // the policy files, the banned list, and whatever attestation policy files the current
        // documents reference (the list follows reloads)
        let list = move || pfiles.iter().cloned().chain(e2.policy_sources()).collect::<Vec<_>>();
        watches.push(super::watch::watch_list(list, o.poll, move || {
            let _ = e.reload_policy();
        }));
    }
    if let Some(x) = engine.options().exemptions_file.clone() {
        let e = engine.clone();
        watches.push(super::watch::watch(vec![x], o.poll, move || {
            let _ = e.reload_exemptions();
        }));
    }
    tracing::info!(addr = %addr, "admission webhook listening (HTTPS)");
    Ok(Webhook { addr, ca_pem, handle, task, _watches: watches })
}
