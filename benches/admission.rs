//! Admission latency and throughput against the real TLS endpoint.
//!
//! * warm / cold: p50 and p99 of one AdmissionReview (a Pod with the fully attested `good` image,
//!   all five properties) sent over one keep-alive HTTPS connection; cold clears the decision
//!   cache before every request, so each review reads the material from the store and verifies
//!   every signature and attestation again. Also the engine alone, without HTTP.
//! * sustained: `wrk` (a real HTTP load generator, Debian package) POSTing the warm review over
//!   TLS for BENCH_SECONDS (default 10) with 2 threads and 64 connections; every response body is
//!   checked for `"allowed":true`.
//!
//! `cargo bench --bench admission`. Needs `docker-registry` and `wrk` (`.ci/install`).

use std::time::{Duration, Instant};

use trustmirror::admission::review;
use trustmirror::testbed::lab::{Lab, LabOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    println!("{name:<44} n={n:<6} p50 {:>8.3} ms   p99 {:>8.3} ms   mean {:>8.3} ms", pct(&mut v, 0.5), pct(&mut v, 0.99), mean);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let secs: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(dir.path());
    o.webhook_tune = |w| w.max_concurrency = 1024;
    let lab = match Lab::up(o).await {
        Ok(l) => l,
        Err(e) => {
            println!("admission: skipped ({e:#})");
            return;
        }
    };
    let good = lab.scenario("good").digest_ref.clone();
    let body = serde_json::to_vec(&review::request_for("bench-uid", "prod", &review::pod("bench", "prod", &[&good]))).unwrap();
    let url = format!("{}/validate", lab.url);
    let client = lab.client.clone();
    let send = |body: Vec<u8>| {
        let (c, u) = (client.clone(), url.clone());
        async move {
            let r = c.post(u).header("content-type", "application/json").body(body).send().await.unwrap();
            let b = r.bytes().await.unwrap();
            assert!(b.windows(14).any(|w| w == b"\"allowed\":true"), "{}", String::from_utf8_lossy(&b));
        }
    };
    for _ in 0..200 {
        send(body.clone()).await;
    }
    let mut warm = vec![];
    for _ in 0..5000 {
        let t = Instant::now();
        send(body.clone()).await;
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut cold = vec![];
    for _ in 0..500 {
        lab.engine.clear_cache();
        let t = Instant::now();
        send(body.clone()).await;
        cold.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // the engine alone
    let (e, g) = (lab.engine.clone(), good.clone());
    let (ew, ec) = tokio::task::spawn_blocking(move || {
        let mut ew = vec![];
        let mut ec = vec![];
        for _ in 0..20000 {
            let t = Instant::now();
            assert!(e.decide_image("prod", &g, None).violations.is_empty());
            ew.push(t.elapsed().as_secs_f64() * 1e3);
        }
        for _ in 0..500 {
            e.clear_cache();
            let t = Instant::now();
            assert!(e.decide_image("prod", &g, None).violations.is_empty());
            ec.push(t.elapsed().as_secs_f64() * 1e3);
        }
        (ew, ec)
    })
    .await
    .unwrap();
    println!("admission review of the fully attested image (5 properties + registry + digest rules):");
    summary("HTTPS /validate, warm (cached decision)", warm);
    summary("HTTPS /validate, cold (store + every check)", cold);
    summary("engine only, warm", ew);
    summary("engine only, cold", ec);

    // sustained, with wrk
    let script = dir.path().join("post.lua");
    let body_path = dir.path().join("body.json");
    std::fs::write(&body_path, &body).unwrap();
    std::fs::write(
        &script,
        format!(
            r#"local f = io.open("{}", "rb"); wrk.body = f:read("*all"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- each wrk thread has its own Lua state: count there, sum the threads' counts in done()
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"allowed":true', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("wrk-bad-responses %d\n", total))
end
"#,
            body_path.display()
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(&script)
        .arg(&url)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            println!("\nwrk -t2 -c64 -d{secs}s --latency (TLS, POST /validate, warm):");
            for l in text.lines() {
                println!("  {l}");
            }
            // wrk counts per-thread Lua state; sum the bad-response lines
            let rps: f64 = text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
            let errors = text.lines().any(|l| l.contains("Socket errors") || l.contains("Non-2xx"));
            println!("sustained: {rps:.0} reviews/s, transport errors or non-2xx: {}", if errors { "YES" } else { "none" });
        }
        Ok(o) => println!("wrk failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("wrk not available ({e}): install it with .ci/install"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.shutdown().await;
}
