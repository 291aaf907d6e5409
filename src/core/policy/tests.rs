//! The engine over in-memory facts: parsing, the predicate readers, and [`PolicySet::evaluate`]
//! property by property, with material signed by an in-process Sigstore stack (no store, no
//! network: what a unit of the pure core should be tested with).

use super::predicates::*;
use super::*;
use jiff::Timestamp;

#[test]
fn banned_list_matches_names_and_purl_prefixes() {
    let b =
        BannedList::parse("banned:\n- purl: pkg:npm/event-stream@3.3.6\n  reason: malicious\n- name: log4j-core\n- purl: pkg:pypi/ctx\n")
            .unwrap();
    assert!(b.hit("event-stream", "pkg:npm/event-stream@3.3.6").is_some());
    assert!(b.hit("event-stream", "pkg:npm/event-stream@3.3.5").is_none());
    assert!(b.hit("LOG4J-CORE", "").is_some());
    assert!(b.hit("ctx", "pkg:pypi/ctx@0.2.6").is_some());
    assert!(b.hit("ctxx", "pkg:pypi/ctxx@1").is_none());
}

#[test]
fn policies_parse_both_kinds_and_refuse_nonsense() {
    let y = r#"
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: cip}
spec:
  images: [{glob: "registry.internal/**"}]
  authorities:
  - keyless:
      identities: [{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "https://github.com/myorg/.*"}]
    ctlog: {url: "https://rekor.internal"}
    attestations:
    - name: spdx
      predicateType: spdxjson
      policy:
        type: rego
        data: |
          package sigstore
          default isCompliant = false
          isCompliant { input.predicate.spdxVersion == "SPDX-2.3" }
---
apiVersion: trustmirror.dev/v1alpha1
kind: ImagePolicy
metadata: {name: tm}
spec:
  images: ["registry.internal/myorg/**"]
  mode: warn
  namespaces: {prod: enforce}
  provenance: {minLevel: 3, builders: {"b": 3}}
  sbom: {required: true}
  vulnerabilities: {denySeverity: high, maxAge: 2d}
"#;
    let ps = PolicySet::parse(y, BannedList::default()).unwrap();
    assert_eq!(ps.policies.len(), 2);
    assert_eq!(ps.policies[0].attestations[0].predicate_type, "https://spdx.dev/Document");
    assert_eq!(ps.policies[1].mode_for("prod"), Mode::Enforce);
    assert_eq!(ps.policies[1].mode_for("dev"), Mode::Warn);
    assert_eq!(ps.matching("registry.internal/myorg/app").len(), 2);
    assert_eq!(ps.matching("docker.io/library/nginx").len(), 0);
    let check = ps.policies[0].attestations[0].check.as_ref().unwrap();
    assert!(check.check(&serde_json::json!({"predicate": {"spdxVersion": "SPDX-2.3"}})).is_ok());
    assert_eq!(check.check(&serde_json::json!({"predicate": {"spdxVersion": "SPDX-2.2"}})), Err("rego: isCompliant is false".into()));
    for bad in [
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {}\n",
        "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {images: []}\n",
        "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {images: [a], mode: loud}\n",
        "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {images: [a], authorities: [{keyless: {identities: [{issuer: i}]}}]}\n",
    ] {
        assert!(PolicySet::parse(bad, BannedList::default()).is_err(), "{bad}");
    }
}

