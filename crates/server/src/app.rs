//! Assembly: everything `kvs-signaling serve` runs, built in the library so `main.rs` and
//! in-process tests assemble it the same way. [`Listeners::bind`] binds the sockets,
//! [`App::build`] takes the configuration validated once ([`ServeConfig::validate`]) and wires
//! store, application layer, authentication, ICE and TURN together with the clock it is given,
//! and [`run`] serves until the shutdown future completes (the mini-redis shape).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use kvs_core::app::{Application, SignalingPorts};
use kvs_core::clock::Clock;
use kvs_core::quota::{MemoryLimiter, Quotas, RateLimiter, Throttle};
use kvs_core::relay::rate::RateLimits;
use kvs_core::relay::{Event, HubConfig, NodeId};
use kvs_core::service::ServiceConfig;
use kvs_core::store::{MemoryStore, Store};
use kvs_core::streams::{MemoryStreamStore, StreamConfig, StreamStore};
use kvs_sqlite::{SqliteOptions, SqliteStore, SqliteStreamStore};

use crate::aws::auth::Authenticator;
use crate::config::{ServeConfig, StoreKind, Validated};
use crate::data_plane::ice::IceCredentials;
use crate::server::{self, TlsListener};
use crate::startup;
use crate::state::{AppState, SharedState};
use crate::turn_relay;
use crate::websocket::SessionConfig;
use tls_setup::{cannot_resolve, tls_config, tls_listener};

#[path = "app_tls.rs"]
mod tls_setup;

