//! `trustmirror gate`: arguments and printing only; the gate is [`crate::gate`].
//!
//! Exit status: 0 every image passed; 1 an image failed its policy; 2 usage or configuration
//! error (bad flags, unreadable policy, no trusted root); 3 an image could not be decided (its
//! registry unreachable, …) and none failed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::core::clock::{Clock, SystemClock};
use crate::gate::{Evidence, Gate, GateOptions, Verdict};
use crate::mirror::oci::RegistryOptions;

#[derive(Args, Debug)]
pub struct GateArgs {
    /// Policy files (ImagePolicy / ClusterImagePolicy / PolicyDefaults), as the webhook loads them.
    #[arg(long = "policy", required = true)]
    policies: Vec<PathBuf>,
    #[arg(long)]
    banned: Option<PathBuf>,
    /// Decide from this store (offline, exactly what admission reads).
    #[arg(long, conflicts_with = "trusted_root")]
    store: Option<PathBuf>,
    /// No store: read each image's material from its registry and verify it with this
    /// trusted_root.json.
    #[arg(long)]
    trusted_root: Option<PathBuf>,
    /// Registries reachable over plain HTTP (`host:port`; repeatable).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    #[command(flatten)]
    credentials: super::RegistryCredentialArgs,
    /// Whose namespace modes apply (policies' `namespaces` overrides).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Also decide every image of these manifests (files or directories of YAML: Pods and every
    /// workload's pod template, as admission extracts them).
    #[arg(long = "manifests")]
    manifests: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = GateOutput::Text)]
    output: GateOutput,
    /// Write a signed SLSA verification summary (one Sigstore bundle per line) for every image
    /// that passes. Needs --signing-key.
    #[arg(long, requires = "signing_key")]
    vsa_out: Option<PathBuf>,
    /// Attach each summary to its image in the registry (an OCI referrer). Needs --signing-key.
    #[arg(long, requires = "signing_key")]
    vsa_push: bool,
    /// The summaries' signing key: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, ECDSA P-256 or Ed25519).
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// The verifier id written into summaries.
    #[arg(long, default_value = "https://trustmirror.dev/gate/v1")]
    verifier_id: String,
    /// The policy URI written into summaries (default: the policy files' paths).
    #[arg(long)]
    policy_uri: Option<String>,
    /// Images (`registry/repo:tag` or `registry/repo@sha256:…`).
    images: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GateOutput {
    Text,
    Json,
    Junit,
}

/// Run the gate; usage and configuration errors are exit 2.
pub async fn run(a: GateArgs) -> anyhow::Result<i32> {
    match gate(a).await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(2)
        }
    }
}

fn images_of_manifests(paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut files = vec![];
    for p in paths {
        if p.is_dir() {
            let mut d: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("--manifests {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
                .collect();
            d.sort();
            files.extend(d);
        } else {
            files.push(p.clone());
        }
    }
    let mut out: Vec<String> = vec![];
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("--manifests {}", f.display()))?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let v: serde_json::Value =
                serde::Deserialize::deserialize(doc).map_err(|e| anyhow!("{} document {}: {e}", f.display(), i + 1))?;
            let items = match v.get("kind").and_then(|k| k.as_str()) {
                Some("List") => v.get("items").and_then(|x| x.as_array()).cloned().unwrap_or_default(),
                _ => vec![v],
            };
            for o in items {
                let kind = o.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
                if crate::admission::review::pod_spec_pointer(&kind).is_none() {
                    continue;
                }
                let refs = crate::admission::review::images(&kind, &o).map_err(|e| anyhow!("{} document {}: {e}", f.display(), i + 1))?;
                for r in refs {
                    if !out.contains(&r.image) {
                        out.push(r.image);
                    }
                }
            }
        }
    }
    Ok(out)
}

