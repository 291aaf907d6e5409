//! The fuzz entry points on stable: real fixtures, every truncation point of a stride, byte flips
//! and deterministic random splices. Any panic fails the test and names the input that caused it.
//! (`cargo +nightly fuzz run <target>` in `fuzz/` explores the same entry points for longer.)

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

fn files(rel: &str, pred: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![common::fixture(rel)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if pred(&p.to_string_lossy()) {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// xorshift: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn mutations(seed: &[u8], rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let mut out = vec![seed.to_vec(), vec![], seed[..seed.len() / 2].to_vec()];
    let len = seed.len().max(1);
    for i in 0..n {
        let mut m = seed.to_vec();
        match i % 4 {
            0 => {
                let at = (rng.next() as usize) % len;
                m.truncate(at);
            }
            1 if !m.is_empty() => {
                let at = (rng.next() as usize) % m.len();
                m[at] ^= 1 << (rng.next() % 8);
            }
            2 if !m.is_empty() => {
                let at = (rng.next() as usize) % m.len();
                let b = [b'"', b'{', b'}', b'[', b']', b',', b':', b'0', b'-', b'\\', 0xff, b'\n'][(rng.next() % 12) as usize];
                m.insert(at, b);
            }
            _ => {
                // splice a random window of the seed onto itself
                let a = (rng.next() as usize) % len;
                let b = (rng.next() as usize) % len;
                let (a, b) = (a.min(b), a.max(b));
                let piece = seed[a..b].to_vec();
                let at = (rng.next() as usize) % len;
                m.splice(at.min(m.len())..at.min(m.len()), piece);
            }
        }
        out.push(m);
    }
    out
}

fn run(name: &str, f: fn(&[u8]), corpus: &[(String, Vec<u8>)], per_seed: usize) -> usize {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut n = 0;
    for (path, seed) in corpus {
        for m in mutations(seed, &mut rng, per_seed) {
            if catch_unwind(AssertUnwindSafe(|| f(&m))).is_err() {
                let out = std::env::temp_dir().join(format!("trustmirror-fuzz-{name}.bin"));
                std::fs::write(&out, &m).unwrap();
                panic!("{name} panicked on a mutation of {path}; input saved to {}", out.display());
            }
            n += 1;
        }
    }
    n
}

#[test]
fn parsers_never_panic_on_mutated_real_inputs() {
    let bundles = files("sigstore/sigstore-conformance/test/assets/bundle-verify", |p| p.ends_with("bundle.sigstore.json"));
    assert!(bundles.len() >= 60);
    let certs = files("sigstore/sigstore-python/test/assets/x509", |p| p.ends_with(".pem"));
    let roots = files("sigstore", |p| p.contains("trusted_root") && p.ends_with(".json"));
    let tuf = files("tuf/sigstore-root-signing/metadata", |p| p.ends_with(".json"));
    // checkpoints out of the bundles
    let checkpoints: Vec<(String, Vec<u8>)> = bundles
        .iter()
        .filter_map(|(p, b)| {
            let v: serde_json::Value = serde_json::from_slice(b).ok()?;
            let c = v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"].as_str()?;
            Some((p.clone(), c.as_bytes().to_vec()))
        })
        .collect();
    // DSSE envelopes out of the bundles (plus their tails as cosign annotations)
    let dsse: Vec<(String, Vec<u8>)> = bundles
        .iter()
        .filter_map(|(p, b)| {
            let v: serde_json::Value = serde_json::from_slice(b).ok()?;
            Some((p.clone(), serde_json::to_vec(v.get("dsseEnvelope")?).ok()?))
        })
        .collect();
    let der_certs: Vec<(String, Vec<u8>)> = certs
        .iter()
        .map(|(p, pem)| {
            use base64::Engine;
            let body: String = String::from_utf8_lossy(pem).lines().filter(|l| !l.starts_with("-----")).collect();
            (p.clone(), base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default())
        })
        .collect();

    let mut total = 0;
    total += run("bundle", trustmirror::fuzz::bundle, &bundles, 40);
    total += run("dsse", trustmirror::fuzz::dsse, &dsse, 40);
    total += run("checkpoint", trustmirror::fuzz::checkpoint, &checkpoints, 40);
    total += run("certificate", trustmirror::fuzz::certificate, &der_certs, 60);
    // Fulcio leaves with embedded SCTs (the SCT parser and the precertificate rebuild)
    let leaves: Vec<(String, Vec<u8>)> = bundles
        .iter()
        .filter_map(|(p, b)| {
            use base64::Engine;
            let v: serde_json::Value = serde_json::from_slice(b).ok()?;
            let raw = v["verificationMaterial"]["certificate"]["rawBytes"].as_str()?;
            Some((p.clone(), base64::engine::general_purpose::STANDARD.decode(raw).ok()?))
        })
        .take(8)
        .collect();
    assert!(leaves.len() >= 4, "Fulcio leaves from the conformance bundles");
    total += run("certificate-fulcio", trustmirror::fuzz::certificate, &leaves, 60);
    total += run("certificate-pem", trustmirror::fuzz::certificate, &certs, 30);
    total += run("trusted_root", trustmirror::fuzz::trusted_root, &roots, 20);
    total += run("tuf_metadata", trustmirror::fuzz::tuf_metadata, &tuf, 20);
    // AdmissionReviews of every admitted kind
    use trustmirror::admission::review;
    let pod = review::pod(
        "p",
        "ns",
        &["registry.internal/myorg/app:v1", "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"],
    );
    let spec = pod["spec"].clone();
    let objects = [
        pod.clone(),
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": spec.clone()}}}),
        serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
    ];
    let reviews: Vec<(String, Vec<u8>)> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (format!("review {i}"), serde_json::to_vec(&review::request_for("u", "ns", o)).unwrap()))
        .collect();
    total += run("admission_review", trustmirror::fuzz::admission_review, &reviews, 150);
    // witness inputs: checkpoints, an add-checkpoint body, a tlog-policy, a cosigned note
    let w = trustmirror::core::tlog::Witness::from_seed("w.example/w1", &[3; 32]).unwrap();
    let mut witness: Vec<(String, Vec<u8>)> = checkpoints.iter().take(8).cloned().collect();
    if let Some((_, cp)) = checkpoints.first() {
        let cp = String::from_utf8_lossy(cp).into_owned();
        let body = cp.split_once("\n\n").map(|x| x.0).unwrap_or(&cp).to_string() + "\n";
        witness.push(("add-checkpoint".into(), format!("old 10\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\n{cp}").into_bytes()));
        witness.push(("cosigned".into(), format!("{cp}{}", w.cosign(&body, 1_700_000_000)).into_bytes()));
    }
    witness.push(("policy".into(), format!("witness a {}\ngroup g any a\nquorum g\n", w.vkey()).into_bytes()));
    witness.extend(bundles.iter().take(4).cloned());
    total += run("witness", trustmirror::fuzz::witness, &witness, 60);
    // admission policies
    let policies = vec![
        ("demo-policy".to_string(), std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/bundles/policy/demo-policy.yaml")).unwrap()),
        ("demo-banned".to_string(), std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/bundles/policy/demo-banned.yaml")).unwrap()),
    ];
    total += run("policy", trustmirror::fuzz::policy, &policies, 150);
    // the seed's documents in every format (CIP with CUE, Kyverno, Gatekeeper)
    let seed = files("seed-policies/testbed", |p| p.ends_with(".yaml") && !p.contains("argocd"));
    assert!(seed.len() >= 5, "the seed's policy documents");
    total += run("policy-formats", trustmirror::fuzz::policy, &seed, 60);
    // CUE sources from policy-controller's docs and tests, evaluated
    let cue: Vec<(String, Vec<u8>)> = files("policy-formats/cue/cases", |p| p.ends_with(".yaml"))
        .into_iter()
        .filter_map(|(p, b)| {
            let v: serde_yaml::Value = serde_yaml::from_slice(&b).ok()?;
            Some((p, v.get("cue")?.as_str()?.as_bytes().to_vec()))
        })
        .collect();
    assert!(cue.len() >= 40, "CUE cases: {}", cue.len());
    total += run("cue", trustmirror::fuzz::cue, &cue, 20);
    eprintln!("{total} mutated inputs, no panic");
    assert!(total > 3000);
}
