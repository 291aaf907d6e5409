//! The on-demand ingestion queue: references admission could not decide (not mirrored yet) are
//! fetched in the background. The admission path never waits on a registry: it queues and answers
//! from what the store holds. Only references inside the mirror's configured image patterns are
//! fetched — the queue is not a proxy to arbitrary registries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::OciMirror;

/// The receiving end, shareable so a restarted worker continues where a panicked one stopped.
pub type QueueRx = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<String>>>;

/// A bounded queue: the sender admission and `POST /oci/v1/ingest` feed, and the receiver a
/// worker ([`run_queue`]) drains.
pub fn queue() -> (tokio::sync::mpsc::Sender<String>, QueueRx) {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(1024);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

/// Drain the queue: each reference inside the configured patterns is ingested (the same one at
/// most once a minute); others are refused with a log line.
pub async fn run_queue(mirror: Arc<OciMirror>, rx: QueueRx) {
    let mut recent: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let Some(r) = rx.lock().await.recv().await else { return };
        if !mirror.covers(&r) {
            tracing::warn!(reference = %r, "on-demand ingestion refused: outside the configured image patterns");
            continue;
        }
        // the same miss from many admissions is fetched once a minute at most
        if recent.get(&r).is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            continue;
        }
        recent.retain(|_, t| t.elapsed() < Duration::from_secs(60));
        recent.insert(r.clone(), Instant::now());
        if let Err(e) = mirror.ingest_reference(&r).await {
            tracing::warn!(reference = %r, error = %e, "on-demand ingestion failed");
        }
    }
}

/// A queue with its worker (unsupervised: tests and one-off uses).
pub fn spawn_queue(mirror: Arc<OciMirror>) -> tokio::sync::mpsc::Sender<String> {
    let (tx, rx) = queue();
    tokio::spawn(run_queue(mirror, rx));
    tx
}
