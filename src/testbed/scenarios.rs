//! The images of the expected-behaviour table (mission.md), pushed to the testbed registry with
//! their material: each row of the demo is one of these.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;

use crate::testbed::cosign::{STATEMENT_V1, attach_bundle, attest_image, sign_image, statement};
use crate::testbed::oci::{BuiltImage, Pusher, push_scratch_image};
use crate::testbed::pki::Identity;
use crate::testbed::predicates::{self as p, Build, Finding, Package};
use crate::testbed::sigstore::{Signer, SigstoreStack};

/// The identity that is allowed to sign production images.
pub fn good_identity() -> Identity {
    Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/main")
}

/// Every scenario, in the order of the mission's expected-behaviour table (the demo replays them
/// in this order; the testbed publishes exactly these).
pub const SCENARIOS: &[&str] = &[
    "unsigned",
    "wrong-workflow-fork",
    "wrong-workflow-branch",
    "critical-cve",
    "banned-package",
    "slsa-level-1",
    "missing-sbom",
    "unapproved-base",
    "tag-only",
    "rollback-presigned",
    "rollback-unsigned",
    "good",
    "multi-arch",
    "vendor-key-signed",
];

pub const APPROVED_BASE_REPO: &str = "base/distroless";
pub const UNAPPROVED_BASE_REPO: &str = "library/debian";

/// One scenario image and what a deploy-time gate is expected to do with it.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// `registry/repo:tag`
    pub tag_ref: String,
    /// `registry/repo@sha256:…`
    pub digest_ref: String,
    pub digest: String,
    /// `allow`, `deny`, or `allow-with-breakglass`.
    pub expected: String,
    /// The property that decides, for denials.
    pub reason: String,
    /// Reference the scenario is deployed by (the tag-only row uses the tag).
    pub deploy_ref: String,
}

fn clean_packages() -> Vec<Package> {
    vec![
        Package::new("openssl", "3.0.15-1~deb12u1", "pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64"),
        Package::new("zlib1g", "1:1.2.13.dfsg-1", "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64"),
        Package::new("ca-certificates", "20230311", "pkg:deb/debian/ca-certificates@20230311?arch=all"),
        Package::new("app", "1.2.3", "pkg:golang/github.com/myorg/app@v1.2.3"),
    ]
}

fn low_finding() -> Finding {
    Finding { id: "CVE-2023-50495".into(), severity: "LOW".into(), package: "ncurses-base".into(), version: "6.4-4".into() }
}

/// What to attach to an image.
struct Material<'a> {
    signer: Option<&'a Signer>,
    provenance: Option<Build>,
    sbom: Option<Vec<Package>>,
    findings: Option<Vec<Finding>>,
    /// When the scan ran (vulnerability attestations go stale).
    scanned: Timestamp,
    /// Also attach Sigstore bundles as OCI referrers.
    bundles: bool,
}

