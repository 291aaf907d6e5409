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

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use trustmirror::admission::review;
use trustmirror::core::evidence::COSIGN_SIGN_V1;
use trustmirror::mirror::oci::ImageMaterial;
use trustmirror::testbed::cosign::{STATEMENT_V1, statement};
use trustmirror::testbed::pki::Identity;
use trustmirror::testbed::scenarios::good_identity;
use trustmirror::testbed::{Testbed, TestbedOptions};

const REPO: &str = "bench.internal/myorg/svc";
const JUNK_DIGESTS: usize = 20;
const JUNK_ITEMS: usize = 250;

fn junk_digest(j: usize) -> String {
    trustmirror::core::digest::sha256_digest(format!("junk image {j}").as_bytes())
}

/// A wrk script that POSTs `bodies` in turn and counts answers that are not `want`.
fn wrk_script(path: &Path, bodies: &[std::path::PathBuf], want: &str) {
    let files: Vec<String> = bodies.iter().map(|b| format!("\"{}\"", b.display())).collect();
    std::fs::write(
        path,
        format!(
            r#"local files = {{{}}}
local bodies = {{}}
for i, p in ipairs(files) do local f = io.open(p, "rb"); bodies[i] = f:read("*all"); f:close() end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])
end
-- each wrk thread has its own Lua state: count there, sum the threads' counts in done()
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
bad = 0
overloaded = 0
function response(status, headers, body)
  if status == 200 and string.find(body, 'reviews in flight', 1, true) then overloaded = overloaded + 1
  elseif status ~= 200 or not string.find(body, '{want}', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b, o = 0, 0
  for _, t in ipairs(threads) do b = b + t:get("bad"); o = o + t:get("overloaded") end
  io.write(string.format("wrk-bad-responses %d\nwrk-overloaded %d\n", b, o))
end
"#,
            files.join(", ")
        ),
    )
    .unwrap();
}

