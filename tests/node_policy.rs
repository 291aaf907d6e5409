//! The runtime policy the node agent renders (containers-policy.json(5) + registries.d), one test
//! per construct. Every rendered file is checked by a model of containers/image's parser
//! (tests/interop/containers_policy_check.py, at the containers/image version it was rendered
//! for) and, where Debian's skopeo (containers/image 5.23) knows the fields, loaded by skopeo
//! itself — a file the runtime cannot load would stop every pull on the node.

mod common;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use trustmirror::core::nodepolicy::{DefaultRule, NodePolicy, RenderError, RenderOptions, Severity, render};
use trustmirror::core::policy::{BannedList, PolicySet};
use trustmirror::testbed::keys::{KeyKind, SigningKey};

const ROOT: &[u8] = trustmirror::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT;

fn key() -> String {
    SigningKey::new(KeyKind::EcdsaP256, None).public_pem()
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("          {l}\n")).collect()
}

fn policy(name: &str, images: &str, authorities: &str, extra: &str) -> String {
    format!(
        "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: {name}}}\nspec:\n  images: [{images}]\n  authorities:\n{authorities}{extra}---\n"
    )
}

fn key_authority(name: &str, pems: &[String]) -> String {
    let mut s = format!("  - name: {name}\n");
    if pems.len() == 1 {
        s.push_str(&format!("    key:\n      data: |\n{}", indent(&pems[0])));
    } else {
        s.push_str("    keys:\n");
        for p in pems {
            s.push_str(&format!("    - data: |\n{}", indent(p).replace("          ", "        ")));
        }
    }
    s
}

fn keyless_authority(name: &str, subject: &str, issuer: &str) -> String {
    format!("  - name: {name}\n    keyless:\n      identities: [{{issuer: \"{issuer}\", subject: \"{subject}\"}}]\n")
}

fn opts(partial: bool, cimage: (u32, u32)) -> RenderOptions {
    RenderOptions { allow_partial: partial, default_rule: DefaultRule::Accept, containers_image: cimage }
}

fn set(yaml: &str) -> PolicySet {
    PolicySet::parse(yaml, BannedList::default()).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// Render, and check the result the way the runtime would load it.
fn rendered(yaml: &str, o: &RenderOptions) -> (NodePolicy, Value) {
    let np = render(&set(yaml), ROOT, o).unwrap_or_else(|e| panic!("{e}"));
    let v: Value = serde_json::from_slice(&np.policy_json).unwrap();
    loadable(&np, o.containers_image);
    (np, v)
}

fn loadable(np: &NodePolicy, cimage: (u32, u32)) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.json");
    std::fs::write(&p, &np.policy_json).unwrap();
    // registries.d is YAML with a `docker:` map of scopes
    let rd: serde_yaml::Value = serde_yaml::from_slice(&np.registries_d).unwrap();
    for s in rd.get("docker").and_then(|d| d.as_mapping()).into_iter().flatten() {
        assert_eq!(s.1["use-sigstore-attachments"], serde_yaml::Value::Bool(true));
    }
    if let Some(py) = common::tool("venv/bin/python") {
        let o = Command::new(py)
            .arg(common::repo_root().join("tests/interop/containers_policy_check.py"))
            .args(["--cimage", &format!("{}.{}", cimage.0, cimage.1)])
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        // advisories that restate choices made on purpose (and reported): accepting what no
        // policy covers, a scope left to the webhook, ANDed requirements
        let deliberate = ["global default accepts anything", "insecureAcceptAnything on a scope", "multiple requirements are ANDed"];
        let unexpected: Vec<&str> = text.lines().filter(|l| !l.ends_with(": OK") && !deliberate.iter().any(|d| l.contains(d))).collect();
        assert!(o.status.success() && unexpected.is_empty(), "containers/image's parser model: {text}");
    }
    if cimage <= (5, 23) {
        let v: Value = serde_json::from_slice(&np.policy_json).unwrap();
        skopeo_loads(&p, v["default"][0]["type"] == "insecureAcceptAnything");
    }
}

