//! `trustmirror report`: violations per policy and namespace from the audit log — the number a
//! team watches before switching a namespace from audit to warn to enforce.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::store::admission::AuditRecord;

/// property → mode → count
pub type ByProperty = BTreeMap<String, BTreeMap<String, u64>>;

/// The violations summary `trustmirror report` prints: per (policy, namespace), counts by mode.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub since: Option<Timestamp>,
    pub decisions: usize,
    pub denied: usize,
    pub breakglass_uses: usize,
    /// (policy, namespace) → property → mode → count
    pub violations: BTreeMap<String, BTreeMap<String, ByProperty>>,
    /// Images with the most violations.
    pub top_images: Vec<(String, u64)>,
}

pub fn report(records: &[AuditRecord], since: Option<Timestamp>) -> Report {
    let mut r = Report { since, decisions: records.len(), ..Default::default() };
    let mut imgs: BTreeMap<String, u64> = BTreeMap::new();
    for rec in records {
        if !rec.allowed {
            r.denied += 1;
        }
        if rec.exemption.is_some() {
            r.breakglass_uses += 1;
        }
        for v in &rec.violations {
            *r.violations
                .entry(v.policy.clone())
                .or_default()
                .entry(rec.namespace.clone())
                .or_default()
                .entry(v.property.as_str().to_string())
                .or_default()
                .entry(v.mode.as_str().to_string())
                .or_default() += 1;
            *imgs.entry(rec.digest.clone().unwrap_or_else(|| rec.image.clone())).or_default() += 1;
        }
    }
    let mut top: Vec<(String, u64)> = imgs.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    r.top_images = top;
    r
}
