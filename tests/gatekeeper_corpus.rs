//! Gatekeeper ConstraintTemplates + Constraints decide as Gatekeeper does: every assertion of
//! five gatekeeper-library suites (`suite.yaml`, as `gator verify` runs them) and the seed
//! template's cases with their expected deny messages. Provenance and semantics:
//! tests/fixtures/policy-formats/gatekeeper/{MANIFEST,SEMANTICS}.md.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trustmirror::core::policy::BannedList;
use trustmirror::core::policy::PolicySet;
use trustmirror::core::policy::gatekeeper::{Action, Finding};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy-formats/gatekeeper")
}

fn yaml(p: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn load(files: &[(&str, String)]) -> Result<PolicySet, String> {
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    PolicySet::parse_files(&refs, BannedList::default())
}

/// The review gator builds from an object (kind, name, namespace, object; no operation).
fn gator_review(object: &Value) -> Value {
    let api = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api.split_once('/').unwrap_or(("", api));
    json!({
        "kind": {"group": group, "version": version, "kind": object["kind"]},
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"].as_str().unwrap_or(""),
        "object": object,
    })
}

#[test]
fn every_gatekeeper_library_suite_assertion_holds() {
    let mut assertions = 0;
    for name in ["allowedrepos", "allowedreposv2", "disallowedrepos", "disallowedtags", "imagedigests"] {
        let base = dir().join("library").join(name);
        let suite = yaml(&base.join("suite.yaml"));
        for t in suite["tests"].as_array().unwrap() {
            let template = std::fs::read_to_string(base.join(t["template"].as_str().unwrap())).unwrap();
            let constraint = std::fs::read_to_string(base.join(t["constraint"].as_str().unwrap())).unwrap();
            let set = load(&[("template.yaml", template), ("constraint.yaml", constraint)])
                .unwrap_or_else(|e| panic!("{name}/{}: {e}", t["name"]));
            for case in t["cases"].as_array().unwrap() {
                let object = yaml(&base.join(case["object"].as_str().unwrap()));
                let findings = set.gatekeeper.evaluate(&gator_review(&object));
                for a in case["assertions"].as_array().unwrap() {
                    let re = regex::Regex::new(a["message"].as_str().unwrap_or("")).unwrap();
                    let n = findings.iter().filter(|f| re.is_match(&f.msg)).count();
                    let ok = match &a["violations"] {
                        Value::Number(x) => n as u64 == x.as_u64().unwrap(),
                        Value::String(s) if s == "no" => n == 0,
                        Value::String(s) if s == "yes" => n > 0,
                        Value::Null => n > 0,
                        o => panic!("assertion {o}"),
                    };
                    assert!(ok, "{name}/{}/{}: {a} but {n} matching of {findings:?}", t["name"], case["name"]);
                    assertions += 1;
                }
            }
        }
    }
    assert_eq!(assertions, 53, "every library assertion was checked");
}

#[test]
fn the_seed_template_denies_with_gatekeepers_messages() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-policies/gatekeeper-require-signed-images.yaml");
    let set = load(&[("seed.yaml", std::fs::read_to_string(&seed).unwrap())]).unwrap();
    assert_eq!(set.gatekeeper.constraints.len(), 1);
    assert_eq!(set.gatekeeper.constraints[0].action, Action::Deny);
    let cases = yaml(&dir().join("cases/seed-require-signed-images.yaml"));
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 14);
    for c in cases {
        let review = &c["rego_input"]["review"];
        let findings: Vec<Finding> = set.gatekeeper.evaluate(review);
        let mut got: Vec<&str> = findings.iter().map(|f| f.msg.as_str()).collect();
        got.sort();
        let mut want: Vec<&str> = c["expected"]["violations"].as_array().unwrap().iter().map(|v| v["msg"].as_str().unwrap()).collect();
        want.sort();
        assert_eq!(got, want, "{}", c["id"]);
        assert!(findings.iter().all(|f| f.constraint == "require-signed-images-production"));
        if c["constraint_matches"] == false {
            assert!(findings.is_empty(), "{}: the constraint does not match", c["id"]);
        }
        let denied = !findings.is_empty();
        assert_eq!(denied, c["expected"]["admission"] == "denied", "{}", c["id"]);
    }
}

const TEMPLATE: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: nolatest}
spec:
  crd: {spec: {names: {kind: NoLatest}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package nolatest
      violation[{"msg": msg}] {
        c := input.review.object.spec.containers[_]
        endswith(c.image, ":latest")
        msg := sprintf("%v uses :latest (param %v)", [c.image, input.parameters.note])
      }
"#;

fn constraint(extra: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: NoLatest\nmetadata: {{name: no-latest}}\nspec:\n  parameters: {{note: n1}}\n{extra}"
    )
}

fn pod_review(ns: &str, image: &str, op: &str) -> Value {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns}, "spec": {"containers": [{"name": "a", "image": image}]}});
    let mut r = gator_review(&pod);
    r["operation"] = json!(op);
    if op == "DELETE" {
        r["oldObject"] = r["object"].take();
    }
    r
}

