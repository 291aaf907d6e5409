//! Ingesting one digest: fetch its manifest and material, verify every item with the offline
//! engine against the current trust root, and store the record — verified items, key-signed ones
//! awaiting a policy key, and rejected ones with their reason — in one transaction. A record whose
//! sources (cosign tags, referrers) and trust root are unchanged is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::plan::Work;
use super::registry::{ImageMaterial, OciError};
use super::{OciMirror, SyncReport};
use crate::core::cosign::{ANN_PREDICATE_TYPE, bundle_from_att_layer, bundle_from_sig_layer, check_simple_signing};
use crate::core::digest::{parse_digest, sha256_hex};
use crate::core::verify::{Authority, Check, IdentityPolicy, Subject, TrustedMaterial, VerifyError, verify_bundle};
use crate::store::oci::{Item, ItemKind, ItemStatus, MaterialRecord};

/// Items verified and rejected by one ingest; `None` when nothing changed.
pub type Ingested = Option<(usize, usize)>;

impl OciMirror {
    pub(super) async fn ingest_all(&self, work: Vec<Work>, listed: &BTreeMap<String, Arc<BTreeSet<String>>>, report: &mut SyncReport) {
        use futures_util::StreamExt;
        let bar = self.progress.then(|| {
            let b = indicatif::ProgressBar::new(work.len() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} digests {bar:40} {elapsed} {msg}").expect("template"),
            );
            b
        });
        let results: Vec<(String, Result<Ingested, OciError>)> =
            futures_util::stream::iter(work.into_iter().map(|(repo, digest, force)| {
                let bar = bar.clone();
                async move {
                    let present = listed.get(&repo).cloned();
                    let r = self.ingest_with(&repo, &digest, force, present).await;
                    if let Some(b) = &bar {
                        b.inc(1);
                    }
                    (format!("{repo}@{digest}"), r)
                }
            }))
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        for (what, r) in results {
            match r {
                Ok(Some((v, rej))) => {
                    report.digests_ingested += 1;
                    report.items_verified += v;
                    report.items_rejected += rej;
                }
                Ok(None) => report.digests_skipped += 1,
                Err(e) => report.error(what, e),
            }
        }
    }

    /// Fetch, verify and store the material of one digest (and, for an index, its platforms).
    /// `Ok(None)`: nothing changed since the stored record. Errors leave the store untouched.
    pub async fn ingest(&self, repo: &str, digest: &str, force: bool) -> Result<Ingested, OciError> {
        self.ingest_with(repo, digest, force, None).await
    }

    /// As [`OciMirror::ingest`], knowing the repository's tag list (cosign tags that are not
    /// listed are not requested).
    pub async fn ingest_with(
        &self,
        repo: &str,
        digest: &str,
        force: bool,
        present: Option<Arc<BTreeSet<String>>>,
    ) -> Result<Ingested, OciError> {
        let what = format!("{repo}@{digest}");
        let existing = self.store.oci_material(digest).map_err(|e| OciError::store(&what, e))?;
        let manifest = self.registry.manifest(repo, digest).await?;
        let m = self.registry.material(repo, digest, manifest.clone(), present.as_deref()).await?;
        let trust = self.trust.current();
        if !force
            && let Some(ex) = &existing
            && ex.sources == m.sources
            && ex.trust == trust.digest
        {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&manifest).unwrap_or(Value::Null);
        let children: Vec<String> = v["manifests"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["digest"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let media_type = v["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
        let counts = self.verify_and_store(&m, &media_type, children.clone(), &trust)?;
        // platform manifests of an index carry their own signatures, if any
        for c in children.iter().filter(|c| c.starts_with("sha256:")) {
            if let Err(e) = Box::pin(self.ingest_with(repo, c, false, present.clone())).await {
                tracing::warn!(child = %c, error = %e, "platform manifest");
            }
        }
        Ok(Some(counts))
    }

    /// The authorities an item is verified with at ingest: any Fulcio identity for certificate
    /// bundles (identity is the policy's business), the configured keys for key-signed ones.
    fn authority_for(&self, bundle: &[u8]) -> Vec<Authority> {
        let has_cert =
            serde_json::from_slice::<Value>(bundle).map(|v| v["verificationMaterial"].get("publicKey").is_none()).unwrap_or(true);
        if has_cert {
            vec![Authority::Keyless(IdentityPolicy::default())]
        } else {
            self.cfg.keys.iter().map(|(n, k)| Authority::Key { name: n.clone(), spki_der: k.clone() }).collect()
        }
    }

    fn check(&self, tm: &TrustedMaterial, bundle: &[u8], subject: Subject<'_>) -> (ItemStatus, Option<String>) {
        let auths = self.authority_for(bundle);
        if auths.is_empty() {
            return (ItemStatus::NeedsKey, None);
        }
        let now = self.clock.now();
        let mut last: Option<VerifyError> = None;
        for a in &auths {
            match verify_bundle(tm, bundle, subject, a, now) {
                Ok(v) => return (ItemStatus::Verified { signer: v.signer, issuer: v.issuer }, v.statement.map(|s| s.predicate_type)),
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("at least one authority");
        if e.check == Check::Key {
            // signed with a key we do not hold: admission may hold it
            return (ItemStatus::NeedsKey, None);
        }
        (ItemStatus::Rejected { check: e.check.as_str().into(), reason: e.detail }, None)
    }

    /// Verify every item of `m` and store the record (one transaction). Returns (verified, rejected).
    fn verify_and_store(
        &self,
        m: &ImageMaterial,
        media_type: &str,
        children: Vec<String>,
        tm: &TrustedMaterial,
    ) -> Result<(usize, usize), OciError> {
        let what = format!("{}@{}", m.name, m.digest);
        let mut blobs: Vec<(String, Vec<u8>)> = vec![];
        let mut items = vec![];
        let d: [u8; 32] =
            parse_digest(&m.digest).ok_or_else(|| OciError::Malformed { what: what.clone(), detail: "not a sha256 digest".into() })?;
        let mut keep = |b: Vec<u8>| {
            let h = sha256_hex(&b);
            blobs.push((h.clone(), b));
            h
        };
        let rejected = |e: VerifyError| ItemStatus::Rejected { check: e.check.as_str().into(), reason: e.detail };
        let tag_source = |suffix: &str, i: usize| format!("{}.{suffix} layer {i}", m.digest.replacen(':', "-", 1));
        for (i, l) in m.sig_layers.iter().enumerate() {
            let source = tag_source("sig", i);
            let payload = keep(l.content.clone());
            let item = match bundle_from_sig_layer(l) {
                Ok(b) => {
                    let (mut status, _) = self.check(tm, &b, Subject::Blob(&l.content));
                    if let (ItemStatus::Verified { .. } | ItemStatus::NeedsKey, Err(e)) =
                        (&status, check_simple_signing(&l.content, &m.digest))
                    {
                        status = rejected(e);
                    }
                    Item { kind: ItemKind::Signature, source, bundle: Some(keep(b)), payload: Some(payload), predicate_type: None, status }
                }
                Err(e) => Item {
                    kind: ItemKind::Signature,
                    source,
                    bundle: None,
                    payload: Some(payload),
                    predicate_type: None,
                    status: rejected(e),
                },
            };
            items.push(item);
        }
        for (i, l) in m.att_layers.iter().enumerate() {
            let source = tag_source("att", i);
            let annotated = l.annotations.get(ANN_PREDICATE_TYPE).cloned();
            let item = match bundle_from_att_layer(l) {
                Ok(b) => {
                    let (status, pt) = self.check(tm, &b, Subject::Sha256(d));
                    Item {
                        kind: ItemKind::Attestation,
                        source,
                        bundle: Some(keep(b)),
                        payload: None,
                        predicate_type: pt.or(annotated),
                        status,
                    }
                }
                Err(e) => Item {
                    kind: ItemKind::Attestation,
                    source,
                    bundle: None,
                    payload: None,
                    predicate_type: annotated,
                    status: rejected(e),
                },
            };
            items.push(item);
        }
        for (i, (pt, b)) in m.bundles.iter().enumerate() {
            let (status, spt) = self.check(tm, b, Subject::Sha256(d));
            items.push(Item {
                kind: ItemKind::Bundle,
                source: format!("referrer {i}"),
                bundle: Some(keep(b.clone())),
                payload: None,
                predicate_type: spt.or(pt.clone()),
                status,
            });
        }
        for (i, l) in m.sbom_layers.iter().enumerate() {
            items.push(Item {
                kind: ItemKind::Sbom,
                source: tag_source("sbom", i),
                bundle: None,
                payload: Some(keep(l.content.clone())),
                predicate_type: Some(l.media_type.clone()),
                status: ItemStatus::Unsigned,
            });
        }
        for s in &m.skipped {
            items.push(Item {
                kind: ItemKind::Bundle,
                source: s.split(':').next().unwrap_or_default().to_string(),
                bundle: None,
                payload: None,
                predicate_type: None,
                status: ItemStatus::Rejected { check: "artifact".into(), reason: s.clone() },
            });
        }
        let verified = items.iter().filter(|i| matches!(i.status, ItemStatus::Verified { .. })).count();
        let rejected = items.iter().filter(|i| matches!(i.status, ItemStatus::Rejected { .. })).count();
        let rec = MaterialRecord {
            subject: m.digest.clone(),
            repository: m.name.clone(),
            media_type: media_type.into(),
            children,
            items,
            synced_at: self.clock.now(),
            sources: m.sources.clone(),
            trust: tm.digest.clone(),
        };
        self.store.oci_put_material(&rec, &blobs).map_err(|e| OciError::store(&what, e))?;
        tracing::debug!(digest = %m.digest, verified, rejected, "material stored");
        Ok((verified, rejected))
    }

    pub(super) async fn ingest_layout(&self, dir: &Path, report: &mut SyncReport) -> Result<(), OciError> {
        let m = super::layout::layout_material(dir, "")?;
        let v: Value = serde_json::from_slice(&m.manifest).unwrap_or(Value::Null);
        let mt = v["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
        let tm = self.trust.current();
        let (ok, rej) = self.verify_and_store(&m, &mt, vec![], &tm)?;
        report.digests_ingested += 1;
        report.items_verified += ok;
        report.items_rejected += rej;
        Ok(())
    }

    /// On-demand ingestion of one reference (`registry/repo@sha256:…` or `:tag`), as the admission
    /// path requests on a miss.
    pub async fn ingest_reference(&self, reference: &str) -> Result<(), OciError> {
        let mut report = SyncReport::default();
        for (repo, d, _) in self.plan_reference(reference, &mut report).await? {
            self.ingest(&repo, &d, true).await?;
        }
        Ok(())
    }
}
