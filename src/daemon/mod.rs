//! The cluster service wired together: the TUF mirror with its refresh loop, the OCI mirror and
//! its on-demand queue, the transparency-log witness, the HTTP side (`serve`) and the admission
//! webhook — one [`start`] from one [`Options`], built from the YAML [`config`] by
//! [`Options::from_config`]. The CLI's `serve` is this plus argument parsing.

pub mod config;
pub mod demo;
pub mod inbox;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::admission::Engine;
use crate::admission::server::{Webhook, WebhookOptions};
use crate::core::clock::Clock;
use crate::mirror::oci::{Credentials, OciMirror, OciMirrorConfig, RegistryOptions};
use crate::mirror::tlog_mirror::TlogMirror;
use crate::mirror::tuf_client::Limits;
use crate::mirror::tuf_mirror::{TufMirror, TufMirrorConfig};
use crate::mirror::upstream::{HttpOptions, Upstream};
use crate::serve::{AppState, metrics::Metrics, router};
use crate::store::Store;
use crate::supervise;
use crate::trust::{TrustConfig, TrustSource};

pub use config::Config;

/// Everything the service runs. Only `tuf` is required; each other part is optional.
pub struct Options {
    pub clock: Arc<dyn Clock>,
    /// HTTP listen address (TUF mirror, material, witness, metrics).
    pub listen: String,
    pub tuf: Arc<TufMirror>,
    pub refresh_interval: Duration,
    pub max_backoff: Duration,
    /// The OCI mirror, synced every `Duration` (plus its on-demand queue).
    pub oci: Option<(Arc<OciMirror>, Duration)>,
    /// The witness, synced every `Duration`; after every OCI sync it proves the new bundles'
    /// checkpoints.
    pub tlog: Option<(Arc<TlogMirror>, Duration)>,
    /// The admission engine and its webhook.
    pub admission: Option<(Arc<Engine>, WebhookOptions)>,
    /// Bearer token `POST /oci/v1/ingest` requires (without one the endpoint is closed).
    pub ingest_token: Option<String>,
    /// Air-gap bundles dropped into a directory.
    pub inbox: Option<Arc<inbox::Inbox>>,
}

impl Options {
    /// The TUF mirror alone, refreshed hourly.
    pub fn new(tuf: Arc<TufMirror>, clock: Arc<dyn Clock>, listen: &str) -> Self {
        Self {
            clock,
            listen: listen.into(),
            tuf,
            refresh_interval: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(600),
            oci: None,
            tlog: None,
            admission: None,
            ingest_token: None,
            inbox: None,
        }
    }

