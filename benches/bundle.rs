//! Air-gap bundles at scale: BENCH_DIGESTS (default 10,000) mirrored digests, each signed as
//! cosign v3 signs, written through the mirror's ingest path with the testbed's TUF repository;
//! then `bundle create` (size, time), `bundle verify` and `bundle import` into an empty store
//! (the release binary, its own process: wall time and peak RSS from wait4), and an incremental
//! bundle after 100 new digests (size, import time).
//!
//! `cargo bench --bench bundle`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use trustmirror::core::clock::SystemClock;
use trustmirror::core::evidence::COSIGN_SIGN_V1;
use trustmirror::mirror::oci::{ImageMaterial, OciMirror, OciMirrorConfig};
use trustmirror::store::Store;
use trustmirror::testbed::cosign::{STATEMENT_V1, statement};
use trustmirror::testbed::scenarios::good_identity;
use trustmirror::testbed::{Testbed, TestbedOptions};
use trustmirror::trust::{TrustConfig, TrustSource};

const REPO: &str = "bench.internal/myorg/svc";

/// Run the binary to exit: (wall seconds, peak RSS MB, exit status).
fn run(args: &[&str]) -> (f64, f64, i32) {
    let (t, rss_kb, code) = common::run_to_exit(args);
    (t.as_secs_f64(), rss_kb as f64 / 1024.0, code)
}

fn mb(p: &Path) -> f64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = std::env::var("BENCH_DIGESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path().join("tb"));
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let store_path = dir.path().join("connected.redb");
    let key = dir.path().join("exporter.key");
    let public = dir.path().join("exporter.pub");
    assert!(
        std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success()
    );

    let signer = tb.stack.keyless(&good_identity(), tb.now);
    let ingest = |m: &OciMirror, from: usize, to: usize| {
        for i in from..to {
            let digest = trustmirror::core::digest::sha256_digest(format!("bench image {i}").as_bytes());
            let st = statement(STATEMENT_V1, REPO, &digest, COSIGN_SIGN_V1, &json!({}));
            let b = tb.stack.attest(&signer, &st, tb.now);
            let (ok, _) = m
                .ingest_material(&ImageMaterial {
                    name: REPO.into(),
                    digest,
                    manifest: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec(),
                    bundles: vec![(None, serde_json::to_vec(&b.bundle).unwrap())],
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(ok, 1);
        }
    };
    let t0 = Instant::now();
    {
        let (_store, m) = common::mirrored_store(&tb, &store_path).await;
        ingest(&m, 0, n);
    }
    println!("connected store: {n} digests in {:.1?}, {:.1} MiB", t0.elapsed(), mb(&store_path));

    let s = |p: &Path| p.to_str().unwrap().to_string();
    let b1 = dir.path().join("full.tar");
    let (t, rss, code) =
        run(&["bundle", "create", "--store", &s(&store_path), "-o", &s(&b1), "--signing-key", &s(&key), "--exporter", "bench"]);
    assert_eq!(code, 0);
    println!("bundle create (full):        {t:>7.2} s  peak RSS {rss:>6.1} MB  size {:.1} MiB", mb(&b1));
    let (t, rss, code) = run(&["bundle", "verify", &s(&b1), "--key", &s(&public), "--root", &tb.env["TUF_ROOT"]]);
    assert_eq!(code, 0);
    println!("bundle verify (full):        {t:>7.2} s  peak RSS {rss:>6.1} MB");
    let far = dir.path().join("far.redb");
    let (t, rss, code) = run(&["bundle", "import", "--store", &s(&far), &s(&b1), "--key", &s(&public), "--root", &tb.env["TUF_ROOT"]]);
    assert_eq!(code, 0);
    println!("bundle import (full, empty store): {t:>7.2} s  peak RSS {rss:>6.1} MB  store {:.1} MiB", mb(&far));
    let (t, _, code) = run(&["bundle", "import", "--store", &s(&far), &s(&b1), "--key", &s(&public)]);
    assert_eq!(code, 0);
    println!("bundle import (the same again, a no-op): {t:>7.2} s");

    // 100 new digests on the connected side, then an incremental bundle
    {
        let store = Arc::new(Store::open(&store_path).unwrap());
        let trust = Arc::new(TrustSource::new(store.clone(), TrustConfig::default()));
        let m = OciMirror::new(store.clone(), OciMirrorConfig::default(), Arc::new(SystemClock), trust);
        ingest(&m, n, n + 100);
    }
    let b2 = dir.path().join("incremental.tar");
    let (t, rss, code) = run(&[
        "bundle",
        "create",
        "--store",
        &s(&store_path),
        "-o",
        &s(&b2),
        "--since",
        &s(&b1),
        "--signing-key",
        &s(&key),
        "--exporter",
        "bench",
    ]);
    assert_eq!(code, 0);
    println!("bundle create (incremental, +100 digests): {t:>7.2} s  peak RSS {rss:>6.1} MB  size {:.2} MiB", mb(&b2));
    let (t, rss, code) = run(&["bundle", "import", "--store", &s(&far), &s(&b2), "--key", &s(&public)]);
    assert_eq!(code, 0);
    println!("bundle import (incremental): {t:>7.2} s  peak RSS {rss:>6.1} MB");
    // BENCH_KEEP=DIR keeps the full bundle, the exporter key and the pinned root (profiling)
    if let Ok(keep) = std::env::var("BENCH_KEEP") {
        let k = Path::new(&keep);
        std::fs::create_dir_all(k).unwrap();
        for (f, name) in [(&b1, "full.tar"), (&public, "exporter.pub"), (&Path::new(&tb.env["TUF_ROOT"]).to_path_buf(), "root.json")] {
            std::fs::copy(f, k.join(name)).unwrap();
        }
    }
    tb.shutdown().await;
}
