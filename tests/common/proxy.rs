//! A registry proxy for tests: forwards to a real `docker-registry`, logs every request, injects
//! faults per path, and can answer the OCI 1.1 referrers API that distribution 2.8 lacks (from the
//! referrers tag schema index, or from an index the test provides).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Debug)]
pub enum PFault {
    Status(u16),
    Hang,
    /// Flip one byte of the upstream body.
    Corrupt,
    /// An endless body.
    Endless,
    /// Answer 404 (hide what upstream has).
    Hide,
}

/// Called after a request matching its path fragment was answered (once).
pub type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone, Default)]
pub struct ProxyState {
    pub upstream: String,
    pub log: Arc<Mutex<Vec<String>>>,
    /// path fragment → fault (first match wins)
    pub faults: Arc<Mutex<Vec<(String, PFault)>>>,
    pub referrers_api: Arc<Mutex<bool>>,
    /// Extra referrer descriptors per subject digest, served by the referrers API only.
    pub extra_referrers: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>,
    pub hooks: Arc<Mutex<Vec<(String, Method, Hook)>>>,
    client: reqwest::Client,
}

impl ProxyState {
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
    pub fn fault(&self, fragment: &str, f: PFault) {
        self.faults.lock().unwrap().push((fragment.into(), f));
    }
    pub fn clear(&self) {
        self.faults.lock().unwrap().clear();
        self.hooks.lock().unwrap().clear();
    }
    pub fn hook(&self, fragment: &str, method: Method, h: Hook) {
        self.hooks.lock().unwrap().push((fragment.into(), method, h));
    }
}

struct Endless;
impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![0u8; 1 << 20])))))
    }
}

async fn handle(State(s): State<ProxyState>, req: Request) -> Response {
    let method = req.method().clone();
    let pq = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let path = req.uri().path().to_string();
    s.log.lock().unwrap().push(format!("{method} {pq}"));
    let fault = s.faults.lock().unwrap().iter().find(|(f, _)| path.contains(f.as_str())).map(|(_, f)| f.clone());
    match fault {
        Some(PFault::Status(c)) => return StatusCode::from_u16(c).unwrap().into_response(),
        Some(PFault::Hang) => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(PFault::Hide) => {
            return (StatusCode::NOT_FOUND, r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"hidden"}]}"#).into_response();
        }
        Some(PFault::Endless) => {
            let mut r = Response::new(Body::new(Endless));
            r.headers_mut().insert("content-type", HeaderValue::from_static("application/octet-stream"));
            return r;
        }
        _ => {}
    }
    // referrers API: GET /v2/<name>/referrers/<digest>
    if let Some((name, digest)) = path.strip_prefix("/v2/").and_then(|p| p.split_once("/referrers/")) {
        if !*s.referrers_api.lock().unwrap() {
            return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
        }
        let tag = digest.replacen(':', "-", 1);
        let mut manifests: Vec<serde_json::Value> = match s
            .client
            .get(format!("http://{}/v2/{name}/manifests/{tag}", s.upstream))
            .header("accept", "application/vnd.oci.image.index.v1+json")
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                r.json::<serde_json::Value>().await.ok().and_then(|v| v["manifests"].as_array().cloned()).unwrap_or_default()
            }
            _ => vec![],
        };
        manifests.extend(s.extra_referrers.lock().unwrap().get(digest).cloned().unwrap_or_default());
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        return (StatusCode::OK, [("content-type", "application/vnd.oci.image.index.v1+json")], body.to_string()).into_response();
    }
    let headers: HeaderMap = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20).await.unwrap_or_default();
    let mut up = s.client.request(method.clone(), format!("http://{}{pq}", s.upstream));
    for h in ["accept", "authorization", "content-type"] {
        for v in headers.get_all(h) {
            up = up.header(h, v.clone());
        }
    }
    let resp = match up.body(body).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let rh = resp.headers().clone();
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();
    if matches!(fault, Some(PFault::Corrupt)) && !bytes.is_empty() {
        let i = bytes.len() / 2;
        bytes[i] ^= 0x20;
    }
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap();
    for (k, v) in rh.iter() {
        if k != "transfer-encoding" && k != "content-length" {
            r.headers_mut().append(k.clone(), v.clone());
        }
    }
    let hooks: Vec<Hook> = {
        let mut hs = s.hooks.lock().unwrap();
        let (fire, keep): (Vec<_>, Vec<_>) = hs.drain(..).partition(|(f, m, _)| path.contains(f.as_str()) && *m == method);
        *hs = keep;
        fire.into_iter().map(|(_, _, h)| h).collect()
    };
    for h in hooks {
        h();
    }
    r
}

/// Start a proxy to `upstream` (`host:port`) on 127.0.0.1. Returns its `host:port` and state.
pub async fn start(upstream: &str) -> (String, ProxyState) {
    let state = ProxyState { upstream: upstream.into(), ..Default::default() };
    let app = axum::Router::new().fallback(handle).with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, state)
}
