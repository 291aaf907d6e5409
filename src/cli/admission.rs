//! `trustmirror breakglass …`, `trustmirror report`, `trustmirror policy check`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use jiff::{SignedDuration, Timestamp};

use crate::admission::{Engine, EngineOptions, report};
use crate::core::clock::SystemClock;
use crate::store::Store;
use crate::store::admission::{Exemption, Scope};

use super::Output;

#[derive(Subcommand, Debug)]
pub enum BreakglassCmd {
    /// Exempt a namespace or an image digest from enforcement for a limited time. Every admission
    /// that uses it is recorded in the audit log.
    Create {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        #[arg(long, conflicts_with = "digest", required_unless_present = "digest")]
        namespace: Option<String>,
        /// `sha256:…`
        #[arg(long)]
        digest: Option<String>,
        /// Why (an incident or change number): mandatory.
        #[arg(long)]
        reason: String,
        /// How long (at most --max).
        #[arg(long, default_value = "1h", value_parser = crate::core::clock::parse_duration)]
        ttl: std::time::Duration,
        #[arg(long, default_value = "4h", value_parser = crate::core::clock::parse_duration)]
        max: std::time::Duration,
        /// Who asked (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// List exemptions (active first).
    List {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// End an exemption now.
    Revoke {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        id: u64,
    },
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
    pub store: PathBuf,
    /// Only decisions in this window (e.g. 7d).
    #[arg(long, value_parser = crate::core::clock::parse_duration)]
    pub since: Option<std::time::Duration>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Decide images from the store with the admission engine (what the webhook would answer).
    Check {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        #[arg(long = "policy", required = true)]
        policies: Vec<PathBuf>,
        #[arg(long)]
        banned: Option<PathBuf>,
        /// Verify with this trusted_root.json instead of the mirrored one.
        #[arg(long)]
        trusted_root: Option<PathBuf>,
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The freshness policy (default: the built-in one; see `trustmirror status`).
        #[arg(long)]
        freshness: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[arg(required = true)]
        images: Vec<String>,
    },
}

pub fn breakglass(c: BreakglassCmd) -> anyhow::Result<i32> {
    match c {
        BreakglassCmd::Create { store, namespace, digest, reason, ttl, max, by } => {
            if reason.trim().len() < 4 {
                return Err(anyhow!("--reason is mandatory: name the incident or change (e.g. INC-4711 rollback)"));
            }
            if ttl > max {
                return Err(anyhow!("--ttl {ttl:?} exceeds the maximum {max:?} (break-glass exemptions are short by design)"));
            }
            if let Some(d) = &digest {
                crate::core::digest::parse_digest(d).ok_or_else(|| anyhow!("--digest {d:?}: expected sha256:<64 hex>"))?;
            }
            let s = Store::open(&store)?;
            let now = Timestamp::now();
            let e = Exemption {
                id: 0,
                scope: match (namespace, digest) {
                    (Some(n), None) => Scope::Namespace(n),
                    (None, Some(d)) => Scope::Digest(d),
                    _ => unreachable!("clap enforces exactly one"),
                },
                reason,
                created_by: by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into()),
                created_at: now,
                expires_at: now.checked_add(SignedDuration::try_from(ttl)?)?,
                revoked: false,
            };
            let id = s.exemption_add(e.clone())?;
            println!(
                "break-glass exemption #{id} for {} until {} ({}): every use is audit-logged",
                scope(&e.scope),
                e.expires_at,
                e.reason
            );
            Ok(0)
        }
        BreakglassCmd::List { store, output } => {
            let s = Store::open(&store)?;
            let now = Timestamp::now();
            let mut all = s.exemptions()?;
            all.sort_by_key(|e| (!e.active(now), std::cmp::Reverse(e.id)));
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(0);
            }
            if all.is_empty() {
                println!("no exemptions");
            }
            for e in &all {
                let state = if e.revoked {
                    "revoked".to_string()
                } else if e.active(now) {
                    format!("active, {} min left", now.until(e.expires_at).map(|s| s.get_minutes()).unwrap_or(0))
                } else {
                    "expired".into()
                };
                println!("#{:<4} {:<40} {:<24} by {:<12} {}", e.id, scope(&e.scope), state, e.created_by, e.reason);
            }
            Ok(0)
        }
        BreakglassCmd::Revoke { store, id } => {
            let s = Store::open(&store)?;
            if s.exemption_revoke(id)? {
                println!("exemption #{id} revoked");
                Ok(0)
            } else {
                eprintln!("no exemption #{id}");
                Ok(1)
            }
        }
    }
}

