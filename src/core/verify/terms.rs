//! The engine's terms: who may sign ([`Authority`]), what was signed ([`Subject`]), and what a
//! verification yields ([`Verified`], with its in-toto [`Statement`]).

use jiff::Timestamp;
use serde::Serialize;
use sigstore_types::DerPublicKey;

use super::error::{Check, VerifyError, VerifyResult};
use crate::core::identity::{Claims, IdentityPolicy};

/// One acceptable signer.
#[derive(Debug, Clone)]
pub enum Authority {
    Keyless(IdentityPolicy),
    /// A long-lived key (cosign `--key`): SubjectPublicKeyInfo DER.
    Key {
        name: String,
        spki_der: Vec<u8>,
    },
}

impl Authority {
    /// A name for messages: the key's, or `keyless`.
    pub fn name(&self) -> &str {
        match self {
            Authority::Key { name, .. } => name,
            Authority::Keyless(_) => "keyless",
        }
    }

    /// A key authority from PEM.
    pub fn key_pem(name: &str, pem: &str) -> VerifyResult<Self> {
        let k = DerPublicKey::from_pem(pem).map_err(|e| VerifyError::new(Check::Parse, format!("public key {name}: {e}")))?;
        Ok(Authority::Key { name: name.into(), spki_der: k.as_bytes().to_vec() })
    }
}

/// What is being verified.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The artifact's bytes.
    Blob(&'a [u8]),
    /// Only its SHA-256 (an image manifest digest, or `sha256:` on the command line).
    Sha256([u8; 32]),
    /// Only its SHA-512 (npm package tarballs are named by it).
    Sha512([u8; 64]),
}

/// An in-toto statement carried by a DSSE envelope.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub predicate_type: String,
    pub subjects: Vec<(String, String)>,
    pub predicate: serde_json::Value,
}

/// A signature that verified, and who made it.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// SAN of the certificate, or the key's name.
    pub signer: String,
    pub issuer: Option<String>,
    pub claims: Claims,
    pub integrated_time: Option<Timestamp>,
    /// Verified signing times (SETs, RFC 3161 timestamps).
    pub timestamps: Vec<Timestamp>,
    pub statement: Option<Statement>,
}

impl From<sigstore_types::Statement> for Statement {
    /// A statement sigstore-types parsed (subject digests as lowercase hex).
    fn from(s: sigstore_types::Statement) -> Self {
        Statement {
            predicate_type: s.predicate_type,
            subjects: s.subject.into_iter().map(|x| (x.name, x.digest.sha256.map(|d| d.to_hex()).unwrap_or_default())).collect(),
            predicate: s.predicate,
        }
    }
}
