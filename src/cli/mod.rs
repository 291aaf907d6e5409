//! The `trustmirror` command line.

pub mod admission;
pub mod admission_demo;
pub mod demo;
pub mod mirror;
pub mod testbed;
pub mod tlog;
pub mod tuf_conformance;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::clock::{Clock, SystemClock};
use crate::mirror::tuf_client::Limits;
use crate::mirror::tuf_mirror::{RepoView, TufMirror, TufMirrorConfig, repo_view};
use crate::mirror::upstream::{HttpOptions, Upstream};
use crate::serve::{AppState, metrics::Metrics, router};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(name = "trustmirror", version, about = "Air-gapped Sigstore/TUF mirror and supply-chain policy enforcement for Kubernetes")]
pub struct Cli {
    /// Log format: text for a terminal, json for collectors (auto: text on a terminal).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "TRUSTMIRROR_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The demo: testbed → mirror → admission webhook over HTTPS, replaying every row of the
    /// expected-behaviour table (exit 0 only if every verdict matches).
    Demo {
        /// Keep the work files here (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Run the cluster service: mirror the upstream TUF repository and re-serve it.
    Serve(ServeArgs),
    /// TUF mirror operations.
    #[command(subcommand)]
    Tuf(TufCmd),
    /// Mirror image signatures and attestations into the store.
    #[command(subcommand)]
    Mirror(mirror::MirrorCmd),
    /// Verify a blob's Sigstore bundle offline (cosign verify-blob / verify-bundle).
    #[command(alias = "verify-bundle")]
    VerifyBlob(verify::VerifyBlobArgs),
    /// Verify an image's signatures (cosign verify): `.sig` layers and referrer bundles.
    Verify(verify::ImageArgs),
    /// Verify an image's attestations of a predicate type (cosign verify-attestation).
    VerifyAttestation(verify::VerifyAttestationArgs),
    /// Transparency-log witness: sync checkpoints, status (exit 3 on misbehaviour), resolve.
    #[command(subcommand)]
    Tlog(tlog::TlogCmd),
    /// Time-limited exemptions from enforcement (break-glass).
    #[command(subcommand)]
    Breakglass(admission::BreakglassCmd),
    /// Violations per policy and namespace from the audit log (what to watch before enforcing).
    Report(admission::ReportArgs),
    /// Evaluate images against admission policies from the store.
    #[command(subcommand)]
    Policy(admission::PolicyCmd),
    /// An internal Sigstore stack on loopback (TUF, Fulcio, CT log, Rekor, TSA, OCI registry)
    /// with the scenario images, for tests, demos and air-gap drills.
    #[command(subcommand)]
    Testbed(TestbedCmd),
    /// Developer tools.
    #[command(subcommand, hide = true)]
    Dev(DevCmd),
}

#[derive(Args, Debug, Clone)]
pub struct TestbedArgs {
    /// Working directory: env file, trust material, TUF repository, registry data.
    #[arg(long)]
    pub dir: PathBuf,
    /// Seed for every key, certificate and identifier.
    #[arg(long, default_value = "trustmirror-testbed")]
    pub seed: String,
    /// HTTP port for TUF, Rekor and the TSA (0: a free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Do not start registries or publish scenario images.
    #[arg(long)]
    pub no_registry: bool,
}

#[derive(Subcommand, Debug)]
pub enum TestbedCmd {
    /// Start in the background; prints the endpoints (also written to DIR/env) once ready.
    Up {
        #[command(flatten)]
        args: TestbedArgs,
        /// Stay in the foreground until interrupted.
        #[arg(long)]
        foreground: bool,
    },
    /// Stop the testbed running in DIR.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// (internal) the background process `up` starts.
    #[command(hide = true)]
    Run {
        #[command(flatten)]
        args: TestbedArgs,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// YAML configuration (see README).
    #[arg(long, required_unless_present = "demo")]
    pub config: Option<PathBuf>,
    /// Mirror the embedded demo repository (bundles/demo-tuf) into a temporary store.
    #[arg(long, conflicts_with = "config")]
    pub demo: bool,
    /// Listen address (overrides the config; the demo defaults to 127.0.0.1 on a free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Stop after this long (e.g. 30s); default: run until interrupted.
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub exit_after: Option<Duration>,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// Store file.
    #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
    pub store: PathBuf,
    /// Name of the mirrored repository inside the store.
    #[arg(long, default_value = "default")]
    pub repo: String,
}

#[derive(Subcommand, Debug)]
pub enum TufCmd {
    /// Refresh the mirrored repository once from an upstream URL or directory.
    Refresh {
        #[command(flatten)]
        store: StoreArg,
        /// `https://…` repository base URL, or a directory (air-gap copy) in the same layout.
        #[arg(long)]
        upstream: String,
        /// Pinned initial root (used only while the store holds no root). Default: the embedded
        /// Sigstore production root.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Extra CA certificates (PEM) for an HTTPS upstream.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show role versions, expiry and freshness of the mirrored repository. Exits 2 when no
    /// verified, unexpired root and timestamp are held, 1 on error.
    Status {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
pub enum DevCmd {
    /// Regenerate the embedded demo TUF repository (bundles/demo-tuf).
    DemoBundle {
        #[arg(long, default_value = "bundles/demo-tuf")]
        dir: PathBuf,
        /// Directory with the targets to publish (trusted_root.json, …).
        #[arg(long, default_value = "tests/fixtures/production/targets")]
        targets: PathBuf,
    },
}

pub fn init_logging(format: LogFormat) {
    init_logging_with(format, "info")
}

/// As [`init_logging`], with a default filter (the demo is quiet unless TRUSTMIRROR_LOG says).
pub fn init_logging_with(format: LogFormat, default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TRUSTMIRROR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        b.json().flatten_event(true).init();
    } else {
        b.compact().init();
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Demo { dir, output } => admission_demo::run(dir, output == Output::Json).await,
        Cmd::Breakglass(c) => admission::breakglass(c),
        Cmd::Tlog(c) => tlog::run(c).await,
        Cmd::Report(a) => admission::report_cmd(a),
        Cmd::Policy(c) => admission::policy(c),
        Cmd::Serve(a) => serve(a).await.map(|_| 0),
        Cmd::Tuf(TufCmd::Refresh { store, upstream, root, ca_file, output }) => tuf_refresh(store, upstream, root, ca_file, output).await,
        Cmd::Tuf(TufCmd::Status { store, output }) => tuf_status(store, output),
        Cmd::Dev(DevCmd::DemoBundle { dir, targets }) => demo::make_demo_bundle(&dir, &targets).map(|_| 0),
        Cmd::Testbed(c) => testbed::run(c).await,
        Cmd::Mirror(c) => mirror::run(c).await,
        Cmd::VerifyBlob(a) => verify::verify_blob(a),
        Cmd::Verify(a) => verify::verify_image(a).await,
        Cmd::VerifyAttestation(a) => verify::verify_attestation(a).await,
    }
}

fn read_opt(p: &Option<PathBuf>) -> anyhow::Result<Option<Vec<u8>>> {
    p.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).transpose()
}

pub fn mirror_for(
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
    let cfg = TufMirrorConfig {
        repo: repo.into(),
        upstream,
        pinned_root: root.unwrap_or_else(|| crate::bundles::SIGSTORE_PRODUCTION_ROOT.to_vec()),
        limits: Limits::default(),
        root_probe_interval: jiff::SignedDuration::try_from(root_probe_interval).unwrap_or(jiff::SignedDuration::from_hours(1)),
        targets: None,
    };
    Ok(TufMirror::new(store, cfg, clock))
}

async fn tuf_refresh(s: StoreArg, upstream: String, root: Option<PathBuf>, ca: Option<PathBuf>, output: Output) -> anyhow::Result<i32> {
    let store = Arc::new(Store::open(&s.store)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A one-off refresh always probes for a new root.
    let m = mirror_for(store.clone(), &s.repo, &upstream, read_opt(&root)?, read_opt(&ca)?, Duration::ZERO, clock.clone())?;
    let res = m.refresh().await;
    let view = repo_view(&store, &s.repo, clock.now())?;
    match res {
        Ok(sum) => {
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"refresh": {
                    "changed": sum.changed, "requests": sum.requests, "targets_downloaded": sum.targets_downloaded,
                    "targets_total": sum.targets_total}, "status": view}))?
                );
            } else {
                println!(
                    "refreshed from {upstream}: {} ({} upstream requests, {} targets downloaded)",
                    if sum.changed { "updated" } else { "no change" },
                    sum.requests,
                    sum.targets_downloaded
                );
                print_view(&view);
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: refresh failed: {e}");
            eprintln!("the store still holds the last verified state:");
            print_view(&view);
            Ok(1)
        }
    }
}