#[test]
fn provenance_base_image_sbom_and_scan_readers() {
    let b = crate::testbed::predicates::Build {
        builder_id: "b".into(),
        build_type: "t".into(),
        repository: "myorg/app".into(),
        git_ref: "refs/heads/main".into(),
        commit: "c".into(),
        workflow_path: "w".into(),
        base_image: Some(("reg/base/distroless".into(), "sha256:abc".into())),
        started: Timestamp::UNIX_EPOCH,
        finished: Timestamp::UNIX_EPOCH,
    };
    let p = crate::testbed::predicates::slsa_provenance_v1(&b);
    assert_eq!(base_image(&p).as_deref(), Some("reg/base/distroless@sha256:abc"));
    let req = ProvenanceReq { min_level: 3, builders: [("b".to_string(), 1u8)].into(), ..Default::default() };
    assert!(check_provenance(&req, "https://slsa.dev/provenance/v1", &p).unwrap_err().contains("level 1"));
    let pk = vec![crate::testbed::predicates::Package::new("a", "1", "pkg:npm/a@1")];
    let spdx = crate::testbed::predicates::spdx_2_3("x", &pk, Timestamp::UNIX_EPOCH);
    assert_eq!(sbom_packages("https://spdx.dev/Document", &spdx), vec![("a".into(), "1".into(), "pkg:npm/a@1".into())]);
    let cdx = crate::testbed::predicates::cyclonedx_1_5("x", &pk, Timestamp::UNIX_EPOCH);
    assert_eq!(sbom_packages("https://cyclonedx.org/bom", &cdx).len(), 1);
    let f = vec![crate::testbed::predicates::Finding {
        id: "CVE-1".into(),
        severity: "CRITICAL".into(),
        package: "p".into(),
        version: "1".into(),
    }];
    let s = scan_result(
        "https://cosign.sigstore.dev/attestation/vuln/v1",
        &crate::testbed::predicates::cosign_vuln_v1(&f, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
    )
    .unwrap();
    assert_eq!(s.findings, vec![("CVE-1".to_string(), Severity::Critical)]);
    let s = scan_result(
        "https://in-toto.io/attestation/vulns/v0.2",
        &crate::testbed::predicates::intoto_vulns_v02(&f, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
    )
    .unwrap();
    assert_eq!(s.findings[0].1, Severity::Critical);
}

// ------------------------------------------------------------ evaluate over in-memory facts

mod evaluate {
    use std::collections::BTreeMap;

    use jiff::{SignedDuration, Timestamp};
    use serde_json::Value;

    use crate::core::digest::{sha256_digest, sha256_hex};
    use crate::core::material::{Item, ItemKind, ItemStatus, MaterialRecord};
    use crate::core::policy::{BannedList, Facts, Mode, PolicySet, Property};
    use crate::core::verify::{TrustStore, TrustedMaterial};
    use crate::testbed::cosign::{STATEMENT_V1, simple_signing_payload, statement};
    use crate::testbed::pki::Identity;
    use crate::testbed::predicates as p;
    use crate::testbed::scenarios::good_identity;
    use crate::testbed::sigstore::{Signer, SigstoreStack};

    const REPO: &str = "registry.internal/myorg/app";
    const BASE: &str = "registry.internal/base/distroless";

    struct Fx {
        stack: SigstoreStack,
        now: Timestamp,
        digest: String,
        items: Vec<Item>,
        blobs: BTreeMap<String, Vec<u8>>,
    }

    impl Fx {
        fn new() -> Self {
            let now: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
            Self {
                stack: SigstoreStack::new("policy-unit", now),
                now,
                digest: sha256_digest(b"an image manifest"),
                items: vec![],
                blobs: BTreeMap::new(),
            }
        }
        fn keep(&mut self, b: Vec<u8>) -> String {
            let h = sha256_hex(&b);
            self.blobs.insert(h.clone(), b);
            h
        }
        fn signer(&self, id: &Identity) -> Signer {
            self.stack.keyless(id, self.now.checked_sub(SignedDuration::from_hours(1)).unwrap())
        }
        /// A `.sig` simple-signing signature by `id`.
        fn sign(&mut self, id: &Identity) -> &mut Self {
            let s = self.signer(id);
            let payload = simple_signing_payload(REPO, &self.digest, None);
            let signed = self.stack.sign_blob(&s, &payload, self.now.checked_sub(SignedDuration::from_hours(1)).unwrap());
            let bundle = self.keep(serde_json::to_vec(&signed.bundle).unwrap());
            let payload = self.keep(payload);
            self.items.push(Item {
                kind: ItemKind::Signature,
                source: format!("sig {}", self.items.len()),
                bundle: Some(bundle),
                payload: Some(payload),
                predicate_type: None,
                status: ItemStatus::Verified { signer: id.san.clone(), issuer: Some(id.issuer.clone()) },
                evidence: None,
            });
            self
        }
        /// A referrer attestation of `pt` by `id`.
        fn attest(&mut self, id: &Identity, pt: &str, predicate: Value) -> &mut Self {
            let s = self.signer(id);
            let st = statement(STATEMENT_V1, REPO, &self.digest, pt, &predicate);
            let signed = self.stack.attest(&s, &st, self.now.checked_sub(SignedDuration::from_hours(1)).unwrap());
            let bundle = self.keep(serde_json::to_vec(&signed.bundle).unwrap());
            self.items.push(Item {
                kind: ItemKind::Bundle,
                source: format!("referrer {}", self.items.len()),
                bundle: Some(bundle),
                payload: None,
                predicate_type: Some(pt.into()),
                status: ItemStatus::Verified { signer: id.san.clone(), issuer: Some(id.issuer.clone()) },
                evidence: None,
            });
            self
        }
        fn everything(&mut self, packages: &[p::Package], findings: &[p::Finding], base: &str) -> &mut Self {
            let id = good_identity();
            let ago = |h| self.now.checked_sub(SignedDuration::from_hours(h)).unwrap();
            let build = p::Build {
                builder_id: p::SLSA_GENERATOR_CONTAINER.into(),
                build_type: p::GITHUB_WORKFLOW_BUILD_TYPE.into(),
                repository: "myorg/app".into(),
                git_ref: "refs/heads/main".into(),
                commit: "c0ffee".into(),
                workflow_path: ".github/workflows/build.yml".into(),
                base_image: Some((base.into(), "sha256:abc".into())),
                started: ago(3),
                finished: ago(2),
            };
            let (prov, spdx, vuln) =
                (p::slsa_provenance_v1(&build), p::spdx_2_3("app", packages, ago(2)), p::cosign_vuln_v1(findings, ago(2), ago(1)));
            self.sign(&id).attest(&id, p::SLSA_PROVENANCE_V1, prov).attest(&id, p::SPDX, spdx).attest(&id, p::COSIGN_VULN, vuln)
        }
        fn facts(&self) -> Facts {
            Facts {
                reference: format!("{REPO}@{}", self.digest),
                repository: REPO.into(),
                digest: Some(self.digest.clone()),
                by_tag: false,
                material: Some(MaterialRecord {
                    subject: self.digest.clone(),
                    repository: REPO.into(),
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    children: vec![],
                    items: self.items.clone(),
                    synced_at: self.now,
                    sources: BTreeMap::new(),
                    trust: String::new(),
                }),
                blobs: self.blobs.clone(),
                tlog: BTreeMap::new(),
            }
        }
        fn trust(&self) -> TrustStore {
            let mut ts = TrustStore::default();
            ts.insert(TrustedMaterial::from_json("default", self.stack.trusted_root("http://127.0.0.1:1").to_string().as_bytes()).unwrap());
            ts
        }
        fn violations(&self, policy: &str, banned: &str) -> Vec<(Property, String)> {
            let ps = PolicySet::parse(policy, BannedList::parse(banned).unwrap()).unwrap();
            let ev = ps.evaluate(&self.trust(), &self.facts(), self.now);
            ev.violations.into_iter().map(|v| (v.property, v.message)).collect()
        }
    }

    fn policy() -> String {
        let id = good_identity();
        format!(
            r#"
apiVersion: trustmirror.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: five}}
spec:
  images: ["registry.internal/myorg/**"]
  authorities:
  - name: ci
    keyless:
      identities: [{{issuer: "{}", subject: "{}"}}]
  provenance: {{minLevel: 3, builders: {{"{}": 3}}}}
  sbom: {{required: true}}
  vulnerabilities: {{denySeverity: critical, maxAge: 1d}}
  baseImages: {{approved: ["{BASE}@*"]}}
"#,
            id.issuer,
            id.san,
            p::SLSA_GENERATOR_CONTAINER
        )
    }

    const BANNED: &str = "banned:\n- purl: pkg:npm/event-stream@3.3.6\n";

    fn clean() -> Vec<p::Package> {
        vec![p::Package::new("left-pad", "1.3.0", "pkg:npm/left-pad@1.3.0")]
    }

    #[test]
    fn an_image_proving_all_five_properties_passes() {
        let mut fx = Fx::new();
        fx.everything(&clean(), &[], BASE);
        assert_eq!(fx.violations(&policy(), BANNED), vec![]);
    }

    #[test]
    fn each_property_fails_on_its_own() {
        let props = |v: Vec<(Property, String)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        // banned package
        let mut fx = Fx::new();
        fx.everything(&[p::Package::new("event-stream", "3.3.6", "pkg:npm/event-stream@3.3.6")], &[], BASE);
        assert_eq!(props(fx.violations(&policy(), BANNED)), vec![Property::Sbom]);
        // critical CVE
        let mut fx = Fx::new();
        let cve = p::Finding { id: "CVE-2024-3094".into(), severity: "CRITICAL".into(), package: "xz".into(), version: "5.6.0".into() };
        fx.everything(&clean(), &[cve], BASE);
        let v = fx.violations(&policy(), BANNED);
        assert_eq!(props(v.clone()), vec![Property::Vulnerabilities]);
        assert!(v[0].1.contains("CVE-2024-3094"), "{v:?}");
        // unapproved base image
        let mut fx = Fx::new();
        fx.everything(&clean(), &[], "registry.internal/library/debian");
        assert_eq!(props(fx.violations(&policy(), BANNED)), vec![Property::BaseImage]);
        // signed by another workflow: the signature and every attestation fail
        let mut fx = Fx::new();
        fx.everything(&clean(), &[], BASE);
        let other = Identity::github_workflow("attacker/app", ".github/workflows/build.yml", "refs/heads/main");
        let mut wrong = Fx::new();
        wrong.sign(&other);
        let v = wrong.violations(&policy(), BANNED);
        assert_eq!(v[0].0, Property::Signature, "{v:?}");
        assert!(v[0].1.contains("no signature from ci"), "{v:?}");
        // no SBOM at all
        let mut fx = Fx::new();
        let id = good_identity();
        fx.sign(&id);
        let v = fx.violations(&policy(), BANNED);
        assert!(v.iter().any(|(p, m)| *p == Property::Sbom && m.contains("missing SBOM")), "{v:?}");
    }

    #[test]
    fn unsigned_images_and_uncovered_images() {
        let fx = Fx::new();
        let v = fx.violations(&policy(), BANNED);
        assert!(v.iter().any(|(p, m)| *p == Property::Signature && m.contains("is not signed")), "{v:?}");
        // an image no policy covers is denied by default; PolicyDefaults.noMatch: allow admits it
        let other =
            "apiVersion: trustmirror.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: o}\nspec: {images: [\"elsewhere.example/**\"]}\n";
        let v = fx.violations(other, BANNED);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, Property::NoPolicy);
        assert!(v[0].1.contains("denied"), "{v:?}");
        let allow = format!(
            "{other}---\napiVersion: trustmirror.dev/v1alpha1\nkind: PolicyDefaults\nmetadata: {{name: d}}\nspec: {{noMatch: allow}}\n"
        );
        assert_eq!(fx.violations(&allow, BANNED), vec![]);
    }

    #[test]
    fn namespace_modes_lower_or_raise_enforcement() {
        let mut fx = Fx::new();
        fx.sign(&good_identity());
        let pol = policy().replace("  sbom: {required: true}\n", "  sbom: {required: true}\n  mode: warn\n  namespaces: {prod: enforce}\n");
        let ps = PolicySet::parse(&pol, BannedList::default()).unwrap();
        let ev = ps.evaluate(&fx.trust(), &fx.facts(), fx.now);
        assert!(!ev.violations.is_empty());
        assert!(ps.apply_namespace(&ev, "prod").iter().all(|v| v.mode == Mode::Enforce));
        assert!(ps.apply_namespace(&ev, "dev").iter().all(|v| v.mode == Mode::Warn));
    }
}

