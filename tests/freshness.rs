//! The freshness policy on the injected clock: what is decided on day 0, day 8 (the testbed's TUF
//! timestamp, like production's, lasts 7 days) and day 31 under each setting — and what
//! `trustmirror status` says.

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use trustmirror::admission::{Engine, EngineOptions};
use trustmirror::core::clock::ManualClock;
use trustmirror::core::freshness::FreshnessPolicy;
use trustmirror::core::policy::{Mode, Property};
use trustmirror::testbed::lab::{Lab, LabOptions};

fn engine(lab: &Lab, clock: Arc<ManualClock>, freshness: &str) -> Engine {
    Engine::new(
        lab.store.clone(),
        clock,
        EngineOptions {
            policy_files: vec![lab.dir.join("policy/policy.yaml")],
            banned_file: Some(lab.dir.join("policy/banned.yaml")),
            freshness: FreshnessPolicy::parse(freshness).unwrap(),
            ..Default::default()
        },
        None,
    )
    .unwrap()
}

/// (allowed, a freshness violation's mode if any)
fn decide(e: &Engine, image: &str) -> (bool, Option<Mode>) {
    let o = e.decide_image("prod", image, None);
    (o.enforced().next().is_none(), o.violations.iter().filter(|v| v.property == Property::Freshness).map(|v| v.mode).max())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_0_8_and_31_under_each_setting() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let mut o = LabOptions::new(dir.path().join("lab"));
    o.clock = Some(clock.clone());
    let lab = Lab::up(o).await.unwrap();
    // key-signed, signature-only policy: nothing but freshness changes with the days
    let image = lab.scenario("vendor-key-signed").digest_ref.clone();
    let t0 = clock.now_for_test();
    let settings = [
        ("deny", "tuf: {onExpiry: deny}\ncheckpoints: {onExpiry: warn}\n"),
        ("warn", "tuf: {onExpiry: warn}\ncheckpoints: {onExpiry: warn}\n"),
        ("keep 14d", "tuf: {onExpiry: keepLastKnownGood, grace: 14d}\ncheckpoints: {onExpiry: warn}\n"),
        ("default (keep 30d)", ""),
    ];
    let mut table = vec![];
    for (name, yaml) in settings {
        let mut row = vec![];
        for day in [0, 8, 31] {
            clock.set(t0 + SignedDuration::from_hours(24 * day));
            row.push(decide(&engine(&lab, clock.clone(), if yaml.is_empty() { "{}" } else { yaml }), &image));
        }
        table.push((name, row));
    }
    let allowed = |r: &Vec<(bool, Option<Mode>)>| r.iter().map(|x| x.0).collect::<Vec<_>>();
    let t = |n: &str| &table.iter().find(|(x, _)| *x == n).unwrap().1;
    assert_eq!(allowed(t("deny")), [true, false, false], "{table:?}");
    assert_eq!(allowed(t("warn")), [true, true, true], "{table:?}");
    assert_eq!(allowed(t("keep 14d")), [true, true, false], "{table:?}");
    assert_eq!(allowed(t("default (keep 30d)")), [true, true, true], "{table:?}");
    // day 0: nothing said; day 8 under keep/warn: allowed with a freshness warning
    assert_eq!(t("warn")[0].1, None);
    assert_eq!(t("keep 14d")[1].1, Some(Mode::Warn));
    assert_eq!(t("deny")[1].1, Some(Mode::Enforce));

    // `trustmirror status` on the same store: fresh today (exit 0) — the lab holds it open, so
    // read a copy
    let copy = dir.path().join("copy.redb");
    std::fs::copy(lab.dir.join("store.redb"), &copy).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustmirror")).args(["status", "--store"]).arg(&copy).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for k in ["tuf", "trusted_root", "checkpoints"] {
        assert!(text.lines().any(|l| l.starts_with(k)), "{k}: {text}");
    }
    assert!(text.contains("keep last known good for 30d, then deny"), "{text}");
    let _ = Path::new("");
    lab.shutdown().await;
}

trait Now {
    fn now_for_test(&self) -> jiff::Timestamp;
}
impl Now for ManualClock {
    fn now_for_test(&self) -> jiff::Timestamp {
        trustmirror::core::clock::Clock::now(self)
    }
}
