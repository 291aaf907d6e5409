//! Keys from files: public keys (PEM) that key-signed material is verified with, and the
//! witness's Ed25519 signing key (a hex seed, created with mode 0600 on first use).

use std::path::{Path, PathBuf};

use crate::core::tlog::Witness;
use crate::core::verify::Authority;

/// Why a key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
}

fn read_err(p: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::Read { path: p.display().to_string(), detail: e.to_string() }
}

/// Public keys (PEM files) as (name, SubjectPublicKeyInfo DER); the name is the file path.
pub fn load_public_keys(paths: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    paths
        .iter()
        .map(|p| {
            let pem = std::fs::read_to_string(p).map_err(|e| read_err(p, e))?;
            match Authority::key_pem(&p.display().to_string(), &pem)
                .map_err(|e| KeyError::Invalid { path: p.display().to_string(), detail: e.detail })?
            {
                Authority::Key { name, spki_der } => Ok((name, spki_der)),
                Authority::Keyless(_) => unreachable!("key_pem returns a key authority"),
            }
        })
        .collect()
}

/// Load the witness key from `path` (64 hex characters), creating it (mode 0600) if missing.
pub fn load_witness(path: &Path, name: &str) -> Result<Witness, KeyError> {
    let invalid = |d: String| KeyError::Invalid { path: path.display().to_string(), detail: d };
    let seed: [u8; 32] = match std::fs::read_to_string(path) {
        Ok(t) => hex::decode(t.trim()).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| invalid("expected 64 hex characters".into()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let seed: [u8; 32] = rand::random();
            if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d).map_err(|e| read_err(path, e))?;
            }
            // create_new: two processes starting at once must not overwrite each other's key
            let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(path).map_err(|e| read_err(path, e))?;
            writeln!(f, "{}", hex::encode(seed)).and_then(|_| f.sync_all()).map_err(|e| read_err(path, e))?;
            seed
        }
        Err(e) => return Err(read_err(path, e)),
    };
    Witness::from_seed(name, &seed).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_keys_are_created_once_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w/witness.key");
        let a = load_witness(&p, "w.example/w").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_witness(&p, "w.example/w").unwrap().public(), a.public());
        std::fs::write(&p, "not hex").unwrap();
        assert!(matches!(load_witness(&p, "w.example/w"), Err(KeyError::Invalid { .. })));
        assert!(matches!(load_public_keys(&[d.path().join("missing.pem")]), Err(KeyError::Read { .. })));
    }
}