#[test]
fn what_would_reach_the_network_at_admission_is_refused_at_load() {
    let cip = |extra: &str, policy: &str| {
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: c}}\nspec:\n  images: [{{glob: \"r.example/**\"}}]\n  authorities:\n  - keyless:\n      identities: [{{issuer: i, subject: s}}]\n{extra}    attestations:\n    - name: a\n      predicateType: slsaprovenance\n      policy:\n{policy}"
        )
    };
    let rego = "        type: rego\n        data: |\n          package sigstore\n          default isCompliant = false\n          isCompliant { http.send({\"method\": \"get\", \"url\": \"https://x\"}).status_code == 200 }\n";
    let e = PolicySet::parse(&cip("", rego), BannedList::default()).unwrap_err();
    assert!(e.contains("http.send"), "{e}");
    let e = PolicySet::parse(
        &cip("    source: [{oci: \"r.example/signatures\"}]\n", "        type: cue\n        data: 'predicateType: string'\n"),
        BannedList::default(),
    )
    .unwrap_err();
    assert!(e.contains("source"), "{e}");
    let e = PolicySet::parse(&cip("", "        type: cue\n        url: https://x/policy.cue\n"), BannedList::default()).unwrap_err();
    assert!(e.contains("inline"), "{e}");
    let e = PolicySet::parse(
        &cip("", "        type: cue\n        data: |\n          import \"net/http\"\n          x: 1\n"),
        BannedList::default(),
    )
    .unwrap_err();
    assert!(e.contains("net/http"), "{e}");
}

