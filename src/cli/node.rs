//! `trustmirror node`: arguments only; the agent is [`crate::node`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::core::clock::SystemClock;
use crate::core::nodepolicy::DefaultRule;
use crate::mirror::upstream::HttpOptions;
use crate::node::NodeOptions;

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The TUF repository: the cluster service's `/tuf/` (or any TUF repository URL).
    #[arg(long)]
    mirror: String,
    /// The pinned initial root of that repository.
    #[arg(long)]
    root: PathBuf,
    /// The directory to provision (the hostPath).
    #[arg(long)]
    out: PathBuf,
    /// ImagePolicy / ClusterImagePolicy / PolicyDefaults files to render the runtime policy from.
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// One pass, then exit: 0 when verified material is in place, 1 when it is not, 3 when the
    /// runtime policy could not be written faithfully.
    #[arg(long)]
    once: bool,
    /// Write a runtime policy that enforces less than the webhook where containers/image cannot
    /// express a requirement (the report names each gap).
    #[arg(long)]
    allow_partial: bool,
    /// What the runtime does with images no policy covers.
    #[arg(long, value_enum, default_value_t = DefaultArg::Accept)]
    default_policy: DefaultArg,
    /// The containers/image version of the node's runtime (`skopeo --version`/`crio version`
    /// show it): only fields it accepts are written. 5.24 = CRI-O 1.27, podman 4.4 (fulcio);
    /// 5.33 = CRI-O 1.32, podman 5.3 (several keys).
    #[arg(long, default_value = "5.33", value_parser = parse_version)]
    containers_image: (u32, u32),
    /// How long past an expiry cached material may still be used while the mirror is down.
    #[arg(long, default_value = "0s", value_parser = crate::core::clock::parse_duration)]
    grace: std::time::Duration,
    /// Time between passes (long-running).
    #[arg(long, default_value = "5m", value_parser = crate::core::clock::parse_duration)]
    interval: std::time::Duration,
    /// Serve /healthz, /readyz and /metrics here (long-running).
    #[arg(long)]
    listen: Option<String>,
    /// Give up on the mirror after this (then the cache is used).
    #[arg(long, default_value = "15s", value_parser = crate::core::clock::parse_duration)]
    timeout: std::time::Duration,
    /// PEM CA bundle for an HTTPS mirror.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DefaultArg {
    Accept,
    Reject,
}

pub async fn run(a: NodeArgs) -> anyhow::Result<i32> {
    let ca_pem = a.ca_file.as_ref().map(std::fs::read).transpose().map_err(|e| anyhow::anyhow!("--ca-file: {e}"))?;
    let o = NodeOptions {
        mirror: a.mirror,
        root: a.root,
        out: a.out,
        policies: a.policies,
        allow_partial: a.allow_partial,
        default_rule: match a.default_policy {
            DefaultArg::Accept => DefaultRule::Accept,
            DefaultArg::Reject => DefaultRule::Reject,
        },
        containers_image: a.containers_image,
        grace: jiff::SignedDuration::try_from(a.grace)?,
        interval: a.interval,
        listen: a.listen,
        http: HttpOptions {
            ca_pem,
            connect_timeout: a.timeout.min(std::time::Duration::from_secs(5)),
            read_timeout: a.timeout,
            total_timeout: a.timeout,
        },
        timeout: a.timeout,
    };
    if a.once {
        return Ok(crate::node::once(&o, &SystemClock).await);
    }
    crate::node::run(o, Arc::new(SystemClock)).await?;
    Ok(0)
}

fn parse_version(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once('.').ok_or_else(|| format!("{s:?}: expected MAJOR.MINOR, e.g. 5.33"))?;
    Ok((a.parse().map_err(|_| format!("{s:?}: expected MAJOR.MINOR"))?, b.parse().map_err(|_| format!("{s:?}: expected MAJOR.MINOR"))?))
}