/// The bound sockets of the HTTP(S) planes.
pub struct Listeners {
    pub http: tokio::net::TcpListener,
    pub tls: Option<TlsListener>,
    /// The local CA that issued the TLS certificate, when one was generated.
    pub tls_ca: Option<PathBuf>,
    /// TURN over TLS's configuration (the same certificate, no ALPN), when the server has a
    /// certificate (`--tls-listen` or `--turn-tls-listen`).
    pub turn_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listeners {
    /// Binds `--listen` (and `--tls-listen`), refusing a non-loopback address in open mode.
    pub async fn bind(cfg: &ServeConfig) -> anyhow::Result<Self> {
        let addrs: Vec<_> = tokio::net::lookup_host(&cfg.listen)
            .await
            .map_err(|e| cannot_resolve("--listen", &cfg.listen, &e))?
            .collect();
        let open = cfg.credentials.is_none();
        if open && !cfg.allow_open_non_loopback && !ServeConfig::listen_addr_is_loopback(&addrs) {
            bail!(
                "refusing to listen on non-loopback address {} in open mode (no --credentials): \
                 anyone who can reach it could act on your channels. Pass --credentials FILE, or \
                 --allow-open-non-loopback if you really mean it.",
                cfg.listen
            );
        }
        let http = crate::listener::bind(&addrs, cfg.listen_backlog)
            .map_err(|e| startup::cannot_listen("--listen", &cfg.listen, &e))?;
        let (tls, mut tls_ca) = match &cfg.tls_listen {
            None => (None, None),
            Some(addr) => {
                let (t, ca) = tls_listener(cfg, addr, open).await?;
                (Some(t), ca)
            }
        };
        let mut api_config = tls.as_ref().map(|t| Arc::clone(&t.config));
        if let (None, Some(addr), true) = (&api_config, &cfg.turn_tls_listen, cfg.embedded_turn) {
            let addrs: Vec<_> = tokio::net::lookup_host(addr)
                .await
                .map_err(|e| cannot_resolve("--turn-tls-listen", addr, &e))?
                .collect();
            let (config, ca) = tls_config(cfg, addr, &addrs)?;
            api_config = Some(config);
            tls_ca = ca;
        }
        let turn_tls = api_config.filter(|_| cfg.embedded_turn).map(|c| {
            // TURN clients offer no HTTP protocol; with no ALPN configured rustls ignores theirs.
            let mut turn = (*c).clone();
            turn.alpn_protocols.clear();
            Arc::new(turn)
        });
        Ok(Self {
            http,
            tls,
            tls_ca,
            turn_tls,
        })
    }

    /// The line of the CLI contract: `listening on http://HOST:PORT` (and the TLS address).
    pub fn ready_line(&self) -> anyhow::Result<String> {
        let mut line = format!(
            "kvs-signaling listening on http://{}",
            self.http.local_addr()?
        );
        if let Some(t) = &self.tls {
            line.push_str(&format!(
                " listening on https://{}",
                t.listener.local_addr()?
            ));
        }
        Ok(line)
    }
}

/// Everything the server runs, assembled.
pub struct App {
    state: SharedState,
    turn: Option<turn_relay::Turn>,
    turn_secret_file: Option<PathBuf>,
    drain: Duration,
}

impl App {
    /// Opens the store (loading its index) and assembles the application from the validated
    /// configuration.
    pub async fn build(
        v: Validated,
        clock: Arc<dyn Clock>,
        listeners: &Listeners,
    ) -> anyhow::Result<Self> {
        let Validated {
            config,
            account,
            region,
            credentials,
            public_endpoint,
            ..
        } = v;
        let cfg = &config;
        let started = std::time::Instant::now();
        // One crypto provider for the whole process (TLS listener, rediss://).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let quotas = cfg.quota_table();
        let mut metrics = crate::metrics::Metrics::new();
        let memory_limiter = || -> Arc<dyn RateLimiter> {
            Arc::new(MemoryLimiter::new(&quotas, Arc::clone(&clock)))
        };
        // Streams (issue 15) live in the same backend as channels, behind their own port.
        let mut streams: Arc<dyn StreamStore> = Arc::new(MemoryStreamStore::new());
        // Storage-session claims (issue 15): on Redis when nodes share it, else in memory.
        let mut sessions: Arc<dyn kvs_core::storage_session::SessionRegistry> = Arc::new(
            kvs_core::storage_session::MemorySessionRegistry::new(Arc::clone(&clock)),
        );
        // Recorded media (issue 15): on disk under the data directory, on Redis with Redis, in
        // memory with `--store memory` (which keeps nothing on disk, so neither do recordings).
        let mut fragments: Option<Arc<dyn kvs_media::FragmentStore>> = None;
        let (store, ports, limiter): (Arc<dyn Store>, SignalingPorts, Arc<dyn RateLimiter>) =
            match &cfg.store {
                StoreKind::Memory => {
                    fragments = Some(Arc::new(kvs_media::LocalFragmentStore::memory()));
                    (
                        Arc::new(MemoryStore::new()),
                        SignalingPorts::in_process(),
                        memory_limiter(),
                    )
                }
                StoreKind::Sqlite => {
                    let dir = cfg.data_dir.clone();
                    // Named in the data directory's lock, for the error of a second process.
                    let options = SqliteOptions {
                        holder: format!("listening on http://{}", listeners.http.local_addr()?),
                        ..SqliteOptions::default()
                    };
                    let s = tokio::task::spawn_blocking(move || {
                        SqliteStore::open_dir_with(&dir, options)
                    })
                    .await?
                    .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
                    tracing::info!(
                        channels = s.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "channel index loaded"
                    );
                    // Opened once the channel store holds the data directory's lock.
                    let dir = cfg.data_dir.clone();
                    streams = Arc::new(
                        tokio::task::spawn_blocking(move || SqliteStreamStore::open_dir(&dir))
                            .await?
                            .with_context(|| {
                                format!("opening the stream tables in {}", cfg.data_dir.display())
                            })?,
                    );
                    (Arc::new(s), SignalingPorts::in_process(), memory_limiter())
                }
                StoreKind::Redis(url) => {
                    let (store, ports, limiter, redis_streams, redis_fragments) =
                        redis_backends(cfg, url, &quotas, &metrics).await?;
                    streams = redis_streams;
                    let redis = kvs_redis::Redis::open(url, &cfg.redis_prefix)
                        .with_context(|| format!("--store {}", cfg.store))?
                        .with_round_trips(metrics.redis());
                    sessions = Arc::new(kvs_redis::RedisSessionRegistry::new(redis));
                    fragments = Some(redis_fragments);
                    (store, ports, limiter)
                }
            };
        let store = metrics.timed_store(store);
        let fragments = match fragments {
            Some(f) => f,
            None => {
                let root = cfg.data_dir.join("media");
                let opened = root.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || {
                        kvs_media::LocalFragmentStore::disk(&opened)
                    })
                    .await?
                    .with_context(|| format!("opening the media store in {}", root.display()))?,
                )
            }
        };
        let media_clock = Arc::clone(&clock);
        let application = Arc::new(
            Application::new(
                store,
                clock,
                ServiceConfig {
                    lifecycle_delay: cfg.lifecycle_delay,
                    max_channels: cfg.max_channels,
                },
                HubConfig {
                    max_viewers: cfg.max_viewers,
                    max_held_per_channel: cfg.max_held_messages,
                    go_away_grace: cfg.go_away_grace,
                    lease: cfg.node_lease,
                    ..HubConfig::default()
                },
                NodeId::random(),
                ports,
            )
            .with_throttle(Throttle::new(quotas.clone(), limiter))
            .with_streams(
                streams,
                StreamConfig {
                    lifecycle_delay: cfg.lifecycle_delay,
                    max_streams: cfg.max_streams,
                },
            ),
        );
        let secret = match (&cfg.turn_secret_file, &cfg.turn_secret) {
            (Some(path), _) => read_secret(path)?,
            (None, Some(s)) => s.expose().to_owned(),
            (None, None) => random_secret(),
        };
        let ice = Arc::new(IceCredentials::new(secret, cfg.ice_ttl.as_secs() as u32));
        let http_addr = listeners.http.local_addr()?;
        // The caps count every listener's connections, TURN/TCP's included.
        let connections = crate::state::Connections::from_config(cfg);
        let turn = if cfg.embedded_turn {
            let tls = listeners.turn_tls.clone();
            Some(
                start_turn(
                    cfg,
                    &[http_addr],
                    tls,
                    Arc::clone(&ice),
                    &connections,
                    &metrics,
                )
                .await?,
            )
        } else {
            None
        };
        metrics.collect(Box::new(core_collector(&application, &connections)));
        let storage = crate::storage::StorageSessions::new(
            sessions,
            kvs_core::storage_session::SessionLimits::default(),
            crate::storage::MediaNetConfig {
                host_candidates: cfg.media_host_candidates.clone(),
                public_ip: cfg.turn_relay_ip,
                bind_ip: cfg.media_udp_bind,
            },
            metrics.storage(),
        );
        let recorder = Arc::new(kvs_media::MediaRecorder::new(
            Arc::clone(&application) as Arc<dyn kvs_media::StreamDirectory>,
            fragments,
            media_clock,
            kvs_media::RecorderConfig {
                max_bytes: cfg.media_max_bytes,
                ..kvs_media::RecorderConfig::default()
            },
        ));
        let media = Arc::new(crate::media::Media::new(recorder));
        metrics.collect(Box::new(crate::metrics::media::MediaCollector::of(
            Arc::clone(&media),
        )));
        let metrics = Arc::new(metrics);
        let open = credentials.is_none();
        let console = crate::console::Console::new(
            cfg.turn_secret_file.clone(),
            matches!(cfg.store, StoreKind::Redis(_)),
        );
        let inspector: Arc<dyn crate::observe::CallWatcher> = console.inspector.clone();
        let state = Arc::new(AppState {
            app: application,
            auth: Authenticator::new(credentials, account, region),
            public_endpoint,
            local_authority: http_addr.to_string(),
            session: SessionConfig {
                idle_timeout: cfg.idle_timeout,
                max_duration: cfg.max_connection_duration,
                rate_limits: if cfg.message_rate_limits {
                    RateLimits::AWS
                } else {
                    RateLimits::UNLIMITED
                },
                // Room for every held message handed over on connect, then live traffic.
                outbox_capacity: cfg.max_held_messages.max(256) + 64,
            },
            ice,
            turn_uris: cfg.turn_uris.clone(),
            relay: turn.as_ref().map(|t| crate::state::RelayPorts {
                udp: t.extra_udp_addr.unwrap_or(t.udp_addr).port(),
                tcp: t.tcp_addr.port(),
                tls: t.tls_addr.map(|a| a.port()).or_else(|| {
                    let https = listeners.tls.as_ref()?.listener.local_addr().ok()?;
                    t.intake.as_ref().map(|_| https.port())
                }),
                stun: t.stun_addr.map(|a| a.port()),
            }),
            ice_shape: cfg.ice_uris,
            alexa_answer_timeout: cfg.alexa_answer_timeout,
            connections,
            calls: crate::observe::Calls::new(vec![metrics.api(), inspector]),
            console,
            metrics,
            recording: media.recording(),
            media,
            storage,
        });
        tracing::info!(
            store = %cfg.store,
            data_dir = %cfg.data_dir.display(),
            auth = if open { "open" } else { "sigv4" },
            "kvs-signaling assembled"
        );
        Ok(Self {
            state,
            turn,
            turn_secret_file: cfg.turn_secret_file.clone(),
            drain: cfg.shutdown_timeout,
        })
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }
}

