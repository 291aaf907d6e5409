//! Why a verification refused: the check, and what exactly was wrong. The vocabulary every
//! verification module speaks (`core::keyless`, `core::fulcio`, `core::sct`, `core::rekor_log`,
//! `core::legacy_att`, `core::identity`), below the engine that dispatches to them.

use serde::Serialize;

/// Which check refused the input. Stable strings: they appear in messages, metrics and audit logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The input is not a well-formed document of the expected kind.
    Parse,
    /// A bundle media type or version, entry kind or payload type this verifier does not support.
    Unsupported,
    /// The trusted root itself is unusable.
    TrustRoot,
    /// The signing certificate does not chain to a trusted CA, or was not valid when signing.
    Certificate,
    /// The embedded signed certificate timestamp is missing or invalid.
    Sct,
    /// Rekor entry, SET, inclusion proof or checkpoint.
    TransparencyLog,
    /// RFC 3161 timestamp.
    Timestamp,
    /// The signature does not verify.
    Signature,
    /// The signed artifact (or in-toto subject) is not the one being verified.
    Artifact,
    /// The certificate's SAN is not the expected identity.
    Identity,
    /// The certificate's OIDC issuer is not the expected one.
    Issuer,
    /// A CI claim (repository, ref, workflow) does not match.
    Claim,
    /// Not signed by the expected key.
    Key,
    /// Fewer valid signatures than required.
    Threshold,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Parse => "parse",
            Check::Unsupported => "unsupported",
            Check::TrustRoot => "trust-root",
            Check::Certificate => "certificate",
            Check::Sct => "sct",
            Check::TransparencyLog => "transparency-log",
            Check::Timestamp => "timestamp",
            Check::Signature => "signature",
            Check::Artifact => "artifact",
            Check::Identity => "identity",
            Check::Issuer => "issuer",
            Check::Claim => "claim",
            Check::Key => "key",
            Check::Threshold => "threshold",
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: which check, and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{check} check failed: {detail}")]
pub struct VerifyError {
    pub check: Check,
    pub detail: String,
}

impl VerifyError {
    pub fn new(check: Check, detail: impl Into<String>) -> Self {
        Self { check, detail: detail.into() }
    }

    pub(crate) fn from_sigstore(e: sigstore_verify::Error) -> Self {
        use sigstore_verify::Error as E;
        use sigstore_verify::error::CertificateError as C;
        let check = match &e {
            E::IdentityMismatch { .. } => Check::Identity,
            E::IssuerMismatch { .. } => Check::Issuer,
            E::SignatureInvalid(_) | E::Crypto(_) => Check::Signature,
            E::ArtifactMismatch(_) | E::UnsupportedArtifact(_) | E::ArtifactRead(_) => Check::Artifact,
            E::Certificate(C::Sct(_)) => Check::Sct,
            E::Certificate(_) => Check::Certificate,
            E::TransparencyLog(_) => Check::TransparencyLog,
            E::Timestamp(_) => Check::Timestamp,
            E::UnsupportedBundle(_) => Check::Unsupported,
            E::InvalidTrustRoot(_) | E::TrustRoot(_) | E::TrustedCertificate(_) => Check::TrustRoot,
            E::Bundle(b) => {
                // Structural bundle errors: say which part is wrong.
                let m = b.to_string();
                if m.contains("inclusion proof") || m.contains("checkpoint") || m.contains("tlog") || m.contains("log entr") {
                    Check::TransparencyLog
                } else if m.contains("certificate") {
                    Check::Certificate
                } else if m.contains("timestamp") {
                    Check::Timestamp
                } else {
                    Check::Parse
                }
            }
            E::InvalidBundle(m) if m.contains("certificate") => Check::Certificate,
            E::InvalidBundle(_) | E::Types(_) => Check::Parse,
            _ => Check::Parse,
        };
        Self::new(check, crate::core::tuf::display_chain(&e))
    }
}

pub type VerifyResult<T> = Result<T, VerifyError>;