fn tuf_status(s: StoreArg, output: Output) -> anyhow::Result<i32> {
    let store = Store::open(&s.store)?;
    let view = repo_view(&store, &s.repo, jiff::Timestamp::now())?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print_view(&view);
    }
    Ok(if view.ready { 0 } else { 2 })
}

fn human_secs(s: i64) -> String {
    let a = s.unsigned_abs();
    let t = if a >= 86400 * 2 {
        format!("{}d", a / 86400)
    } else if a >= 7200 {
        format!("{}h", a / 3600)
    } else if a >= 120 {
        format!("{}m", a / 60)
    } else {
        format!("{a}s")
    };
    if s < 0 { format!("{t} ago") } else { format!("in {t}") }
}

pub fn print_view(v: &RepoView) {
    println!("repository {:?} (upstream {})", v.repo, if v.upstream.is_empty() { "-" } else { &v.upstream });
    if v.roles.is_empty() {
        println!("  no verified metadata yet");
    }
    for (role, r) in &v.roles {
        let exp = match (r.expires, r.expires_in_seconds) {
            (Some(e), Some(s)) => format!("expires {e} ({}){}", human_secs(s), if r.expired { "  EXPIRED" } else { "" }),
            _ => String::new(),
        };
        println!("  {role:<24} v{:<6} {exp}", r.version);
    }
    println!("  targets: {}", v.targets.len());
    for t in &v.targets {
        println!("    {:<40} {:>8} bytes  sha256:{}…  ({})", t.path, t.length, &t.sha256[..12], t.role);
    }
    match (v.last_success, v.seconds_since_last_success) {
        (Some(t), Some(s)) => println!("  last good refresh: {t} ({s} s ago)"),
        _ => println!("  last good refresh: never"),
    }
    if let Some(e) = &v.last_error {
        println!("  last error: {e}  ({} consecutive failures)", v.consecutive_failures);
    }
    if !v.failures.is_empty() {
        let f: Vec<String> = v.failures.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!("  failures by reason: {}", f.join(" "));
    }
    println!("  ready: {}", if v.ready { "yes".to_string() } else { format!("no ({})", v.not_ready_reason.clone().unwrap_or_default()) });
}

