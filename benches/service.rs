//! The service at scale, as an operator runs it: `trustmirror serve` (the release binary, its own
//! process) over a store holding BENCH_DIGESTS (default 10,000) mirrored digests, each signed as
//! cosign v3 signs (a bundle with a verified identity), written through the mirror's own ingest
//! path (verification included).
//!
//! Prints: store size; serve start → ready from the existing store; HTTPS /validate latency warm
//! (cached decision), cold (a digest never decided before), and an 8-container Pod of 8 cold
//! digests; sustained reviews/s with `wrk` over TLS at 64 and at 2,000 connections; and, sampled
//! from /proc while each phase runs, the process's peak RSS and threads.
//!
//! `cargo bench --bench service`. Needs `wrk` (`.ci/install`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use trustmirror::admission::review;
use trustmirror::core::clock::SystemClock;
use trustmirror::core::evidence::COSIGN_SIGN_V1;
use trustmirror::mirror::oci::{ImageMaterial, OciMirror, OciMirrorConfig};
use trustmirror::store::Store;
use trustmirror::testbed::cosign::{STATEMENT_V1, statement};
use trustmirror::testbed::scenarios::good_identity;
use trustmirror::testbed::{Testbed, TestbedOptions};
use trustmirror::trust::{TrustConfig, TrustSource};

const REPO: &str = "bench.internal/myorg/svc";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) {
    let n = v.len();
    println!("{name:<48} n={n:<6} p50 {:>7.3} ms   p99 {:>7.3} ms", pct(&mut v, 0.5), pct(&mut v, 0.99));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// (RSS kB, threads) of a process, from /proc.
fn proc_status(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("Threads:"))
}

