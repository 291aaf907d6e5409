//! The node agent, `trustmirror node`, against the testbed's TUF repository: it provisions a
//! directory from the mirror, again from its own cache with the mirror gone, never from material
//! that does not verify, and within an explicit freshness policy. What it writes is read by
//! independent consumers: python-tuf takes over its TUF cache, sigstore-python verifies a bundle
//! offline with the trust material it wrote (both routes: `--trust-config` and `--instance` with
//! its cache), and skopeo loads the containers-policy.json it rendered.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_interop_ran, tool};
use jiff::SignedDuration;
use trustmirror::core::clock::ManualClock;
use trustmirror::core::nodepolicy::DefaultRule;
use trustmirror::node::cache::{Source, url_to_path};
use trustmirror::node::{NodeError, NodeOptions};
use trustmirror::testbed::scenarios::good_identity;
use trustmirror::testbed::{Testbed, TestbedOptions};

async fn testbed(dir: &Path) -> Testbed {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut o = TestbedOptions::new(dir.join("tb"));
    o.registry = false;
    Testbed::up(o).await.unwrap()
}

/// `trustmirror node --once …`: (exit status, stderr).
fn node_once(tb_env: &std::collections::BTreeMap<String, String>, out: &Path, extra: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["node", "--once", "--timeout", "5s", "--mirror", &tb_env["TUF_URL"], "--root", &tb_env["TUF_ROOT"], "--out"])
        .arg(out)
        .args(extra)
        .env("TRUSTMIRROR_LOG", "info")
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn status(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("status.json")).unwrap()).unwrap()
}

