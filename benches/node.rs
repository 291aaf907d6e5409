//! The node agent's footprint, as a node runs it (the release binary, its own process, against the
//! testbed's TUF repository): `node --once` from the mirror and from its own cache with the mirror
//! gone (wall time from exec to exit, and the process's peak RSS), and the long-running agent's
//! RSS and threads sampled over BENCH_SECONDS (default 10) of passes every second with its HTTP
//! port scraped.
//!
//! `cargo bench --bench node`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use trustmirror::testbed::{Testbed, TestbedOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Run to exit: (wall ms, peak RSS kB, exit status).
fn run(args: &[&str]) -> (f64, i64, i32) {
    let (t, rss_kb, code) = common::run_to_exit(args);
    (t.as_secs_f64() * 1e3, rss_kb, code)
}

fn proc_status(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("Threads:"))
}

fn series(name: &str, n: usize, args: &[&str]) {
    let mut ms = vec![];
    let mut rss = 0;
    for _ in 0..n {
        let (t, r, code) = run(args);
        assert_eq!(code, 0, "{name}: exit {code}");
        ms.push(t);
        rss = rss.max(r);
    }
    println!(
        "{name:<44} n={n:<3} p50 {:>7.1} ms  p99 {:>7.1} ms  peak RSS {:>5.1} MB",
        pct(&mut ms, 0.5),
        pct(&mut ms, 0.99),
        rss as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // a binary the linker just wrote sits in dirty page-cache pages, which count as private
    // dirty memory of every process mapping it; a deployed binary's pages are clean
    unsafe { libc::sync() };
    let secs: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let mut o = TestbedOptions::new(dir.path().join("tb"));
    o.registry = false;
    let tb = Testbed::up(o).await.unwrap();
    let (url, root) = (tb.env["TUF_URL"].clone(), tb.env["TUF_ROOT"].clone());
    let policy = dir.path().join("policy.yaml");
    let key = std::fs::read_to_string(&tb.env["VENDOR_COSIGN_PUB"]).unwrap();
    let indented: String = key.lines().map(|l| format!("        {l}\n")).collect();
    std::fs::write(
        &policy,
        format!("apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: vendor}}\nspec:\n  images: [\"registry.internal/vendor/**\"]\n  authorities:\n  - name: vendor\n    key:\n      data: |\n{indented}"),
    )
    .unwrap();
    let out = dir.path().join("node");
    let o = out.to_str().unwrap();
    let p = policy.to_str().unwrap();
    let base = ["node", "--once", "--mirror", &url, "--root", &root, "--out", o, "--policy", p];

    let (ms, rss, code) = run(&base);
    assert_eq!(code, 0);
    println!("{:<44} {ms:>7.1} ms  peak RSS {:>5.1} MB", "node --once, empty directory, from the mirror", rss as f64 / 1024.0);
    series("node --once, from the mirror (cache current)", 20, &base);

    // the long-running agent: a pass every second, its port scraped every 100 ms
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["node", "--mirror", &url, "--root", &root, "--out", o, "--policy", p, "--interval", "1s", "--listen", &listen])
        .env("TRUSTMIRROR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let t = Instant::now();
    let ready = loop {
        if let Ok(r) = http.get(format!("http://{listen}/readyz")).send().await
            && r.status().is_success()
        {
            break t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the agent never became ready");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (mut peak, mut threads) = (0u64, 0u64);
    let t = Instant::now();
    let mut scrapes = 0;
    while t.elapsed() < Duration::from_secs(secs) {
        let m = http.get(format!("http://{listen}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(m.contains("trustmirror_node_ready 1"), "{m}");
        scrapes += 1;
        let (r, th) = proc_status(agent.id());
        peak = peak.max(r);
        threads = threads.max(th);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (now_rss, _) = proc_status(agent.id());
    let anon = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", agent.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Anonymous:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()))
        .unwrap_or(0);
    println!(
        "agent (a pass every 1 s, {scrapes} scrapes over {secs} s): ready in {:.0} ms; RSS peak {:.1} MB, at the end {:.1} MB (anonymous {:.1} MB, the rest the binary's mapped pages); threads {threads}",
        ready.as_secs_f64() * 1e3,
        peak as f64 / 1024.0,
        now_rss as f64 / 1024.0,
        anon as f64 / 1024.0
    );
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    agent.wait().unwrap();

    // the mirror goes away: boot from the cache
    tb.shutdown().await;
    series("node --once, mirror down: from the cache", 20, &base);
    assert!(Path::new(&out).join("trusted_root.json").exists());
}
