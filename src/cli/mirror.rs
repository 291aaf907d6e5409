//! `trustmirror mirror sync|list|show`: mirror signatures and attestations from registries and
//! OCI layouts into the store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::core::clock::SystemClock;
use crate::core::verify::TrustedMaterial;
use crate::mirror::oci::RegistryOptions;
use crate::mirror::oci_mirror::{OciMirror, OciMirrorConfig};
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
    #[arg(long, env = "TRUSTMIRROR_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    #[arg(long, env = "TRUSTMIRROR_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    #[arg(long, env = "TRUSTMIRROR_REGISTRY_TOKEN", hide_env_values = true)]
    pub registry_token: Option<String>,
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

/// The trust root the mirror verifies with: an explicit file, the mirrored TUF repository's
/// `trusted_root.json`, or the embedded production root.
pub fn trust_material(store: &Store, explicit: Option<&PathBuf>) -> anyhow::Result<Arc<TrustedMaterial>> {
    if let Some(p) = explicit {
        let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        return Ok(Arc::new(TrustedMaterial::from_json(&p.display().to_string(), &b)?));
    }
    if let Some(t) = store.tuf_targets("default")?.get("trusted_root.json")
        && let Some(b) = store.blob(&t.sha256)?
    {
        return Ok(Arc::new(TrustedMaterial::from_json("tuf:trusted_root.json", &b)?));
    }
    Ok(Arc::new(TrustedMaterial::from_json("production", crate::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT)?))
}

pub fn key_list(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    paths
        .iter()
        .map(|p| {
            let pem = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            match crate::core::verify::Authority::key_pem(&p.display().to_string(), &pem)? {
                crate::core::verify::Authority::Key { name, spki_der } => Ok((name, spki_der)),
                _ => unreachable!(),
            }
        })
        .collect()
}

pub async fn run(c: MirrorCmd) -> anyhow::Result<i32> {
    match c {
        MirrorCmd::Sync(a) => {
            let a = *a;
            use std::io::IsTerminal;
            let store = Arc::new(Store::open(&a.store)?);
            let tm = trust_material(&store, a.trusted_root.as_ref())?;
            let cfg = OciMirrorConfig {
                images: a.images.clone(),
                layouts: a.layouts.clone(),
                registry: RegistryOptions {
                    insecure_hosts: a.insecure.clone(),
                    username: a.registry_username.clone(),
                    password: a.registry_password.clone(),
                    bearer: a.registry_token.clone(),
                    ca_pem: a.registry_ca.as_ref().map(std::fs::read).transpose()?,
                    timeout: None,
                },
                concurrency: a.concurrency,
                keys: key_list(&a.keys)?,
                full_recheck_interval: if a.full { jiff::SignedDuration::ZERO } else { jiff::SignedDuration::from_hours(1) },
                ..Default::default()
            };
            let m = OciMirror::new(store, cfg, Arc::new(SystemClock), Arc::new(move || tm.clone()))
                .with_progress(std::io::stderr().is_terminal());
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
            for (d, etag, t) in s.oci_list()? {
                println!("{d}  {t}  {etag}");
            }
            for (repo, tag, r) in s.oci_tags()? {
                println!("{repo}:{tag} -> {} (resolved {})", r.digest, r.resolved_at);
            }
            Ok(0)
        }
        MirrorCmd::Show { store, subject } => {
            let s = Store::open(&store)?;
            let digest = if subject.contains("@sha256:") || subject.starts_with("sha256:") {
                subject.rsplit('@').next().unwrap_or(&subject).to_string()
            } else {
                let (repo, tag) = subject.rsplit_once(':').context("expected DIGEST or registry/repo:tag")?;
                s.oci_tag(repo, tag)?.context("tag not mirrored")?.digest
            };
            match s.oci_material(&digest)? {
                Some(r) => {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    Ok(0)
                }
                None => {
                    eprintln!("{digest}: nothing mirrored");
                    Ok(1)
                }
            }
        }
    }
}
