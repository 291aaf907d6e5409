//! The bundle inbox (`bundle: {inbox: DIR}`): air-gap bundles dropped into a directory —
//! removable media, the landing zone of a one-way transfer — are verified and imported into the
//! running service's store, then moved to `DIR/imported/` or `DIR/refused/` (with
//! `NAME.reason.txt` saying why). Only `*.tar` files whose name does not start with `.` are
//! picked up: writers copy under a dot-name and rename when done, so a half-copied file is
//! never read. Counted in `trustmirror_bundle_imports_total{result}`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::bundle::import::{ImportOptions, Imported};
use crate::core::clock::Clock;
use crate::store::Store;

#[derive(Clone)]
pub struct Inbox {
    pub dir: PathBuf,
    pub options: ImportOptions,
    pub interval: Duration,
    pub imports: Family<Vec<(String, String)>, Counter>,
}

impl Inbox {
    pub fn new(dir: PathBuf, options: ImportOptions, interval: Duration) -> Self {
        let imports: Family<Vec<(String, String)>, Counter> = Family::default();
        for r in ["imported", "already-imported", "refused"] {
            let _ = imports.get_or_create(&vec![("result".into(), r.into())]);
        }
        Self { dir, options, interval, imports }
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
        let files = self.pending();
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
                Err(e) => {
                    tracing::error!(file = %f.display(), kind = e.kind(), error = %e, "bundle refused; the store is unchanged");
                    ("refused", Some(format!("refused ({}): {e}", e.kind())))
                }
            };
            self.imports.get_or_create(&vec![("result".into(), result.into())]).inc();
            self.file_away(f, if result == "refused" { "refused" } else { "imported" }, reason.as_deref());
        }
        files.len()
    }
}