#[test]
fn match_enforcement_action_and_deletes() {
    let set = |extra: &str| load(&[("t.yaml", TEMPLATE.to_string()), ("c.yaml", constraint(extra))]).unwrap();
    let s = set("");
    let f = s.gatekeeper.evaluate(&pod_review("prod", "r/a:latest", "CREATE"));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].msg, "r/a:latest uses :latest (param n1)", "parameters reach the Rego");
    assert!(s.gatekeeper.evaluate(&pod_review("prod", "r/a:1", "CREATE")).is_empty());
    // On DELETE Gatekeeper evaluates the old object
    assert_eq!(s.gatekeeper.evaluate(&pod_review("prod", "r/a:latest", "DELETE")).len(), 1);
    // namespaces / excludedNamespaces with wildcards
    let s = set("  match:\n    namespaces: [\"prod-*\"]\n    excludedNamespaces: [\"*-sandbox\"]");
    assert_eq!(s.gatekeeper.evaluate(&pod_review("prod-eu", "r/a:latest", "CREATE")).len(), 1);
    assert!(s.gatekeeper.evaluate(&pod_review("dev", "r/a:latest", "CREATE")).is_empty());
    assert!(s.gatekeeper.evaluate(&pod_review("prod-sandbox", "r/a:latest", "CREATE")).is_empty());
    // kinds
    let s = set("  match:\n    kinds: [{apiGroups: [apps], kinds: [Deployment]}]");
    assert!(s.gatekeeper.evaluate(&pod_review("prod", "r/a:latest", "CREATE")).is_empty(), "a Pod is not a Deployment");
    // namespaceSelector on the name label; labelSelector on the object
    let s = set(
        "  match:\n    namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}]}",
    );
    assert_eq!(s.gatekeeper.evaluate(&pod_review("prod", "r/a:latest", "CREATE")).len(), 1);
    assert!(s.gatekeeper.evaluate(&pod_review("kube-system", "r/a:latest", "CREATE")).is_empty());
    let s = set("  match:\n    labelSelector: {matchLabels: {tier: web}}");
    assert!(s.gatekeeper.evaluate(&pod_review("prod", "r/a:latest", "CREATE")).is_empty(), "unlabelled pod");
    let mut labelled = pod_review("prod", "r/a:latest", "CREATE");
    labelled["object"]["metadata"]["labels"] = json!({"tier": "web"});
    assert_eq!(s.gatekeeper.evaluate(&labelled).len(), 1);
    // actions
    assert_eq!(set("  enforcementAction: warn").gatekeeper.constraints[0].action, Action::Warn);
    assert_eq!(set("  enforcementAction: dryrun").gatekeeper.constraints[0].action, Action::DryRun);
}

#[test]
fn what_gatekeeper_would_do_differently_is_refused_at_load() {
    let err = |files: &[(&str, String)]| load(files).err().unwrap_or_else(|| panic!("loaded: {files:?}"));
    // an operator's typo in enforcementAction must not silently switch enforcement off
    let e = err(&[("t.yaml", TEMPLATE.into()), ("c.yaml", constraint("  enforcementAction: dney"))]);
    assert!(e.contains("enforcementAction \"dney\""), "{e}");
    // a namespace selector on labels the webhook cannot see (Namespace objects are not read)
    let e = err(&[("t.yaml", TEMPLATE.into()), ("c.yaml", constraint("  match:\n    namespaceSelector: {matchLabels: {a: b}}"))]);
    assert!(e.contains("namespaceSelector") && e.contains("kubernetes.io/metadata.name"), "{e}");
    // a constraint with no template
    let e = err(&[("c.yaml", constraint(""))]);
    assert!(e.contains("no ConstraintTemplate is loaded"), "{e}");
    // name / kind mismatch, Rego that does not compile, no violation rule
    let e = err(&[("t.yaml", TEMPLATE.replace("name: nolatest", "name: other"))]);
    assert!(e.contains("lower-case"), "{e}");
    let e = err(&[("t.yaml", TEMPLATE.replace("endswith(c.image", "endswith(c.image,,"))]);
    assert!(e.contains("Rego"), "{e}");
    let e = err(&[("t.yaml", TEMPLATE.replace("violation[", "deny["))]);
    assert!(e.contains("violation"), "{e}");
}

#[test]
fn a_runaway_template_is_stopped_and_denies() {
    let t =
        TEMPLATE.replace("endswith(c.image, \":latest\")", "n := numbers.range(1, 100000000)\n        count([x | x := n[_]; x > 0]) > 0");
    let s = load(&[("t.yaml", t), ("c.yaml", constraint(""))]).unwrap();
    let f = s.gatekeeper.evaluate(&pod_review("prod", "r/a:1", "CREATE"));
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].msg.contains("evaluating the template failed"), "{f:?}");
}
