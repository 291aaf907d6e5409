//! DSSE envelopes signed with a key (ECDSA P-256 or Ed25519, PKCS#8), verified against named
//! public keys: the gate's verification summaries and the air-gap bundles' exporter signatures.
//! Keys and signatures go through sigstore-crypto; the pre-authentication encoding is
//! sigstore-types'.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sigstore_types::{DerPublicKey, SignatureBytes};

/// A signing key.
pub struct Signer {
    key: sigstore_crypto::KeyPair,
    /// SHA-256 of the public key's SPKI, hex (the envelope's keyid, a bundle's key hint).
    pub keyid: String,
    pub spki_der: Vec<u8>,
}

impl Signer {
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, String> {
        let key = sigstore_crypto::KeyPair::from_pkcs8_der(der).map_err(|e| format!("not a usable PKCS#8 signing key: {e}"))?;
        let spki_der = key.public_key_der().map_err(|e| format!("public key: {e}"))?.as_bytes().to_vec();
        Ok(Self { keyid: crate::core::digest::sha256_hex(&spki_der), key, spki_der })
    }

    /// `payload` in a DSSE envelope signed with this key.
    pub fn envelope(&self, payload_type: &str, payload: &[u8]) -> Result<Value, String> {
        let pae = sigstore_types::dsse::pae(payload_type, payload);
        let sig = self.key.sign(&pae).map_err(|e| format!("signing: {e}"))?;
        Ok(json!({
            "payload": B64.encode(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": B64.encode(sig.as_bytes()), "keyid": self.keyid}],
        }))
    }
}

/// The payload of `envelope` if one of its signatures verifies under one of `keys` (name, SPKI
/// DER): `(key name, payload type, payload)`.
pub fn verify(envelope: &Value, keys: &[(String, Vec<u8>)]) -> Result<(String, String, Vec<u8>), String> {
    let payload_type = envelope.get("payloadType").and_then(Value::as_str).ok_or("the envelope has no payloadType")?;
    let payload =
        envelope.get("payload").and_then(Value::as_str).and_then(|p| B64.decode(p).ok()).ok_or("the envelope's payload is not base64")?;
    let pae = sigstore_types::dsse::pae(payload_type, &payload);
    let sigs: Vec<Vec<u8>> = envelope
        .get("signatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("sig").and_then(Value::as_str).and_then(|x| B64.decode(x).ok()))
        .collect();
    let signer = keys.iter().find(|(_, spki)| {
        sigstore_crypto::VerificationKey::from_spki(&DerPublicKey::new(spki.clone()))
            .is_ok_and(|k| sigs.iter().any(|s| k.verify(&pae, &SignatureBytes::new(s.clone())).is_ok()))
    });
    match signer {
        Some((name, _)) => Ok((name.clone(), payload_type.to_string(), payload)),
        None => Err(format!("not signed by any of the {} key(s) given", keys.len())),
    }
}
