//! Signing keys for the testbed's repositories (and tests): Ed25519, ECDSA P-256 and RSA-PSS,
//! with aws-lc-rs — the same crypto provider rustls uses in this binary. Ed25519 and P-256 keys
//! can be derived from a seed so a testbed is reproducible.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    Ed25519,
    EcdsaP256,
    RsaPss,
}

enum Inner {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

pub struct SigningKey {
    pub kind: KeyKind,
    inner: Inner,
    /// The TUF public key object (`keytype`, `scheme`, `keyval.public`).
    pub public: Value,
    /// The TUF key id: SHA-256 of the canonical JSON of `public`.
    pub keyid: String,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kind", &self.kind).field("keyid", &self.keyid).finish()
    }
}

pub use crate::core::pem::encode as pem;

/// RFC 5915 ECPrivateKey for P-256 holding only the scalar; aws-lc derives the public point.
fn p256_rfc5915(scalar: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20];
    der.extend_from_slice(scalar);
    der.extend_from_slice(&[0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
    der
}

impl SigningKey {
    /// A key derived from `seed` (Ed25519 and P-256), or freshly generated (RSA, or when no seed).
    pub fn new(kind: KeyKind, seed: Option<&[u8]>) -> Self {
        let inner = match (kind, seed) {
            (KeyKind::Ed25519, Some(s)) => Inner::Ed(Ed25519KeyPair::from_seed_unchecked(&Sha256::digest(s)).expect("32-byte seed")),
            (KeyKind::Ed25519, None) => Inner::Ed(Ed25519KeyPair::generate().expect("keygen")),
            (KeyKind::EcdsaP256, Some(s)) => {
                let mut h: [u8; 32] = Sha256::digest(s).into();
                loop {
                    if let Ok(k) = EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &p256_rfc5915(&h)) {
                        break Inner::Ec(k);
                    }
                    h = Sha256::digest(h).into(); // scalar out of range (p ≈ 2^-32): derive again
                }
            }
            (KeyKind::EcdsaP256, None) => Inner::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("keygen")),
            (KeyKind::RsaPss, _) => Inner::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("keygen")),
        };
        let (spki_der, public) = match &inner {
            Inner::Ed(k) => {
                let spki = k.public_key().as_der().expect("der").as_ref().to_vec();
                (spki, json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(k.public_key().as_ref())}}))
            }
            Inner::Ec(k) => {
                let spki = k.public_key().as_der().expect("der").as_ref().to_vec();
                let p = pem("PUBLIC KEY", &spki);
                (spki, json!({"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": p}}))
            }
            Inner::Rsa(k) => {
                let spki = k.public_key().as_der().expect("der").as_ref().to_vec();
                let p = pem("PUBLIC KEY", &spki);
                (spki, json!({"keytype": "rsa", "scheme": "rsassa-pss-sha256", "keyval": {"public": p}}))
            }
        };
        let keyid = hex::encode(Sha256::digest(sigstore_tuf::canonical_json::to_canonical_bytes(&public).expect("canonical")));
        Self { kind, inner, public, keyid, spki_der }
    }

    /// Sign `msg` (Ed25519; ECDSA P-256 SHA-256 ASN.1/DER; RSASSA-PSS SHA-256).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Inner::Ec(k) => k.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            Inner::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PSS_SHA256, &rng, msg, &mut sig).expect("sign");
                sig
            }
        }
    }

    /// Public key as PEM SubjectPublicKeyInfo.
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki_der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_keys_are_reproducible_and_verify_through_sigstore_tuf() {
        for kind in [KeyKind::Ed25519, KeyKind::EcdsaP256, KeyKind::RsaPss] {
            let k = SigningKey::new(kind, Some(b"seed-1"));
            if kind != KeyKind::RsaPss {
                assert_eq!(k.keyid, SigningKey::new(kind, Some(b"seed-1")).keyid);
                assert_ne!(k.keyid, SigningKey::new(kind, Some(b"seed-2")).keyid);
            }
            let tuf: sigstore_tuf::Key = serde_json::from_value(k.public.clone()).unwrap();
            let sig = k.sign(b"message");
            tuf.verify(b"message", &sigstore_types::SignatureBytes::new(sig.clone())).unwrap();
            assert!(tuf.verify(b"messagf", &sigstore_types::SignatureBytes::new(sig)).is_err());
            assert_eq!(tuf.key_id().unwrap(), k.keyid);
        }
    }
}
