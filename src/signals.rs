//! Process signals, for every long-running command (`serve`, `node`, `testbed`).

use std::time::Duration;

/// Return on Ctrl-C, SIGTERM, or after `limit`.
pub async fn wait_for_signal(limit: Option<Duration>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        _ = term => tracing::info!("terminated"),
        _ = async { match limit { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
    }
}