/// The core's counters and the listeners' figures, read at each scrape.
fn core_collector(
    application: &Arc<Application>,
    connections: &crate::state::Connections,
) -> crate::metrics::CoreCollector {
    let application = Arc::clone(application);
    let admission = Arc::clone(&connections.admission);
    crate::metrics::CoreCollector::new(move || crate::metrics::CoreFigures {
        signaling: application.hub().metrics_snapshot(),
        server: crate::metrics::ServerFigures {
            connections_open: admission.open(),
            connections_max: admission.caps().max,
            connections_refused: admission.refused(),
            fd_exhausted: crate::listener::fd_exhausted(),
            requests_throttled: application.throttled(),
        },
    })
}

/// Serves `app` on `listeners` until `shutdown` completes, then drains (GO_AWAY to this node's
/// connections) for up to the shutdown timeout.
pub async fn run(
    listeners: Listeners,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let App {
        state,
        turn,
        turn_secret_file,
        drain,
    } = app;
    let hub_tasks = state.app.hub().start();
    let sweeper = tokio::spawn(sweep_held_messages(Arc::clone(&state)));
    // Retention, deleted streams and --media-max-bytes (docs/media-storage.md).
    let media_upkeep = state.media.recorder().spawn_upkeep(MEDIA_UPKEEP_EVERY);
    let watcher = turn_secret_file.map(|p| tokio::spawn(watch_secret_file(p, Arc::clone(&state))));
    let tls = listeners.tls.map(|mut t| {
        t.turn = turn.as_ref().and_then(|r| r.intake.clone());
        t
    });
    let result = server::serve(listeners.http, tls, Arc::clone(&state), shutdown, drain).await;
    sweeper.abort();
    media_upkeep.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    drop(hub_tasks);
    if let Some(t) = turn {
        t.close().await;
    }
    result
}

