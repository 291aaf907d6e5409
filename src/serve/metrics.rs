//! Prometheus metrics. State-derived values (role expiry, last success, failures by reason) are
//! read from the store at scrape time, so they are right after a restart and agree with
//! `trustmirror tuf status`; in-process counters count refreshes and upstream requests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::core::tuf::TufErrorKind;
use crate::store::Store;
use crate::store::repo_view;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    role_expiry: Family<Labels, Gauge>,
    role_version: Family<Labels, Gauge>,
    last_success: Family<Labels, Gauge>,
    since_success: Family<Labels, Gauge>,
    ready: Family<Labels, Gauge>,
    failures: Family<Labels, Counter>,
    failures_seen: Mutex<BTreeMap<(String, String), u64>>,
    refreshes: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    material_age: Family<Labels, Gauge>,
    material_expiry: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Metrics {
    pub fn new() -> Self {
        // one root registry without a prefix: each part registers under its own
        // (`trustmirror_tuf_…`, `trustmirror_admission_…`, `trustmirror_task_…`)
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("trustmirror_tuf");
        let m = Self {
            registry: Mutex::new(Registry::default()),
            role_expiry: Family::default(),
            role_version: Family::default(),
            last_success: Family::default(),
            since_success: Family::default(),
            ready: Family::default(),
            failures: Family::default(),
            failures_seen: Mutex::new(BTreeMap::new()),
            refreshes: Family::default(),
            requests: Family::default(),
            material_age: Family::default(),
            material_expiry: Family::default(),
        };
        r.register("role_expiry_timestamp_seconds", "Expiry of the trusted version of each role (Unix time)", m.role_expiry.clone());
        r.register("role_version", "Trusted version of each role", m.role_version.clone());
        r.register(
            "last_success_timestamp_seconds",
            "Last refresh that ended with verified, unexpired metadata (Unix time)",
            m.last_success.clone(),
        );
        r.register("seconds_since_last_success", "Staleness: seconds since the last successful refresh", m.since_success.clone());
        r.register("ready", "1 when a verified, unexpired root and timestamp are served", m.ready.clone());
        r.register("refresh_failures", "Failed refreshes by reason (persisted in the store)", m.failures.clone());
        r.register("refreshes", "Refreshes run by this process, by result", m.refreshes.clone());
        r.register("upstream_requests", "Requests made to the upstream by this process", m.requests.clone());
        let mr = root.sub_registry_with_prefix("trustmirror_material");
        mr.register(
            "age_seconds",
            "Seconds since each kind of trust material was last refreshed (tuf, checkpoints)",
            m.material_age.clone(),
        );
        mr.register(
            "expiry_timestamp_seconds",
            "When each kind of trust material expires (tuf: earliest role; trusted_root: last CA validity), Unix time",
            m.material_expiry.clone(),
        );
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = root;
        m
    }

    /// Register further metrics (admission) in the same exposition.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn record_refresh(&self, repo: &str, result: &str, requests: u64) {
        self.refreshes.get_or_create(&l(&[("repo", repo), ("result", result)])).inc();
        self.requests.get_or_create(&l(&[("repo", repo)])).inc_by(requests);
    }

    /// Refresh state-derived values from the store and encode everything (OpenMetrics text).
    pub fn render(&self, store: &Store, repo: &str, now: Timestamp) -> String {
        if let Ok(v) = repo_view(store, repo, now) {
            for (role, rv) in &v.roles {
                let labels = l(&[("repo", repo), ("role", role)]);
                if let Some(e) = rv.expires {
                    self.role_expiry.get_or_create(&labels).set(e.as_second());
                }
                self.role_version.get_or_create(&labels).set(rv.version as i64);
            }
            let rl = l(&[("repo", repo)]);
            if let Some(t) = v.last_success {
                self.last_success.get_or_create(&rl).set(t.as_second());
            }
            self.since_success.get_or_create(&rl).set(v.seconds_since_last_success.unwrap_or(-1));
            self.ready.get_or_create(&rl).set(v.ready as i64);
            let mut seen = self.failures_seen.lock().unwrap_or_else(|e| e.into_inner());
            for kind in TufErrorKind::ALL {
                let reason = kind.as_str();
                let total = v.failures.get(reason).copied().unwrap_or(0);
                let prev = seen.entry((repo.to_string(), reason.to_string())).or_insert(0);
                let c = self.failures.get_or_create(&l(&[("repo", repo), ("reason", reason)]));
                if total > *prev {
                    c.inc_by(total - *prev);
                    *prev = total;
                }
            }
        }
        if let Ok(facts) = crate::trust::freshness::facts(store, repo) {
            for (k, f) in facts.iter().filter(|(_, f)| !f.absent) {
                let labels = l(&[("kind", k.as_str())]);
                if let Some(s) = f.fresh_since {
                    self.material_age.get_or_create(&labels).set(now.duration_since(s).as_secs());
                }
                if let Some(e) = f.expires {
                    self.material_expiry.get_or_create(&labels).set(e.as_second());
                }
            }
        }
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        encode(&mut out, &reg).expect("writing to a String cannot fail");
        out
    }
}
