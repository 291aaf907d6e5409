//! Reload-on-change for mounted files (policies, banned list, exemptions, TLS certificates).
//!
//! Kubernetes updates ConfigMap and Secret volumes by swapping a `..data` symlink in the mount
//! directory, so the parent directories are watched (notify), and every `poll` the files are
//! re-hashed anyway — a missed event delays a reload, it never loses one.

use std::path::PathBuf;
use std::time::Duration;

use notify::Watcher;
use sha2::{Digest, Sha256};

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watch {
    _watcher: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fingerprint(files: &[PathBuf]) -> Vec<u8> {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        match std::fs::read(f) {
            Ok(b) => h.update(&b),
            Err(_) => h.update(b"\0missing"),
        }
    }
    h.finalize().to_vec()
}

/// Call `on_change` (on a blocking thread) whenever the content of any of `files` changes.
pub fn watch(files: Vec<PathBuf>, poll: Duration, on_change: impl Fn() + Send + Sync + 'static) -> Watch {
    watch_list(move || files.clone(), poll, on_change)
}

/// As [`watch`], over a list that may change between checks (`files` is asked each time): the
/// attestation policy files the current policy documents reference, say. Directory events are
/// watched for the files listed at the start; files added later are caught by polling.
pub fn watch_list(
    files: impl Fn() -> Vec<PathBuf> + Send + Sync + 'static,
    poll: Duration,
    on_change: impl Fn() + Send + Sync + 'static,
) -> Watch {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
    let mut dirs: Vec<PathBuf> = files()
        .iter()
        .filter_map(|f| f.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() }))
        .collect();
    dirs.sort();
    dirs.dedup();
    let watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        let _ = tx.try_send(());
    })
    .ok()
    .map(|mut w| {
        for d in &dirs {
            if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch; relying on polling");
            }
        }
        w
    });
    let on_change = std::sync::Arc::new(on_change);
    let fp = std::sync::Arc::new(move || fingerprint(&files()));
    // taken now, so that every change after `watch_list` returns is reported
    let mut last = fp();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = rx.recv() => { tokio::time::sleep(Duration::from_millis(100)).await; while rx.try_recv().is_ok() {} }
                _ = tokio::time::sleep(poll) => {}
            }
            let f2 = fp.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || f2()).await else { continue };
            if now != last {
                last = now;
                let cb = on_change.clone();
                let _ = tokio::task::spawn_blocking(move || cb()).await;
            }
        }
    });
    Watch { _watcher: watcher, task }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a change is reported").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_added_to_the_list_later_is_watched() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.cue"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b1").unwrap();
        let list = Arc::new(Mutex::new(vec![a.clone()]));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let l = list.clone();
        let _w = watch_list(
            move || l.lock().unwrap().clone(),
            Duration::from_millis(50),
            move || {
                let _ = tx.send(());
            },
        );
        // b is not listed yet: its edits are not changes
        std::fs::write(&b, "b2").unwrap();
        // listing it is a change (the fingerprint covers the list), and so is each later edit
        list.lock().unwrap().push(b.clone());
        next(&mut rx).await;
        std::fs::write(&b, "b3").unwrap();
        next(&mut rx).await;
        std::fs::write(&a, "a2").unwrap();
        next(&mut rx).await;
        assert!(rx.try_recv().is_err(), "one report per change");
    }
}
