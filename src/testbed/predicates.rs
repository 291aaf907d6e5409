//! Attestation predicates as the real producers write them: SLSA provenance v1
//! (slsa-github-generator style), SPDX 2.3 JSON and CycloneDX 1.5 SBOMs (Syft style), and
//! vulnerability scans in both cosign's `vuln/v1` (Trivy result inside) and in-toto's
//! `vulns/v0.2` (Grype style) forms.

use jiff::Timestamp;
use serde_json::{Value, json};

pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const SPDX: &str = "https://spdx.dev/Document";
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";
pub const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
pub const INTOTO_VULNS: &str = "https://in-toto.io/attestation/vulns/v0.2";

pub const GITHUB_WORKFLOW_BUILD_TYPE: &str = "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1";
pub const SLSA_GENERATOR_CONTAINER: &str =
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0";

/// A package in an SBOM.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub purl: String,
}

impl Package {
    pub fn new(name: &str, version: &str, purl: &str) -> Self {
        Self { name: name.into(), version: version.into(), purl: purl.into() }
    }
}

/// What went into a build, for the provenance.
#[derive(Debug, Clone)]
pub struct Build {
    pub builder_id: String,
    pub build_type: String,
    /// `owner/repo`
    pub repository: String,
    pub git_ref: String,
    pub commit: String,
    pub workflow_path: String,
    /// The base image: `(name, sha256 digest)`.
    pub base_image: Option<(String, String)>,
    pub started: Timestamp,
    pub finished: Timestamp,
}

fn t(ts: Timestamp) -> String {
    Timestamp::from_second(ts.as_second()).expect("range").to_string()
}

/// SLSA provenance v1, as slsa-github-generator's container generator writes it. The base image is
/// a `resolvedDependencies` entry with a `pkg:docker/` URI and an `sha256` digest.
pub fn slsa_provenance_v1(b: &Build) -> Value {
    let repo_uri = format!("https://github.com/{}", b.repository);
    let mut deps = vec![json!({"uri": format!("git+{repo_uri}@{}", b.git_ref), "digest": {"gitCommit": b.commit}})];
    if let Some((name, digest)) = &b.base_image {
        deps.push(json!({"uri": format!("pkg:docker/{name}"), "name": "base-image",
            "digest": {"sha256": digest.strip_prefix("sha256:").unwrap_or(digest)},
            "annotations": {"role": "base-image"}}));
    }
    json!({
        "buildDefinition": {
            "buildType": b.build_type,
            "externalParameters": {"workflow": {"ref": b.git_ref, "repository": repo_uri, "path": b.workflow_path}},
            "internalParameters": {"github": {"event_name": "push", "repository_id": "123456", "repository_owner_id": "7890"}},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": b.builder_id},
            "metadata": {"invocationId": format!("{repo_uri}/actions/runs/1/attempts/1"), "startedOn": t(b.started), "finishedOn": t(b.finished)},
        }
    })
}

/// SPDX 2.3 JSON document listing `packages` (as Syft writes it).
pub fn spdx_2_3(name: &str, packages: &[Package], created: Timestamp) -> Value {
    let pkgs: Vec<Value> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"name": p.name, "SPDXID": format!("SPDXRef-Package-{i}"), "versionInfo": p.version,
                "downloadLocation": "NOASSERTION", "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION",
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p.purl}]})
        })
        .collect();
    let rels: Vec<Value> = (0..packages.len())
        .map(|i| json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": format!("SPDXRef-Package-{i}")}))
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
        "documentNamespace": format!("https://trustmirror.invalid/spdx/{}", name.replace('/', "-")),
        "creationInfo": {"created": t(created), "creators": ["Tool: trustmirror-testbed", "Organization: trustmirror"]},
        "packages": pkgs, "relationships": rels,
    })
}

/// CycloneDX 1.5 JSON BOM listing `packages`.
pub fn cyclonedx_1_5(name: &str, packages: &[Package], created: Timestamp) -> Value {
    let comps: Vec<Value> = packages
        .iter()
        .map(|p| json!({"type": "library", "bom-ref": p.purl, "name": p.name, "version": p.version, "purl": p.purl}))
        .collect();
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": format!("urn:uuid:00000000-0000-4000-8000-{:012x}", name.len() as u64 * 7919 + packages.len() as u64),
        "metadata": {"timestamp": t(created), "tools": {"components": [{"type": "application", "name": "trustmirror-testbed"}]},
            "component": {"type": "container", "name": name}},
        "components": comps,
    })
}

/// A vulnerability finding.
#[derive(Debug, Clone)]
pub struct Finding {
    pub id: String,
    pub severity: String,
    pub package: String,
    pub version: String,
}

/// cosign's vuln/v1 predicate with a Trivy JSON result.
pub fn cosign_vuln_v1(findings: &[Finding], started: Timestamp, finished: Timestamp) -> Value {
    let vulns: Vec<Value> = findings
        .iter()
        .map(|f| json!({"VulnerabilityID": f.id, "PkgName": f.package, "InstalledVersion": f.version, "Severity": f.severity.to_uppercase()}))
        .collect();
    json!({
        "invocation": {"parameters": null, "uri": "https://github.com/myorg/app/actions/runs/1", "event_id": "1", "builder.id": "github-actions"},
        "scanner": {"uri": "pkg:github/aquasecurity/trivy@v0.59.1", "version": "0.59.1",
            "db": {"uri": "pkg:github/aquasecurity/trivy-db", "version": "2"},
            "result": {"SchemaVersion": 2, "Results": [{"Target": "image", "Class": "os-pkgs", "Vulnerabilities": vulns}]}},
        "metadata": {"scanStartedOn": t(started), "scanFinishedOn": t(finished)},
    })
}

/// in-toto vulns v0.2 predicate (Grype style).
pub fn intoto_vulns_v02(findings: &[Finding], started: Timestamp, finished: Timestamp) -> Value {
    let result: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({"id": f.id, "severity": [{"method": "grype", "score": f.severity.to_uppercase()}],
            "annotations": [{"package": f.package, "version": f.version}]})
        })
        .collect();
    json!({
        "scanner": {"uri": "pkg:github/anchore/grype@v0.77.0", "version": "0.77.0",
            "db": {"uri": "pkg:github/anchore/grype-db", "version": "5"}, "result": result},
        "metadata": {"scanStartedOn": t(started), "scanFinishedOn": t(finished)},
    })
}
