//! Admission metrics, registered under `trustmirror_admission_`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

pub type Labels = Vec<(String, String)>;

pub fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0])
}

/// Admission metrics (registered under `trustmirror_admission_`).
#[derive(Clone)]
pub struct AdmissionMetrics {
    /// Reviews by endpoint and verdict (allowed / denied / error).
    pub reviews: Family<Labels, Counter>,
    /// Images decided, by verdict, namespace and policy.
    pub images: Family<Labels, Counter>,
    /// Violations by policy, property, namespace and the mode that handled them — the
    /// `mode="audit"` series is what a team watches before switching to enforce.
    pub violations: Family<Labels, Counter>,
    pub latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub cache: Family<Labels, Counter>,
    pub breakglass: Family<Labels, Counter>,
    pub misses_queued: Counter,
    pub policy_reloads: Family<Labels, Counter>,
    pub audit_dropped: Counter,
    /// Reviews answered per the failure mode, by endpoint and reason (overloaded, timeout,
    /// internal).
    pub failures: Family<Labels, Counter>,
}

impl AdmissionMetrics {
    pub fn new() -> Self {
        let m = Self {
            reviews: Family::default(),
            images: Family::default(),
            violations: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            cache: Family::default(),
            breakglass: Family::default(),
            misses_queued: Counter::default(),
            policy_reloads: Family::default(),
            audit_dropped: Counter::default(),
            failures: Family::default(),
        };
        // the series whose labels are known ahead exist from the start (0): a family with no
        // series is not exposed at all, and an alert on a rate needs the series before the event
        for endpoint in ["validate", "mutate"] {
            for reason in ["overloaded", "timeout", "internal"] {
                let _ = m.failures.get_or_create(&l(&[("endpoint", endpoint), ("reason", reason)]));
            }
        }
        for what in ["policy", "exemptions"] {
            for result in ["success", "error"] {
                let _ = m.policy_reloads.get_or_create(&l(&[("what", what), ("result", result)]));
            }
        }
        for result in ["hit", "miss"] {
            let _ = m.cache.get_or_create(&l(&[("result", result)]));
        }
        m
    }

    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        let r = r.sub_registry_with_prefix("trustmirror_admission");
        r.register("reviews", "AdmissionReviews answered, by endpoint and verdict", self.reviews.clone());
        r.register("images", "Images decided, by verdict, namespace and policy", self.images.clone());
        r.register("violations", "Policy violations by policy, property, namespace and handling mode", self.violations.clone());
        r.register("review_duration_seconds", "Time to answer an AdmissionReview", self.latency.clone());
        r.register("cache_lookups", "Decision cache lookups by result (hit/miss)", self.cache.clone());
        r.register("breakglass_uses", "Admissions allowed by a break-glass exemption", self.breakglass.clone());
        r.register("misses_queued", "Images not in the store, queued for the mirror", self.misses_queued.clone());
        r.register("policy_reloads", "Policy, banned-list and exemption reloads by result", self.policy_reloads.clone());
        r.register("audit_records_dropped", "Audit records dropped because the writer fell behind", self.audit_dropped.clone());
        r.register("failures", "Reviews answered per the failure mode (no decision), by endpoint and reason", self.failures.clone());
    }
}

impl Default for AdmissionMetrics {
    fn default() -> Self {
        Self::new()
    }
}
