//! Per-digest mirrored material over HTTP, for nodes and follower replicas.
//!
//! | route | |
//! |---|---|
//! | `GET /oci/v1/material` | every mirrored digest with its record's ETag and sync time; the listing has an ETag too (`If-None-Match` → 304), so a follower re-syncs only what changed |
//! | `GET /oci/v1/material/{digest}?repository=R` | the record (items, status, evidence, blob ids), with an ETag (without `repository`: the one record, or 300 listing the repositories) |
//! | `GET /oci/v1/blobs/{sha256}` | a stored bundle or payload |
//! | `GET /oci/v1/tags` | tag → digest resolutions with their time |
//! | `POST /oci/v1/ingest?ref=REF` | queue an on-demand ingestion (202) |

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

fn etag_matches(h: &HeaderMap, etag: &str) -> bool {
    h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}

pub async fn list(State(s): State<AppState>, h: HeaderMap) -> Response {
    match s.store.oci_list() {
        Ok(items) => {
            let body = serde_json::to_vec(
                &items
                    .iter()
                    .map(|m| serde_json::json!({"repository": m.repository, "digest": m.digest, "etag": m.etag, "synced_at": m.synced_at}))
                    .collect::<Vec<_>>(),
            )
            .expect("json");
            let etag = format!("\"{}\"", &crate::core::digest::sha256_hex(&body)[..32]);
            if etag_matches(&h, &etag) {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            (StatusCode::OK, [(header::ETAG, etag), (header::CONTENT_TYPE, "application/json".into())], body).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(serde::Deserialize)]
pub struct MaterialQ {
    repository: Option<String>,
}

/// The record of `digest` in `?repository=`; without it, the one record there is (or 300 with
/// the repositories that hold one).
pub async fn material(State(s): State<AppState>, Path(digest): Path<String>, Query(q): Query<MaterialQ>, h: HeaderMap) -> Response {
    let found = match &q.repository {
        Some(repo) => s.store.oci_material(repo, &digest),
        None => match s.store.oci_records(&digest) {
            Ok(v) if v.len() > 1 => {
                let repos: Vec<&str> = v.iter().map(|r| r.repository.as_str()).collect();
                return (StatusCode::MULTIPLE_CHOICES, Json(serde_json::json!({"digest": digest, "repositories": repos}))).into_response();
            }
            Ok(mut v) => Ok(v.pop()),
            Err(e) => Err(e),
        },
    };
    match found {
        Ok(Some(r)) => {
            let etag = r.etag();
            if etag_matches(&h, &etag) {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            (StatusCode::OK, [(header::ETAG, etag)], Json(r)).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, format!("{digest}: not mirrored\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub async fn blob(State(s): State<AppState>, Path(sha): Path<String>) -> Response {
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (StatusCode::BAD_REQUEST, "expected a sha256 hex digest\n").into_response();
    }
    match s.store.blob(&sha) {
        Ok(Some(b)) => (StatusCode::OK, [(header::CACHE_CONTROL, "public, max-age=31536000, immutable")], b).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub async fn tags(State(s): State<AppState>) -> Response {
    match s.store.oci_tags() {
        Ok(t) => Json(
            t.into_iter()
                .map(|(r, tag, rec)| serde_json::json!({"repository": r, "tag": tag, "digest": rec.digest, "resolved_at": rec.resolved_at}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(serde::Deserialize)]
pub struct IngestQ {
    #[serde(rename = "ref")]
    reference: String,
}

/// Queue an on-demand ingestion: authenticated (bearer token) and only for references inside the
/// mirror's configured patterns — the service does not fetch from registries on anyone's say-so.
pub async fn ingest(State(s): State<AppState>, h: HeaderMap, Query(q): Query<IngestQ>) -> Response {
    let Some(token) = &s.ingest_token else {
        return (StatusCode::FORBIDDEN, "on-demand ingestion is closed (set oci.ingest_token_file)\n").into_response();
    };
    let given = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    // compare in constant time: the token is a secret
    let same = given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a valid bearer token is required\n").into_response();
    }
    if !s.covers.as_ref().is_some_and(|c| c(&q.reference)) {
        return (StatusCode::FORBIDDEN, format!("{}: outside the configured image patterns\n", q.reference)).into_response();
    }
    match &s.ingest {
        Some(tx) => match tx.try_send(q.reference.clone()) {
            Ok(()) => (StatusCode::ACCEPTED, format!("queued {}\n", q.reference)).into_response(),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "ingestion queue full\n").into_response(),
        },
        None => (StatusCode::NOT_FOUND, "this instance does not mirror OCI material\n").into_response(),
    }
}
