//! Offline verification throughput on production Sigstore bundles, against (a) the floor — the
//! bare signature verifications each bundle needs, with the same crypto library (aws-lc-rs) in
//! the same run — and (b) sigstore-python and @sigstore/verify in-process over the same bundles.
//!
//! `cargo bench --bench verify` (set BENCH_SECONDS, default 3 per measurement). The comparison
//! implementations come from `.ci/install`; missing ones are reported and skipped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::{Decode, Encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trustmirror::core::verify::{
    Authority, IdentityPolicy, Matcher, Subject, TrustedMaterial, parse_bundle, verify_bundle, verify_with_sigstore,
};

/// The conformance suite's signing identity (all five production bundles).
const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

const CASES: &[&str] =
    &["happy-path-v0.1", "happy-path-v0.2", "happy-path-v0.3", "happy-path-v0.3-new-mediaType", "happy-path-intoto-in-dsse-v3"];

struct Case {
    name: String,
    bundle_path: PathBuf,
    bundle: Vec<u8>,
    /// The artifact (message signatures), or None for DSSE bundles verified by their subject.
    artifact_path: Option<PathBuf>,
    artifact: Vec<u8>,
    /// SHA-512 subject (npm tarballs), when there is no artifact.
    sha512: Option<[u8; 64]>,
    identity: String,
}

impl Case {
    fn subject(&self) -> Subject<'_> {
        match self.sha512 {
            Some(d) => Subject::Sha512(d),
            None => Subject::Blob(&self.artifact),
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load() -> Vec<Case> {
    let base = root().join("tests/fixtures/sigstore/sigstore-conformance/test/assets/bundle-verify");
    CASES
        .iter()
        .map(|n| {
            let d = base.join(n);
            let ap = if d.join("artifact").exists() { d.join("artifact") } else { base.join("a.txt") };
            Case {
                name: n.to_string(),
                bundle_path: d.join("bundle.sigstore.json"),
                bundle: std::fs::read(d.join("bundle.sigstore.json")).unwrap(),
                artifact: std::fs::read(&ap).unwrap(),
                artifact_path: Some(ap),
                sha512: None,
                identity: IDENTITY.into(),
            }
        })
        .collect()
}

/// npm packages' SLSA provenance bundles (DSSE, SHA-512 subjects; production, 2023–2024), as the
/// registry serves them in its attestations documents. The 2023 (v0.1) bundles' chains end with
/// the Fulcio root, which is dropped (`core::npm`, as `verify-blob-attestation` does) for every
/// implementation alike.
const NPM: &[(&str, &str)] = &[
    (
        "provenance-npm-test-cli-v02-prega",
        "https://github.com/laurentsimon/provenance-npm-test/.github/workflows/release.yml@refs/heads/main",
    ),
    (
        "supreme-googles-cli-v02-tag",
        "https://github.com/trishankatdatadog/supreme-goggles/.github/workflows/npm-publish.yml@refs/tags/v1.0.5",
    ),
    (
        "provenance-npm-test-ossf",
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_lowperms-generic_slsa3.yml@refs/tags/v1.6.0",
    ),
    ("provenance-npm-test-cli-v1-prega", "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"),
    ("gundam-visor-cli-v1-tag", "https://github.com/ramonpetgrave64/gundam-visor/.github/workflows/npm-publish.yml@refs/tags/v1.0.1"),
];

fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.into_iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k, without_nulls(x))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        x => x,
    }
}

