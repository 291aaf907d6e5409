//! The `trustmirror` command line.

pub mod admission;
pub mod admission_demo;
pub mod bundle;
pub mod demo;
pub mod gate;
pub mod mirror;
pub mod node;
pub mod slsa_verifier;
pub mod status;
pub mod testbed;
pub mod tlog;
pub mod tuf_conformance;
pub mod verify;
pub mod verify_args;
pub mod verify_blob_attestation;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::clock::{Clock, SystemClock};
use crate::store::{RepoView, Store, repo_view};

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
    VerifyBlob(verify_args::VerifyBlobArgs),
    /// Verify a blob's attestation (cosign verify-blob-attestation): a package tarball by bytes
    /// or by sha256/sha512 digest; npm registry attestation documents and keys understood.
    VerifyBlobAttestation(verify_blob_attestation::VerifyBlobAttestationArgs),
    /// Verify an image's signatures (cosign verify): `.sig` layers and referrer bundles.
    Verify(verify_args::ImageArgs),
    /// Verify an image's attestations of a predicate type (cosign verify-attestation).
    VerifyAttestation(verify_args::VerifyAttestationArgs),
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
    /// How fresh the trust material is, and what the freshness policy does about it (exit 1
    /// when anything is past its warning).
    Status(status::StatusArgs),
    /// Air-gap bundles: create one on the connected side; verify and import it on the other.
    #[command(subcommand)]
    Bundle(bundle::BundleCmd),
    /// The deploy gate: decide images with the admission policies (from a store, or straight
    /// from their registries) and sign verification summaries for those that pass. Exit 0 all
    /// pass, 1 a policy failed, 2 usage/configuration error, 3 an image could not be decided.
    Gate(gate::GateArgs),
    /// The node agent: verified trust material and the container runtime's signature policy on
    /// this node, from the mirror or, while it is down, from its own cache.
    Node(node::NodeArgs),
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
    #[arg(long, value_parser = crate::core::clock::parse_duration)]
    pub exit_after: Option<Duration>,
    /// Only read and check the configuration (sections, field names, values), then exit: for
    /// charts and config management. Files it names are not opened.
    #[arg(long, requires = "config")]
    pub check_config: bool,
}

/// Registry credentials, as every command that reads a registry takes them.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryCredentialArgs {
    #[arg(long, env = "TRUSTMIRROR_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    #[arg(long, env = "TRUSTMIRROR_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    #[arg(long, env = "TRUSTMIRROR_REGISTRY_TOKEN", hide_env_values = true)]
    pub registry_token: Option<String>,
}

impl RegistryCredentialArgs {
    pub fn credentials(&self) -> crate::mirror::oci::Credentials {
        crate::mirror::oci::Credentials {
            username: self.registry_username.clone(),
            password: self.registry_password.clone(),
            token: self.registry_token.clone(),
        }
    }
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
        Cmd::Node(a) => node::run(a).await,
        Cmd::Gate(a) => gate::run(a).await,
        Cmd::Bundle(c) => bundle::run(c).await,
        Cmd::Status(a) => status::run(a),
        Cmd::Tuf(TufCmd::Refresh { store, upstream, root, ca_file, output }) => tuf_refresh(store, upstream, root, ca_file, output).await,
        Cmd::Tuf(TufCmd::Status { store, output }) => tuf_status(store, output),
        Cmd::Dev(DevCmd::DemoBundle { dir, targets }) => demo::make_demo_bundle(&dir, &targets).map(|_| 0),
        Cmd::Testbed(c) => testbed::run(c).await,
        Cmd::Mirror(c) => mirror::run(c).await,
        Cmd::VerifyBlob(a) => verify::verify_blob(a),
        Cmd::VerifyBlobAttestation(a) => verify_blob_attestation::run(a),
        Cmd::Verify(a) => verify::verify_image(a).await,
        Cmd::VerifyAttestation(a) => verify::verify_attestation(a).await,
    }
}

fn read_opt(p: &Option<PathBuf>) -> anyhow::Result<Option<Vec<u8>>> {
    p.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).transpose()
}

async fn tuf_refresh(s: StoreArg, upstream: String, root: Option<PathBuf>, ca: Option<PathBuf>, output: Output) -> anyhow::Result<i32> {
    let store = Arc::new(Store::open(&s.store)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A one-off refresh always probes for a new root.
    let m = crate::daemon::tuf_mirror(store.clone(), &s.repo, &upstream, read_opt(&root)?, read_opt(&ca)?, Duration::ZERO, clock.clone())?;
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
        println!("    {:<40} {:>8} bytes  sha256:{}…  ({})", t.path, t.length, t.sha256.chars().take(12).collect::<String>(), t.role);
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

/// Run the cluster service until interrupted (or `exit_after`).
pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    if a.demo {
        return demo::serve_demo(a.listen, a.exit_after).await;
    }
    let path = a.config.as_ref().expect("clap requires --config");
    let mut cfg = crate::daemon::Config::load(path)?;
    if a.check_config {
        println!("{}: configuration OK ({})", path.display(), cfg.sections().join(", "));
        return Ok(());
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    let o = crate::daemon::Options::from_config(&cfg, Arc::new(SystemClock))?;
    let running = crate::daemon::start(o).await?;
    running.wait(a.exit_after).await
}

/// A spinner on a terminal (nothing when stderr is not one).
pub fn spinner(msg: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let p = indicatif::ProgressBar::new_spinner();
    p.set_message(msg.to_string());
    p.enable_steady_tick(std::time::Duration::from_millis(120));
    p
}
