//! `trustmirror verify-blob-attestation`: cosign's `verify-blob-attestation` for a blob — a
//! package tarball, a release file — named by its bytes or by `sha256:`/`sha512:` digest. The
//! bundle file may be a Sigstore bundle or the npm registry's attestations document
//! (`{"attestations": [{predicateType, bundle}]}`); every attestation of the requested type must
//! verify. npm's registry-signed publish attestations are verified with the registry key their
//! bundle names (`publicKey.hint`) from `--npm-keys` — the `registry.npmjs.org/keys.json` target
//! the Sigstore TUF repository distributes — and only inside that key's validity window.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use serde_json::Value;

use super::verify_args::VerifyFlags;
use crate::core::verify::{Subject, verify_bundle};

pub const NPM_PUBLISH: &str = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1";

#[derive(Args, Debug)]
pub struct VerifyBlobAttestationArgs {
    /// A Sigstore bundle, or the npm registry's attestations document for a package version.
    #[arg(long)]
    bundle: PathBuf,
    /// The predicate type (a URI, or cosign's names: slsaprovenance, slsaprovenance1, spdxjson,
    /// cyclonedx, vuln, custom; `npm-publish` for npm's publish attestation).
    #[arg(long = "type", default_value = "custom")]
    predicate_type: String,
    /// npm registry keys (`registry.npmjs.org/keys.json`) for registry-signed attestations.
    #[arg(long)]
    npm_keys: Option<PathBuf>,
    #[command(flatten)]
    flags: VerifyFlags,
    /// The blob, or `sha256:HEX` / `sha512:HEX`.
    artifact: String,
}

fn subject_of(s: &str) -> anyhow::Result<Option<Subject<'static>>> {
    if let Some(d) = crate::core::digest::parse_digest(s) {
        return Ok(Some(Subject::Sha256(d)));
    }
    if let Some(h) = s.strip_prefix("sha512:") {
        let b = hex::decode(h).map_err(|e| anyhow!("{s}: {e}"))?;
        let d: [u8; 64] = b.try_into().map_err(|_| anyhow!("{s}: a SHA-512 has 64 bytes"))?;
        return Ok(Some(Subject::Sha512(d)));
    }
    Ok(None)
}

pub fn run(a: VerifyBlobAttestationArgs) -> anyhow::Result<i32> {
    let tm = a.flags.trusted_material()?;
    let text = std::fs::read(&a.bundle).with_context(|| format!("reading {}", a.bundle.display()))?;
    let doc: Value = serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", a.bundle.display()))?;
    let bundles = crate::core::npm::attestation_bundles(doc);
    let want = match a.predicate_type.as_str() {
        "npm-publish" => NPM_PUBLISH.to_string(),
        t => crate::core::cosign::predicate_type_for(t),
    };
    let npm_keys: Option<Value> = a
        .npm_keys
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("--npm-keys {}", p.display())))
        .transpose()?
        .map(|b| serde_json::from_slice(&b))
        .transpose()?;
    let data;
    let subject = match subject_of(&a.artifact)? {
        Some(s) => s,
        None => {
            data = std::fs::read(&a.artifact).with_context(|| format!("reading {}", a.artifact))?;
            Subject::Blob(&data)
        }
    };
    let now = jiff::Timestamp::now();
    let json = a.flags.output == "json";
    let mut verified = 0;
    let mut failures = vec![];
    for b in &bundles {
        let bytes = serde_json::to_vec(b).expect("json");
        let st = crate::core::cosign::statement_of_bundle(&bytes);
        if st.as_ref().and_then(|s| s["predicateType"].as_str()) != Some(want.as_str()) {
            continue;
        }
        let hint = b.pointer("/verificationMaterial/publicKey/hint").and_then(Value::as_str);
        let authority = match (hint, &npm_keys) {
            (Some(h), Some(keys)) => {
                // the key's window is checked against the entry's integrated time after verifying
                match crate::core::npm::registry_key(keys, h, None) {
                    Ok(a) => a,
                    Err(e) => {
                        failures.push(e);
                        continue;
                    }
                }
            }
            _ => a.flags.authority()?,
        };
        match verify_bundle(&tm, &bytes, subject, &authority, now) {
            Ok(v) => {
                if let (Some(h), Some(keys)) = (hint, &npm_keys)
                    && let Err(e) = crate::core::npm::registry_key(keys, h, v.integrated_time)
                {
                    failures.push(e);
                    continue;
                }
                verified += 1;
                if json {
                    println!("{}", serde_json::json!({"verified": true, "predicateType": want, "signer": v}));
                } else {
                    eprintln!(
                        "Verified OK: {} ({want}) signed by {}{}",
                        a.artifact,
                        v.signer,
                        v.issuer.as_ref().map(|i| format!(" (issuer {i})")).unwrap_or_default()
                    );
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    if verified > 0 && failures.is_empty() {
        return Ok(0);
    }
    if verified == 0 && failures.is_empty() {
        failures.push(format!("no attestation of type {want} in {}", a.bundle.display()));
    }
    for f in &failures {
        eprintln!("error: {f}");
    }
    if json {
        println!("{}", serde_json::json!({"verified": false, "predicateType": want, "errors": failures}));
    }
    Ok(1)
}