fn load_npm(dir: &Path) -> Vec<Case> {
    let base = root().join("tests/fixtures/real-world/npm/slsa-verifier");
    NPM.iter()
        .map(|(n, identity)| {
            let doc: Value = serde_json::from_slice(&std::fs::read(base.join(format!("{n}.tgz.json"))).unwrap()).unwrap();
            // as verify-blob-attestation reads the document (the 2023 chains' trailing root dropped)
            let b = trustmirror::core::npm::attestation_bundles(doc)
                .into_iter()
                .find(|b| {
                    trustmirror::core::cosign::statement_of_bundle(&serde_json::to_vec(b).unwrap())
                        .is_some_and(|s| s["predicateType"].as_str().unwrap_or_default().starts_with("https://slsa.dev/provenance/"))
                })
                .unwrap();
            // 2023 documents carry `"inclusionProof": null`; in protobuf JSON a null field is an
            // absent one, but sigstore-python's model refuses it — dropped for everyone
            let b = without_nulls(b);
            let bundle = serde_json::to_vec(&b).unwrap();
            let bundle_path = dir.join(format!("{n}.sigstore.json"));
            std::fs::write(&bundle_path, &bundle).unwrap();
            let hex = std::fs::read_to_string(base.join(format!("{n}.tgz.sha512"))).unwrap();
            Case {
                name: n.to_string(),
                bundle_path,
                bundle,
                artifact_path: None,
                artifact: Vec::new(),
                sha512: Some(hex::decode(hex.trim()).unwrap().try_into().unwrap()),
                identity: identity.to_string(),
            }
        })
        .collect()
}

fn per_sec(seconds: f64, f: &mut dyn FnMut()) -> (f64, u64) {
    // warm up
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        f();
        n += 1;
    }
    (n as f64 / start.elapsed().as_secs_f64(), n)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One signature check of the floor: algorithm, key (SPKI DER), message, signature.
struct SigCheck {
    what: &'static str,
    alg: &'static dyn signature::VerificationAlgorithm,
    key: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

fn raw_point(spki: &[u8]) -> Vec<u8> {
    spki::SubjectPublicKeyInfoRef::from_der(spki).unwrap().subject_public_key.raw_bytes().to_vec()
}

fn alg_for(spki: &[u8]) -> &'static dyn signature::VerificationAlgorithm {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki).unwrap();
    let curve: const_oid::ObjectIdentifier = info.algorithm.parameters.unwrap().decode_as().unwrap();
    if curve.to_string() == "1.3.132.0.34" { &signature::ECDSA_P384_SHA384_ASN1 } else { &signature::ECDSA_P256_SHA256_ASN1 }
}