/// Run the HTTP service with a refresh loop until interrupted (or `exit_after`).
pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    if a.demo {
        return demo::serve_demo(a.listen, a.exit_after).await;
    }
    let cfg = crate::config::Config::load(a.config.as_ref().expect("clap requires --config"))?;
    let listen = a.listen.unwrap_or(cfg.listen.clone());
    let store = Arc::new(Store::open(&cfg.store)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let t = &cfg.tuf;
    let mut mirror =
        mirror_for(store.clone(), &t.repo, &t.upstream, read_opt(&t.root)?, read_opt(&t.ca_file)?, t.root_probe_interval, clock.clone())?;
    if let Some(globs) = &t.targets {
        let pats = globs
            .iter()
            .map(|g| glob::Pattern::new(g).with_context(|| format!("tuf.targets: bad glob {g:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        mirror.set_target_filter(pats);
    }
    let mirror = Arc::new(mirror);
    let oci = match &cfg.oci {
        Some(o) => Some((Arc::new(oci_mirror_from_config(store.clone(), o, clock.clone())?), o.interval)),
        None => None,
    };
    let tlog = match &cfg.tlog {
        Some(tc) => {
            let w = Arc::new(tlog::load_witness(&tc.witness_key, &tc.witness_name)?);
            tracing::info!(vkey = %w.vkey(), "transparency-log witness");
            let st = store.clone();
            let explicit = cfg.oci.as_ref().and_then(|o| o.trusted_root.clone());
            let trust = move || {
                mirror::trust_material(&st, explicit.as_ref()).unwrap_or_else(|_| crate::core::verify::TrustedMaterial::production_arc())
            };
            Some((Arc::new(crate::mirror::tlog_mirror::TlogMirror::new(store.clone(), clock.clone(), Arc::new(trust), w)), tc.interval))
        }
        None => None,
    };
    let running = start_full(mirror, clock.clone(), &listen, t.refresh_interval, t.max_backoff, oci, tlog).await?;
    tracing::info!(url = %format!("http://{}/tuf/", running.addr), "serving the TUF mirror");
    let webhook = match &cfg.admission {
        Some(ac) => {
            let mut eo = ac.engine_options();
            eo.require_mirror_sync = cfg.oci.is_some();
            let engine = Arc::new(crate::admission::Engine::new(store.clone(), clock, eo, running.state.ingest.clone())?);
            running.state.metrics.register(|r| engine.metrics.register(r));
            let w = crate::admission::server::start(engine.clone(), &ac.webhook_options()?).await?;
            if let Some(ca) = &w.ca_pem {
                tracing::info!(ca_bundle = %base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca), "generated webhook CA (caBundle)");
            }
            Some((w, engine))
        }
        None => None,
    };
    Running::wait_for_signal(a.exit_after).await;
    if let Some((w, engine)) = webhook {
        w.shutdown().await?;
        // every decision answered is in the audit log before the process ends
        tokio::task::spawn_blocking(move || engine.flush_audit()).await?;
    }
    running.shutdown().await
}

/// The OCI mirror of a `serve` configuration. Its trust root follows the mirrored TUF
/// repository's `trusted_root.json` (re-parsed only when that target changes).
pub fn oci_mirror_from_config(
    store: Arc<Store>,
    o: &crate::config::OciConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<crate::mirror::oci_mirror::OciMirror> {
    use crate::mirror::oci_mirror::{OciMirror, OciMirrorConfig};
    use oci_client::secrets::RegistryAuth;
    let auth = o
        .auth
        .iter()
        .map(|(h, c)| {
            let a = match (&c.token, &c.username, &c.password) {
                (Some(t), _, _) => RegistryAuth::Bearer(t.clone()),
                (None, Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
                _ => RegistryAuth::Anonymous,
            };
            (h.clone(), a)
        })
        .collect();
    let cfg = OciMirrorConfig {
        images: o.images.clone(),
        layouts: o.layouts.clone(),
        registry: crate::mirror::oci::RegistryOptions {
            insecure_hosts: o.insecure_registries.clone(),
            ca_pem: read_opt(&o.ca_file)?,
            ..Default::default()
        },
        auth,
        concurrency: o.concurrency,
        full_recheck_interval: jiff::SignedDuration::try_from(o.full_recheck_interval).unwrap_or(jiff::SignedDuration::from_hours(1)),
        keys: mirror::key_list(&o.keys)?,
        ..Default::default()
    };
    let explicit = o.trusted_root.clone();
    let cache: std::sync::Mutex<Option<(String, Arc<crate::core::verify::TrustedMaterial>)>> = std::sync::Mutex::new(None);
    let st = store.clone();
    let trust = move || {
        let key = st.tuf_targets("default").ok().and_then(|t| t.get("trusted_root.json").map(|t| t.sha256.clone())).unwrap_or_default();
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, tm)) = c.as_ref()
            && *k == key
        {
            return tm.clone();
        }
        let tm = mirror::trust_material(&st, explicit.as_ref()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "no usable trusted root; falling back to the embedded production root");
            crate::core::verify::TrustedMaterial::production_arc()
        });
        *c = Some((key, tm.clone()));
        tm
    };
    Ok(OciMirror::new(store, cfg, clock, Arc::new(trust)))
}

