//! C2SP tlog-witness wire format: the body of an `add-checkpoint` request.

use base64::Engine;

use super::Hash;

/// Parse a C2SP tlog-witness `add-checkpoint` body: `old N`, proof lines (base64), a blank
/// line, the checkpoint.
pub fn parse_add_checkpoint(body: &str) -> Result<(u64, Vec<Hash>, String), String> {
    let (head, cp) = body.split_once("\n\n").ok_or("no blank line before the checkpoint")?;
    let mut lines = head.lines();
    let old = lines.next().and_then(|l| l.strip_prefix("old ")).ok_or("first line must be `old <size>`")?;
    if old.len() > 1 && old.starts_with('0') {
        return Err("old size has leading zeroes".into());
    }
    let old: u64 = old.parse().map_err(|_| format!("old size {old:?} is not a number"))?;
    let mut proof = vec![];
    for l in lines {
        let b = base64::engine::general_purpose::STANDARD.decode(l).map_err(|e| format!("proof line {l:?}: {e}"))?;
        proof.push(<Hash>::try_from(b.as_slice()).map_err(|_| format!("proof line {l:?} is not 32 bytes"))?);
        if proof.len() > 63 {
            return Err("more than 63 proof lines".into());
        }
    }
    Ok((old, proof, cp.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_checkpoint_bodies() {
        let h = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let (old, proof, cp) = parse_add_checkpoint(&format!("old 5\n{h}\n\nlog\n6\nroot\n")).unwrap();
        assert_eq!((old, proof.len(), cp.as_str()), (5, 1, "log\n6\nroot\n"));
        for bad in ["old 5\nlog", "new 5\n\nx", "old 05\n\nx", "old x\n\nx", "old 1\n!!\n\nx", "old 1\nAAAA\n\nx"] {
            assert!(parse_add_checkpoint(bad).is_err(), "{bad:?}");
        }
    }
}
