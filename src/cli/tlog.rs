//! `trustmirror tlog sync|status|resolve|witness-key`, and the history check `verify-blob
//! --tlog-history` uses.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use clap::{Subcommand, ValueEnum};

use crate::core::clock::SystemClock;
use crate::core::tlog::history::Unwitnessed;
use crate::mirror::tlog_mirror::TlogMirror;
use crate::store::Store;
use crate::store::tlog::Resolution;

use super::Output;

#[derive(Subcommand, Debug)]
pub enum TlogCmd {
    /// Witness every transparency log of the trusted root once: fetch, verify, check
    /// consistency, cosign, store. Exit 3 when a log misbehaved (evidence stored), 1 on errors.
    Sync {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        /// trusted_root.json naming the logs (default: the mirrored TUF repository's).
        #[arg(long)]
        trusted_root: Option<PathBuf>,
        /// Ed25519 seed file (64 hex characters; generated if missing).
        #[arg(long)]
        witness_key: PathBuf,
        #[arg(long, default_value = "trustmirror.internal/witness")]
        witness_name: String,
        /// Also prove the checkpoints of every mirrored bundle against the history.
        #[arg(long)]
        bundles: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Witnessed state per log. Exit 3 (and the evidence) when a log has an open alarm.
    Status {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Resolve a log's alarms after investigation (the evidence is kept). With --rebaseline the
    /// next checkpoint is trusted on first use again.
    Resolve {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        #[arg(long)]
        log: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        rebaseline: bool,
    },
    /// Print the witness's verifier key (vkey), creating the key if needed.
    WitnessKey {
        #[arg(long)]
        witness_key: PathBuf,
        #[arg(long, default_value = "trustmirror.internal/witness")]
        witness_name: String,
    },
}

pub async fn run(c: TlogCmd) -> anyhow::Result<i32> {
    match c {
        TlogCmd::Sync { store, trusted_root, witness_key, witness_name, bundles, output } => {
            let store = Arc::new(Store::open(&store)?);
            let w = Arc::new(crate::trust::keys::load_witness(&witness_key, &witness_name)?);
            let trust = crate::daemon::cli_trust(store.clone(), trusted_root, "default");
            let m = TlogMirror::new(store.clone(), Arc::new(SystemClock), trust, w);
            let reports = m.sync().await;
            let proven = if bundles { Some(m.prove_mirrored(&|_| true).await) } else { None };
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"logs": reports, "requests": m.requests(), "bundles": proven}))?
                );
            } else {
                for r in &reports {
                    let e = r.error.as_ref().map(|e| format!(": {}", e.detail)).unwrap_or_default();
                    println!("{:<66} {:<24} {}{e}", r.log, r.outcome, r.size.map(|s| format!("size {s}")).unwrap_or_default());
                }
                if let Some((p, f)) = proven {
                    println!("bundle checkpoints: {p} proven consistent, {f} not");
                }
                println!("{} requests", m.requests());
            }
            // exit 3 only on evidence: an alarm is open (split view, or a proven inconsistency)
            let misbehaved = reports.iter().any(|r| {
                r.error.as_ref().is_some_and(|e| {
                    matches!(e.kind, crate::core::tlog::TlogErrorKind::SplitView | crate::core::tlog::TlogErrorKind::Untrusted)
                })
            });
            Ok(if misbehaved {
                3
            } else if reports.iter().any(|r| r.error.is_some()) {
                1
            } else {
                0
            })
        }
        TlogCmd::Status { store, output } => {
            let s = Store::open(&store)?;
            let states = s.tlog_states()?;
            let alarms = s.tlog_alarms()?;
            let open: Vec<_> = alarms.iter().filter(|a| a.resolved.is_none()).collect();
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"logs": states, "open_alarms": open}))?);
            } else {
                if states.is_empty() {
                    println!("no transparency log witnessed yet");
                }
                for st in &states {
                    let l = st.latest.as_ref();
                    println!(
                        "{} ({})\n  witnessed: {}  at {}\n  last sync: {}{}{}",
                        st.log,
                        st.base_url,
                        l.map(|l| format!("size {} root {}", l.size, hex::encode(l.root))).unwrap_or_else(|| "nothing".into()),
                        st.witnessed_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                        st.last_sync.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
                        st.last_error.as_ref().map(|e| format!("\n  last error: {e}")).unwrap_or_default(),
                        st.alarm.map(|a| format!("\n  UNTRUSTED: alarm #{a} is open")).unwrap_or_default()
                    );
                }
                for a in &open {
                    println!("\nALARM #{} {} on log {} at {}: {}", a.id, a.kind, a.log, a.detected_at, a.detail);
                    println!("-- witnessed checkpoint --\n{}", a.witnessed.trim_end());
                    println!("-- conflicting checkpoint --\n{}", a.conflicting.trim_end());
                    if !a.proof.is_empty() {
                        println!("-- consistency proof offered by the log --\n{}", a.proof.join("\n"));
                    }
                }
            }
            Ok(if open.is_empty() { 0 } else { 3 })
        }
        TlogCmd::Resolve { store, log, reason, by, rebaseline } => {
            if reason.trim().len() < 4 {
                return Err(anyhow!("--reason is mandatory: say what was investigated"));
            }
            let s = Store::open(&store)?;
            let n = s.tlog_resolve(
                &log,
                Resolution {
                    at: jiff::Timestamp::now(),
                    by: by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into()),
                    reason,
                },
                rebaseline,
            )?;
            println!("{n} alarm(s) resolved for log {log}{}", if rebaseline { "; the next checkpoint starts a new history" } else { "" });
            Ok(0)
        }
        TlogCmd::WitnessKey { witness_key, witness_name } => {
            println!("{}", crate::trust::keys::load_witness(&witness_key, &witness_name)?.vkey());
            Ok(0)
        }
    }
}

/// What to do with a bundle whose checkpoint the history has not (yet) witnessed.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum UnwitnessedArg {
    Accept,
    Warn,
    #[default]
    Deny,
}

impl From<UnwitnessedArg> for Unwitnessed {
    fn from(a: UnwitnessedArg) -> Self {
        match a {
            UnwitnessedArg::Accept => Unwitnessed::Accept,
            UnwitnessedArg::Warn => Unwitnessed::Warn,
            UnwitnessedArg::Deny => Unwitnessed::Deny,
        }
    }
}
