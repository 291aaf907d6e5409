//! Mirror sync of N signed images from the real registry (Debian's docker-registry on 127.0.0.1,
//! behind a request-counting proxy): first run, and a no-change re-run. Prints requests and wall
//! time for each.
//!
//! `cargo bench --bench oci_sync` (BENCH_DIGESTS, default 1000). Needs `docker-registry`
//! (`.ci/install`).

#[path = "../tests/common/proxy.rs"]
mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use trustmirror::core::clock::SystemClock;
use trustmirror::core::verify::TrustedMaterial;
use trustmirror::mirror::oci::{OciMirror, OciMirrorConfig, RegistryOptions};
use trustmirror::store::Store;
use trustmirror::testbed::oci::{Pusher, Registry, push_scratch_image};
use trustmirror::testbed::scenarios::good_identity;
use trustmirror::testbed::sigstore::SigstoreStack;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = std::env::var("BENCH_DIGESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let reg = match Registry::start(&dir.path().join("registry"), None) {
        Ok(r) => r,
        Err(e) => {
            println!("oci_sync: skipped ({e})");
            return;
        }
    };
    let now = jiff::Timestamp::now();
    let stack = Arc::new(SigstoreStack::new("bench", now));
    let px = Arc::new(Pusher::new(&reg.addr, reg.registry_auth()));
    let signer = Arc::new(stack.keyless(&good_identity(), now));
    let t0 = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (px, stack, signer) = (px.clone(), stack.clone(), signer.clone());
            async move {
                let img = push_scratch_image(&px, "bench/app", &format!("v{i}"), "app", format!("build {i}\n").as_bytes()).await.unwrap();
                trustmirror::testbed::cosign::sign_image(&stack, &px, "bench/app", &img.digest, &signer, now, None).await.unwrap();
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    println!("setup: {n} signed images pushed in {:.1?}", t0.elapsed());

    let (proxy_addr, ps) = proxy::start(&reg.addr).await;
    let store = Arc::new(Store::open(dir.path().join("m.redb")).unwrap());
    let tm = Arc::new(TrustedMaterial::from_json("bench", stack.trusted_root("http://127.0.0.1:1").to_string().as_bytes()).unwrap());
    let cfg = OciMirrorConfig {
        images: vec![format!("{proxy_addr}/bench/*")],
        registry: RegistryOptions { insecure_hosts: vec![proxy_addr.clone()], ..Default::default() },
        ..Default::default()
    };
    let m = OciMirror::new(store.clone(), cfg, Arc::new(SystemClock), Arc::new(move || tm.clone()));
    for (label, runs) in [("first sync", 1), ("no-change re-sync", 3)] {
        let mut best = Duration::MAX;
        let mut reqs = 0;
        let mut last = None;
        for _ in 0..runs {
            ps.take_log();
            let t = Instant::now();
            let r = m.sync().await;
            best = best.min(t.elapsed());
            reqs = ps.take_log().len();
            last = Some(r);
        }
        let r = last.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        println!(
            "{label:<18} {:>8.1?}  {reqs:>6} requests  {} tags resolved, {} digests ingested, {} items verified",
            best, r.tags_resolved, r.digests_ingested, r.items_verified
        );
    }
    let held = store.oci_list().unwrap().len();
    println!("store: {held} digests, {:.1} MiB", std::fs::metadata(dir.path().join("m.redb")).unwrap().len() as f64 / 1048576.0);
}
