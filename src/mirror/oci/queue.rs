//! The on-demand ingestion queue: references admission could not decide (not mirrored yet) are
//! fetched in the background. The admission path never waits on a registry: it queues and answers
//! from what the store holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::OciMirror;

/// Start the queue's worker; returns the sender admission and `POST /oci/v1/ingest` feed.
pub fn spawn_queue(mirror: Arc<OciMirror>) -> tokio::sync::mpsc::Sender<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
    tokio::spawn(async move {
        let mut recent: BTreeMap<String, Instant> = BTreeMap::new();
        while let Some(r) = rx.recv().await {
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
    });
    tx
}
