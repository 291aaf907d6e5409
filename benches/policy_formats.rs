//! What each policy format costs per decision, evaluated in-process over the same SLSA v1
//! statement and the same Pod: a policy-controller CUE policy, the same check in Rego, a Kyverno
//! condition, and the seed's Gatekeeper template; plus loading the seed's five documents.
//!
//! `cargo bench --bench policy_formats` (BENCH_SECONDS per measurement, default 2).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trustmirror::core::policy::{BannedList, PolicySet};

fn statement() -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": "https://slsa.dev/provenance/v1",
        "subject": [{"name": "registry.internal/myorg/app", "digest": {"sha256": "f764a4251b2fe3c85dd46896b9d6e65361c9683755099d6dcd13009836d2e0e4"}}],
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/myorg/app", "path": ".github/workflows/build.yml"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/myorg/app@refs/heads/main", "digest": {"gitCommit": "4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c"}}]
            },
            "runDetails": {
                "builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0"},
                "metadata": {"invocationId": "https://github.com/myorg/app/actions/runs/1/attempts/1"}
            }
        }
    })
}

fn cip(policy: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: c}}\nspec:\n  images: [{{glob: \"r.example/**\"}}]\n  authorities:\n  - keyless:\n      identities: [{{issuer: i, subject: s}}]\n    attestations:\n    - name: slsa\n      predicateType: https://slsa.dev/provenance/v1\n      policy:\n{policy}"
    )
}

const CUE: &str = "        type: cue\n        data: |\n          predicateType: \"https://slsa.dev/provenance/v1\"\n          predicate: {\n            buildDefinition: {\n              buildType: =~ \"^https://slsa-framework\\\\.github\\\\.io/github-actions-buildtypes/workflow/v1$\"\n            }\n            runDetails: builder: id: =~ \"^https://github\\\\.com/slsa-framework/\"\n          }\n";
const REGO: &str = "        type: rego\n        data: |\n          package sigstore\n          import rego.v1\n          default isCompliant := false\n          isCompliant if {\n            regex.match(`^https://slsa-framework\\.github\\.io/github-actions-buildtypes/workflow/v1$`, input.predicate.buildDefinition.buildType)\n            startswith(input.predicate.runDetails.builder.id, \"https://github.com/slsa-framework/\")\n          }\n";
const KYVERNO: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: k}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"r.example/*\"]\n      attestations:\n      - type: https://slsa.dev/provenance/v1\n        conditions:\n        - all:\n          - {key: \"{{ buildDefinition.buildType }}\", operator: Equals, value: \"https://slsa-framework.github.io/github-actions-buildtypes/*\"}\n          - {key: \"{{ runDetails.builder.id }}\", operator: Equals, value: \"https://github.com/slsa-framework/*\"}\n";

fn measure(label: &str, budget: Duration, mut f: impl FnMut() -> bool) {
    // warm up, and check the work is the work
    assert!(f(), "{label}: the check must pass on the sample");
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < budget {
        for _ in 0..64 {
            std::hint::black_box(f());
        }
        n += 64;
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    println!("{label:<52} {:>10.1} µs/op {:>12.0} ops/s", per * 1e6, 1.0 / per);
}

fn main() {
    let budget = Duration::from_secs(std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2));
    let st = statement();
    let check_of = |yaml: &str| {
        let ps = PolicySet::parse(yaml, BannedList::default()).unwrap();
        ps.policies[0].attestations[0].check.clone().unwrap()
    };
    let cue = check_of(&cip(CUE));
    let rego = check_of(&cip(REGO));
    let kyverno = check_of(KYVERNO);
    println!("one attestation check over a SLSA v1 statement (one core):");
    measure("CUE (policy-controller)", budget, || cue.check(&st).is_ok());
    measure("Rego (policy-controller, regorus)", budget, || rego.check(&st).is_ok());
    measure("Kyverno conditions (jmespath + operators)", budget, || kyverno.check(&st).is_ok());

    let seed_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-policies/testbed");
    let files: Vec<(String, String)> = std::fs::read_dir(&seed_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && !p.file_name().unwrap().to_string_lossy().starts_with("argocd"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap().replace("${REGISTRY}", "r.example"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert_eq!(refs.len(), 5);
    let set = PolicySet::parse_files(&refs, BannedList::default()).unwrap();
    let pod = json!({"kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "production", "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "production"},
                   "spec": {"containers": [{"name": "a", "image": "r.example/myorg/app@sha256:f764a4251b2fe3c85dd46896b9d6e65361c9683755099d6dcd13009836d2e0e4"}]}}});
    println!("Gatekeeper and loading:");
    measure("Gatekeeper seed template over a Pod (regorus, v0)", budget, || set.gatekeeper.evaluate(&pod).is_empty());
    measure("loading the seed's five documents", budget, || PolicySet::parse_files(&refs, BannedList::default()).is_ok());
}
