//! `kvs-signaling serve`: wires configuration, store, service and authentication together,
//! binds, prints the ready line of the CLI contract and serves until SIGINT/SIGTERM.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::{bail, Context};
use kvs_core::clock::SystemClock;
use kvs_core::ids::{AccountId, Region};
use kvs_core::service::{ChannelService, ServiceConfig};
use kvs_core::signaling::rate::RateLimits;
use kvs_core::signaling::{Hub, HubConfig, Outbound, ServerMessage};
use kvs_core::store::{MemoryStore, SqliteStore, Store};
use kvs_signaling::aws::auth::Authenticator;
use kvs_signaling::config::{self, Command, LogFormat, ServeConfig, StoreKind};
use kvs_signaling::endpoints::EndpointBase;
use kvs_signaling::signaling::ice::IceCredentials;
use kvs_signaling::state::AppState;
use kvs_signaling::ws::SessionConfig;
use kvs_signaling::{credentials, server, turn_relay};

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
    let clock = Arc::new(SystemClock);
    let service = Arc::new(ChannelService::new(
        store,
        clock.clone(),
        ServiceConfig {
            lifecycle_delay: cfg.lifecycle_delay,
            max_channels: cfg.max_channels,
        },
    ));
    let hub = Arc::new(Hub::new(
        clock,
        HubConfig {
            max_viewers: cfg.max_viewers,
            max_held_per_channel: cfg.max_held_messages,
            go_away_grace: cfg.go_away_grace,
        },
    ));
    if cfg.ice_ttl < std::time::Duration::from_secs(31) || cfg.ice_ttl.as_secs() > 86_400 {
        bail!("--ice-ttl must be between 31s and 24h (the KVS C SDK refreshes 30 s before expiry)");
    }
    let secret = match (&cfg.turn_secret_file, &cfg.turn_secret) {
        (Some(path), _) => read_secret(path)?,
        (None, Some(s)) => s.clone(),
        (None, None) => random_secret(),
    };
    let ice = Arc::new(IceCredentials::new(secret, cfg.ice_ttl.as_secs() as u32));
    let open = creds.is_none();
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let local = listener.local_addr()?;
    let tls = match &cfg.tls_listen {
        None => None,
        Some(addr) => Some(tls_listener(&cfg, addr, creds.is_none()).await?),
    };
    let turn = if cfg.embedded_turn {
        Some(start_turn(&cfg, &addrs, Arc::clone(&ice)).await?)
    } else {
        None
    };
    let state = Arc::new(AppState {
        service,
        hub,
        auth: Authenticator::new(creds, account, region),
        public_endpoint,
        local_authority: local.to_string(),
        session: SessionConfig {
            idle_timeout: cfg.idle_timeout,
            max_duration: cfg.max_connection_duration,
            rate_limits: if cfg.message_rate_limits {
                RateLimits::AWS
            } else {
                RateLimits::UNLIMITED
            },
            outbox_capacity: cfg.max_held_messages.max(256) + 64,
        },
        ice,
        turn_uris: cfg.turn_uris.clone(),
        turn_port: turn.as_ref().map(|t| t.udp_addr.port()),
        alexa_answer_timeout: cfg.alexa_answer_timeout,
    });
    if let Some(path) = cfg.turn_secret_file.clone() {
        tokio::spawn(watch_secret_file(path, Arc::clone(&state)));
    }
    tracing::info!(
        store = ?cfg.store,
        data_dir = %cfg.data_dir.display(),
        auth = if open { "open" } else { "sigv4" },
        "kvs-signaling starting"
    );
    let mut ready = format!("kvs-signaling listening on http://{local}");
    let tls = match tls {
        None => None,
        Some((t, ca)) => {
            ready.push_str(&format!(
                " listening on https://{}",
                t.listener.local_addr()?
            ));
            if let Some(ca) = ca {
                println!(
                    "kvs-signaling TLS certificate issued by the local CA {} (trust it to use https:// and wss://)",
                    ca.display()
                );
            }
            Some(t)
        }
    };
    println!("{ready}");
    let _ = std::io::stdout().flush();
    server::run(
        listener,
        tls,
        state,
        server::shutdown_signal(),
        cfg.shutdown_timeout,
    )
    .await?;
    if let Some(t) = turn {
        t.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts the embedded TURN relay: `--turn-listen`, or the listen host on 3478 (falling back
/// to an ephemeral port when 3478 is taken, so several servers can run side by side).
async fn start_turn(
    cfg: &ServeConfig,
    http_addrs: &[std::net::SocketAddr],
    ice: Arc<IceCredentials>,
) -> anyhow::Result<turn_relay::Turn> {
    let ip = http_addrs
        .first()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let (listen, explicit) = match &cfg.turn_listen {
        Some(a) => {
            let addr = tokio::net::lookup_host(a)
                .await
                .with_context(|| format!("--turn-listen {a}"))?
                .next()
                .with_context(|| format!("--turn-listen {a}: no address"))?;
            (addr, true)
        }
        None => (std::net::SocketAddr::new(ip, 3478), false),
    };
    let relay_ip = cfg
        .turn_relay_ip
        .unwrap_or(if listen.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            listen.ip()
        });
    let opts = |listen: std::net::SocketAddr| turn_relay::TurnOptions {
        listen,
        relay_ip,
        relay_bind: listen.ip(),
        max_per_channel: cfg.turn_max_allocations,
    };
    let turn = match turn_relay::start(opts(listen), Arc::clone(&ice)).await {
        Ok(t) => t,
        Err(e) if !explicit => {
            tracing::warn!(error = %e, "TURN port 3478 unavailable; using an ephemeral port");
            turn_relay::start(opts(std::net::SocketAddr::new(listen.ip(), 0)), ice).await?
        }
        Err(e) => return Err(e),
    };
    tracing::info!(udp = %turn.udp_addr, tcp = %turn.tcp_addr, %relay_ip, "embedded TURN relay listening");
    Ok(turn)
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading --turn-secret-file {}", path.display()))?;
    let s = s.trim().to_owned();
    if s.is_empty() {
        bail!("--turn-secret-file {} is empty", path.display());
    }
    Ok(s)
}

fn random_secret() -> String {
    use rand::distr::Alphanumeric;
    use rand::RngExt;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// Re-reads the TURN secret file every second; a new secret makes every connected client fetch
/// new ICE credentials (RECONNECT_ICE_SERVER, kvs-spec.md §6.4).
async fn watch_secret_file(path: std::path::PathBuf, state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(secret) = read_secret(&path) else {
            continue;
        };
        if state.ice.rotate(secret) {
            let frame = Outbound::Text(ServerMessage::reconnect_ice_server().to_json());
            let n = state.hub.broadcast(&frame);
            tracing::info!(
                connections = n,
                "TURN secret rotated; sent RECONNECT_ICE_SERVER"
            );
        }
    }
}

/// Binds `--tls-listen` and prepares its certificate; returns the generated CA's path, if any.
async fn tls_listener(
    cfg: &ServeConfig,
    addr: &str,
    open: bool,
) -> anyhow::Result<(server::TlsListener, Option<std::path::PathBuf>)> {
    // One crypto provider for the whole process, whatever else links rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addrs: Vec<_> = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("--tls-listen {addr}"))?
        .collect();
    if open && !cfg.allow_open_non_loopback && !ServeConfig::listen_addr_is_loopback(&addrs) {
        bail!(
            "refusing to listen on non-loopback address {addr} in open mode (no --credentials); \
             pass --credentials FILE or --allow-open-non-loopback"
        );
    }
    let listener =
        std::net::TcpListener::bind(&addrs[..]).with_context(|| format!("binding {addr}"))?;
    let material = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => kvs_signaling::tls::load(cert, key)?,
        _ => {
            let mut names = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            let mut add = |n: String| {
                if !n.is_empty() && !names.contains(&n) {
                    names.push(n);
                }
            };
            for a in &addrs {
                if !a.ip().is_unspecified() {
                    add(a.ip().to_string());
                }
            }
            if let Some(host) = addr
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']))
            {
                if !host.is_empty() && host != "0.0.0.0" && host != "::" {
                    add(host.to_string());
                }
            }
            if let Some(p) = cfg
                .public_endpoint
                .as_deref()
                .and_then(|u| EndpointBase::parse(u).ok())
            {
                add(kvs_signaling::state::host_of(&p.authority)
                    .trim_matches(['[', ']'])
                    .to_string());
            }
            for s in &cfg.tls_sans {
                add(s.clone());
            }
            kvs_signaling::tls::generate(&cfg.data_dir.join("tls"), &names)?
        }
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        material.cert_pem.into_bytes(),
        material.key_pem.into_bytes(),
    )
    .await
    .context("loading the TLS certificate and key")?;
    Ok((server::TlsListener { listener, config }, material.ca_path))
}
