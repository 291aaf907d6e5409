//! The seed's five policy documents — a policy-controller ClusterImagePolicy with a CUE
//! attestation policy, three Kyverno ClusterPolicies and a Gatekeeper ConstraintTemplate +
//! Constraint — with only the registry renamed to the testbed's, loaded together and deciding
//! every testbed scenario in three namespaces as the original controllers would, through the
//! three ways in: `policy check`, the webhook, and the deploy gate.
//!
//! As written, the seed policies deny every image of the organisation, each for a reason its
//! own controller would give (the CUE buildType does not match the testbed's provenance, the
//! Kyverno subject pattern says `/github/workflows/` where certificates say
//! `/.github/workflows/`, the SLSA condition reads `predicate.builder.id`, which Kyverno never
//! resolves): trustmirror says so when they load and in every denial. With those mistakes
//! corrected (and nothing else), each scenario gets the verdict of the properties the seed
//! policies check. Expected sets are written from the controllers' rules
//! (tests/fixtures/policy-formats/*/SEMANTICS.md), not read back from the engine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trustmirror::admission::{Endpoint, Engine, EngineOptions, review};
use trustmirror::core::clock::SystemClock;
use trustmirror::core::policy::Mode;
use trustmirror::gate::{Gate, GateOptions, Verdict};
use trustmirror::testbed::lab::{Lab, LabOptions};

const CIP: &str = "production-signing-policy";
const KS: &str = "require-signed-image/check-image-signature";
const KB: &str = "require-sbom-attestation/check-sbom-attached";
const KP: &str = "require-slsa-provenance/check-slsa-provenance";
const GK: &str = "require-signed-images-production";
const NONE: &str = "(none)";

const FILES: [&str; 5] = [
    "cluster-image-policy-production.yaml",
    "kyverno-require-signed-image.yaml",
    "kyverno-require-sbom-attestation.yaml",
    "kyverno-require-slsa-provenance.yaml",
    "gatekeeper-require-signed-images.yaml",
];

fn seed(registry: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-policies/testbed");
    FILES.iter().map(|f| (f.to_string(), std::fs::read_to_string(dir.join(f)).unwrap().replace("${REGISTRY}", registry))).collect()
}

/// The seed with its three mistakes corrected, nothing else changed.
fn corrected(docs: &[(String, String)]) -> Vec<(String, String)> {
    docs.iter()
        .map(|(f, t)| {
            let mut t = t
                .replace("/*/github/workflows/", "/*/.github/workflows/")
                .replace("{{ predicate.builder.id }}", "{{ runDetails.builder.id }}");
            if f.starts_with("cluster-image-policy") {
                // the testbed's provenance is a GitHub workflow build, not a container-based one
                let fixed = t.replace("          import \"list\"\n", "").replace(
                    r#"=~ "^https://slsa\\.dev/container-based-build/v0\\.""#,
                    r#"=~ "^https://slsa-framework\\.github\\.io/github-actions-buildtypes/workflow/v1$""#,
                );
                assert_ne!(fixed, t, "the CUE correction applies");
                t = fixed;
            }
            (f.clone(), t)
        })
        .collect()
}