/// A running service (HTTP server + refresh loop).
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Wait for Ctrl-C / SIGTERM (or `limit`), then stop both tasks.
    pub async fn wait(self, limit: Option<Duration>) -> anyhow::Result<()> {
        Self::wait_for_signal(limit).await;
        self.shutdown().await
    }

    /// Return on Ctrl-C, SIGTERM, or after `limit`.
    pub async fn wait_for_signal(limit: Option<Duration>) {
        let term = async {
            let mut s = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            s.recv().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
            _ = term => tracing::info!("terminated"),
            _ = async { match limit { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
        }
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.refresher.await;
        self.server.await??;
        Ok(())
    }
}

/// Initial refresh (a failure is logged; the last verified state keeps being served), then the
/// HTTP server and the periodic refresh loop.
pub async fn start(
    mirror: Arc<TufMirror>,
    clock: Arc<dyn Clock>,
    listen: &str,
    interval: Duration,
    max_backoff: Duration,
) -> anyhow::Result<Running> {
    start_with(mirror, clock, listen, interval, max_backoff, None).await
}

/// As [`start`], plus an OCI mirror synced every `interval` (and its on-demand queue).
pub async fn start_with(
    mirror: Arc<TufMirror>,
    clock: Arc<dyn Clock>,
    listen: &str,
    interval: Duration,
    max_backoff: Duration,
    oci: Option<(Arc<crate::mirror::oci_mirror::OciMirror>, Duration)>,
) -> anyhow::Result<Running> {
    start_full(mirror, clock, listen, interval, max_backoff, oci, None).await
}

/// As [`start_with`], plus the transparency-log witness synced every `interval` (and after every
/// OCI sync it proves the new bundles' checkpoints).
pub async fn start_full(
    mirror: Arc<TufMirror>,
    clock: Arc<dyn Clock>,
    listen: &str,
    interval: Duration,
    max_backoff: Duration,
    oci: Option<(Arc<crate::mirror::oci_mirror::OciMirror>, Duration)>,
    tlog: Option<(Arc<crate::mirror::tlog_mirror::TlogMirror>, Duration)>,
) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    match mirror.refresh().await {
        Ok(s) => metrics.record_refresh(&mirror.config().repo, "success", s.requests),
        Err(e) => {
            tracing::warn!(error = %e, "initial refresh failed");
            metrics.record_refresh(&mirror.config().repo, e.kind.as_str(), 0);
        }
    }
    let ingest = oci.as_ref().map(|(m, _)| crate::mirror::oci_mirror::spawn_queue(m.clone()));
    let state = AppState {
        store: mirror.store().clone(),
        clock,
        repo: mirror.config().repo.clone(),
        metrics: metrics.clone(),
        ingest,
        tlog: tlog.as_ref().map(|(t, _)| t.clone()),
    };
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let app = router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx2.changed().await;
            })
            .await
    });
    if let Some((t, every)) = tlog.clone() {
        let mut stop_t = rx.clone();
        tokio::spawn(async move {
            loop {
                t.sync().await;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop_t.changed() => return,
                }
            }
        });
    }
    if let Some((m, every)) = oci {
        let mut stop_oci = rx.clone();
        let witness = tlog.map(|(t, _)| t);
        tokio::spawn(async move {
            loop {
                m.sync().await;
                if let Some(w) = &witness {
                    let (proven, failed) = w.prove_mirrored().await;
                    if proven + failed > 0 {
                        tracing::info!(proven, failed, "bundle checkpoints checked against the witnessed history");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop_oci.changed() => return,
                }
            }
        });
    }
    let refresher = tokio::spawn(crate::serve::refresh_loop(mirror, metrics, interval, max_backoff, rx));
    Ok(Running { addr, state, stop, server, refresher })
}
