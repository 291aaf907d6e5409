//! The lab: the testbed mirrored into a fresh store behind a running admission webhook — what
//! `trustmirror demo`, the admission tests and the admission benchmark stand on.
//!
//! [`Lab::up`] starts the testbed (TUF, Fulcio, CT log, Rekor, TSA, registry with the scenario
//! images), mirrors its TUF repository and every image's signatures and attestations, witnesses
//! its log, **stops the testbed** (unless asked to keep it), and serves the webhook over HTTPS on
//! loopback. [`replay`] sends each scenario as an AdmissionReview through `/mutate` then
//! `/validate`, as the API server would, and compares the verdict with the expected one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::admission::review::{self, apply_patch};
use crate::admission::server::{Webhook, WebhookOptions};
use crate::admission::tls::TlsSource;
use crate::admission::{Engine, EngineOptions};
use crate::core::clock::{Clock, SystemClock};
use crate::mirror::oci::{OciMirror, OciMirrorConfig, RegistryOptions, SyncReport};
use crate::store::Store;
use crate::store::admission::{Exemption, Scope};
use crate::testbed::scenarios::{SCENARIOS, Scenario};
use crate::testbed::{Testbed, TestbedOptions};
use crate::trust::{TrustConfig, TrustSource};

#[derive(Clone)]
pub struct LabOptions {
    pub dir: PathBuf,
    /// Keep the testbed (registry, TUF, Rekor) running after mirroring.
    pub keep_testbed: bool,
    /// Give the engine the mirror's on-demand queue.
    pub ingest: bool,
    /// Engine options on top of the demo policy.
    pub tune: fn(&mut EngineOptions),
    pub webhook_tune: fn(&mut WebhookOptions),
    pub clock: Option<Arc<dyn Clock>>,
}

impl LabOptions {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self { dir: dir.as_ref().to_path_buf(), keep_testbed: false, ingest: false, tune: |_| {}, webhook_tune: |_| {}, clock: None }
    }
}

/// A mirrored testbed behind a running webhook.
pub struct Lab {
    pub dir: PathBuf,
    pub store: Arc<Store>,
    pub engine: Arc<Engine>,
    pub webhook: Option<Webhook>,
    pub url: String,
    pub ca_pem: String,
    pub client: reqwest::Client,
    pub scenarios: Vec<Scenario>,
    pub registry: String,
    pub testbed: Option<Testbed>,
    pub sync: SyncReport,
    pub testbed_time: Duration,
    pub mirror_time: Duration,
    pub oci: Arc<OciMirror>,
    pub tlog: Arc<crate::mirror::tlog_mirror::TlogMirror>,
    /// Witnessed log sizes, and (proven, not proven) bundle checkpoints.
    pub witnessed: Vec<(String, Option<u64>)>,
    pub proven: (usize, usize),
}

/// The demo policy with the registry address and vendor key filled in.
pub fn demo_policy(registry: &str, vendor_pem: &str) -> String {
    let key: String = vendor_pem.lines().map(|l| format!("        {l}\n")).collect();
    crate::bundles::DEMO_POLICY.replace("${REGISTRY}", registry).replace("${VENDOR_KEY}\n", &key)
}