fn scope(s: &Scope) -> String {
    match s {
        Scope::Namespace(n) => format!("namespace {n}"),
        Scope::Digest(d) => format!("digest {d}"),
    }
}

pub fn report_cmd(a: ReportArgs) -> anyhow::Result<i32> {
    let s = Store::open(&a.store)?;
    let since = a.since.map(|d| Timestamp::now().checked_sub(SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO))).transpose()?;
    let recs = s.audit_since(since.unwrap_or(Timestamp::UNIX_EPOCH))?;
    let r = report(&recs, since);
    if a.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(0);
    }
    println!(
        "{} recorded decisions{}: {} denied, {} allowed by break-glass",
        r.decisions,
        since.map(|s| format!(" since {s}")).unwrap_or_default(),
        r.denied,
        r.breakglass_uses
    );
    println!("\n{:<28} {:<20} {:<18} {:>8} {:>8} {:>8}", "POLICY", "NAMESPACE", "PROPERTY", "ENFORCE", "WARN", "AUDIT");
    for (policy, by_ns) in &r.violations {
        for (ns, by_prop) in by_ns {
            for (prop, by_mode) in by_prop {
                let n = |m: &str| by_mode.get(m).copied().unwrap_or(0);
                println!("{policy:<28} {ns:<20} {prop:<18} {:>8} {:>8} {:>8}", n("enforce"), n("warn"), n("audit"));
            }
        }
    }
    if !r.top_images.is_empty() {
        println!("\nimages with the most violations:");
        for (i, n) in &r.top_images {
            println!("  {n:>6}  {i}");
        }
    }
    Ok(0)
}

pub fn policy(c: PolicyCmd) -> anyhow::Result<i32> {
    let PolicyCmd::Check { store, policies, banned, trusted_root, namespace, freshness, output, images } = c;
    let store = Arc::new(Store::open(&store)?);
    let freshness = match &freshness {
        Some(p) => crate::core::freshness::FreshnessPolicy::parse(
            &std::fs::read_to_string(p).with_context(|| format!("--freshness {}", p.display()))?,
        )
        .map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    let opts = EngineOptions {
        freshness,
        policy_files: policies,
        banned_file: banned,
        trust: crate::trust::TrustConfig { explicit: trusted_root, ..Default::default() },
        ..Default::default()
    };
    let engine = Engine::new(store, Arc::new(SystemClock), opts, None).context("loading the policy")?;
    for w in &engine.policy().warnings {
        eprintln!("warning: {w}");
    }
    let mut denied = false;
    let mut out = vec![];
    for i in &images {
        let mut o = engine.decide_image(&namespace, i, None);
        o.violations.extend(engine.constraints_for_images(&namespace, &[i]));
        denied |= o.enforced().next().is_some();
        if output == Output::Text {
            let verdict = if o.enforced().next().is_some() {
                "DENY"
            } else if o.violations.is_empty() {
                "ALLOW"
            } else {
                "ALLOW (with violations)"
            };
            println!("{verdict:<8} {i}{}", o.digest.as_ref().filter(|_| o.by_tag).map(|d| format!(" → {d}")).unwrap_or_default());
            println!("         policies: {}", if o.policies.is_empty() { "(none)".into() } else { o.policies.join(", ") });
            for v in &o.violations {
                println!("         [{}] {} ({}): {}", v.policy, v.property.as_str(), v.mode.as_str(), v.message);
            }
        }
        out.push(o);
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(if denied { 1 } else { 0 })
}
