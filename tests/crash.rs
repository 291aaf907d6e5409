//! Crash safety: a child process refreshes the mirror in a loop from a sequence of upstream
//! repository versions; the parent SIGKILLs it at random moments, many times, and after each kill
//! reopens the store and proves it holds a complete, verifiable TUF state no older than the last
//! refresh the child reported as committed.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use trustmirror::core::clock::ManualClock;
use trustmirror::core::tuf::{Trusted, check_target};
use trustmirror::mirror::tuf_client::Limits;
use trustmirror::mirror::tuf_mirror::{TufMirror, TufMirrorConfig};
use trustmirror::mirror::upstream::{HttpOptions, Upstream};
use trustmirror::store::Store;
use trustmirror::testbed::keys::KeyKind;
use trustmirror::testbed::tufrepo::TufRepo;

const VERSIONS: u64 = 24;
const KILLS: usize = 150;

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

/// Upstream versions `v1 … vN` (each a full repository directory): every version replaces a
/// 1.5 MiB target and adds a small one, so a refresh does real work and a big commit.
fn make_versions(base: &Path) {
    let work = base.join("work");
    let mut r = TufRepo::new(&work, "crash", KeyKind::Ed25519, now(), SignedDuration::from_hours(24 * 30));
    for v in 1..=VERSIONS {
        let big: Vec<u8> = (0..1_500_000u32).map(|i| (i as u64 * 31 + v * 7) as u8).collect();
        r.add_target("targets", "big.bin", &big);
        r.add_target("targets", &format!("small-{v}.txt"), format!("version {v}").as_bytes());
        if v == 1 {
            r.delegate("targets", "delegated", &["d/*"], false);
        }
        r.add_target("delegated", "d/file.txt", format!("delegated {v}").as_bytes());
        r.publish_all().unwrap();
        copy_dir(&work, &base.join(format!("v{v}")));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The child: refresh from v(current+1) forever, reporting each committed version on stdout.
#[test]
#[ignore = "child process of store_survives_sigkill_during_refresh"]
fn crash_child() {
    let store_path = PathBuf::from(std::env::var("TM_CRASH_STORE").expect("run by the parent"));
    let versions = PathBuf::from(std::env::var("TM_CRASH_VERSIONS").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = Arc::new(Store::open(&store_path).unwrap());
        let root = std::fs::read(versions.join("v1/1.root.json")).unwrap();
        loop {
            let cur = store.tuf_state("default").unwrap().version("timestamp").unwrap_or(0);
            if cur >= VERSIONS {
                println!("done");
                return;
            }
            let up = Upstream::parse(versions.join(format!("v{}", cur + 1)).to_str().unwrap(), &HttpOptions::default()).unwrap();
            let m = TufMirror::new(
                store.clone(),
                TufMirrorConfig {
                    repo: "default".into(),
                    upstream: up,
                    pinned_root: root.clone(),
                    limits: Limits::default(),
                    root_probe_interval: SignedDuration::ZERO,
                    targets: None,
                },
                Arc::new(ManualClock::new(now())),
            );
            m.refresh().await.unwrap();
            println!("committed {}", store.tuf_state("default").unwrap().version("timestamp").unwrap());
        }
    });
}

/// Verify the stored state as a TUF client would: the chain from the pinned root, every role's
/// signatures, versions and pins, and every served target's content.
fn verify_store(store: &Store, root: &[u8]) -> u64 {
    store.check().expect("store consistency");
    let st = store.tuf_state("default").unwrap();
    let Some(ts) = st.bytes("timestamp") else {
        assert!(st.current.is_empty(), "no timestamp but other roles: {:?}", st.current.keys());
        return 0;
    };
    let mut t = Trusted::from_root(root).unwrap();
    if st.version("root") != Some(1) {
        panic!("root changed unexpectedly");
    }
    let at = now();
    t.update_timestamp(ts, at).expect("stored timestamp verifies");
    t.update_snapshot(st.bytes("snapshot").expect("snapshot with timestamp"), at).expect("stored snapshot verifies");
    t.update_targets(st.bytes("targets").expect("targets with snapshot"), at).expect("stored targets verify");
    t.update_delegated(st.bytes("delegated").expect("delegated role"), "delegated", "targets", at).expect("delegated verifies");
    let served = store.tuf_targets("default").unwrap();
    let mut listed = 0;
    for role in ["targets", "delegated"] {
        for (path, info) in &t.targets_role(role).unwrap().targets {
            let s = served.get(path).unwrap_or_else(|| panic!("{path} listed but not served"));
            let served_path = trustmirror::core::tuf::consistent_target_path(path, &s.sha256);
            let (_, bytes) = store.tuf_target("default", &served_path).unwrap().unwrap_or_else(|| panic!("{path}: content missing"));
            check_target(&bytes, info, path).expect("served content matches metadata");
            listed += 1;
        }
    }
    assert_eq!(listed, served.len(), "served set equals the listed set");
    t.timestamp().unwrap().version
}

#[test]
fn store_survives_sigkill_during_refresh() {
    let base = tempfile::tempdir().unwrap();
    make_versions(base.path());
    let root = std::fs::read(base.path().join("v1/1.root.json")).unwrap();
    let store_path = base.path().join("store.redb");
    let exe = std::env::current_exe().unwrap();
    let (mut kills, mut resets, mut mid_commit_window) = (0usize, 0usize, 0usize);
    let mut max_seen = 0u64;
    let mut floor = 0u64; // version verified after the previous kill
    let started = Instant::now();
    while kills < KILLS {
        let acked = Arc::new(AtomicU64::new(floor));
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("TM_CRASH_STORE", &store_path)
            .env("TM_CRASH_VERSIONS", base.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let ack = acked.clone();
        let reader = std::thread::spawn(move || {
            let mut done = false;
            let mut lines = vec![];
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.push(line.clone());
                // libtest prints "test crash_child ... " without a newline before our output
                if let Some((_, v)) = line.split_once("committed ") {
                    ack.store(v.trim().parse().unwrap(), Ordering::SeqCst);
                } else if line.trim_end().ends_with("done") {
                    done = true;
                }
            }
            (done, lines)
        });
        // Kill at a random moment: 5–120 ms covers process start, fetches, hashing and commits.
        let delay = Duration::from_micros(rand::random_range(5_000..120_000));
        std::thread::sleep(delay);
        let killed = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) } == 0;
        let status = child.wait().unwrap();
        let (done, lines) = reader.join().unwrap();
        if killed && !status.success() {
            kills += 1;
        }
        // Reopen and verify.
        let store = Store::open(&store_path).unwrap_or_else(|e| panic!("after kill {kills}: store does not reopen: {e}"));
        let v = verify_store(&store, &root);
        let a = acked.load(Ordering::SeqCst);
        assert!(v >= a, "after kill {kills}: store at timestamp v{v} but the child had committed v{a}");
        assert!(v <= a + 1, "after kill {kills}: store at v{v}, beyond the child's last commit v{a} + 1; child said {lines:?}");
        if v == a + 1 {
            mid_commit_window += 1; // killed after commit, before the child could report it
        }
        max_seen = max_seen.max(v);
        floor = v;
        drop(store);
        if done || v >= VERSIONS {
            std::fs::remove_file(&store_path).unwrap();
            resets += 1;
            floor = 0;
        }
    }
    eprintln!(
        "{kills} SIGKILLs in {:.1?}: store reopened to a verified state every time ({resets} full runs to v{VERSIONS}, {mid_commit_window} kills between commit and report, highest version {max_seen})",
        started.elapsed()
    );
    assert!(max_seen >= 3, "the child never got far enough for the test to mean anything");
}
