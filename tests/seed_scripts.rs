//! The seed's CD scripts, unchanged (tests/fixtures/seed-policies/testbed/, only the registry
//! renamed), run with trustmirror installed as `cosign` and `slsa-verifier` (symlinks: the binary
//! speaks the command line it is called by): `deploy-gate.sh` passes for an image built by the
//! trusted builder from the expected repository and fails otherwise; `check-sbom-banned.sh` reads
//! cosign's stdout (one DSSE envelope per line) through `jq` and blocks a banned package from a
//! plain-text list.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use trustmirror::testbed::cosign::{attest_image, sign_image};
use trustmirror::testbed::lab::{Lab, LabOptions};
use trustmirror::testbed::oci::{Pusher, push_scratch_image};
use trustmirror::testbed::pki::{GithubWorkflow, Identity};

const GENERATOR: &str =
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0";

/// A reusable workflow's certificate, as Fulcio issues it: the SAN is the builder workflow, the
/// source-repository and ref claims are the caller's.
fn reusable(builder_san: &str, caller: &str, git_ref: &str) -> Identity {
    let mut id = Identity::github_workflow(caller, ".github/workflows/build.yml", git_ref);
    id.san = builder_san.into();
    let g: &mut GithubWorkflow = id.github.as_mut().unwrap();
    g.trigger = "push".into();
    id
}

fn run(script: &Path, bin: &Path, env: &[(&str, &str)], arg: &str, arg2: Option<&Path>) -> (i32, String) {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.arg(script).arg(arg);
    if let Some(a) = arg2 {
        c.arg(a);
    }
    c.env("PATH", path).env("TRUSTMIRROR_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_cd_scripts_run_with_trustmirror_as_cosign_and_slsa_verifier() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(dir.path().join("lab"));
    o.keep_testbed = true;
    let lab = Lab::up(o).await.unwrap();
    let tb = lab.testbed.as_ref().unwrap();
    let reg = tb.registry.as_ref().unwrap();
    let px = Pusher::new(&reg.addr, reg.registry_auth());
    let s = &tb.stack;
    let at = tb.now;
    let ci = s.keyless(&Identity::github_workflow("myorg/myapp", ".github/workflows/build.yml", "refs/heads/main"), at);
    let builder = s.keyless(&reusable(GENERATOR, "myorg/myapp", "refs/heads/main"), at);
    let rogue = s.keyless(
        &reusable("https://github.com/attacker/builder/.github/workflows/build.yml@refs/tags/v1.0.0", "myorg/myapp", "refs/heads/main"),
        at,
    );
    let provenance = |builder_id: &str| {
        json!({"builder": {"id": builder_id}, "buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
               "materials": [{"uri": "git+https://github.com/myorg/myapp@refs/heads/main", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}}]})
    };
    let sbom = json!({"spdxVersion": "SPDX-2.3", "packages": [{"name": "left-pad"}, {"name": "event-stream"}]});
    // the good image: signed by CI, provenance from the trusted builder, an SBOM
    let good = push_scratch_image(&px, "myorg/myapp", "v1", "app", b"my app\n").await.unwrap();
    sign_image(s, &px, "myorg/myapp", &good.digest, &ci, at, None).await.unwrap();
    attest_image(s, &px, "myorg/myapp", &good.digest, &builder, ("https://slsa.dev/provenance/v0.2", &provenance(GENERATOR)), at)
        .await
        .unwrap();
    attest_image(s, &px, "myorg/myapp", &good.digest, &ci, ("https://spdx.dev/Document", &sbom), at).await.unwrap();
    // another image whose provenance came from an untrusted builder
    let bad = push_scratch_image(&px, "myorg/myapp", "v2", "app", b"my app, rebuilt\n").await.unwrap();
    sign_image(s, &px, "myorg/myapp", &bad.digest, &ci, at, None).await.unwrap();
    attest_image(
        s,
        &px,
        "myorg/myapp",
        &bad.digest,
        &rogue,
        ("https://slsa.dev/provenance/v0.2", &provenance("https://github.com/attacker/builder")),
        at,
    )
    .await
    .unwrap();

    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["cosign", "slsa-verifier"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_trustmirror"), bin.join(name)).unwrap();
    }
    let env = [
        ("REGISTRY", reg.addr.as_str()),
        ("TRUSTMIRROR_TRUSTED_ROOT", tb.env["TRUSTED_ROOT"].as_str()),
        ("TRUSTMIRROR_ALLOW_INSECURE_REGISTRY", "true"),
    ];
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-policies/testbed");
    let (code, out) = run(&seed.join("deploy-gate.sh"), &bin, &env, &good.digest, None);
    assert_eq!(code, 0, "{out}");
    for want in ["PASSED: SLSA verification passed", "Verified build using builder", "All supply chain gates passed"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(out.contains("\"predicateType\":\"https://slsa.dev/provenance/v0.2\""), "--print-provenance prints the statement: {out}");
    let (code, out) = run(&seed.join("deploy-gate.sh"), &bin, &env, &bad.digest, None);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("FAILED: SLSA verification failed"), "{out}");
    assert!(!out.contains("All supply chain gates passed"), "{out}");

    // check-sbom-banned.sh: cosign verify-attestation … | jq -r '.payload' | base64 -d | jq …
    let image = format!("{}/myorg/myapp@{}", reg.addr, good.digest);
    let list = dir.path().join("banned.txt");
    std::fs::write(&list, "event-stream\n").unwrap();
    let (code, out) = run(&seed.join("check-sbom-banned.sh"), &bin, &env, &image, Some(&list));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BLOCKED: banned package 'event-stream' found in SBOM"), "{out}");
    std::fs::write(&list, "colors\nua-parser-js\n").unwrap();
    let (code, out) = run(&seed.join("check-sbom-banned.sh"), &bin, &env, &image, Some(&list));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SBOM check passed"), "{out}");
    // the same plain-text list is a banned list for the engine
    let b = trustmirror::core::policy::BannedList::parse("colors\n# a comment\nua-parser-js\n").unwrap();
    assert_eq!(b.banned.len(), 2);
    lab.shutdown().await;
}
