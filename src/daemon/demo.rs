//! `serve --demo`: mirror the embedded demo repository (bundles/demo-tuf) into a temporary store,
//! serve it on loopback, and prove it with a TUF client that fetches through the mirror.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{Options, Running, start, tuf_mirror};
use crate::core::clock::{Clock, SystemClock};
use crate::mirror::tuf_client::{Limits, LocalMetadata, Updater};
use crate::mirror::upstream::{HttpOptions, Upstream};
use crate::store::{RepoView, Store, repo_view};

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

/// What the client pinned to root v1 did through the mirror.
pub struct ClientCheck {
    pub root_version: u64,
    pub trusted_root_bytes: usize,
    pub elapsed: Duration,
    pub requests: u64,
}

/// The running demo.
pub struct Demo {
    pub running: Running,
    pub store: Arc<Store>,
    pub view: RepoView,
    pub mirrored_in: Duration,
    pub base: String,
    pub check: ClientCheck,
    _tmp: tempfile::TempDir,
}

pub async fn start_demo(listen: Option<&str>) -> anyhow::Result<Demo> {
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
    let upstream = upstream_dir.to_str().context("the temporary path is not UTF-8")?;
    let mirror =
        Arc::new(tuf_mirror(store.clone(), "default", upstream, Some(pinned.clone()), None, Duration::from_secs(3600), clock.clone())?);
    let t0 = Instant::now();
    let mut o = Options::new(mirror, clock.clone(), listen.unwrap_or("127.0.0.1:0"));
    o.refresh_interval = Duration::from_secs(60);
    let running = start(o).await?;
    let mirrored_in = t0.elapsed();
    let base = format!("http://{}/tuf/", running.addr);
    let view = repo_view(&store, "default", clock.now())?;

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
    let check = ClientCheck {
        root_version: client.trusted().root().version,
        trusted_root_bytes: bytes.len(),
        elapsed: t1.elapsed(),
        requests: client.upstream().requests(),
    };
    Ok(Demo { running, store, view, mirrored_in, base, check, _tmp: tmp })
}
