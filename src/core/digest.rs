//! SHA-256 digests in the three spellings trustmirror meets: raw bytes, lowercase hex (the
//! store's content addresses), and OCI's `sha256:<hex>`. One place, so every module agrees on
//! what a digest looks like and how a malformed one is refused.

use sha2::{Digest, Sha256};

/// SHA-256 of `b` as lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// SHA-256 of `b` as `sha256:<hex>` (an OCI descriptor digest).
pub fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(b))
}

/// Parse `sha256:<64 hex>` into its 32 bytes; anything else (another algorithm, wrong length,
/// upper-case junk that is not hex) is `None`.
pub fn parse_digest(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let v = hex::decode(hex).ok()?;
    v.try_into().ok()
}

/// Is `s` a well-formed `sha256:<64 lowercase hex>` digest?
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_and_malformed_ones_are_refused() {
        let d = sha256_digest(b"x");
        assert!(is_digest(&d));
        assert_eq!(hex::encode(parse_digest(&d).unwrap()), sha256_hex(b"x"));
        for bad in ["sha512:00", "sha256:", "sha256:zz", &format!("sha256:{}", "a".repeat(63)), &d.to_uppercase()] {
            assert!(!is_digest(bad), "{bad}");
        }
        assert!(parse_digest("sha256:abc").is_none());
    }
}

/// 64 lower-case hex characters (a sha256 blob name).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
