//! Deciding one image: every policy that covers its repository is evaluated over the image's
//! [`Facts`], one function per property.
//!
//! Decisions rest on [`Evidence`] only: what verification established about each item (who
//! signed, what the signed content is about, when, the authenticated checkpoint), recorded by the
//! mirror at ingest under a trust root. Evidence recorded under the policy's trust root is used
//! as is (no cryptography on the hot path); items without it — key-signed ones the mirror had no
//! key for, or ones verified under another trust root — are verified here, once per evaluation
//! (and across evaluations through an [`EvidenceMemo`]). Registry annotations and manifest fields
//! never decide what an item is.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::Value;

use super::attestation::Signers;
use super::model::*;
use super::predicates::{base_image, check_provenance, sbom_packages, scan_result};
use crate::core::evidence::{Evidence, Form, Signer, any_identity, establish};
use crate::core::material::{Item, ItemKind, ItemStatus};
use crate::core::verify::{Authority, TrustStore, TrustedMaterial};

/// Evidence established at admission (key-signed items, other trust roots), kept across
/// evaluations by the caller. `None` values remember refusals.
pub trait EvidenceMemo: Send + Sync {
    fn get(&self, key: &str) -> Option<Option<Evidence>>;
    fn put(&self, key: String, evidence: Option<Evidence>);
}

/// No memory: every evaluation verifies what it needs itself.
pub struct NoMemo;

impl EvidenceMemo for NoMemo {
    fn get(&self, _: &str) -> Option<Option<Evidence>> {
        None
    }
    fn put(&self, _: String, _: Option<Evidence>) {}
}

impl PolicySet {
    /// The policies covering `repository` (`registry/repo`, normalized).
    pub fn matching(&self, repository: &str) -> Vec<&Policy> {
        self.policies.iter().filter(|p| p.matches(repository)).collect()
    }

    /// Evaluate every matching policy for one image (see [`PolicySet::evaluate_with`]).
    pub fn evaluate(&self, trust: &TrustStore, facts: &Facts, now: Timestamp) -> Evaluation {
        self.evaluate_with(trust, facts, now, &NoMemo)
    }

    /// Evaluate every matching policy for one image. Violations carry the policy's default mode
    /// here and are re-moded per namespace by [`PolicySet::apply_namespace`].
    pub fn evaluate_with(&self, trust: &TrustStore, facts: &Facts, now: Timestamp, memo: &dyn EvidenceMemo) -> Evaluation {
        let mut ev = Evaluation { reference: facts.reference.clone(), digest: facts.digest.clone(), ..Default::default() };
        let policies = self.matching(&facts.repository);
        if policies.is_empty() {
            if let Some(m) = self.no_match {
                ev.violations.push(Violation {
                    policy: "(none)".into(),
                    property: Property::NoPolicy,
                    message: format!(
                        "no policy covers {} (images no policy covers are denied; PolicyDefaults noMatch: allow|audit|warn|enforce changes that)",
                        facts.repository
                    ),
                    mode: m,
                });
            }
            return ev;
        }
        for p in policies {
            ev.policies.push(p.name.clone());
            Run { set: self, p, facts, now, memo, ev: &mut ev, statements: BTreeMap::new() }.evaluate(trust);
        }
        ev
    }

    /// Re-mode violations for a namespace (a policy's `namespaces` overrides).
    /// Violations of policies that do not apply in the namespace are dropped.
    pub fn apply_namespace(&self, ev: &Evaluation, namespace: &str) -> Vec<Violation> {
        ev.violations
            .iter()
            .filter(|v| self.policies.iter().find(|p| p.name == v.policy).is_none_or(|p| p.applies_in(namespace)))
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
    memo: &'a dyn EvidenceMemo,
    ev: &'a mut Evaluation,
    /// In-toto statements read from bundles, by bundle id (each parsed once per evaluation).
    statements: BTreeMap<String, Option<Value>>,
}

/// An item and what verification established about it, under the policy's trust root.
struct Proven<'a> {
    item: &'a Item,
    evidence: Evidence,
}

fn usable(i: &Item) -> bool {
    matches!(i.status, ItemStatus::Verified { .. } | ItemStatus::NeedsKey) && i.bundle.is_some()
}

