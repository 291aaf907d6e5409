//! Kyverno ClusterPolicy / Policy documents: every construct trustmirror supports decides on the
//! testbed as Kyverno would (one test each), what it cannot decide offline is refused when the
//! policy loads, and Kyverno's own verify-images conformance policies load or are refused for a
//! named reason. Semantics: tests/fixtures/policy-formats/kyverno/SEMANTICS.md.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use trustmirror::admission::{Engine, EngineOptions};
use trustmirror::core::clock::SystemClock;
use trustmirror::core::policy::{BannedList, Mode, PolicySet};
use trustmirror::testbed::lab::{Lab, LabOptions};

const GOOD_SUBJECT: &str = "https://github.com/myorg/*/.github/workflows/build.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn parse(y: &str) -> Result<PolicySet, String> {
    PolicySet::parse(y, BannedList::default())
}

/// A ClusterPolicy with one verifyImages rule; `vi` is the verifyImages entry's body (indented
/// by 6), `extra` more rule-level YAML (indented by 4), `spec` more spec-level YAML (by 2).
fn cpol(spec: &str, matcher: &str, vi: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n{spec}  rules:\n  - name: r\n    match:\n{matcher}    verifyImages:\n    - {}\n",
        vi.trim_start()
    )
}

fn pods_in(namespaces: &str) -> String {
    format!("      any:\n      - resources: {{kinds: [Pod], namespaces: [{namespaces}]}}\n")
}

fn keyless(subject: &str) -> String {
    format!("{{keyless: {{subject: \"{subject}\", issuer: \"{ISSUER}\", rekor: {{url: \"https://rekor.sigstore.dev\"}}}}}}")
}

struct Fixture {
    lab: Lab,
    _d: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let d = tempfile::tempdir().unwrap();
    let mut o = LabOptions::new(d.path().join("lab"));
    o.keep_testbed = true;
    Fixture { lab: Lab::up(o).await.unwrap(), _d: d }
}

impl Fixture {
    fn engine(&self, yaml: &str) -> Engine {
        let p = self.lab.dir.join(format!("kyverno-{}.yaml", rand::random::<u32>()));
        std::fs::write(&p, yaml.replace("${REGISTRY}", &self.lab.registry)).unwrap();
        Engine::new(self.lab.store.clone(), Arc::new(SystemClock), EngineOptions { policy_files: vec![p], ..Default::default() }, None)
            .unwrap_or_else(|e| panic!("{e:#}\n{yaml}"))
    }
    /// The enforced (and all) violation messages for a scenario's image in a namespace.
    fn decide(&self, e: &Engine, scenario: &str, ns: &str) -> (bool, Vec<String>) {
        let o = e.decide_image(ns, &self.lab.scenario(scenario).digest_ref, None);
        (o.enforced().next().is_none(), o.violations.iter().map(|v| format!("{} {}: {}", v.mode, v.property.as_str(), v.message)).collect())
    }
    fn admitted(&self, e: &Engine, ns: &str) -> BTreeSet<String> {
        ["good", "unsigned", "wrong-workflow-fork", "wrong-workflow-branch", "slsa-level-1", "missing-sbom"]
            .into_iter()
            .filter(|s| self.decide(e, s, ns).0)
            .map(str::to_string)
            .collect()
    }
    fn vendor_pem(&self) -> String {
        std::fs::read_to_string(&self.lab.testbed.as_ref().unwrap().env["VENDOR_COSIGN_PUB"]).unwrap()
    }
}

