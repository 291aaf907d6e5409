//! The testbed as a background process (`trustmirror testbed up`/`down`): started detached in
//! its own process group, ready when its env file appears, stopped by its recorded PIDs (the
//! registries too, even after the testbed itself crashed).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use super::read_env;

/// Is process `pid` alive?
pub fn alive(pid: i32) -> bool {
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Start `exe testbed run` with `args` in the background, logging to `DIR/testbed.log`; returns
/// its env once ready.
pub async fn spawn(exe: &Path, dir: &Path, args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let t0 = Instant::now();
    std::fs::create_dir_all(dir)?;
    if let Ok(env) = read_env(dir)
        && env.get("PID").and_then(|p| p.parse::<i32>().ok()).is_some_and(alive)
    {
        return Err(anyhow!("a testbed is already running in {} (testbed down --dir first)", dir.display()));
    }
    let _ = std::fs::remove_file(dir.join("env"));
    let log_path = dir.join("testbed.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["testbed", "run", "--dir"]).arg(dir).args(args);
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let mut child = cmd.spawn().context("starting the testbed process")?;
    loop {
        if let Ok(env) = read_env(dir) {
            return Ok(env);
        }
        if let Some(st) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(anyhow!("testbed exited ({st}) before it was ready:\n{log}"));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err(anyhow!("testbed not ready after 60 s; see {}", log_path.display()));
        }
        // the env file is written atomically once everything is up: poll for it
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stop the testbed running in `dir` (SIGTERM, then its registries by PID).
pub async fn stop(dir: &Path) -> anyhow::Result<()> {
    let env = read_env(dir)?;
    let pid: i32 = env.get("PID").and_then(|p| p.parse().ok()).ok_or_else(|| anyhow!("env has no PID"))?;
    if alive(pid) {
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = Instant::now();
        while alive(pid) && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for p in
        env.get("REGISTRY_PIDS").map(|s| s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()).collect::<Vec<_>>()).unwrap_or_default()
    {
        if p > 0 && alive(p) {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_file(dir.join("env"));
    Ok(())
}
