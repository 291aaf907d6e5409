//! A Rekor-compatible transparency log for the testbed: an RFC 6962 Merkle tree over canonical
//! entry bodies (hashedrekord 0.0.1, dsse 0.0.1, intoto 0.0.2), signed entry timestamps (SETs),
//! inclusion proofs ending in C2SP signed-note checkpoints, consistency proofs, the Rekor v1 HTTP
//! API, and a test hook that forks the log into two inconsistent views (split-view attacks).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::core::merkle::{self, Hash};
use crate::testbed::pki::EcKey;

/// One log view: the bodies and their leaf hashes.
#[derive(Clone, Default)]
struct View {
    bodies: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
    times: Vec<i64>,
}

/// The log.
pub struct Rekor {
    pub key: EcKey,
    /// The checkpoint origin line (`<host> - <tree id>`).
    pub origin: String,
    pub tree_id: u64,
    main: View,
    /// The other view after [`Rekor::fork`].
    fork: Option<View>,
    /// Serve the forked view over HTTP (what a split-view attack shows some clients).
    pub serve_fork: bool,
    /// Serve the checkpoint of this (smaller) size instead of the newest one, while proofs
    /// still cover the whole tree: a lagging cache in front of the log (rollback drill).
    pub serve_size: Option<u64>,
}

/// A logged entry as Rekor's API returns it (and as bundles embed it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    pub uuid: String,
    pub body: Vec<u8>,
    pub integrated_time: i64,
    pub log_index: u64,
    pub log_id: [u8; 32],
    pub kind: String,
    pub version: String,
    pub set: Vec<u8>,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub hashes: Vec<Hash>,
    pub checkpoint: String,
}

impl LogEntry {
    /// The entry in Rekor v1 API form (`{uuid: {...}}` value).
    pub fn api_json(&self) -> Value {
        json!({
            "body": B64.encode(&self.body),
            "integratedTime": self.integrated_time,
            "logID": hex::encode(self.log_id),
            "logIndex": self.log_index,
            "verification": {
                "signedEntryTimestamp": B64.encode(&self.set),
                "inclusionProof": {
                    "logIndex": self.log_index,
                    "treeSize": self.tree_size,
                    "rootHash": hex::encode(self.root_hash),
                    "hashes": self.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
                    "checkpoint": self.checkpoint,
                }
            }
        })
    }

    /// The entry in Sigstore bundle (protobuf-specs JSON) form: `TransparencyLogEntry`.
    pub fn bundle_json(&self) -> Value {
        json!({
            "logIndex": self.log_index.to_string(),
            "logId": {"keyId": B64.encode(self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.version},
            "integratedTime": self.integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": B64.encode(&self.set)},
            "inclusionProof": {
                "logIndex": self.log_index.to_string(),
                "rootHash": B64.encode(self.root_hash),
                "treeSize": self.tree_size.to_string(),
                "hashes": self.hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": self.checkpoint},
            },
            "canonicalizedBody": B64.encode(&self.body),
        })
    }

    /// cosign's `dev.sigstore.cosign/bundle` annotation (the "rekor bundle": SET + payload).
    pub fn cosign_bundle_json(&self) -> Value {
        json!({
            "SignedEntryTimestamp": B64.encode(&self.set),
            "Payload": {
                "body": B64.encode(&self.body),
                "integratedTime": self.integrated_time,
                "logIndex": self.log_index,
                "logID": hex::encode(self.log_id),
            }
        })
    }
}

/// JSON canonicalization (RFC 8785), as Rekor stores bodies and signs SETs.
pub fn jcs(v: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(v).expect("JSON values canonicalize")
}

/// Rekor (and the Go PEM encoder) wrap PEM at 64 columns with a trailing newline; verifiers
/// compare the re-encoded PEM byte for byte.
pub fn pem_b64(label: &str, der: &[u8]) -> String {
    B64.encode(crate::testbed::keys::pem(label, der))
}

/// Canonical hashedrekord 0.0.1 body.
pub fn hashedrekord_body(artifact_sha256: &[u8], signature: &[u8], verifier_pem_b64: &str) -> Value {
    json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hex::encode(artifact_sha256)}},
        "signature": {"content": B64.encode(signature), "publicKey": {"content": verifier_pem_b64}}}})
}

/// Canonical dsse 0.0.1 body for a one-signature envelope.
pub fn dsse_body(envelope_json: &[u8], payload: &[u8], signature: &[u8], verifier_pem_b64: &str) -> Value {
    json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "envelopeHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(envelope_json))},
        "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))},
        "signatures": [{"signature": B64.encode(signature), "verifier": verifier_pem_b64}]}})
}

