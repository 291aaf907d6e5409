//! A whole review, decided in one pass: every image of the workload through the engine, then
//! the answer — for `/mutate` the tag → digest patch, for `/validate` allow or deny with every
//! enforced violation named, warnings for the rest, break-glass exemptions applied (each use
//! written to the audit log before the answer), and the audit records.

use std::collections::BTreeMap;
use std::time::Instant;

use super::engine::{Endpoint, Engine, ImageOutcome};
use super::metrics::l;
use super::review::{self, ImageRef, Response, Review};
use crate::core::policy::{Mode, Violation};
use crate::store::admission::AuditRecord;

fn short(d: &str) -> String {
    d.chars().take(19).collect()
}

impl Engine {
    /// Answer one review. Blocking (store reads, signature checks): call from a blocking thread.
    pub fn review(&self, req: &Review, endpoint: Endpoint, cap: Option<Mode>) -> Response {
        let t0 = Instant::now();
        let resp = self.decide_review(req, endpoint, cap);
        let verdict = if resp.allowed { "allowed" } else { "denied" };
        self.metrics.reviews.get_or_create(&l(&[("endpoint", endpoint.as_str()), ("verdict", verdict)])).inc();
        self.metrics.latency.get_or_create(&l(&[("endpoint", endpoint.as_str())])).observe(t0.elapsed().as_secs_f64());
        resp
    }

    fn decide_review(&self, req: &Review, endpoint: Endpoint, cap: Option<Mode>) -> Response {
        let refs = match &req.images {
            // no images: nothing to verify, but Gatekeeper constraints still look at the object
            Ok(r) if r.is_empty() && (endpoint == Endpoint::Mutate || self.policy().gatekeeper.is_empty()) => {
                return Response::allow(&req.uid);
            }
            Ok(r) => r,
            Err(_) if endpoint == Endpoint::Mutate => return Response::allow(&req.uid),
            Err(e) => return Response::deny(&req.uid, format!("trustmirror: cannot read the {} object: {e}", req.kind)),
        };
        let mut decided: BTreeMap<&str, ImageOutcome> = BTreeMap::new();
        for r in refs {
            if !decided.contains_key(r.image.as_str()) {
                decided.insert(&r.image, self.decide_image(&req.namespace, &r.image, cap));
            }
        }
        match endpoint {
            Endpoint::Mutate => {
                let ops: Vec<(String, String)> = refs
                    .iter()
                    .filter_map(|r| {
                        let o = &decided[r.image.as_str()];
                        (o.by_tag && o.verified).then(|| (r.path.clone(), review::pin(&r.image, o.digest.as_deref().unwrap_or_default())))
                    })
                    .collect();
                Response::allow(&req.uid).with_patch(&ops)
            }
            Endpoint::Validate => self.validate(req, refs, &decided),
        }
    }

