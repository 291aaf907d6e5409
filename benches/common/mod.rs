//! Helpers shared by the benchmarks that run the binary or build a mirrored store.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustmirror::core::clock::SystemClock;
use trustmirror::mirror::oci::{OciMirror, OciMirrorConfig};
use trustmirror::store::Store;
use trustmirror::testbed::Testbed;
use trustmirror::trust::{TrustConfig, TrustSource};

/// Run the binary to exit, quietly: (wall time, peak RSS in KiB, exit status).
pub fn run_to_exit(args: &[&str]) -> (Duration, i64, i32) {
    let t = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_trustmirror"))
        .args(args)
        .env("TRUSTMIRROR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    (t.elapsed(), ru.ru_maxrss, libc::WEXITSTATUS(status))
}

/// A store at `path` holding the testbed's TUF repository, and an OCI mirror writing into it
/// (digests are then ingested through the mirror's own path).
pub async fn mirrored_store(tb: &Testbed, path: &Path) -> (Arc<Store>, OciMirror) {
    let store = Arc::new(Store::open(path).unwrap());
    let tuf = trustmirror::daemon::tuf_mirror(
        store.clone(),
        "default",
        &tb.env["TUF_URL"],
        Some(std::fs::read(&tb.env["TUF_ROOT"]).unwrap()),
        None,
        Duration::from_secs(3600),
        Arc::new(SystemClock),
    )
    .unwrap();
    tuf.refresh().await.unwrap();
    let trust = Arc::new(TrustSource::new(store.clone(), TrustConfig::default()));
    let m = OciMirror::new(store.clone(), OciMirrorConfig::default(), Arc::new(SystemClock), trust);
    (store, m)
}
