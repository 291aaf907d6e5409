//! Reading what a verified predicate says: SLSA provenance (v0.2 and v1: builder, build type,
//! source, base image), SBOM packages (SPDX 2.3, CycloneDX), vulnerability scans (cosign vuln/v1
//! with Trivy or Grype results, in-toto vulns v0.2).

use jiff::Timestamp;
use serde_json::Value;

use super::model::{ProvenanceReq, Severity};

pub fn check_provenance(req: &ProvenanceReq, pt: &str, pred: &Value) -> Result<(), String> {
    let (builder, build_type) = if pt.ends_with("/v1") {
        (
            pred["runDetails"]["builder"]["id"].as_str().unwrap_or_default(),
            pred["buildDefinition"]["buildType"].as_str().unwrap_or_default(),
        )
    } else {
        (pred["builder"]["id"].as_str().unwrap_or_default(), pred["buildType"].as_str().unwrap_or_default())
    };
    let level = req.builders.get(builder).copied();
    match level {
        None if req.min_level > 0 => {
            return Err(format!("builder {builder:?} is not an approved builder (SLSA level {} required)", req.min_level));
        }
        Some(l) if l < req.min_level => {
            return Err(format!("builder {builder:?} provides SLSA build level {l}, level {} is required", req.min_level));
        }
        _ => {}
    }
    if !req.build_types.is_empty() && !req.build_types.iter().any(|t| t == build_type) {
        return Err(format!("buildType {build_type:?} is not allowed"));
    }
    let wf = &pred["buildDefinition"]["externalParameters"]["workflow"];
    if !req.source_repositories.is_empty() {
        let repo = wf["repository"].as_str().unwrap_or_default();
        if !req.source_repositories.iter().any(|r| r == repo) {
            return Err(format!("source repository {repo:?} is not allowed"));
        }
    }
    if !req.source_refs.is_empty() {
        let r = wf["ref"].as_str().unwrap_or_default();
        if !req.source_refs.iter().any(|x| x == r) {
            return Err(format!("source ref {r:?} is not allowed"));
        }
    }
    Ok(())
}

/// `registry/repo@sha256:…` of the base image named in a provenance's resolved dependencies.
pub fn base_image(pred: &Value) -> Option<String> {
    let deps = pred["buildDefinition"]["resolvedDependencies"].as_array().or(pred["materials"].as_array())?;
    let d = deps
        .iter()
        .find(|d| d["annotations"]["role"] == "base-image" || d["name"] == "base-image")
        .or_else(|| deps.iter().find(|d| d["uri"].as_str().is_some_and(|u| u.starts_with("pkg:docker/") || u.starts_with("oci://"))))?;
    let uri = d["uri"].as_str()?;
    let name = uri.strip_prefix("pkg:docker/").or(uri.strip_prefix("oci://")).unwrap_or(uri);
    let name = name.split(['?', '@']).next().unwrap_or(name);
    let digest = d["digest"]["sha256"].as_str()?;
    Some(format!("{name}@sha256:{digest}"))
}

/// (name, version, purl) of every package in an SPDX 2.3 or CycloneDX SBOM.
pub fn sbom_packages(pt: &str, pred: &Value) -> Vec<(String, String, String)> {
    if pt == "https://spdx.dev/Document" {
        pred["packages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        let purl = p["externalRefs"]
                            .as_array()
                            .and_then(|r| r.iter().find(|x| x["referenceType"] == "purl"))
                            .and_then(|x| x["referenceLocator"].as_str())
                            .unwrap_or_default();
                        (
                            p["name"].as_str().unwrap_or_default().to_string(),
                            p["versionInfo"].as_str().unwrap_or_default().to_string(),
                            purl.to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        let mut out = vec![];
        let mut stack: Vec<&Value> = pred["components"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        while let Some(c) = stack.pop() {
            out.push((
                c["name"].as_str().unwrap_or_default().to_string(),
                c["version"].as_str().unwrap_or_default().to_string(),
                c["purl"].as_str().unwrap_or_default().to_string(),
            ));
            if let Some(sub) = c["components"].as_array() {
                stack.extend(sub.iter());
            }
        }
        out
    }
}

pub struct Scan {
    pub finished: Timestamp,
    pub findings: Vec<(String, Severity)>,
}

/// A vulnerability scan: cosign vuln/v1 (Trivy or Grype result inside) or in-toto vulns v0.2.
pub fn scan_result(pt: &str, pred: &Value) -> Option<Scan> {
    let finished: Timestamp = pred["metadata"]["scanFinishedOn"].as_str()?.parse().ok()?;
    let mut findings = vec![];
    let result = &pred["scanner"]["result"];
    if pt == "https://in-toto.io/attestation/vulns/v0.2" {
        for r in result.as_array().into_iter().flatten() {
            let sev = r["severity"]
                .as_array()
                .and_then(|s| s.iter().map(|x| Severity::parse(x["score"].as_str().unwrap_or_default())).max())
                .unwrap_or(Severity::Unknown);
            findings.push((r["id"].as_str().unwrap_or_default().to_string(), sev));
        }
    } else {
        // Trivy JSON
        for r in result["Results"].as_array().into_iter().flatten() {
            for v in r["Vulnerabilities"].as_array().into_iter().flatten() {
                findings.push((
                    v["VulnerabilityID"].as_str().unwrap_or_default().to_string(),
                    Severity::parse(v["Severity"].as_str().unwrap_or_default()),
                ));
            }
        }
        // Grype JSON
        for m in result["matches"].as_array().into_iter().flatten() {
            findings.push((
                m["vulnerability"]["id"].as_str().unwrap_or_default().to_string(),
                Severity::parse(m["vulnerability"]["severity"].as_str().unwrap_or_default()),
            ));
        }
    }
    Some(Scan { finished, findings })
}
