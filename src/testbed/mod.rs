//! `trustmirror testbed`: an internal Sigstore stack on loopback, for tests, the demo and air-gap
//! drills — a TUF repository publishing the trust root, a Fulcio-like CA with a CT log, a
//! Rekor-compatible log, an RFC 3161 TSA, Debian's `docker-registry` (anonymous and with
//! htpasswd auth), and the scenario images signed exactly as cosign does. Deterministic from a
//! seed; the clock is injected.

pub mod cosign;
pub mod demo_tuf;
pub mod keys;
pub mod lab;
pub mod oci;
pub mod pki;
pub mod predicates;
pub mod process;
pub mod rekor;
pub mod scenarios;
pub mod sigstore;
pub mod tsa;
pub mod tufrepo;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};

use crate::testbed::keys::KeyKind;
use crate::testbed::oci::{Pusher, Registry};
use crate::testbed::scenarios::Scenario;
use crate::testbed::sigstore::SigstoreStack;
use crate::testbed::tufrepo::TufRepo;

#[derive(Debug, Clone)]
pub struct TestbedOptions {
    pub dir: PathBuf,
    pub seed: String,
    /// The testbed clock (default: now).
    pub now: Option<Timestamp>,
    /// HTTP port for TUF/Rekor/TSA (0: any free port).
    pub port: u16,
    /// Start the registries and publish the scenario images.
    pub registry: bool,
}

impl TestbedOptions {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self { dir: dir.as_ref().to_path_buf(), seed: "trustmirror-testbed".into(), now: None, port: 0, registry: true }
    }
}

