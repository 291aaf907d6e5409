//! The one-pass keyless path (`core::keyless`, what `verify_bundle` uses for keyless bundles with
//! one Rekor v1 hashedrekord/dsse entry) held against sigstore-verify (`verify_with_sigstore`):
//! the same accept or refuse, the same check, the same signer and times —
//!
//! * on every sigstore-conformance case, by path and by digest;
//! * on mutations of every happy case both paths take (signature, digest, payload, SET, log
//!   index, integrated time, proof, checkpoint, body, certificate, log ID), for several subjects,
//!   identities and clocks;
//! * on testbed bundles built so that only the consistency checks can refuse them: a valid SET
//!   and inclusion proof over a body that records another certificate, digest or signature, or
//!   the right certificate in a PEM layout no client writes.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use trustmirror::core::keyless::covers;
use trustmirror::core::verify::{
    Authority, Check, IdentityPolicy, Matcher, Subject, TrustedMaterial, Verified, parse_bundle, verify_parsed, verify_with_sigstore,
};
use trustmirror::testbed::pki::Identity;
use trustmirror::testbed::rekor::{dsse_body, hashedrekord_body, pem_b64};
use trustmirror::testbed::sigstore::{Signer, SigstoreStack};

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

type Outcome = Result<(String, Option<String>, String, Option<jiff::Timestamp>, Vec<jiff::Timestamp>), Check>;

fn outcome(r: Result<Verified, trustmirror::core::verify::VerifyError>) -> Outcome {
    r.map(|v| (v.signer, v.issuer, format!("{:?}", v.claims), v.integrated_time, v.timestamps)).map_err(|e| e.check)
}

/// Both paths on one bundle; `None` when the bundle does not parse (one parser serves both) or
/// is not one the one-pass path takes.
fn both(tm: &TrustedMaterial, json: &[u8], subject: Subject<'_>, a: &Authority, now: jiff::Timestamp) -> Option<(Outcome, Outcome)> {
    let b = parse_bundle(json).ok()?;
    if !covers(&b) {
        return None;
    }
    Some((outcome(verify_parsed(tm, &b, subject, a, now)), outcome(verify_with_sigstore(tm, &b, subject, a, now))))
}

/// Both paths on a one-pass bundle: the same outcome, and the expected refusal (`None`:
/// accepted). The signing times when accepted.
fn agree(
    tm: &TrustedMaterial,
    json: &[u8],
    subject: Subject<'_>,
    a: &Authority,
    now: jiff::Timestamp,
    what: &str,
    want: Option<Check>,
) -> Option<Vec<jiff::Timestamp>> {
    let (fast, reference) = both(tm, json, subject, a, now).expect("a one-pass bundle");
    assert_eq!(fast, reference, "{what}");
    assert_eq!(fast.as_ref().err().copied(), want, "{what}: {fast:?}");
    fast.ok().map(|v| v.4)
}

fn keyless(san: &str, issuer: &str) -> Authority {
    Authority::Keyless(IdentityPolicy {
        san: Some(Matcher::Exact(san.into())),
        issuer: Some(Matcher::Exact(issuer.into())),
        ..Default::default()
    })
}

fn corpus() -> PathBuf {
    common::fixture("sigstore/sigstore-conformance/test/assets/bundle-verify")
}

fn case_root(dir: &Path) -> Option<TrustedMaterial> {
    std::fs::read(dir.join("trusted_root.json")).ok().and_then(|b| TrustedMaterial::from_json("case", &b).ok())
}

fn read(dir: &Path, f: &str, default: &str) -> String {
    std::fs::read_to_string(dir.join(f)).map(|s| s.trim().to_string()).unwrap_or(default.into())
}

#[test]
fn both_paths_answer_every_conformance_case_alike() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let (mut compared, mut accepted, mut refused) = (0, 0, 0);
    for d in &dirs {
        if d.join("key.pub").exists() {
            continue; // key-signed: not the one-pass path's
        }
        let own = case_root(d);
        let tm = own.as_ref().unwrap_or(TrustedMaterial::production());
        let a = keyless(&read(d, "identity", IDENTITY), &read(d, "issuer", ISSUER));
        let artifact = std::fs::read(d.join("artifact")).unwrap_or_else(|_| std::fs::read(corpus().join("a.txt")).unwrap());
        let json = std::fs::read(d.join("bundle.sigstore.json")).unwrap();
        let digest: [u8; 32] = Sha256::digest(&artifact).into();
        for subject in [Subject::Blob(&artifact), Subject::Sha256(digest)] {
            if let Some((fast, reference)) = both(tm, &json, subject, &a, jiff::Timestamp::now()) {
                assert_eq!(fast, reference, "{}", d.display());
                compared += 1;
                if fast.is_ok() { accepted += 1 } else { refused += 1 }
            }
        }
    }
    eprintln!("{compared} comparisons: {accepted} accepted, {refused} refused by both");
    assert!(accepted >= 10 && refused >= 20, "{accepted} accepted, {refused} refused");
}

