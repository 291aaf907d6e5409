//! The admission webhook end to end: the testbed mirrored into a store, the webhook on HTTPS,
//! AdmissionReviews sent as the API server sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use trustmirror::admission::review;
use trustmirror::admission::{Engine, EngineOptions};
use trustmirror::core::clock::{Clock, ManualClock};
use trustmirror::store::admission::{Exemption, Scope};
use trustmirror::testbed::lab::{Lab, LabOptions, replay};

fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn start_lab(f: impl FnOnce(&mut LabOptions)) -> (Lab, tempfile::TempDir) {
    init();
    let d = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(d.path().join("lab"));
    f(&mut o);
    (Lab::up(o).await.unwrap(), d)
}

fn metrics_text(e: &Engine) -> String {
    let mut r = prometheus_client::registry::Registry::default();
    e.metrics.register(&mut r);
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, &r).unwrap();
    s
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_expected_behaviour_table() {
    let (lab, _d) = start_lab(|_| {}).await;
    let rows = replay(&lab).await.unwrap();
    for r in &rows {
        assert!(r.ok, "{r:?}");
    }
    assert_eq!(rows.len(), 16);
    // Denials name the policy, the property and the evidence.
    let a = lab.admit("prod", &[&lab.scenario("missing-sbom").deploy_ref], None).await.unwrap();
    assert!(!a.allowed);
    assert!(a.message.contains("[myorg-production] sbom: missing SBOM attestation"), "{}", a.message);
    assert!(a.message.contains("containers[c0]") && a.message.contains("in prod"), "{}", a.message);
    let a = lab.admit("prod", &[&lab.scenario("wrong-workflow-fork").deploy_ref], None).await.unwrap();
    assert!(a.message.contains("attacker/app"), "the refused identity is shown: {}", a.message);
    // The tag-only image is rewritten to exactly the digest the tag resolved to when mirrored.
    let s = lab.scenario("tag-only");
    let a = lab.admit("prod", &[&s.tag_ref], None).await.unwrap();
    assert_eq!(a.mutated, vec![s.digest_ref.clone()]);
    // Without the mutating webhook, the tag itself is refused (digest pinning required).
    let v = lab.post("/validate", &review::request_for("u-tag", "prod", &review::pod("p", "prod", &[&s.tag_ref]))).await.unwrap();
    assert_eq!(v["allowed"], false);
    assert!(v["status"]["message"].as_str().unwrap().contains("digest: "), "{v}");
    // An image no policy covers is denied (PolicyDefaults noMatch: enforce).
    let a = lab
        .admit("prod", &["127.0.0.1:1/other/thing@sha256:0000000000000000000000000000000000000000000000000000000000000000"], None)
        .await
        .unwrap();
    assert!(!a.allowed && a.message.contains("no-policy"), "{}", a.message);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_need_no_network_and_misses_are_queued() {
    // Ingestion queue wired in, so we can also see that a miss *does* reach for the network.
    let (lab, _d) = start_lab(|o| o.ingest = true).await;
    // The testbed is stopped; listen on the registry's port and count every connection.
    let conns = Arc::new(AtomicUsize::new(0));
    let l = tokio::net::TcpListener::bind(&lab.registry).await.expect("the registry's port is free again");
    let c2 = conns.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            drop(s); // any outbound request fails
        }
    });
    // Every mirrored scenario, by digest and by tag, decided with zero connections.
    for s in lab.scenarios.clone() {
        lab.admit("prod", &[&s.deploy_ref], None).await.unwrap();
        lab.admit("prod", &[&s.tag_ref], None).await.unwrap();
    }
    // nothing was missing, so nothing was queued: the only path to the registry stayed shut
    assert_eq!(metric(&metrics_text(&lab.engine), "trustmirror_admission_misses_queued", &[]), 0.0);
    assert_eq!(conns.load(Ordering::SeqCst), 0, "the admission path connected to the registry");
    // A digest the store has never seen: denied at once, and queued for the mirror — which is
    // the only thing that then connects (proving the counter counts).
    let unknown = format!("{}/myorg/app@sha256:{}", lab.registry, "ab".repeat(32));
    let t0 = Instant::now();
    let a = lab.admit("prod", &[&unknown], None).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "answered without waiting for the registry");
    assert!(!a.allowed && a.message.contains("queued for the mirror"), "{}", a.message);
    let deadline = Instant::now() + Duration::from_secs(10);
    while conns.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(conns.load(Ordering::SeqCst) > 0, "the miss was queued for the mirror");
    assert!(metric(&metrics_text(&lab.engine), "trustmirror_admission_misses_queued", &[]) >= 1.0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakglass_is_scoped_time_limited_and_audited() {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let c: Arc<dyn Clock> = clock.clone();
    let (lab, _d) = start_lab(move |o| o.clock = Some(c)).await;
    let unsigned = lab.scenario("rollback-unsigned").clone();
    let now = clock.now();
    let add = |scope: Scope, hours: i64, reason: &str| {
        let id = lab
            .store
            .exemption_add(Exemption {
                id: 0,
                scope,
                reason: reason.into(),
                created_by: "t".into(),
                created_at: now,
                expires_at: now.checked_add(SignedDuration::from_hours(hours)).unwrap(),
                revoked: false,
            })
            .unwrap();
        lab.engine.refresh_exemptions_now();
        id
    };
    // Longer than the 4 h maximum: ignored.
    add(Scope::Namespace("hotfix".into()), 5, "too long");
    let a = lab.admit("hotfix", &[&unsigned.deploy_ref], None).await.unwrap();
    assert!(!a.allowed, "an exemption over the maximum is not honoured");
    // A namespace exemption: that namespace only.
    let id = add(Scope::Namespace("hotfix".into()), 1, "INC-1 rollback");
    let a = lab.admit("hotfix", &[&unsigned.deploy_ref], None).await.unwrap();
    assert!(a.allowed, "{}", a.message);
    assert!(a.warnings.iter().any(|w| w.contains(&format!("#{id}")) && w.contains("INC-1 rollback")), "{:?}", a.warnings);
    assert!(!lab.admit("prod", &[&unsigned.deploy_ref], None).await.unwrap().allowed);
    // Every use is in the audit log, synchronously.
    let used = lab.store.audit_since(Timestamp::UNIX_EPOCH).unwrap().into_iter().filter(|r| r.exemption == Some(id)).count();
    assert_eq!(used, 1);
    lab.admit("hotfix", &[&unsigned.deploy_ref], None).await.unwrap();
    assert_eq!(lab.store.audit_since(Timestamp::UNIX_EPOCH).unwrap().into_iter().filter(|r| r.exemption == Some(id)).count(), 2);
    // Expired: ignored.
    clock.advance(SignedDuration::from_mins(61));
    assert!(!lab.admit("hotfix", &[&unsigned.deploy_ref], None).await.unwrap().allowed, "expired exemptions are ignored");
    // A digest exemption, then revoked.
    let now2 = clock.now();
    let id2 = lab
        .store
        .exemption_add(Exemption {
            id: 0,
            scope: Scope::Digest(unsigned.digest.clone()),
            reason: "INC-2".into(),
            created_by: "t".into(),
            created_at: now2,
            expires_at: now2.checked_add(SignedDuration::from_hours(2)).unwrap(),
            revoked: false,
        })
        .unwrap();
    lab.engine.refresh_exemptions_now();
    assert!(lab.admit("prod", &[&unsigned.deploy_ref], None).await.unwrap().allowed);
    assert!(!lab.admit("prod", &[&lab.scenario("unsigned").deploy_ref], None).await.unwrap().allowed, "another digest is not covered");
    lab.store.exemption_revoke(id2).unwrap();
    lab.engine.refresh_exemptions_now();
    assert!(!lab.admit("prod", &[&unsigned.deploy_ref], None).await.unwrap().allowed, "revoked");
    // From the exemptions file (a ConfigMap), hot-reloaded.
    let file = lab.dir.join("policy/exemptions.yaml");
    std::fs::write(
        &file,
        format!(
            "exemptions:\n- namespace: payments\n  reason: CHG-9 vendor outage\n  createdAt: {}\n  expiresAt: {}\n",
            now2,
            now2.checked_add(SignedDuration::from_hours(1)).unwrap()
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = lab.admit("payments", &[&unsigned.deploy_ref], None).await.unwrap();
        if a.allowed {
            assert!(a.warnings.iter().any(|w| w.contains("CHG-9")));
            break;
        }
        assert!(Instant::now() < deadline, "the exemptions file was not picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A malformed file keeps the previous list.
    std::fs::write(&file, "exemptions:\n- namespace: payments\n  reason: ''\n").unwrap();
    wait_for_reload_error(&lab, "exemptions").await;
    assert!(lab.admit("payments", &[&unsigned.deploy_ref], None).await.unwrap().allowed);
    assert!(metric(&metrics_text(&lab.engine), "trustmirror_admission_breakglass_uses", &["namespace=\"hotfix\""]) >= 2.0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_modes_report_and_metrics() {
    let (lab, _d) = start_lab(|_| {}).await;
    let good = lab.scenario("good").clone();
    let vendor = lab.scenario("vendor-key-signed").clone();
    let unsigned = lab.scenario("unsigned").clone();
    // A Deployment: initContainer and container, both by tag; both pinned by the mutating webhook.
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"template": {"spec": {"initContainers": [{"name": "tool", "image": vendor.tag_ref}], "containers": [{"name": "app", "image": good.tag_ref}]}}}});
    let m = lab.post("/mutate", &review::request_for("d1", "prod", &dep)).await.unwrap();
    let mut patched = dep.clone();
    review::apply_patch(&mut patched, m["patch"].as_str().expect("a patch")).unwrap();
    assert_eq!(patched["spec"]["template"]["spec"]["initContainers"][0]["image"], vendor.digest_ref);
    assert_eq!(patched["spec"]["template"]["spec"]["containers"][0]["image"], good.digest_ref);
    let v = lab.post("/validate", &review::request_for("d1", "prod", &patched)).await.unwrap();
    assert_eq!(v["allowed"], true, "{v}");
    assert_eq!(v["uid"], "d1");
    // A CronJob with an unsigned ephemeral... container: denied, naming the object.
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": unsigned.digest_ref}]}}}}}});
    let v = lab.post("/validate", &review::request_for("c1", "batch", &cj)).await.unwrap();
    assert_eq!(v["allowed"], false);
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(msg.contains("CronJob/nightly") && msg.contains("containers[job]") && msg.contains("not signed"), "{msg}");
    assert_eq!(v["status"]["code"], 403);
    // An unsigned tag is not rewritten.
    let m = lab.post("/mutate", &review::request_for("c2", "batch", &review::pod("p", "batch", &[&unsigned.tag_ref]))).await.unwrap();
    assert!(m["patch"].is_null(), "{m}");
    // DELETE is not our business; other kinds pass through.
    let mut del = review::request_for("x1", "prod", &review::pod("p", "prod", &[&unsigned.digest_ref]));
    del["request"]["operation"] = json!("DELETE");
    assert_eq!(lab.post("/validate", &del).await.unwrap()["allowed"], true);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    assert_eq!(lab.post("/validate", &review::request_for("x2", "prod", &cm)).await.unwrap()["allowed"], true);
    // Audit mode: allowed, silent, recorded, counted.
    let before = metric(&metrics_text(&lab.engine), "trustmirror_admission_violations_total", &["mode=\"audit\"", "namespace=\"team-a\""]);
    let a = lab.admit("team-a", &[&unsigned.digest_ref], Some("audit")).await.unwrap();
    assert!(a.allowed && a.warnings.is_empty(), "{a:?}");
    let after = metric(&metrics_text(&lab.engine), "trustmirror_admission_violations_total", &["mode=\"audit\"", "namespace=\"team-a\""]);
    assert_eq!(after - before, 5.0, "five properties fail for an unsigned image");
    lab.engine.flush_audit();
    let recs = lab.store.audit_since(Timestamp::UNIX_EPOCH).unwrap();
    let rep = trustmirror::admission::report(&recs, None);
    assert_eq!(rep.violations["myorg-production"]["team-a"]["signature"]["audit"], 1);
    assert_eq!(rep.violations["myorg-production"]["batch"]["signature"]["enforce"], 1);
    let text = metrics_text(&lab.engine);
    assert!(metric(&text, "trustmirror_admission_reviews_total", &["endpoint=\"validate\"", "verdict=\"denied\""]) >= 1.0);
    assert!(metric(&text, "trustmirror_admission_cache_lookups_total", &["result=\"hit\""]) >= 1.0);
    assert!(text.contains("trustmirror_admission_review_duration_seconds_bucket"));
    // The JSON audit log file has the same records.
    let lines = std::fs::read_to_string(lab.dir.join("audit.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), recs.len());
    assert!(lines.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_banned_list_reload_and_invalidate_the_cache() {
    let (lab, _d) = start_lab(|_| {}).await;
    let good = lab.scenario("good").digest_ref.clone();
    assert!(lab.admit("prod", &[&good], None).await.unwrap().allowed);
    assert!(lab.admit("prod", &[&good], None).await.unwrap().allowed, "cached");
    // The security team bans openssl 3.0.15 (the good image ships it): blocked at once.
    let banned = lab.dir.join("policy/banned.yaml");
    let mut text = std::fs::read_to_string(&banned).unwrap();
    text.push_str("- purl: pkg:deb/debian/openssl@3.0.15-1~deb12u1\n  reason: test ban\n");
    std::fs::write(&banned, text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = lab.admit("prod", &[&good], None).await.unwrap();
        if !a.allowed {
            assert!(a.message.contains("banned") && a.message.contains("openssl"), "{}", a.message);
            break;
        }
        assert!(Instant::now() < deadline, "the banned list was not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken policy file: the previous policy stays in force.
    let pf = lab.dir.join("policy/policy.yaml");
    let orig = std::fs::read_to_string(&pf).unwrap();
    std::fs::write(&pf, "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {images: [a], mode: loud}\n")
        .unwrap();
    wait_for_reload_error(&lab, "policy").await;
    assert!(!lab.admit("prod", &[&good], None).await.unwrap().allowed, "still the previous policy");
    // Per-namespace mode in the policy: dev only warns.
    std::fs::write(&pf, orig.replacen("  mode: enforce\n", "  mode: enforce\n  namespaces: {dev: warn}\n", 1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = lab.admit("dev", &[&good], None).await.unwrap();
        if a.allowed {
            assert!(a.warnings.iter().any(|w| w.contains("banned")), "{:?}", a.warnings);
            break;
        }
        assert!(Instant::now() < deadline, "the policy was not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!lab.admit("prod", &[&good], None).await.unwrap().allowed);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_material_changes_the_decision_without_waiting_for_the_cache() {
    let (lab, _d) = start_lab(|o| o.keep_testbed = true).await;
    let s = lab.scenario("unsigned").clone();
    let a = lab.admit("prod", &[&s.deploy_ref], None).await.unwrap();
    assert!(a.message.contains("signature:"), "{}", a.message);
    // CI signs it (late) with the right identity; the mirror ingests it.
    let tb = lab.testbed.as_ref().unwrap();
    let reg = tb.registry.as_ref().unwrap();
    let px = trustmirror::testbed::oci::Pusher::new(&reg.addr, reg.registry_auth());
    let signer = tb.stack.keyless(&trustmirror::testbed::scenarios::good_identity(), Timestamp::now());
    // as cosign v3 signs: a cosign/sign/v1 statement in a bundle, with an inclusion proof
    let st = trustmirror::testbed::cosign::statement(
        trustmirror::testbed::cosign::STATEMENT_V1,
        &format!("{}/myorg/unsigned", reg.addr),
        &s.digest,
        trustmirror::core::evidence::COSIGN_SIGN_V1,
        &json!({}),
    );
    let b = tb.stack.attest(&signer, &st, Timestamp::now());
    let m = s.digest.len(); // the manifest size only labels the referrer descriptor
    trustmirror::testbed::cosign::attach_bundle(
        &px,
        "myorg/unsigned",
        &s.digest,
        m,
        &b.bundle,
        Some(trustmirror::core::evidence::COSIGN_SIGN_V1),
    )
    .await
    .unwrap();
    lab.oci.ingest_reference(&s.digest_ref).await.unwrap();
    // the witness proves the new entry's checkpoint against its history (as serve does after a sync)
    assert_eq!(lab.tlog.prove_mirrored(&|_| true).await.1, 0);
    let a = lab.admit("prod", &[&s.deploy_ref], None).await.unwrap();
    assert!(!a.allowed, "still no provenance, SBOM, scan");
    assert!(!a.message.contains("] signature:"), "the new signature counts at once: {}", a.message);
    assert!(a.message.contains("] provenance:"), "{}", a.message);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_errors_and_change_nothing() {
    let (lab, _d) = start_lab(|o| {
        o.webhook_tune = |w| w.max_body = 64 * 1024;
    })
    .await;
    let post_raw = |body: Vec<u8>| {
        let c = lab.client.clone();
        let url = format!("{}/validate", lab.url);
        async move {
            let r = c.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let audit_before = lab.store.audit_since(Timestamp::UNIX_EPOCH).unwrap().len();
    let (st, body) = post_raw(b"{\"apiVersion\": ".to_vec()).await;
    assert_eq!(st, 400);
    assert!(body.contains("not an AdmissionReview"), "{body}");
    let (st, body) =
        post_raw(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}"#.to_vec()).await;
    assert_eq!(st, 400);
    assert!(body.contains("admissionReviewVersions"), "{body}");
    let (st, _) = post_raw(vec![b' '; 200 * 1024]).await;
    assert_eq!(st, 413, "oversized bodies are refused before parsing");
    // Nested garbage, deep JSON
    let deep = "[".repeat(100_000);
    let (st, _) = post_raw(deep.into_bytes()).await;
    assert!(st == 400 || st == 413);
    // A pod whose container has no image; a reference that does not parse; a bad mode.
    let mut bad = review::request_for("h1", "prod", &review::pod("p", "prod", &["x"]));
    bad["request"]["object"]["spec"]["containers"][0] = json!({"name": "c"});
    let v = lab.post("/validate", &bad).await.unwrap();
    assert_eq!(v["allowed"], false);
    assert!(v["status"]["message"].as_str().unwrap().contains("has no image"), "{v}");
    let v = lab.post("/validate", &review::request_for("h2", "prod", &review::pod("p", "prod", &["UPPER/Case:tag@@"]))).await.unwrap();
    assert_eq!(v["allowed"], false);
    assert!(v["status"]["message"].as_str().unwrap().contains("not a valid image reference"), "{v}");
    let r = lab
        .client
        .post(format!("{}/validate?mode=loud", lab.url))
        .json(&review::request_for("h3", "prod", &review::pod("p", "prod", &["a"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Only the decided image reached the audit log (malformed requests are not decisions).
    lab.engine.flush_audit();
    assert_eq!(lab.store.audit_since(Timestamp::UNIX_EPOCH).unwrap().len(), audit_before + 1, "only the one image decision");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_fail_closed_or_open_as_configured() {
    // No usable trust root: every signed image is refused with a message naming what is missing.
    let (lab, _d) = start_lab(|o| {
        o.tune = |e| e.trust.explicit = Some("/nonexistent/trusted_root.json".into());
    })
    .await;
    let a = lab.admit("prod", &[&lab.scenario("good").deploy_ref], None).await.unwrap();
    assert!(!a.allowed);
    assert!(a.message.contains("no trusted root named \"default\""), "{}", a.message);
    let r = lab.client.get(format!("{}/readyz", lab.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "not ready without a trust root");
    lab.shutdown().await;

    // A decision that cannot finish in time: closed denies, open admits with a warning.
    for open in [false, true] {
        let (lab, _d) = start_lab(move |o| {
            // no slot to decide in: every review is answered at once, per the failure mode
            o.webhook_tune = |w| w.max_concurrency = 0;
            if open {
                o.tune = |e| e.fail_open = true;
            }
        })
        .await;
        let v = lab
            .post("/validate", &review::request_for("t1", "prod", &review::pod("p", "prod", &[&lab.scenario("good").deploy_ref])))
            .await
            .unwrap();
        assert_eq!(v["allowed"], open, "{v}");
        let text = if open { v["warnings"][0].as_str().unwrap().to_string() } else { v["status"]["message"].as_str().unwrap().to_string() };
        assert!(text.contains("at its limit of 0 reviews in flight"), "{text}");
        assert_eq!(metric(&metrics_text(&lab.engine), "trustmirror_admission_failures", &["reason=\"overloaded\""]), 1.0);
        lab.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_certificate_files_are_reloaded_without_restart() {
    init();
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let ca_a = trustmirror::admission::tls::ensure_generated(&a, &["127.0.0.1".into()]).unwrap();
    let ca_b = trustmirror::admission::tls::ensure_generated(&b, &["127.0.0.1".into()]).unwrap();
    let live = d.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    for f in ["tls.crt", "tls.key"] {
        std::fs::copy(a.join(f), live.join(f)).unwrap();
    }
    let store = Arc::new(trustmirror::store::Store::open(d.path().join("s.redb")).unwrap());
    let pol = d.path().join("p.yaml");
    std::fs::write(&pol, "apiVersion: trustmirror.dev/v1alpha1\nkind: PolicyDefaults\nmetadata: {name: d}\nspec: {noMatch: enforce}\n")
        .unwrap();
    let engine = Arc::new(
        Engine::new(
            store,
            Arc::new(trustmirror::core::clock::SystemClock),
            EngineOptions { policy_files: vec![pol], ..Default::default() },
            None,
        )
        .unwrap(),
    );
    let mut o = trustmirror::admission::server::WebhookOptions::new(
        "127.0.0.1:0",
        trustmirror::admission::tls::TlsSource::Files { cert: live.join("tls.crt"), key: live.join("tls.key") },
    );
    o.poll = Duration::from_millis(300);
    let w = trustmirror::admission::server::start(engine, &o).await.unwrap();
    let client = |ca: &str| {
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()).no_proxy().build().unwrap()
    };
    let url = format!("https://127.0.0.1:{}/healthz", w.addr.port());
    assert!(client(&ca_a).get(&url).send().await.is_ok());
    assert!(client(&ca_b).get(&url).send().await.is_err(), "CA b does not yet vouch for the server");
    // Rotate: key then certificate, as a Secret update does.
    std::fs::copy(b.join("tls.key"), live.join("tls.key.new")).unwrap();
    std::fs::copy(b.join("tls.crt"), live.join("tls.crt.new")).unwrap();
    std::fs::rename(live.join("tls.key.new"), live.join("tls.key")).unwrap();
    std::fs::rename(live.join("tls.crt.new"), live.join("tls.crt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client(&ca_b).get(&url).send().await.is_err() {
        assert!(Instant::now() < deadline, "the new certificate was not picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(client(&ca_a).get(&url).send().await.is_err(), "the old certificate is no longer served");
    w.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_image_policy_with_rego_and_m_of_n_from_the_same_store() {
    let (lab, d) = start_lab(|_| {}).await;
    let good = lab.scenario("good").digest_ref.clone();
    let cip = |rego_version: &str, threshold: usize| {
        format!(
            r#"apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {{name: cip}}
spec:
  images: [{{glob: "{reg}/myorg/**"}}]
  threshold: {threshold}
  authorities:
  - name: main
    keyless:
      identities: [{{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "https://github\\.com/myorg/app/.*@refs/heads/main"}}]
    attestations:
    - name: spdx
      predicateType: spdxjson
      policy:
        type: rego
        data: |
          package sigstore
          default isCompliant = false
          isCompliant {{ input.predicate.spdxVersion == "{rego_version}" }}
  - name: vendor
    keyless:
      identities: [{{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "https://github\\.com/vendor/.*"}}]
"#,
            reg = lab.registry
        )
    };
    let check = |yaml: String| {
        let p = d.path().join(format!("cip-{}.yaml", rand::random::<u32>()));
        std::fs::write(&p, yaml).unwrap();
        let e = Engine::new(
            lab.store.clone(),
            Arc::new(trustmirror::core::clock::SystemClock),
            EngineOptions { policy_files: vec![p], ..Default::default() },
            None,
        )
        .unwrap();
        e.decide_image("prod", &good, None)
    };
    let o = check(cip("SPDX-2.3", 1));
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    let o = check(cip("SPDX-2.2", 1));
    assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
    assert!(o.violations[0].message.contains("satisfies the policy"), "{:?}", o.violations);
    let o = check(cip("SPDX-2.3", 2));
    assert!(o.violations.iter().any(|v| v.message.contains("1 of 2")), "2-of-2 with one signer: {:?}", o.violations);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_under_a_split_view_alarm_blocks_admission_until_resolved() {
    let (lab, _d) = start_lab(|o| o.keep_testbed = true).await;
    let good = lab.scenario("good").digest_ref.clone();
    assert!(lab.admit("prod", &[&good], None).await.unwrap().allowed, "witnessed and proven");
    // the log forks: the witness sees two roots for one size
    let tb = lab.testbed.as_ref().unwrap();
    reqwest::Client::new().post(format!("{}/testbed/rekor/fork", tb.base_url())).send().await.unwrap();
    tb.stack.rekor.lock().unwrap().serve_fork = false;
    tb.stack.rekor.lock().unwrap().append(&json!({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {"late": true}}), 1_700_000_000);
    assert!(lab.tlog.sync().await[0].error.is_none());
    tb.stack.rekor.lock().unwrap().serve_fork = true;
    assert_eq!(lab.tlog.sync().await[0].error.as_ref().unwrap().kind, trustmirror::core::tlog::TlogErrorKind::SplitView);
    // every image whose bundles cite that log is now refused, naming the alarm (cache bypassed)
    let a = lab.admit("prod", &[&good], None).await.unwrap();
    assert!(!a.allowed);
    assert!(a.message.contains("] transparency: log") && a.message.contains("untrusted"), "{}", a.message);
    // an operator investigates and resolves it: admitted again
    let log = lab.witnessed[0].0.clone();
    lab.store
        .tlog_resolve(
            &log,
            trustmirror::store::tlog::Resolution { at: Timestamp::now(), by: "sec".into(), reason: "fork was a test".into() },
            false,
        )
        .unwrap();
    assert!(lab.admit("prod", &[&good], None).await.unwrap().allowed);
    lab.shutdown().await;
}

/// Wait until the engine has tried (and failed) to reload `what` — the observable event a
/// malformed file causes — so that what follows is decided after the reload attempt.
async fn wait_for_reload_error(lab: &Lab, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let label = format!("what=\"{what}\"");
    while metric(&metrics_text(&lab.engine), "trustmirror_admission_policy_reloads", &[&label, "result=\"error\""]) < 1.0 {
        assert!(Instant::now() < deadline, "the malformed {what} file was never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API server speaks HTTP/2 when the webhook offers it (Go's client negotiates h2 through
/// ALPN), HTTP/1.1 otherwise: both are answered, with the same verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_over_http2_and_http11() {
    let (lab, _d) = start_lab(|_| {}).await;
    let good = lab.scenario("good").digest_ref.clone();
    let pod = trustmirror::admission::review::pod("p", "prod", &[&good]);
    let body = trustmirror::admission::review::request_for("u-h2", "prod", &pod);
    let ca = reqwest::Certificate::from_pem(lab.ca_pem.as_bytes()).unwrap();
    for (h1, version) in [(false, reqwest::Version::HTTP_2), (true, reqwest::Version::HTTP_11)] {
        let mut b = reqwest::Client::builder().add_root_certificate(ca.clone()).no_proxy();
        if h1 {
            b = b.http1_only();
        }
        let r = b.build().unwrap().post(format!("{}/validate", lab.url)).json(&body).send().await.unwrap();
        assert_eq!(r.version(), version);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["response"]["allowed"], true, "{v}");
    }
    lab.shutdown().await;
}
