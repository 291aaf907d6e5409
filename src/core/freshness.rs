//! How long enforcement goes on without new material — stated, never implicit. Per kind of
//! material, a rule: warn when it is older than `warnAfter`; when it expires (its own expiry, or
//! `maxAge` after it was last refreshed), `deny`, `warn`, or `keepLastKnownGood` for at most
//! `grace`, then deny. Admission, `policy check`, the gate and `trustmirror status` apply the
//! same rules; the node agent's `--grace` is the TUF rule for its own cache.
//!
//! | kind | fresh since | expires |
//! |---|---|---|
//! | `tuf` | the last verified refresh (or import) | the earliest of timestamp, snapshot, targets |
//! | `trustedRoot` | — | when the last certificate authority's validity ends (none: never) |
//! | `checkpoints` | the newest witnessed checkpoint | `maxAge` after it |
//!
//! Vulnerability scans have their own `maxAge` in each policy.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::core::clock::human;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    Tuf,
    TrustedRoot,
    Checkpoints,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tuf => "tuf",
            Kind::TrustedRoot => "trusted_root",
            Kind::Checkpoints => "checkpoints",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnExpiry {
    Deny,
    Warn,
    KeepLastKnownGood,
}

fn de_dur<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SignedDuration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| {
        crate::core::clock::parse_duration(&s)
            .map_err(serde::de::Error::custom)
            .map(|d| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
    })
    .transpose()
}

fn ser_dur<S: serde::Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&human(*d)),
        None => s.serialize_none(),
    }
}

/// One kind's rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, deserialize_with = "de_dur", serialize_with = "ser_dur")]
    pub warn_after: Option<SignedDuration>,
    #[serde(default, deserialize_with = "de_dur", serialize_with = "ser_dur")]
    pub max_age: Option<SignedDuration>,
    pub on_expiry: OnExpiry,
    #[serde(default, deserialize_with = "de_dur", serialize_with = "ser_dur")]
    pub grace: Option<SignedDuration>,
}

/// The freshness policy (`freshness:` in the service's configuration, `--freshness FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FreshnessPolicy {
    #[serde(default = "FreshnessPolicy::tuf_default")]
    pub tuf: Rule,
    #[serde(default = "FreshnessPolicy::root_default")]
    pub trusted_root: Rule,
    #[serde(default = "FreshnessPolicy::checkpoints_default")]
    pub checkpoints: Rule,
}

impl Default for FreshnessPolicy {
    fn default() -> Self {
        Self { tuf: Self::tuf_default(), trusted_root: Self::root_default(), checkpoints: Self::checkpoints_default() }
    }
}

impl FreshnessPolicy {
    /// TUF metadata: warn a day after the last refresh; once it has expired, keep deciding with
    /// the last verified state for 30 days, then deny.
    pub fn tuf_default() -> Rule {
        Rule {
            warn_after: Some(SignedDuration::from_hours(24)),
            max_age: None,
            on_expiry: OnExpiry::KeepLastKnownGood,
            grace: Some(SignedDuration::from_hours(24 * 30)),
        }
    }
    /// Certificate authorities: warn once none is valid any more (old signatures still verify).
    pub fn root_default() -> Rule {
        Rule { warn_after: None, max_age: None, on_expiry: OnExpiry::Warn, grace: None }
    }
    /// Witnessed checkpoints: warn when the newest is more than a day old.
    pub fn checkpoints_default() -> Rule {
        Rule { warn_after: Some(SignedDuration::from_hours(24)), max_age: None, on_expiry: OnExpiry::Warn, grace: None }
    }

    pub fn parse(yaml: &str) -> Result<Self, String> {
        serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(yaml))
            .map_err(|e| format!("freshness: {}: {}", e.path(), e.inner()))
    }

    pub fn rule(&self, k: Kind) -> &Rule {
        match k {
            Kind::Tuf => &self.tuf,
            Kind::TrustedRoot => &self.trusted_root,
            Kind::Checkpoints => &self.checkpoints,
        }
    }
}

/// What the store says about one kind of material.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub fresh_since: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    /// Nothing of this kind is held (not judged).
    pub absent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "why", rename_all = "lowercase")]
pub enum Verdict {
    Fresh,
    Warn(String),
    Deny(String),
}