/// Debian's skopeo loads the policy (a `dir:` → `dir:` copy is judged by the default rule, after
/// the whole file has been parsed).
fn skopeo_loads(policy: &std::path::Path, default_accepts: bool) {
    if common::interop_skipped() && which("skopeo").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let config = b"{}";
    let cd = trustmirror::core::digest::sha256_hex(config);
    std::fs::write(src.join(&cd), config).unwrap();
    std::fs::write(
        src.join("manifest.json"),
        format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{cd}","size":2}},"layers":[]}}"#),
    )
    .unwrap();
    std::fs::write(src.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let o = Command::new("skopeo")
        .arg("--policy")
        .arg(policy)
        .arg("copy")
        .arg(format!("dir:{}", src.display()))
        .arg(format!("dir:{}", dir.path().join("dst").display()))
        .output()
        .expect("skopeo (run .ci/install)");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("Error loading trust policy"), "skopeo could not load the policy: {err}");
    if default_accepts {
        assert!(o.status.success(), "{err}");
    } else {
        assert!(err.contains("rejected by policy"), "the default rule rejects: {err}");
    }
}

fn which(b: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(b)).find(|f| f.exists()))
}

fn weaker(np: &NodePolicy) -> Vec<String> {
    np.findings.iter().filter(|f| f.severity == Severity::Weaker).map(|f| f.message.clone()).collect()
}

