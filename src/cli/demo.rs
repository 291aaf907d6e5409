//! `trustmirror serve --demo`: mirror the embedded demo repository, serve it on loopback, prove it
//! with a TUF client that fetches through the mirror, and print what, where and how fresh.

use std::path::Path;
use std::time::Duration;

/// `dev demo-bundle`: regenerate `bundles/demo-tuf`.
pub fn make_demo_bundle(dir: &Path, targets: &Path) -> anyhow::Result<()> {
    let (version, expires) = crate::testbed::demo_tuf::make_demo_bundle(dir, targets)?;
    println!("demo repository written to {} (root v{version}, expires {expires})", dir.display());
    Ok(())
}

pub async fn serve_demo(listen: Option<String>, exit_after: Option<Duration>) -> anyhow::Result<()> {
    let d = crate::daemon::demo::start_demo(listen.as_deref()).await?;
    let base = &d.base;
    println!("trustmirror demo — TUF mirror");
    println!("mirrored the embedded demo repository (bundles/demo-tuf, pinned to its 1.root.json) in {:.1?}", d.mirrored_in);
    println!("store: {}", d.store.path().display());
    super::print_view(&d.view);
    println!();
    println!("serving the verified repository at {base}");
    println!("  metadata: {base}timestamp.json, {base}1.root.json … (consistent snapshots)");
    println!("  targets:  {base}targets/HASH.NAME");
    println!("  health:   http://{0}/healthz  ready: http://{0}/readyz  metrics: http://{0}/metrics", d.running.addr);
    println!(
        "check: a TUF client pinned to root v1 walked to root v{} through the mirror and verified trusted_root.json ({} bytes) and the delegated registry.npmjs.org/keys.json in {:.1?} ({} requests)",
        d.check.root_version, d.check.trusted_root_bytes, d.check.elapsed, d.check.requests
    );
    match exit_after {
        Some(d) => println!("stopping in {d:?} (--exit-after)"),
        None => println!("press Ctrl-C to stop"),
    }
    d.running.wait(exit_after).await
}
