//! The verify commands' flags (cosign's and slsa-verifier's names), and how they become trusted
//! material and an authority. Apart from the commands, so that the contract adapters
//! (`cli::slsa_verifier`, `cli::verify_blob_attestation`) read the flags without reaching into
//! the commands that call them.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::core::verify::{Authority, IdentityPolicy, Matcher, TrustedMaterial};

/// Flags shared by every verify command (cosign's names).
#[derive(Args, Debug, Clone, Default)]
pub struct VerifyFlags {
    /// trusted_root.json to verify against (default: the embedded Sigstore production root).
    #[arg(long, env = "TRUSTMIRROR_TRUSTED_ROOT")]
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
    /// Also check the bundle's log checkpoint against the witnessed history in this trustmirror
    /// store (`tlog sync`): a root the history contradicts is a split view.
    #[arg(long)]
    pub tlog_history: Option<PathBuf>,
    /// With --tlog-history: a C2SP tlog-policy file the witnessed checkpoint's cosignatures
    /// must satisfy (k-of-n witnesses).
    #[arg(long, requires = "tlog_history")]
    pub witness_policy: Option<PathBuf>,
    /// With --tlog-history: a checkpoint newer than (or never proven against) the history.
    #[arg(long, value_enum, default_value_t = super::tlog::UnwitnessedArg::Deny, requires = "tlog_history")]
    pub unwitnessed: super::tlog::UnwitnessedArg,
    /// The artifact, or `sha256:HEX` (for DSSE: a subject of the in-toto statement).
    pub artifact: String,
}

/// Where an image comes from, for `verify` and `verify-attestation`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(flatten)]
    pub flags: VerifyFlags,
    /// Read the image from an OCI image layout directory (cosign save / oras / skopeo oci:).
    #[arg(long)]
    pub local_image: Option<PathBuf>,
    /// Allow plain HTTP to the image's registry.
    #[arg(long, env = "TRUSTMIRROR_ALLOW_INSECURE_REGISTRY")]
    pub allow_insecure_registry: bool,
    #[command(flatten)]
    pub credentials: super::RegistryCredentialArgs,
    /// The image (`registry/repo:tag` or `registry/repo@sha256:…`); with --local-image, an
    /// optional tag or digest inside the layout.
    pub image: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyAttestationArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Predicate type: a URI, or cosign's names (slsaprovenance, slsaprovenance1, spdxjson,
    /// cyclonedx, vuln, custom).
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    /// slsa-verifier: the expected source repository (`github.com/org/repo`); turns on
    /// slsa-verifier's checks and messages.
    #[arg(long)]
    pub source_uri: Option<String>,
    /// slsa-verifier: the expected source branch.
    #[arg(long, requires = "source_uri")]
    pub source_branch: Option<String>,
    /// slsa-verifier: the expected source tag.
    #[arg(long, requires = "source_uri")]
    pub source_tag: Option<String>,
    /// slsa-verifier: the expected builder (`…/workflow.yml@refs/tags/vX`, the version optional);
    /// default: slsa-github-generator's container generator.
    #[arg(long, requires = "source_uri")]
    pub builder_id: Option<String>,
    /// slsa-verifier: print the verified provenance statement on stdout.
    #[arg(long)]
    pub print_provenance: bool,
}
