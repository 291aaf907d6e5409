//! Offline, cosign-compatible verification commands: `verify-blob` (and `verify`,
//! `verify-attestation` for images). Every decision is the engine's (`core::verify`).

use anyhow::{Context, anyhow};

use super::verify_args::{ImageArgs, VerifyAttestationArgs, VerifyBlobArgs};
use crate::core::verify::{Authority, Subject, TrustedMaterial, Verified, VerifyError, verify_bundle};

use crate::core::digest::parse_digest;

fn report(ok: Result<Verified, VerifyError>, what: &str, json: bool) -> i32 {
    match ok {
        Ok(v) => {
            if json {
                println!("{}", serde_json::json!({"verified": true, "subject": what, "signer": v}));
            } else {
                eprintln!("Verified OK: {what}");
                eprintln!("  signer: {}{}", v.signer, v.issuer.as_ref().map(|i| format!(" (issuer {i})")).unwrap_or_default());
                if let Some(t) = v.integrated_time {
                    eprintln!("  logged: {t}");
                }
                if let Some(st) = &v.statement {
                    eprintln!("  statement: {}", st.predicate_type);
                }
            }
            0
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({"verified": false, "subject": what, "check": e.check, "error": e.detail}));
            }
            eprintln!("error: verification of {what} failed: {e}");
            1
        }
    }
}

