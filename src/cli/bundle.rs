//! `trustmirror bundle create|verify|import`: arguments and printing; the work is
//! [`crate::bundle`]. Exit status: 0 done (an import of a bundle already imported is done), 1
//! the bundle was refused (the reason names what), 2 usage error.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Subcommand;

use crate::bundle::import::{ImportOptions, Imported, Summary};
use crate::core::clock::{Clock, SystemClock};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum BundleCmd {
    /// Write one file with everything a disconnected cluster needs (connected side).
    Create {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        #[arg(long, short)]
        output: PathBuf,
        /// Only images matching these patterns (`registry/repo/**`; repeatable).
        #[arg(long = "image")]
        images: Vec<String>,
        /// Only what changed since this earlier bundle (an incremental bundle that applies on top of it).
        #[arg(long)]
        since: Option<PathBuf>,
        /// Sign the bundle: PKCS#8 PEM, or a cosign encrypted key (COSIGN_PASSWORD).
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// The exporter's name (default: the signing key's id, or `unsigned`).
        #[arg(long)]
        exporter: Option<String>,
        /// Policy, banned-list or exemptions files to carry along (repeatable).
        #[arg(long = "include")]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "default")]
        repo: String,
    },
    /// Check a bundle offline and say what is inside, and how fresh.
    Verify {
        file: PathBuf,
        /// Exporter public keys (PEM; repeatable): the bundle must be signed by one.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// The TUF repository's pinned root (default: the bundle's own first root, said so).
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = super::Output::Text)]
        output: super::Output,
    },
    /// Verify a bundle in full, then import it into the store in one transaction.
    Import {
        #[arg(long, env = "TRUSTMIRROR_STORE", default_value = "trustmirror.redb")]
        store: PathBuf,
        file: PathBuf,
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// The pinned root, for a store that holds no TUF repository yet.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Write the policy files the bundle carries here.
        #[arg(long)]
        policy_out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = super::Output::Text)]
        output: super::Output,
    },
}

fn options(keys: &[PathBuf], root: &Option<PathBuf>) -> anyhow::Result<ImportOptions> {
    Ok(ImportOptions {
        keys: crate::trust::keys::load_public_keys(keys)?,
        pinned_root: root.as_ref().map(|r| std::fs::read(r).with_context(|| format!("--root {}", r.display()))).transpose()?,
    })
}

fn print(s: &Summary) {
    eprintln!(
        "bundle {} #{} from {} ({}), created {}{}",
        s.manifest_digest,
        s.sequence,
        s.exporter,
        s.signature,
        s.created,
        s.since.as_ref().map(|x| format!(", on top of {x}")).unwrap_or_default()
    );
    eprintln!("  size: {} bytes", s.bytes);
    eprintln!("  TUF: root version {}, anchored at {}", s.tuf_root_version, s.tuf_anchor);
    if let Some(t) = s.tuf_timestamp_expires {
        eprintln!("       timestamp expires {t}");
    }
    if let Some(t) = s.tuf_targets_expires {
        eprintln!("       targets expire {t}");
    }
    for (n, end) in &s.certificate_authorities {
        eprintln!("  certificate authority {n}: {}", end.map(|e| format!("valid until {e}")).unwrap_or_else(|| "current".into()));
    }
    eprintln!(
        "  image material: {} digests, {} items verified, {} rejected; {} tags",
        s.materials, s.items_verified, s.items_rejected, s.tags
    );
    for (log, size, at) in &s.logs {
        eprintln!(
            "  log {}…: newest checkpoint size {}{}",
            log.chars().take(12).collect::<String>(),
            size.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
            at.map(|t| format!(", cosigned {t}")).unwrap_or_default()
        );
    }
    for p in &s.policy_files {
        eprintln!("  policy file: {p}");
    }
    for n in &s.notes {
        eprintln!("  note: {n}");
    }
}

pub async fn run(c: BundleCmd) -> anyhow::Result<i32> {
    let now = SystemClock.now();
    match c {
        BundleCmd::Create { store, output, images, since, signing_key, exporter, files, repo } => {
            let s = Store::open(&store)?;
            let signer = signing_key.as_deref().map(super::gate::load_signing_key).transpose()?;
            let images =
                images.iter().map(|p| glob::Pattern::new(p).map_err(|e| anyhow!("--image {p:?}: {e}"))).collect::<anyhow::Result<_>>()?;
            let o = crate::bundle::create::CreateOptions { output: output.clone(), tuf_repo: repo, images, since, exporter, files };
            let c = crate::bundle::create::create(&s, &o, signer.as_ref(), now).map_err(|e| anyhow!(e))?;
            eprintln!(
                "{}: bundle #{} from {} ({} bytes), {}",
                output.display(),
                c.config.sequence,
                c.config.exporter,
                c.bytes,
                c.manifest_digest
            );
            for (k, n) in &c.config.counts {
                eprintln!("  {k}: {n}");
            }
            Ok(0)
        }
        BundleCmd::Verify { file, keys, root, output } => {
            let o = options(&keys, &root)?;
            match crate::bundle::import::verify(&file, &o, now).await {
                Ok(s) => {
                    if output == super::Output::Json {
                        println!("{}", serde_json::to_string_pretty(&s)?);
                    }
                    print(&s);
                    eprintln!("OK: every file, signature, TUF role, item and checkpoint verified");
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("REFUSED ({}): {e}", e.kind());
                    Ok(1)
                }
            }
        }
        BundleCmd::Import { store, file, keys, root, policy_out, output } => {
            let o = options(&keys, &root)?;
            let progress = super::spinner(&format!("verifying {}", file.display()));
            let res = crate::bundle::import::import_path(&file, &store, &o, now).await;
            progress.finish_and_clear();
            match res {
                Ok(r) => {
                    if output == super::Output::Json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    }
                    match &r {
                        Imported::Imported { summary, merged } => {
                            print(summary);
                            eprintln!("IMPORTED: {merged:?}");
                            if let Some(dir) = policy_out {
                                let b = crate::bundle::layout::open(&file).map_err(|e| anyhow!(e))?;
                                for p in &summary.policy_files {
                                    crate::files::write_atomic(&dir.join(p), &b.read(&format!("policy/{p}")).map_err(|e| anyhow!(e))?)?;
                                }
                            }
                        }
                        Imported::AlreadyImported { summary } => {
                            print(summary);
                            eprintln!("ALREADY IMPORTED: nothing to do");
                        }
                    }
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("REFUSED ({}): {e}; the store is unchanged", e.kind());
                    Ok(1)
                }
            }
        }
    }
}