fn cache_dir(out: &Path, mirror: &str) -> PathBuf {
    out.join("tuf").join(url_to_path(mirror))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_from_the_mirror_then_from_its_cache_and_never_from_what_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let tb = testbed(dir.path()).await;
    let env = tb.env.clone();
    let out = dir.path().join("node");
    let mut interop = 0;

    // 1. from the mirror: the trusted root byte-identical to the published target
    let (code, log) = node_once(&env, &out, &[]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(std::fs::read(out.join("trusted_root.json")).unwrap(), std::fs::read(&env["TRUSTED_ROOT"]).unwrap());
    assert_eq!(status(&out)["source"], "mirror");
    assert_eq!(status(&out)["ok"], true);
    let cache = cache_dir(&out, &env["TUF_URL"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("tuf/remote.json")).unwrap()).unwrap()["mirror"],
        env["TUF_URL"].trim_end_matches('/'),
        "remote.json names the mirror exactly as the cache directory does"
    );
    for f in ["root.json", "timestamp.json", "snapshot.json", "targets.json", "targets/trusted_root.json"] {
        assert!(cache.join(f).exists(), "cosign's TUF_ROOT layout: {f}");
    }

    // 2. independent consumers of what landed
    if let Some(py) = tool("venv/bin/python") {
        // python-tuf takes over the agent's cache as its own trusted state
        let o = Command::new(py)
            .arg(common::repo_root().join("tests/interop/tuf_cache_read.py"))
            .arg(&cache)
            .arg(&env["TUF_URL"])
            .arg("trusted_root.json")
            .output()
            .unwrap();
        assert!(o.status.success(), "python-tuf: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["sha256"], trustmirror::core::digest::sha256_hex(&std::fs::read(out.join("trusted_root.json")).unwrap()));
        interop += 1;
    }
    if let Some(sigstore) = tool("venv/bin/sigstore") {
        let id = good_identity();
        let signer = tb.stack.keyless(&id, tb.now);
        let artifact = dir.path().join("artifact.txt");
        std::fs::write(&artifact, b"node artifact\n").unwrap();
        let bundle = dir.path().join("artifact.sigstore.json");
        std::fs::write(&bundle, serde_json::to_vec(&tb.stack.sign_blob(&signer, b"node artifact\n", tb.now).bundle).unwrap()).unwrap();
        let verify = |route: &[&str], xdg: Option<&Path>, identity: &str| {
            let mut c = Command::new(&sigstore);
            c.args(route).args(["verify", "identity", "--offline", "--bundle"]).arg(&bundle);
            c.args(["--cert-identity", identity, "--cert-oidc-issuer", &id.issuer]).arg(&artifact);
            // no network, no home cache: only what the agent wrote
            c.env("HOME", dir.path().join("empty-home"));
            if let Some(x) = xdg {
                c.env("XDG_CACHE_HOME", x);
            }
            let o = c.output().unwrap();
            (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        };
        let ctc = out.join("client_trust_config.json");
        let (ok, msg) = verify(&["--trust-config", ctc.to_str().unwrap()], None, &id.san);
        assert!(ok, "sigstore-python --trust-config: {msg}");
        let (ok, msg) = verify(
            &["--trust-config", ctc.to_str().unwrap()],
            None,
            "https://github.com/attacker/x/.github/workflows/y.yml@refs/heads/main",
        );
        assert!(!ok, "the wrong identity is refused: {msg}");
        let instance = env["TUF_URL"].trim_end_matches('/').to_string();
        let (ok, msg) = verify(&["--instance", &instance], Some(&out.join("sigstore-python")), &id.san);
        assert!(ok, "sigstore-python --instance with the agent's cache: {msg}");
        interop += 3;
    }

    // 3. the mirror goes away: the node still provisions, from its cache
    tb.shutdown().await;
    std::fs::remove_file(out.join("trusted_root.json")).unwrap();
    let (code, log) = node_once(&env, &out, &[]);
    assert_eq!(code, 0, "{log}");
    let st = status(&out);
    assert_eq!(st["source"], "cache", "{st}");
    assert!(st["last_error"].as_str().unwrap().contains("mirror"), "{st}");
    assert!(st["last_mirror_success"].is_string(), "the last success is remembered: {st}");
    let good_root = std::fs::read(&env["TRUSTED_ROOT"]).unwrap();
    assert_eq!(std::fs::read(out.join("trusted_root.json")).unwrap(), good_root);

    // 4. a cache that does not verify is never provisioned from: a tampered target, a tampered
    //    timestamp — exit 1, and what was in place stays
    let cached_target = cache.join("targets/trusted_root.json");
    let original = std::fs::read(&cached_target).unwrap();
    let mut forged = original.clone();
    forged.extend_from_slice(b" ");
    std::fs::write(&cached_target, &forged).unwrap();
    let (code, log) = node_once(&env, &out, &[]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("trusted_root.json"), "the error names what failed: {log}");
    assert_eq!(std::fs::read(out.join("trusted_root.json")).unwrap(), good_root, "unchanged");
    assert_eq!(status(&out)["ok"], false);
    std::fs::write(&cached_target, &original).unwrap();
    let ts = cache.join("timestamp.json");
    let ts_original = std::fs::read(&ts).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&ts_original).unwrap();
    v["signed"]["expires"] = serde_json::json!("2099-01-01T00:00:00Z");
    std::fs::write(&ts, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, log) = node_once(&env, &out, &[]);
    assert_eq!(code, 1, "a timestamp whose signature no longer verifies: {log}");
    assert!(log.contains("timestamp"), "{log}");
    std::fs::write(&ts, &ts_original).unwrap();
    let (code, log) = node_once(&env, &out, &[]);
    assert_eq!(code, 0, "restored: {log}");

    // 5. the pinned root must be a TUF root: the ConfigMap placeholder is refused with a reason
    let placeholder = dir.path().join("placeholder.json");
    std::fs::write(&placeholder, br#"{"placeholder": "replace with the root.json of your internal TUF repository"}"#).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["node", "--once", "--mirror", &env["TUF_URL"], "--root"])
        .arg(&placeholder)
        .arg("--out")
        .arg(dir.path().join("fresh"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a TUF root"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("fresh/trusted_root.json").exists());
    assert_interop_ran("node consumers", interop, 4);
}

fn options(env: &std::collections::BTreeMap<String, String>, out: &Path, grace: SignedDuration) -> NodeOptions {
    NodeOptions {
        mirror: env["TUF_URL"].clone(),
        root: env["TUF_ROOT"].clone().into(),
        out: out.to_path_buf(),
        policies: vec![],
        allow_partial: false,
        default_rule: DefaultRule::Accept,
        containers_image: (5, 33),
        grace,
        interval: std::time::Duration::from_secs(60),
        listen: None,
        http: Default::default(),
        timeout: std::time::Duration::from_secs(5),
    }
}

/// Freshness: cached material is used while unexpired; past an expiry only within `--grace`,
/// and then reported stale; past the grace, nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_material_is_used_only_within_the_freshness_policy() {
    let dir = tempfile::tempdir().unwrap();
    let tb = testbed(dir.path()).await;
    let env = tb.env.clone();
    let out = dir.path().join("node");
    let t0 = tb.now;
    let clock = ManualClock::new(t0);
    let (st, res) = trustmirror::node::provision(&options(&env, &out, SignedDuration::ZERO), &clock).await;
    res.unwrap();
    assert_eq!(st.source, Some(Source::Mirror));
    let ts_expiry = st.roles["timestamp"].expires;
    assert!(st.expires == Some(ts_expiry), "the timestamp expires first: {st:?}");
    tb.shutdown().await;

    // unexpired: fresh from the cache
    clock.set(ts_expiry - SignedDuration::from_hours(1));
    let (st, res) = trustmirror::node::provision(&options(&env, &out, SignedDuration::ZERO), &clock).await;
    res.unwrap();
    assert_eq!((st.source, st.stale.is_none()), (Some(Source::Cache), true));

    // an hour past the timestamp's expiry, no grace: refused, naming the expiry
    clock.set(ts_expiry + SignedDuration::from_hours(1));
    let (st, res) = trustmirror::node::provision(&options(&env, &out, SignedDuration::ZERO), &clock).await;
    let e = res.unwrap_err();
    assert!(matches!(e, NodeError::NoMaterial { .. }) && e.to_string().contains("expired"), "{e}");
    assert!(!st.ok);
    // with a day of grace: provisioned, and said to be stale
    let (st, res) = trustmirror::node::provision(&options(&env, &out, SignedDuration::from_hours(24)), &clock).await;
    res.unwrap();
    assert!(st.stale.as_deref().is_some_and(|s| s.contains("timestamp") && s.contains("grace")), "{st:?}");
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("status.json")).unwrap()).unwrap();
    assert!(written["stale"].is_string(), "{written}");
    // two days past: beyond the grace
    clock.set(ts_expiry + SignedDuration::from_hours(48));
    let (_, res) = trustmirror::node::provision(&options(&env, &out, SignedDuration::from_hours(24)), &clock).await;
    let e = res.unwrap_err().to_string();
    assert!(e.contains("grace"), "{e}");
}

/// The long-running agent: ready once a pass put material in place, the documented metrics under
/// their exact names and types, still ready from its cache when the mirror goes away, and a clean
/// exit on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_health_and_the_documented_metrics_through_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let tb = testbed(dir.path()).await;
    let env = tb.env.clone();
    let out = dir.path().join("node");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args([
            "node",
            "--timeout",
            "2s",
            "--interval",
            "1s",
            "--listen",
            &listen,
            "--mirror",
            &env["TUF_URL"],
            "--root",
            &env["TUF_ROOT"],
            "--out",
        ])
        .arg(&out)
        .env("TRUSTMIRROR_LOG", "warn")
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |path: &str| {
        let (h, u) = (http.clone(), format!("http://{listen}{path}"));
        async move {
            match h.get(u).send().await {
                Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
                Err(_) => None,
            }
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // poll the agent's own answers (no fixed sleeps): ready after its first pass
    while get("/readyz").await.map(|r| r.0) != Some(200) {
        assert!(std::time::Instant::now() < deadline, "never ready");
        assert!(agent.try_wait().unwrap().is_none(), "the agent exited");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(get("/healthz").await.unwrap().0, 200);
    let m = get("/metrics").await.unwrap().1;
    let doc: std::collections::BTreeMap<String, &str> =
        common::documented_metric_families().into_iter().filter(|(f, _)| f.starts_with("trustmirror_node_")).collect();
    assert!(doc.len() >= 8, "{doc:?}");
    let exposed = common::exposed_metric_families(&m);
    for (family, kind) in &doc {
        assert_eq!(exposed.get(family).map(String::as_str), Some(*kind), "documented {family} ({kind}):\n{m}");
    }
    for family in exposed.keys() {
        assert!(doc.contains_key(family), "{family} is exposed but not documented in the README");
    }
    assert!(m.contains("trustmirror_node_ready 1"), "{m}");
    assert!(m.contains("trustmirror_node_role_version{role=\"timestamp\"} 1"), "{m}");

    // the mirror goes away: passes continue from the cache, still ready
    tb.shutdown().await;
    loop {
        let m = get("/metrics").await.unwrap().1;
        if m.lines()
            .any(|l| l.starts_with("trustmirror_node_passes_total{") && l.contains("source=\"cache\"") && l.contains("result=\"success\""))
        {
            assert!(m.contains("trustmirror_node_ready 1"), "{m}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no pass from the cache: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(get("/readyz").await.unwrap().0, 200);
    assert_eq!(status(&out)["source"], "cache");
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success(), "a clean exit on SIGTERM");
}
