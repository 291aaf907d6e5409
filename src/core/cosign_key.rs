//! cosign's encrypted private keys (`cosign generate-key-pair`): PEM `ENCRYPTED SIGSTORE PRIVATE
//! KEY` (or the older `ENCRYPTED COSIGN PRIVATE KEY`) around JSON from go-securesystemslib's
//! `encrypted` package — `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"},
//! "cipher": {"name": "nacl/secretbox", "nonce"}, "ciphertext"}` — whose plaintext is a PKCS#8
//! DER private key. The KDF and the cipher come from RustCrypto crates; only the framing is here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use serde::Deserialize;

#[derive(Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: Params,
    salt: String,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Params {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER inside a cosign encrypted key, with `password`.
pub fn decrypt(pem: &str, password: &str) -> Result<Vec<u8>, String> {
    let body: String =
        pem.lines().skip_while(|l| !l.starts_with("-----BEGIN ENCRYPTED")).skip(1).take_while(|l| !l.starts_with("-----END")).collect();
    let json = B64.decode(body.trim()).map_err(|e| format!("not a cosign key: the PEM body is not base64 ({e})"))?;
    let e: Encrypted = serde_json::from_slice(&json).map_err(|e| format!("not a cosign key: {e}"))?;
    if e.kdf.name != "scrypt" || e.cipher.name != "nacl/secretbox" {
        return Err(format!("unsupported cosign key encryption: kdf {}, cipher {}", e.kdf.name, e.cipher.name));
    }
    let n = e.kdf.params.N;
    if !n.is_power_of_two() || !(2..=1 << 22).contains(&n) {
        return Err(format!("cosign key: scrypt N={n} is not a power of two in 2..2^22"));
    }
    let salt = B64.decode(&e.kdf.salt).map_err(|e| format!("cosign key salt: {e}"))?;
    let nonce = B64.decode(&e.cipher.nonce).map_err(|e| format!("cosign key nonce: {e}"))?;
    let ct = B64.decode(&e.ciphertext).map_err(|e| format!("cosign key ciphertext: {e}"))?;
    if nonce.len() != 24 {
        return Err(format!("cosign key: a secretbox nonce has 24 bytes, not {}", nonce.len()));
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, e.kdf.params.r, e.kdf.params.p, 32)
        .map_err(|e| format!("cosign key scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key).map_err(|e| format!("scrypt: {e}"))?;
    XSalsa20Poly1305::new(&key.into())
        .decrypt(Nonce::from_slice(&nonce), ct.as_slice())
        .map_err(|_| "the cosign key does not decrypt: wrong password (COSIGN_PASSWORD) or a damaged key".to_string())
}

#[cfg(test)]
mod tests {
    const KEY: &str = include_str!("../../tests/fixtures/keys/cosign-empty-password.key");

    #[test]
    fn a_cosign_generated_key_decrypts_with_its_password_only() {
        let der = super::decrypt(KEY, "").expect("the published key's password is empty");
        let s = crate::core::vsa::VsaSigner::from_pkcs8_der(&der).expect("PKCS#8 ECDSA P-256");
        assert_eq!(s.spki_der.len(), 91, "a P-256 SubjectPublicKeyInfo");
        let e = super::decrypt(KEY, "not the password").unwrap_err();
        assert!(e.contains("wrong password"), "{e}");
        let e = super::decrypt(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGEga2V5\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "",
        )
        .unwrap_err();
        assert!(e.contains("not a cosign key"), "{e}");
    }
}