pub fn verify_blob(a: VerifyBlobArgs) -> anyhow::Result<i32> {
    let tm = a.flags.trusted_material()?;
    let authority = a.flags.authority()?;
    let bundle = std::fs::read(&a.bundle).with_context(|| format!("reading bundle {}", a.bundle.display()))?;
    let json = a.flags.output == "json";
    let now = jiff::Timestamp::now();
    let res = if let Some(d) = parse_digest(&a.artifact) {
        verify_bundle(&tm, &bundle, Subject::Sha256(d), &authority, now)
    } else {
        let data = std::fs::read(&a.artifact).with_context(|| format!("reading artifact {}", a.artifact))?;
        verify_bundle(&tm, &bundle, Subject::Blob(&data), &authority, now)
    };
    if res.is_ok()
        && let Some(h) = &a.tlog_history
    {
        let store = crate::store::Store::open(h)?;
        let policy = match &a.witness_policy {
            Some(p) => Some(
                crate::core::tlog::WitnessPolicy::parse(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                    .map_err(|e| anyhow!("{}: {e}", p.display()))?,
            ),
            None => None,
        };
        let cps = crate::core::tlog::bundle_checkpoints(&bundle, &crate::core::tlog::log_keys(&tm));
        let facts = store.tlog_facts(cps.iter().map(|c| (c.log.as_str(), c.size, &c.root)))?;
        match crate::core::tlog::history::history_check(&cps, &facts, policy.as_ref(), a.unwitnessed.into()) {
            Ok(notes) => {
                for n in notes {
                    eprintln!("  transparency: {n}");
                }
            }
            Err(e) => {
                if json {
                    println!("{}", serde_json::json!({"verified": false, "subject": a.artifact, "check": "witness", "error": e}));
                }
                eprintln!("error: verification of {} failed: witness: {e}", a.artifact);
                return Ok(1);
            }
        }
    }
    Ok(report(res, &a.artifact, json))
}

async fn material(a: &ImageArgs) -> anyhow::Result<crate::mirror::oci::ImageMaterial> {
    use crate::mirror::oci::{OciSource, RegistryOptions};
    if let Some(dir) = &a.local_image {
        return Ok(OciSource::layout(dir).image_material(a.image.as_deref().unwrap_or("")).await?);
    }
    let image = a.image.as_deref().ok_or_else(|| anyhow!("an IMAGE reference (or --local-image DIR) is required"))?;
    let host = image.split('/').next().unwrap_or_default().to_string();
    let opts = RegistryOptions {
        insecure_hosts: if a.allow_insecure_registry { vec![host] } else { vec![] },
        credentials: a.credentials.credentials(),
        ..Default::default()
    };
    Ok(OciSource::registry(&opts)?.image_material(image).await?)
}

/// A signature-bearing item: label, bundle (or why none could be built), the `.sig` payload.
type Item = (String, Result<Vec<u8>, VerifyError>, Option<Vec<u8>>);

/// Verify every signature-bearing item; returns the verified ones and the refusals.
fn verify_items(
    tm: &TrustedMaterial,
    authority: &Authority,
    digest: &str,
    items: Vec<Item>,
    predicate_type: Option<&str>,
) -> (Vec<(String, Verified, Vec<u8>, Option<Vec<u8>>)>, Vec<String>) {
    let now = jiff::Timestamp::now();
    let d: [u8; 32] = parse_digest(digest).unwrap_or([0; 32]);
    let (mut ok, mut refused) = (vec![], vec![]);
    for (label, bundle, payload) in items {
        let bundle = match bundle {
            Ok(b) => b,
            Err(e) => {
                refused.push(format!("{label}: {e}"));
                continue;
            }
        };
        let res = match &payload {
            // `.sig`: the signature is over the simple-signing payload, which must name the image
            Some(p) => verify_bundle(tm, &bundle, Subject::Blob(p), authority, now)
                .and_then(|v| crate::core::cosign::check_simple_signing(p, digest).map(|_| v)),
            // DSSE and referrer bundles: the in-toto subject (or signed digest) must be the image
            None => verify_bundle(tm, &bundle, Subject::Sha256(d), authority, now),
        };
        match res {
            Ok(v) => match (predicate_type, &v.statement) {
                (Some(want), Some(st)) if st.predicate_type != want => {
                    refused.push(format!("{label}: predicate type {} is not {want}", st.predicate_type))
                }
                (Some(_), None) => refused.push(format!("{label}: not an in-toto attestation")),
                _ => ok.push((label, v, bundle, payload)),
            },
            Err(e) => refused.push(format!("{label}: {e}")),
        }
    }
    (ok, refused)
}

type Ok4 = (String, Verified, Vec<u8>, Option<Vec<u8>>);

fn image_report(what: &str, digest: &str, ok: &[Ok4], refused: &[String], json: bool, kind: &str) -> i32 {
    if json {
        println!(
            "{}",
            serde_json::json!({"image": what, "digest": digest, "verified": !ok.is_empty(),
                "signatures": ok.iter().map(|(l, v, _, _)| serde_json::json!({"source": l, "signer": v})).collect::<Vec<_>>(),
                "refused": refused})
        );
    }
    if ok.is_empty() {
        if refused.is_empty() {
            eprintln!("error: no {kind} found for {what}@{digest}");
        } else {
            eprintln!("error: no {kind} of {what}@{digest} verified:");
            for r in refused {
                eprintln!("  - {r}");
            }
        }
        return 1;
    }
    if !json {
        eprintln!("Verification for {what}@{digest} --");
        eprintln!("The following checks were performed on each of these {kind}s:");
        eprintln!("  - the signature verifies against the certificate or key; the certificate chains to the trusted root");
        eprintln!("  - the transparency log entry (SET / inclusion proof) or RFC 3161 timestamp verifies");
        eprintln!("  - the identity policy is satisfied; the signed subject is this image");
        for (l, v, _, _) in ok {
            eprintln!(
                "  verified: {l}: {}{}",
                v.signer,
                v.statement.as_ref().map(|s| format!(" ({})", s.predicate_type)).unwrap_or_default()
            );
        }
        for r in refused {
            eprintln!("  ignored: {r}");
        }
    }
    0
}

pub async fn verify_image(a: ImageArgs) -> anyhow::Result<i32> {
    let tm = a.flags.trusted_material()?;
    let authority = a.flags.authority()?;
    let m = material(&a).await?;
    let mut items = vec![];
    for (i, l) in m.sig_layers.iter().enumerate() {
        items.push((format!(".sig layer {i}"), crate::core::cosign::bundle_from_sig_layer(l), Some(l.content.clone())));
    }
    for (i, (_, b)) in m.bundles.iter().enumerate() {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(b)
            && v.get("messageSignature").is_some()
        {
            items.push((format!("referrer bundle {i}"), Ok(b.clone()), None));
        }
    }
    let (ok, refused) = verify_items(&tm, &authority, &m.digest, items, None);
    let json = a.flags.output == "json";
    let code = image_report(&m.name, &m.digest, &ok, &refused, json, "signature");
    if code == 0 && !json {
        // cosign's stdout: a blank line, then the verified simple-signing payloads as a JSON array
        let reference = a.image.as_deref().unwrap_or(&m.name).split('@').next().unwrap_or_default().to_string();
        let payloads: Vec<serde_json::Value> =
            ok.iter().map(|(_, v, b, p)| cosign_payload(v, b, p.as_deref(), &reference, &m.digest)).collect();
        println!("\n{}", serde_json::to_string(&payloads).expect("json"));
    }
    Ok(code)
}

/// What cosign prints for one verified signature: the simple-signing payload as signed, with
/// the certificate's subject and issuer (and its GitHub claims) added to `optional`; for a
/// new-format bundle, the payload cosign synthesizes from the statement.
fn cosign_payload(v: &Verified, bundle: &[u8], payload: Option<&[u8]>, reference: &str, digest: &str) -> serde_json::Value {
    use serde_json::json;
    let mut p: serde_json::Value = match payload.and_then(|p| serde_json::from_slice(p).ok()) {
        Some(p) => p,
        None => json!({"critical": {"identity": {"docker-reference": reference}, "image": {"docker-manifest-digest": digest},
            "type": v.statement.as_ref().map(|s| s.predicate_type.clone()).unwrap_or_else(|| "cosign container image signature".into())},
            "optional": {}}),
    };
    if v.issuer.is_some() {
        if !p["optional"].is_object() {
            p["optional"] = json!({});
        }
        let o = p["optional"].as_object_mut().expect("object");
        o.insert("Subject".into(), json!(v.signer));
        o.insert("Issuer".into(), json!(v.issuer));
        o.insert("1.3.6.1.4.1.57264.1.1".into(), json!(v.issuer));
        if let Some(r) = &v.claims.source_repository {
            o.insert("githubWorkflowRepository".into(), json!(r.trim_start_matches("https://github.com/")));
        }
        if let Some(r) = &v.claims.source_ref {
            o.insert("githubWorkflowRef".into(), json!(r));
        }
    }
    let _ = bundle;
    p
}

/// What cosign's verify-attestation prints for one verified attestation: its DSSE envelope.
fn dsse_envelope_line(bundle: &[u8]) -> Option<String> {
    if crate::core::legacy_att::is_wrapped(bundle) {
        let w: serde_json::Value = serde_json::from_slice(bundle).ok()?;
        let layer = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, w["layer"].as_str()?).ok()?;
        return String::from_utf8(layer).ok().map(|s| s.trim_end().to_string());
    }
    let b: serde_json::Value = serde_json::from_slice(bundle).ok()?;
    let e = &b["dsseEnvelope"];
    let sigs: Vec<serde_json::Value> = e["signatures"]
        .as_array()?
        .iter()
        .map(|s| match s["keyid"].as_str().filter(|k| !k.is_empty()) {
            Some(k) => serde_json::json!({"keyid": k, "sig": s["sig"]}),
            None => serde_json::json!({"sig": s["sig"]}),
        })
        .collect();
    Some(serde_json::json!({"payload": e["payload"], "payloadType": e["payloadType"], "signatures": sigs}).to_string())
}