#[test]
fn a_key_authority_is_a_key_requirement_on_its_repository_scope() {
    let k = key();
    let y = policy("vendor", "\"registry.internal/vendor/**\"", &key_authority("vendor-key", std::slice::from_ref(&k)), "");
    for cimage in [(5, 23), (5, 33)] {
        let (np, v) = rendered(&y, &opts(false, cimage));
        let r = &v["transports"]["docker"]["registry.internal/vendor"];
        assert_eq!(r.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(r[0]["type"], "sigstoreSigned");
        assert_eq!(B64.decode(r[0]["keyData"].as_str().unwrap()).unwrap(), k.as_bytes(), "keyData is base64 of the PEM");
        assert_eq!(r[0]["signedIdentity"]["type"], "matchRepository", "cosign signs the repository, never matchRepoDigestOrExact");
        assert_eq!(v["default"][0]["type"], "insecureAcceptAnything");
        assert!(!np.partial());
        assert!(
            String::from_utf8(np.registries_d.clone())
                .unwrap()
                .contains("\"registry.internal/vendor\":\n    use-sigstore-attachments: true")
        );
        assert_eq!(np.keys.len(), 1);
    }
}

#[test]
fn a_keyless_email_identity_is_a_fulcio_requirement_with_the_rekor_key() {
    let y = policy(
        "release",
        "\"registry.internal/release/app\"",
        &keyless_authority("rel", "release@example.com", "https://accounts.example.com"),
        "",
    );
    let (np, v) = rendered(&y, &opts(false, (5, 24)));
    let r = &v["transports"]["docker"]["registry.internal/release/app"][0];
    assert_eq!(r["fulcio"]["subjectEmail"], "release@example.com");
    assert_eq!(r["fulcio"]["oidcIssuer"], "https://accounts.example.com");
    let ca = String::from_utf8(B64.decode(r["fulcio"]["caData"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 3, "every Fulcio CA certificate of the trusted root: {ca}");
    let rekor = String::from_utf8(B64.decode(r["rekorPublicKeyData"].as_str().unwrap()).unwrap()).unwrap();
    assert!(rekor.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(
        np.findings.iter().any(|f| f.message.contains("log2025-1.rekor.sigstore.dev") && f.message.contains("ECDSA")),
        "the Ed25519 log is named as unusable"
    );
    // before containers/image 5.24 there is no fulcio field: refused, not written wrong
    let e = render(&set(&y), ROOT, &opts(false, (5, 23))).unwrap_err();
    assert!(matches!(&e, RenderError::Weaker(_)) && e.to_string().contains("5.24"), "{e}");
}

#[test]
fn a_workflow_identity_cannot_be_expressed_and_is_refused_unless_partial_is_allowed() {
    let y = policy(
        "app",
        "\"registry.internal/myorg/**\"",
        &keyless_authority(
            "ci",
            "https://github.com/myorg/app/.github/workflows/build.yml@refs/heads/main",
            "https://token.actions.githubusercontent.com",
        ),
        "",
    );
    let e = render(&set(&y), ROOT, &opts(false, (5, 33))).unwrap_err().to_string();
    assert!(e.contains("not an e-mail address") && e.contains("--allow-partial"), "{e}");
    let (np, v) = rendered(&y, &opts(true, (5, 33)));
    assert_eq!(
        v["transports"]["docker"]["registry.internal/myorg"][0]["type"], "insecureAcceptAnything",
        "nothing stricter than the policy"
    );
    assert!(np.partial());
    assert!(String::from_utf8(np.registries_d).unwrap().contains("no scope needs"));
}

#[test]
fn any_of_several_key_authorities_needs_key_datas() {
    let both = format!("{}{}", key_authority("a", &[key()]), key_authority("b", &[key()]));
    let y = policy("vendor", "\"registry.internal/vendor/**\"", &both, "");
    let (_, v) = rendered(&y, &opts(false, (5, 33)));
    assert_eq!(v["transports"]["docker"]["registry.internal/vendor"][0]["keyDatas"].as_array().unwrap().len(), 2);
    let e = render(&set(&y), ROOT, &opts(false, (5, 23))).unwrap_err().to_string();
    assert!(e.contains("keyDatas") && e.contains("5.33"), "{e}");
}

#[test]
fn thresholds_render_as_and_of_all_or_any_key_and_nothing_in_between() {
    let (a, b, c) = (key(), key(), key());
    let both = format!("{}{}", key_authority("release", std::slice::from_ref(&a)), key_authority("security", std::slice::from_ref(&b)));
    // all of two: two requirements, both must hold
    let y = policy("two", "\"registry.internal/prod/**\"", &both, "  threshold: 2\n");
    let (_, v) = rendered(&y, &opts(false, (5, 23)));
    let r = v["transports"]["docker"]["registry.internal/prod"].as_array().unwrap().clone();
    assert_eq!(r.len(), 2, "{r:?}");
    // any of two keys: one requirement with both keys
    let y = policy("any", "\"registry.internal/prod/**\"", &both, "");
    let (_, v) = rendered(&y, &opts(false, (5, 33)));
    assert_eq!(v["transports"]["docker"]["registry.internal/prod"][0]["keyDatas"].as_array().unwrap().len(), 2);
    // two of three: no exact equivalent
    let three = format!("{both}{}", key_authority("ops", &[c]));
    let y = policy("m-of-n", "\"registry.internal/prod/**\"", &three, "  threshold: 2\n");
    let e = render(&set(&y), ROOT, &opts(false, (5, 33))).unwrap_err().to_string();
    assert!(e.contains("2 of 3 authorities"), "{e}");
}

#[test]
fn requirements_of_covering_scopes_are_repeated_in_the_specific_ones() {
    // containers/image applies only the most specific scope: the namespace policy must also hold
    // for the repository that has its own
    let (org, app) = (key(), key());
    let y = format!(
        "{}{}",
        policy("org", "\"registry.internal/myorg/**\"", &key_authority("org", &[org]), ""),
        policy("app", "\"registry.internal/myorg/app\"", &key_authority("app", &[app]), "")
    );
    let (np, v) = rendered(&y, &opts(false, (5, 23)));
    assert_eq!(v["transports"]["docker"]["registry.internal/myorg/app"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["transports"]["docker"]["registry.internal/myorg"].as_array().unwrap().len(), 1);
    let app_scope = np.scopes.iter().find(|s| s.scope == "registry.internal/myorg/app").unwrap();
    assert_eq!(app_scope.policies, vec!["app".to_string(), "org".to_string()]);
}

#[test]
fn what_the_runtime_cannot_check_is_named_and_needs_allow_partial() {
    let y = policy(
        "full",
        "\"registry.internal/myorg/**\"",
        &key_authority("k", &[key()]),
        "  sbom: {required: true}\n  vulnerabilities: {denySeverity: critical, maxAge: 24h}\n  requireDigest: true\n",
    );
    let e = render(&set(&y), ROOT, &opts(false, (5, 33))).unwrap_err().to_string();
    for what in ["SBOM", "vulnerability scans", "references by digest"] {
        assert!(e.contains(what), "{what}: {e}");
    }
    let (np, v) = rendered(&y, &opts(true, (5, 33)));
    assert_eq!(v["transports"]["docker"]["registry.internal/myorg"][0]["type"], "sigstoreSigned", "the signature part still holds");
    assert_eq!(weaker(&np).len(), 3);
}

#[test]
fn audit_and_warn_policies_and_namespace_modes_are_not_rendered_as_enforcement() {
    let y = format!(
        "{}{}",
        policy("audit-only", "\"registry.internal/a/**\"", &key_authority("k", &[key()]), "  mode: audit\n"),
        policy("ns", "\"registry.internal/b/**\"", &key_authority("k", &[key()]), "  namespaces: {dev: warn}\n")
    );
    let e = render(&set(&y), ROOT, &opts(false, (5, 33))).unwrap_err().to_string();
    assert!(e.contains("namespaces") && !e.contains("audit-only"), "audit is faithful (not rendered), namespace modes are not: {e}");
    let (np, v) = rendered(&y, &opts(true, (5, 33)));
    assert!(v["transports"]["docker"].as_object().unwrap().is_empty(), "{v}");
    assert!(np.findings.iter().any(|f| f.policy == "audit-only" && f.severity == Severity::Info));
}

#[test]
fn globs_without_a_scope_are_refused_and_host_wildcards_are_scopes() {
    let y = policy("odd", "\"registry.internal/myorg/app-*\"", &key_authority("k", &[key()]), "");
    let e = render(&set(&y), ROOT, &opts(false, (5, 33))).unwrap_err().to_string();
    assert!(e.contains("app-*"), "{e}");
    let y = policy("wild", "\"*.internal.example/**\"", &key_authority("k", &[key()]), "");
    let (np, v) = rendered(&y, &opts(false, (5, 23)));
    assert!(v["transports"]["docker"]["*.internal.example"].is_array(), "{v}");
    assert!(np.findings.iter().any(|f| f.message.contains("host wildcard")), "registries.d has no wildcard keys: said so");
}

#[test]
fn the_default_rule_is_the_operators_choice() {
    let y = policy("v", "\"registry.internal/vendor/**\"", &key_authority("k", &[key()]), "");
    let o = RenderOptions { allow_partial: false, default_rule: DefaultRule::Reject, containers_image: (5, 23) };
    let (_, v) = rendered(&y, &o);
    assert_eq!(v["default"], serde_json::json!([{"type": "reject"}]));
}

#[test]
fn a_trusted_root_without_an_ecdsa_rekor_key_cannot_back_a_fulcio_requirement() {
    let mut root: Value = serde_json::from_slice(ROOT).unwrap();
    root["tlogs"].as_array_mut().unwrap().retain(|t| t["publicKey"]["keyDetails"] != "PKIX_ECDSA_P256_SHA_256");
    let y = policy(
        "release",
        "\"registry.internal/release/app\"",
        &keyless_authority("rel", "release@example.com", "https://accounts.example.com"),
        "",
    );
    let e = render(&set(&y), &serde_json::to_vec(&root).unwrap(), &opts(false, (5, 33))).unwrap_err().to_string();
    assert!(e.contains("no ECDSA Rekor key"), "{e}");
    let e = render(&set(&y), b"{not json", &opts(false, (5, 33))).unwrap_err();
    assert!(matches!(e, RenderError::TrustedRoot(_)), "{e}");
}
