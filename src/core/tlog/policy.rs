//! C2SP tlog-policy: which witnesses' cosignatures make a checkpoint trustworthy (witnesses,
//! k-of-n groups, nested groups, the quorum).

use std::collections::{BTreeMap, BTreeSet};

use super::cosign::Cosigner;

/// A parsed `tlog-policy` file: witnesses, groups, the quorum. `log` lines are checked for
/// syntax; which logs count comes from the trusted root.
#[derive(Debug, Clone, Default)]
pub struct WitnessPolicy {
    pub witnesses: BTreeMap<String, Cosigner>,
    groups: BTreeMap<String, (usize, Vec<String>)>,
    quorum: Option<String>,
}

impl WitnessPolicy {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = WitnessPolicy::default();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split([' ', '\t']).filter(|s| !s.is_empty()).collect();
            let at = |m: String| format!("policy line {}: {m}", n + 1);
            match f[0] {
                "log" if f.len() == 2 || f.len() == 3 => {}
                "witness" if f.len() == 3 || f.len() == 4 => {
                    let c = Cosigner::from_vkey(f[2]).map_err(at)?;
                    if !names.insert(f[1].to_string()) || f[1] == "none" {
                        return Err(at(format!("name {} defined twice or reserved", f[1])));
                    }
                    if p.witnesses.values().any(|w| w.public == c.public) {
                        return Err(at("duplicate witness key".into()));
                    }
                    p.witnesses.insert(f[1].to_string(), c);
                }
                "group" if f.len() >= 4 => {
                    let members: Vec<String> = f[3..].iter().map(|s| s.to_string()).collect();
                    let mut seen = BTreeSet::new();
                    for m in &members {
                        if !names.contains(m) || m == "none" || !seen.insert(m) {
                            return Err(at(format!("group member {m} is undefined, reserved or repeated")));
                        }
                    }
                    let k = match f[2] {
                        "all" => members.len(),
                        "any" => 1,
                        k => k
                            .parse::<usize>()
                            .ok()
                            .filter(|k| *k >= 1 && *k <= members.len())
                            .ok_or_else(|| at(format!("threshold {k}: 1..={}", members.len())))?,
                    };
                    if !names.insert(f[1].to_string()) || f[1] == "none" {
                        return Err(at(format!("name {} defined twice or reserved", f[1])));
                    }
                    p.groups.insert(f[1].to_string(), (k, members));
                }
                "quorum" if f.len() == 2 => {
                    if p.quorum.is_some() {
                        return Err(at("a second quorum line".into()));
                    }
                    if f[1] != "none" && !names.contains(f[1]) {
                        return Err(at(format!("quorum {} is not defined above", f[1])));
                    }
                    p.quorum = Some(f[1].to_string());
                }
                other => return Err(at(format!("unexpected {other:?} line"))),
            }
        }
        if p.quorum.is_none() {
            return Err("policy has no quorum line".into());
        }
        Ok(p)
    }

    /// A policy with one witness required (the mirror's own).
    pub fn single(w: Cosigner) -> Self {
        let name = w.name.clone();
        Self { witnesses: [(name.clone(), w)].into(), groups: BTreeMap::new(), quorum: Some(name) }
    }

    /// Witnesses with a valid cosignature on `note`, and whether they meet the quorum.
    pub fn evaluate(&self, note: &str) -> (BTreeSet<String>, bool) {
        let signed: BTreeSet<String> = self.witnesses.iter().filter(|(_, c)| c.cosigned(note).is_some()).map(|(n, _)| n.clone()).collect();
        let q = self.quorum.as_deref().unwrap_or("none");
        let ok = q == "none" || self.satisfied(q, &signed, 0);
        (signed, ok)
    }

    fn satisfied(&self, name: &str, signed: &BTreeSet<String>, depth: usize) -> bool {
        if depth > 64 {
            return false;
        }
        if self.witnesses.contains_key(name) {
            return signed.contains(name);
        }
        match self.groups.get(name) {
            Some((k, members)) => members.iter().filter(|m| self.satisfied(m, signed, depth + 1)).count() >= *k,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cosign::Witness;
    use super::*;
    #[test]
    fn policy_quorums() {
        let ws: Vec<Witness> = (1..=4).map(|i| Witness::from_seed(&format!("w{i}"), &[i as u8; 32]).unwrap()).collect();
        let body = "log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let note = |signers: &[usize]| format!("{body}\n{}", signers.iter().map(|i| ws[*i].cosign(body, 1)).collect::<String>());
        let text = format!(
            "# two of three, and the fourth\nwitness X1 {}\nwitness X2 {}\nwitness X3 {}\ngroup X 2 X1 X2 X3\nwitness Y {} https://y\ngroup XY all X Y\nquorum XY\n",
            ws[0].vkey(),
            ws[1].vkey(),
            ws[2].vkey(),
            ws[3].vkey()
        );
        let p = WitnessPolicy::parse(&text).unwrap();
        assert!(p.evaluate(&note(&[0, 1, 3])).1);
        assert!(!p.evaluate(&note(&[0, 3])).1, "only one X");
        assert!(!p.evaluate(&note(&[0, 1, 2])).1, "no Y");
        assert_eq!(p.evaluate(&note(&[0, 1, 2])).0.len(), 3);
        assert!(WitnessPolicy::parse("quorum none\n").unwrap().evaluate(body).1);
        for bad in [
            "witness A x\nquorum A\n",
            &format!("witness A {}\nquorum B\n", ws[0].vkey()),
            &format!("witness A {}\ngroup G 3 A\nquorum G\n", ws[0].vkey()),
            &format!("witness A {}\nwitness B {}\nquorum A\n", ws[0].vkey(), ws[0].vkey()),
            "",
            "frobnicate\nquorum none\n",
        ] {
            assert!(WitnessPolicy::parse(bad).is_err(), "{bad}");
        }
    }
}
