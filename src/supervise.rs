//! Background tasks that survive their own panics: each loop of the service (TUF refresh, OCI
//! sync, witness, ingestion queue) runs under a supervisor that logs a panic, counts it
//! (`trustmirror_task_panics_total{task}`), restarts the loop after a pause, and reports a task
//! that keeps panicking in readiness (`/readyz`). Beside the service, not inside it: `serve`
//! reports the readiness and the daemon starts the loops.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Panics within this window count toward "crash-looping".
const WINDOW: Duration = Duration::from_secs(600);
/// This many panics within the window make the service not ready.
const CRASH_LOOP: usize = 3;

#[derive(Default)]
struct TaskState {
    panics: Vec<Instant>,
    last: Option<String>,
}

/// The supervised tasks' health.
#[derive(Default)]
pub struct Tasks {
    state: Mutex<BTreeMap<String, TaskState>>,
    pub panics: Family<Vec<(String, String)>, Counter>,
}

impl Tasks {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        let r = r.sub_registry_with_prefix("trustmirror_task");
        r.register("panics", "Background tasks that panicked (and were restarted), by task", self.panics.clone());
    }

    fn record(&self, task: &str, message: String) {
        self.panics.get_or_create(&vec![("task".into(), task.into())]).inc();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let t = st.entry(task.into()).or_default();
        t.panics.push(Instant::now());
        t.panics.retain(|p| p.elapsed() < WINDOW);
        t.last = Some(message);
    }

    /// `Err(why)` while a task is crash-looping (several panics in the last ten minutes).
    pub fn ready(&self) -> Result<(), String> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (name, t) in st.iter() {
            let recent = t.panics.iter().filter(|p| p.elapsed() < WINDOW).count();
            if recent >= CRASH_LOOP {
                return Err(format!("task {name} panicked {recent} times in 10 minutes (last: {})", t.last.clone().unwrap_or_default()));
            }
        }
        Ok(())
    }
}

/// Run `make()`'s future until it returns or `stop` fires; when it panics, log, count and start
/// it again after a pause (growing to a minute).
pub fn supervise<F, Fut>(
    tasks: Arc<Tasks>,
    name: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    supervise_with(tasks, name, stop, Duration::from_secs(1), make)
}

/// A supervised task that runs `work` now and then every `every`, until `stop` changes (a panic
/// in `work` restarts the loop, as [`supervise`] does).
pub fn supervise_every<F, Fut>(
    tasks: Arc<Tasks>,
    name: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
    every: Duration,
    work: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let work = Arc::new(work);
    let rx = stop.clone();
    supervise(tasks, name, stop, move || {
        let (work, mut stop) = (work.clone(), rx.clone());
        async move {
            loop {
                work().await;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    })
}

fn supervise_with<F, Fut>(
    tasks: Arc<Tasks>,
    name: &'static str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    first_pause: Duration,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // every supervised task has its series from the start (0), so a rate or an alert on it
    // works before the first panic
    let _ = tasks.panics.get_or_create(&vec![("task".into(), name.into())]);
    tokio::spawn(async move {
        let mut pause = first_pause;
        loop {
            let mut h = tokio::spawn(make());
            tokio::select! {
                r = &mut h => match r {
                    Ok(()) => return,
                    Err(e) if e.is_panic() => {
                        let payload = e.into_panic();
                        let msg = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panic".into());
                        tracing::error!(task = name, panic = %msg, restart_in = ?pause, "background task panicked; restarting it");
                        tasks.record(name, msg);
                    }
                    Err(_) => return,
                },
                _ = stop.changed() => {
                    h.abort();
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(60));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_panicking_task_is_restarted_counted_and_reported() {
        let tasks = Tasks::new();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let h = supervise_with(tasks.clone(), "flaky", rx, Duration::from_millis(1), move || {
            let (r, done) = (r.clone(), done_tx.clone());
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 3 {
                    panic!("boom");
                }
                let _ = done.send(());
                std::future::pending::<()>().await
            }
        });
        done_rx.recv().await.unwrap(); // the fourth run did not panic
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(tasks.panics.get_or_create(&vec![("task".into(), "flaky".into())]).get(), 3);
        assert!(tasks.ready().unwrap_err().contains("flaky panicked 3 times"));
        stop.send(true).unwrap();
        h.await.unwrap();
    }
}
