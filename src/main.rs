use clap::Parser;

fn main() {
    // One crypto provider (aws-lc-rs) for every rustls user in the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut argv: Vec<String> = std::env::args().collect();
    // installed under another tool's name (a symlink), the binary speaks that tool's command
    // line, so scripts written for it run unchanged: `slsa-verifier verify-image …`,
    // `cosign verify …` / `cosign verify-attestation …`
    let called = std::path::Path::new(&argv[0]).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    match (called.as_str(), argv.get(1).map(String::as_str)) {
        ("slsa-verifier", Some("verify-image")) => {
            argv.splice(1..2, ["verify-attestation".to_string(), "--type".into(), "slsaprovenance".into()]);
        }
        ("slsa-verifier", _) => {
            eprintln!("slsa-verifier (trustmirror): only `verify-image` is provided");
            std::process::exit(1);
        }
        ("cosign", Some("verify" | "verify-attestation" | "verify-blob" | "verify-blob-attestation")) => {}
        ("cosign", _) => {
            eprintln!("cosign (trustmirror): only verify, verify-attestation, verify-blob and verify-blob-attestation are provided");
            std::process::exit(1);
        }
        _ => {}
    }
    // The tuf-conformance contract has its own fixed syntax (global options before the command).
    if argv.get(1).map(String::as_str) == Some("tuf-conformance") {
        std::process::exit(trustmirror::cli::tuf_conformance::main(&argv[2..]));
    }
    let cli = trustmirror::cli::Cli::parse_from(&argv);
    let quiet = matches!(cli.cmd, trustmirror::cli::Cmd::Demo { .. });
    trustmirror::cli::init_logging_with(cli.log_format, if quiet { "warn" } else { "info" });
    // Memory that stays flat under load: glibc gives every thread that allocates its own malloc
    // arena (up to 8 per core) and keeps their freed memory; two arenas serve a process whose
    // work is bounded by its worker and blocking threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // Blocking work (admission decisions, store reads behind HTTP) is CPU work: it runs on a pool
    // of twice the CPUs the process may use (cgroup quota included), at least 4. Past it, work
    // waits for a thread instead of each request growing the process by one. Measured with the
    // service bench on 2 CPUs: 16 threads cost ~6 MB each under load and were slower (c64: 157 MB,
    // 33k reviews/s) than 4 (73 MB, 48k reviews/s).
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let blocking = std::env::var("TRUSTMIRROR_BLOCKING_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or((2 * cpus).max(4));
    // The node agent does one thing at a time on every node: one thread, a small footprint.
    let rt = if matches!(cli.cmd, trustmirror::cli::Cmd::Node(_)) {
        tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(2).build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(blocking).build()
    }
    .expect("tokio runtime");
    match rt.block_on(trustmirror::cli::run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
