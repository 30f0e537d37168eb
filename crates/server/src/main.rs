//! `kvs-signaling serve`: parses the configuration, assembles the app with the system clock
//! (`kvs_signaling::app`), prints the ready line of the CLI contract and serves until
//! SIGINT/SIGTERM.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use kvs_core::clock::SystemClock;
use kvs_signaling::app::{self, App, Listeners};
use kvs_signaling::config::{self, Command, LogFormat, ServeConfig};
use kvs_signaling::config_reference;
use kvs_signaling::server;

/// mimalloc: glibc's malloc showed as ~16% of a describe's CPU (arena locks, consolidation)
/// with many small, short-lived allocations on two threads; mimalloc's per-thread heaps make
/// them cheap (issue 7 profile, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Hidden: prints docs/configuration.md (config_reference.rs).
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if config_reference::requested(&args) {
        print!("{}", config_reference::markdown());
        return std::process::ExitCode::SUCCESS;
    }
    let cli = match config::parse() {
        Ok(c) => c,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(clap_err) => clap_err.exit(),
            Err(e) => {
                eprintln!("kvs-signaling: {e:#}");
                return std::process::ExitCode::from(2);
            }
        },
    };
    let Command::Serve(cfg) = cli.command;
    init_logging(cfg.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kvs-signaling: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Once, on stderr, whatever the log filter (`KVS_LOG`) lets through.
        Err(e) => {
            eprintln!("kvs-signaling: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = kvs_signaling::redact::log_filter(std::env::var("KVS_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let validated = cfg.validate()?;
    let listeners = Listeners::bind(&validated.config).await?;
    let app = App::build(validated, Arc::new(SystemClock), &listeners).await?;
    // Installed before the ready line: a signal right after it drains gracefully.
    let shutdown = server::shutdown_signal();
    if let Some(ca) = &listeners.tls_ca {
        println!(
            "kvs-signaling TLS certificate issued by the local CA {} (trust it to use https:// and wss://)",
            ca.display()
        );
    }
    println!("{}", listeners.ready_line()?);
    let _ = std::io::stdout().flush();
    app::run(listeners, app, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}
