//! The Kubernetes manifests — the Helm chart (charts/trustmirror) and the node agent's plain
//! manifests (daemonset/) — checked with real tools by `scripts/check-manifests`: helm lint,
//! template and package through the Helm v4 SDK, `kubernetes-validate --strict` on every
//! rendered and plain document, every rendered service configuration read by the binary
//! (`serve --check-config`), and wrong values the chart's schema or templates must refuse.

use std::path::PathBuf;
use std::process::Command;

/// 85 documents from the script's seven chart renders (11 + 14 + 12 + 11 + 12 + 13 + 9; the
/// cert-manager Certificate has no schema and is not counted) and 4 under daemonset/.
const MIN_DOCUMENTS: u64 = 89;
/// Chart renders whose service config.yaml the binary checks (`serve --check-config`).
const RENDERS: usize = 7;

#[test]
fn chart_and_daemonset_manifests_validate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools = std::env::var_os("TM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/trustmirror-tools"));
    let validator = tools.join("venv/bin/kubernetes-validate");
    if !validator.exists() {
        if std::env::var("TM_SKIP_INTEROP").as_deref() == Ok("1") {
            eprintln!("SKIP (TM_SKIP_INTEROP=1): {} is missing", validator.display());
            return;
        }
        panic!("{} is missing: run .ci/install (or set TM_SKIP_INTEROP=1 to skip checks with external tools)", validator.display());
    }
    let out = Command::new(root.join("scripts/check-manifests"))
        .current_dir(&root)
        .env("TRUSTMIRROR_BIN", env!("CARGO_BIN_EXE_trustmirror"))
        .output()
        .expect("run scripts/check-manifests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/check-manifests failed ({}):\n{stdout}\n{stderr}", out.status);
    let validated: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("check-manifests: OK: ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `check-manifests: OK: N documents validated` line:\n{stdout}"));
    assert!(validated >= MIN_DOCUMENTS, "only {validated} documents validated, want at least {MIN_DOCUMENTS}:\n{stdout}");
    assert!(stdout.contains("node agent flags from the binary"), "the DaemonSets were checked against the binary's flags:\n{stdout}");
    assert_eq!(
        stdout.matches(": configuration OK (").count(),
        RENDERS,
        "every render's service config was checked by the binary:\n{stdout}"
    );
    assert!(stdout.contains("configuration OK (tuf (no upstream: imported bundles only)"), "the air-gap render:\n{stdout}");
}
