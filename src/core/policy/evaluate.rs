//! Deciding one image: every policy that covers its repository is evaluated over the image's
//! [`Facts`], one function per property. Signatures and attestations are verified here, against
//! the policy's authorities and trust root; the property checks read only what verified.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::model::*;
use super::predicates::{base_image, check_provenance, sbom_packages, scan_result};
use crate::core::cosign::check_simple_signing;
use crate::core::material::{Item, ItemKind, ItemStatus, MaterialRecord};
use crate::core::verify::{Subject, TrustStore, TrustedMaterial, Verified, verify_bundle};

impl PolicySet {
    /// The policies covering `repository` (`registry/repo`).
    pub fn matching(&self, repository: &str) -> Vec<&Policy> {
        self.policies.iter().filter(|p| p.matches(repository)).collect()
    }

    /// Evaluate every matching policy for one image. Violations carry the policy's default mode
    /// here and are re-moded per namespace by [`PolicySet::apply_namespace`].
    pub fn evaluate(&self, trust: &TrustStore, facts: &Facts, now: Timestamp) -> Evaluation {
        let mut ev = Evaluation { reference: facts.reference.clone(), digest: facts.digest.clone(), ..Default::default() };
        let policies = self.matching(&facts.repository);
        if policies.is_empty() {
            if let Some(m) = self.no_match {
                ev.violations.push(Violation {
                    policy: "(none)".into(),
                    property: Property::NoPolicy,
                    message: format!("no policy covers {}", facts.repository),
                    mode: m,
                });
            }
            return ev;
        }
        for p in policies {
            ev.policies.push(p.name.clone());
            Run { set: self, p, facts, now, ev: &mut ev }.evaluate(trust);
        }
        ev
    }

    /// Re-mode violations for a namespace (a policy's `namespaces` overrides).
    pub fn apply_namespace(&self, ev: &Evaluation, namespace: &str) -> Vec<Violation> {
        ev.violations
            .iter()
            .map(|v| {
                // a violation the policy itself lowered (e.g. `transparency.witnessed: warn`)
                // stays at most that low in every namespace
                let mode = match self.policies.iter().find(|p| p.name == v.policy) {
                    Some(p) if v.mode < p.mode => v.mode.min(p.mode_for(namespace)),
                    Some(p) => p.mode_for(namespace),
                    None => v.mode,
                };
                Violation { mode, ..v.clone() }
            })
            .collect()
    }
}

/// One policy evaluated for one image.
struct Run<'a> {
    set: &'a PolicySet,
    p: &'a Policy,
    facts: &'a Facts,
    now: Timestamp,
    ev: &'a mut Evaluation,
}

/// What the image's material offers once the structural checks passed.
struct Subjected<'a> {
    digest: String,
    d: [u8; 32],
    material: &'a MaterialRecord,
    tm: std::sync::Arc<TrustedMaterial>,
}

fn usable(i: &Item) -> bool {
    matches!(i.status, ItemStatus::Verified { .. } | ItemStatus::NeedsKey)
}

impl<'a> Run<'a> {
    fn fail(&mut self, property: Property, message: String) {
        self.ev.violations.push(Violation { policy: self.p.name.clone(), property, message, mode: self.p.mode });
    }

