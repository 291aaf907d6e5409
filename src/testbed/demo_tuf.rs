//! The embedded demo TUF repository (`bundles/demo-tuf`, served by `serve --demo`), regenerated
//! with `trustmirror dev demo-bundle`.

use std::path::Path;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};

use super::keys::KeyKind;
use super::tufrepo::TufRepo;

/// Regenerate `bundles/demo-tuf`: ECDSA P-256 keys (Sigstore's key type), the given targets,
/// a delegated `registry.npmjs.org` role, and one root rotation so clients walk a chain.
pub fn make_demo_bundle(dir: &Path, targets: &Path) -> anyhow::Result<(u64, jiff::Timestamp)> {
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
    Ok((r.role("root").version, r.role("root").expires))
}