/// The store and the relay's ports on one Redis, shared with every other node that uses it.
/// Connects lazily: a node started before Redis answers 503 until it can reach it.
async fn redis_backends(
    cfg: &ServeConfig,
    url: &str,
    quotas: &Quotas,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<(
    Arc<dyn Store>,
    SignalingPorts,
    Arc<dyn RateLimiter>,
    Arc<dyn StreamStore>,
    Arc<dyn kvs_media::FragmentStore>,
)> {
    let redis = kvs_redis::Redis::open(url, &cfg.redis_prefix)
        .with_context(|| format!("--store {}", cfg.store))?
        .with_round_trips(metrics.redis());
    match redis.ping().await {
        Ok(()) => {
            if redis.is_cluster_node().await.unwrap_or(false) {
                bail!(
                    "--store {}: this is a Redis Cluster node (cluster_enabled:1); Redis Cluster \
                     is not supported: use a standalone Redis (see docs/deployment.md)",
                    cfg.store
                );
            }
            tracing::info!(redis = %cfg.store, "connected to Redis")
        }
        Err(e) if kvs_redis::misconfigured(&e) => {
            bail!("--store {}: {e}", cfg.store)
        }
        // Not fatal (docs/deployment.md: a node may start before Redis does), but said once,
        // with what to check.
        Err(e) => {
            let text = e.to_string();
            let refused = ["WRONGPASS", "NOAUTH", "uthentication"]
                .iter()
                .any(|s| text.contains(s));
            let (what, fix) = if refused {
                (
                    "Redis refused the password",
                    "check the password in --store redis://:PASSWORD@HOST:PORT",
                )
            } else {
                (
                    "Redis is not reachable yet",
                    "start Redis, or check HOST:PORT in --store",
                )
            };
            tracing::warn!(
                redis = %cfg.store,
                error = %e,
                "{what}; requests are answered 503 until it is fixed ({fix})"
            )
        }
    }
    // A presence record outlives its last connect by at least the longest a connection lives.
    let presence_ttl = cfg.max_connection_duration + Duration::from_secs(600);
    let ports = SignalingPorts {
        presence: Arc::new(kvs_redis::RedisPresence::new(
            redis.clone(),
            cfg.node_lease,
            presence_ttl,
        )),
        held: Arc::new(kvs_redis::RedisHeld::new(redis.clone())),
        bus: Arc::new(kvs_redis::RedisBus::new(redis.clone())),
        feed: Arc::new(kvs_redis::RedisFeed::new(redis.clone())),
    };
    // Quotas are counted on Redis too, so the nodes together allow what one AWS region does.
    let limiter = Arc::new(kvs_redis::RedisLimiter::new(redis.clone(), quotas.clone()));
    Ok((
        Arc::new(kvs_redis::RedisStore::new(redis.clone())),
        ports,
        limiter,
        Arc::new(kvs_redis::RedisStreamStore::new(redis.clone())),
        Arc::new(kvs_redis::RedisFragmentStore::new(
            redis,
            cfg.media_stream_max_bytes,
        )),
    ))
}

/// How often recorded media is held to retention and bounds.
const MEDIA_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Expires held messages once a second, so metrics and memory reflect TTLs even on channels
/// nobody connects to again.
async fn sweep_held_messages(state: SharedState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.app.hub().sweep().await;
    }
}