/// Judge one kind at `now`.
pub fn judge(k: Kind, rule: &Rule, f: &Facts, now: Timestamp) -> Verdict {
    if f.absent {
        return Verdict::Fresh;
    }
    let by_age = match (f.fresh_since, rule.max_age) {
        (Some(s), Some(m)) => s.checked_add(m).ok(),
        _ => None,
    };
    let expiry = match (f.expires, by_age) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let what = k.as_str();
    if let Some(e) = expiry
        && e < now
    {
        let past = now.duration_since(e);
        return match rule.on_expiry {
            OnExpiry::Deny => Verdict::Deny(format!("{what} material expired at {e} ({} ago); the freshness policy denies", human(past))),
            OnExpiry::Warn => Verdict::Warn(format!("{what} material expired at {e} ({} ago)", human(past))),
            OnExpiry::KeepLastKnownGood => match rule.grace {
                Some(g) if past > g => Verdict::Deny(format!(
                    "{what} material expired at {e}, {} ago: past the {} the last known good state may be used",
                    human(past),
                    human(g)
                )),
                Some(g) => Verdict::Warn(format!(
                    "{what} material expired at {e}; the last known good state is used for up to {} ({} so far)",
                    human(g),
                    human(past)
                )),
                None => Verdict::Warn(format!("{what} material expired at {e}; the last known good state is used (no limit set)")),
            },
        };
    }
    if let (Some(s), Some(w)) = (f.fresh_since, rule.warn_after)
        && now.duration_since(s) > w
    {
        return Verdict::Warn(format!(
            "{what} material last refreshed {s} ({} ago, warn after {})",
            human(now.duration_since(s)),
            human(w)
        ));
    }
    Verdict::Fresh
}

/// Judge every kind.
pub fn judge_all(p: &FreshnessPolicy, facts: &BTreeMap<Kind, Facts>, now: Timestamp) -> BTreeMap<Kind, Verdict> {
    facts.iter().map(|(k, f)| (*k, judge(*k, p.rule(*k), f, now))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(d: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + d * 86_400).unwrap()
    }

    #[test]
    fn day_0_8_and_31_under_each_setting() {
        // TUF refreshed on day 0, expiring on day 7
        let f = Facts { fresh_since: Some(t(0)), expires: Some(t(7)), absent: false };
        let rule = |on_expiry, grace: Option<i64>| Rule {
            warn_after: None,
            max_age: None,
            on_expiry,
            grace: grace.map(|d| SignedDuration::from_hours(24 * d)),
        };
        let cases = [
            (rule(OnExpiry::Deny, None), ["fresh", "deny", "deny"]),
            (rule(OnExpiry::Warn, None), ["fresh", "warn", "warn"]),
            (rule(OnExpiry::KeepLastKnownGood, Some(14)), ["fresh", "warn", "deny"]),
            (rule(OnExpiry::KeepLastKnownGood, Some(30)), ["fresh", "warn", "warn"]),
        ];
        for (r, want) in cases {
            let got: Vec<&str> = [0, 8, 31]
                .iter()
                .map(|d| match judge(Kind::Tuf, &r, &f, t(*d)) {
                    Verdict::Fresh => "fresh",
                    Verdict::Warn(_) => "warn",
                    Verdict::Deny(_) => "deny",
                })
                .collect();
            assert_eq!(got, want, "{r:?}");
        }
    }

    #[test]
    fn max_age_gives_checkpoints_an_expiry_and_warn_after_warns_early() {
        let f = Facts { fresh_since: Some(t(0)), expires: None, absent: false };
        let r = Rule {
            warn_after: Some(SignedDuration::from_hours(24)),
            max_age: Some(SignedDuration::from_hours(24 * 10)),
            on_expiry: OnExpiry::Deny,
            grace: None,
        };
        assert_eq!(judge(Kind::Checkpoints, &r, &f, t(0)), Verdict::Fresh);
        assert!(matches!(judge(Kind::Checkpoints, &r, &f, t(2)), Verdict::Warn(_)));
        assert!(matches!(judge(Kind::Checkpoints, &r, &f, t(11)), Verdict::Deny(_)));
        assert_eq!(judge(Kind::Checkpoints, &r, &Facts { absent: true, ..Default::default() }, t(100)), Verdict::Fresh);
    }

    #[test]
    fn policies_parse_strictly() {
        let p = FreshnessPolicy::parse("tuf: {onExpiry: keepLastKnownGood, grace: 14d}\n").unwrap();
        assert_eq!(p.tuf.grace, Some(SignedDuration::from_hours(24 * 14)));
        assert_eq!(p.checkpoints, FreshnessPolicy::checkpoints_default());
        let e = FreshnessPolicy::parse("tuf: {onExpiry: keepLastKnownGood, gracee: 14d}\n").unwrap_err();
        assert!(e.contains("gracee"), "{e}");
    }
}
