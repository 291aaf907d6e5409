//! slsa-verifier's contract on `verify-attestation` (`--source-uri`, `--source-branch`,
//! `--source-tag`, `--builder-id`, `--print-provenance`), and its messages and exit status,
//! so a script written for `slsa-verifier verify-image` runs unchanged (`trustmirror` installed
//! as `slsa-verifier`: see `main`). The builder is the certificate's signer (the reusable
//! workflow that built and signed); the source is the certificate's source-repository and
//! source-ref claims — the checks slsa-verifier makes on GitHub Actions provenance.

use super::verify_args::VerifyAttestationArgs;
use crate::core::verify::Verified;

/// slsa-verifier's default trusted builder for container images.
const CONTAINER_GENERATOR: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml";

fn check(a: &VerifyAttestationArgs, src: &str, v: &Verified) -> Result<String, String> {
    let want_repo =
        src.trim_start_matches("git+https://").trim_start_matches("https://").trim_start_matches("github.com/").trim_end_matches('/');
    let got_repo = v.claims.source_repository.as_deref().unwrap_or_default().trim_start_matches("https://github.com/");
    if got_repo != want_repo {
        return Err(format!(
            "source used to generate the binary does not match provenance: expected source '{want_repo}', got '{got_repo}'"
        ));
    }
    let git_ref = v.claims.source_ref.as_deref().unwrap_or_default();
    if let Some(b) = &a.source_branch
        && git_ref != format!("refs/heads/{b}")
    {
        return Err(format!("branch used to generate the binary does not match provenance: expected '{b}', got '{git_ref}'"));
    }
    if let Some(t) = &a.source_tag
        && git_ref != format!("refs/tags/{t}")
    {
        return Err(format!("tag used to generate the binary does not match provenance: expected '{t}', got '{git_ref}'"));
    }
    // the builder: the signing workflow (name@ref); the flag's version, if any, must match
    let (name, version) = v.signer.split_once('@').unwrap_or((v.signer.as_str(), ""));
    match &a.builder_id {
        Some(b) => {
            let (bn, bv) = b.split_once('@').unwrap_or((b.as_str(), ""));
            if bn != name || (!bv.is_empty() && bv != version && format!("refs/tags/{bv}") != version) {
                return Err(format!("builderID does not match provenance: expected name '{b}', got '{}'", v.signer));
            }
        }
        None if name != CONTAINER_GENERATOR => return Err(format!("untrusted reusable workflow: {name}")),
        None => {}
    }
    if !version.starts_with("refs/tags/v") {
        return Err(format!("invalid ref: {version:?} (the builder must be referenced by a version tag)"));
    }
    Ok(v.signer.clone())
}

/// Print and exit as slsa-verifier does: the first attestation that passes every check wins.
pub fn report(
    a: &VerifyAttestationArgs,
    src: &str,
    ok: &mut [(String, Verified, Vec<u8>, Option<Vec<u8>>)],
    refused: &[String],
    name: &str,
    digest: &str,
) -> i32 {
    if !a.image.image.as_deref().unwrap_or_default().contains("@sha256:") && a.image.local_image.is_none() {
        eprintln!("FAILED: SLSA verification failed: the image is mutable: '{}'", a.image.image.as_deref().unwrap_or(name));
        return 1;
    }
    let mut errors: Vec<String> = refused.to_vec();
    for (_, v, b, _) in ok.iter() {
        match check(a, src, v) {
            Ok(builder) => {
                let commit = v.statement.as_ref().and_then(|s| {
                    s.predicate
                        .pointer("/materials/0/digest/sha1")
                        .or_else(|| s.predicate.pointer("/buildDefinition/resolvedDependencies/0/digest/gitCommit"))
                        .and_then(|x| x.as_str())
                });
                eprintln!("Verified build using builder {builder:?} at commit {}", commit.unwrap_or("(unknown)"));
                if a.print_provenance
                    && let Some(p) = payload_bytes(b)
                {
                    // the statement exactly as signed
                    println!("{}", String::from_utf8_lossy(&p));
                }
                eprintln!("PASSED: SLSA verification passed");
                return 0;
            }
            Err(e) => errors.push(e),
        }
    }
    let _ = digest;
    match errors.split_first() {
        Some((first, [])) => eprintln!("FAILED: SLSA verification failed: {first}"),
        Some((first, rest)) => eprintln!("FAILED: SLSA verification failed: {first}: {rest:?}"),
        None => eprintln!("FAILED: SLSA verification failed: no valid signature"),
    }
    1
}

/// The DSSE payload (the in-toto statement's bytes) of a verified bundle or wrapped layer.
fn payload_bytes(bundle: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let v: serde_json::Value = serde_json::from_slice(bundle).ok()?;
    let env: serde_json::Value = if crate::core::legacy_att::is_wrapped(bundle) {
        serde_json::from_slice(&b64.decode(v["layer"].as_str()?).ok()?).ok()?
    } else {
        v["dsseEnvelope"].clone()
    };
    b64.decode(env["payload"].as_str()?).ok()
}