/// regorus's parser backtracks exponentially in the nesting depth of brackets (a typo of a few
/// dozen `[` would hang the loader): deep nesting is refused before regorus sees the text, in
/// attestation policies and Gatekeeper templates alike — found by fuzzing the policy loader.
#[test]
fn deeply_nested_rego_is_refused_not_parsed_for_ever() {
    let deep = format!("package sigstore\nisCompliant {{\n  ms{} := 1\n}}\n", "[".repeat(40));
    let (tx, rx) = std::sync::mpsc::channel();
    let d = deep.clone();
    std::thread::spawn(move || {
        let cip = super::rego::compile("p.rego", &d).err();
        let tpl = serde_json::json!({"crd": {"spec": {"names": {"kind": "K"}}}, "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": d.replace("sigstore", "k")}]});
        let mut g = super::gatekeeper::Gatekeeper::default();
        let gk = g.add_template("k", tpl).err();
        let _ = tx.send((cip, gk));
    });
    let (cip, gk) = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("refused, not parsed for ever");
    for e in [cip.expect("refused"), gk.expect("refused")] {
        assert!(e.contains("nested"), "{e}");
    }
    // ordinary nesting is fine
    super::rego::compile("p.rego", "package sigstore\nisCompliant { x := [[[{\"a\": [(1)]}]]]; count(x) == 1 }\n").unwrap();
}
