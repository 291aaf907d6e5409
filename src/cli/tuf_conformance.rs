//! The tuf-conformance client contract (theupdateframework/tuf-conformance, CLIENT-CLI.md),
//! implemented with trustmirror's own TUF client:
//!
//! ```text
//! trustmirror tuf-conformance --metadata-dir DIR init TRUSTED_ROOT
//! trustmirror tuf-conformance --metadata-url URL --metadata-dir DIR refresh
//! trustmirror tuf-conformance --metadata-url URL --metadata-dir DIR --target-name P [...] \
//!     --target-base-url URL --target-dir DIR download
//! ```
//! Global options may come in any order before the command. Exit 0 on success, 1 on any failure.
//! Time is the system clock, so the suite's libfaketime drives expiry.

use std::path::PathBuf;

use crate::core::tuf::{check_target, quote_role};
use crate::files::write_atomic;
use crate::mirror::tuf_client::{DirMetadata, Limits, Updater};
use crate::mirror::upstream::{HttpOptions, Upstream};

#[derive(Default, Debug)]
struct Args {
    metadata_dir: Option<PathBuf>,
    metadata_url: Option<String>,
    target_names: Vec<String>,
    target_dir: Option<PathBuf>,
    target_base_url: Option<String>,
    positional: Vec<String>,
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(tok) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{tok} needs a value"));
        match tok.as_str() {
            "--metadata-dir" => a.metadata_dir = Some(val()?.into()),
            "--metadata-url" => a.metadata_url = Some(val()?),
            "--target-name" => a.target_names.push(val()?),
            "--target-dir" => a.target_dir = Some(val()?.into()),
            "--target-base-url" => a.target_base_url = Some(val()?),
            "-v" | "--verbose" => {}
            t if t.starts_with('-') => return Err(format!("unknown option {t}")),
            _ => a.positional.push(tok.clone()),
        }
    }
    Ok(a)
}

/// Entry point; returns the process exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tuf-conformance: {e}");
            return 1;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match rt.block_on(run(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tuf-conformance: {e}");
            1
        }
    }
}

async fn run(a: Args) -> Result<(), String> {
    let dir = a.metadata_dir.clone().ok_or("--metadata-dir is required")?;
    match a.positional.first().map(String::as_str) {
        Some("init") => {
            let src = a.positional.get(1).ok_or("init needs TRUSTED_ROOT")?;
            let bytes = std::fs::read(src).map_err(|e| format!("reading {src}: {e}"))?;
            crate::core::tuf::Trusted::from_root(&bytes).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            write_atomic(&dir.join("root.json"), &bytes).map_err(|e| e.to_string())
        }
        Some("refresh") => {
            let (mut up, mut local) = updater(&a, &dir)?;
            up.refresh(&mut local, jiff::Timestamp::now(), None).await.map_err(|e| e.to_string())?;
            Ok(())
        }
        Some("download") => {
            if a.target_names.is_empty() {
                return Err("--target-name is required".into());
            }
            let target_dir = a.target_dir.clone().ok_or("--target-dir is required")?;
            let (mut up, mut local) = updater(&a, &dir)?;
            let now = jiff::Timestamp::now();
            up.refresh(&mut local, now, None).await.map_err(|e| e.to_string())?;
            for name in &a.target_names {
                let t = up
                    .find_target(&mut local, name, now)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("target {name}: not listed by any trusted role"))?;
                // One flat file per target path, named like python-tuf does.
                let out = target_dir.join(quote_role(name));
                if let Ok(existing) = std::fs::read(&out)
                    && check_target(&existing, &t.info, name).is_ok()
                {
                    continue; // already have this exact artifact
                }
                let bytes = up.download_target(&t).await.map_err(|e| e.to_string())?;
                write_atomic(&out, &bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
            }
            Ok(())
        }
        other => Err(format!("expected init, refresh or download, got {other:?}")),
    }
}

fn updater(a: &Args, dir: &std::path::Path) -> Result<(Updater, DirMetadata), String> {
    let url = a.metadata_url.as_deref().ok_or("--metadata-url is required")?;
    let opts = HttpOptions::default();
    let upstream = match &a.target_base_url {
        Some(t) => Upstream::parse_split(url, t, &opts),
        None => Upstream::parse(url, &opts),
    }
    .map_err(|e| e.to_string())?;
    let root = std::fs::read(dir.join("root.json")).map_err(|e| format!("no trusted root in {}: {e}", dir.display()))?;
    let up = Updater::new(upstream, &root, Limits::default()).map_err(|e| e.to_string())?;
    Ok((up, DirMetadata { dir: dir.to_path_buf() }))
}
