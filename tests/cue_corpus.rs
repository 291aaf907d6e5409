//! The CUE policy corpus (tests/fixtures/policy-formats/cue, see its MANIFEST.md): every case
//! file is compiled with `trustmirror::core::policy::cue::compile`, its `input_json` validated,
//! and the outcome (pass/fail), the stage (compile/evaluate) and the meaning of every expected
//! error text checked. No case is skipped: the number of cases run must equal the number of files.
//!
//! The error text checked is ours wrapped as policy-controller's `EvaluatePolicyAgainstJSON` wraps
//! CUE's (`failed evaluating cue policy for <name>: failed to compile the cue policy with error: …`
//! or `… failed to evaluate the policy with error: …`; `<name>` is the case's `attestation_name`,
//! else `ClusterImagePolicy`), our errors joined by newlines. Every `expected.error`,
//! `expected.error_contains` entry, and the newest CUE version's text in
//! `expected_by_cue_version`, must appear in it, with these tolerated wording differences:
//! * positions: our compile errors end with ` at line L, column C` (CUE prints positions apart),
//!   so expected texts are matched as substrings, not whole strings;
//! * `conflicting values A and B` may name the two values in either order (MANIFEST.md: the
//!   order differs between CUE versions; ours puts the data's value first);
//! * renderings of structs and lists (`{…}`, `[…]` outside string literals) are not compared: our
//!   fields come in serde_json's (sorted) key order, CUE's in input order. The text before and
//!   after each rendering must still appear;
//! * CUE reports the first of several errors and a count; we report all of them.
//!
//! Cases whose verdict depends on the CUE version use the newest version's (cuelang.org/go ≥
//! v0.13, policy-controller v0.15: an unused import is a compile error). The seed cases are also
//! run without their unused import and must give the older versions' verdict.

use std::path::{Path, PathBuf};

use trustmirror::core::policy::cue;

const DIR: &str = "tests/fixtures/policy-formats/cue/cases";

/// Cases this evaluator cannot support (id, reason). Each must still fail to compile with an
/// error naming the unsupported construct, never pass.
const KNOWN_UNSUPPORTED: &[(&str, &str)] = &[];

fn field<'v>(v: &'v serde_yaml::Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(|x| x.as_str())
}

/// The parts of an expected error text that carry meaning: the text around struct and list
/// renderings (`{…}` / `[…]` outside string literals), trimmed.
fn meaning_parts(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for c in s.chars() {
        if in_str {
            if depth == 0 {
                cur.push(c);
            }
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                if depth == 0 {
                    cur.push(c);
                }
            }
            '{' | '[' => {
                if depth == 0 {
                    parts.push(std::mem::take(&mut cur));
                }
                depth += 1;
            }
            '}' | ']' if depth > 0 => depth -= 1,
            _ => {
                if depth == 0 {
                    cur.push(c);
                }
            }
        }
    }
    parts.push(cur);
    parts.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

