//! `trustmirror serve --demo`: mirror the embedded demo repository, serve it on loopback, prove it
//! with a TUF client that fetches through the mirror, and print what, where and how fresh.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};

use crate::core::clock::{Clock, SystemClock};
use crate::mirror::tuf_client::{Limits, LocalMetadata, Updater};
use crate::mirror::tuf_mirror::repo_view;
use crate::mirror::upstream::{HttpOptions, Upstream};
use crate::store::Store;
use crate::testbed::keys::KeyKind;
use crate::testbed::tufrepo::TufRepo;

/// Regenerate `bundles/demo-tuf`: ECDSA P-256 keys (Sigstore's key type), the given targets,
/// a delegated `registry.npmjs.org` role, and one root rotation so clients walk a chain.
pub fn make_demo_bundle(dir: &Path, targets: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let now = Timestamp::now();
    // A shipped, static demo has to stay valid offline for years; real repositories expire in days.
    let mut r = TufRepo::new(dir, "trustmirror-demo", KeyKind::EcdsaP256, now, SignedDuration::from_hours(24 * 365 * 10));
    for name in ["trusted_root.json", "signing_config.v0.2.json", "fulcio.crt.pem", "rekor.pub", "ctfe.pub"] {
        let b = std::fs::read(targets.join(name)).with_context(|| format!("reading {name}"))?;
        r.add_target("targets", name, &b);
    }
    r.delegate("targets", "registry.npmjs.org", &["registry.npmjs.org/*"], true);
    let keys = std::fs::read(targets.join("registry.npmjs.org/keys.json")).context("npm keys")?;
    r.add_target("registry.npmjs.org", "registry.npmjs.org/keys.json", &keys);
    r.publish_all()?;
    r.rotate_keys("timestamp")?;
    r.publish_timestamp()?;
    println!("demo repository written to {} (root v{}, expires {})", dir.display(), r.role("root").version, r.role("root").expires);
    Ok(())
}

struct NoLocal(Vec<(String, Vec<u8>)>);
impl LocalMetadata for NoLocal {
    fn load(&self, role: &str) -> Option<Vec<u8>> {
        self.0.iter().rev().find(|(r, _)| r == role).map(|(_, b)| b.clone())
    }
    fn persist(&mut self, role: &str, _v: u64, b: &[u8]) -> crate::core::tuf::TufResult<()> {
        self.0.push((role.into(), b.to_vec()));
        Ok(())
    }
}

pub async fn serve_demo(listen: Option<String>, exit_after: Option<Duration>) -> anyhow::Result<()> {
    anyhow::ensure!(!crate::bundles::DEMO_TUF.is_empty(), "this binary was built without bundles/demo-tuf");
    let tmp = tempfile::Builder::new().prefix("trustmirror-demo-").tempdir()?;
    let upstream_dir = tmp.path().join("upstream");
    for (rel, bytes) in crate::bundles::DEMO_TUF {
        let p = upstream_dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("has parent"))?;
        std::fs::write(p, bytes)?;
    }
    let pinned = std::fs::read(upstream_dir.join("1.root.json"))?;
    let store = Arc::new(Store::open(tmp.path().join("store.redb"))?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mirror = Arc::new(crate::cli::mirror_for(
        store.clone(),
        "default",
        upstream_dir.to_str().expect("utf-8 temp path"),
        Some(pinned.clone()),
        None,
        Duration::from_secs(3600),
        clock.clone(),
    )?);
    let t0 = Instant::now();
    let running = crate::cli::start(
        mirror,
        clock.clone(),
        listen.as_deref().unwrap_or("127.0.0.1:0"),
        Duration::from_secs(60),
        Duration::from_secs(600),
    )
    .await?;
    let mirrored_in = t0.elapsed();
    let base = format!("http://{}/tuf/", running.addr);
    let view = repo_view(&store, "default", clock.now())?;

    println!("trustmirror demo — TUF mirror");
    println!("mirrored the embedded demo repository (bundles/demo-tuf, pinned to its 1.root.json) in {mirrored_in:.1?}");
    println!("store: {}", store.path().display());
    crate::cli::print_view(&view);
    println!();
    println!("serving the verified repository at {base}");
    println!("  metadata: {base}timestamp.json, {base}1.root.json … (consistent snapshots)");
    println!("  targets:  {base}targets/HASH.NAME");
    println!("  health:   http://{0}/healthz  ready: http://{0}/readyz  metrics: http://{0}/metrics", running.addr);

    // Prove it: an independent client session, pinned to the same root, through the mirror.
    let t1 = Instant::now();
    let up = Upstream::parse(&base, &HttpOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut client = Updater::new(up, &pinned, Limits::default())?;
    let mut local = NoLocal(vec![]);
    let now = clock.now();
    client.refresh(&mut local, now, None).await?;
    let t = client.find_target(&mut local, "trusted_root.json", now).await?.context("trusted_root.json not found through the mirror")?;
    let bytes = client.download_target(&t).await?;
    let npm = client.find_target(&mut local, "registry.npmjs.org/keys.json", now).await?.context("npm keys not found")?;
    client.download_target(&npm).await?;
    println!(
        "check: a TUF client pinned to root v1 walked to root v{} through the mirror and verified trusted_root.json ({} bytes) and the delegated registry.npmjs.org/keys.json in {:.1?} ({} requests)",
        client.trusted().root().version,
        bytes.len(),
        t1.elapsed(),
        client.upstream().requests()
    );
    match exit_after {
        Some(d) => println!("stopping in {d:?} (--exit-after)"),
        None => println!("press Ctrl-C to stop"),
    }
    running.wait(exit_after).await
}