/// Starts the embedded TURN relay: `--turn-listen`, or the listen host on 3478 (falling back
/// to an ephemeral port when 3478 is taken, so several servers can run side by side).
async fn start_turn(
    cfg: &ServeConfig,
    http_addrs: &[std::net::SocketAddr],
    tls: Option<Arc<rustls::ServerConfig>>,
    ice: Arc<IceCredentials>,
    connections: &crate::state::Connections,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<crate::turn_relay::Turn> {
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
    let tls_listen = match (&cfg.turn_tls_listen, &tls) {
        (Some(a), Some(_)) => Some(resolve_one("--turn-tls-listen", a).await?),
        _ => None,
    };
    let stun_listen = match &cfg.stun_listen {
        Some(a) => Some(resolve_one("--stun-listen", a).await?),
        None => None,
    };
    let udp_listen = match &cfg.turn_udp_listen {
        Some(a) => Some(resolve_one("--turn-udp-listen", a).await?),
        None => None,
    };
    let opts = |listen: std::net::SocketAddr| crate::turn_relay::TurnOptions {
        listen,
        relay_ip,
        relay_bind: listen.ip(),
        max_per_channel: cfg.turn_max_allocations,
        backlog: cfg.listen_backlog,
        admission: Arc::clone(&connections.admission),
        first_message_timeout: cfg.handshake_timeout,
        metrics: metrics.turn(),
        tls: tls.clone(),
        tls_listen,
        stun_listen,
        udp_listen,
    };
    let turn = match crate::turn_relay::start(opts(listen), Arc::clone(&ice)).await {
        Ok(t) => t,
        Err(e) if !explicit => {
            tracing::warn!(error = %e, "TURN port 3478 unavailable; using an ephemeral port");
            crate::turn_relay::start(opts(std::net::SocketAddr::new(listen.ip(), 0)), ice).await?
        }
        Err(e) => {
            let addr = cfg.turn_listen.as_deref().unwrap_or_default();
            return Err(startup::cannot_listen("--turn-listen", addr, &e).into());
        }
    };
    tracing::info!(
        udp = %turn.udp_addr,
        tcp = %turn.tcp_addr,
        tls = ?turn.tls_addr,
        stun = ?turn.stun_addr,
        extra_udp = ?turn.extra_udp_addr,
        %relay_ip,
        "embedded TURN relay listening"
    );
    Ok(turn)
}

/// The first address `addr` resolves to.
async fn resolve_one(flag: &str, addr: &str) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| cannot_resolve(flag, addr, &e))?
        .next()
        .with_context(|| format!("{flag} {addr}: no address"))
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

pub(crate) fn random_secret() -> String {
    use rand::distr::Alphanumeric;
    use rand::RngExt;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// Re-reads the TURN secret file every second; a new secret makes every connected client fetch
/// new ICE credentials (RECONNECT_ICE_SERVER, docs/protocol.md §6.4).
async fn watch_secret_file(path: std::path::PathBuf, state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(secret) = read_secret(&path) else {
            continue;
        };
        if state.ice.rotate(secret) {
            let n = state.app.hub().broadcast(&Event::ReconnectIceServer);
            tracing::info!(
                connections = n,
                "TURN secret rotated; sent RECONNECT_ICE_SERVER"
            );
        }
    }
}