    fn blob(&self, id: &Option<String>) -> Option<&'a Vec<u8>> {
        id.as_ref().and_then(|i| self.facts.blobs.get(i))
    }

    fn evaluate(mut self, trust: &TrustStore) {
        self.check_structure();
        let Some(s) = self.subject(trust) else { return };
        self.check_signatures(&s);
        self.check_attestations(&s);
        let provenance = self.attested(&s, &["https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"]);
        self.check_provenance(&provenance);
        self.check_sbom(&s);
        self.check_vulnerabilities(&s);
        self.check_base_image(&provenance);
        if let Some(req) = &self.p.transparency {
            self.check_transparency(req, s.material);
        }
    }

    /// Registry allowlist and digest pinning.
    fn check_structure(&mut self) {
        let f = self.facts;
        if let Some(allowed) = &self.p.registries
            && !allowed.iter().any(|g| g.matches(&f.repository))
        {
            self.fail(Property::Registry, format!("{} is not in an approved registry", f.repository));
        }
        if self.p.require_digest && f.by_tag {
            self.fail(Property::Digest, format!("{} is not pinned by digest", f.reference));
        }
    }

    /// The digest, its material and the policy's trust root — or the violation saying which is
    /// missing.
    fn subject(&mut self, trust: &TrustStore) -> Option<Subjected<'a>> {
        let f = self.facts;
        let Some(digest) = f.digest.clone() else {
            self.fail(Property::Mirror, format!("{}: the tag has not been mirrored yet (queued for the mirror)", f.reference));
            return None;
        };
        let Some(material) = &f.material else {
            self.fail(Property::Mirror, format!("{digest}: no signature material mirrored yet (queued for the mirror)"));
            return None;
        };
        let tm = match trust.get(self.p.trust_root.as_deref().unwrap_or("default")) {
            Ok(t) => t,
            Err(e) => {
                self.fail(Property::Signature, e.to_string());
                return None;
            }
        };
        let Some(d) = crate::core::digest::parse_digest(&digest) else {
            self.fail(Property::Digest, format!("{digest}: only sha256 digests are supported"));
            return None;
        };
        Some(Subjected { digest, d, material, tm })
    }

    /// Signatures: every authority that produced a valid signature over this digest; at least
    /// `threshold` of them.
    fn check_signatures(&mut self, s: &Subjected<'_>) {
        let mut signed_by: Vec<(String, Verified)> = vec![];
        let mut refusals: Vec<String> = vec![];
        for a in &self.p.authorities {
            let mut found = None;
            for item in s.material.items.iter().filter(|i| usable(i)) {
                let res = match item.kind {
                    ItemKind::Signature => match (self.blob(&item.bundle), self.blob(&item.payload)) {
                        (Some(b), Some(pl)) => verify_bundle(&s.tm, b, Subject::Blob(pl), &a.authority, self.now)
                            .and_then(|v| check_simple_signing(pl, &s.digest).map(|_| v)),
                        _ => continue,
                    },
                    ItemKind::Bundle if item.predicate_type.is_none() => match self.blob(&item.bundle) {
                        Some(b) => verify_bundle(&s.tm, b, Subject::Sha256(s.d), &a.authority, self.now),
                        None => continue,
                    },
                    _ => continue,
                };
                match res {
                    Ok(v) => {
                        found = Some(v);
                        break;
                    }
                    Err(e) => refusals.push(format!("{}: {e}", item.source)),
                }
            }
            if let Some(v) = found {
                signed_by.push((a.name.clone(), v));
            }
        }
        let sig_items = s
            .material
            .items
            .iter()
            .filter(|i| i.kind == ItemKind::Signature || (i.kind == ItemKind::Bundle && i.predicate_type.is_none()))
            .count();
        if !self.p.authorities.is_empty() && signed_by.len() < self.p.threshold {
            let msg = if sig_items == 0 {
                format!("{} is not signed", s.digest)
            } else if let Some(r) = refusals.first() {
                let names: Vec<&str> = self.p.authorities.iter().map(|a| a.name.as_str()).collect();
                format!("no signature from {} ({} of {} required): {r}", names.join(", "), signed_by.len(), self.p.threshold)
            } else {
                format!("{} of {} required signatures", signed_by.len(), self.p.threshold)
            };
            self.fail(Property::Signature, msg);
        }
        self.ev.signers.extend(signed_by.iter().map(|(n, v)| (n.clone(), v.signer.clone())));
    }

    /// Attestations of one of `types` signed by one of the policy's authorities: (predicate type,
    /// predicate) of each.
    fn attested(&self, s: &Subjected<'_>, types: &[&str]) -> Vec<(String, Value)> {
        let mut out = vec![];
        for item in s.material.items.iter().filter(|i| matches!(i.kind, ItemKind::Attestation | ItemKind::Bundle)) {
            if !item.predicate_type.as_deref().is_some_and(|t| types.contains(&t)) || !usable(item) {
                continue;
            }
            let Some(b) = self.blob(&item.bundle) else { continue };
            for a in self.p.authorities.iter().map(|a| &a.authority) {
                if let Ok(v) = verify_bundle(&s.tm, b, Subject::Sha256(s.d), a, self.now)
                    && let Some(st) = v.statement
                {
                    out.push((st.predicate_type.clone(), st.predicate.clone()));
                    break;
                }
            }
        }
        out
    }

    /// ClusterImagePolicy `attestations`: present, signed, and (with a policy) compliant.
    fn check_attestations(&mut self, s: &Subjected<'_>) {
        for req in &self.p.attestations {
            let found = self.attested(s, &[req.predicate_type.as_str()]);
            if found.is_empty() {
                self.fail(
                    Property::Attestation,
                    format!("attestation {:?} ({}) is missing or not signed by an authority", req.name, req.predicate_type),
                );
                continue;
            }
            if let Some(rego) = &req.rego {
                let ok = found.iter().any(|(pt, pred)| super::rego::compliant(rego, pt, pred).unwrap_or(false));
                if !ok {
                    self.fail(
                        Property::Attestation,
                        format!("attestation {:?}: no {} attestation satisfies the policy", req.name, req.predicate_type),
                    );
                }
            }
        }
    }

    /// SLSA provenance: an approved builder at the required level, build type, source.
    fn check_provenance(&mut self, provenance: &[(String, Value)]) {
        let Some(req) = &self.p.provenance else { return };
        match provenance.first() {
            None => self.fail(Property::Provenance, "no SLSA provenance attestation signed by an authority".into()),
            Some((pt, pred)) => {
                if let Err(m) = check_provenance(req, pt, pred) {
                    self.fail(Property::Provenance, m);
                }
            }
        }
    }

    /// An SBOM attestation, and no banned package in any.
    fn check_sbom(&mut self, s: &Subjected<'_>) {
        if !self.p.sbom_required {
            return;
        }
        let sboms = self.attested(s, &["https://spdx.dev/Document", "https://cyclonedx.org/bom"]);
        if sboms.is_empty() {
            self.fail(Property::Sbom, "missing SBOM attestation (SPDX or CycloneDX) signed by an authority".into());
        }
        let mut hits = vec![];
        for (pt, pred) in &sboms {
            for (name, version, purl) in sbom_packages(pt, pred) {
                if let Some(b) = self.set.banned.hit(&name, &purl) {
                    let why = b.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                    let s = format!("{name} {version} {purl}{why}");
                    if !hits.contains(&s) {
                        hits.push(s);
                    }
                }
            }
        }
        if !hits.is_empty() {
            self.fail(Property::Sbom, format!("SBOM lists banned package(s): {}", hits.join(", ")));
        }
    }

    /// The newest vulnerability scan: recent enough, nothing at or above the denied severity.
    fn check_vulnerabilities(&mut self, s: &Subjected<'_>) {
        let Some(req) = &self.p.vulnerabilities else { return };
        let scans = self.attested(s, &["https://cosign.sigstore.dev/attestation/vuln/v1", "https://in-toto.io/attestation/vulns/v0.2"]);
        if scans.is_empty() {
            self.fail(Property::Vulnerabilities, "missing vulnerability scan attestation signed by an authority".into());
            return;
        }
        let Some(newest) = scans.iter().filter_map(|(pt, pr)| scan_result(pt, pr)).max_by_key(|s| s.finished) else {
            self.fail(Property::Vulnerabilities, "vulnerability scan attestation has no readable result".into());
            return;
        };
        let age = self.now.duration_since(newest.finished);
        if age > req.max_age {
            self.fail(
                Property::Vulnerabilities,
                format!("newest vulnerability scan is {}h old (maximum {}h)", age.as_secs() / 3600, req.max_age.as_secs() / 3600),
            );
        }
        let bad: Vec<String> =
            newest.findings.iter().filter(|(_, sev)| *sev >= req.deny_at_or_above).map(|(id, sev)| format!("{id} ({sev:?})")).collect();
        if !bad.is_empty() {
            self.fail(Property::Vulnerabilities, format!("vulnerability scan reports {}", bad.join(", ")));
        }
    }

    /// The base image named in the provenance is approved.
    fn check_base_image(&mut self, provenance: &[(String, Value)]) {
        let Some(approved) = &self.p.base_images else { return };
        match provenance.iter().find_map(|(_, pred)| base_image(pred)) {
            None => self.fail(Property::BaseImage, "the provenance names no base image".into()),
            Some(base) => {
                if !approved.iter().any(|g| g.matches(&base)) {
                    self.fail(Property::BaseImage, format!("base image {base} is not approved"));
                }
            }
        }
    }

    /// Every log checkpoint the material cites is in the witnessed history (and the witnessed
    /// checkpoint meets the witness policy); a split view or a log under alarm always denies.
    fn check_transparency(&mut self, req: &TransparencyReq, material: &MaterialRecord) {
        use crate::core::tlog::{HistoryVerdict, bundle_checkpoints};
        let mut fail = |mode: Mode, message: String| {
            self.ev.violations.push(Violation {
                policy: self.p.name.clone(),
                property: Property::Transparency,
                message,
                mode: mode.min(self.p.mode),
            })
        };
        let mut seen = BTreeSet::new();
        for item in material.items.iter().filter(|i| usable(i)) {
            let Some(b) = item.bundle.as_ref().and_then(|b| self.facts.blobs.get(b)) else { continue };
            for (log, size, _) in bundle_checkpoints(b) {
                if !seen.insert((log.clone(), size)) {
                    continue;
                }
                let short = &log[..log.len().min(12)];
                match self.facts.tlog.get(&(log.clone(), size)).map(|f| (&f.verdict, f.witnessed_note.as_deref())) {
                    None | Some((HistoryVerdict::UnknownLog { .. }, _)) => {
                        fail(req.unwitnessed, format!("log {short}… has never been witnessed ({})", item.source))
                    }
                    Some((HistoryVerdict::Inconsistent { detail, .. }, _)) => {
                        fail(Mode::Enforce, format!("split view on log {short}…: {detail} ({})", item.source))
                    }
                    Some((HistoryVerdict::LogUntrusted { detail }, _)) => {
                        fail(Mode::Enforce, format!("log {short}… is untrusted: {detail}"))
                    }
                    Some((HistoryVerdict::Unwitnessed { size, witnessed }, _)) => fail(
                        req.unwitnessed,
                        format!(
                            "checkpoint size {size} of log {short}… is not yet proven consistent with the witnessed history (witnessed up to {}) ({})",
                            witnessed.map(|w| w.to_string()).unwrap_or_else(|| "nothing".into()),
                            item.source
                        ),
                    ),
                    Some((HistoryVerdict::Consistent { witnessed, .. }, note)) => {
                        if let Some(wp) = &req.witness_policy {
                            let (signed, ok) = wp.evaluate(note.unwrap_or(""));
                            if !ok {
                                let who = if signed.is_empty() {
                                    "nobody".to_string()
                                } else {
                                    signed.into_iter().collect::<Vec<_>>().join(", ")
                                };
                                fail(
                                    Mode::Enforce,
                                    format!(
                                        "witnessed checkpoint {witnessed} of log {short}… does not meet the witness policy (cosigned by {who})"
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
