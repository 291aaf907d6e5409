//! `trustmirror testbed up|down`.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use super::{TestbedArgs, TestbedCmd};
use crate::testbed::{Testbed, TestbedOptions, read_env};

fn options(a: &TestbedArgs) -> TestbedOptions {
    TestbedOptions { dir: a.dir.clone(), seed: a.seed.clone(), now: None, port: a.port, registry: !a.no_registry }
}

fn print_env(env: &std::collections::BTreeMap<String, String>) {
    for (k, v) in env {
        println!("{k}={v}");
    }
}

pub async fn run(c: TestbedCmd) -> anyhow::Result<i32> {
    match c {
        TestbedCmd::Up { args, foreground: true } | TestbedCmd::Run { args } => {
            let t0 = Instant::now();
            let tb = Testbed::up(options(&args)).await?;
            tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, url = %tb.base_url(), "testbed ready");
            print_env(&tb.env);
            super::Running::wait_for_signal(None).await;
            tb.shutdown().await;
            Ok(0)
        }
        TestbedCmd::Up { args, foreground: false } => {
            let t0 = Instant::now();
            std::fs::create_dir_all(&args.dir)?;
            if let Ok(env) = read_env(&args.dir)
                && env.get("PID").and_then(|p| p.parse::<i32>().ok()).is_some_and(alive)
            {
                return Err(anyhow!("a testbed is already running in {} (testbed down --dir first)", args.dir.display()));
            }
            let _ = std::fs::remove_file(args.dir.join("env"));
            let log = std::fs::File::create(args.dir.join("testbed.log"))?;
            let exe = std::env::current_exe()?;
            let mut cmd = std::process::Command::new(exe);
            cmd.args(["testbed", "run", "--dir"]).arg(&args.dir).args(["--seed", &args.seed, "--port", &args.port.to_string()]);
            if args.no_registry {
                cmd.arg("--no-registry");
            }
            use std::os::unix::process::CommandExt;
            cmd.process_group(0).stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
            let mut child = cmd.spawn().context("starting the testbed process")?;
            loop {
                if let Ok(env) = read_env(&args.dir) {
                    println!("# testbed ready in {:.2?} (log: {})", t0.elapsed(), args.dir.join("testbed.log").display());
                    print_env(&env);
                    return Ok(0);
                }
                if let Some(st) = child.try_wait()? {
                    let log = std::fs::read_to_string(args.dir.join("testbed.log")).unwrap_or_default();
                    return Err(anyhow!("testbed exited ({st}) before it was ready:\n{log}"));
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    return Err(anyhow!("testbed not ready after 60 s; see {}", args.dir.join("testbed.log").display()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        TestbedCmd::Down { dir } => {
            let env = read_env(&dir)?;
            let pid: i32 = env.get("PID").and_then(|p| p.parse().ok()).ok_or_else(|| anyhow!("env has no PID"))?;
            if alive(pid) {
                unsafe { libc::kill(pid, libc::SIGTERM) };
                let t0 = Instant::now();
                while alive(pid) && t0.elapsed() < Duration::from_secs(10) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            // Registries die with the testbed; make sure even after a crash of the testbed itself.
            for p in env
                .get("REGISTRY_PIDS")
                .map(|s| s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()).collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if p > 0 && alive(p) {
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            let _ = std::fs::remove_file(dir.join("env"));
            println!("testbed in {} stopped", dir.display());
            Ok(0)
        }
    }
}

fn alive(pid: i32) -> bool {
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}
