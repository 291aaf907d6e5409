use clap::Parser;

fn main() {
    // One crypto provider (aws-lc-rs) for every rustls user in the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let argv: Vec<String> = std::env::args().collect();
    // The tuf-conformance contract has its own fixed syntax (global options before the command).
    if argv.get(1).map(String::as_str) == Some("tuf-conformance") {
        std::process::exit(trustmirror::cli::tuf_conformance::main(&argv[2..]));
    }
    let cli = trustmirror::cli::Cli::parse();
    let quiet = matches!(cli.cmd, trustmirror::cli::Cmd::Demo { .. });
    trustmirror::cli::init_logging_with(cli.log_format, if quiet { "warn" } else { "info" });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(trustmirror::cli::run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