async fn attach(stack: &SigstoreStack, px: &Pusher, img: &BuiltImage, m: &Material<'_>, at: Timestamp) -> anyhow::Result<()> {
    let Some(signer) = m.signer else { return Ok(()) };
    sign_image(stack, px, &img.repo, &img.digest, signer, at, None).await?;
    let mut atts: Vec<(&str, Value)> = vec![];
    if let Some(b) = &m.provenance {
        atts.push((p::SLSA_PROVENANCE_V1, p::slsa_provenance_v1(b)));
    }
    if let Some(pk) = &m.sbom {
        atts.push((p::SPDX, p::spdx_2_3(&img.repo, pk, at)));
        atts.push((p::CYCLONEDX, p::cyclonedx_1_5(&img.repo, pk, at)));
    }
    if let Some(f) = &m.findings {
        let start = m.scanned.checked_sub(SignedDuration::from_mins(3)).expect("range");
        atts.push((p::COSIGN_VULN, p::cosign_vuln_v1(f, start, m.scanned)));
    }
    for (pt, pred) in &atts {
        attest_image(stack, px, &img.repo, &img.digest, signer, (pt, pred), at).await?;
    }
    if m.bundles {
        let name = format!("{}/{}", px.registry, img.repo);
        // the image signature as cosign v3 writes it: a cosign/sign/v1 statement in a bundle,
        // with an inclusion proof (a checkpoint the witness can check)
        let sig = statement(STATEMENT_V1, &name, &img.digest, crate::core::evidence::COSIGN_SIGN_V1, &serde_json::json!({}));
        let b = stack.attest(signer, &sig, at);
        attach_bundle(px, &img.repo, &img.digest, img.manifest.len(), &b.bundle, Some(crate::core::evidence::COSIGN_SIGN_V1)).await?;
        for (pt, pred) in &atts {
            if *pt == p::CYCLONEDX {
                continue;
            }
            let st = statement(STATEMENT_V1, &name, &img.digest, pt, pred);
            let b = stack.attest(signer, &st, at);
            attach_bundle(px, &img.repo, &img.digest, img.manifest.len(), &b.bundle, Some(pt)).await?;
        }
        if let Some(f) = &m.findings {
            let start = m.scanned.checked_sub(SignedDuration::from_mins(3)).expect("range");
            let st = statement(STATEMENT_V1, &name, &img.digest, p::INTOTO_VULNS, &p::intoto_vulns_v02(f, start, m.scanned));
            let b = stack.attest(signer, &st, at);
            attach_bundle(px, &img.repo, &img.digest, img.manifest.len(), &b.bundle, Some(p::INTOTO_VULNS)).await?;
        }
    }
    Ok(())
}

fn build(repo: &str, git_ref: &str, builder: &str, base: Option<(String, String)>, at: Timestamp) -> Build {
    Build {
        builder_id: builder.into(),
        build_type: p::GITHUB_WORKFLOW_BUILD_TYPE.into(),
        repository: repo.into(),
        git_ref: git_ref.into(),
        commit: "4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c".into(),
        workflow_path: ".github/workflows/build.yml".into(),
        base_image: base,
        started: at.checked_sub(SignedDuration::from_mins(10)).expect("range"),
        finished: at,
    }
}