    fn validate(&self, req: &Review, refs: &[ImageRef], decided: &BTreeMap<&str, ImageOutcome>) -> Response {
        let now = self.clock.now();
        let (namespace, object) = (req.namespace.as_str(), &req.object);
        let mut denials = vec![];
        let mut warnings = vec![];
        let mut records = vec![];
        let mut sync_records = vec![];
        for r in refs {
            let o = &decided[r.image.as_str()];
            let shown = match (&o.digest, o.by_tag) {
                (Some(d), true) => format!("{} (tag → {})", r.image, short(d)),
                _ => r.image.clone(),
            };
            for v in &o.violations {
                let policy_label = v.policy.as_str();
                self.metrics
                    .violations
                    .get_or_create(&l(&[
                        ("policy", policy_label),
                        ("property", v.property.as_str()),
                        ("namespace", namespace),
                        ("mode", v.mode.as_str()),
                    ]))
                    .inc();
            }
            let enforced: Vec<&Violation> = o.enforced().collect();
            let mut exemption = None;
            if !enforced.is_empty() {
                exemption = self.exemption_for(namespace, o.digest.as_deref(), now);
                match &exemption {
                    Some(e) => {
                        self.metrics.breakglass.get_or_create(&l(&[("namespace", namespace)])).inc();
                        warnings.push(format!(
                            "{}: admitted under break-glass exemption #{} ({}; expires {}) despite: {}",
                            r.container,
                            e.id,
                            e.reason,
                            e.expires_at,
                            enforced.iter().map(|v| format!("{}: {}", v.property.as_str(), v.message)).collect::<Vec<_>>().join("; ")
                        ));
                    }
                    None => {
                        let why: Vec<String> =
                            enforced.iter().map(|v| format!("[{}] {}: {}", v.policy, v.property.as_str(), v.message)).collect();
                        denials.push(format!("{} {shown}: {}", r.container, why.join("; ")));
                    }
                }
            }
            for v in o.violations.iter().filter(|v| v.mode == Mode::Warn) {
                warnings.push(format!("{} {}: [{}] {}: {}", r.container, shown, v.policy, v.property.as_str(), v.message));
            }
            let allowed = enforced.is_empty() || exemption.is_some();
            let policies = if o.policies.is_empty() { vec!["(none)".to_string()] } else { o.policies.clone() };
            for p in &policies {
                self.metrics
                    .images
                    .get_or_create(&l(&[("verdict", if allowed { "allowed" } else { "denied" }), ("namespace", namespace), ("policy", p)]))
                    .inc();
            }
            // decisions that rested on a verification summary are always recorded
            if o.violations.is_empty() && exemption.is_none() && o.by_vsa.is_empty() && !self.opts.record_allowed {
                continue;
            }
            let rec = AuditRecord {
                time: now,
                uid: req.uid.clone(),
                namespace: namespace.to_string(),
                object: object.clone(),
                image: r.image.clone(),
                digest: o.digest.clone(),
                allowed,
                mode: o.violations.iter().map(|v| v.mode).max(),
                violations: o.violations.clone(),
                exemption: exemption.as_ref().map(|e| e.id),
                basis: (!o.by_vsa.is_empty()).then(|| o.by_vsa.iter().map(|(p, w)| format!("[{p}] {w}")).collect::<Vec<_>>().join("; ")),
            };
            if exemption.is_some() { sync_records.push(rec) } else { records.push(rec) }
        }
        // Gatekeeper constraints: over the whole object, as Gatekeeper evaluates them
        // (`[constraint] msg`); break-glass exemptions are for images, not for these
        let policy = self.policy();
        if !policy.gatekeeper.is_empty() {
            for f in policy.gatekeeper.evaluate(&req.request) {
                let v = super::engine::constraint_violation(&f);
                let text = format!("[{}] {}", v.policy, v.message);
                self.metrics
                    .violations
                    .get_or_create(&l(&[
                        ("policy", v.policy.as_str()),
                        ("property", "constraint"),
                        ("namespace", namespace),
                        ("mode", v.mode.as_str()),
                    ]))
                    .inc();
                match v.mode {
                    Mode::Enforce => denials.push(text),
                    Mode::Warn => warnings.push(text),
                    Mode::Audit => {}
                }
                records.push(AuditRecord {
                    time: now,
                    uid: req.uid.clone(),
                    namespace: namespace.to_string(),
                    object: object.clone(),
                    image: String::new(),
                    digest: None,
                    allowed: v.mode != Mode::Enforce,
                    mode: Some(v.mode),
                    violations: vec![v],
                    exemption: None,
                    basis: None,
                });
            }
        }
        // Every use of an exemption is on disk before the admission is answered.
        if !sync_records.is_empty()
            && let Err(e) = self.audit.write_now(&sync_records)
        {
            return Response::deny(
                &req.uid,
                format!(
                    "trustmirror: {object}: a break-glass exemption applies but its use could not be recorded in the audit log ({e}); denying"
                ),
            );
        }
        self.audit.send(records);
        if denials.is_empty() {
            let mut r = Response::allow(&req.uid);
            r.warnings = warnings;
            r
        } else {
            let mut r = Response::deny(&req.uid, format!("trustmirror denied {object} in {namespace}: {}", denials.join(" | ")));
            r.warnings = warnings;
            r
        }
    }
}