/// Canonical intoto 0.0.2 body (the payload is dropped; signatures are base64 of the base64 `sig`).
pub fn intoto_body(envelope_json: &[u8], payload_type: &str, payload: &[u8], signature: &[u8], verifier_pem_b64: &str) -> Value {
    json!({"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {
        "envelope": {"payloadType": payload_type, "signatures": [
            {"publicKey": verifier_pem_b64, "sig": B64.encode(B64.encode(signature))}]},
        "hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(envelope_json))},
        "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))}}}})
}

impl Rekor {
    pub fn new(seed: &str, host: &str) -> Self {
        let key = EcKey::from_seed(format!("{seed}/rekor").as_bytes());
        let tree_id = u64::from_be_bytes(Sha256::digest(format!("{seed}/tree").as_bytes())[..8].try_into().expect("8 bytes")) >> 1;
        let mut r = Self {
            key,
            origin: format!("{host} - {tree_id}"),
            tree_id,
            main: View::default(),
            fork: None,
            serve_fork: false,
            serve_size: None,
        };
        // Index 0 is a filler entry so that real entries have logIndex >= 1: proto3 JSON omits
        // zero values, which some verifiers then reject as missing.
        r.push_raw(b"{\"kind\":\"genesis\"}".to_vec(), 0);
        r
    }

    pub fn log_id(&self) -> [u8; 32] {
        self.key.key_id()
    }

    /// Name the log after the host it is served at: checkpoint verifiers (sigstore-js) match the
    /// signature line's name against the log's base URL in the trusted root.
    pub fn set_host(&mut self, host: &str) {
        self.origin = format!("{host} - {}", self.tree_id);
    }

    fn push_raw(&mut self, body: Vec<u8>, t: i64) -> u64 {
        let h = merkle::leaf_hash(&body);
        self.main.leaves.push(h);
        self.main.bodies.push(body);
        self.main.times.push(t);
        self.main.leaves.len() as u64 - 1
    }

    fn view(&self, fork: bool) -> &View {
        if fork { self.fork.as_ref().unwrap_or(&self.main) } else { &self.main }
    }

    /// Leaf hashes of the main view.
    pub fn leaf_hashes(&self) -> &[Hash] {
        &self.main.leaves
    }

    pub fn size(&self) -> u64 {
        self.main.leaves.len() as u64
    }

    /// Size of the forked view (0 before a fork).
    pub fn fork_size(&self) -> u64 {
        self.fork.as_ref().map(|f| f.leaves.len() as u64).unwrap_or(0)
    }

    /// The size whose checkpoint is served (the view's size, or the rollback drill's).
    fn served_size(&self) -> u64 {
        let n = self.view(self.serve_fork).leaves.len() as u64;
        self.serve_size.map(|s| s.min(n)).unwrap_or(n)
    }

    /// A C2SP signed-note checkpoint for the first `size` leaves of a view.
    pub fn checkpoint_of(&self, fork: bool, size: u64) -> String {
        let v = self.view(fork);
        let root = merkle::root(&v.leaves[..size as usize]);
        let body = format!("{}\n{}\n{}\n", self.origin, size, B64.encode(root));
        let sig = self.key.sign(body.as_bytes());
        let mut blob = self.log_id()[..4].to_vec();
        blob.extend_from_slice(&sig);
        let host = self.origin.split(' ').next().unwrap_or(&self.origin);
        format!("{body}\n\u{2014} {host} {}\n", B64.encode(blob))
    }

    /// Append a canonical body at `integrated_time` and return the logged entry with its SET,
    /// inclusion proof and checkpoint.
    pub fn append(&mut self, body: &Value, integrated_time: i64) -> LogEntry {
        let canonical = jcs(body);
        let kind = body["kind"].as_str().unwrap_or_default().to_string();
        let version = body["apiVersion"].as_str().unwrap_or_default().to_string();
        let idx = self.push_raw(canonical.clone(), integrated_time);
        self.entry(false, idx, kind, version)
    }

    fn entry(&self, fork: bool, idx: u64, kind: String, version: String) -> LogEntry {
        let v = self.view(fork);
        let size = v.leaves.len() as u64;
        let body = v.bodies[idx as usize].clone();
        let t = v.times[idx as usize];
        let set_payload = json!({"body": B64.encode(&body), "integratedTime": t, "logID": hex::encode(self.log_id()), "logIndex": idx});
        LogEntry {
            uuid: hex::encode(v.leaves[idx as usize]),
            set: self.key.sign(&jcs(&set_payload)),
            body,
            integrated_time: t,
            log_index: idx,
            log_id: self.log_id(),
            kind,
            version,
            tree_size: size,
            root_hash: merkle::root(&v.leaves),
            hashes: merkle::inclusion_proof(idx as usize, &v.leaves),
            checkpoint: self.checkpoint_of(fork, size),
        }
    }

    /// Split the log: from now on the fork view holds a different entry at the next index (and
    /// everything appended later goes to the main view only). Both views are signed by the log
    /// key; they are inconsistent from the fork point on.
    pub fn fork(&mut self, t: i64) {
        let mut f = self.main.clone();
        let evil = jcs(&json!({"kind": "fork", "note": "entry only the forked view contains", "at": t}));
        f.leaves.push(merkle::leaf_hash(&evil));
        f.bodies.push(evil);
        f.times.push(t);
        self.fork = Some(f);
    }

    /// The same tree as a C2SP tlog-tiles log (Rekor v2 style): origin `<host>/tiles`, checkpoints
    /// signed with an Ed25519 key under the signed-note key ID.
    pub fn tiles_origin(&self) -> String {
        format!("{}/tiles", self.origin.split(' ').next().unwrap_or(&self.origin))
    }

    fn tiles_key(&self) -> aws_lc_rs::signature::Ed25519KeyPair {
        let seed: [u8; 32] = Sha256::digest(format!("{}/tiles-key", self.tree_id).as_bytes()).into();
        aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("ed25519 seed")
    }

    /// SPKI DER of the tiles log's Ed25519 key.
    pub fn tiles_spki(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        let mut spki = hex::decode("302a300506032b6570032100").expect("hex");
        spki.extend_from_slice(self.tiles_key().public_key().as_ref());
        spki
    }

    /// The tiles log's ID as Rekor v2 logs are listed in trusted roots:
    /// SHA-256(origin || "\n" || 0x01 || Ed25519 key) — its first four bytes are the checkpoint's
    /// signed-note key ID (production `log2025-1` is listed this way).
    pub fn tiles_log_id(&self) -> [u8; 32] {
        use aws_lc_rs::signature::KeyPair;
        let mut h = Sha256::new();
        h.update(self.tiles_origin().as_bytes());
        h.update(b"\n\x01");
        h.update(self.tiles_key().public_key().as_ref());
        h.finalize().into()
    }

    /// Append a body as a Rekor v2 log does and return the bundle's `TransparencyLogEntry`: no
    /// integrated time and no SET; the inclusion proof reaches the tiles checkpoint.
    pub fn append_v2(&mut self, body: &Value) -> Value {
        let canonical = jcs(body);
        let idx = self.push_raw(canonical.clone(), 0);
        let v = self.view(false);
        let size = v.leaves.len() as u64;
        json!({
            "logIndex": idx.to_string(),
            "logId": {"keyId": B64.encode(self.tiles_log_id())},
            "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
            "inclusionProof": {
                "logIndex": idx.to_string(),
                "rootHash": B64.encode(merkle::root(&v.leaves)),
                "treeSize": size.to_string(),
                "hashes": merkle::inclusion_proof(idx as usize, &v.leaves).iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": self.tiles_checkpoint(false, size)},
            },
            "canonicalizedBody": B64.encode(&canonical),
        })
    }

    /// The tiles log's checkpoint for the first `size` leaves of a view.
    pub fn tiles_checkpoint(&self, fork: bool, size: u64) -> String {
        use aws_lc_rs::signature::KeyPair;
        let v = self.view(fork);
        let origin = self.tiles_origin();
        let body = format!("{origin}\n{size}\n{}\n", B64.encode(merkle::root(&v.leaves[..size as usize])));
        let key = self.tiles_key();
        let mut blob = crate::core::tlog::note_key_id(&origin, key.public_key().as_ref()).to_vec();
        blob.extend_from_slice(key.sign(body.as_bytes()).as_ref());
        format!("{body}\n\u{2014} {origin} {}\n", B64.encode(blob))
    }

    /// Tile (level, index) of width `width` for the current size of a view, if it exists.
    pub fn tile(&self, fork: bool, level: u32, index: u64, width: u32) -> Option<Vec<u8>> {
        let v = self.view(fork);
        let span = 1usize.checked_shl(8 * level)?;
        let entries = v.leaves.len() / span;
        let (from, to) = (index as usize * 256, index as usize * 256 + width as usize);
        if width == 0 || width > 256 || to > entries || (width < 256 && to != entries) {
            return None;
        }
        Some((from..to).flat_map(|j| merkle::root(&v.leaves[j * span..(j + 1) * span])).collect())
    }

    /// Roll the served tree back to `size` leaves (a log that rolls back; test hook).
    pub fn truncate(&mut self, size: u64) {
        let s = size as usize;
        self.main.leaves.truncate(s);
        self.main.bodies.truncate(s);
        self.main.times.truncate(s);
    }
}

pub type SharedRekor = Arc<Mutex<Rekor>>;

fn lock(r: &SharedRekor) -> std::sync::MutexGuard<'_, Rekor> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

fn err(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({"code": code.as_u16(), "message": msg.into()}))).into_response()
}

