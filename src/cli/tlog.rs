//! `trustmirror tlog sync|status|resolve|witness-key`, and the history check `verify-blob
//! --tlog-history` uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::{Subcommand, ValueEnum};

use crate::core::clock::SystemClock;
use crate::core::tlog::{HistoryVerdict, Witness, WitnessPolicy, against_history, bundle_checkpoints};
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

/// Load (or create, 0600) the witness key.
pub fn load_witness(path: &Path, name: &str) -> anyhow::Result<Witness> {
    let seed: [u8; 32] = match std::fs::read_to_string(path) {
        Ok(t) => hex::decode(t.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("{}: expected 64 hex characters", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let seed: [u8; 32] = rand::random();
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(f, "{}", hex::encode(seed))?;
            f.sync_all()?;
            seed
        }
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    Witness::from_seed(name, &seed).map_err(|e| anyhow!(e))
}

pub async fn run(c: TlogCmd) -> anyhow::Result<i32> {
    match c {
        TlogCmd::Sync { store, trusted_root, witness_key, witness_name, bundles, output } => {
            let store = Arc::new(Store::open(&store)?);
            let w = Arc::new(load_witness(&witness_key, &witness_name)?);
            let tm = super::mirror::trust_material(&store, trusted_root.as_ref())?;
            let m = TlogMirror::new(store.clone(), Arc::new(SystemClock), Arc::new(move || tm.clone()), w);
            let reports = m.sync().await;
            let proven = if bundles { Some(m.prove_mirrored().await) } else { None };
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
            let misbehaved = reports.iter().any(|r| {
                r.error.as_ref().is_some_and(|e| e.kind.is_misbehaviour() || e.kind == crate::core::tlog::TlogErrorKind::Untrusted)
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
            println!("{}", load_witness(&witness_key, &witness_name)?.vkey());
            Ok(0)
        }
    }
}

/// What to do with a bundle whose checkpoint the history has not (yet) witnessed.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Unwitnessed {
    Accept,
    Warn,
    #[default]
    Deny,
}

/// Check every tlog entry of a bundle against the witnessed history in `store`. Returns notes
/// (warnings) on success, the refusal otherwise.
pub fn history_check(
    store: &Store,
    bundle: &[u8],
    policy: Option<&WitnessPolicy>,
    unwitnessed: Unwitnessed,
) -> Result<Vec<String>, String> {
    let mut notes = vec![];
    let cps = bundle_checkpoints(bundle);
    if cps.is_empty() {
        return match unwitnessed {
            Unwitnessed::Deny => Err("the bundle has no log entry with an inclusion proof to check against the witnessed history".into()),
            Unwitnessed::Warn => Ok(vec!["no log entry with an inclusion proof: nothing to check against the history".into()]),
            Unwitnessed::Accept => Ok(vec![]),
        };
    }
    for (log, size, root) in cps {
        let st = store.tlog_state(&log).map_err(|e| e.to_string())?;
        let Some(st) = st else {
            let msg = format!("log {log} has never been witnessed");
            match unwitnessed {
                Unwitnessed::Deny => return Err(msg),
                Unwitnessed::Warn => notes.push(msg),
                Unwitnessed::Accept => {}
            }
            continue;
        };
        let known = store.tlog_root(&log, size).map_err(|e| e.to_string())?;
        let alarm = st.alarm.map(|a| format!("log {log} is untrusted: alarm #{a} is open (see `trustmirror tlog status`)"));
        match against_history(size, &root, known, st.latest.as_ref().map(|l| l.size), alarm.as_deref()) {
            HistoryVerdict::Consistent { witnessed, .. } => {
                if let Some(p) = policy {
                    let text = st.latest.as_ref().map(|l| l.text.as_str()).unwrap_or("");
                    let (signed, ok) = p.evaluate(text);
                    if !ok {
                        return Err(format!(
                            "the witnessed checkpoint of log {log} (size {witnessed}) does not meet the witness policy: cosigned by {}",
                            if signed.is_empty() { "nobody".into() } else { signed.into_iter().collect::<Vec<_>>().join(", ") }
                        ));
                    }
                }
                notes.push(format!("log {log}: checkpoint size {size} is consistent with the witnessed size {witnessed}"));
            }
            HistoryVerdict::Inconsistent { detail, .. } => return Err(format!("split view on log {log}: {detail}")),
            HistoryVerdict::LogUntrusted { detail } => return Err(detail),
            HistoryVerdict::UnknownLog { log } => return Err(format!("log {log} is not witnessed")),
            HistoryVerdict::Unwitnessed { size, witnessed } => {
                let msg = format!(
                    "log {log}: checkpoint size {size} has not been proven consistent with the witnessed history (witnessed up to {})",
                    witnessed.map(|w| w.to_string()).unwrap_or_else(|| "nothing".into())
                );
                match unwitnessed {
                    Unwitnessed::Deny => return Err(msg),
                    Unwitnessed::Warn => notes.push(format!("warning: {msg}")),
                    Unwitnessed::Accept => {}
                }
            }
        }
    }
    Ok(notes)
}