fn has_certificate(bundle: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bundle).is_ok_and(|v| v["verificationMaterial"].get("publicKey").is_none())
}

/// Maximum bipartite matching (Kuhn's augmenting paths): `edges[a]` lists the signatures that
/// satisfy authority `a`; each signature serves at most one authority. Returns how many
/// authorities are matched. Sizes are small (authorities × signatures of one image).
fn max_matching(edges: &[Vec<usize>], signatures: usize) -> usize {
    fn augment(a: usize, edges: &[Vec<usize>], seen: &mut [bool], owner: &mut [Option<usize>]) -> bool {
        for &s in &edges[a] {
            if !seen[s] {
                seen[s] = true;
                if owner[s].is_none_or(|o| augment(o, edges, seen, owner)) {
                    owner[s] = Some(a);
                    return true;
                }
            }
        }
        false
    }
    let mut owner = vec![None; signatures];
    (0..edges.len()).filter(|&a| augment(a, edges, &mut vec![false; signatures], &mut owner)).count()
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
        if self.by_summary() {
            return;
        }
        let Some((digest, tm)) = self.subject(trust) else { return };
        let mut proven = self.prove(&digest, &tm);
        let mut not_counted = vec![];
        if let Some(req) = &self.p.transparency {
            (proven, not_counted) = self.check_transparency(req, proven);
        }
        let before = self.ev.violations.len();
        self.check_signatures(&digest, &proven);
        self.check_attestations(&digest, &proven);
        let provenance = self.attested(&digest, &proven, &["https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"], None);
        self.check_provenance(&provenance);
        self.check_sbom(&digest, &proven);
        self.check_vulnerabilities(&digest, &proven);
        self.check_base_image(&provenance);
        // say why evidence was missing, when items were set aside for lack of a witnessed
        // checkpoint and the policy failed without them
        if !not_counted.is_empty() && self.ev.violations.len() > before {
            self.fail(Property::Transparency, format!("not counted for lack of a witnessed log checkpoint: {}", not_counted.join("; ")));
        }
        // and why a verification summary, if the image carries one, did not stand for them
        if self.ev.violations.len() > before
            && let Some((_, why)) = self.ev.vsa_refused.iter().find(|(p, _)| *p == self.p.name).cloned()
        {
            self.fail(Property::Attestation, format!("verification summary not accepted: {why}"));
        }
    }

    /// A verification summary from a verifier the policy names stands for its properties (the
    /// reference rules above still apply). Items are looked at as bytes: a VSA is signed with the
    /// verifier's own key, which [`crate::core::vsa::verify`] checks.
    fn by_summary(&mut self) -> bool {
        let (Some(req), Some(digest), Some(m)) = (&self.p.vsa, &self.facts.digest, &self.facts.material) else { return false };
        let mut refused = vec![];
        for item in m.items.iter().filter(|i| i.bundle.is_some()) {
            let Some(b) = self.blob(&item.bundle) else { continue };
            match crate::core::vsa::verify(b, &req.verifiers, digest, self.now, req.max_age) {
                Ok(Some(a)) => {
                    let until = a.time_verified.checked_add(req.max_age).unwrap_or(a.time_verified);
                    self.ev.valid_until = Some(self.ev.valid_until.map_or(until, |u| u.min(until)));
                    self.ev.by_vsa.push((
                        self.p.name.clone(),
                        format!("verification summary by {} ({}) at {} under {}", a.verifier, a.verifier_id, a.time_verified, a.policy_uri),
                    ));
                    return true;
                }
                Ok(None) => {}
                Err(e) => refused.push(format!("{}: {e}", item.source)),
            }
        }
        if !refused.is_empty() {
            // said, so a denial that follows explains why the summary did not count
            self.ev.vsa_refused.push((self.p.name.clone(), refused.join("; ")));
        }
        false
    }

    /// Registry allowlist; references by tag (a tag is whatever the registry says now: only the
    /// digest it resolved to when mirrored and verified may be admitted — the mutating webhook
    /// pins tags to it).
    fn check_structure(&mut self) {
        let f = self.facts;
        if let Some(allowed) = &self.p.registries
            && !allowed.iter().any(|g| g.matches(&f.repository))
        {
            self.fail(Property::Registry, format!("{} is not in an approved registry", f.repository));
        }
        if f.by_tag {
            self.fail(
                Property::Digest,
                format!(
                    "{} is referenced by tag: only digests are admitted (the mutating webhook pins tags to their verified digest)",
                    f.reference
                ),
            );
        }
    }

    /// The digest and the policy's trust root — or the violation saying which is missing.
    fn subject(&mut self, trust: &TrustStore) -> Option<(String, std::sync::Arc<TrustedMaterial>)> {
        let f = self.facts;
        let Some(digest) = f.digest.clone() else {
            self.fail(Property::Mirror, format!("{}: the tag has not been mirrored yet (queued for the mirror)", f.reference));
            return None;
        };
        if f.material.is_none() {
            self.fail(Property::Mirror, format!("{digest}: no signature material mirrored yet (queued for the mirror)"));
            return None;
        }
        if !crate::core::digest::is_digest(&digest) {
            self.fail(Property::Digest, format!("{digest}: only sha256 digests are supported"));
            return None;
        }
        match trust.get(self.p.trust_root.as_deref().unwrap_or("default")) {
            Ok(t) => Some((digest, t)),
            Err(e) => {
                self.fail(Property::Signature, e.to_string());
                None
            }
        }
    }

    /// The evidence of every usable item under `tm`: recorded at ingest, or established now.
    fn prove(&self, digest: &str, tm: &TrustedMaterial) -> Vec<Proven<'a>> {
        let Some(material) = &self.facts.material else { return vec![] };
        let attestors = self.p.attestations.iter().flat_map(|r| match &r.signers {
            Signers::Entries { entries, .. } => entries.iter().collect::<Vec<_>>(),
            _ => vec![],
        });
        let keys: Vec<&Authority> = self
            .p
            .authorities
            .iter()
            .flat_map(|a| a.alternatives.iter())
            .chain(attestors)
            .filter(|a| matches!(a, Authority::Key { .. }))
            .collect();
        let mut out = vec![];
        for item in material.items.iter().filter(|i| usable(i)) {
            if let Some(e) = &item.evidence
                && e.trust == tm.digest
            {
                out.push(Proven { item, evidence: e.clone() });
                continue;
            }
            let Some(bundle) = self.blob(&item.bundle) else { continue };
            let form = match item.kind {
                ItemKind::Signature => match self.blob(&item.payload) {
                    Some(p) => Form::SimpleSigning(p),
                    None => continue,
                },
                _ => Form::Bundle,
            };
            let bid = item.bundle.as_deref().unwrap_or_default();
            let candidates: Vec<(String, Authority)> = if has_certificate(bundle) {
                vec![("cert".into(), any_identity())]
            } else {
                keys.iter().map(|k| (format!("key:{}", key_fp(k)), (*k).clone())).collect()
            };
            for (tag, a) in candidates {
                let key = format!("{bid}/{}/{tag}/{digest}", tm.digest);
                let e = match self.memo.get(&key) {
                    Some(e) => e,
                    None => {
                        let e = establish(tm, bundle, form, digest, &a, self.now).ok();
                        self.memo.put(key, e.clone());
                        e
                    }
                };
                if let Some(e) = e {
                    out.push(Proven { item, evidence: e });
                    break;
                }
            }
        }
        out
    }

    /// Signatures over this digest from at least `threshold` distinct authorities (one signature
    /// counts for one authority; identities within an authority are alternatives).
    fn check_signatures(&mut self, digest: &str, proven: &[Proven<'_>]) {
        let p = self.p;
        if p.authorities.is_empty() {
            return;
        }
        let sigs: Vec<&Proven<'_>> = proven.iter().filter(|x| x.evidence.signs_image(digest)).collect();
        let mut edges = vec![];
        let mut statics = 0;
        for a in &p.authorities {
            match a.static_pass {
                Some(pass) => {
                    statics += pass as usize;
                    edges.push(vec![]);
                }
                None => edges.push(
                    sigs.iter()
                        .enumerate()
                        .filter(|(_, s)| a.alternatives.iter().any(|alt| s.evidence.signed_by(alt)))
                        .map(|(i, _)| i)
                        .collect(),
                ),
            }
        }
        let satisfied = max_matching(&edges, sigs.len()) + statics;
        for (a, e) in p.authorities.iter().zip(&edges) {
            if let Some(&s) = e.first() {
                self.ev.signers.push((a.name.clone(), signer_text(&sigs[s].evidence.signer)));
            }
        }
        if satisfied >= p.threshold {
            return;
        }
        let material = self.facts.material.as_ref().expect("checked by subject()");
        let sig_like =
            material.items.iter().filter(|i| i.kind == ItemKind::Signature || (i.kind == ItemKind::Bundle && i.evidence.is_none())).count();
        let names: Vec<&str> = p.authorities.iter().map(|a| a.name.as_str()).collect();
        let accepted: BTreeSet<usize> = edges.iter().flatten().copied().collect();
        let why = if let Some(s) = sigs.iter().enumerate().find(|(i, _)| !accepted.contains(i)).map(|(_, s)| s) {
            format!("{}: signed by {}, which no authority of the policy accepts", s.item.source, signer_text(&s.evidence.signer))
        } else if !sigs.is_empty() {
            format!("{} signature(s) verified, from fewer distinct authorities than required", sigs.len())
        } else if let Some((src, check, reason)) = material.items.iter().find_map(|i| match &i.status {
            ItemStatus::Rejected { check, reason } if i.kind != ItemKind::Sbom => Some((&i.source, check, reason)),
            _ => None,
        }) {
            format!("{src}: {check} check failed: {reason}")
        } else if sig_like == 0 {
            self.fail(Property::Signature, format!("{digest} is not signed"));
            return;
        } else {
            "no signature verified".into()
        };
        self.fail(Property::Signature, format!("no signature from {} ({satisfied} of {} required): {why}", names.join(", "), p.threshold));
    }

    /// The in-toto statement of a proven item (read from its bundle once per evaluation).
    fn statement(&mut self, x: &Proven<'_>) -> Option<Value> {
        let id = x.item.bundle.clone()?;
        if let Some(v) = self.statements.get(&id) {
            return v.clone();
        }
        let v = self.blob(&x.item.bundle).and_then(|b| crate::core::cosign::statement_of_bundle(b));
        self.statements.insert(id, v.clone());
        v
    }

    /// Attestations of one of `types` about this digest, signed by `authority` (or any authority
    /// of the policy): (verified predicate type, predicate).
    fn attested(&mut self, digest: &str, proven: &[Proven<'_>], types: &[&str], authority: Option<usize>) -> Vec<(String, Value)> {
        let p = self.p;
        let accepted = |e: &Evidence| match authority {
            Some(i) => p.authorities.get(i).is_some_and(|a| a.alternatives.iter().any(|alt| e.signed_by(alt))),
            None => p.authorities.iter().flat_map(|a| a.alternatives.iter()).any(|alt| e.signed_by(alt)),
        };
        self.statements_signed(digest, proven, types, &accepted).into_iter().map(|(pt, st, _)| (pt, st["predicate"].clone())).collect()
    }

    /// The verified in-toto statements of one of `types` about this digest whose evidence
    /// `accepted` takes: (predicate type, statement, index into `proven`).
    fn statements_signed(
        &mut self,
        digest: &str,
        proven: &[Proven<'_>],
        types: &[&str],
        accepted: &dyn Fn(&Evidence) -> bool,
    ) -> Vec<(String, Value, usize)> {
        let mut out = vec![];
        for (i, x) in proven.iter().enumerate() {
            let Some(pt) = x.evidence.attests(digest) else { continue };
            if !types.contains(&pt) || !accepted(&x.evidence) {
                continue;
            }
            // the statement verified with the evidence: its type is the evidence's
            if let Some(st) = self.statement(x)
                && st["predicateType"].as_str() == Some(pt)
            {
                out.push((pt.to_string(), st, i));
            }
        }
        out
    }

    /// Required attestations: present, signed by whom the requirement names, and (with a check)
    /// satisfying it — one of them (policy-controller) or every one (Kyverno).
    fn check_attestations(&mut self, digest: &str, proven: &[Proven<'_>]) {
        let p = self.p;
        for req in &p.attestations {
            let pt = req.predicate_type.as_str();
            let missing = format!("attestation {:?} ({pt}) is missing or not signed by an authority", req.name);
            let outcome = |found: &[(String, Value, usize)]| -> Result<(), String> {
                let Some(check) = &req.check else { return Ok(()) };
                let results: Vec<Result<(), String>> = found.iter().map(|(_, st, _)| check.check(st)).collect();
                let failed = results.iter().find_map(|r| r.as_ref().err());
                match failed {
                    Some(why) if req.every || !results.iter().any(Result::is_ok) => Err(format!(
                        "attestation {:?}: {} {pt} attestation satisfies the policy ({why})",
                        req.name,
                        if req.every { "not every" } else { "no" }
                    )),
                    _ => Ok(()),
                }
            };
            match &req.signers {
                Signers::Entries { entries, count } => {
                    let mut satisfied = 0;
                    let mut why = vec![];
                    for (i, entry) in entries.iter().enumerate() {
                        let found = self.statements_signed(digest, proven, &[pt], &|e: &Evidence| e.signed_by(entry));
                        match found.is_empty() {
                            true => why.push(format!("entries[{i}]: no {pt} attestation signed by {}", authority_text(entry))),
                            false => match outcome(&found) {
                                Ok(()) => satisfied += 1,
                                Err(e) => why.push(format!("entries[{i}]: {e}")),
                            },
                        }
                    }
                    if satisfied < *count {
                        self.fail(
                            Property::Attestation,
                            format!("attestation {:?}: {satisfied} of {count} required attestors verified: {}", req.name, why.join("; ")),
                        );
                    }
                }
                signers => {
                    let found = match signers {
                        Signers::Anyone => self.statements_signed(digest, proven, &[pt], &|_: &Evidence| true),
                        Signers::Authority(i) => {
                            let a = p.authorities.get(*i);
                            self.statements_signed(digest, proven, &[pt], &|e: &Evidence| {
                                a.is_some_and(|a| a.alternatives.iter().any(|alt| e.signed_by(alt)))
                            })
                        }
                        _ => self.statements_signed(digest, proven, &[pt], &|e: &Evidence| {
                            p.authorities.iter().flat_map(|a| a.alternatives.iter()).any(|alt| e.signed_by(alt))
                        }),
                    };
                    if found.is_empty() {
                        self.fail(Property::Attestation, missing);
                    } else if let Err(e) = outcome(&found) {
                        self.fail(Property::Attestation, e);
                    }
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
    fn check_sbom(&mut self, digest: &str, proven: &[Proven<'_>]) {
        if !self.p.sbom_required {
            return;
        }
        let sboms = self.attested(digest, proven, &["https://spdx.dev/Document", "https://cyclonedx.org/bom"], None);
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
    fn check_vulnerabilities(&mut self, digest: &str, proven: &[Proven<'_>]) {
        let Some(req) = &self.p.vulnerabilities else { return };
        let scans = self.attested(
            digest,
            proven,
            &["https://cosign.sigstore.dev/attestation/vuln/v1", "https://in-toto.io/attestation/vulns/v0.2"],
            None,
        );
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

    /// The transparency rule, item by item: an item signed by an authority counts as evidence
    /// only when every log checkpoint it cites is in the witnessed history (and the witnessed
    /// checkpoint meets the witness policy). One that cites none — a SET alone is the log's
    /// promise, not a proof — or one not yet proven is unwitnessed: with `witnessed: required`
    /// it is set aside (returned with why), with `warn`/`audit` it counts and the violation is
    /// reported at that mode. A split view or a log under alarm always denies. Returns the items
    /// that count, and descriptions of those set aside.
    fn check_transparency<'p>(&mut self, req: &TransparencyReq, proven: Vec<Proven<'p>>) -> (Vec<Proven<'p>>, Vec<String>) {
        use crate::core::tlog::HistoryVerdict;
        let p = self.p;
        let by_authority = |e: &Evidence| p.authorities.iter().flat_map(|a| a.alternatives.iter()).any(|alt| e.signed_by(alt));
        let (mut keep, mut set_aside) = (vec![], vec![]);
        for x in proven {
            if !by_authority(&x.evidence) {
                keep.push(x);
                continue;
            }
            let mut unwitnessed: Option<String> = None;
            let mut refused = false;
            if x.evidence.checkpoints.is_empty() {
                unwitnessed = Some("no log checkpoint (a SET alone is not a proof)".into());
            }
            for c in &x.evidence.checkpoints {
                let short = &c.log[..c.log.len().min(12)];
                match self.facts.tlog.get(&(c.log.clone(), c.size)).map(|f| (&f.verdict, f.witnessed_note.as_deref())) {
                    None | Some((HistoryVerdict::UnknownLog { .. }, _)) => {
                        unwitnessed = Some(format!("log {short}… has never been witnessed"))
                    }
                    Some((HistoryVerdict::Unwitnessed { size, witnessed }, _)) => {
                        unwitnessed = Some(format!(
                            "checkpoint size {size} of log {short}… is not yet proven consistent with the witnessed history (witnessed up to {})",
                            witnessed.map(|w| w.to_string()).unwrap_or_else(|| "nothing".into())
                        ))
                    }
                    Some((HistoryVerdict::Inconsistent { detail, .. }, _)) => {
                        refused = true;
                        self.ev.violations.push(Violation {
                            policy: p.name.clone(),
                            property: Property::Transparency,
                            message: format!("split view on log {short}…: {detail} ({})", x.item.source),
                            mode: p.mode,
                        });
                    }
                    Some((HistoryVerdict::LogUntrusted { detail }, _)) => {
                        refused = true;
                        self.ev.violations.push(Violation {
                            policy: p.name.clone(),
                            property: Property::Transparency,
                            message: format!("log {short}… is untrusted: {detail}"),
                            mode: p.mode,
                        });
                    }
                    Some((HistoryVerdict::Consistent { witnessed, .. }, note)) => {
                        if let Some(wp) = &req.witness_policy {
                            let (signed, ok) = wp.evaluate(note.unwrap_or(""));
                            if !ok {
                                let who = if signed.is_empty() {
                                    "nobody".to_string()
                                } else {
                                    signed.into_iter().collect::<Vec<_>>().join(", ")
                                };
                                unwitnessed = Some(format!(
                                    "witnessed checkpoint {witnessed} of log {short}… does not meet the witness policy (cosigned by {who})"
                                ));
                            }
                        }
                    }
                }
            }
            match (refused, unwitnessed) {
                (true, _) => set_aside.push(format!("{}: the log contradicts its witnessed history", x.item.source)),
                (false, None) => keep.push(x),
                (false, Some(why)) if req.unwitnessed == Mode::Enforce => set_aside.push(format!("{}: {why}", x.item.source)),
                (false, Some(why)) => {
                    self.ev.violations.push(Violation {
                        policy: p.name.clone(),
                        property: Property::Transparency,
                        message: format!("{}: {why}", x.item.source),
                        mode: req.unwitnessed.min(p.mode),
                    });
                    keep.push(x);
                }
            }
        }
        (keep, set_aside)
    }
}

fn key_fp(a: &Authority) -> String {
    match a {
        Authority::Key { spki_der, .. } => crate::core::digest::sha256_hex(spki_der),
        Authority::Keyless(_) => "keyless".into(),
    }
}

fn authority_text(a: &Authority) -> String {
    match a {
        Authority::Key { spki_der, .. } => format!("key sha256:{}…", &crate::core::digest::sha256_hex(spki_der)[..12]),
        Authority::Keyless(id) => format!(
            "subject {} issuer {}",
            id.san.as_ref().map(ToString::to_string).unwrap_or_else(|| "any".into()),
            id.issuer.as_ref().map(ToString::to_string).unwrap_or_else(|| "any".into())
        ),
    }
}

fn signer_text(s: &Signer) -> String {
    match s {
        Signer::Keyless { san, issuer, .. } => format!("{san}{}", issuer.as_ref().map(|i| format!(" (issuer {i})")).unwrap_or_default()),
        Signer::Key { spki_sha256 } => format!("key sha256:{}…", &spki_sha256[..spki_sha256.len().min(12)]),
    }
}

#[cfg(test)]
mod tests {
    use super::max_matching;

    #[test]
    fn one_signature_counts_for_one_authority() {
        // two authorities both accept only signature 0: one of them is satisfied
        assert_eq!(max_matching(&[vec![0], vec![0]], 1), 1);
        // a matching that needs re-routing: a0 → {0,1}, a1 → {0}
        assert_eq!(max_matching(&[vec![0, 1], vec![0]], 2), 2);
        assert_eq!(max_matching(&[vec![], vec![1]], 2), 1);
        assert_eq!(max_matching(&[], 3), 0);
    }
}