impl Lab {
    pub async fn up(o: LabOptions) -> anyhow::Result<Self> {
        let t0 = Instant::now();
        std::fs::create_dir_all(&o.dir)?;
        let tb = Testbed::up(TestbedOptions::new(o.dir.join("testbed"))).await.context("starting the testbed")?;
        let testbed_time = t0.elapsed();
        let registry = tb.env.get("REGISTRY").cloned().context("the testbed has no registry")?;

        let t1 = Instant::now();
        let store = Arc::new(Store::open(o.dir.join("store.redb"))?);
        let clock: Arc<dyn Clock> = o.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        let root = std::fs::read(&tb.env["TUF_ROOT"])?;
        let tuf = crate::daemon::tuf_mirror(
            store.clone(),
            "default",
            &tb.env["TUF_URL"],
            Some(root),
            None,
            Duration::from_secs(3600),
            clock.clone(),
        )?;
        tuf.refresh().await.map_err(|e| anyhow!("mirroring the testbed's TUF repository: {e}"))?;
        let vendor_pem = std::fs::read_to_string(&tb.env["VENDOR_COSIGN_PUB"])?;
        let cfg = OciMirrorConfig {
            images: vec![format!("{registry}/**")],
            registry: RegistryOptions {
                insecure_hosts: vec![registry.clone()],
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
            keys: crate::trust::keys::load_public_keys(&[PathBuf::from(&tb.env["VENDOR_COSIGN_PUB"])])?,
            retries: 1,
            op_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let trust = Arc::new(TrustSource::new(store.clone(), TrustConfig::default()));
        let oci = Arc::new(OciMirror::new(store.clone(), cfg, clock.clone(), trust.clone()));
        let sync = oci.sync().await;
        if !sync.errors.is_empty() {
            return Err(anyhow!("mirroring the testbed registry: {:?}", sync.errors));
        }
        // witness the log and prove every mirrored bundle's checkpoint against the history
        let w = Arc::new(crate::trust::keys::load_witness(&o.dir.join("witness.key"), "trustmirror.demo/witness")?);
        let witness_vkey = w.vkey();
        let tlog = Arc::new(crate::mirror::tlog_mirror::TlogMirror::new(store.clone(), clock.clone(), trust.clone(), w));
        let witnessed = tlog.sync().await;
        if let Some(e) = witnessed.iter().find_map(|r| r.error.clone()) {
            return Err(anyhow!("witnessing the testbed's log: {e}"));
        }
        let proven = tlog.prove_mirrored(&|_| true).await;
        let mirror_time = t1.elapsed();

        let pdir = o.dir.join("policy");
        std::fs::create_dir_all(&pdir)?;
        std::fs::write(pdir.join("policy.yaml"), demo_policy(&registry, &vendor_pem).replace("${WITNESS_VKEY}", &witness_vkey))?;
        std::fs::write(pdir.join("banned.yaml"), crate::bundles::DEMO_BANNED)?;
        let mut eo = EngineOptions {
            policy_files: vec![pdir.join("policy.yaml")],
            banned_file: Some(pdir.join("banned.yaml")),
            exemptions_file: Some(pdir.join("exemptions.yaml")),
            audit_file: Some(o.dir.join("audit.jsonl")),
            ..Default::default()
        };
        (o.tune)(&mut eo);
        let ingest = o.ingest.then(|| crate::mirror::oci::spawn_queue(oci.clone()));
        let engine = Arc::new(Engine::new(store.clone(), clock, eo, ingest)?);
        let scenarios = tb.scenarios.clone();
        let testbed = if o.keep_testbed {
            Some(tb)
        } else {
            tb.shutdown().await;
            None
        };
        let mut wo = WebhookOptions::new(
            "127.0.0.1:0",
            TlsSource::Generate { dir: o.dir.join("tls"), names: vec!["localhost".into(), "127.0.0.1".into()] },
        );
        wo.poll = Duration::from_millis(500);
        (o.webhook_tune)(&mut wo);
        let webhook = crate::admission::server::start(engine.clone(), &wo).await?;
        let ca_pem = webhook.ca_pem.clone().expect("generated");
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?;
        let url = format!("https://127.0.0.1:{}", webhook.addr.port());
        Ok(Self {
            dir: o.dir,
            store,
            engine,
            webhook: Some(webhook),
            url,
            ca_pem,
            client,
            scenarios,
            registry,
            testbed,
            sync,
            testbed_time,
            mirror_time,
            oci,
            tlog,
            witnessed: witnessed.iter().map(|r| (r.log.clone(), r.size)).collect(),
            proven,
        })
    }

    pub fn scenario(&self, name: &str) -> &Scenario {
        self.scenarios.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no scenario {name}"))
    }

    /// POST an AdmissionReview; returns the `response` object.
    pub async fn post(&self, path: &str, review: &Value) -> anyhow::Result<Value> {
        let r = self.client.post(format!("{}{path}", self.url)).json(review).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            return Err(anyhow!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        let v: Value = serde_json::from_slice(&body)?;
        Ok(v["response"].clone())
    }

    /// What the API server does with a Pod: `/mutate`, apply the patch, `/validate`.
    pub async fn admit(&self, namespace: &str, images: &[&str], mode: Option<&str>) -> anyhow::Result<Admitted> {
        let mut pod = review::pod(&format!("demo-{}", rand::random::<u32>()), namespace, images);
        let uid = format!("{:032x}", rand::random::<u128>());
        let q = mode.map(|m| format!("?mode={m}")).unwrap_or_default();
        let t0 = Instant::now();
        let m = self.post(&format!("/mutate{q}"), &review::request_for(&uid, namespace, &pod)).await?;
        let mut mutated = vec![];
        if let Some(p) = m["patch"].as_str() {
            apply_patch(&mut pod, p).map_err(|e| anyhow!(e))?;
            mutated = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["image"].as_str().map(str::to_string))
                .collect();
        }
        let v = self.post(&format!("/validate{q}"), &review::request_for(&uid, namespace, &pod)).await?;
        Ok(Admitted {
            allowed: v["allowed"].as_bool().unwrap_or(false),
            message: v["status"]["message"].as_str().unwrap_or_default().to_string(),
            warnings: v["warnings"].as_array().into_iter().flatten().filter_map(|w| w.as_str().map(str::to_string)).collect(),
            mutated,
            elapsed: t0.elapsed(),
        })
    }

    /// A break-glass exemption for a digest, as `trustmirror breakglass create` makes it.
    pub fn breakglass(&self, digest: &str, reason: &str, ttl: SignedDuration) -> anyhow::Result<u64> {
        let now = Timestamp::now();
        let id = self.store.exemption_add(Exemption {
            id: 0,
            scope: Scope::Digest(digest.into()),
            reason: reason.into(),
            created_by: "on-call (demo)".into(),
            created_at: now,
            expires_at: now.checked_add(ttl)?,
            revoked: false,
        })?;
        self.engine.refresh_exemptions_now();
        Ok(id)
    }

    pub async fn shutdown(mut self) {
        if let Some(w) = self.webhook.take() {
            let _ = w.shutdown().await;
        }
        if let Some(t) = self.testbed.take() {
            t.shutdown().await;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admitted {
    pub allowed: bool,
    pub message: String,
    pub warnings: Vec<String>,
    /// Container images after the mutating webhook's patch (empty: no patch).
    pub mutated: Vec<String>,
    pub elapsed: Duration,
}

/// One row of the demo table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub scenario: String,
    pub expected: String,
    pub verdict: String,
    pub reason: String,
    pub ok: bool,
    pub ms: f64,
}

/// The property a denial must name, for a scenario's `reason`.
fn expected_property(reason: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match reason {
        "signature" => ("signature", None),
        "identity" => ("signature", Some("no signature from")),
        "vulnerability" => ("vulnerabilities", Some("CVE-")),
        "sbom" => ("sbom", Some("banned")),
        "sbom-missing" => ("sbom", Some("missing")),
        "provenance" => ("provenance", None),
        "base-image" => ("base-image", None),
        _ => return None,
    })
}

fn first_reason(message: &str) -> String {
    // "trustmirror denied Pod/x in ns: containers[c0] image: [policy] property: message; …"
    let after = message.split_once(": [").map(|(_, r)| format!("[{r}")).unwrap_or_else(|| message.to_string());
    let one = after.split(" | ").next().unwrap_or_default();
    let one = one.split_once("] ").map(|(_, r)| r).unwrap_or(one);
    one.to_string()
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// Replay every scenario; returns the rows.
pub async fn replay(lab: &Lab) -> anyhow::Result<Vec<Row>> {
    let mut rows = vec![];
    let ns = "prod";
    for name in SCENARIOS.iter().copied() {
        let s = lab.scenario(name).clone();
        let a = lab.admit(ns, &[&s.deploy_ref], None).await?;
        let ms = a.elapsed.as_secs_f64() * 1e3;
        let (expected, ok, reason) = match s.expected.as_str() {
            "allow" => {
                let pinned = a.mutated.first().is_some_and(|m| m.ends_with(&s.digest));
                let want_mutation = s.reason == "mutate";
                let ok = a.allowed && (!want_mutation || pinned);
                let reason = if !a.allowed {
                    first_reason(&a.message)
                } else if pinned {
                    format!("tag rewritten to {}", clip(&a.mutated[0][a.mutated[0].rfind('@').unwrap_or(0)..], 20))
                } else {
                    "every check passed".into()
                };
                (if want_mutation { "allowed, pinned to digest" } else { "allowed" }.to_string(), ok, reason)
            }
            _ => {
                let (prop, needle) = expected_property(&s.reason).unwrap_or(("?", None));
                let named = a.message.contains(&format!("] {prop}:")) && needle.is_none_or(|n| a.message.contains(n));
                (format!("denied: {prop}"), !a.allowed && named, if a.allowed { "admitted".into() } else { first_reason(&a.message) })
            }
        };
        rows.push(Row { scenario: name.into(), expected, verdict: verdict(&a), reason: clip(&reason, 92), ok, ms });

        if s.expected == "deny-unless-breakglass" {
            let id =
                lab.breakglass(&s.digest, "INC-4711 emergency rollback of myorg/app to v1.0.9-hotfix", SignedDuration::from_hours(2))?;
            let a = lab.admit(ns, &[&s.deploy_ref], None).await?;
            let used = a.warnings.iter().any(|w| w.contains(&format!("break-glass exemption #{id}")));
            let audited = lab
                .store
                .audit_since(Timestamp::UNIX_EPOCH)?
                .iter()
                .any(|r| r.exemption == Some(id) && r.digest.as_deref() == Some(s.digest.as_str()));
            rows.push(Row {
                scenario: "rollback-unsigned + break-glass".into(),
                expected: "allowed, audit-logged".into(),
                verdict: verdict(&a),
                reason: clip(
                    &format!("exemption #{id} (2 h, reason given); use recorded in the audit log: {}", if audited { "yes" } else { "NO" }),
                    92,
                ),
                ok: a.allowed && used && audited,
                ms: a.elapsed.as_secs_f64() * 1e3,
            });
        }
    }
    // Rolling out: the same unsigned image in a namespace still in warn mode.
    let s = lab.scenario("unsigned").clone();
    let a = lab.admit("staging", &[&s.deploy_ref], Some("warn")).await?;
    rows.push(Row {
        scenario: "unsigned, warn-mode namespace".into(),
        expected: "allowed with warning".into(),
        verdict: verdict(&a),
        reason: clip(
            a.warnings
                .first()
                .map(|w| w.split_once(": [").and_then(|(_, r)| r.split_once("] ")).map(|x| x.1).unwrap_or(w))
                .unwrap_or("no warning"),
            92,
        ),
        ok: a.allowed && a.warnings.iter().any(|w| w.contains("signature")),
        ms: a.elapsed.as_secs_f64() * 1e3,
    });
    Ok(rows)
}

pub fn verdict(a: &Admitted) -> String {
    match (a.allowed, a.warnings.is_empty(), a.mutated.is_empty()) {
        (false, _, _) => "DENIED".into(),
        (true, true, true) => "allowed".into(),
        (true, true, false) => "allowed (mutated)".into(),
        (true, false, _) => "allowed + warning".into(),
    }
}