pub struct Testbed {
    pub dir: PathBuf,
    pub now: Timestamp,
    pub stack: Arc<SigstoreStack>,
    pub tuf: Arc<Mutex<TufRepo>>,
    pub addr: SocketAddr,
    pub registry: Option<Registry>,
    pub auth_registry: Option<Registry>,
    pub scenarios: Vec<Scenario>,
    pub env: BTreeMap<String, String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub const REGISTRY_USER: &str = "tester";
pub const REGISTRY_PASS: &str = "testbed-secret";

#[derive(Clone)]
struct HttpState {
    stack: Arc<SigstoreStack>,
    tuf_dir: PathBuf,
}

async fn tuf_file(State(s): State<HttpState>, axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    if path.split('/').any(|c| c == ".." || c.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(s.tuf_dir.join(&path)).await {
        Ok(b) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], b).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn timestamp(State(s): State<HttpState>, body: Bytes) -> Response {
    match s.stack.tsa.respond(&body, Timestamp::now()) {
        Ok(r) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/timestamp-reply")], r).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn tsa_chain(State(s): State<HttpState>) -> Response {
    let chain: String = s.stack.tsa.chain().iter().map(|c| keys::pem("CERTIFICATE", c)).collect();
    ([(header::CONTENT_TYPE, "application/pem-certificate-chain")], chain).into_response()
}

impl Testbed {
    /// Start everything; write `DIR/env`, `DIR/trust/…`, `DIR/tuf/`, `DIR/scenarios.json`.
    pub async fn up(opts: TestbedOptions) -> anyhow::Result<Self> {
        let t0 = std::time::Instant::now();
        let now = opts.now.unwrap_or_else(Timestamp::now);
        let dir = opts.dir.clone();
        std::fs::create_dir_all(&dir)?;
        let stack = Arc::new(SigstoreStack::new(&opts.seed, now));

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await.context("binding the testbed HTTP port")?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        stack.rekor.lock().unwrap_or_else(|e| e.into_inner()).set_host(&addr.to_string());

        // Trust material
        let trust = dir.join("trust");
        std::fs::create_dir_all(&trust)?;
        let trusted_root = stack.trusted_root(&base);
        let signing_config = stack.signing_config(&base);
        write_json(&trust.join("trusted_root.json"), &trusted_root)?;
        write_json(&trust.join("signing_config.json"), &signing_config)?;
        write_json(
            &trust.join("trust_config.json"),
            &serde_json::json!({"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": trusted_root, "signingConfig": signing_config}),
        )?;
        if let sigstore::Signer::Key { key } = stack.static_key("vendor") {
            std::fs::write(trust.join("vendor-cosign.pub"), key.public_pem())?;
        }

        // TUF repository publishing it
        let tuf_dir = dir.join("tuf");
        if tuf_dir.exists() {
            std::fs::remove_dir_all(&tuf_dir)?;
        }
        let mut repo = TufRepo::new(&tuf_dir, &format!("{}/tuf", opts.seed), KeyKind::EcdsaP256, now, SignedDuration::from_hours(24 * 365));
        repo.set_expiry("timestamp", now.checked_add(SignedDuration::from_hours(24 * 7)).expect("range"));
        repo.set_expiry("snapshot", now.checked_add(SignedDuration::from_hours(24 * 30)).expect("range"));
        repo.add_target("targets", "trusted_root.json", &serde_json::to_vec_pretty(&trusted_root)?);
        repo.add_target("targets", "signing_config.json", &serde_json::to_vec_pretty(&signing_config)?);
        repo.add_target("targets", "signing_config.v0.2.json", &serde_json::to_vec_pretty(&signing_config)?);
        for (name, bytes) in stack.legacy_targets() {
            repo.add_target("targets", name, &bytes);
        }
        repo.publish_all()?;

        let state = HttpState { stack: stack.clone(), tuf_dir: tuf_dir.clone() };
        let app = rekor::router(stack.rekor.clone()).merge(
            axum::Router::new()
                .route("/tuf/{*path}", axum::routing::get(tuf_file))
                .route("/api/v1/timestamp", axum::routing::post(timestamp))
                .route("/api/v1/timestamp/certchain", axum::routing::get(tsa_chain))
                .route("/healthz", axum::routing::get(|| async { "ok\n" }))
                .with_state(state),
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
        });

        let mut env = BTreeMap::new();
        env.insert("TESTBED_URL".into(), base.clone());
        env.insert("TUF_URL".into(), format!("{base}/tuf/"));
        env.insert("TUF_DIR".into(), tuf_dir.display().to_string());
        env.insert("TUF_ROOT".into(), tuf_dir.join("1.root.json").display().to_string());
        env.insert("REKOR_URL".into(), base.clone());
        env.insert("TSA_URL".into(), format!("{base}/api/v1/timestamp"));
        env.insert("TRUSTED_ROOT".into(), trust.join("trusted_root.json").display().to_string());
        env.insert("SIGNING_CONFIG".into(), trust.join("signing_config.json").display().to_string());
        env.insert("TRUST_CONFIG".into(), trust.join("trust_config.json").display().to_string());
        env.insert("VENDOR_COSIGN_PUB".into(), trust.join("vendor-cosign.pub").display().to_string());
        env.insert("GOOD_IDENTITY".into(), scenarios::good_identity().san);
        env.insert("GOOD_ISSUER".into(), scenarios::good_identity().issuer);

        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "testbed: keys, trust material, TUF repository, HTTP");
        let (mut registry, mut auth_registry, mut scen) = (None, None, vec![]);
        if opts.registry {
            let (d1, d2) = (dir.join("registry"), dir.join("registry-auth"));
            let (r, ra) = tokio::join!(
                tokio::task::spawn_blocking(move || Registry::start(&d1, None)),
                tokio::task::spawn_blocking(move || Registry::start(&d2, Some((REGISTRY_USER, REGISTRY_PASS))))
            );
            let (r, ra) = (r??, ra??);
            tracing::debug!(ms = t0.elapsed().as_millis() as u64, "testbed: registries up");
            let px = Pusher::new(&r.addr, r.registry_auth());
            scen = scenarios::publish(&stack, &px, now).await.context("publishing the scenario images")?;
            tracing::debug!(ms = t0.elapsed().as_millis() as u64, "testbed: scenarios published");
            // the good image in the auth-protected registry too
            let pa = Pusher::new(&ra.addr, ra.registry_auth());
            let img = oci::push_scratch_image(&pa, "myorg/app", "v1.2.3", "app", b"myorg/app v1.2.3\n").await?;
            let signer = stack.keyless(&scenarios::good_identity(), now);
            cosign::sign_image(&stack, &pa, &img.repo, &img.digest, &signer, now, None).await?;
            env.insert("REGISTRY".into(), r.addr.clone());
            env.insert("REGISTRY_AUTH".into(), ra.addr.clone());
            env.insert("REGISTRY_USER".into(), REGISTRY_USER.into());
            env.insert("REGISTRY_PASS".into(), REGISTRY_PASS.into());
            env.insert("REGISTRY_PIDS".into(), format!("{} {}", r.pid().unwrap_or(0), ra.pid().unwrap_or(0)));
            write_json(&dir.join("scenarios.json"), &serde_json::to_value(&scen)?)?;
            env.insert("SCENARIOS".into(), dir.join("scenarios.json").display().to_string());
            registry = Some(r);
            auth_registry = Some(ra);
        }
        env.insert("PID".into(), std::process::id().to_string());
        let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        crate::files::write_atomic(&dir.join("env"), text.as_bytes())?; // readers see no env file or a complete one

        Ok(Self {
            dir,
            now,
            stack,
            tuf: Arc::new(Mutex::new(repo)),
            addr,
            registry,
            auth_registry,
            scenarios: scen,
            env,
            stop: Some(stop_tx),
            server: Some(server),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// Stop the HTTP server and the registries; remove `DIR/env`.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        self.registry.take();
        self.auth_registry.take();
        let _ = std::fs::remove_file(self.dir.join("env"));
    }
}

fn write_json(p: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(p, serde_json::to_vec_pretty(v)?).with_context(|| format!("writing {}", p.display()))
}

/// Read `DIR/env`.
pub fn read_env(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("env")).with_context(|| format!("no testbed in {} (no env file)", dir.display()))?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}
