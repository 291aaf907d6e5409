//! OCI image layouts on disk (what `cosign save`, oras and skopeo `oci:` write, or what crossed
//! the gap on removable media): the image and its cosign material and Sigstore bundle referrers,
//! every blob checked against its digest and bounded in size.

use std::path::Path;

use serde_json::Value;

use super::material::{ImageMaterial, MAX_BLOB, MAX_MANIFEST, OciError, check_digest, fetch_err, layers_of};
use crate::core::cosign::{BUNDLE_V03, CosignLayer};
use crate::core::digest::sha256_digest;

fn layout_blob(dir: &Path, digest: &str, max: usize) -> Result<Vec<u8>, OciError> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| OciError::Malformed { what: digest.into(), detail: "only sha256 digests are supported".into() })?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(OciError::Malformed { what: digest.into(), detail: "not a sha256 digest".into() });
    }
    let p = dir.join("blobs/sha256").join(hex);
    let meta = std::fs::metadata(&p).map_err(|e| fetch_err(&p.display().to_string(), e))?;
    if meta.len() as usize > max {
        return Err(OciError::TooLarge { what: p.display().to_string(), size: meta.len() as usize, max });
    }
    let b = std::fs::read(&p).map_err(|e| fetch_err(&p.display().to_string(), e))?;
    check_digest(&p.display().to_string(), &b, digest)?;
    Ok(b)
}

pub fn layout_material(dir: &Path, reference: &str) -> Result<ImageMaterial, OciError> {
    let what = dir.display().to_string();
    let idx = std::fs::read(dir.join("index.json")).map_err(|e| fetch_err(&format!("{what}/index.json"), e))?;
    let index: Value =
        serde_json::from_slice(&idx).map_err(|e| OciError::Malformed { what: format!("{what}/index.json"), detail: e.to_string() })?;
    let descs = index["manifests"].as_array().cloned().unwrap_or_default();
    let ref_name = |d: &Value| d["annotations"]["org.opencontainers.image.ref.name"].as_str().map(str::to_string);
    let kind = |d: &Value| d["annotations"]["kind"].as_str().map(str::to_string);
    let is_cosign_tag = |n: &str| n.starts_with("sha256-");
    // the image: named by the reference (tag or digest), cosign's kind annotation, or the one
    // descriptor that is not signature material
    let image = descs
        .iter()
        .find(|d| !reference.is_empty() && (ref_name(d).as_deref() == Some(reference) || d["digest"].as_str() == Some(reference)))
        .or_else(|| {
            // `cosign save`: the subject is an image or an image index
            let subjects: Vec<&Value> = descs
                .iter()
                .filter(|d| matches!(kind(d).as_deref(), Some("dev.cosignproject.cosign/image" | "dev.cosignproject.cosign/imageIndex")))
                .collect();
            (subjects.len() == 1).then(|| subjects[0])
        })
        .or_else(|| {
            let cands: Vec<&Value> = descs
                .iter()
                .filter(|d| {
                    !ref_name(d).is_some_and(|n| is_cosign_tag(&n))
                        && kind(d).is_none_or(|k| k.ends_with("/image") || k.ends_with("/imageIndex"))
                })
                .collect();
            (cands.len() == 1).then(|| cands[0])
        })
        .ok_or_else(|| OciError::Malformed {
            what: what.clone(),
            detail: "cannot tell which manifest is the image (name it with a tag or digest)".into(),
        })?;
    let digest = image["digest"].as_str().unwrap_or_default().to_string();
    let manifest = layout_blob(dir, &digest, MAX_MANIFEST)?;
    let mut out = ImageMaterial { name: what.clone(), digest: digest.clone(), manifest, ..Default::default() };
    let prefix = digest.replacen(':', "-", 1);
    for d in &descs {
        let name = ref_name(d).unwrap_or_default();
        let k = kind(d).unwrap_or_default();
        let is_sig = name == format!("{prefix}.sig") || k == "dev.cosignproject.cosign/sigs";
        let is_att = name == format!("{prefix}.att") || k == "dev.cosignproject.cosign/atts";
        let md = d["digest"].as_str().unwrap_or_default();
        if is_sig || is_att {
            let m = layout_blob(dir, md, MAX_MANIFEST)?;
            for (mt, ld, ann) in layers_of(&format!("{what} {name}"), &m)? {
                let content = layout_blob(dir, &ld, MAX_BLOB)?;
                let l = CosignLayer { media_type: mt, content, annotations: ann };
                if is_sig { out.sig_layers.push(l) } else { out.att_layers.push(l) }
            }
            continue;
        }
        // referrers: bundle manifests whose subject is the image (listed directly, or through the
        // referrers tag schema index)
        let m = match layout_blob(dir, md, MAX_MANIFEST) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let v: Value = serde_json::from_slice(&m).unwrap_or(Value::Null);
        let candidates: Vec<Value> = if name == prefix { v["manifests"].as_array().cloned().unwrap_or_default() } else { vec![d.clone()] };
        for c in candidates {
            let cm = if name == prefix {
                layout_blob(dir, c["digest"].as_str().unwrap_or_default(), MAX_MANIFEST).unwrap_or_default()
            } else {
                m.clone()
            };
            let cv: Value = serde_json::from_slice(&cm).unwrap_or(Value::Null);
            if cv["artifactType"].as_str() == Some(BUNDLE_V03) && cv["subject"]["digest"].as_str() == Some(digest.as_str()) {
                let pt = cv["annotations"]["dev.sigstore.bundle.predicateType"].as_str().map(str::to_string);
                for (mt, ld, _) in layers_of(&what, &cm)? {
                    if mt == BUNDLE_V03 && !out.bundles.iter().any(|(_, b)| sha256_digest(b) == ld) {
                        out.bundles.push((pt.clone(), layout_blob(dir, &ld, MAX_BLOB)?));
                    }
                }
            }
        }
    }
    Ok(out)
}