/// Run wrk against `url` while sampling `pid`; prints one line.
async fn wrk(label: &str, pid: u32, conns: usize, secs: u64, script: &Path, url: &str) {
    let sampler = Sampler::start(pid);
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), "--latency", "--timeout", "10s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .await
        .expect("wrk (install it with .ci/install)");
    let (rss, th) = sampler.finish();
    let text = String::from_utf8_lossy(&out.stdout);
    let rps: f64 = text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
    let p99 = text.lines().find_map(|l| l.trim().strip_prefix("99%")).map(|v| v.trim().to_string()).unwrap_or_default();
    let max = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Latency"))
        .and_then(|v| v.split_whitespace().nth(2))
        .unwrap_or_default()
        .to_string();
    let bad = text.lines().find_map(|l| l.strip_prefix("wrk-bad-responses ")).unwrap_or("?").trim().to_string();
    let overloaded = text.lines().find_map(|l| l.strip_prefix("wrk-overloaded ")).unwrap_or("?").trim().to_string();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("Socket errors") || l.contains("Non-2xx")).collect();
    println!(
        "{label:<10} -c{conns:<5} {rps:>8.0} reviews/s  p99 {p99:>8}  max {max:>8}  peak RSS {:>6.1} MB  peak threads {th:>3}  wrong answers {bad}, answered at once past max_concurrency {overloaded}  {}",
        rss as f64 / 1024.0,
        if errors.is_empty() { "no transport errors".to_string() } else { errors.join("; ") }
    );
}

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
        let (_store, m) = common::mirrored_store(&tb, &store_path).await;
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
        // what a registry pusher can add: JUNK_DIGESTS digests in the same repository, each
        // carrying JUNK_ITEMS statements validly signed by an identity no policy trusts (the
        // most a pusher with any Fulcio identity can make the service evaluate); and one digest
        // with more items than the ingest cap
        let attacker = tb.stack.keyless(&Identity::github_workflow("attacker/app", ".github/workflows/x.yml", "refs/heads/main"), tb.now);
        let tj = Instant::now();
        for j in 0..JUNK_DIGESTS {
            let digest = junk_digest(j);
            let bundles = (0..JUNK_ITEMS)
                .map(|k| {
                    let st = statement(STATEMENT_V1, REPO, &digest, "https://example.com/junk/v1", &json!({"k": k}));
                    (None, serde_json::to_vec(&tb.stack.attest(&attacker, &st, tb.now).bundle).unwrap())
                })
                .collect();
            let mat = ImageMaterial {
                name: REPO.into(),
                digest: digest.clone(),
                manifest: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec(),
                bundles,
                ..Default::default()
            };
            let (ok, _) = m.ingest_material(&mat).unwrap();
            assert_eq!(ok, JUNK_ITEMS);
        }
        println!("junk: {JUNK_DIGESTS} digests × {JUNK_ITEMS} items signed by an untrusted identity, ingested in {:.1?}", tj.elapsed());
        let over = ImageMaterial {
            name: REPO.into(),
            digest: junk_digest(JUNK_DIGESTS),
            manifest: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec(),
            bundles: (0..500).map(|k| (None, format!("{{\"junk\":{k}}}").into_bytes())).collect(),
            ..Default::default()
        };
        let tj = Instant::now();
        let refused = m.ingest_material(&over).expect_err("500 items pass the ingest cap");
        println!("junk: a digest with 500 items refused at ingest in {:.1?}: {refused}", tj.elapsed());
    }
    println!(
        "store: {n} digests written through the mirror's ingest path in {:.1?}, {:.1} MiB",
        t0.elapsed(),
        dir_size(&store_path) as f64 / 1048576.0
    );

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
    println!(
        "serve start → ready (existing store of {n} digests): {:.0} ms; idle RSS {:.1} MB, {idle_threads} threads",
        ready.as_secs_f64() * 1e3,
        idle_rss as f64 / 1024.0
    );

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
    wrk_script(&script, &[body_path], "\"allowed\":true");
    for conns in [64, 2000] {
        wrk("warm", pid, conns, secs, &script, &format!("{base}/validate")).await;
    }
    let (after, th) = proc_status(pid);
    println!("after load: RSS {:.1} MB, {th} threads", after as f64 / 1024.0);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();

    // the junk digests under sustained load, with the decision cache off (every review
    // evaluates its digest's 250 untrusted items): at 2× max_concurrency connections, for
    // BENCH_JUNK_SECONDS (default 60) — every answer a denial, within the timeout, memory flat
    let junk_secs: u64 = std::env::var("BENCH_JUNK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let cfg = std::fs::read_to_string(&config).unwrap().replace("  max_concurrency: 4096\n", "  max_concurrency: 256\n  cache_ttl: 0s\n");
    std::fs::write(&config, cfg).unwrap();
    let mut child = spawn();
    wait_ready(c.clone()).await;
    let pid = child.id();
    let bodies: Vec<std::path::PathBuf> = (0..JUNK_DIGESTS)
        .map(|j| {
            let p = dir.path().join(format!("junk{j}.json"));
            std::fs::write(&p, body(&[format!("{REPO}@{}", junk_digest(j))])).unwrap();
            p
        })
        .collect();
    let t = Instant::now();
    // the answer is this policy's denial, not a failure-mode one (overloaded, timeout)
    let want = "[svc] signature: ";
    post_expect(&c, &format!("{base}/validate"), std::fs::read(&bodies[0]).unwrap(), want).await;
    println!("junk: first uncached review of a digest with {JUNK_ITEMS} untrusted items: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    let mut lat = vec![];
    for b in bodies.iter().cycle().take(200) {
        let t = Instant::now();
        post_expect(&c, &format!("{base}/validate"), std::fs::read(b).unwrap(), want).await;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    summary("HTTPS /validate, junk digest, uncached", lat);
    let script = dir.path().join("junk.lua");
    wrk_script(&script, &bodies, want);
    // at the pool's width (what it sustains) and far past max_concurrency (an open flood)
    wrk("junk", pid, 8, junk_secs, &script, &format!("{base}/validate")).await;
    wrk("junk", pid, 512, junk_secs, &script, &format!("{base}/validate")).await;
    let (after, th) = proc_status(pid);
    println!("after junk load: RSS {:.1} MB, {th} threads", after as f64 / 1024.0);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    tb.shutdown().await;
}

async fn post_expect(c: &reqwest::Client, url: &str, body: Vec<u8>, want: &str) {
    let r = c.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains(want), "{text}");
}