/// Rekor v1 API routes (mounted at the server root).
pub fn router(r: SharedRekor) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/log", get(log_info))
        .route("/api/v1/log/publicKey", get(public_key))
        .route("/api/v1/log/proof", get(proof))
        .route("/api/v1/log/entries", post(create_entry).get(entry_by_index))
        .route("/api/v1/log/entries/{uuid}", get(entry_by_uuid))
        .route("/testbed/rekor/fork", post(fork))
        .route("/testbed/rekor/serve", post(serve_view))
        .route("/testbed/rekor/append", post(append_entry))
        .route("/testbed/rekor/rollback", post(rollback))
        .route("/tiles/checkpoint", get(tiles_checkpoint))
        .route("/tiles/tile/{*path}", get(tiles_tile))
        .with_state(r)
}

async fn log_info(State(r): State<SharedRekor>) -> Response {
    let r = lock(&r);
    let fork = r.serve_fork;
    let v = r.view(fork);
    let size = r.served_size();
    Json(json!({
        "rootHash": hex::encode(merkle::root(&v.leaves[..size as usize])),
        "treeSize": size,
        "signedTreeHead": r.checkpoint_of(fork, size),
        "treeID": r.tree_id.to_string(),
        "inactiveShards": [],
    }))
    .into_response()
}

