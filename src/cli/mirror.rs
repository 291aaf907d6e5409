//! `trustmirror mirror sync|list|show`: mirror signatures and attestations from registries and
//! OCI layouts into the store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::core::clock::SystemClock;
use crate::mirror::oci::{OciMirror, OciMirrorConfig, RegistryOptions};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum MirrorCmd {
    /// Sync once: discover, fetch, verify and store.
    Sync(Box<SyncArgs>),
    /// List the mirrored digests.
    List {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
    },
    /// Show what is mirrored for a digest (or `registry/repo:tag`).
    Show {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        subject: String,
    },
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
    pub store: PathBuf,
    /// Image patterns (`registry/myorg/**`) or references; repeatable.
    #[arg(long = "image", required_unless_present = "layouts")]
    pub images: Vec<String>,
    /// OCI layout directories; repeatable.
    #[arg(long = "layout")]
    pub layouts: Vec<PathBuf>,
    /// Registries reachable over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure: Vec<String>,
    #[command(flatten)]
    pub credentials: super::RegistryCredentialArgs,
    /// Extra CA certificates (PEM) for HTTPS registries.
    #[arg(long)]
    pub registry_ca: Option<PathBuf>,
    /// trusted_root.json to verify with (default: the mirrored TUF repository's, else the
    /// embedded Sigstore production root).
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// Public keys (PEM) key-signed material is verified with; repeatable.
    #[arg(long = "key")]
    pub keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Re-resolve every tag and re-check every held digest now.
    #[arg(long)]
    pub full: bool,
}

pub async fn run(c: MirrorCmd) -> anyhow::Result<i32> {
    match c {
        MirrorCmd::Sync(a) => {
            let a = *a;
            use std::io::IsTerminal;
            let store = Arc::new(Store::open(&a.store)?);
            let trust = crate::daemon::cli_trust(store.clone(), a.trusted_root.clone(), "default");
            let cfg = OciMirrorConfig {
                images: a.images.clone(),
                layouts: a.layouts.clone(),
                registry: RegistryOptions {
                    insecure_hosts: a.insecure.clone(),
                    credentials: a.credentials.credentials(),
                    ca_pem: a.registry_ca.as_ref().map(std::fs::read).transpose()?,
                    ..Default::default()
                },
                concurrency: a.concurrency,
                keys: crate::trust::keys::load_public_keys(&a.keys)?,
                full_recheck_interval: if a.full { jiff::SignedDuration::ZERO } else { jiff::SignedDuration::from_hours(1) },
                ..Default::default()
            };
            let m = OciMirror::new(store, cfg, Arc::new(SystemClock), trust).with_progress(std::io::stderr().is_terminal());
            let t0 = std::time::Instant::now();
            let r = m.sync().await;
            println!(
                "synced {} repositories in {:.1?}: {} tags resolved, {} digests ingested, {} unchanged, {} items verified, {} rejected, {} errors",
                r.repositories,
                t0.elapsed(),
                r.tags_resolved,
                r.digests_ingested,
                r.digests_skipped,
                r.items_verified,
                r.items_rejected,
                r.errors.len()
            );
            for (w, e) in &r.errors {
                eprintln!("  error: {w}: {e}");
            }
            Ok(if r.errors.is_empty() { 0 } else { 1 })
        }
        MirrorCmd::List { store } => {
            let s = Store::open(&store)?;
            for m in s.oci_list()? {
                println!("{}@{}  {}  {}", m.repository, m.digest, m.synced_at, m.etag);
            }
            for (repo, tag, r) in s.oci_tags()? {
                println!("{repo}:{tag} -> {} (resolved {})", r.digest, r.resolved_at);
            }
            Ok(0)
        }
        MirrorCmd::Show { store, subject } => {
            let s = Store::open(&store)?;
            let (repo, digest) = match subject.rsplit_once('@') {
                Some((repo, d)) => (Some(repo.to_string()), d.to_string()),
                None if subject.starts_with("sha256:") => (None, subject.clone()),
                None => {
                    let (repo, tag) = subject.rsplit_once(':').context("expected DIGEST, registry/repo@DIGEST or registry/repo:tag")?;
                    (Some(repo.to_string()), s.oci_tag(repo, tag)?.context("tag not mirrored")?.digest)
                }
            };
            let records: Vec<_> =
                s.oci_records(&digest)?.into_iter().filter(|r| repo.as_ref().is_none_or(|x| *x == r.repository)).collect();
            if records.is_empty() {
                eprintln!("{digest}: nothing mirrored");
                return Ok(1);
            }
            for r in records {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Ok(0)
        }
    }
}
