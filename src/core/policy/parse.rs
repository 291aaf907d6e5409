//! Reading policy documents (YAML, several per file): Sigstore policy-controller
//! `ClusterImagePolicy`, trustmirror `ImagePolicy` and `PolicyDefaults`, into the [`model`].
//!
//! [`model`]: super::model

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::*;
use crate::core::cosign::predicate_type_for;
use crate::core::verify::{Authority, IdentityPolicy, Matcher};

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: Meta,
    spec: Value,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
}

fn mode_of(v: &Value) -> Result<Option<Mode>, String> {
    v.as_str().map(str::parse).transpose()
}

fn matcher(exact: &Value, re: &Value, what: &str) -> Result<Option<Matcher>, String> {
    if let Some(s) = exact.as_str() {
        return Ok(Some(Matcher::Exact(s.into())));
    }
    if let Some(r) = re.as_str() {
        return Matcher::regex(r).map(Some).map_err(|e| format!("{what}: {e}"));
    }
    Ok(None)
}

fn parse_authorities(spec: &Value, policy: &str) -> Result<Vec<NamedAuthority>, String> {
    let mut out = vec![];
    for (i, a) in spec["authorities"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        let name = a["name"].as_str().map(str::to_string).unwrap_or_else(|| format!("authority-{i}"));
        if let Some(k) = a.get("key") {
            let pem = k["data"].as_str().ok_or_else(|| format!("{policy}/{name}: key.data (PEM) is required"))?;
            let auth = Authority::key_pem(&name, pem).map_err(|e| format!("{policy}/{name}: {e}"))?;
            out.push(NamedAuthority { name, authority: auth });
        } else if let Some(k) = a.get("keyless") {
            let ids = k["identities"].as_array().cloned().unwrap_or_default();
            if ids.is_empty() {
                return Err(format!("{policy}/{name}: keyless.identities must list at least one identity"));
            }
            for (j, id) in ids.iter().enumerate() {
                let p = IdentityPolicy {
                    issuer: matcher(&id["issuer"], &id["issuerRegExp"], "issuerRegExp")?,
                    san: matcher(&id["subject"], &id["subjectRegExp"], "subjectRegExp")?,
                    github_repository: id["githubRepository"].as_str().map(str::to_string),
                    github_ref: id["githubRef"].as_str().map(|s| Matcher::Exact(s.into())),
                    github_workflow: None,
                };
                if p.issuer.is_none() || p.san.is_none() {
                    return Err(format!("{policy}/{name}: identity {j} needs issuer(RegExp) and subject(RegExp)"));
                }
                out.push(NamedAuthority {
                    name: if ids.len() == 1 { name.clone() } else { format!("{name}[{j}]") },
                    authority: Authority::Keyless(p),
                });
            }
        } else if a.get("static").is_some() {
            return Err(format!("{policy}/{name}: static authorities are not supported"));
        } else {
            return Err(format!("{policy}/{name}: an authority needs `key` or `keyless`"));
        }
    }
    Ok(out)
}

fn globs(v: &Value, what: &str) -> Result<Vec<glob::Pattern>, String> {
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|g| {
            let s = g["glob"].as_str().or(g.as_str()).ok_or_else(|| format!("{what}: expected globs"))?;
            glob::Pattern::new(s).map_err(|e| format!("{what}: {s:?}: {e}"))
        })
        .collect()
}

