//! `trustmirror testbed up|down`.

use std::time::Instant;

use super::{TestbedArgs, TestbedCmd};
use crate::testbed::{Testbed, TestbedOptions, process};

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
            crate::signals::wait_for_signal(None).await;
            tb.shutdown().await;
            Ok(0)
        }
        TestbedCmd::Up { args, foreground: false } => {
            let t0 = Instant::now();
            let mut extra = vec!["--seed".to_string(), args.seed.clone(), "--port".into(), args.port.to_string()];
            if args.no_registry {
                extra.push("--no-registry".into());
            }
            let env = process::spawn(&std::env::current_exe()?, &args.dir, &extra).await?;
            println!("# testbed ready in {:.2?} (log: {})", t0.elapsed(), args.dir.join("testbed.log").display());
            print_env(&env);
            Ok(0)
        }
        TestbedCmd::Down { dir } => {
            process::stop(&dir).await?;
            println!("testbed in {} stopped", dir.display());
            Ok(0)
        }
    }
}
