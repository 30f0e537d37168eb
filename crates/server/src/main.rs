//! `kvs-signaling serve`: parses the configuration, assembles the app with the system clock
//! (`kvs_signaling::app`), prints the ready line of the CLI contract and serves until
//! SIGINT/SIGTERM.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use kvs_core::clock::SystemClock;
use kvs_signaling::app::{self, App, Listeners};
use kvs_signaling::banner::Banner;
use kvs_signaling::config::{self, Command, LogFormat, ServeConfig};
use kvs_signaling::config::{StoreKind, Validated};
use kvs_signaling::config_reference;
use kvs_signaling::{server, startup};

/// mimalloc: glibc's malloc showed as ~16% of a describe's CPU (arena locks, consolidation)
/// with many small, short-lived allocations on two threads; mimalloc's per-thread heaps make
/// them cheap (issue 7 profile, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status of a configuration that cannot be parsed (flags, environment, config file),
/// as clap uses; anything else that stops the start-up exits with 1 (docs/behaviour.md
/// "Start-up errors").
const EXIT_CONFIG: u8 = 2;

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
            // --help and --version are clap's "errors" too: printed as clap prints them.
            Ok(clap_err) if !clap_err.use_stderr() => clap_err.exit(),
            Ok(clap_err) => {
                eprintln!("kvs-signaling: error: {}", startup::clap_line(&clap_err));
                return std::process::ExitCode::from(EXIT_CONFIG);
            }
            Err(e) => {
                eprintln!("kvs-signaling: error: {}", startup::one_line(&e));
                return std::process::ExitCode::from(EXIT_CONFIG);
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
            eprintln!("kvs-signaling: error: {}", startup::one_line(&e));
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
    let log_format = cfg.log_format;
    let validated = cfg.validate()?;
    let listeners = Listeners::bind(&validated.config).await?;
    let mut banner = banner_of(&validated, &listeners)?;
    let app = App::build(validated, Arc::new(SystemClock), &listeners).await?;
    banner.turn = app.state().relay;
    // Installed before the ready line: a signal right after it drains gracefully.
    let shutdown = server::shutdown_signal();
    if let Some(ca) = &listeners.tls_ca {
        println!(
            "kvs-signaling TLS certificate issued by the local CA {} (trust it to use https:// and wss://)",
            ca.display()
        );
    }
    match log_format {
        // Before the ready line: whoever waits for it finds the banner already written.
        LogFormat::Text => eprintln!("{}", banner.render()),
        LogFormat::Json => banner.log(),
    }
    println!("{}", listeners.ready_line()?);
    let _ = std::io::stdout().flush();
    app::run(listeners, app, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The banner's facts that the configuration and the bound sockets give (the TURN port comes
/// once the app is assembled).
fn banner_of(v: &Validated, listeners: &Listeners) -> anyhow::Result<Banner> {
    let cfg = &v.config;
    Ok(Banner {
        version: env!("CARGO_PKG_VERSION"),
        http: listeners.http.local_addr()?,
        https: match &listeners.tls {
            Some(t) => Some(t.listener.local_addr()?),
            None => None,
        },
        public_endpoint: cfg.public_endpoint.clone(),
        turn: None,
        access_keys: v.credentials.as_ref().map(|c| c.len()),
        account: cfg.account_id.clone(),
        region: cfg.region.clone(),
        store: match &cfg.store {
            StoreKind::Memory => "memory (nothing on disk)".to_owned(),
            StoreKind::Sqlite => format!("sqlite in {}", cfg.data_dir.display()),
            redis @ StoreKind::Redis(_) => redis.to_string(),
        },
    })
}