impl PolicySet {
    /// Parse policy documents (YAML, `---`-separated) and a banned list.
    pub fn parse(policy_yaml: &str, banned: BannedList) -> Result<Self, String> {
        let mut policies = vec![];
        let mut no_match = None;
        for d in serde_yaml::Deserializer::from_str(policy_yaml) {
            let v = Value::deserialize(d).map_err(|e| format!("policy YAML: {e}"))?;
            if v.is_null() {
                continue;
            }
            let doc: Doc = serde_json::from_value(v).map_err(|e| format!("policy document: {e}"))?;
            let name = doc.metadata.name.clone();
            let spec = &doc.spec;
            let kind_ok = (doc.kind == "ClusterImagePolicy" && doc.api_version.starts_with("policy.sigstore.dev/"))
                || (doc.kind == "ImagePolicy" && doc.api_version.starts_with("trustmirror.dev/"))
                || (doc.kind == "PolicyDefaults" && doc.api_version.starts_with("trustmirror.dev/"));
            if !kind_ok {
                return Err(format!("{name}: unsupported kind {}/{}", doc.api_version, doc.kind));
            }
            if doc.kind == "PolicyDefaults" {
                no_match = mode_of(&spec["noMatch"]).map_err(|e| format!("{name}: {e}"))?;
                continue;
            }
            let images = globs(&spec["images"], &format!("{name}.images"))?;
            if images.is_empty() {
                return Err(format!("{name}: images must list at least one glob"));
            }
            let authorities = parse_authorities(spec, &name)?;
            let attestations = spec["authorities"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .flat_map(|a| a["attestations"].as_array().cloned().unwrap_or_default())
                .chain(spec["attestations"].as_array().cloned().unwrap_or_default())
                .map(|a| {
                    let pt = a["predicateType"].as_str().ok_or_else(|| format!("{name}: attestation without predicateType"))?;
                    let rego = match a["policy"]["type"].as_str() {
                        None => None,
                        Some("rego") => {
                            Some(a["policy"]["data"].as_str().ok_or_else(|| format!("{name}: rego policy without data"))?.to_string())
                        }
                        Some(t) => return Err(format!("{name}: attestation policy type {t:?} is not supported (rego is)")),
                    };
                    Ok(AttestationReq { name: a["name"].as_str().unwrap_or(pt).to_string(), predicate_type: predicate_type_for(pt), rego })
                })
                .collect::<Result<Vec<_>, String>>()?;
            for a in &attestations {
                if let Some(r) = &a.rego {
                    super::rego::compile(&format!("{name}/{}.rego", a.name), r).map_err(|e| format!("{name}/{}: rego: {e}", a.name))?;
                }
            }
            let mut namespace_modes = BTreeMap::new();
            if let Some(m) = spec["namespaces"].as_object() {
                for (ns, v) in m {
                    namespace_modes
                        .insert(ns.clone(), mode_of(v).map_err(|e| format!("{name}: namespace {ns}: {e}"))?.unwrap_or(Mode::Enforce));
                }
            }
            let provenance = spec.get("provenance").filter(|p| !p.is_null()).map(|p| ProvenanceReq {
                min_level: p["minLevel"].as_u64().unwrap_or(0) as u8,
                builders: p["builders"]
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0) as u8)).collect())
                    .unwrap_or_default(),
                build_types: p["buildTypes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                source_repositories: p["sourceRepositories"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
                source_refs: p["sourceRefs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            });
            let vulnerabilities = match spec.get("vulnerabilities").filter(|v| !v.is_null()) {
                None => None,
                Some(v) => Some(VulnReq {
                    deny_at_or_above: Severity::parse(v["denySeverity"].as_str().unwrap_or("critical")),
                    max_age: v["maxAge"]
                        .as_str()
                        .map(|s| crate::core::clock::parse_duration(s).map(|d| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)))
                        .transpose()
                        .map_err(|e| format!("{name}.vulnerabilities.maxAge: {e}"))?
                        .unwrap_or(SignedDuration::from_hours(24 * 7)),
                }),
            };
            policies.push(Policy {
                name: name.clone(),
                kind: doc.kind.clone(),
                images,
                mode: mode_of(&spec["mode"]).map_err(|e| format!("{name}: {e}"))?.unwrap_or(Mode::Enforce),
                namespace_modes,
                trust_root: spec["trustRootRef"].as_str().map(str::to_string),
                threshold: spec["threshold"].as_u64().unwrap_or(1).max(1) as usize,
                authorities,
                attestations,
                provenance,
                sbom_required: spec["sbom"]["required"].as_bool().unwrap_or(false),
                vulnerabilities,
                base_images: spec
                    .get("baseImages")
                    .filter(|v| !v.is_null())
                    .map(|b| globs(&b["approved"], &format!("{name}.baseImages")))
                    .transpose()?,
                registries: spec
                    .get("registries")
                    .filter(|v| !v.is_null())
                    .map(|r| globs(&r["allowed"], &format!("{name}.registries")))
                    .transpose()?,
                require_digest: spec["requireDigest"].as_bool().unwrap_or(false),
                transparency: match spec.get("transparency").filter(|v| !v.is_null()) {
                    None => None,
                    Some(t) => Some(TransparencyReq {
                        unwitnessed: match t["witnessed"].as_str().unwrap_or("required") {
                            "required" => Mode::Enforce,
                            "warn" => Mode::Warn,
                            "audit" => Mode::Audit,
                            o => return Err(format!("{name}.transparency.witnessed: {o:?} (required, warn or audit)")),
                        },
                        witness_policy: t["witnessPolicy"]
                            .as_str()
                            .map(crate::core::tlog::WitnessPolicy::parse)
                            .transpose()
                            .map_err(|e| format!("{name}.transparency.witnessPolicy: {e}"))?,
                    }),
                },
            });
        }
        let mut h = Sha256::new();
        h.update(policy_yaml.as_bytes());
        h.update(serde_json::to_vec(&banned).expect("json"));
        Ok(Self { policies, banned, no_match, version: hex::encode(&h.finalize()[..16]) })
    }
}
