//! `trustmirror demo`: the expected-behaviour table of the mission, replayed for real (the
//! [`Lab`] and [`replay`] live in the testbed; this prints them). Exits 0 only when every row
//! matches.

use std::path::PathBuf;

use jiff::Timestamp;

use crate::testbed::lab::{Lab, LabOptions, replay};

pub async fn run(dir: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let tmp = tempfile::Builder::new().prefix("trustmirror-demo-").tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    if !json {
        println!("trustmirror demo — the expected-behaviour table, replayed against the admission webhook\n");
    }
    let lab = Lab::up(LabOptions::new(&dir)).await?;
    let s = &lab.sync;
    if !json {
        println!(
            "  testbed   TUF, Fulcio + CT log, Rekor, TSA, docker-registry with the scenario images on 127.0.0.1 ({:.1?})",
            lab.testbed_time
        );
        println!(
            "  mirrored  TUF repository (trusted_root.json) and {} image digests, {} signatures/attestations verified, {} rejected ({:.1?})",
            s.digests_ingested, s.items_verified, s.items_rejected, lab.mirror_time
        );
        println!(
            "  witnessed the testbed's Rekor log at size {} and proved {} bundle checkpoints consistent with it ({} not)",
            lab.witnessed.first().and_then(|w| w.1).unwrap_or(0),
            lab.proven.0,
            lab.proven.1
        );
        println!("  stopped   the testbed: registry, TUF, Rekor and Fulcio are gone — every decision below comes from the store");
        println!("  webhook   {}/validate and /mutate (TLS, CA {})", lab.url, dir.join("tls/ca.crt").display());
        println!(
            "  policy    {} (myorg/**: identity, SLSA L3, SBOM + banned list, CVEs, base image, digest, witnessed log; vendor/**: key)\n",
            dir.join("policy/policy.yaml").display()
        );
    }
    let rows = replay(&lab).await?;
    let ok = rows.iter().all(|r| r.ok);
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"rows": rows, "ok": ok}))?);
    } else {
        println!("{:<32} {:<26} {:<18} {:>6}  REASON", "SCENARIO", "EXPECTED", "VERDICT", "MS");
        for r in &rows {
            println!(
                "{:<32} {:<26} {:<18} {:>6.1}  {}{}",
                r.scenario,
                r.expected,
                r.verdict,
                r.ms,
                if r.ok { "" } else { "MISMATCH: " },
                r.reason
            );
        }
        lab.engine.flush_audit();
        let audit = lab.store.audit_since(Timestamp::UNIX_EPOCH)?;
        let rep = crate::admission::report(&audit, None);
        println!(
            "\n{}/{} rows as expected. Audit log: {} records, {} denials, {} break-glass use(s) (trustmirror report --store {}).",
            rows.iter().filter(|r| r.ok).count(),
            rows.len(),
            rep.decisions,
            rep.denied,
            rep.breakglass_uses,
            dir.join("store.redb").display()
        );
    }
    lab.shutdown().await;
    Ok(if ok { 0 } else { 1 })
}
