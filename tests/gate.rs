//! The deploy gate on the testbed: the same verdicts from a store and straight from the registry,
//! the failing property named for each bad scenario, JUnit a CI system can read, and signed
//! verification summaries — checked by openssl over the DSSE PAE, pushed to the registry,
//! mirrored like any attestation, and honoured by admission only from the named verifier and
//! only while fresh.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::SignedDuration;
use serde_json::Value;
use trustmirror::admission::{Endpoint, Engine, EngineOptions, review};
use trustmirror::core::clock::{ManualClock, SystemClock};
use trustmirror::gate::{Gate, GateOptions, Verdict};
use trustmirror::testbed::lab::{Lab, LabOptions};

/// The demo policy without its witnessed-log rule: the registry mode reads no witness history
/// (a gate that must check transparency runs with --store).
fn gate_policy(lab: &Lab, dir: &Path) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(lab.dir.join("policy/policy.yaml")).unwrap();
    let start = text.find("  # every log checkpoint").unwrap();
    let end = text.find("---\n# Third-party").unwrap();
    let p = dir.join("gate-policy.yaml");
    std::fs::write(&p, format!("{}{}", &text[..start], &text[end..])).unwrap();
    (p, lab.dir.join("policy/banned.yaml"))
}

fn gate_cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_trustmirror")).arg("gate").args(args).env("TRUSTMIRROR_LOG", "warn").output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