fn b64_edit(v: &mut Value, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = B64.decode(v.as_str().unwrap()).unwrap();
    f(&mut b);
    *v = B64.encode(b).into();
}

fn flip_last(b: &mut [u8]) {
    let n = b.len();
    b[n - 1] ^= 1;
}

/// Named edits of a happy bundle.
fn mutations(b: &Value) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = vec![];
    let mut m = |name: &'static str, f: &dyn Fn(&mut Value)| {
        let mut c = b.clone();
        f(&mut c);
        out.push((name, c));
    };
    let e = "/verificationMaterial/tlogEntries/0";
    fn edit(v: &mut Value, p: &str, f: impl FnOnce(&mut Value)) {
        if let Some(x) = v.pointer_mut(p) {
            f(x)
        }
    }
    m("message signature", &|v| edit(v, "/messageSignature/signature", |x| b64_edit(x, |b| flip_last(b))));
    m("message digest", &|v| edit(v, "/messageSignature/messageDigest/digest", |x| b64_edit(x, |b| flip_last(b))));
    m("no message digest", &|v| {
        if let Some(o) = v.pointer_mut("/messageSignature").and_then(Value::as_object_mut) {
            o.remove("messageDigest");
        }
    });
    m("dsse signature", &|v| edit(v, "/dsseEnvelope/signatures/0/sig", |x| b64_edit(x, |b| flip_last(b))));
    m("dsse payload", &|v| edit(v, "/dsseEnvelope/payload", |x| b64_edit(x, |b| b.push(b' '))));
    m("dsse payload type", &|v| edit(v, "/dsseEnvelope/payloadType", |x| *x = "application/json".into()));
    m("integrated time", &|v| {
        edit(v, &format!("{e}/integratedTime"), |x| *x = (x.as_str().unwrap().parse::<i64>().unwrap() + 1).to_string().into())
    });
    m("log index", &|v| edit(v, &format!("{e}/logIndex"), |x| *x = (x.as_str().unwrap().parse::<i64>().unwrap() + 1).to_string().into()));
    m("SET", &|v| edit(v, &format!("{e}/inclusionPromise/signedEntryTimestamp"), |x| b64_edit(x, |b| flip_last(b))));
    m("proof hash", &|v| edit(v, &format!("{e}/inclusionProof/hashes/0"), |x| b64_edit(x, |b| flip_last(b))));
    m("proof root", &|v| edit(v, &format!("{e}/inclusionProof/rootHash"), |x| b64_edit(x, |b| flip_last(b))));
    m("proof size", &|v| {
        edit(v, &format!("{e}/inclusionProof/treeSize"), |x| *x = (x.as_str().unwrap().parse::<i64>().unwrap() + 1).to_string().into())
    });
    m("checkpoint", &|v| {
        edit(v, &format!("{e}/inclusionProof/checkpoint/envelope"), |x| *x = x.as_str().unwrap().replacen('\n', "\nx", 1).into())
    });
    m("no proof", &|v| {
        if let Some(o) = v.pointer_mut(e).and_then(Value::as_object_mut) {
            o.remove("inclusionProof");
        }
    });
    m("body", &|v| edit(v, &format!("{e}/canonicalizedBody"), |x| b64_edit(x, |b| b[20] ^= 1)));
    m("log ID", &|v| edit(v, &format!("{e}/logId/keyId"), |x| b64_edit(x, |b| flip_last(b))));
    m("RFC 3161 timestamp", &|v| {
        edit(v, "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp", |x| b64_edit(x, |b| flip_last(b)))
    });
    m("no RFC 3161 timestamp", &|v| {
        if let Some(o) = v.pointer_mut("/verificationMaterial").and_then(Value::as_object_mut) {
            o.remove("timestampVerificationData");
        }
    });
    m("kind", &|v| edit(v, &format!("{e}/kindVersion/kind"), |x| *x = if x == "dsse" { "hashedrekord".into() } else { "dsse".into() }));
    for p in ["/verificationMaterial/certificate/rawBytes", "/verificationMaterial/x509CertificateChain/certificates/0/rawBytes"] {
        m("certificate signature", &|v| edit(v, p, |x| b64_edit(x, |b| flip_last(b))));
        // a byte inside the embedded SCT list (the extensions end ~0x60 bytes before the signature)
        m("certificate SCT", &|v| {
            edit(v, p, |x| {
                b64_edit(x, |b| {
                    let n = b.len();
                    b[n - 0x60] ^= 1
                })
            })
        });
    }
    out
}

