//! The witness over HTTP: C2SP tlog-witness `add-checkpoint`, the cosigned checkpoints
//! (tlog-mirror's monitoring path), the witness's verifier key, and the logs' witnessed state.
//!
//! | path | |
//! |---|---|
//! | `POST /tlog/v1/add-checkpoint` | tlog-witness: `old N`, proof lines, blank line, checkpoint → cosignature line(s); 404 unknown origin, 403 no valid log signature, 400 old > size, 409 stale old size (body: witnessed size, `text/x.tlog.size`) or a second root for the size, 422 bad proof |
//! | `GET /tlog/v1/{log}/checkpoint` | the newest witnessed checkpoint with the log's signature and the cosignature |
//! | `GET /tlog/v1/witness` | the witness's vkey |
//! | `GET /tlog/v1/logs` | state per log (sizes, times, open alarm) |

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::core::tlog::TlogErrorKind;
use crate::core::tlog::parse_add_checkpoint;

fn text(code: StatusCode, ct: &'static str, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, ct)], body).into_response()
}

fn no_witness() -> Response {
    text(StatusCode::NOT_FOUND, "text/plain", "this trustmirror does not run a witness (no tlog: section)\n".into())
}

pub async fn add_checkpoint(State(s): State<AppState>, body: Bytes) -> Response {
    let Some(w) = s.tlog.clone() else { return no_witness() };
    if body.len() > 64 * 1024 {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "request too large\n".into());
    }
    let Ok(body) = String::from_utf8(body.to_vec()) else { return text(StatusCode::BAD_REQUEST, "text/plain", "not UTF-8\n".into()) };
    let (old, proof, cp) = match parse_add_checkpoint(&body) {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
    };
    let Ok(parsed) = sigstore_types::Checkpoint::from_text(&cp) else {
        return text(StatusCode::BAD_REQUEST, "text/plain", "not a checkpoint\n".into());
    };
    // the log is found by origin among the logs witnessed so far, or by its signature
    let logs = w.logs();
    let by_origin = logs
        .iter()
        .find(|l| w.store().tlog_state(&l.id).ok().flatten().and_then(|st| st.latest).is_some_and(|v| v.origin == parsed.origin()));
    let log = match by_origin.cloned().or_else(|| logs.into_iter().find(|l| crate::core::tlog::verify_checkpoint(&cp, l, None).is_ok())) {
        Some(l) => l,
        None => return text(StatusCode::NOT_FOUND, "text/plain", format!("unknown log origin {:?}\n", parsed.origin())),
    };
    if old > parsed.tree_size() {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            format!("old size {old} is larger than the checkpoint's {}\n", parsed.tree_size()),
        );
    }
    let old = (old > 0).then_some(old);
    let w2 = w.clone();
    let res =
        tokio::task::spawn_blocking(move || w2.accept(&log, &cp, old, if old.is_some() { Some(&proof[..]) } else { None }).map(|_| log))
            .await;
    match res {
        Ok(Ok(log)) => {
            let cos = w.cosigned(&log.id).unwrap_or_default();
            let mine: String =
                cos.lines().filter(|l| l.starts_with(&format!("\u{2014} {} ", w.witness().name))).map(|l| format!("{l}\n")).collect();
            text(StatusCode::OK, "text/plain; charset=utf-8", mine)
        }
        Ok(Err(e)) => match e.kind {
            TlogErrorKind::Conflict => text(StatusCode::CONFLICT, "text/x.tlog.size", format!("{}\n", e.detail)),
            TlogErrorKind::UnknownKey | TlogErrorKind::Signature => text(StatusCode::FORBIDDEN, "text/plain", format!("{e}\n")),
            TlogErrorKind::SplitView if old == Some(parsed.tree_size()) => text(StatusCode::CONFLICT, "text/plain", format!("{e}\n")),
            TlogErrorKind::SplitView => text(StatusCode::UNPROCESSABLE_ENTITY, "text/plain", format!("{e}\n")),
            TlogErrorKind::Malformed | TlogErrorKind::Origin | TlogErrorKind::Rollback => {
                text(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n"))
            }
            TlogErrorKind::Untrusted => text(StatusCode::CONFLICT, "text/plain", format!("{e}\n")),
            _ => text(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
        },
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
    }
}

pub async fn checkpoint(State(s): State<AppState>, Path(log): Path<String>) -> Response {
    let Some(w) = s.tlog.clone() else { return no_witness() };
    match w.cosigned(&log) {
        Some(t) => text(StatusCode::OK, "text/plain; charset=utf-8", t),
        None => text(StatusCode::NOT_FOUND, "text/plain", format!("no witnessed checkpoint for log {log}\n")),
    }
}

pub async fn witness(State(s): State<AppState>) -> Response {
    let Some(w) = s.tlog.clone() else { return no_witness() };
    text(StatusCode::OK, "text/plain", format!("{}\n", w.witness().vkey()))
}

pub async fn logs(State(s): State<AppState>) -> Response {
    match s.store.tlog_states() {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
    }
}