/// `piece` in `text`, also with the two values of `conflicting values A and B` swapped.
fn found(text: &str, piece: &str) -> bool {
    if text.contains(piece) {
        return true;
    }
    let re = regex::Regex::new(r#"conflicting values ("(?:[^"\\]|\\.)*"|[^\s"]+) and ("(?:[^"\\]|\\.)*"|[^\s"]+)"#).expect("regex");
    let swapped = re.replace(piece, "conflicting values ${2} and ${1}");
    swapped != piece && text.contains(&*swapped)
}

/// Our verdict: (outcome, stage, wrapped error text).
fn run(name: &str, src: &str, input: &serde_json::Value) -> (&'static str, Option<&'static str>, String) {
    match cue::compile(src) {
        Err(e) => {
            ("fail", Some("compile"), format!("failed evaluating cue policy for {name}: failed to compile the cue policy with error: {e}"))
        }
        Ok(policy) => match policy.validate(input) {
            Ok(()) => ("pass", None, String::new()),
            Err(errs) => (
                "fail",
                Some("evaluate"),
                format!("failed evaluating cue policy for {name}: failed to evaluate the policy with error: {}", errs.join("\n")),
            ),
        },
    }
}

fn check_texts(text: &str, wanted: &[String]) -> Result<(), String> {
    for w in wanted {
        for piece in meaning_parts(w) {
            if !found(text, &piece) {
                return Err(format!("expected {piece:?} (from {w:?}) in our error:\n{text}"));
            }
        }
    }
    Ok(())
}

fn run_case(case: &serde_yaml::Value) -> Result<(), String> {
    let id = field(case, "id").ok_or("no id")?;
    let src = field(case, "cue").ok_or("no cue")?;
    let input_json = field(case, "input_json").ok_or("no input_json")?;
    let name = field(case, "attestation_name").unwrap_or("ClusterImagePolicy");
    let expected = case.get("expected").ok_or("no expected")?;
    let outcome = field(expected, "outcome").ok_or("no expected.outcome")?;
    let stage = field(expected, "stage");
    let mut wanted: Vec<String> = Vec::new();
    if let Some(e) = field(expected, "error") {
        wanted.push(e.to_string());
    }
    if let Some(list) = expected.get("error_contains").and_then(|v| v.as_sequence()) {
        for x in list {
            wanted.push(x.as_str().ok_or("error_contains entry is not a string")?.to_string());
        }
    }
    // version-dependent verdicts: the newest version's, which `expected` must agree with
    let by_version = case.get("expected_by_cue_version").and_then(|v| v.as_mapping());
    if let Some(map) = by_version {
        let newest = map
            .iter()
            .find(|(k, _)| k.as_str().is_some_and(|k| k.contains(">=")))
            .and_then(|(_, v)| v.as_str())
            .ok_or("expected_by_cue_version has no `>=` (newest) entry")?;
        if !newest.starts_with(outcome) {
            return Err(format!("expected.outcome {outcome} disagrees with the newest CUE version's {newest:?}"));
        }
        if let Some(text) = newest.strip_prefix("fail: ") {
            wanted.push(text.to_string());
        }
    }
    let input: serde_json::Value = serde_json::from_str(input_json).map_err(|e| format!("input_json: {e}"))?;

    let (got, got_stage, text) = run(name, src, &input);
    if let Some((_, why)) = KNOWN_UNSUPPORTED.iter().find(|(k, _)| *k == id) {
        if got_stage != Some("compile") || !text.contains("unsupported construct") {
            return Err(format!("listed as unsupported ({why}) but not refused at compile time naming the construct: {got}: {text}"));
        }
        return Ok(());
    }
    if got != outcome {
        return Err(format!("outcome {got}, expected {outcome}; our error: {text}"));
    }
    if outcome == "fail" {
        if let Some(st) = stage {
            if got_stage != Some(st) {
                return Err(format!("stage {got_stage:?}, expected {st}; our error: {text}"));
            }
        }
        check_texts(&text, &wanted)?;
    }

    // the seed policies without their unused import: the verdict of cuelang.org/go <= v0.12
    if let Some(old) = field(case, "expected_ignoring_unused_import") {
        let stripped: Vec<&str> = src.lines().filter(|l| !l.trim().starts_with("import ")).collect();
        let (got, _, text) = run(name, &stripped.join("\n"), &input);
        let old_outcome = if old.starts_with("pass") { "pass" } else { "fail" };
        if got != old_outcome {
            return Err(format!("without the unused import: outcome {got}, expected {old:?}; our error: {text}"));
        }
        let old_text = by_version
            .and_then(|m| m.iter().find(|(k, _)| k.as_str().is_some_and(|k| k.contains("<="))))
            .and_then(|(_, v)| v.as_str())
            .and_then(|v| v.strip_prefix("fail: "));
        if let (Some(t), "fail") = (old_text, old_outcome) {
            check_texts(&text, &[t.to_string()]).map_err(|e| format!("without the unused import: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn every_cue_case_gets_its_expected_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 69, "expected the 69 corpus cases, found {}", files.len());
    for (id, why) in KNOWN_UNSUPPORTED {
        assert!(!why.is_empty(), "{id}: give the reason it is unsupported");
    }

    let mut ran = 0usize;
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let case: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        ran += 1;
        if let Err(m) = run_case(&case) {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            failures.push(format!("{name}: {m}"));
        }
    }
    assert_eq!(ran, files.len(), "every case file must run");
    assert!(failures.is_empty(), "{} of {ran} CUE cases failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn error_text_matching_tolerates_only_the_documented_differences() {
    let parts = meaning_parts(r#"a.b: invalid value [{x:"[",y:1}] (does not satisfy list.MinItems(2)): len(list) < MinItems(2) (1 < 2)"#);
    assert_eq!(parts, vec!["a.b: invalid value", "(does not satisfy list.MinItems(2)): len(list) < MinItems(2) (1 < 2)"]);
    assert!(found(r#"k: conflicting values "Pod" and "Job""#, r#"k: conflicting values "Job" and "Pod""#));
    assert!(!found(r#"k: conflicting values "Pod" and "Job""#, r#"j: conflicting values "Job" and "Pod""#));
    assert!(!found("k: conflicting values 1 and 2", r#"k: conflicting values "Job" and "Pod""#));
}

/// A ClusterImagePolicy whose CUE policy lives in a file beside it (`url: file:…`): read at load,
/// relative to the policy files' directory or absolute, part of the policy version (an edit is a
/// new version), decided like inline data; remote sources and ambiguous forms refused by name.
#[test]
fn cue_policies_kept_in_local_files() {
    use trustmirror::admission::load_policy_and_sources;
    use trustmirror::core::policy::{BannedList, PolicySet};
    let dir = tempfile::tempdir().unwrap();
    let cip = |url: &str| {
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: c}}\nspec:\n  images: [{{glob: \"r.example/**\"}}]\n  authorities:\n  - keyless:\n      identities: [{{issuer: i, subject: s}}]\n    attestations:\n    - name: slsa\n      predicateType: https://slsa.dev/provenance/v1\n      policy:\n        type: cue\n        url: {url}\n"
        )
    };
    let cue_file = dir.path().join("slsa.cue");
    std::fs::write(&cue_file, "predicate: buildDefinition: buildType: \"https://example/build/v1\"\n").unwrap();
    let policy = dir.path().join("cip.yaml");
    let statement = |bt: &str| {
        serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1",
            "subject": [], "predicate": {"buildDefinition": {"buildType": bt}}})
    };
    let load = |url: &str| {
        std::fs::write(&policy, cip(url)).unwrap();
        load_policy_and_sources(std::slice::from_ref(&policy), None)
    };
    for url in ["file:slsa.cue", &format!("file://{}", cue_file.display())] {
        let (set, read) = load(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(read, vec![cue_file.clone()], "{url}");
        let check = set.policies[0].attestations[0].check.clone().expect("a CUE check");
        assert!(check.check(&statement("https://example/build/v1")).is_ok(), "{url}");
        assert!(check.check(&statement("https://elsewhere/v1")).is_err(), "{url}");
    }
    // the file's content is part of the version
    let (before, _) = load("file:slsa.cue").unwrap();
    std::fs::write(&cue_file, "predicate: buildDefinition: buildType: \"https://example/build/v2\"\n").unwrap();
    let (after, _) = load("file:slsa.cue").unwrap();
    assert_ne!(before.version, after.version);
    // refused, each for its reason
    for (url, says) in [
        ("file:missing.cue", "missing.cue"),
        ("https://policies.example/slsa.cue", "fetched over the network"),
        ("file://host/slsa.cue", "a path on this host"),
    ] {
        let e = load(url).unwrap_err().to_string();
        assert!(e.contains(says), "{url}: {e}");
    }
    // without a reader (documents not loaded from files) a file reference is an error, not a pass
    let e = PolicySet::parse(&cip("file:slsa.cue"), BannedList::default()).unwrap_err();
    assert!(e.contains("loaded from files"), "{e}");
}

/// The webhook's engine follows the files its policy documents reference: after a reload that
/// points a policy at another file, that file is the one watched, and editing it is a new policy.
#[test]
fn the_engine_follows_the_policy_files_its_documents_reference() {
    use std::sync::Arc;
    use trustmirror::admission::{Engine, EngineOptions};
    let dir = tempfile::tempdir().unwrap();
    let cip = |file: &str| {
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: c}}\nspec:\n  images: [{{glob: \"r.example/**\"}}]\n  authorities:\n  - keyless:\n      identities: [{{issuer: i, subject: s}}]\n    attestations:\n    - name: slsa\n      predicateType: https://slsa.dev/provenance/v1\n      policy: {{type: cue, url: \"file:{file}\"}}\n"
        )
    };
    let policy = dir.path().join("cip.yaml");
    std::fs::write(dir.path().join("a.cue"), "predicate: {}\n").unwrap();
    std::fs::write(dir.path().join("b.cue"), "predicate: {}\n").unwrap();
    std::fs::write(&policy, cip("a.cue")).unwrap();
    let store = Arc::new(trustmirror::store::Store::open(dir.path().join("s.redb")).unwrap());
    let e = Engine::new(
        store,
        Arc::new(trustmirror::core::clock::SystemClock),
        EngineOptions { policy_files: vec![policy.clone()], ..Default::default() },
        None,
    )
    .unwrap();
    assert_eq!(e.policy_sources(), vec![dir.path().join("a.cue")]);
    std::fs::write(&policy, cip("b.cue")).unwrap();
    assert_eq!(e.reload_policy(), Ok(true));
    assert_eq!(e.policy_sources(), vec![dir.path().join("b.cue")]);
    assert_eq!(e.reload_policy(), Ok(false), "nothing changed");
    std::fs::write(dir.path().join("b.cue"), "predicate: buildDefinition: {}\n").unwrap();
    assert_eq!(e.reload_policy(), Ok(true), "an edit of the referenced file is a new policy");
}