async fn lab(dir: &Path) -> Lab {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut o = LabOptions::new(dir.join("lab"));
    o.keep_testbed = true;
    Lab::up(o).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_registry_modes_agree_and_name_the_failing_property() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(dir.path()).await;
    let (policy, banned) = gate_policy(&lab, dir.path());
    let env = lab.testbed.as_ref().unwrap().env.clone();
    let images: Vec<String> = lab.scenarios.iter().map(|s| s.digest_ref.clone()).collect();

    // store mode, in-process over the lab's store
    let o = GateOptions {
        policies: vec![policy.clone()],
        banned: Some(banned.clone()),
        evidence: trustmirror::gate::Evidence::Store(lab.dir.join("store.redb")),
        namespace: "prod".into(),
    };
    let g = Gate::over_store(lab.store.clone(), &o, Arc::new(SystemClock)).unwrap();
    let mut from_store = std::collections::BTreeMap::new();
    for i in &images {
        from_store.insert(i.clone(), g.decide(i).await);
    }

    // registry mode: the binary alone, a trusted root and the registry
    let mut args: Vec<String> = vec![
        "--policy".into(),
        policy.display().to_string(),
        "--banned".into(),
        banned.display().to_string(),
        "--namespace".into(),
        "prod".into(),
        "--trusted-root".into(),
        env["TRUSTED_ROOT"].clone(),
        "--insecure-registry".into(),
        lab.registry.clone(),
        "--output".into(),
        "json".into(),
    ];
    args.extend(images.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = gate_cli(&refs);
    assert_eq!(code, 1, "some scenarios fail: {err}");
    let from_registry: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(from_registry.len(), images.len());
    for r in &from_registry {
        let img = r["image"].as_str().unwrap();
        let s = &from_store[img];
        let sv = serde_json::to_value(s.verdict).unwrap();
        assert_eq!(r["verdict"], sv, "{img}: registry {r} vs store {s:?}");
        let props = |v: &Value| -> std::collections::BTreeSet<String> {
            v["violations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["mode"] == "enforce")
                .map(|x| x["property"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(props(r), props(&serde_json::to_value(s).unwrap()), "{img}: the same properties fail");
    }
    let verdict = |name: &str| from_store[&lab.scenario(name).digest_ref].clone();
    assert_eq!(verdict("good").verdict, Verdict::Pass, "{:?}", verdict("good"));
    assert_eq!(verdict("vendor-key-signed").verdict, Verdict::Pass);
    for (name, property) in [
        ("unsigned", "signature"),
        ("wrong-workflow-fork", "signature"),
        ("critical-cve", "vulnerabilities"),
        ("banned-package", "sbom"),
        ("slsa-level-1", "provenance"),
    ] {
        let d = verdict(name);
        assert_eq!(d.verdict, Verdict::Fail, "{name}");
        assert!(d.violations.iter().any(|v| v.property.as_str() == property), "{name}: {property} named in {:?}", d.violations);
    }

    // a tag is decided as the digest it resolved to
    let good = lab.scenario("good").clone();
    let (code, out, err) = gate_cli(&[
        "--policy",
        policy.to_str().unwrap(),
        "--banned",
        banned.to_str().unwrap(),
        "--trusted-root",
        &env["TRUSTED_ROOT"],
        "--insecure-registry",
        &lab.registry,
        "--output",
        "json",
        &good.tag_ref,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["decided"], good.digest_ref);

    // JUnit that an XML parser reads: one case per image, the failure naming the property
    let (code, out, _) = gate_cli(&[
        "--policy",
        policy.to_str().unwrap(),
        "--banned",
        banned.to_str().unwrap(),
        "--trusted-root",
        &env["TRUSTED_ROOT"],
        "--insecure-registry",
        &lab.registry,
        "--output",
        "junit",
        &good.digest_ref,
        &lab.scenario("unsigned").digest_ref,
    ]);
    assert_eq!(code, 1);
    let x = dir.path().join("junit.xml");
    std::fs::write(&x, &out).unwrap();
    let py = Command::new("python3")
        .arg("-c")
        .arg("import sys, xml.etree.ElementTree as E; s=E.parse(sys.argv[1]).getroot()[0]; print(s.get('tests'), s.get('failures'), [f.get('message').split(', ')[0] for f in s.iter('failure')])")
        .arg(&x)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "2 1 ['signature']", "{out}\n{}", String::from_utf8_lossy(&py.stderr));

    // the images of a manifest set, as admission extracts them (a Deployment's pod template, a
    // CronJob's, init containers), each once
    let m = dir.path().join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("app.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec:\n  selector: {{matchLabels: {{a: b}}}}\n  template:\n    metadata: {{labels: {{a: b}}}}\n    spec:\n      initContainers: [{{name: init, image: \"{good}\"}}]\n      containers: [{{name: app, image: \"{good}\"}}]\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: job}}\nspec:\n  schedule: \"@daily\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: j, image: \"{bad}\"}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {{a: b}}\n",
            good = good.digest_ref,
            bad = lab.scenario("unsigned").digest_ref
        ),
    )
    .unwrap();
    let (code, out, err) = gate_cli(&[
        "--policy",
        policy.to_str().unwrap(),
        "--banned",
        banned.to_str().unwrap(),
        "--trusted-root",
        &env["TRUSTED_ROOT"],
        "--insecure-registry",
        &lab.registry,
        "--output",
        "json",
        "--manifests",
        m.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    let got: Vec<(&str, &str)> = v.iter().map(|d| (d["image"].as_str().unwrap(), d["verdict"].as_str().unwrap())).collect();
    assert_eq!(got, vec![(good.digest_ref.as_str(), "pass"), (lab.scenario("unsigned").digest_ref.as_str(), "fail")]);

    // exit codes: 3 when an image cannot be decided, 2 for configuration errors
    let (code, _, err) = gate_cli(&[
        "--policy",
        policy.to_str().unwrap(),
        "--trusted-root",
        &env["TRUSTED_ROOT"],
        "127.0.0.1:1/nothing/here@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = gate_cli(&["--policy", "/no/such/policy.yaml", "--trusted-root", &env["TRUSTED_ROOT"], &good.digest_ref]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = gate_cli(&["--policy", policy.to_str().unwrap(), &good.digest_ref]);
    assert_eq!(code, 2, "neither a store nor a trusted root: {err}");
    lab.shutdown().await;
}

/// A PKCS#8 P-256 key and its public key (PEM), made by openssl.
fn openssl_key(dir: &Path) -> (PathBuf, PathBuf) {
    let k = dir.join("gate.key");
    let p = dir.join("gate.pub");
    let o = Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
        .arg(&k)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&k).arg("-out").arg(&p).output().unwrap();
    assert!(o.status.success());
    (k, p)
}

fn vsa_policy(lab: &Lab, verifier_pem: &str, max_age: &str) -> String {
    let key: String = verifier_pem.lines().map(|l| format!("          {l}\n")).collect();
    // an authority nobody satisfies: only the summary can admit the image
    format!(
        "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: by-gate}}\nspec:\n  images: [\"{}/myorg/**\"]\n  authorities:\n  - name: nobody\n    keyless:\n      identities: [{{issuer: https://nobody.example, subject: nobody@example.com}}]\n  sbom: {{required: true}}\n  vsa:\n    verifiers:\n    - name: ci-gate\n      key:\n        data: |\n{key}    maxAge: {max_age}\n",
        lab.registry
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_summaries_verify_independently_travel_with_the_image_and_admit_when_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(dir.path()).await;
    let (policy, banned) = gate_policy(&lab, dir.path());
    let env = lab.testbed.as_ref().unwrap().env.clone();
    let good = lab.scenario("good").clone();
    let (key, public) = openssl_key(dir.path());
    let vsa = dir.path().join("vsa.jsonl");

    // without a key there is no summary
    let (code, _, err) = gate_cli(&[
        "--policy",
        policy.to_str().unwrap(),
        "--trusted-root",
        &env["TRUSTED_ROOT"],
        "--vsa-out",
        vsa.to_str().unwrap(),
        &good.digest_ref,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!vsa.exists());

    let (code, out, err) = gate_cli(&[
        "--policy",
        policy.to_str().unwrap(),
        "--banned",
        banned.to_str().unwrap(),
        "--trusted-root",
        &env["TRUSTED_ROOT"],
        "--insecure-registry",
        &lab.registry,
        "--signing-key",
        key.to_str().unwrap(),
        "--vsa-out",
        vsa.to_str().unwrap(),
        "--vsa-push",
        &good.digest_ref,
        &lab.scenario("unsigned").digest_ref,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<Value> = std::fs::read_to_string(&vsa).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "a summary for the passing image only");
    let b = &lines[0];
    let payload = B64.decode(b["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    let st: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["predicateType"], "https://slsa.dev/verification_summary/v1");
    assert_eq!(st["subject"][0]["digest"]["sha256"], good.digest.trim_start_matches("sha256:"));
    assert_eq!(st["predicate"]["verificationResult"], "PASSED");
    assert_eq!(st["predicate"]["verifiedLevels"], serde_json::json!(["SLSA_BUILD_LEVEL_3"]));
    assert!(!st["predicate"]["inputAttestations"].as_array().unwrap().is_empty(), "{st}");

    // openssl verifies the signature over the DSSE pre-authentication encoding
    let pae = [
        format!("DSSEv1 {} application/vnd.in-toto+json {} ", "application/vnd.in-toto+json".len(), payload.len()).into_bytes(),
        payload.clone(),
    ]
    .concat();
    std::fs::write(dir.path().join("pae.bin"), &pae).unwrap();
    std::fs::write(dir.path().join("sig.der"), B64.decode(b["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap()).unwrap()).unwrap();
    let o = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(dir.path().join("sig.der"))
        .arg(dir.path().join("pae.bin"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "Verified OK", "{}", String::from_utf8_lossy(&o.stderr));

    // pushed: the mirror picks it up with the image's other material
    lab.oci.ingest_reference(&good.digest_ref).await.unwrap();
    let repo = good.digest_ref.split('@').next().unwrap().to_string();
    let rec = lab.store.oci_material(&repo, &good.digest).unwrap().unwrap();
    assert!(
        rec.items.iter().any(|i| i.source.starts_with("referrer") && i.evidence.is_none()),
        "the summary is mirrored (for admission to verify with the verifier key)"
    );

    // admission admits by the summary alone when the policy names the verifier...
    let pem = std::fs::read_to_string(&public).unwrap();
    let pfile = dir.path().join("vsa-policy.yaml");
    std::fs::write(&pfile, vsa_policy(&lab, &pem, "1h")).unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let engine = Engine::new(
        lab.store.clone(),
        clock.clone(),
        EngineOptions { policy_files: vec![pfile.clone()], audit_file: Some(dir.path().join("audit.jsonl")), ..Default::default() },
        None,
    )
    .unwrap();
    let o = engine.decide_image("prod", &good.digest_ref, None);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    assert_eq!(o.by_vsa.len(), 1, "{o:?}");
    assert!(o.by_vsa[0].1.contains("ci-gate"), "{:?}", o.by_vsa);
    // ...and records that the decision rested on it
    let req =
        review::parse(&serde_json::to_vec(&review::request_for("u1", "prod", &review::pod("p", "prod", &[&good.digest_ref]))).unwrap())
            .unwrap();
    assert!(engine.review(&req, Endpoint::Validate, None).allowed);
    engine.flush_audit();
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("verification summary by ci-gate"), "{audit}");
    // an image without a summary is still judged on its own (and fails here)
    let other = engine.decide_image("prod", &lab.scenario("missing-sbom").digest_ref, None);
    assert!(other.enforced().next().is_some());

    // a cached allow that rested on a summary ends when the summary does, not when the cache
    // entry would: a three-hour cache, a one-hour maxAge, two hours later
    let clock2 = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let cached = Engine::new(
        lab.store.clone(),
        clock2.clone(),
        EngineOptions { policy_files: vec![pfile.clone()], cache_ttl: std::time::Duration::from_secs(3 * 3600), ..Default::default() },
        None,
    )
    .unwrap();
    assert!(cached.decide_image("prod", &good.digest_ref, None).violations.is_empty());
    clock2.advance(SignedDuration::from_hours(2));
    let o = cached.decide_image("prod", &good.digest_ref, None);
    assert!(o.enforced().next().is_some(), "an allow by an expired summary was answered from the cache: {o:?}");

    // too old: two hours later under a one-hour maxAge
    clock.advance(SignedDuration::from_hours(2));
    let engine =
        Engine::new(lab.store.clone(), clock.clone(), EngineOptions { policy_files: vec![pfile], ..Default::default() }, None).unwrap();
    let o = engine.decide_image("prod", &good.digest_ref, None);
    assert!(o.enforced().next().is_some(), "an expired summary does not admit");
    assert!(o.violations.iter().any(|v| v.message.contains("older than the policy's maxAge")), "{:?}", o.violations);

    // another verifier's key: not accepted
    let (_, foreign) = openssl_key(&dir.path().join("other").tap_mkdir());
    let f = dir.path().join("foreign-policy.yaml");
    std::fs::write(&f, vsa_policy(&lab, &std::fs::read_to_string(foreign).unwrap(), "1h")).unwrap();
    let engine =
        Engine::new(lab.store.clone(), Arc::new(SystemClock), EngineOptions { policy_files: vec![f], ..Default::default() }, None).unwrap();
    let o = engine.decide_image("prod", &good.digest_ref, None);
    assert!(o.enforced().next().is_some());
    assert!(o.violations.iter().any(|v| v.message.contains("not signed by any verifier")), "{:?}", o.violations);
    lab.shutdown().await;
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
