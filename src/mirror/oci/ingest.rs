//! Ingesting one digest: fetch its manifest and material, verify every item with the offline
//! engine against the current trust root, and store the record — verified items, key-signed ones
//! awaiting a policy key, and rejected ones with their reason — in one transaction. A record whose
//! sources (cosign tags, referrers) and trust root are unchanged is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::material::{ImageMaterial, MAX_CHILDREN, MAX_ITEMS, OciError};
use super::plan::Work;
use super::{OciMirror, SyncReport};
use crate::core::cosign::{bundle_from_att_layer, bundle_from_sig_layer};
use crate::core::digest::sha256_hex;
use crate::core::evidence::{Content, Evidence, Form, Signer, any_identity, establish};
use crate::core::verify::{Authority, Check, TrustedMaterial, VerifyError};
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
        self.ingest_at(repo, digest, force, present, 0).await
    }

    async fn ingest_at(
        &self,
        repo: &str,
        digest: &str,
        force: bool,
        present: Option<Arc<BTreeSet<String>>>,
        depth: u8,
    ) -> Result<Ingested, OciError> {
        let what = format!("{repo}@{digest}");
        let existing = self.store.oci_material(repo, digest).map_err(|e| OciError::store(&what, e))?;
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
        if children.len() > MAX_CHILDREN {
            return Err(OciError::TooMany { what: format!("{what}: index entries"), count: children.len(), max: MAX_CHILDREN });
        }
        let counts = self.verify_and_store(&m, &media_type, children.clone(), &trust, existing.as_ref())?;
        // platform manifests of an index carry their own signatures, if any (one level: an index
        // inside an index is recorded, not followed)
        if depth == 0 {
            for c in children.iter().filter(|c| crate::core::digest::is_digest(c)) {
                if let Err(e) = Box::pin(self.ingest_at(repo, c, false, present.clone(), depth + 1)).await {
                    tracing::warn!(child = %c, error = %e, "platform manifest");
                }
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
            vec![any_identity()]
        } else {
            self.cfg.keys.iter().map(|(n, k)| Authority::Key { name: n.clone(), spki_der: k.clone() }).collect()
        }
    }

    /// Verify one item: its status and, when it verified, the evidence.
    fn check(&self, tm: &TrustedMaterial, bundle: &[u8], form: Form<'_>, image: &str) -> (ItemStatus, Option<Evidence>) {
        let auths = self.authority_for(bundle);
        if auths.is_empty() {
            return (ItemStatus::NeedsKey, None);
        }
        let now = self.clock.now();
        let mut last: Option<VerifyError> = None;
        for a in &auths {
            match establish(tm, bundle, form, image, a, now) {
                Ok(e) => {
                    let (signer, issuer) = match &e.signer {
                        Signer::Keyless { san, issuer, .. } => (san.clone(), issuer.clone()),
                        Signer::Key { .. } => (a.name().to_string(), None),
                    };
                    return (ItemStatus::Verified { signer, issuer }, Some(e));
                }
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

    /// Verify every item of `m` and store the record (one transaction), keeping verified items
    /// of `previous` that the registry no longer lists (removing the newest scan must not let an
    /// older clean one decide). Returns (verified, rejected).
    fn verify_and_store(
        &self,
        m: &ImageMaterial,
        media_type: &str,
        children: Vec<String>,
        tm: &TrustedMaterial,
        previous: Option<&MaterialRecord>,
    ) -> Result<(usize, usize), OciError> {
        let what = format!("{}@{}", m.name, m.digest);
        let mut blobs: Vec<(String, Vec<u8>)> = vec![];
        let mut items = vec![];
        let mut keep = |b: Vec<u8>| {
            let h = sha256_hex(&b);
            blobs.push((h.clone(), b));
            h
        };
        let rejected = |e: VerifyError| ItemStatus::Rejected { check: e.check.as_str().into(), reason: e.detail };
        let tag_source = |suffix: &str, i: usize| format!("{}.{suffix} layer {i}", m.digest.replacen(':', "-", 1));
        let item = |kind, source, bundle, payload, (status, evidence): (ItemStatus, Option<Evidence>)| {
            let predicate_type = match &evidence {
                Some(Evidence { content: Content::Statement { predicate_type, .. }, .. }) => Some(predicate_type.clone()),
                _ => None,
            };
            Item { kind, source, bundle, payload, predicate_type, status, evidence }
        };
        for (i, l) in m.sig_layers.iter().enumerate() {
            let payload = keep(l.content.clone());
            items.push(match bundle_from_sig_layer(l) {
                Ok(b) => {
                    let checked = self.check(tm, &b, Form::SimpleSigning(&l.content), &m.digest);
                    item(ItemKind::Signature, tag_source("sig", i), Some(keep(b)), Some(payload), checked)
                }
                Err(e) => item(ItemKind::Signature, tag_source("sig", i), None, Some(payload), (rejected(e), None)),
            });
        }
        for (i, l) in m.att_layers.iter().enumerate() {
            items.push(match bundle_from_att_layer(l) {
                Ok(b) => {
                    let checked = self.check(tm, &b, Form::Bundle, &m.digest);
                    item(ItemKind::Attestation, tag_source("att", i), Some(keep(b)), None, checked)
                }
                Err(e) => item(ItemKind::Attestation, tag_source("att", i), None, None, (rejected(e), None)),
            });
        }
        for (i, (_annotated, b)) in m.bundles.iter().enumerate() {
            let checked = self.check(tm, b, Form::Bundle, &m.digest);
            items.push(item(ItemKind::Bundle, format!("referrer {i}"), Some(keep(b.clone())), None, checked));
        }
        for (i, l) in m.sbom_layers.iter().enumerate() {
            // cosign attach sbom: unsigned content, recorded for inventory, never evidence
            items.push(item(ItemKind::Sbom, tag_source("sbom", i), None, Some(keep(l.content.clone())), (ItemStatus::Unsigned, None)));
        }
        for s in &m.skipped {
            let source = s.split(':').next().unwrap_or_default().to_string();
            items.push(item(
                ItemKind::Bundle,
                source,
                None,
                None,
                (ItemStatus::Rejected { check: "artifact".into(), reason: s.clone() }, None),
            ));
        }
        if let Some(prev) = previous {
            let listed: std::collections::BTreeSet<&String> = items.iter().filter_map(|i| i.bundle.as_ref()).collect();
            let retained: Vec<Item> = prev
                .items
                .iter()
                .filter(|i| i.evidence.is_some() && i.bundle.as_ref().is_some_and(|b| !listed.contains(b)))
                .map(|i| {
                    let mut i = i.clone();
                    if !i.source.ends_with("(no longer listed)") {
                        i.source = format!("{} (no longer listed)", i.source);
                    }
                    i
                })
                .collect();
            items.extend(retained);
        }
        if items.len() > MAX_ITEMS {
            return Err(OciError::TooMany { what: format!("{what}: items"), count: items.len(), max: MAX_ITEMS });
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

    /// Verify and store material obtained elsewhere (an OCI layout, an air-gap bundle, a
    /// benchmark's generator): the same verification and record as a registry sync.
    pub fn ingest_material(&self, m: &ImageMaterial) -> Result<(usize, usize), OciError> {
        let v: Value = serde_json::from_slice(&m.manifest).unwrap_or(Value::Null);
        let mt = v["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
        let children: Vec<String> = v["manifests"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["digest"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let tm = self.trust.current();
        let previous = self.store.oci_material(&m.name, &m.digest).map_err(|e| OciError::store(&m.name, e))?;
        self.verify_and_store(m, &mt, children, &tm, previous.as_ref())
    }

    /// Store a material record carried from another store (an air-gap bundle), trusting
    /// nothing it says about its items: each item with a bundle is verified again here, under
    /// this mirror's trust root, and gets its status and evidence from that. `blob` finds the
    /// record's blobs. Caps apply as at ingest.
    pub fn ingest_record(&self, rec: &MaterialRecord, blob: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<(usize, usize), OciError> {
        let what = format!("{}@{}", rec.repository, rec.subject);
        if !crate::core::digest::is_digest(&rec.subject) {
            return Err(OciError::Malformed { what, detail: "the subject is not a digest".into() });
        }
        if rec.items.len() > MAX_ITEMS || rec.children.len() > MAX_CHILDREN {
            return Err(OciError::TooMany { what: format!("{what}: items"), count: rec.items.len(), max: MAX_ITEMS });
        }
        let tm = self.trust.current();
        let mut blobs: Vec<(String, Vec<u8>)> = vec![];
        let mut items = vec![];
        for it in &rec.items {
            let mut it = it.clone();
            let get = |sha: &Option<String>| -> Result<Option<Vec<u8>>, OciError> {
                match sha {
                    None => Ok(None),
                    Some(h) => {
                        let b =
                            blob(h).ok_or_else(|| OciError::Malformed { what: what.clone(), detail: format!("blob {h} is missing") })?;
                        if sha256_hex(&b) != *h {
                            return Err(OciError::Digest { what: what.clone(), got: sha256_hex(&b), want: h.clone() });
                        }
                        Ok(Some(b))
                    }
                }
            };
            let bundle = get(&it.bundle)?;
            let payload = get(&it.payload)?;
            it.evidence = None;
            it.predicate_type = None;
            match &bundle {
                Some(b) => {
                    let form = match (&it.kind, &payload) {
                        (ItemKind::Signature, Some(p)) => Form::SimpleSigning(p),
                        _ => Form::Bundle,
                    };
                    let (status, evidence) = self.check(&tm, b, form, &rec.subject);
                    if let Some(Evidence { content: Content::Statement { predicate_type, .. }, .. }) = &evidence {
                        it.predicate_type = Some(predicate_type.clone());
                    }
                    it.status = status;
                    it.evidence = evidence;
                }
                // nothing to verify: whatever it was, it is not evidence
                None if matches!(it.status, ItemStatus::Verified { .. } | ItemStatus::NeedsKey) => {
                    it.status = ItemStatus::Rejected { check: "bundle".into(), reason: "carried without its bundle".into() };
                }
                None => {}
            }
            for (h, b) in it.bundle.iter().zip(bundle).chain(it.payload.iter().zip(payload)) {
                blobs.push((h.clone(), b));
            }
            items.push(it);
        }
        let verified = items.iter().filter(|i| matches!(i.status, ItemStatus::Verified { .. })).count();
        let rejected = items.iter().filter(|i| matches!(i.status, ItemStatus::Rejected { .. })).count();
        let out = MaterialRecord { items, trust: tm.digest.clone(), ..rec.clone() };
        self.store.oci_put_material(&out, &blobs).map_err(|e| OciError::store(&what, e))?;
        Ok((verified, rejected))
    }

    pub(super) async fn ingest_layout(&self, dir: &Path, report: &mut SyncReport) -> Result<(), OciError> {
        let m = super::layout::layout_material(dir, "")?;
        let v: Value = serde_json::from_slice(&m.manifest).unwrap_or(Value::Null);
        let mt = v["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
        let tm = self.trust.current();
        let previous = self.store.oci_material(&m.name, &m.digest).map_err(|e| OciError::store(&m.name, e))?;
        let (ok, rej) = self.verify_and_store(&m, &mt, vec![], &tm, previous.as_ref())?;
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