/// The signature verifications a production bundle needs, extracted so they can be timed alone.
fn floor_checks(c: &Case, tm: &Value) -> Vec<SigCheck> {
    let b: Value = serde_json::from_slice(&c.bundle).unwrap();
    let vm = &b["verificationMaterial"];
    let leaf_der = vm["certificate"]["rawBytes"].as_str().or(vm["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str()).unwrap();
    let leaf_der = B64.decode(leaf_der).unwrap();
    let leaf = x509_cert::Certificate::from_der(&leaf_der).unwrap();
    // the issuing intermediate: the CA certificate in the trusted root whose subject is the leaf's issuer
    let cas: Vec<x509_cert::Certificate> = tm["certificateAuthorities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|ca| ca["certChain"]["certificates"].as_array().unwrap().iter())
        .map(|c| x509_cert::Certificate::from_der(&B64.decode(c["rawBytes"].as_str().unwrap()).unwrap()).unwrap())
        .collect();
    let issuer = cas.iter().find(|ca| ca.tbs_certificate.subject == leaf.tbs_certificate.issuer).expect("issuer in trusted root");
    let issuer_spki = issuer.tbs_certificate.subject_public_key_info.to_der().unwrap();
    let leaf_spki = leaf.tbs_certificate.subject_public_key_info.to_der().unwrap();
    let mut out = vec![SigCheck {
        what: "certificate (leaf by intermediate)",
        alg: alg_for(&issuer_spki),
        key: raw_point(&issuer_spki),
        msg: leaf.tbs_certificate.to_der().unwrap(),
        sig: leaf.signature.raw_bytes().to_vec(),
    }];
    // artifact signature
    if let Some(ms) = b.get("messageSignature") {
        out.push(SigCheck {
            what: "artifact signature",
            alg: alg_for(&leaf_spki),
            key: raw_point(&leaf_spki),
            msg: c.artifact.clone(),
            sig: B64.decode(ms["signature"].as_str().unwrap()).unwrap(),
        });
    } else {
        let env = &b["dsseEnvelope"];
        let payload = B64.decode(env["payload"].as_str().unwrap()).unwrap();
        let pae = trustmirror::testbed::sigstore::pae(env["payloadType"].as_str().unwrap(), &payload);
        out.push(SigCheck {
            what: "artifact signature (DSSE)",
            alg: alg_for(&leaf_spki),
            key: raw_point(&leaf_spki),
            msg: pae,
            sig: B64.decode(env["signatures"][0]["sig"].as_str().unwrap()).unwrap(),
        });
    }
    // SCT: over the precertificate TBS (the certificate's TBS without the SCT list)
    let sct_oid: const_oid::ObjectIdentifier = "1.3.6.1.4.1.11129.2.4.2".parse().unwrap();
    let mut tbs = leaf.tbs_certificate.clone();
    let ext = tbs.extensions.as_ref().unwrap().iter().find(|e| e.extn_id == sct_oid).unwrap().clone();
    tbs.extensions = Some(tbs.extensions.take().unwrap().into_iter().filter(|e| e.extn_id != sct_oid).collect());
    let list = der::asn1::OctetString::from_der(ext.extn_value.as_bytes()).unwrap();
    let l = list.as_bytes();
    let sct = &l[4..4 + u16::from_be_bytes([l[2], l[3]]) as usize];
    let (log_id, ts, ext_len) = (&sct[1..33], &sct[33..41], u16::from_be_bytes([sct[41], sct[42]]) as usize);
    let sig_start = 43 + ext_len + 4;
    let sct_sig = sct[sig_start..].to_vec();
    let tbs_der = tbs.to_der().unwrap();
    let mut signed = vec![0u8, 0u8];
    signed.extend_from_slice(ts);
    signed.extend_from_slice(&1u16.to_be_bytes());
    signed.extend_from_slice(&Sha256::digest(&issuer_spki));
    signed.extend_from_slice(&(tbs_der.len() as u32).to_be_bytes()[1..]);
    signed.extend_from_slice(&tbs_der);
    signed.extend_from_slice(&sct[41..43 + ext_len]);
    let ct_key =
        tm["ctlogs"].as_array().unwrap().iter().find(|l| B64.decode(l["logId"]["keyId"].as_str().unwrap()).unwrap() == log_id).unwrap();
    let ct_spki = B64.decode(ct_key["publicKey"]["rawBytes"].as_str().unwrap()).unwrap();
    out.push(SigCheck { what: "SCT", alg: alg_for(&ct_spki), key: raw_point(&ct_spki), msg: signed, sig: sct_sig });
    // Rekor: SET and checkpoint
    let e = &vm["tlogEntries"][0];
    let log = tm["tlogs"].as_array().unwrap().iter().find(|l| l["logId"]["keyId"] == e["logId"]["keyId"]).unwrap();
    let rekor_spki = B64.decode(log["publicKey"]["rawBytes"].as_str().unwrap()).unwrap();
    if let Some(set) = e["inclusionPromise"]["signedEntryTimestamp"].as_str() {
        let payload = json!({"body": e["canonicalizedBody"], "integratedTime": e["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
            "logID": hex::encode(B64.decode(e["logId"]["keyId"].as_str().unwrap()).unwrap()), "logIndex": e["logIndex"].as_str().unwrap().parse::<i64>().unwrap()});
        out.push(SigCheck {
            what: "SET",
            alg: alg_for(&rekor_spki),
            key: raw_point(&rekor_spki),
            msg: serde_json_canonicalizer::to_vec(&payload).unwrap(),
            sig: B64.decode(set).unwrap(),
        });
    }
    if let Some(note) = e["inclusionProof"]["checkpoint"]["envelope"].as_str() {
        let (body, sigs) = note.split_once("\n\n").unwrap();
        let blob = B64.decode(sigs.lines().next().unwrap().rsplit(' ').next().unwrap()).unwrap();
        out.push(SigCheck {
            what: "checkpoint",
            alg: alg_for(&rekor_spki),
            key: raw_point(&rekor_spki),
            msg: format!("{body}\n").into_bytes(),
            sig: blob[4..].to_vec(),
        });
    }
    for s in &out {
        UnparsedPublicKey::new(s.alg, &s.key)
            .verify(&s.msg, &s.sig)
            .unwrap_or_else(|_| panic!("{}: floor check {} does not verify", c.name, s.what));
    }
    out
}

/// An external implementation's rate (None: it verified none of the bundles), and the bundles it
/// could not load or verify, with why (it timed the rest).
fn run_external(cmd: &mut std::process::Command) -> Option<(Option<f64>, Vec<(String, String)>)> {
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("  failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default());
        return None;
    }
    let v: Value = serde_json::from_slice(String::from_utf8_lossy(&out.stdout).lines().last()?.as_bytes()).ok()?;
    let unsupported = v["unsupported"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| Some((u["bundle"].as_str()?.to_string(), u["error"].as_str().unwrap_or_default().to_string())))
        .collect();
    Some((v["bundles_per_s"].as_f64(), unsupported))
}

fn tools() -> PathBuf {
    std::env::var_os("TM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/trustmirror-tools"))
}

fn section(title: &str, cases: &[Case], tm_json: &Value, seconds: f64, work: &Path) {
    let tm = TrustedMaterial::production();
    let authorities: Vec<Authority> = cases
        .iter()
        .map(|c| {
            Authority::Keyless(IdentityPolicy {
                san: Some(Matcher::Exact(c.identity.clone())),
                issuer: Some(Matcher::Exact(ISSUER.into())),
                ..Default::default()
            })
        })
        .collect();
    let now = jiff::Timestamp::now();
    for (c, a) in cases.iter().zip(&authorities) {
        verify_bundle(tm, &c.bundle, c.subject(), a, now).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    }
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    println!("{title}: {} bundles ({}), one core", cases.len(), names.join(", "));

    // trustmirror (full engine: parse + verify + policy), single thread
    let mut i = 0;
    let mut ours_f = || {
        let k = i % cases.len();
        i += 1;
        verify_bundle(tm, &cases[k].bundle, cases[k].subject(), &authorities[k], now).unwrap();
    };
    if std::env::var_os("BENCH_ENGINE_ONLY").is_some() {
        let (ours, _) = per_sec(seconds, &mut ours_f);
        println!("trustmirror:        {ours:>9.0} bundles/s   {:>7.1} µs/bundle", 1e6 / ours);
        return;
    }
    // the same bundles with every check through sigstore-verify (the reference core::keyless is
    // tested against), to show what the one-pass path saves
    let mut i = 0;
    let mut reference_f = || {
        let k = i % cases.len();
        i += 1;
        let b = parse_bundle(&cases[k].bundle).unwrap();
        verify_with_sigstore(tm, &b, cases[k].subject(), &authorities[k], now).unwrap();
    };
    // floor: the bare signature verifications, same crypto library
    let checks: Vec<Vec<SigCheck>> = cases.iter().map(|c| floor_checks(c, tm_json)).collect();
    let mut j = 0;
    let mut floor_f = || {
        for s in &checks[j % checks.len()] {
            UnparsedPublicKey::new(s.alg, &s.key).verify(&s.msg, &s.sig).unwrap();
        }
        j += 1;
    };
    // interleaved rounds, so that a busy neighbour slows all three alike; medians reported
    const ROUNDS: usize = 9;
    let (mut ours_r, mut ref_r, mut floor_r, mut ratio_r) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let o = per_sec(seconds / ROUNDS as f64, &mut ours_f).0;
        let f = per_sec(seconds / ROUNDS as f64, &mut floor_f).0;
        ref_r.push(per_sec(seconds / ROUNDS as f64, &mut reference_f).0);
        ratio_r.push(f / o);
        ours_r.push(o);
        floor_r.push(f);
    }
    let (ours, reference, floor) = (median(&mut ours_r), median(&mut ref_r), median(&mut floor_r));
    ratio_r.sort_by(f64::total_cmp);
    println!("trustmirror:        {ours:>9.0} bundles/s   {:>7.1} µs/bundle", 1e6 / ours);
    println!("  via sigstore-verify: {reference:>6.0} bundles/s   {:>7.1} µs/bundle", 1e6 / reference);
    let kinds: Vec<String> = checks[0].iter().map(|s| s.what.to_string()).collect();
    println!("signature floor:    {floor:>9.0} bundles/s   {:>7.1} µs/bundle  ({})", 1e6 / floor, kinds.join(" + "));
    println!(
        "trustmirror / floor time: {:.2}x (median of {ROUNDS} interleaved rounds; {:.2}–{:.2})",
        ratio_r[ROUNDS / 2],
        ratio_r[0],
        ratio_r[ROUNDS - 1]
    );

    // the other implementations, same bundles, same run
    let manifest = work.join(format!("{}.json", title.split_whitespace().next().unwrap_or("bundles")));
    let items: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"bundle": c.bundle_path, "artifact": c.artifact_path, "digest": c.sha512.map(hex::encode),
                   "identity": c.identity, "issuer": ISSUER})
        })
        .collect();
    let trusted_root = root().join("bundles/sigstore-production-trusted_root.json");
    std::fs::write(
        &manifest,
        serde_json::to_vec(&json!({"trusted_root": trusted_root, "items": items, "identity": IDENTITY, "issuer": ISSUER})).unwrap(),
    )
    .unwrap();
    let py = tools().join("venv/bin/python");
    if Path::new(&py).exists() {
        if let Some((r, unsupported)) = run_external(
            std::process::Command::new(&py)
                .arg(root().join("benches/compare/sigstore_python_bench.py"))
                .arg(&manifest)
                .arg(seconds.to_string()),
        ) {
            match r {
                None => {
                    println!("sigstore-python:    verifies none of these bundles:");
                    for (b, e) in &unsupported {
                        println!("    {}: {e}", Path::new(b).file_name().unwrap_or_default().to_string_lossy());
                    }
                }
                Some(r) if unsupported.is_empty() => {
                    println!("sigstore-python:    {r:>9.0} bundles/s   {:>7.1} µs/bundle   trustmirror is {:.1}x faster", 1e6 / r, ours / r)
                }
                Some(r) => {
                    // time trustmirror on the same subset, in the same run
                    let subset: Vec<usize> =
                        (0..cases.len()).filter(|&k| !unsupported.iter().any(|(u, _)| Path::new(u) == cases[k].bundle_path)).collect();
                    let mut i = 0;
                    let (ours_subset, _) = per_sec(seconds, &mut || {
                        let k = subset[i % subset.len()];
                        i += 1;
                        verify_bundle(tm, &cases[k].bundle, cases[k].subject(), &authorities[k], now).unwrap();
                    });
                    println!(
                        "sigstore-python:    {r:>9.0} bundles/s   {:>7.1} µs/bundle   on the {} bundles it verifies; trustmirror on those {:.0}/s, {:.1}x faster",
                        1e6 / r,
                        subset.len(),
                        ours_subset,
                        ours_subset / r
                    );
                    for (b, e) in &unsupported {
                        println!("    refused {}: {e}", Path::new(b).file_name().unwrap_or_default().to_string_lossy());
                    }
                }
            }
        }
    } else {
        println!("sigstore-python: not installed (.ci/install)");
    }
    let nm = tools().join("node/node_modules");
    if nm.exists() {
        if let Some((Some(r), _)) = run_external(
            std::process::Command::new("node")
                .env("NODE_PATH", &nm)
                .arg(root().join("benches/compare/sigstore_js_bench.js"))
                .arg(&manifest)
                .arg(seconds.to_string()),
        ) {
            println!("@sigstore/verify:   {r:>9.0} bundles/s   {:>7.1} µs/bundle   trustmirror is {:.1}x faster", 1e6 / r, ours / r);
        }
    } else {
        println!("@sigstore/verify: not installed (.ci/install)");
    }
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let tm_json: Value = serde_json::from_slice(trustmirror::bundles::SIGSTORE_PRODUCTION_TRUSTED_ROOT).unwrap();
    let work = tempfile::tempdir().unwrap();
    section("conformance production bundles", &load(), &tm_json, seconds, work.path());
    if std::env::var_os("BENCH_ENGINE_ONLY").is_none() {
        println!();
        section("npm provenance (DSSE, sha512 subjects)", &load_npm(work.path()), &tm_json, seconds, work.path());
    }
}