    /// Every part of a `serve` configuration, sharing one store and one trust source.
    pub fn from_config(cfg: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = Arc::new(Store::open(&cfg.store)?);
        let trust = Arc::new(TrustSource::new(store.clone(), cfg.trust_config().map_err(|e| anyhow!(e))?));
        let t = &cfg.tuf;
        let mut tuf = match &t.upstream {
            Some(u) => {
                tuf_mirror(store.clone(), &t.repo, u, read_opt(&t.root)?, read_opt(&t.ca_file)?, t.root_probe_interval, clock.clone())?
            }
            None => tuf_mirror_of(store.clone(), &t.repo, Upstream::None, read_opt(&t.root)?, t.root_probe_interval, clock.clone()),
        };
        if let Some(globs) = &t.targets {
            let pats = globs
                .iter()
                .map(|g| glob::Pattern::new(g).with_context(|| format!("tuf.targets: bad glob {g:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            tuf.set_target_filter(pats);
        }
        let mut o = Options::new(Arc::new(tuf), clock.clone(), &cfg.listen);
        o.refresh_interval = t.refresh_interval;
        o.max_backoff = t.max_backoff;
        if let Some(oc) = &cfg.oci {
            o.oci = Some((Arc::new(oci_mirror(store.clone(), oc, clock.clone(), trust.clone())?), oc.interval));
            if let Some(p) = &oc.ingest_token_file {
                let t = std::fs::read_to_string(p).with_context(|| format!("reading oci.ingest_token_file {}", p.display()))?;
                anyhow::ensure!(t.trim().len() >= 16, "oci.ingest_token_file {}: the token must be at least 16 characters", p.display());
                o.ingest_token = Some(t.trim().to_string());
            }
        }
        if let Some(tc) = &cfg.tlog {
            let w = Arc::new(crate::trust::keys::load_witness(&tc.witness_key, &tc.witness_name)?);
            tracing::info!(vkey = %w.vkey(), "transparency-log witness");
            o.tlog = Some((Arc::new(TlogMirror::new(store.clone(), clock.clone(), trust.clone(), w)), tc.interval));
        }
        if let Some(bc) = &cfg.bundle {
            let options = crate::bundle::import::ImportOptions {
                keys: crate::trust::keys::load_public_keys(&bc.keys)?,
                pinned_root: Some(read_opt(&t.root)?.unwrap_or_else(|| crate::bundles::SIGSTORE_PRODUCTION_ROOT.to_vec())),
            };
            if !bc.shared {
                std::fs::create_dir_all(&bc.inbox).with_context(|| format!("bundle.inbox {}", bc.inbox.display()))?;
            }
            o.inbox = Some(Arc::new(inbox::Inbox::new(bc.inbox.clone(), options, bc.interval).shared(bc.shared)));
        }
        if let Some(ac) = &cfg.admission {
            let mut eo = ac.engine_options();
            eo.freshness = cfg.freshness.clone().unwrap_or_default();
            eo.require_mirror_sync = cfg.oci.is_some();
            eo.trust = trust.config().clone();
            // the queue is attached by `start`, which owns the OCI mirror's worker
            let engine = Arc::new(Engine::with_trust(store.clone(), clock, trust, eo, None)?);
            o.admission = Some((engine, ac.webhook_options()?));
        }
        Ok(o)
    }
}

fn read_opt(p: &Option<std::path::PathBuf>) -> anyhow::Result<Option<Vec<u8>>> {
    p.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).transpose()
}

/// A TUF mirror of `upstream` (URL or directory) into repository `repo` of the store; the pinned
/// root defaults to the embedded Sigstore production root.
pub fn tuf_mirror(
    store: Arc<Store>,
    repo: &str,
    upstream: &str,
    root: Option<Vec<u8>>,
    ca: Option<Vec<u8>>,
    root_probe_interval: Duration,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<TufMirror> {
    let opts = HttpOptions { ca_pem: ca, ..Default::default() };
    let upstream = Upstream::parse(upstream, &opts).map_err(|e| anyhow!("upstream: {e}"))?;
    Ok(tuf_mirror_of(store, repo, upstream, root, root_probe_interval, clock))
}

/// As [`tuf_mirror`], over an already built upstream (`Upstream::None` for an air-gapped service).
pub fn tuf_mirror_of(
    store: Arc<Store>,
    repo: &str,
    upstream: Upstream,
    root: Option<Vec<u8>>,
    root_probe_interval: Duration,
    clock: Arc<dyn Clock>,
) -> TufMirror {
    let cfg = TufMirrorConfig {
        repo: repo.into(),
        upstream,
        pinned_root: root.unwrap_or_else(|| crate::bundles::SIGSTORE_PRODUCTION_ROOT.to_vec()),
        limits: Limits::default(),
        root_probe_interval: jiff::SignedDuration::try_from(root_probe_interval).unwrap_or(jiff::SignedDuration::from_hours(1)),
        targets: None,
    };
    TufMirror::new(store, cfg, clock)
}

/// The OCI mirror of an `oci:` configuration section.
pub fn oci_mirror(store: Arc<Store>, o: &config::OciConfig, clock: Arc<dyn Clock>, trust: Arc<TrustSource>) -> anyhow::Result<OciMirror> {
    let cfg = OciMirrorConfig {
        images: o.images.clone(),
        layouts: o.layouts.clone(),
        registry: RegistryOptions {
            insecure_hosts: o.insecure_registries.clone(),
            credentials: Credentials::default(),
            per_host: o.auth.clone(),
            ca_pem: read_opt(&o.ca_file)?,
            timeout: None,
        },
        concurrency: o.concurrency,
        full_recheck_interval: jiff::SignedDuration::try_from(o.full_recheck_interval).unwrap_or(jiff::SignedDuration::from_hours(1)),
        keys: crate::trust::keys::load_public_keys(&o.keys)?,
        ..Default::default()
    };
    Ok(OciMirror::new(store, cfg, clock, trust))
}

/// A trust source for one-off commands: an explicit file, else the store's mirrored root, else
/// the embedded production root.
pub fn cli_trust(store: Arc<Store>, explicit: Option<std::path::PathBuf>, tuf_repo: &str) -> Arc<TrustSource> {
    Arc::new(TrustSource::new(store, TrustConfig { explicit, tuf_repo: tuf_repo.into(), fallback_production: true, ..Default::default() }))
}

/// A running service.
pub struct Running {
    /// The HTTP side's address.
    pub addr: SocketAddr,
    pub state: AppState,
    /// The webhook (HTTPS), when admission is configured.
    pub webhook: Option<Webhook>,
    pub engine: Option<Arc<Engine>>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Wait for Ctrl-C / SIGTERM (or `limit`), then stop everything.
    pub async fn wait(self, limit: Option<Duration>) -> anyhow::Result<()> {
        crate::signals::wait_for_signal(limit).await;
        self.shutdown().await
    }

    /// Stop the webhook (every decision answered is in the audit log before the process ends),
    /// the loops and the HTTP server.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(w) = self.webhook {
            w.shutdown().await?;
        }
        if let Some(e) = self.engine {
            tokio::task::spawn_blocking(move || e.flush_audit()).await?;
        }
        let _ = self.stop.send(true);
        let _ = self.refresher.await;
        self.server.await??;
        Ok(())
    }
}

/// Check the mirrored bundles' checkpoints against the witnessed history.
async fn prove(w: &TlogMirror, feeds: &(dyn Fn(&crate::core::evidence::Evidence) -> bool + Send + Sync)) {
    let (proven, failed) = w.prove_mirrored(feeds).await;
    if proven + failed > 0 {
        tracing::info!(proven, failed, "bundle checkpoints checked against the witnessed history");
    }
}

/// Start the service: an initial TUF refresh (a failure is logged; the last verified state keeps
/// being served), the HTTP server, the refresh/sync/witness loops, and the webhook.
pub async fn start(o: Options) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    let repo = o.tuf.config().repo.clone();
    let offline = o.tuf.config().upstream.is_none();
    if offline {
        tracing::info!(repo = %repo, "no TUF upstream: the TUF state comes only from imported bundles");
    } else {
        match o.tuf.refresh().await {
            Ok(s) => metrics.record_refresh(&repo, "success", s.requests),
            Err(e) => {
                tracing::warn!(error = %e, "initial refresh failed");
                metrics.record_refresh(&repo, e.kind.as_str(), 0);
            }
        }
    }
    let tasks = supervise::Tasks::new();
    metrics.register(|r| tasks.register(r));
    // the inbox's family exists whether or not an inbox is configured (documented, alertable)
    let inbox =
        o.inbox.clone().unwrap_or_else(|| Arc::new(inbox::Inbox::new(Default::default(), Default::default(), Duration::from_secs(30))));
    metrics.register(|r| inbox.register(r));