pub async fn verify_attestation(a: VerifyAttestationArgs) -> anyhow::Result<i32> {
    let tm = a.image.flags.trusted_material()?;
    let f = &a.image.flags;
    let authority =
        if a.source_uri.is_some() && f.certificate_identity.is_none() && f.certificate_identity_regexp.is_none() && f.key.is_none() {
            // slsa-verifier: any GitHub Actions certificate; the builder and source are checked after
            Authority::Keyless(crate::core::verify::IdentityPolicy {
                issuer: Some(crate::core::verify::Matcher::Exact("https://token.actions.githubusercontent.com".into())),
                ..Default::default()
            })
        } else {
            f.authority()?
        };
    let want = crate::core::cosign::predicate_type_for(&a.predicate_type);
    let m = material(&a.image).await?;
    let mut items = vec![];
    for (i, l) in m.att_layers.iter().enumerate() {
        // cheap pre-filter on the annotation; the signed statement is checked after verification
        if l.annotations.get(crate::core::cosign::ANN_PREDICATE_TYPE).is_some_and(|p| *p != want) {
            continue;
        }
        items.push((format!(".att layer {i}"), crate::core::cosign::bundle_from_att_layer(l), None));
    }
    for (i, (pt, b)) in m.bundles.iter().enumerate() {
        if pt.as_deref().is_some_and(|p| p != want) {
            continue;
        }
        items.push((format!("referrer bundle {i}"), Ok(b.clone()), None));
    }
    let (mut ok, refused) = verify_items(&tm, &authority, &m.digest, items, Some(&want));
    if let Some(src) = &a.source_uri {
        return Ok(super::slsa_verifier::report(&a, src, &mut ok, &refused, &m.name, &m.digest));
    }
    let json = a.image.flags.output == "json";
    let code = image_report(&m.name, &m.digest, &ok, &refused, json, &format!("{want} attestation"));
    if code == 0 && !json {
        // cosign's stdout: one verified DSSE envelope per line
        for (_, _, b, _) in &ok {
            if let Some(l) = dsse_envelope_line(b) {
                println!("{l}");
            }
        }
    }
    Ok(code)
}