/// Sample a process's RSS and threads until stopped; returns (peak RSS kB, peak threads).
struct Sampler {
    stop: Arc<AtomicBool>,
    rss: Arc<AtomicU64>,
    threads: Arc<AtomicU64>,
    h: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let (stop, rss, threads) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, r, t) = (stop.clone(), rss.clone(), threads.clone());
        let h = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let (kb, th) = proc_status(pid);
                r.fetch_max(kb, Ordering::Relaxed);
                t.fetch_max(th, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { stop, rss, threads, h: Some(h) }
    }
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.h.take().unwrap().join().unwrap();
        (self.rss.load(Ordering::Relaxed), self.threads.load(Ordering::Relaxed))
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = std::env::var("BENCH_DIGESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let secs: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path().join("tb"));
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let store_path = dir.path().join("store.redb");

    // the store: the testbed's TUF repository, and n digests ingested through the mirror
    let t0 = Instant::now();
    {
        let store = Arc::new(Store::open(&store_path).unwrap());
        let tuf = trustmirror::daemon::tuf_mirror(
            store.clone(),
            "default",
            &tb.env["TUF_URL"],
            Some(std::fs::read(&tb.env["TUF_ROOT"]).unwrap()),
            None,
            Duration::from_secs(3600),
            Arc::new(SystemClock),
        )
        .unwrap();
        tuf.refresh().await.unwrap();
        let trust = Arc::new(TrustSource::new(store.clone(), TrustConfig::default()));
        let m = OciMirror::new(store.clone(), OciMirrorConfig::default(), Arc::new(SystemClock), trust);
        let signer = tb.stack.keyless(&good_identity(), tb.now);
        for i in 0..n {
            let digest = trustmirror::core::digest::sha256_digest(format!("bench image {i}").as_bytes());
            let st = statement(STATEMENT_V1, REPO, &digest, COSIGN_SIGN_V1, &json!({}));
            let b = tb.stack.attest(&signer, &st, tb.now);
            let mat = ImageMaterial {
                name: REPO.into(),
                digest: digest.clone(),
                manifest: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec(),
                bundles: vec![(None, serde_json::to_vec(&b.bundle).unwrap())],
                ..Default::default()
            };
            let (ok, _) = m.ingest_material(&mat).unwrap();
            assert_eq!(ok, 1);
        }
    }
    println!("store: {n} digests written through the mirror's ingest path in {:.1?}, {:.1} MiB", t0.elapsed(), dir_size(&store_path) as f64 / 1048576.0);

    // the service: policy, config, the release binary
    let id = good_identity();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: svc}}\nspec:\n  images: [\"{REPO}\"]\n  authorities:\n  - name: ci\n    keyless:\n      identities: [{{issuer: \"{}\", subject: \"{}\"}}]\n",
            id.issuer, id.san
        ),
    )
    .unwrap();
    let (http, https) = (free_port(), free_port());
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{http}\nstore: {}\ntuf:\n  upstream: {}\n  root: {}\nadmission:\n  listen: 127.0.0.1:{https}\n  tls: {{generate_dir: {}}}\n  policies: [{}]\n  max_concurrency: 4096\n",
            store_path.display(),
            tb.env["TUF_URL"],
            tb.env["TUF_ROOT"],
            dir.path().join("tls").display(),
            policy.display()
        ),
    )
    .unwrap();
    // the TLS material is generated on the first start: start once to create it, then measure a
    // start from the existing store
    let bin = env!("CARGO_BIN_EXE_trustmirror");
    let spawn = || {
        std::process::Command::new(bin)
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("TRUSTMIRROR_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let client = |ca: &str| {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .no_proxy()
            .pool_max_idle_per_host(16)
            .build()
            .unwrap()
    };
    let base = format!("https://127.0.0.1:{https}");
    let wait_ready = |c: reqwest::Client| {
        let base = base.clone();
        async move {
            let t = Instant::now();
            loop {
                if let Ok(r) = c.get(format!("{base}/readyz")).send().await
                    && r.status().is_success()
                {
                    return t.elapsed();
                }
                assert!(t.elapsed() < Duration::from_secs(60), "serve never became ready");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let mut first = spawn();
    let t = Instant::now();
    let ca = loop {
        if let Ok(ca) = std::fs::read_to_string(dir.path().join("tls/ca.crt")) {
            break ca;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no CA");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let c = client(&ca);
    wait_ready(c.clone()).await;
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    first.wait().unwrap();
    let t = Instant::now();
    let mut child = spawn();
    let ready = wait_ready(c.clone()).await;
    let _ = t;
    let pid = child.id();
    let (idle_rss, idle_threads) = proc_status(pid);
    println!("serve start → ready (existing store of {n} digests): {:.0} ms; idle RSS {:.1} MB, {idle_threads} threads", ready.as_secs_f64() * 1e3, idle_rss as f64 / 1024.0);

    let digest = |i: usize| trustmirror::core::digest::sha256_digest(format!("bench image {i}").as_bytes());
    let body = |images: &[String]| {
        let refs: Vec<&str> = images.iter().map(String::as_str).collect();
        serde_json::to_vec(&review::request_for("bench", "prod", &review::pod("bench", "prod", &refs))).unwrap()
    };
    let post = |b: Vec<u8>| {
        let (c, u) = (c.clone(), format!("{base}/validate"));
        async move {
            let r = c.post(u).header("content-type", "application/json").body(b).send().await.unwrap();
            let text = r.text().await.unwrap();
            assert!(text.contains("\"allowed\":true"), "{text}");
        }
    };
    let sampler = Sampler::start(pid);
    let warm_body = body(&[format!("{REPO}@{}", digest(0))]);
    for _ in 0..200 {
        post(warm_body.clone()).await;
    }
    let mut warm = vec![];
    for _ in 0..3000 {
        let t = Instant::now();
        post(warm_body.clone()).await;
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut cold = vec![];
    let mut next = 1;
    for _ in 0..1000.min(n / 2) {
        let b = body(&[format!("{REPO}@{}", digest(next))]);
        next += 1;
        let t = Instant::now();
        post(b).await;
        cold.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut pods = vec![];
    for _ in 0..200.min((n - next) / 8) {
        let imgs: Vec<String> = (next..next + 8).map(|i| format!("{REPO}@{}", digest(i))).collect();
        next += 8;
        let b = body(&imgs);
        let t = Instant::now();
        post(b).await;
        pods.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (rss, th) = sampler.finish();
    summary("HTTPS /validate, warm (cached decision)", warm);
    summary("HTTPS /validate, cold (a digest never decided)", cold);
    summary("HTTPS /validate, Pod of 8 cold digests", pods);
    println!("  during the latency runs: peak RSS {:.1} MB, {th} threads", rss as f64 / 1024.0);

    // sustained load with wrk at 64 and 2,000 connections (the warm review)
    let body_path = dir.path().join("body.json");
    std::fs::write(&body_path, &warm_body).unwrap();
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "local f = io.open(\"{}\", \"rb\"); wrk.body = f:read(\"*all\"); f:close()\nwrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
            body_path.display()
        ),
    )
    .unwrap();
    for conns in [64, 2000] {
        let sampler = Sampler::start(pid);
        let out = tokio::process::Command::new("wrk")
            .args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), "--latency", "--timeout", "10s", "-s"])
            .arg(&script)
            .arg(format!("{base}/validate"))
            .output()
            .await
            .expect("wrk (install it with .ci/install)");
        let (rss, th) = sampler.finish();
        let text = String::from_utf8_lossy(&out.stdout);
        let rps: f64 = text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
        let p99 = text.lines().find_map(|l| l.trim().strip_prefix("99%")).map(|v| v.trim().to_string()).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("Socket errors") || l.contains("Non-2xx")).collect();
        println!(
            "wrk -c{conns:<5} {rps:>8.0} reviews/s  p99 {p99:>8}  peak RSS {:>6.1} MB  peak threads {th:>4}  {}",
            rss as f64 / 1024.0,
            if errors.is_empty() { "no errors".to_string() } else { errors.join("; ") }
        );
    }
    let (after, th) = proc_status(pid);
    println!("after load: RSS {:.1} MB, {th} threads", after as f64 / 1024.0);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    tb.shutdown().await;
}
