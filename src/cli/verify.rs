//! Offline, cosign-compatible verification commands: `verify-blob` (and `verify`,
//! `verify-attestation` for images). Every decision is the engine's (`core::verify`).

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::core::verify::{Authority, IdentityPolicy, Matcher, Subject, TrustedMaterial, Verified, VerifyError, verify_bundle};

/// Flags shared by every verify command (cosign's names).
#[derive(Args, Debug, Clone, Default)]
pub struct VerifyFlags {
    /// trusted_root.json to verify against (default: the embedded Sigstore production root).
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// Use the embedded Sigstore staging trusted root.
    #[arg(long, conflicts_with = "trusted_root")]
    pub staging: bool,
    /// Verify with this public key (PEM) instead of a keyless identity.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Expected certificate identity (SAN: email or URI).
    #[arg(long)]
    pub certificate_identity: Option<String>,
    /// Expected certificate identity, as a regular expression (anchored).
    #[arg(long, conflicts_with = "certificate_identity")]
    pub certificate_identity_regexp: Option<String>,
    /// Expected OIDC issuer.
    #[arg(long)]
    pub certificate_oidc_issuer: Option<String>,
    /// Expected OIDC issuer, as a regular expression (anchored).
    #[arg(long, conflicts_with = "certificate_oidc_issuer")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Expected GitHub repository (`owner/repo`) the workflow ran in.
    #[arg(long)]
    pub certificate_github_workflow_repository: Option<String>,
    /// Expected git ref the workflow ran on (`refs/heads/main`).
    #[arg(long)]
    pub certificate_github_workflow_ref: Option<String>,
    /// Output: text or json.
    #[arg(long, default_value = "text")]
    pub output: String,
}

impl VerifyFlags {
    pub fn trusted_material(&self) -> anyhow::Result<Tm> {
        Ok(match (&self.trusted_root, self.staging) {
            (Some(p), _) => {
                let b = std::fs::read(p).with_context(|| format!("reading trusted root {}", p.display()))?;
                Tm::Owned(Box::new(TrustedMaterial::from_json(&p.display().to_string(), &b)?))
            }
            (None, true) => Tm::Embedded(TrustedMaterial::staging()),
            (None, false) => Tm::Embedded(TrustedMaterial::production()),
        })
    }

    pub fn authority(&self) -> anyhow::Result<Authority> {
        if let Some(k) = &self.key {
            let pem = std::fs::read_to_string(k).with_context(|| format!("reading key {}", k.display()))?;
            return Ok(Authority::key_pem(&k.display().to_string(), &pem)?);
        }
        let san = match (&self.certificate_identity, &self.certificate_identity_regexp) {
            (Some(s), _) => Matcher::Exact(s.clone()),
            (None, Some(r)) => Matcher::regex(r)?,
            (None, None) => return Err(anyhow!("--certificate-identity or --certificate-identity-regexp is required (or --key)")),
        };
        let issuer = match (&self.certificate_oidc_issuer, &self.certificate_oidc_issuer_regexp) {
            (Some(s), _) => Matcher::Exact(s.clone()),
            (None, Some(r)) => Matcher::regex(r)?,
            (None, None) => return Err(anyhow!("--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required (or --key)")),
        };
        Ok(Authority::Keyless(IdentityPolicy {
            san: Some(san),
            issuer: Some(issuer),
            github_repository: self.certificate_github_workflow_repository.clone(),
            github_ref: self.certificate_github_workflow_ref.clone().map(Matcher::Exact),
            github_workflow: None,
        }))
    }
}

/// A trusted root loaded from a file, or an embedded one.
pub enum Tm {
    Owned(Box<TrustedMaterial>),
    Embedded(&'static TrustedMaterial),
}

impl std::ops::Deref for Tm {
    type Target = TrustedMaterial;
    fn deref(&self) -> &TrustedMaterial {
        match self {
            Tm::Owned(b) => b,
            Tm::Embedded(r) => r,
        }
    }
}

#[derive(Args, Debug)]
pub struct VerifyBlobArgs {
    /// The Sigstore bundle (v0.1–v0.3; message signature or DSSE).
    #[arg(long)]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub flags: VerifyFlags,
    /// The artifact, or `sha256:HEX` (for DSSE: a subject of the in-toto statement).
    pub artifact: String,
}

/// Parse `sha256:<64 hex>`.
pub fn parse_digest(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    let v = hex::decode(hex).ok()?;
    v.try_into().ok()
}

fn report(ok: Result<Verified, VerifyError>, what: &str, json: bool) -> i32 {
    match ok {
        Ok(v) => {
            if json {
                println!("{}", serde_json::json!({"verified": true, "subject": what, "signer": v}));
            } else {
                eprintln!("Verified OK: {what}");
                eprintln!("  signer: {}{}", v.signer, v.issuer.as_ref().map(|i| format!(" (issuer {i})")).unwrap_or_default());
                if let Some(t) = v.integrated_time {
                    eprintln!("  logged: {t}");
                }
                if let Some(st) = &v.statement {
                    eprintln!("  statement: {}", st.predicate_type);
                }
            }
            0
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({"verified": false, "subject": what, "check": e.check, "error": e.detail}));
            }
            eprintln!("error: verification of {what} failed: {e}");
            1
        }
    }
}

pub fn verify_blob(a: VerifyBlobArgs) -> anyhow::Result<i32> {
    let tm = a.flags.trusted_material()?;
    let authority = a.flags.authority()?;
    let bundle = std::fs::read(&a.bundle).with_context(|| format!("reading bundle {}", a.bundle.display()))?;
    let json = a.flags.output == "json";
    let now = jiff::Timestamp::now();
    let res = if let Some(d) = parse_digest(&a.artifact) {
        verify_bundle(&tm, &bundle, Subject::Sha256(d), &authority, now)
    } else {
        let data = std::fs::read(&a.artifact).with_context(|| format!("reading artifact {}", a.artifact))?;
        verify_bundle(&tm, &bundle, Subject::Blob(&data), &authority, now)
    };
    Ok(report(res, &a.artifact, json))
}