async fn gate(a: GateArgs) -> anyhow::Result<i32> {
    let mut images = a.images.clone();
    for i in images_of_manifests(&a.manifests)? {
        if !images.contains(&i) {
            images.push(i);
        }
    }
    if images.is_empty() {
        return Err(anyhow!("no images: give IMAGE arguments or --manifests"));
    }
    let registry =
        RegistryOptions { insecure_hosts: a.insecure_registries.clone(), credentials: a.credentials.credentials(), ..Default::default() };
    let evidence = match (&a.store, &a.trusted_root) {
        (Some(s), None) => Evidence::Store(s.clone()),
        (None, Some(t)) => Evidence::Registry { trusted_root: t.clone(), registry: registry.clone() },
        _ => return Err(anyhow!("give --store S (decide from a store) or --trusted-root FILE (read the registries)")),
    };
    let signer = match &a.signing_key {
        Some(k) => Some(load_signing_key(k)?),
        None => None,
    };
    if a.vsa_push && a.store.is_some() {
        return Err(anyhow!("--vsa-push writes to the registries: use it with --trusted-root (registry mode)"));
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let o = GateOptions { policies: a.policies.clone(), banned: a.banned.clone(), evidence, namespace: a.namespace.clone() };
    let g = Gate::new(&o, clock.clone())?;
    let mut decided = vec![];
    for i in &images {
        decided.push(g.decide(i).await);
    }
    match a.output {
        GateOutput::Text => print!("{}", crate::gate::report::text(&decided)),
        GateOutput::Json => println!("{}", serde_json::to_string_pretty(&decided)?),
        GateOutput::Junit => print!("{}", crate::gate::report::junit(&decided)),
    }
    if let Some(signer) = &signer {
        let uri = a.policy_uri.clone().unwrap_or_else(|| a.policies.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","));
        let sums = crate::gate::summaries(&g, &decided, signer, &a.verifier_id, &uri, clock.now()).map_err(|e| anyhow!(e))?;
        if let Some(out) = &a.vsa_out {
            let lines: String = sums.iter().map(|(_, b)| format!("{}\n", serde_json::to_string(b).expect("json"))).collect();
            crate::files::write_atomic(out, lines.as_bytes()).with_context(|| format!("--vsa-out {}", out.display()))?;
            eprintln!("{} verification summar{} written to {}", sums.len(), if sums.len() == 1 { "y" } else { "ies" }, out.display());
        }
        if a.vsa_push {
            for (img, b) in &sums {
                let d = crate::gate::push_summary(img, b, &registry).await.with_context(|| format!("pushing the summary of {img}"))?;
                eprintln!("verification summary of {img} attached ({d})");
            }
        }
    }
    Ok(if decided.iter().any(|d| d.verdict == Verdict::Fail) {
        1
    } else if decided.iter().any(|d| d.verdict == Verdict::Undecided) {
        3
    } else {
        0
    })
}

pub fn load_signing_key(p: &std::path::Path) -> anyhow::Result<crate::core::vsa::VsaSigner> {
    use rustls::pki_types::pem::PemObject;
    let text = std::fs::read_to_string(p).with_context(|| format!("--signing-key {}", p.display()))?;
    if text.contains("ENCRYPTED SIGSTORE PRIVATE KEY") || text.contains("ENCRYPTED COSIGN PRIVATE KEY") {
        let der = crate::core::cosign_key::decrypt(&text, &std::env::var("COSIGN_PASSWORD").unwrap_or_default())
            .map_err(|e| anyhow!("--signing-key {}: {e}", p.display()))?;
        return crate::core::vsa::VsaSigner::from_pkcs8_der(&der).map_err(|e| anyhow!("--signing-key {}: {e}", p.display()));
    }
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| anyhow!("--signing-key {}: not a PKCS#8 PEM private key ({e:?})", p.display()))?;
    crate::core::vsa::VsaSigner::from_pkcs8_der(der.secret_pkcs8_der()).map_err(|e| anyhow!("--signing-key {}: {e}", p.display()))
}