fn names(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_construct_decides_as_kyverno() {
    let f = fixture().await;
    let reg = "${REGISTRY}";

    // keyless attestor: subject and issuer wildcards, image references with Kyverno wildcards
    let e = f.engine(&cpol(
        "",
        &pods_in("prod"),
        &format!("imageReferences: [\"{reg}/myorg/*\"]\n      attestors:\n      - entries: [{}]", keyless(GOOD_SUBJECT)),
    ));
    assert_eq!(f.admitted(&e, "prod"), names(&["good", "slsa-level-1", "missing-sbom"]));
    // an image no rule covers is denied (trustmirror's default; Kyverno would admit it), said at load
    let (ok, why) = f.decide(&e, "vendor-key-signed", "prod");
    assert!(!ok && why.iter().any(|w| w.contains("no policy covers")), "{why:?}");
    assert!(e.policy().warnings.iter().any(|w| w.contains("noMatch: allow")), "{:?}", e.policy().warnings);
    let (_, why) = f.decide(&e, "wrong-workflow-fork", "prod");
    assert!(why.iter().any(|w| w.contains("attacker/app") && w.contains("which no authority of the policy accepts")), "{why:?}");

    // subjectRegExp (unanchored, as Go's MatchString)
    let e = f.engine(&cpol(
        "",
        &pods_in("prod"),
        &format!("imageReferences: [\"{reg}/myorg/*\"]\n      attestors:\n      - entries: [{{keyless: {{subjectRegExp: \"feature-x$\", issuer: \"{ISSUER}\", rekor: {{url: r}}}}}}]"),
    ));
    assert_eq!(f.admitted(&e, "prod"), names(&["wrong-workflow-branch"]));

    // keys: the vendor's PEM public key
    let pem: String = f.vendor_pem().lines().map(|l| format!("              {l}\n")).collect();
    let e = f.engine(&cpol(
        "",
        &pods_in("prod"),
        &format!(
            "imageReferences: [\"{reg}/vendor/*\"]\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n{pem}"
        ),
    ));
    assert!(f.decide(&e, "vendor-key-signed", "prod").0);

    // count: one of two entries; both of two (a fork-signed image has one of the identities)
    let two = format!("[{}, {}]", keyless(GOOD_SUBJECT), keyless("https://github.com/attacker/*"));
    let e = f.engine(&cpol(
        "",
        &pods_in("prod"),
        &format!("imageReferences: [\"{reg}/myorg/*\"]\n      attestors:\n      - count: 1\n        entries: {two}"),
    ));
    assert!(f.decide(&e, "good", "prod").0 && f.decide(&e, "wrong-workflow-fork", "prod").0);
    let e =
        f.engine(&cpol("", &pods_in("prod"), &format!("imageReferences: [\"{reg}/myorg/*\"]\n      attestors:\n      - entries: {two}")));
    let (ok, why) = f.decide(&e, "good", "prod");
    assert!(!ok && why.iter().any(|w| w.contains("1 of 2 required")), "count defaults to every entry: {why:?}");
    // several attestor sets must all pass
    let e = f.engine(&cpol(
        "",
        &pods_in("prod"),
        &format!(
            "imageReferences: [\"{reg}/myorg/*\"]\n      attestors:\n      - entries: [{}]\n      - entries: [{}]",
            keyless(GOOD_SUBJECT),
            keyless("https://github.com/attacker/*")
        ),
    ));
    assert!(!f.decide(&e, "good", "prod").0 && !f.decide(&e, "wrong-workflow-fork", "prod").0);

    // attestations: type, their own attestors, conditions over the predicate at the root
    let att = |conditions: &str, attestors: &str| {
        format!(
            "imageReferences: [\"{reg}/myorg/*\"]\n      attestations:\n      - type: https://slsa.dev/provenance/v1\n{attestors}        conditions:\n        - all:\n{conditions}"
        )
    };
    let builder = "          - key: \"{{ runDetails.builder.id }}\"\n            operator: Equals\n            value: \"https://github.com/slsa-framework/*\"\n";
    let signed_by_good = format!("        attestors:\n        - entries: [{}]\n", keyless(GOOD_SUBJECT));
    let e = f.engine(&cpol("", &pods_in("prod"), &att(builder, &signed_by_good)));
    assert_eq!(f.admitted(&e, "prod"), names(&["good", "missing-sbom"]), "a wildcard value, the attestation's own signer");
    let (_, why) = f.decide(&e, "slsa-level-1", "prod");
    assert!(why.iter().any(|w| w.contains("builder.example.com")), "{why:?}");
    // without attestors: anyone the trust root certifies (the fork's own provenance counts)
    let e = f.engine(&cpol("", &pods_in("prod"), &att(builder, "")));
    assert!(f.decide(&e, "wrong-workflow-fork", "prod").0);
    assert!(e.policy().warnings.iter().any(|w| w.contains("no attestors")), "{:?}", e.policy().warnings);
    // any / all blocks and an operator other than Equals
    let any = "          - key: \"{{ runDetails.builder.id }}\"\n            operator: AnyIn\n            value: [\"https://nope\", \"https://builder.example.com/*\"]\n";
    let e = f.engine(&cpol("", &pods_in("prod"), &att(any, &signed_by_good).replace("        - all:\n", "        - any:\n")));
    assert_eq!(f.admitted(&e, "prod"), names(&["slsa-level-1"]));
    // the migration mistake: a denial that says where the builder id is
    let wrong = builder.replace("runDetails.builder.id", "predicate.builder.id");
    let e = f.engine(&cpol("", &pods_in("prod"), &att(&wrong, &signed_by_good)));
    let (ok, why) = f.decide(&e, "good", "prod");
    assert!(!ok && why.iter().any(|w| w.contains("Unknown key \"predicate\" in path") && w.contains("runDetails.builder.id")), "{why:?}");
    // a missing attestation type
    let e = f.engine(&cpol(
        "",
        &pods_in("prod"),
        &format!("imageReferences: [\"{reg}/myorg/*\"]\n      attestations:\n      - type: https://spdx.dev/Document\n{signed_by_good}"),
    ));
    assert_eq!(f.admitted(&e, "prod"), names(&["good", "slsa-level-1"]));

    // match / exclude namespaces (wildcards), failure actions, overrides
    let sig = format!("imageReferences: [\"{reg}/myorg/*\"]\n      attestors:\n      - entries: [{}]", keyless(GOOD_SUBJECT));
    let e = f.engine(&cpol(
        "",
        "      any:\n      - resources: {kinds: [Pod], namespaces: [\"prod-*\"]}\n    exclude:\n      any:\n      - resources: {namespaces: [prod-sandbox]}\n",
        &sig,
    ));
    assert!(!f.decide(&e, "unsigned", "prod-eu").0);
    assert!(f.decide(&e, "unsigned", "prod-sandbox").0, "excluded");
    assert!(f.decide(&e, "unsigned", "dev").0, "not matched");
    let e = f.engine(&cpol("", &pods_in("prod"), &format!("{sig}\n      failureAction: Audit\n      mutateDigest: false")));
    let (ok, why) = f.decide(&e, "unsigned", "prod");
    assert!(ok && why.iter().all(|w| w.starts_with("audit ")), "Audit records, admits: {why:?}");
    let e = f.engine(&cpol("", &pods_in("prod, staging"), &sig).replace(
        "validationFailureAction: Enforce\n",
        "validationFailureAction: Audit\n  validationFailureActionOverrides: [{action: Enforce, namespaces: [prod]}]\n",
    ));
    assert!(!f.decide(&e, "unsigned", "prod").0 && f.decide(&e, "unsigned", "staging").0);
    // a namespaced Policy applies in its own namespace only
    let e = f.engine(
        &cpol("", &pods_in("prod, staging"), &sig)
            .replace("kind: ClusterPolicy\nmetadata: {name: p}", "kind: Policy\nmetadata: {name: p, namespace: staging}"),
    );
    assert!(f.decide(&e, "unsigned", "prod").0 && !f.decide(&e, "unsigned", "staging").0);
    // namespaceSelector on the name label
    let e = f.engine(&cpol(
        "",
        "      any:\n      - resources:\n          kinds: [Pod]\n          namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [dev]}]}\n",
        &sig,
    ));
    assert!(!f.decide(&e, "unsigned", "prod").0 && f.decide(&e, "unsigned", "dev").0);
    // skipImageReferences
    // (skipped: no policy covers it, so Kyverno's admission needs PolicyDefaults noMatch: allow)
    let allow = "---\napiVersion: trustmirror.dev/v1alpha1\nkind: PolicyDefaults\nmetadata: {name: d}\nspec: {noMatch: allow}\n";
    let e = f.engine(&(cpol("", &pods_in("prod"), &format!("{sig}\n      skipImageReferences: [\"{reg}/myorg/unsigned\"]")) + allow));
    assert!(f.decide(&e, "unsigned", "prod").0 && !f.decide(&e, "wrong-workflow-fork", "prod").0);
    // a tag pattern widens to its repository, said at load
    let e = f.engine(&cpol("", &pods_in("prod"), &sig.replace("/myorg/*\"]", "/myorg/unsigned:*\"]")));
    assert!(!f.decide(&e, "unsigned", "prod").0);
    assert!(e.policy().warnings.iter().any(|w| w.contains("which Kyverno would skip")), "{:?}", e.policy().warnings);
    // the legacy single-attestor spelling
    let e = f.engine(&cpol(
        "",
        &pods_in("prod"),
        &format!("image: \"{reg}/myorg/*\"\n      subject: \"{GOOD_SUBJECT}\"\n      issuer: \"{ISSUER}\""),
    ));
    assert!(f.decide(&e, "good", "prod").0 && !f.decide(&e, "wrong-workflow-fork", "prod").0);
    assert_eq!(e.policy().policies[0].mode, Mode::Enforce);
    f.lab.shutdown().await;
}

#[test]
fn what_cannot_be_decided_offline_is_refused_at_load() {
    let sig = format!("imageReferences: [\"r.example/myorg/*\"]\n      attestors:\n      - entries: [{}]", keyless(GOOD_SUBJECT));
    let pods = pods_in("prod");
    for (what, yaml, needle) in [
        (
            "registry credentials",
            cpol("", &pods, &format!("{sig}\n      imageRegistryCredentials: {{secrets: [s]}}")),
            "imageRegistryCredentials",
        ),
        (
            "remote context",
            cpol("", &pods, &sig).replace("    verifyImages:", "    context: [{name: c, apiCall: {urlPath: /x}}]\n    verifyImages:"),
            "context",
        ),
        ("another signature repository", cpol("", &pods, &format!("{sig}\n      repository: r.example/sigs")), "another repository"),
        (
            "KMS keys",
            cpol("", &pods, "imageReferences: [\"r.example/*\"]\n      attestors:\n      - entries: [{keys: {kms: \"awskms:///k\"}}]"),
            "KMS",
        ),
        (
            "custom roots",
            cpol(
                "",
                &pods,
                "imageReferences: [\"r.example/*\"]\n      attestors:\n      - entries: [{keyless: {subject: s, roots: \"-----BEGIN CERTIFICATE-----\"}}]",
            ),
            "roots",
        ),
        ("Notary signatures", cpol("", &pods, &format!("type: Notary\n      {sig}")), "Notary"),
        (
            "preconditions",
            cpol("", &pods, &sig).replace("    verifyImages:", "    preconditions: {all: []}\n    verifyImages:"),
            "preconditions",
        ),
        (
            "request variables",
            cpol(
                "",
                &pods,
                "imageReferences: [\"r.example/*\"]\n      attestations:\n      - type: t\n        conditions:\n        - all: [{key: \"{{ request.object.metadata.name }}\", operator: Equals, value: x}]",
            ),
            "admission request",
        ),
        (
            "Kyverno-only functions",
            cpol(
                "",
                &pods,
                "imageReferences: [\"r.example/*\"]\n      attestations:\n      - type: t\n        conditions:\n        - all: [{key: \"{{ split(a, '/') }}\", operator: Equals, value: x}]",
            ),
            "split",
        ),
        (
            "an unknown operator",
            cpol(
                "",
                &pods,
                "imageReferences: [\"r.example/*\"]\n      attestations:\n      - type: t\n        conditions:\n        - all: [{key: a, operator: Matches, value: x}]",
            ),
            "Matches",
        ),
        (
            "a typo'd failure action",
            cpol("", &pods, &sig).replace("validationFailureAction: Enforce", "validationFailureAction: Enforcce"),
            "Enforcce",
        ),
        ("a misspelled field", cpol("", &pods, &format!("{sig}\n      mutateDigets: true")), "mutateDigets"),
        ("count above entries", cpol("", &pods, &sig.replace("- entries:", "- count: 2\n        entries:")), "Count cannot exceed"),
        (
            "a namespace selector on other labels",
            cpol("", "      any:\n      - resources: {kinds: [Pod], namespaceSelector: {matchLabels: {env: prod}}}\n", &sig),
            "Namespace objects",
        ),
        (
            "a requester match",
            cpol("", "      any:\n      - resources: {kinds: [Pod]}\n        subjects: [{kind: User, name: u}]\n", &sig),
            "subjects",
        ),
    ] {
        let e = parse(&yaml).err().unwrap_or_else(|| panic!("{what} loaded:\n{yaml}"));
        assert!(e.contains(needle), "{what}: {e}");
        assert!(e.contains("document 1 (ClusterPolicy p)"), "{what}: the error names the document: {e}");
    }
    // what changes nothing here, or is stricter here, loads with a warning
    let p =
        parse(&cpol("", "      any:\n      - resources: {kinds: [Deployment]}\n", &format!("{sig}\n      verifyDigest: false"))).unwrap();
    let w = p.warnings.join("\n");
    assert!(w.contains("verifyDigest false") && w.contains("pod controller"), "{w}");
    let p = parse(&cpol("", &pods, &sig).replace(
        "  rules:\n",
        "  rules:\n  - name: v\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    validate: {message: m, pattern: {}}\n",
    ))
    .unwrap();
    assert!(p.warnings.iter().any(|w| w.contains("not evaluated by trustmirror (keep it in Kyverno)")), "{:?}", p.warnings);
}

#[test]
fn kyvernos_conformance_policies_load_or_are_refused_for_a_named_reason() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy-formats/kyverno/chainsaw");
    let mut loaded = 0;
    let mut refused = BTreeSet::new();
    for d in std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        let text = std::fs::read_to_string(d.join("policy.yaml")).unwrap();
        // only the policy documents (some files also create Namespaces and ConfigMaps)
        let docs: Vec<&str> = text.split("\n---").filter(|doc| doc.contains("kyverno.io/")).collect();
        assert_eq!(docs.len(), 1, "{}", d.display());
        match parse(docs[0]) {
            Ok(p) => {
                assert!(!p.policies.is_empty(), "{}", d.display());
                loaded += 1;
            }
            Err(e) => {
                refused.insert((d.file_name().unwrap().to_string_lossy().into_owned(), e));
            }
        }
    }
    let why: Vec<(&str, &str)> = refused.iter().map(|(n, e)| (n.as_str(), e.as_str())).collect();
    assert_eq!(loaded, 20, "{why:#?}");
    assert_eq!(why.len(), 2, "{why:#?}");
    assert!(
        why.iter().any(|(n, e)| *n == "keyed-basic-namespace-selector" && e.contains("namespaceSelector on label \"signed\"")),
        "{why:#?}"
    );
    assert!(why.iter().any(|(n, e)| *n == "skip-image-reference" && e.contains("context")), "{why:#?}");
}