/// Push every scenario image with its material. `now` is the testbed clock.
pub async fn publish(stack: &SigstoreStack, px: &Pusher, now: Timestamp) -> anyhow::Result<Vec<Scenario>> {
    let ago = |h: i64| now.checked_sub(SignedDuration::from_hours(h)).expect("range");
    let reg = px.registry.clone();

    // Base images: one approved, one not.
    let approved = push_scratch_image(px, APPROVED_BASE_REPO, "12", "os-release", b"distroless 12 (approved base)\n").await?;
    let unapproved = push_scratch_image(px, UNAPPROVED_BASE_REPO, "12", "os-release", b"debian 12 (not an approved base)\n").await?;
    let approved_base = Some((format!("{reg}/{APPROVED_BASE_REPO}"), approved.digest.clone()));
    let unapproved_base = Some((format!("{reg}/{UNAPPROVED_BASE_REPO}"), unapproved.digest.clone()));

    let good = stack.keyless(&good_identity(), ago(2));
    let fork = stack.keyless(&Identity::github_workflow("attacker/app", ".github/workflows/build.yml", "refs/heads/main"), ago(2));
    let branch = stack.keyless(&Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/feature-x"), ago(2));
    let old_good = stack.keyless(&good_identity(), ago(24 * 30));
    let vendor = stack.static_key("vendor");

    let generator = p::SLSA_GENERATOR_CONTAINER;
    let mut out = vec![];
    let mut add = |name: &str, img: &BuiltImage, expected: &str, reason: &str, description: &str, by_tag: bool| {
        assert!(SCENARIOS.contains(&name), "scenario {name} is not in SCENARIOS");
        let tag_ref = format!("{reg}/{}:{}", img.repo, img.tag);
        let digest_ref = format!("{reg}/{}@{}", img.repo, img.digest);
        out.push(Scenario {
            name: name.into(),
            description: description.into(),
            deploy_ref: if by_tag { tag_ref.clone() } else { digest_ref.clone() },
            tag_ref,
            digest_ref,
            digest: img.digest.clone(),
            expected: expected.into(),
            reason: reason.into(),
        });
    };

    let full = |signer, base: Option<(String, String)>, pk: Vec<Package>, f: Vec<Finding>, scanned, bundles| Material {
        signer: Some(signer),
        provenance: Some(build("myorg/app", "refs/heads/main", generator, base, ago(2))),
        sbom: Some(pk),
        findings: Some(f),
        scanned,
        bundles,
    };

    // 1. good: every property proven; all three cosign storage forms.
    let img = push_scratch_image(px, "myorg/app", "v1.2.3", "app", b"myorg/app v1.2.3\n").await?;
    attach(stack, px, &img, &full(&good, approved_base.clone(), clean_packages(), vec![low_finding()], ago(1), true), ago(2)).await?;
    add("good", &img, "allow", "", "signed by the main-branch workflow; SLSA L3 provenance; clean SBOMs; fresh scan; approved base", false);
    add("tag-only", &img, "allow", "mutate", "the good image referenced by tag: admitted, tag rewritten to the verified digest", true);

    // 2. unsigned, pushed straight to the registry.
    let img = push_scratch_image(px, "myorg/unsigned", "v1", "app", b"unsigned build\n").await?;
    add("unsigned", &img, "deny", "signature", "pushed straight to the registry, no signature", false);

    // 3. signed by the wrong workflow: a fork, and another branch.
    let img = push_scratch_image(px, "myorg/fork-signed", "v1", "app", b"built in a fork\n").await?;
    attach(stack, px, &img, &full(&fork, approved_base.clone(), clean_packages(), vec![low_finding()], ago(1), true), ago(2)).await?;
    add("wrong-workflow-fork", &img, "deny", "identity", "signed by attacker/app's workflow (a fork)", false);
    let img = push_scratch_image(px, "myorg/branch-signed", "v1", "app", b"built on a feature branch\n").await?;
    attach(stack, px, &img, &full(&branch, approved_base.clone(), clean_packages(), vec![low_finding()], ago(1), true), ago(2)).await?;
    add("wrong-workflow-branch", &img, "deny", "identity", "signed by the workflow on refs/heads/feature-x", false);

    // 4. critical CVE.
    let crit = Finding { id: "CVE-2024-3094".into(), severity: "CRITICAL".into(), package: "xz-utils".into(), version: "5.6.0-0.2".into() };
    let img = push_scratch_image(px, "myorg/critical-cve", "v1", "app", b"ships xz 5.6.0\n").await?;
    attach(stack, px, &img, &full(&good, approved_base.clone(), clean_packages(), vec![low_finding(), crit], ago(1), true), ago(2)).await?;
    add("critical-cve", &img, "deny", "vulnerability", "scan lists CVE-2024-3094 (critical)", false);

    // 5. banned package in the SBOM.
    let mut pk = clean_packages();
    pk.push(Package::new("event-stream", "3.3.6", "pkg:npm/event-stream@3.3.6"));
    let img = push_scratch_image(px, "myorg/banned-package", "v1", "app", b"depends on event-stream 3.3.6\n").await?;
    attach(stack, px, &img, &full(&good, approved_base.clone(), pk, vec![low_finding()], ago(1), true), ago(2)).await?;
    add("banned-package", &img, "deny", "sbom", "SBOM lists pkg:npm/event-stream@3.3.6 (banned)", false);

    // 6. SLSA level 1: provenance from a builder that is not a hardened one.
    let img = push_scratch_image(px, "myorg/slsa-l1", "v1", "app", b"built on a laptop\n").await?;
    let mut m = full(&good, approved_base.clone(), clean_packages(), vec![low_finding()], ago(1), true);
    m.provenance =
        Some(build("myorg/app", "refs/heads/main", "https://builder.example.com/laptop-build@v1", approved_base.clone(), ago(2)));
    attach(stack, px, &img, &m, ago(2)).await?;
    add("slsa-level-1", &img, "deny", "provenance", "provenance from an unapproved builder (SLSA level 1)", false);

    // 7. unapproved base image.
    let img = push_scratch_image(px, "myorg/unapproved-base", "v1", "app", b"FROM debian:12\n").await?;
    attach(stack, px, &img, &full(&good, unapproved_base.clone(), clean_packages(), vec![low_finding()], ago(1), true), ago(2)).await?;
    add("unapproved-base", &img, "deny", "base-image", "built FROM library/debian:12, not an approved base", false);

    // 8. rollback to a pre-signed release: signed a month ago, re-scanned yesterday.
    let img = push_scratch_image(px, "myorg/app", "v1.1.0", "app", b"myorg/app v1.1.0\n").await?;
    let mut m = full(&old_good, approved_base.clone(), clean_packages(), vec![low_finding()], ago(20), true);
    m.provenance = Some(build("myorg/app", "refs/heads/main", generator, approved_base.clone(), ago(24 * 30)));
    attach(stack, px, &img, &m, ago(24 * 30)).await?;
    add("rollback-presigned", &img, "allow", "", "v1.1.0, signed at release a month ago, re-scanned yesterday", false);

    // 9. emergency rollback to an unsigned build.
    let img = push_scratch_image(px, "myorg/app", "v1.0.9-hotfix", "app", b"hand-built hotfix\n").await?;
    add(
        "rollback-unsigned",
        &img,
        "deny-unless-breakglass",
        "signature",
        "unsigned hotfix: denied unless a break-glass exemption is active",
        false,
    );

    // 10. valid signature, provenance and scan, but no SBOM attestation.
    let img = push_scratch_image(px, "myorg/no-sbom", "v1", "app", b"no sbom\n").await?;
    let mut m = full(&good, approved_base.clone(), clean_packages(), vec![low_finding()], ago(1), true);
    m.sbom = None;
    attach(stack, px, &img, &m, ago(2)).await?;
    add("missing-sbom", &img, "deny", "sbom-missing", "signed, with provenance and scan, but no SBOM attestation", false);

    // 11. a multi-arch image: an index of two platform manifests; the index is signed and attested,
    //     as cosign signs what it is given (the index digest).
    let amd = push_scratch_image(px, "myorg/multiarch", "amd64", "app", b"multiarch amd64\n").await?;
    let arm = push_scratch_image(px, "myorg/multiarch", "arm64", "app", b"multiarch arm64\n").await?;
    let index = serde_json::to_vec(&serde_json::json!({
    "schemaVersion": 2, "mediaType": crate::testbed::oci::OCI_INDEX,
    "manifests": [
        {"mediaType": crate::testbed::oci::OCI_MANIFEST, "digest": amd.digest, "size": amd.manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": crate::testbed::oci::OCI_MANIFEST, "digest": arm.digest, "size": arm.manifest.len(), "platform": {"architecture": "arm64", "os": "linux"}},
    ]}))?;
    let idx_digest = px.push_manifest("myorg/multiarch", Some("v1"), crate::testbed::oci::OCI_INDEX, &index).await?;
    let idx =
        BuiltImage { repo: "myorg/multiarch".into(), tag: "v1".into(), digest: idx_digest, manifest: index, config_digest: String::new() };
    attach(stack, px, &idx, &full(&good, approved_base.clone(), clean_packages(), vec![low_finding()], ago(1), true), ago(2)).await?;
    add("multi-arch", &idx, "allow", "", "an index of amd64 and arm64 manifests, signed and attested as a whole", false);

    // 12. a third-party image signed with a long-lived key (cosign --key).
    let img = push_scratch_image(px, "vendor/tool", "v3", "tool", b"vendor tool\n").await?;
    attach(
        stack,
        px,
        &img,
        &Material { signer: Some(&vendor), provenance: None, sbom: None, findings: None, scanned: ago(1), bundles: false },
        ago(2),
    )
    .await?;
    add("vendor-key-signed", &img, "allow", "key", "third-party image signed with the vendor's cosign key (signature-only policy)", false);

    Ok(out)
}