    let (stop, rx) = tokio::sync::watch::channel(false);
    if let Some(ib) = o.inbox.clone() {
        let (store, clock, every) = (o.tuf.store().clone(), o.clock.clone(), ib.interval);
        supervise::supervise_every(tasks.clone(), "bundle-inbox", rx.clone(), every, move || {
            let (ib, store, clock) = (ib.clone(), store.clone(), clock.clone());
            async move {
                ib.drain(&store, &*clock).await;
            }
        });
    }
    let queue = o.oci.as_ref().map(|_| crate::mirror::oci::queue());
    let state = AppState {
        store: o.tuf.store().clone(),
        clock: o.clock.clone(),
        repo,
        metrics: metrics.clone(),
        ingest: queue.as_ref().map(|(tx, _)| tx.clone()),
        ingest_token: o.ingest_token.clone(),
        covers: o.oci.as_ref().map(|(m, _)| {
            let m = m.clone();
            Arc::new(move |r: &str| m.covers(r)) as crate::serve::Covers
        }),
        tlog: o.tlog.as_ref().map(|(t, _)| t.clone()),
        tasks: tasks.clone(),
    };
    let listener = tokio::net::TcpListener::bind(&o.listen).await.with_context(|| format!("binding {}", o.listen))?;
    let addr = listener.local_addr()?;
    let mut rx2 = rx.clone();
    let app = router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx2.changed().await;
            })
            .await
    });
    if let (Some((m, _)), Some((_, qrx))) = (&o.oci, &queue) {
        let (m, qrx) = (m.clone(), qrx.clone());
        supervise::supervise(tasks.clone(), "ingest-queue", rx.clone(), move || crate::mirror::oci::run_queue(m.clone(), qrx.clone()));
    }
    // only items a policy's authority signed feed the witness: nothing else a registry holds
    // can make the witness fetch proofs or raise an alarm
    let engine = o.admission.as_ref().map(|(e, _)| e.clone());
    let feeds: Arc<dyn Fn(&crate::core::evidence::Evidence) -> bool + Send + Sync> =
        Arc::new(move |e: &crate::core::evidence::Evidence| engine.as_ref().is_none_or(|en| en.policy().accepts_signer(e)));
    if let Some((t, every)) = o.tlog.clone() {
        let (feeds, with_oci) = (feeds.clone(), o.oci.is_some());
        supervise::supervise_every(tasks.clone(), "witness", rx.clone(), every, move || {
            let (t, feeds) = (t.clone(), feeds.clone());
            async move {
                t.sync().await;
                // checkpoints the mirror holds that the history just witnessed can prove (the
                // OCI sync proves after each sync too: whichever finishes last does)
                if with_oci {
                    prove(&t, &*feeds).await;
                }
            }
        });
    }
    if let Some((m, every)) = o.oci {
        let witness = o.tlog.map(|(t, _)| t);
        supervise::supervise_every(tasks.clone(), "oci-sync", rx.clone(), every, move || {
            let (m, witness, feeds) = (m.clone(), witness.clone(), feeds.clone());
            async move {
                m.sync().await;
                if let Some(w) = &witness {
                    prove(w, &*feeds).await;
                }
            }
        });
    }
    let (tuf, m2, ri, mb, rx3) = (o.tuf, metrics.clone(), o.refresh_interval, o.max_backoff, rx.clone());
    let refresher = if offline {
        tokio::spawn(async {})
    } else {
        supervise::supervise(tasks.clone(), "tuf-refresh", rx, move || {
            crate::serve::refresh_loop(tuf.clone(), m2.clone(), ri, mb, rx3.clone())
        })
    };
    let ingest = queue.map(|(tx, _)| tx);
    let (webhook, engine) = match o.admission {
        Some((engine, wo)) => {
            if let Some(q) = ingest {
                engine.set_ingest(q);
            }
            metrics.register(|r| engine.metrics.register(r));
            let w = crate::admission::server::start(engine.clone(), &wo).await?;
            if let Some(ca) = &w.ca_pem {
                tracing::info!(ca_bundle = %base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca), "generated webhook CA (caBundle)");
            }
            (Some(w), Some(engine))
        }
        None => (None, None),
    };
    tracing::info!(url = %format!("http://{addr}/tuf/"), "serving the TUF mirror");
    Ok(Running { addr, state, webhook, engine, stop, server, refresher })
}
