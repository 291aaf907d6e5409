//! `trustmirror status`: for every kind of trust material, its age, its expiry and what the
//! freshness policy does about it. Exit 0 when everything is fresh, 1 when anything is past its
//! warning (or its expiry).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::core::clock::{Clock, SystemClock};
use crate::core::freshness::{FreshnessPolicy, OnExpiry, Verdict, judge_all};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
    store: PathBuf,
    #[arg(long, default_value = "default")]
    repo: String,
    /// The freshness policy (YAML: tuf / trustedRoot / checkpoints rules); default: the built-in one.
    #[arg(long)]
    freshness: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = super::Output::Text)]
    output: super::Output,
}

pub fn run(a: StatusArgs) -> anyhow::Result<i32> {
    let policy = match &a.freshness {
        Some(p) => FreshnessPolicy::parse(&std::fs::read_to_string(p).with_context(|| format!("--freshness {}", p.display()))?)
            .map_err(anyhow::Error::msg)?,
        None => FreshnessPolicy::default(),
    };
    let store = Store::open(&a.store)?;
    let now = SystemClock.now();
    let facts = crate::trust::freshness::facts(&store, &a.repo)?;
    let verdicts = judge_all(&policy, &facts, now);
    if a.output == super::Output::Json {
        let v: Vec<serde_json::Value> = facts
            .iter()
            .map(|(k, f)| serde_json::json!({"kind": k.as_str(), "facts": f, "rule": policy.rule(*k), "verdict": verdicts[k]}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{:<14} {:<34} {:<28} {:<44} VERDICT", "KIND", "LAST REFRESHED", "EXPIRES", "WHEN IT EXPIRES");
        for (k, f) in &facts {
            let r = policy.rule(*k);
            let since = match (f.absent, f.fresh_since) {
                (true, _) => "(none held)".to_string(),
                (false, Some(s)) => format!("{s} ({} ago)", crate::core::clock::human(now.duration_since(s))),
                (false, None) => "-".into(),
            };
            let exp = f.expires.map(|e| e.to_string()).unwrap_or_else(|| "-".into());
            let then = match r.on_expiry {
                OnExpiry::Deny => "deny".to_string(),
                OnExpiry::Warn => "warn".to_string(),
                OnExpiry::KeepLastKnownGood => format!(
                    "keep last known good{}",
                    r.grace.map(|g| format!(" for {}, then deny", crate::core::clock::human(g))).unwrap_or_default()
                ),
            };
            let v = match &verdicts[k] {
                Verdict::Fresh => "fresh".to_string(),
                Verdict::Warn(m) => format!("WARN: {m}"),
                Verdict::Deny(m) => format!("DENY: {m}"),
            };
            println!("{:<14} {since:<34} {exp:<28} {then:<44} {v}", k.as_str());
        }
    }
    Ok(if verdicts.values().all(|v| *v == Verdict::Fresh) { 0 } else { 1 })
}