async fn tiles_checkpoint(State(r): State<SharedRekor>) -> Response {
    let r = lock(&r);
    let fork = r.serve_fork;
    let n = r.served_size();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], r.tiles_checkpoint(fork, n)).into_response()
}

/// `tile/<L>/<N>[.p/<W>]` with N in `x`-prefixed 3-digit groups.
async fn tiles_tile(State(r): State<SharedRekor>, axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let (main, width) = match path.split_once(".p/") {
        Some((m, w)) => (m, w.parse::<u32>().ok()),
        None => (path.as_str(), Some(256)),
    };
    let mut parts = main.split('/');
    let level = parts.next().and_then(|l| l.parse::<u32>().ok());
    let digits: String = parts.map(|g| g.trim_start_matches('x')).collect();
    let (Some(level), Some(width), Ok(index)) = (level, width, digits.parse::<u64>()) else {
        return err(StatusCode::NOT_FOUND, "no such tile");
    };
    let r = lock(&r);
    match r.tile(r.serve_fork, level, index, width) {
        Some(t) => ([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], t).into_response(),
        None => err(StatusCode::NOT_FOUND, "no such tile"),
    }
}

async fn public_key(State(r): State<SharedRekor>) -> Response {
    let pem = lock(&r).key.public_pem();
    ([(axum::http::header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProofQ {
    first_size: Option<u64>,
    last_size: u64,
}

async fn proof(State(r): State<SharedRekor>, Query(q): Query<ProofQ>) -> Response {
    let r = lock(&r);
    let v = r.view(r.serve_fork);
    let n = v.leaves.len() as u64;
    let first = q.first_size.unwrap_or(1);
    if q.last_size > n || first > q.last_size || first == 0 {
        return err(StatusCode::BAD_REQUEST, format!("invalid sizes {first}..{} (tree size {n})", q.last_size));
    }
    let leaves = &v.leaves[..q.last_size as usize];
    Json(json!({
        "rootHash": hex::encode(merkle::root(leaves)),
        "hashes": merkle::consistency_proof(first as usize, leaves).iter().map(hex::encode).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexQ {
    log_index: u64,
}

async fn entry_by_index(State(r): State<SharedRekor>, Query(q): Query<IndexQ>) -> Response {
    let r = lock(&r);
    let fork = r.serve_fork;
    let v = r.view(fork);
    if q.log_index as usize >= v.leaves.len() {
        return err(StatusCode::NOT_FOUND, "no such entry");
    }
    let body: Value = serde_json::from_slice(&v.bodies[q.log_index as usize]).unwrap_or(Value::Null);
    let e = r.entry(
        fork,
        q.log_index,
        body["kind"].as_str().unwrap_or_default().into(),
        body["apiVersion"].as_str().unwrap_or_default().into(),
    );
    Json(json!({ e.uuid.clone(): e.api_json() })).into_response()
}

async fn entry_by_uuid(State(r): State<SharedRekor>, axum::extract::Path(uuid): axum::extract::Path<String>) -> Response {
    let r = lock(&r);
    let fork = r.serve_fork;
    let v = r.view(fork);
    let Some(i) = v.leaves.iter().position(|h| hex::encode(h) == uuid.to_ascii_lowercase()) else {
        return err(StatusCode::NOT_FOUND, "no such entry");
    };
    let body: Value = serde_json::from_slice(&v.bodies[i]).unwrap_or(Value::Null);
    let e =
        r.entry(fork, i as u64, body["kind"].as_str().unwrap_or_default().into(), body["apiVersion"].as_str().unwrap_or_default().into());
    Json(json!({ e.uuid.clone(): e.api_json() })).into_response()
}

/// Accept a proposed hashedrekord 0.0.1 (stored as proposed, PEM re-wrapped) or dsse 0.0.1
/// (`proposedContent`) entry, as Rekor does.
async fn create_entry(State(r): State<SharedRekor>, Json(p): Json<Value>) -> Response {
    let now = jiff::Timestamp::now().as_second();
    let body = match (p["kind"].as_str(), p["apiVersion"].as_str()) {
        (Some("hashedrekord"), Some("0.0.1")) => {
            let (Some(h), Some(sig), Some(pk)) = (
                p["spec"]["data"]["hash"]["value"].as_str(),
                p["spec"]["signature"]["content"].as_str(),
                p["spec"]["signature"]["publicKey"]["content"].as_str(),
            ) else {
                return err(StatusCode::BAD_REQUEST, "hashedrekord: missing hash, signature or public key");
            };
            let (Ok(digest), Ok(sig), Some(pem)) = (hex::decode(h), B64.decode(sig), rewrap_pem(pk)) else {
                return err(StatusCode::BAD_REQUEST, "hashedrekord: bad encoding");
            };
            hashedrekord_body(&digest, &sig, &pem)
        }
        (Some("dsse"), Some("0.0.1")) => {
            let pc = &p["spec"]["proposedContent"];
            let (Some(env), Some(ver)) = (pc["envelope"].as_str(), pc["verifiers"][0].as_str()) else {
                return err(StatusCode::BAD_REQUEST, "dsse: missing envelope or verifier");
            };
            let Ok(e) = serde_json::from_str::<Value>(env) else { return err(StatusCode::BAD_REQUEST, "dsse: envelope is not JSON") };
            let (Some(payload), Some(sig), Some(pem)) = (
                e["payload"].as_str().and_then(|s| B64.decode(s).ok()),
                e["signatures"][0]["sig"].as_str().and_then(|s| B64.decode(s).ok()),
                rewrap_pem(ver),
            ) else {
                return err(StatusCode::BAD_REQUEST, "dsse: bad envelope");
            };
            dsse_body(env.as_bytes(), &payload, &sig, &pem)
        }
        (k, v) => return err(StatusCode::BAD_REQUEST, format!("unsupported entry kind {k:?} version {v:?}")),
    };
    let e = lock(&r).append(&body, now);
    (StatusCode::CREATED, Json(json!({ e.uuid.clone(): e.api_json() }))).into_response()
}

/// base64(PEM) → base64(PEM wrapped at 64 columns), the Go encoder's output.
fn rewrap_pem(b64pem: &str) -> Option<String> {
    let text = String::from_utf8(B64.decode(b64pem).ok()?).ok()?;
    let begin = text.find("-----BEGIN ")?;
    let label_end = text[begin + 11..].find("-----")? + begin + 11;
    let label = &text[begin + 11..label_end];
    let end = text.find(&format!("-----END {label}-----"))?;
    let body: String = text[label_end + 5..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = B64.decode(body).ok()?;
    Some(pem_b64(label, &der))
}

async fn fork(State(r): State<SharedRekor>) -> Response {
    let mut r = lock(&r);
    r.fork(jiff::Timestamp::now().as_second());
    r.serve_fork = true;
    (StatusCode::OK, "forked: the log now serves a view inconsistent with the one it served before\n").into_response()
}

#[derive(Deserialize)]
struct ViewQ {
    view: String,
}

/// Drill: `POST /testbed/rekor/serve?view=main|fork` — which view the API serves.
async fn serve_view(State(r): State<SharedRekor>, Query(q): Query<ViewQ>) -> Response {
    let mut r = lock(&r);
    match q.view.as_str() {
        "main" => r.serve_fork = false,
        "fork" if r.fork.is_some() => r.serve_fork = true,
        "fork" => return err(StatusCode::CONFLICT, "no forked view yet (POST /testbed/rekor/fork first)"),
        o => return err(StatusCode::BAD_REQUEST, format!("view {o:?}: main or fork")),
    }
    (StatusCode::OK, format!("serving the {} view\n", q.view)).into_response()
}

/// Drill: `POST /testbed/rekor/append` — a new entry on the main view (the log grows).
async fn append_entry(State(r): State<SharedRekor>) -> Response {
    let mut r = lock(&r);
    let t = jiff::Timestamp::now().as_second();
    let e = r.append(&json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {"drill": t, "n": rand::random::<u64>()}}), t);
    Json(json!({"logIndex": e.log_index, "treeSize": e.tree_size})).into_response()
}

#[derive(Deserialize)]
struct RollbackQ {
    size: Option<u64>,
}

/// Drill: `POST /testbed/rekor/rollback?size=N` — serve the (older, consistent) checkpoint of
/// size N while proofs still cover the whole tree, as a lagging cache would; without `size`,
/// serve the newest again.
async fn rollback(State(r): State<SharedRekor>, Query(q): Query<RollbackQ>) -> Response {
    let mut r = lock(&r);
    let n = r.view(r.serve_fork).leaves.len() as u64;
    match q.size {
        Some(s) if s == 0 || s > n => err(StatusCode::BAD_REQUEST, format!("size {s}: 1..={n}")),
        Some(s) => {
            r.serve_size = Some(s);
            (StatusCode::OK, format!("serving the checkpoint of size {s} (tree size {n})\n")).into_response()
        }
        None => {
            r.serve_size = None;
            (StatusCode::OK, "serving the newest checkpoint\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_is_a_signed_note_and_proofs_verify() {
        let mut r = Rekor::new("t", "rekor.testbed.local");
        let mut entries = vec![];
        for i in 0..5 {
            entries.push(r.append(&json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "n": i}), 1_700_000_000 + i));
        }
        let e = &entries[2];
        assert_eq!(e.log_index, 3);
        // inclusion proof at the size of the time of logging
        let mut h = merkle::leaf_hash(&e.body);
        // recompute with the RFC 9162 §2.1.3.2 verification algorithm
        let (mut fnum, mut snum) = (e.log_index as usize, e.tree_size as usize - 1);
        for p in &e.hashes {
            if snum == 0 {
                panic!("proof too long");
            }
            if fnum % 2 == 1 || fnum == snum {
                h = merkle::node_hash(p, &h);
                while fnum % 2 == 0 && fnum != 0 {
                    fnum >>= 1;
                    snum >>= 1;
                }
            } else {
                h = merkle::node_hash(&h, p);
            }
            fnum >>= 1;
            snum >>= 1;
        }
        assert_eq!(snum, 0);
        assert_eq!(h, e.root_hash);
        // the note: origin, size, root, blank line, signature line with the 4-byte key hint
        let lines: Vec<&str> = e.checkpoint.split('\n').collect();
        assert_eq!(lines[0], r.origin);
        assert_eq!(lines[1], e.tree_size.to_string());
        assert_eq!(lines[4].split(' ').next(), Some("\u{2014}"));
        let sig = B64.decode(lines[4].rsplit(' ').next().unwrap()).unwrap();
        assert_eq!(&sig[..4], &r.log_id()[..4]);
    }

    #[test]
    fn fork_produces_two_signed_inconsistent_views() {
        let mut r = Rekor::new("t", "rekor.testbed.local");
        r.append(&json!({"kind": "a"}), 1);
        r.fork(2);
        r.append(&json!({"kind": "b"}), 2);
        let a = r.checkpoint_of(false, 3);
        let b = r.checkpoint_of(true, 3);
        assert_ne!(a.lines().nth(2), b.lines().nth(2), "same size, different roots");
    }
}