#[test]
fn both_paths_answer_mutations_of_every_happy_case_alike() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let (mut compared, mut refused, mut cases) = (0, 0, 0);
    for d in dirs.iter().filter(|d| !d.to_string_lossy().ends_with("_fail") && !d.join("key.pub").exists()) {
        let own = case_root(d);
        let tm = own.as_ref().unwrap_or(TrustedMaterial::production());
        let json = std::fs::read(d.join("bundle.sigstore.json")).unwrap();
        let Ok(parsed) = parse_bundle(&json) else { continue };
        if !covers(&parsed) {
            continue;
        }
        cases += 1;
        let b: Value = serde_json::from_slice(&json).unwrap();
        let artifact = std::fs::read(d.join("artifact")).unwrap_or_else(|_| std::fs::read(corpus().join("a.txt")).unwrap());
        let sha256: [u8; 32] = Sha256::digest(&artifact).into();
        let sha512: [u8; 64] = Sha512::digest(&artifact).into();
        // a clock before the signing (the log's time; 2020 for Rekor v2 bundles, which have none)
        let t: i64 = b["verificationMaterial"]["tlogEntries"][0]["integratedTime"].as_str().map_or(1_577_840_400, |s| s.parse().unwrap());
        let before = jiff::Timestamp::from_second(t - 3600).unwrap();
        let right = keyless(&read(d, "identity", IDENTITY), &read(d, "issuer", ISSUER));
        let wrong = keyless("https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main", ISSUER);
        let any = Authority::Keyless(IdentityPolicy::default());
        let mut variants = vec![("as is", b.clone())];
        variants.extend(mutations(&b));
        for (name, v) in &variants {
            let bytes = serde_json::to_vec(v).unwrap();
            let subjects = [Subject::Blob(&artifact), Subject::Sha256(sha256), Subject::Sha512(sha512), Subject::Blob(b"another artifact")];
            for (s, a, now) in subjects
                .iter()
                .flat_map(|s| [(s, &right, jiff::Timestamp::now()), (s, &any, jiff::Timestamp::now())])
                .chain([(&subjects[0], &wrong, jiff::Timestamp::now()), (&subjects[0], &right, before)])
            {
                if let Some((fast, reference)) = both(tm, &bytes, *s, a, now) {
                    assert_eq!(fast, reference, "{} / {name} / {s:?} / {} / {now}", d.display(), a.name());
                    compared += 1;
                    refused += fast.is_err() as usize;
                }
            }
        }
    }
    eprintln!("{cases} happy cases, {compared} comparisons, {refused} refused by both");
    assert!(cases >= 10 && compared >= 1000 && refused >= 700, "{cases} cases, {compared} comparisons, {refused} refused");
}

/// A keyless bundle whose one Rekor v1 entry (valid SET and proof) logs `body`, with no RFC 3161
/// timestamp, so the SET gives the signing time — the one-pass path's kind of bundle.
fn logged(stack: &SigstoreStack, signer: &Signer, content: Value, body: &Value, at: jiff::Timestamp) -> Vec<u8> {
    let entry = stack.rekor.lock().unwrap().append(body, at.as_second());
    let Signer::Keyless { cert_der, .. } = signer else { panic!("keyless") };
    let mut b = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"certificate": {"rawBytes": B64.encode(cert_der)}, "tlogEntries": [entry.bundle_json()]},
    });
    let key = if content.get("payloadType").is_some() { "dsseEnvelope" } else { "messageSignature" };
    b[key] = content;
    serde_json::to_vec(&b).unwrap()
}

