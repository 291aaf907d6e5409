//! Shared helpers for integration tests: a loopback file server with a request log and fault
//! injection (the "upstream"), a registry proxy, and access to the independent clients
//! `.ci/install` provides.
#![allow(dead_code)]

pub mod proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What the file server does for a path (or for every path, key `*`).
#[derive(Clone, Debug)]
pub enum Fault {
    Status(u16),
    /// Never answer.
    Hang,
    /// Serve these bytes instead of the file.
    Replace(Vec<u8>),
    /// Stream bytes forever, without a Content-Length.
    Endless,
}

#[derive(Clone, Default)]
pub struct ServerState {
    pub dir: Arc<Mutex<PathBuf>>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub faults: Arc<Mutex<BTreeMap<String, Fault>>>,
}

impl ServerState {
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
    pub fn fault(&self, path: &str, f: Fault) {
        self.faults.lock().unwrap().insert(path.to_string(), f);
    }
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }
    pub fn set_dir(&self, d: &Path) {
        *self.dir.lock().unwrap() = d.to_path_buf();
    }
}

async fn handle(State(s): State<ServerState>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    s.log.lock().unwrap().push(format!("/{path}"));
    let fault = {
        let f = s.faults.lock().unwrap();
        f.get(&path).or_else(|| f.get("*")).cloned()
    };
    match fault {
        Some(Fault::Status(c)) => return StatusCode::from_u16(c).unwrap().into_response(),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(Fault::Replace(b)) => return (StatusCode::OK, b).into_response(),
        Some(Fault::Endless) => {
            return Response::new(Body::new(Endless));
        }
        None => {}
    }
    let decoded = percent_encoding::percent_decode_str(&path).decode_utf8_lossy().into_owned();
    if decoded.split('/').any(|c| c == "..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let file = s.dir.lock().unwrap().join(&decoded);
    match std::fs::read(&file) {
        Ok(b) if file.is_file() => (StatusCode::OK, b).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An endless body without a Content-Length (an "endless data" attack).
struct Endless;
impl http_body::Body for Endless {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(axum::body::Bytes::from(vec![b'{'; 65536])))))
    }
}

/// Serve `dir` over HTTP on 127.0.0.1 (an ephemeral port). Returns the base URL and the state
/// (request log, faults). The server lives as long as the runtime.
pub async fn serve_dir(dir: &Path) -> (String, ServerState) {
    let state = ServerState::default();
    state.set_dir(dir);
    let app = axum::Router::new().fallback(handle).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), state)
}

pub fn tools_dir() -> PathBuf {
    std::env::var_os("TM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/trustmirror-tools"))
}

/// Interop checks are required: a missing tool fails the test, unless this machine opted out
/// with `TM_SKIP_INTEROP=1` (a developer machine without Python/Node tools).
pub fn interop_skipped() -> bool {
    std::env::var("TM_SKIP_INTEROP").as_deref() == Ok("1")
}

/// A tool from `.ci/install`. Missing: the test fails (run .ci/install), unless interop checks
/// were explicitly opted out of ([`interop_skipped`]); then it says so and returns `None`.
pub fn tool(rel: &str) -> Option<PathBuf> {
    let p = tools_dir().join(rel);
    if p.exists() {
        return Some(p);
    }
    if !interop_skipped() {
        panic!("{} is missing: run .ci/install (or set TM_SKIP_INTEROP=1 to skip interop checks on this machine)", p.display());
    }
    eprintln!("SKIP (TM_SKIP_INTEROP=1): {} is missing", p.display());
    None
}

/// Every interop check of a test ran (`ran == expected`), unless opted out.
pub fn assert_interop_ran(what: &str, ran: usize, expected: usize) {
    if interop_skipped() {
        eprintln!("{what}: {ran} of {expected} interop checks ran (TM_SKIP_INTEROP=1)");
    } else {
        assert_eq!(ran, expected, "{what}: {ran} of {expected} interop checks ran");
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

pub fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// The metric families the README documents, by exact name and type. The README writes a family
/// in full once (`trustmirror_admission_reviews_total`) and abbreviates its siblings
/// (`…_images_total` is `trustmirror_admission_images_total`).
pub fn documented_metric_families() -> std::collections::BTreeMap<String, &'static str> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = std::collections::BTreeMap::new();
    let mut prefix = String::new();
    for code in readme.split('`').skip(1).step_by(2) {
        let name = code.split('{').next().unwrap();
        let full = if let Some(rest) = name.strip_prefix("…_") {
            if prefix.is_empty() {
                continue;
            }
            format!("{prefix}_{rest}")
        } else if name.starts_with("trustmirror_") && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            prefix = name.splitn(3, '_').take(2).collect::<Vec<_>>().join("_");
            name.to_string()
        } else {
            continue;
        };
        let (family, kind) = match full.strip_suffix("_total") {
            Some(f) => (f.to_string(), "counter"),
            None if full.ends_with("_duration_seconds") => (full.clone(), "histogram"),
            None => (full.clone(), "gauge"),
        };
        out.insert(family, kind);
    }
    out
}

/// The `# TYPE` lines of a Prometheus/OpenMetrics exposition: family → type.
pub fn exposed_metric_families(exposition: &str) -> std::collections::BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}
