//! The audit log writer: records go to the store's append-only `audit_log` table in batches, and
//! as JSON lines to a file when configured.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use prometheus_client::metrics::counter::Counter;

use crate::store::Store;
use crate::store::admission::AuditRecord;

/// Where JSON audit lines go besides the store.
pub enum Out {
    File(std::sync::Mutex<std::fs::File>),
    Stdout,
}

enum Msg {
    Records(Vec<AuditRecord>),
    Flush(std::sync::mpsc::SyncSender<()>),
}

pub struct Sink {
    tx: SyncSender<Msg>,
    store: Arc<Store>,
    file: Option<Arc<Out>>,
    dropped: Counter,
}

impl Sink {
    pub fn start(store: Arc<Store>, path: Option<PathBuf>, dropped: Counter) -> anyhow::Result<Self> {
        let file = match path {
            Some(p) if p.as_os_str() == "-" => Some(Arc::new(Out::Stdout)),
            Some(p) => Some(Arc::new(Out::File(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .map_err(|e| anyhow::anyhow!("audit log {}: {e}", p.display()))?,
            )))),
            None => None,
        };
        let (tx, rx) = sync_channel::<Msg>(8192);
        let (s2, f2) = (store.clone(), file.clone());
        std::thread::Builder::new().name("audit-writer".into()).spawn(move || writer(rx, s2, f2))?;
        Ok(Self { tx, store, file, dropped })
    }

    /// Queue records (never blocks admission; counts what it has to drop).
    pub fn send(&self, records: Vec<AuditRecord>) {
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(Msg::Records(records)) {
            self.dropped.inc_by(n);
        }
    }

    /// Wait until everything queued so far is written.
    pub fn flush(&self) {
        let (ack, done) = sync_channel(1);
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(10));
        }
    }

    /// Write records now, durably (break-glass uses).
    pub fn write_now(&self, records: &[AuditRecord]) -> Result<(), String> {
        self.store.audit_append(records).map_err(|e| e.to_string())?;
        emit(records, self.file.as_deref());
        Ok(())
    }
}

fn emit(records: &[AuditRecord], file: Option<&Out>) {
    for r in records {
        let line = serde_json::to_string(r).expect("json");
        tracing::debug!(target: "trustmirror::audit", record = %line, "admission");
        match file {
            Some(Out::File(f)) => {
                let _ = writeln!(f.lock().unwrap_or_else(|e| e.into_inner()), "{line}");
            }
            Some(Out::Stdout) => println!("{line}"),
            None => {}
        }
    }
}

fn writer(rx: Receiver<Msg>, store: Arc<Store>, file: Option<Arc<Out>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![];
        let mut acks = vec![];
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Records(r) => batch.extend(r),
                Msg::Flush(a) => acks.push(a),
            }
            if batch.len() < 4096 {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = store.audit_append(&batch) {
                tracing::error!(error = %e, records = batch.len(), "writing audit records to the store failed");
            }
            emit(&batch, file.as_deref());
        }
        for a in acks {
            let _ = a.send(());
        }
    }
}