#[test]
fn both_paths_refuse_entries_that_record_another_bundle() {
    let now = jiff::Timestamp::now();
    let at = now.checked_sub(jiff::SignedDuration::from_mins(1)).unwrap();
    let stack = SigstoreStack::new("keyless-paths", now);
    let tm = TrustedMaterial::from_json("testbed", stack.trusted_root("http://127.0.0.1:1").to_string().as_bytes()).unwrap();
    let id = Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/main");
    let a = keyless(&id.san, &id.issuer);
    let signer = stack.keyless(&id, at);
    let other = stack.keyless(&id, at);
    let artifact = b"release.tar".as_slice();
    let digest = Sha256::digest(artifact).to_vec();
    let sig = signer.key().sign(artifact);
    let content = json!({"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(&digest)}, "signature": B64.encode(&sig)});
    let Signer::Keyless { cert_der, .. } = &signer else { unreachable!() };
    let pem = trustmirror::testbed::keys::pem("CERTIFICATE", cert_der);

    let crlf = B64.encode(pem.replace('\n', "\r\n"));
    let wide = {
        let b = B64.encode(cert_der);
        let lines: Vec<&str> = b.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
        B64.encode(format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n")))
    };
    let cases: Vec<(&str, Value, Option<Check>)> = vec![
        ("as signed", hashedrekord_body(&digest, &sig, &signer.verifier_pem_b64()), None),
        ("another certificate", hashedrekord_body(&digest, &sig, &other.verifier_pem_b64()), Some(Check::TransparencyLog)),
        ("another digest", hashedrekord_body(&Sha256::digest(b"x"), &sig, &signer.verifier_pem_b64()), Some(Check::Artifact)),
        (
            "another signature",
            hashedrekord_body(&digest, &other.key().sign(artifact), &signer.verifier_pem_b64()),
            Some(Check::TransparencyLog),
        ),
        (
            "the certificate as a public key",
            hashedrekord_body(&digest, &sig, &pem_b64("PUBLIC KEY", cert_der)),
            Some(Check::TransparencyLog),
        ),
        ("CRLF line ends", hashedrekord_body(&digest, &sig, &crlf), None),
        ("76-column lines", hashedrekord_body(&digest, &sig, &wide), None),
    ];
    for (name, body, want) in &cases {
        let json = logged(&stack, &signer, content.clone(), body, at);
        agree(&tm, &json, Subject::Blob(artifact), &a, now, name, *want);
    }

    // logged after the certificate's ten minutes
    let early = now.checked_sub(jiff::SignedDuration::from_mins(60)).unwrap();
    let expired = stack.keyless(&id, early);
    let esig = expired.key().sign(artifact);
    let econtent = json!({"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(&digest)}, "signature": B64.encode(&esig)});
    let json = logged(&stack, &expired, econtent, &hashedrekord_body(&digest, &esig, &expired.verifier_pem_b64()), at);
    agree(&tm, &json, Subject::Blob(artifact), &a, now, "logged after the certificate's ten minutes", Some(Check::Certificate));

    // DSSE: the entry records another payload, or two signatures
    let statement = json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1", "predicate": {},
        "subject": [{"name": "release.tar", "digest": {"sha256": hex::encode(&digest)}}]});
    let payload = serde_json::to_vec(&statement).unwrap();
    let (env, dsig) = stack.dsse(&signer, "application/vnd.in-toto+json", &payload);
    let dcontent = json!({"payload": B64.encode(&payload), "payloadType": "application/vnd.in-toto+json", "signatures": [{"sig": B64.encode(&dsig), "keyid": ""}]});
    let good = dsse_body(&env, &payload, &dsig, &signer.verifier_pem_b64());
    let mut other_payload = good.clone();
    other_payload["spec"]["payloadHash"]["value"] = hex::encode(Sha256::digest(b"{}")).into();
    let mut two = good.clone();
    let s0 = two["spec"]["signatures"][0].clone();
    two["spec"]["signatures"].as_array_mut().unwrap().push(s0);
    let mut other_cert = good.clone();
    other_cert["spec"]["signatures"][0]["verifier"] = other.verifier_pem_b64().into();
    // intoto 0.0.2: the same, and the certificate's key logged as a public key (accepted)
    let (ienv, isig) = (env.clone(), dsig.clone());
    let igood =
        trustmirror::testbed::rekor::intoto_body(&ienv, "application/vnd.in-toto+json", &payload, &isig, &signer.verifier_pem_b64());
    let mut as_key = igood.clone();
    as_key["spec"]["content"]["envelope"]["signatures"][0]["publicKey"] = pem_b64("PUBLIC KEY", &signer.key().spki).into();
    let mut other_key = igood.clone();
    other_key["spec"]["content"]["envelope"]["signatures"][0]["publicKey"] = pem_b64("PUBLIC KEY", &other.key().spki).into();
    let mut other_type = igood.clone();
    other_type["spec"]["content"]["envelope"]["payloadType"] = "application/json".into();
    let mut other_sig = igood.clone();
    other_sig["spec"]["content"]["envelope"]["signatures"][0]["sig"] = B64.encode(B64.encode(other.key().sign(b"x"))).into();
    for (name, body, want) in [
        ("intoto as signed", igood, None),
        ("intoto key as PUBLIC KEY", as_key, None),
        ("intoto another key", other_key, Some(Check::TransparencyLog)),
        ("intoto another payload type", other_type, Some(Check::TransparencyLog)),
        ("intoto another signature", other_sig, Some(Check::TransparencyLog)),
    ] {
        let json = logged(&stack, &signer, dcontent.clone(), &body, at);
        agree(&tm, &json, Subject::Blob(artifact), &a, now, name, want);
    }

    for (name, body, want) in [
        ("as signed", good, None),
        ("another payload", other_payload, Some(Check::TransparencyLog)),
        ("two signatures", two, Some(Check::TransparencyLog)),
        ("another certificate", other_cert, Some(Check::TransparencyLog)),
    ] {
        let json = logged(&stack, &signer, dcontent.clone(), &body, at);
        agree(&tm, &json, Subject::Blob(artifact), &a, now, &format!("dsse {name}"), want);
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") && e.metadata().is_ok_and(|m| m.len() < 1 << 20) {
            out.push(p);
        }
    }
}

/// Every bundle among the fixtures (production, staging and GitHub instances, npm documents'
/// bundles), verified for the digest it claims (the message digest, or the statement's first
/// subject) against the production and staging roots, with any identity and with another one.
#[test]
fn both_paths_answer_every_real_bundle_among_the_fixtures_alike() {
    let mut files = vec![];
    json_files(&common::fixture(""), &mut files);
    files.sort();
    let roots = [TrustedMaterial::production(), TrustedMaterial::staging()];
    let any = Authority::Keyless(IdentityPolicy::default());
    let wrong = keyless("https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main", ISSUER);
    let (mut bundles, mut accepted, mut compared) = (0, 0, 0);
    for f in &files {
        let Ok(doc) = serde_json::from_slice::<Value>(&std::fs::read(f).unwrap()) else { continue };
        for b in trustmirror::core::npm::attestation_bundles(doc) {
            let bytes = serde_json::to_vec(&b).unwrap();
            let Ok(parsed) = parse_bundle(&bytes) else { continue };
            if !covers(&parsed) {
                continue;
            }
            bundles += 1;
            let claimed: Option<Vec<u8>> =
                b["messageSignature"]["messageDigest"]["digest"].as_str().and_then(|d| B64.decode(d).ok()).or_else(|| {
                    let payload = B64.decode(b["dsseEnvelope"]["payload"].as_str()?).ok()?;
                    let st: Value = serde_json::from_slice(&payload).ok()?;
                    let d = &st["subject"][0]["digest"];
                    hex::decode(d["sha256"].as_str().or(d["sha512"].as_str())?).ok()
                });
            let Some(digest) = claimed else { continue };
            let subject = match digest.len() {
                32 => Subject::Sha256(digest.try_into().unwrap()),
                64 => Subject::Sha512(digest.try_into().unwrap()),
                _ => continue,
            };
            for tm in roots {
                for a in [&any, &wrong] {
                    let (fast, reference) = both(tm, &bytes, subject, a, jiff::Timestamp::now()).unwrap();
                    assert_eq!(fast, reference, "{} ({}, {})", f.display(), tm.name, a.name());
                    compared += 1;
                    accepted += fast.is_ok() as usize;
                }
            }
        }
    }
    eprintln!("{bundles} one-pass bundles among the fixtures, {compared} comparisons, {accepted} accepted by both");
    assert!(bundles >= 20 && accepted >= 10, "{bundles} bundles, {accepted} accepted");
}

/// Rekor v2 entries (RFC 3161 time, inclusion proof to the tiles checkpoint, no SET) that record
/// another certificate, digest or signature, or a public key: only the certificate's own key is
/// accepted in place of the certificate.
#[test]
fn both_paths_answer_crafted_rekor_v2_entries_alike() {
    let now = jiff::Timestamp::now();
    let at = now.checked_sub(jiff::SignedDuration::from_mins(1)).unwrap();
    let stack = SigstoreStack::new("keyless-paths-v2", now);
    let tm = TrustedMaterial::from_json("tiles", stack.trusted_root_with_tiles("http://127.0.0.1:1").to_string().as_bytes()).unwrap();
    let id = Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/main");
    let a = keyless(&id.san, &id.issuer);
    let (signer, other) = (stack.keyless(&id, at), stack.keyless(&id, at));
    let artifact = b"release.tar".as_slice();
    let digest = Sha256::digest(artifact).to_vec();
    let sig = signer.key().sign(artifact);
    let Signer::Keyless { cert_der, .. } = &signer else { unreachable!() };
    let Signer::Keyless { cert_der: other_cert, .. } = &other else { unreachable!() };
    let body = |digest: &[u8], sig: &[u8], verifier: Value| {
        json!({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
            "data": {"algorithm": "SHA2_256", "digest": B64.encode(digest)},
            "signature": {"content": B64.encode(sig), "verifier": verifier}}}})
    };
    let cert = |der: &[u8]| json!({"x509Certificate": {"rawBytes": B64.encode(der)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"});
    let key = |spki: &[u8]| json!({"publicKey": {"rawBytes": B64.encode(spki)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"});
    let cases: Vec<(&str, Value, Option<Check>)> = vec![
        ("as signed", body(&digest, &sig, cert(cert_der)), None),
        ("the certificate's key", body(&digest, &sig, key(&signer.key().spki)), None),
        ("another certificate", body(&digest, &sig, cert(other_cert)), Some(Check::TransparencyLog)),
        ("another key", body(&digest, &sig, key(&other.key().spki)), Some(Check::TransparencyLog)),
        ("another digest", body(&Sha256::digest(b"x"), &sig, cert(cert_der)), Some(Check::Artifact)),
        ("another signature", body(&digest, &other.key().sign(artifact), cert(cert_der)), Some(Check::TransparencyLog)),
    ];
    for (name, body, want) in cases {
        let entry = stack.rekor.lock().unwrap().append_v2(&body);
        let b = json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": B64.encode(cert_der)}, "tlogEntries": [entry],
                "timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp": B64.encode(stack.tsa.stamp(&sig, at, None))}]}},
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(&digest)}, "signature": B64.encode(&sig)},
        });
        agree(&tm, &serde_json::to_vec(&b).unwrap(), Subject::Blob(artifact), &a, now, name, want);
    }
}