fn write(dir: &Path, docs: &[(String, String)]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    docs.iter()
        .map(|(f, t)| {
            let p = dir.join(f);
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect()
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// What the original controllers deny each scenario for, by namespace.
fn expected(written: bool, scenario: &str, ns: &str) -> BTreeSet<String> {
    if scenario == "vendor-key-signed" {
        // no seed policy covers vendor/tool (denied: no policy matches), and the Gatekeeper
        // allowlist refuses its registry path in the namespaces it matches
        return if ns == "dev" { set(&[NONE]) } else { set(&[NONE, GK]) };
    }
    // which seed rules apply where: the CIP everywhere, require-signed-image in production and
    // staging, the SBOM and SLSA rules in production (Gatekeeper passes every digest-pinned
    // image of the organisation)
    let applies = |p: &str| match p {
        KS => ns != "dev",
        KB | KP => ns == "production",
        _ => true,
    };
    let deny: Vec<&str> = if written {
        // every seed policy denies every image of the organisation
        vec![CIP, KS, KB, KP]
    } else {
        match scenario {
            "unsigned" | "rollback-unsigned" | "wrong-workflow-fork" | "wrong-workflow-branch" => vec![CIP, KS, KB, KP],
            "slsa-level-1" => vec![KP],
            "missing-sbom" => vec![KB],
            // no seed policy reads scans, the banned list (the seed's script does) or the base image
            "good" | "critical-cve" | "banned-package" | "unapproved-base" | "rollback-presigned" | "multi-arch" => vec![],
            o => panic!("no expectation for {o}"),
        }
    };
    deny.into_iter().filter(|p| applies(p)).map(str::to_string).collect()
}

async fn lab(dir: &Path) -> Lab {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Lab::up(LabOptions::new(dir.join("lab"))).await.unwrap()
}

fn engine(lab: &Lab, files: &[PathBuf]) -> Engine {
    Engine::new(lab.store.clone(), Arc::new(SystemClock), EngineOptions { policy_files: files.to_vec(), ..Default::default() }, None)
        .unwrap()
}

/// `policy check`'s decision (the CLI calls exactly these two).
fn by_check(e: &Engine, ns: &str, image: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut o = e.decide_image(ns, image, None);
    o.violations.extend(e.constraints_for_images(ns, &[image]));
    let enforced: Vec<_> = o.violations.iter().filter(|v| v.mode == Mode::Enforce).collect();
    (enforced.iter().map(|v| v.policy.clone()).collect(), enforced.iter().map(|v| format!("[{}] {}", v.policy, v.message)).collect())
}

/// The webhook's answer to a Pod running the image.
fn by_webhook(e: &Engine, ns: &str, image: &str) -> (bool, String) {
    let body = review::request_for("uid-1", ns, &review::pod("p", ns, &[image]));
    let r = e.review(&review::parse(&serde_json::to_vec(&body).unwrap()).unwrap(), Endpoint::Validate, None);
    (r.allowed, r.status.map(|s| s.message).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_policies_decide_as_their_controllers_through_check_webhook_and_gate() {
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path()).await;
    let written = seed(&lab.registry);
    let fixed = corrected(&written);

    // they load as written, and say what their controllers would do differently
    let e = engine(&lab, &write(&d.path().join("written"), &written));
    let warnings = e.policy().warnings.join("\n");
    for (what, needle) in [
        ("the CUE's unused import", "imported and not used: \"list\""),
        ("the subject pattern", "never matches a GitHub Actions certificate"),
        ("Kyverno's admission refusal", "Either Rekor URL or roots are required"),
        ("the predicate prefix", "{{ runDetails.builder.id }}"),
        ("the signer-less attestation", "signed by anyone the trust root certifies"),
    ] {
        assert!(warnings.contains(needle), "no warning about {what}:\n{warnings}");
    }
    assert_eq!(e.policy().policies.len(), 4, "one CIP and three Kyverno rules");
    assert_eq!(e.policy().gatekeeper.constraints.len(), 1);
    let ef = engine(&lab, &write(&d.path().join("fixed"), &fixed));
    assert!(
        !ef.policy().warnings.iter().any(|w| w.contains("never matches") || w.contains("imported and not used")),
        "{:?}",
        ef.policy().warnings
    );

    let gate = |files: &[PathBuf], ns: &str| {
        let o = GateOptions {
            policies: files.to_vec(),
            banned: None,
            evidence: trustmirror::gate::Evidence::Store(lab.dir.join("store.redb")),
            namespace: ns.into(),
        };
        Gate::over_store(lab.store.clone(), &o, Arc::new(SystemClock)).unwrap()
    };
    let mut decisions = 0;
    let mut allowed = 0;
    for (label, engine, files) in
        [("as written", &e, write(&d.path().join("written"), &written)), ("corrected", &ef, write(&d.path().join("fixed"), &fixed))]
    {
        for ns in ["production", "staging", "dev"] {
            let g = gate(&files, ns);
            for s in lab.scenarios.iter().filter(|s| s.name != "tag-only") {
                let want = expected(label == "as written", &s.name, ns);
                let image = s.digest_ref.as_str();
                let (got, messages) = by_check(engine, ns, image);
                assert_eq!(got, want, "{label}, {} in {ns}: policy check: {messages:#?}", s.name);
                let (ok, message) = by_webhook(engine, ns, image);
                assert_eq!(ok, want.is_empty(), "{label}, {} in {ns}: webhook: {message}", s.name);
                for p in &want {
                    assert!(message.contains(&format!("[{p}]")), "{label}, {} in {ns}: the webhook names {p}: {message}", s.name);
                }
                let gd = g.decide(image).await;
                let gp: BTreeSet<String> = gd.violations.iter().filter(|v| v.mode == Mode::Enforce).map(|v| v.policy.clone()).collect();
                assert_eq!(gp, want, "{label}, {} in {ns}: gate", s.name);
                assert_eq!(gd.verdict == Verdict::Pass, want.is_empty(), "{label}, {} in {ns}: gate verdict", s.name);
                decisions += 1;
                allowed += want.is_empty() as usize;
            }
        }
    }
    assert_eq!(decisions, 2 * 3 * 13);
    assert!(allowed > 20, "the corrected policies admit the good scenarios ({allowed} admissions)");

    // as written, each denial says why in its controller's terms
    let good = lab.scenario("good").digest_ref.clone();
    let (_, msgs) = by_check(&e, "production", &good);
    let all = msgs.join("\n");
    assert!(all.contains("buildType") && all.contains("cue"), "the CUE says which field failed: {all}");
    assert!(all.contains("Unknown key \"predicate\" in path") && all.contains("runDetails.builder.id"), "{all}");
    assert!(all.contains("which no authority of the policy accepts") && all.contains("/.github/workflows/build.yml"), "{all}");
    // corrected, the SLSA condition names the builder it refused
    let (_, msgs) = by_check(&ef, "production", &lab.scenario("slsa-level-1").digest_ref);
    assert!(msgs.join("\n").contains("builder.example.com"), "{msgs:?}");

    // a tag in production: Gatekeeper's digest rule, with its own message
    let tag = lab.scenario("good").tag_ref.clone();
    let (ok, message) = by_webhook(&ef, "production", &tag);
    assert!(!ok && message.contains(&format!("[{GK}] Container image '{tag}' must reference a digest")), "{message}");

    // the CLI prints the same for the same store
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(["policy", "check", "--store", lab.store.path().to_str().unwrap(), "--namespace", "production"])
        .args(write(&d.path().join("fixed"), &fixed).iter().flat_map(|p| ["--policy".to_string(), p.display().to_string()]))
        .args([&good, &lab.scenario("missing-sbom").digest_ref, &lab.scenario("vendor-key-signed").digest_ref])
        .env("TRUSTMIRROR_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("ALLOW    {good}")), "{stdout}");
    assert!(stdout.contains(&format!("[{KB}] attestation (enforce)")), "{stdout}");
    assert!(stdout.contains(&format!("[{GK}] constraint (enforce): Container image")), "{stdout}");
    lab.shutdown().await;
}
