//! `trustmirror serve --config` with every section (tuf, oci, tlog, admission) as a real process
//! against the testbed: it mirrors, witnesses, becomes ready, and answers AdmissionReviews over
//! HTTPS with the CA it generated; metrics and the witness API are on the HTTP port; SIGTERM
//! stops it.

mod common;

use std::time::{Duration, Instant};

use trustmirror::admission::review;
use trustmirror::testbed::{Testbed, TestbedOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_every_section_mirrors_witnesses_and_admits() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up(TestbedOptions::new(dir.path().join("tb"))).await.unwrap();
    let reg = tb.env["REGISTRY"].clone();
    let w = trustmirror::trust::keys::load_witness(&dir.path().join("witness.key"), "trustmirror.test/witness").unwrap();
    let policy = trustmirror::testbed::lab::demo_policy(&reg, &std::fs::read_to_string(&tb.env["VENDOR_COSIGN_PUB"]).unwrap())
        .replace("${WITNESS_VKEY}", &w.vkey());
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    std::fs::write(dir.path().join("banned.yaml"), trustmirror::bundles::DEMO_BANNED).unwrap();
    let (http, https) = (free_port(), free_port());
    let cfg = format!(
        r#"listen: 127.0.0.1:{http}
store: {store}
tuf:
  upstream: {tuf}
  root: {root}
oci:
  images: ["{reg}/**"]
  insecure_registries: ["{reg}"]
  keys: [{vendor}]
  interval: 1h
tlog:
  witness_key: {wkey}
  witness_name: trustmirror.test/witness
  interval: 1h
admission:
  listen: 127.0.0.1:{https}
  tls: {{generate_dir: {tls}, dns_names: [localhost, 127.0.0.1]}}
  policies: [{pol}]
  banned_packages: {banned}
  audit_file: {audit}
  exemptions: {exemptions}
"#,
        store = dir.path().join("s.redb").display(),
        tuf = tb.env["TUF_URL"],
        root = tb.env["TUF_ROOT"],
        vendor = tb.env["VENDOR_COSIGN_PUB"],
        wkey = dir.path().join("witness.key").display(),
        tls = dir.path().join("tls").display(),
        pol = dir.path().join("policy.yaml").display(),
        banned = dir.path().join("banned.yaml").display(),
        audit = dir.path().join("audit.jsonl").display(),
        exemptions = dir.path().join("exemptions.yaml").display(),
    );
    let now = jiff::Timestamp::now();
    std::fs::write(
        dir.path().join("exemptions.yaml"),
        format!(
            "exemptions:\n- namespace: incident\n  reason: INC-4711 rollback\n  createdAt: \"{}\"\n  expiresAt: \"{}\"\n",
            now - jiff::SignedDuration::from_mins(1),
            now + jiff::SignedDuration::from_hours(1)
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.yaml"), cfg).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["serve", "--config"])
        .arg(dir.path().join("config.yaml"))
        .env("TRUSTMIRROR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);

    // ready once the TUF mirror, the OCI mirror and the webhook are up
    let deadline = Instant::now() + Duration::from_secs(90);
    let ca = loop {
        if let Ok(ca) = std::fs::read_to_string(dir.path().join("tls/ca.crt")) {
            break ca;
        }
        assert!(Instant::now() < deadline, "no CA written");
        assert!(child.0.try_wait().unwrap().is_none(), "serve exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let client =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()).no_proxy().build().unwrap();
    let base = format!("https://127.0.0.1:{https}");
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the webhook never became ready");
        assert!(child.0.try_wait().unwrap().is_none(), "serve exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // the bundles' checkpoints are proven right after the first OCI sync; give it a moment
    let good = tb.scenario("good").unwrap().digest_ref.clone();
    let post_in = |ns: &'static str, img: String| {
        let (c, u) = (client.clone(), format!("{base}/validate"));
        async move {
            let r = c.post(u).json(&review::request_for("u", ns, &review::pod("p", ns, &[&img]))).send().await.unwrap();
            r.json::<serde_json::Value>().await.unwrap()["response"].clone()
        }
    };
    let post = |img: String| post_in("prod", img);
    let mut v = post(good.clone()).await;
    while v["allowed"] != true && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        v = post(good.clone()).await;
    }
    assert_eq!(v["allowed"], true, "{v}");
    // checkpoints are proven image by image after the sync: wait until this image's are too
    let cve = tb.scenario("critical-cve").unwrap().digest_ref.clone();
    let mut v = post(cve.clone()).await;
    while !v["status"]["message"].as_str().unwrap_or_default().contains("CVE-2024-3094") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        v = post(cve.clone()).await;
    }
    assert_eq!(v["allowed"], false);
    assert!(v["status"]["message"].as_str().unwrap().contains("CVE-2024-3094"), "{v}");
    // the same image in a namespace under a break-glass exemption: admitted, with a warning
    let v = post_in("incident", tb.scenario("critical-cve").unwrap().digest_ref.clone()).await;
    assert_eq!(v["allowed"], true, "{v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("INC-4711"), "{v}");
    // metrics and the witness on the HTTP port
    let h = reqwest::Client::new();
    let m = h.get(format!("http://127.0.0.1:{http}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("trustmirror_admission_reviews_total{endpoint=\"validate\",verdict=\"denied\"}"), "{m}");
    assert!(m.contains("trustmirror_tuf_ready"));
    metrics_as_documented(&m);
    let vk = h.get(format!("http://127.0.0.1:{http}/tlog/v1/witness")).send().await.unwrap().text().await.unwrap();
    assert_eq!(vk.trim(), w.vkey());
    let logs: serde_json::Value = h.get(format!("http://127.0.0.1:{http}/tlog/v1/logs")).send().await.unwrap().json().await.unwrap();
    assert!(logs[0]["latest"]["size"].as_u64().unwrap() > 1, "{logs}");
    // SIGTERM: a clean exit
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap().contains("CVE-2024-3094"));
    tb.shutdown().await;
}

/// `/metrics` exposes every documented family under its exact name and type, nothing
/// undocumented, one prefix, and latency buckets fine enough for sub-millisecond reviews.
fn metrics_as_documented(exposition: &str) {
    let doc: std::collections::BTreeMap<String, &str> =
        common::documented_metric_families().into_iter().filter(|(f, _)| !f.starts_with("trustmirror_node_")).collect();
    assert!(doc.len() >= 19, "the README documents too few metric families: {doc:?}");
    let exposed: std::collections::BTreeMap<&str, &str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut it = l.split_whitespace();
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    for (family, kind) in &doc {
        assert_eq!(exposed.get(family.as_str()), Some(kind), "documented family {family} ({kind}) is not exposed as such:\n{exposition}");
    }
    for (family, kind) in &exposed {
        assert!(doc.contains_key(*family), "{family} ({kind}) is exposed but not documented in the README");
        assert_eq!(family.matches("trustmirror").count(), 1, "{family}: one prefix");
    }
    // the buckets resolve sub-millisecond reviews (what the service bench measures warm)
    let bounds: Vec<f64> = exposition
        .lines()
        .filter(|l| l.starts_with("trustmirror_admission_review_duration_seconds_bucket{") && l.contains("endpoint=\"validate\""))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
        .collect();
    assert!(bounds.iter().filter(|b| **b < 0.001).count() >= 3, "at least three buckets under 1 ms: {bounds:?}");
}
