//! C2SP tlog-cosignature/v1 with Ed25519: the witness's key and the cosignature lines it adds to
//! checkpoints, and cosigners a verifier trusts (parsed from signed-note vkeys).

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// Key ID of an Ed25519 cosigner: SHA-256(name || "\n" || 0x04 || key)[:4].
pub fn cosigner_key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x04");
    h.update(public);
    h.finalize()[..4].try_into().expect("4 bytes")
}

fn cosigned_message(body: &str, time: u64) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(body.as_bytes());
    if !body.ends_with('\n') {
        m.push(b'\n');
    }
    m
}

/// The witness: a name and an Ed25519 key.
pub struct Witness {
    pub name: String,
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness").field("name", &self.name).finish()
    }
}

impl Witness {
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, String> {
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
            return Err(format!("witness name {name:?}: a non-empty name without spaces or '+'"));
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| format!("witness key: {e}"))?;
        Ok(Self { name: name.into(), key })
    }
    pub fn public(&self) -> [u8; 32] {
        self.key.public_key().as_ref().try_into().expect("ed25519 public key")
    }
    /// The verifier key in signed-note `vkey` form: `name+hex(keyid)+base64(0x04 || key)`.
    pub fn vkey(&self) -> String {
        let mut k = vec![0x04];
        k.extend_from_slice(&self.public());
        format!("{}+{}+{}", self.name, hex::encode(cosigner_key_id(&self.name, &self.public())), B64.encode(k))
    }
    /// A cosignature line (`— name base64(keyid || time || sig)\n`) over a checkpoint body.
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let sig = self.key.sign(&cosigned_message(body, time));
        let mut blob = cosigner_key_id(&self.name, &self.public()).to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(sig.as_ref());
        format!("\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// A cosigner a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    pub public: [u8; 32],
}

impl Cosigner {
    /// Parse a vkey of signature type 0x04 (Ed25519 cosignature/v1).
    pub fn from_vkey(vkey: &str) -> Result<Self, String> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("vkey {vkey:?}: expected name+keyid+key"));
        };
        let raw = B64.decode(key).map_err(|e| format!("vkey {name}: {e}"))?;
        if raw.len() != 33 || raw[0] != 0x04 {
            return Err(format!("vkey {name}: not an Ed25519 cosignature/v1 key (type 0x04, 32 bytes)"));
        }
        let public: [u8; 32] = raw[1..].try_into().expect("32");
        if hex::encode(cosigner_key_id(name, &public)) != id.to_ascii_lowercase() {
            return Err(format!("vkey {name}: key ID {id} does not match the key"));
        }
        Ok(Self { name: name.into(), public })
    }

    /// Does `note` (checkpoint text with signature lines) carry a valid cosignature by this
    /// cosigner? Returns its timestamp.
    pub fn cosigned(&self, note: &str) -> Option<u64> {
        let (body, sigs) = note.split_once("\n\n")?;
        let body = format!("{body}\n");
        let id = cosigner_key_id(&self.name, &self.public);
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else { continue };
            let Some((name, b64)) = rest.rsplit_once(' ') else { continue };
            if name != self.name {
                continue;
            }
            let Ok(blob) = B64.decode(b64) else { continue };
            if blob.len() != 4 + 8 + 64 || blob[..4] != id {
                continue;
            }
            let time = u64::from_be_bytes(blob[4..12].try_into().expect("8"));
            if UnparsedPublicKey::new(&ED25519, &self.public).verify(&cosigned_message(&body, time), &blob[12..]).is_ok() {
                return Some(time);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignatures_round_trip_and_bind_everything() {
        let w = Witness::from_seed("witness.internal/w1", &[7; 32]).unwrap();
        let body = "example.com/log\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let note = format!("{body}\n\u{2014} example.com/log AAAA\n{}", w.cosign(body, 1_679_315_147));
        let c = Cosigner::from_vkey(&w.vkey()).unwrap();
        assert_eq!(c.cosigned(&note), Some(1_679_315_147));
        // another body, another name, another key: no
        assert_eq!(c.cosigned(&note.replace("20852163", "20852164")), None);
        let other = Witness::from_seed("witness.internal/w1", &[8; 32]).unwrap();
        assert_eq!(Cosigner::from_vkey(&other.vkey()).unwrap().cosigned(&note), None);
        assert!(Cosigner::from_vkey(&w.vkey().replacen("witness.internal/w1", "w2", 1)).unwrap_err().contains("does not match"));
        assert!(Witness::from_seed("bad name", &[1; 32]).is_err());
    }
}
