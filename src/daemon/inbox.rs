//! The bundle inbox (`bundle: {inbox: DIR}`): air-gap bundles dropped into a directory —
//! removable media, the landing zone of a one-way transfer — are verified and imported into the
//! running service's store, then moved to `DIR/imported/` or `DIR/refused/` (with
//! `NAME.reason.txt` saying why). Only `*.tar` files whose name does not start with `.` are
//! picked up: writers copy under a dot-name and rename when done, so a half-copied file is
//! never read. Counted in `trustmirror_bundle_imports_total{result}`.
//!
//! A *shared* inbox (`bundle.shared`) is read by several replicas and written by none of them:
//! nothing is moved; each replica imports every bundle once (its ledger says which it holds, so
//! a restart re-reads each file's head only), remembers what it has looked at by name, size and
//! modification time, and logs and counts refusals. A bundle older than the last one imported
//! from its exporter is `superseded` there — a history of bundles in one directory is normal —
//! and never imported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::bundle::import::{ImportOptions, Imported};
use crate::core::clock::Clock;
use crate::store::Store;

pub struct Inbox {
    pub dir: PathBuf,
    pub options: ImportOptions,
    pub interval: Duration,
    pub imports: Family<Vec<(String, String)>, Counter>,
    /// Read by several replicas: nothing is moved (see the module doc).
    shared: bool,
    /// Shared mode: the files already looked at, by (size, modification time).
    seen: Mutex<HashMap<PathBuf, (u64, Option<SystemTime>)>>,
}

impl Inbox {
    pub fn new(dir: PathBuf, options: ImportOptions, interval: Duration) -> Self {
        let imports: Family<Vec<(String, String)>, Counter> = Family::default();
        for r in ["imported", "already-imported", "superseded", "refused"] {
            let _ = imports.get_or_create(&vec![("result".into(), r.into())]);
        }
        Self { dir, options, interval, imports, shared: false, seen: Mutex::default() }
    }

    /// Shared by several replicas (see the module doc).
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Shared mode: whether `f` changed since it was last looked at (and remember it now).
    fn changed(&self, f: &Path) -> bool {
        let Ok(m) = std::fs::metadata(f) else { return false };
        let stamp = (m.len(), m.modified().ok());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(f.to_path_buf(), stamp) != Some(stamp)
    }

    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        let r = r.sub_registry_with_prefix("trustmirror_bundle");
        r.register("imports", "Air-gap bundles taken from the inbox, by result", self.imports.clone());
    }

    fn pending(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return vec![] };
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "tar") && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'))
            })
            .collect();
        v.sort();
        v
    }

    fn file_away(&self, f: &Path, sub: &str, reason: Option<&str>) {
        let dest = self.dir.join(sub);
        let name = f.file_name().expect("a file").to_owned();
        let moved = std::fs::create_dir_all(&dest).and_then(|_| std::fs::rename(f, dest.join(&name)));
        if let Err(e) = moved {
            tracing::error!(file = %f.display(), error = %e, "could not move the bundle out of the inbox");
        }
        if let Some(r) = reason {
            let _ = crate::files::write_atomic(&dest.join(format!("{}.reason.txt", name.to_string_lossy())), format!("{r}\n").as_bytes());
        }
    }

    /// Import whatever is waiting; returns how many files were taken.
    pub async fn drain(&self, store: &Store, clock: &dyn Clock) -> usize {
        let mut files = self.pending();
        if self.shared {
            files.retain(|f| self.changed(f));
        }
        for f in &files {
            let res = crate::bundle::import::import(f, store, &self.options, clock.now()).await;
            let (result, reason) = match &res {
                Ok(Imported::Imported { summary, merged }) => {
                    tracing::info!(file = %f.display(), exporter = %summary.exporter, sequence = summary.sequence, ?merged, "bundle imported");
                    ("imported", None)
                }
                Ok(Imported::AlreadyImported { summary }) => {
                    tracing::info!(file = %f.display(), exporter = %summary.exporter, sequence = summary.sequence, "bundle already imported");
                    ("already-imported", None)
                }
                Err(crate::bundle::import::ImportError::Older(why)) if self.shared => {
                    tracing::info!(file = %f.display(), reason = %why, "bundle not imported: older than the last one imported from its exporter");
                    ("superseded", None)
                }
                Err(e) => {
                    if self.shared && matches!(e, crate::bundle::import::ImportError::Store(_)) {
                        // this replica's own trouble, not the file's: look at it again next time
                        self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(f);
                    }
                    tracing::error!(file = %f.display(), kind = e.kind(), error = %e, "bundle refused; the store is unchanged");
                    ("refused", Some(format!("refused ({}): {e}", e.kind())))
                }
            };
            self.imports.get_or_create(&vec![("result".into(), result.into())]).inc();
            if !self.shared {
                self.file_away(f, if result == "refused" { "refused" } else { "imported" }, reason.as_deref());
            }
        }
        files.len()
    }
}
