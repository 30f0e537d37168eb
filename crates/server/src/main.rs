//! `kvs-signaling serve`: wires configuration, store, service and authentication together,
//! binds, prints the ready line of the CLI contract and serves until SIGINT/SIGTERM.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::{bail, Context};
use kvs_core::clock::SystemClock;
use kvs_core::ids::{AccountId, Region};
use kvs_core::service::{ChannelService, ServiceConfig};
use kvs_core::store::{MemoryStore, SqliteStore, Store};
use kvs_signaling::aws::auth::Authenticator;
use kvs_signaling::config::{self, Command, LogFormat, ServeConfig, StoreKind};
use kvs_signaling::endpoints::EndpointBase;
use kvs_signaling::state::AppState;
use kvs_signaling::{credentials, server};

fn main() -> std::process::ExitCode {
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
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("kvs-signaling: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
    let account =
        AccountId::parse(&cfg.account_id).map_err(|e| anyhow::anyhow!("--account-id: {e}"))?;
    let region = Region::parse(&cfg.region).map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    let creds = cfg
        .credentials
        .as_deref()
        .map(credentials::load)
        .transpose()?;
    let public_endpoint = cfg
        .public_endpoint
        .as_deref()
        .map(EndpointBase::parse)
        .transpose()
        .context("--public-endpoint")?;

    let addrs: Vec<_> = tokio::net::lookup_host(&cfg.listen)
        .await
        .with_context(|| format!("--listen {}", cfg.listen))?
        .collect();
    if creds.is_none()
        && !cfg.allow_open_non_loopback
        && !ServeConfig::listen_addr_is_loopback(&addrs)
    {
        bail!(
            "refusing to listen on non-loopback address {} in open mode (no --credentials): \
             anyone who can reach it could act on your channels. Pass --credentials FILE, or \
             --allow-open-non-loopback if you really mean it.",
            cfg.listen
        );
    }

    let store: Arc<dyn Store> = match cfg.store {
        StoreKind::Memory => Arc::new(MemoryStore::new()),
        StoreKind::Sqlite => Arc::new(
            SqliteStore::open_dir(&cfg.data_dir)
                .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?,
        ),
    };
    let service = Arc::new(ChannelService::new(
        store,
        Arc::new(SystemClock),
        ServiceConfig {
            lifecycle_delay: cfg.lifecycle_delay,
            max_channels: cfg.max_channels,
        },
    ));
    let open = creds.is_none();
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let local = listener.local_addr()?;
    let state = Arc::new(AppState {
        service,
        auth: Authenticator::new(creds, account, region),
        public_endpoint,
        local_authority: local.to_string(),
    });
    tracing::info!(
        store = ?cfg.store,
        data_dir = %cfg.data_dir.display(),
        auth = if open { "open" } else { "sigv4" },
        "kvs-signaling starting"
    );
    println!("kvs-signaling listening on http://{local}");
    let _ = std::io::stdout().flush();
    server::run(
        listener,
        state,
        server::shutdown_signal(),
        cfg.shutdown_timeout,
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}