/// A bundle with two signing times (an RFC 3161 timestamp, then the SET) is checked at both: the
/// one-pass path reuses the chain it verified at the first time only while the anchor's CA is
/// still valid, so a CA window that closes between the two times refuses it on both paths.
#[test]
fn both_paths_check_the_chain_at_every_signing_time() {
    let now = jiff::Timestamp::now();
    let mins = |m: i64| now.checked_sub(jiff::SignedDuration::from_mins(m)).unwrap();
    let (issued, stamped, logged_at) = (mins(30), mins(29), mins(25));
    let stack = SigstoreStack::new("keyless-paths-times", now);
    let id = Identity::github_workflow("myorg/app", ".github/workflows/build.yml", "refs/heads/main");
    let a = keyless(&id.san, &id.issuer);
    let signer = stack.keyless(&id, issued);
    let artifact = b"release.tar".as_slice();
    let digest = Sha256::digest(artifact).to_vec();
    let sig = signer.key().sign(artifact);
    let Signer::Keyless { cert_der, .. } = &signer else { unreachable!() };
    let entry = stack.rekor.lock().unwrap().append(&hashedrekord_body(&digest, &sig, &signer.verifier_pem_b64()), logged_at.as_second());
    let b = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"certificate": {"rawBytes": B64.encode(cert_der)}, "tlogEntries": [entry.bundle_json()],
            "timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp": B64.encode(stack.tsa.stamp(&sig, stamped, None))}]}},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(&digest)}, "signature": B64.encode(&sig)},
    });
    let json = serde_json::to_vec(&b).unwrap();
    let root = stack.trusted_root("http://127.0.0.1:1");
    for (window_end, want) in [(None, None), (Some(mins(27)), Some(Check::Certificate)), (Some(mins(1)), None)] {
        let mut r = root.clone();
        if let Some(end) = window_end {
            for ca in r["certificateAuthorities"].as_array_mut().unwrap() {
                ca["validFor"]["end"] = end.to_string().into();
            }
        }
        let tm = TrustedMaterial::from_json("testbed", r.to_string().as_bytes()).unwrap();
        let times = agree(&tm, &json, Subject::Blob(artifact), &a, now, &format!("CA window ending {window_end:?}"), want);
        if want.is_none() {
            assert_eq!(times.unwrap().len(), 2, "two signing times");
        }
    }
}
