//! Configuration from flags, `KVS_*` environment variables and an optional TOML file
//! (docs/design.md §2). Precedence: flag, then environment, then file, then default.
//!
//! One parser for all three: clap. Flags and the environment are clap's own value sources; the
//! file's entries become the defaults of the options it names (clap's `DefaultValue` source,
//! which only applies when neither a flag nor a variable gave the option), after going through
//! the very value parser of their option. So every bound below is checked once, at parse time,
//! whichever of the three a value came from. The file uses the flags' names in snake_case
//! (`lifecycle_delay = "2s"`); which keys exist and what type each holds is read off the clap
//! command itself, so a new option needs nothing here. The quota overrides are the one
//! exception: tables in the file (`[quota.channel]`), merged per operation with `--quota`.

use std::any::TypeId;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use kvs_core::ids::{AccountId, Region};
use kvs_core::quota::{QuotaMode, Quotas};

pub use crate::config_quota::QuotaOverride;
use crate::config_quota::{file_quota, parse_quota_override, quota_mode};
use crate::credentials::{self, CredentialMap};
use crate::endpoints::EndpointBase;

#[derive(Debug, Parser)]
#[command(
    name = "kvs-signaling",
    version,
    about = "AWS-compatible Kinesis Video Streams signaling channels"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeConfig),
}

/// Where channels (and, with Redis, everything the nodes share) live. `Debug` redacts (redact.rs).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// Embedded SQLite in --data-dir (durable).
    Sqlite,
    /// Nothing on disk; everything is lost when the process ends.
    Memory,
    /// Redis 7 or Valkey at this URL (`redis://[:PASSWORD@]HOST:PORT[/DB]`, `rediss://` for
    /// TLS): several nodes share channels, presence, held messages and a bus through it.
    Redis(String),
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite => f.write_str("sqlite"),
            Self::Memory => f.write_str("memory"),
            Self::Redis(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// `redis://:secret@host` → `redis://:***@host`, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

fn parse_store(s: &str) -> Result<StoreKind, String> {
    match s {
        "sqlite" => Ok(StoreKind::Sqlite),
        "memory" => Ok(StoreKind::Memory),
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            redis_url_ok(url)?;
            Ok(StoreKind::Redis(url.to_owned()))
        }
        _ => {
            Err("expected sqlite, memory, redis://[:PASSWORD@]HOST:PORT[/DB] or rediss://…".into())
        }
    }
}

/// Checks the shape of a Redis URL without connecting: a host, a numeric port if any, a
/// numeric database if any.
fn redis_url_ok(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    // `#insecure` (skip certificate checks) and `?protocol=resp3` belong to the client.
    let rest = rest.split(['#', '?']).next().unwrap_or("");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(format!(
            "the database in {} must be a number",
            redact_url(url)
        ));
    }
    let host = match hostport.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || hostport.starts_with('[') => {
            if port.parse::<u16>().is_err() {
                return Err(format!("the port in {} must be a number", redact_url(url)));
            }
            h
        }
        _ => hostport,
    };
    if host.is_empty() {
        return Err(format!("{} names no host", redact_url(url)));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The shape of GetIceServerConfig's list for the embedded relay (docs/turn.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IceUris {
    /// One server: turn:…?transport=udp, turns:…?transport=tcp (when TURN over TLS is served),
    /// turn:…?transport=tcp.
    Default,
    /// AWS's shape: two servers, each turn:…?transport=udp and turns:…?transport=tcp (no
    /// turns:…?transport=udp: TURN over DTLS is not served).
    Aws,
}

// The bounds of every duration and count (docs/configuration.md lists them). The upper ones
// keep deadlines (`Instant + duration`) and capacities far from overflow.
const MILLISECOND: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write durations with a unit: 500ms, 2s, 10m)"))
}

/// `10m`, `24h`, `7d`, `500ms`: a bound as the user would write it.
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if s >= 2 * 86_400 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The value parser of a duration option: a unit, and `min..=max`.
fn durations(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    durations_because(min, max, "")
}

/// [`durations`] whose refusal says why the bounds are what they are.
fn durations_because(
    min: Duration,
    max: Duration,
    why: &'static str,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        let d = parse_duration(s)?;
        if d < min || d > max {
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            return Err(format!(
                "must be between {} and {}{why}",
                show_duration(min),
                show_duration(max)
            ));
        }
        Ok(d)
    }
}

/// The value parser of a count option: a whole number in `min..=max`.
fn counts<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |s| match s.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("must be a whole number between {min} and {max}")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// TOML file with any of these options in snake_case; flags and environment win over it.
    #[arg(long, env = "KVS_CONFIG")]
    pub config: Option<PathBuf>,

    /// HTTP + WebSocket listen address; port 0 picks a free port.
    #[arg(long, env = "KVS_LISTEN", default_value = "127.0.0.1:4580")]
    pub listen: String,

    /// Where the embedded store lives.
    #[arg(long, env = "KVS_DATA_DIR", default_value = "./kvs-data")]
    pub data_dir: PathBuf,

    /// Store backend: sqlite, memory, or redis://[:PASSWORD@]HOST:PORT[/DB] (rediss:// for
    /// TLS) to run several nodes on one Redis.
    #[arg(long, env = "KVS_STORE", default_value = "sqlite", value_parser = parse_store)]
    pub store: StoreKind,

    /// How long a node's presence (its masters and viewers) outlives the node when it dies
    /// without a goodbye (kill -9), on Redis (1s..30s; at least 4s with Redis).
    #[arg(long, env = "KVS_NODE_LEASE", default_value = "15s", value_parser = durations(SECOND, 30 * SECOND))]
    pub node_lease: Duration,

    /// Prefix of every Redis key this deployment uses (several deployments may share a Redis).
    #[arg(long, env = "KVS_REDIS_PREFIX", default_value = "kvs")]
    pub redis_prefix: String,

    /// Region for requests that carry no SigV4 scope (open mode).
    #[arg(long, env = "KVS_REGION", default_value = "us-east-1")]
    pub region: String,

    /// Account id for every request in open mode.
    #[arg(long, env = "KVS_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,

    /// TOML file of [[credentials]] (access_key_id, secret_access_key, account_id); turns on
    /// SigV4 verification of every request.
    #[arg(long, env = "KVS_CREDENTIALS")]
    pub credentials: Option<PathBuf>,

    /// Allow open mode (no --credentials) on a non-loopback address.
    #[arg(long, env = "KVS_ALLOW_OPEN_NON_LOOPBACK")]
    pub allow_open_non_loopback: bool,

    /// How long CREATING / UPDATING / DELETING last (0s: complete before the response;
    /// 0s..24h).
    #[arg(long, env = "KVS_LIFECYCLE_DELAY", default_value = "0s", value_parser = durations(Duration::ZERO, DAY))]
    pub lifecycle_delay: Duration,

    /// Signaling channels per account and region (AccountChannelLimitExceededException;
    /// 1..100000000).
    #[arg(long, env = "KVS_MAX_CHANNELS", default_value = "10000", value_parser = counts(1usize, 100_000_000))]
    pub max_channels: usize,

    /// Kinesis video streams per account and region (AccountStreamLimitExceededException;
    /// 1..100000000).
    #[arg(long, env = "KVS_MAX_STREAMS", default_value = "10000", value_parser = counts(1usize, 100_000_000))]
    pub max_streams: usize,

    /// Bytes of recorded media (GetMedia fragments) kept in all; beyond it the oldest
    /// fragments of any stream are evicted (docs/media-storage.md; 1048576..1125899906842624).
    #[arg(long, env = "KVS_MEDIA_MAX_BYTES", default_value = "5368709120", value_parser = counts(1u64 << 20, 1u64 << 50))]
    pub media_max_bytes: u64,

    /// Bytes of recorded media one stream keeps on Redis (--store redis://); its oldest
    /// fragments go beyond it, at once (1048576..1125899906842624).
    #[arg(long, env = "KVS_MEDIA_STREAM_MAX_BYTES", default_value = "1073741824", value_parser = counts(1u64 << 20, 1u64 << 50))]
    pub media_stream_max_bytes: u64,

    /// Base URL handed out by GetSignalingChannelEndpoint instead of the request's Host, e.g.
    /// https://kvs.example.com.
    #[arg(long, env = "KVS_PUBLIC_ENDPOINT")]
    pub public_endpoint: Option<String>,

    /// Log format on stderr.
    #[arg(long, env = "KVS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How long graceful shutdown waits for requests and signaling connections to finish
    /// (connections get GO_AWAY first; 0s..1h).
    #[arg(long, env = "KVS_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = durations(Duration::ZERO, HOUR))]
    pub shutdown_timeout: Duration,

    /// Concurrent viewers per channel (ClientLimitExceededException beyond; 1..100000).
    #[arg(long, env = "KVS_MAX_VIEWERS", default_value = "10", value_parser = counts(1usize, 100_000))]
    pub max_viewers: usize,

    /// Messages held per channel for recipients that are not connected; the oldest is dropped
    /// beyond this (1..1000000).
    #[arg(long, env = "KVS_MAX_HELD_MESSAGES", default_value = "1000", value_parser = counts(1usize, 1_000_000))]
    pub max_held_messages: usize,

    /// Per-connection message rate limits of AWS (offers and answers 5/s, ICE candidates 20/s).
    #[arg(long, env = "KVS_MESSAGE_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set)]
    pub message_rate_limits: bool,

    /// Close a signaling connection after this long without a frame from the client (1s..7d).
    #[arg(long, env = "KVS_IDLE_TIMEOUT", default_value = "10m", value_parser = durations(SECOND, 7 * DAY))]
    pub idle_timeout: Duration,

    /// Close a signaling connection after this long, whatever it is doing (1s..7d).
    #[arg(long, env = "KVS_MAX_CONNECTION_DURATION", default_value = "1h", value_parser = durations(SECOND, 7 * DAY))]
    pub max_connection_duration: Duration,

    /// After GO_AWAY (channel deleted), close the connection after this long (0s..1h).
    #[arg(long, env = "KVS_GO_AWAY_GRACE", default_value = "60s", value_parser = durations(Duration::ZERO, HOUR))]
    pub go_away_grace: Duration,

    /// Shared secret for TURN REST credentials (coturn's static-auth-secret). Random per start
    /// when neither this nor --turn-secret-file is given.
    #[arg(long, env = "KVS_TURN_SECRET")]
    pub turn_secret: Option<crate::redact::Secret>,

    /// File holding the TURN shared secret; re-read every second, and on change connected
    /// clients get RECONNECT_ICE_SERVER.
    #[arg(long, env = "KVS_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,

    /// TURN URI handed out by GetIceServerConfig (repeatable; comma-separated in the
    /// environment). Default: the embedded relay's (see --ice-uris), HOST being how the client
    /// reached us.
    #[arg(long = "turn-uri", env = "KVS_TURN_URIS", value_delimiter = ',')]
    pub turn_uris: Vec<String>,

    /// Lifetime of TURN credentials (GetIceServerConfig's Ttl; 31s..24h).
    #[arg(long, env = "KVS_ICE_TTL", default_value = "300s", value_parser = durations_because(31 * SECOND, DAY, "the KVS C SDK refreshes 30 s before expiry"))]
    pub ice_ttl: Duration,

    /// Run the embedded TURN relay (UDP and TCP).
    #[arg(long, env = "KVS_EMBEDDED_TURN", default_value_t = true, action = clap::ArgAction::Set)]
    pub embedded_turn: bool,

    /// Embedded TURN listen address (UDP and TCP). Default: the --listen host, port 3478 (an
    /// ephemeral port if 3478 is taken).
    #[arg(long, env = "KVS_TURN_LISTEN")]
    pub turn_listen: Option<String>,

    /// Address put in relayed candidates, the one peers reach the relay at (hosts behind NAT).
    /// Default: the TURN listen address, or 127.0.0.1 when that is unspecified.
    #[arg(long, env = "KVS_TURN_RELAY_IP")]
    pub turn_relay_ip: Option<std::net::IpAddr>,

    /// TURN over TLS listen address for the embedded relay, with the --tls-cert certificate (or
    /// the local CA's). The --tls-listen port serves TURN over TLS too.
    #[arg(long, env = "KVS_TURN_TLS_LISTEN")]
    pub turn_tls_listen: Option<String>,

    /// Extra UDP address for TURN over UDP (and STUN Binding), e.g. 0.0.0.0:443 beside
    /// --tls-listen 0.0.0.0:443 for AWS's all-on-443 list; GetIceServerConfig names it in
    /// turn:…?transport=udp instead of the --turn-listen port.
    #[arg(long, env = "KVS_TURN_UDP_LISTEN")]
    pub turn_udp_listen: Option<String>,

    /// Extra UDP address answering STUN Binding requests only (e.g. 0.0.0.0:443, for SDK
    /// samples that ask stun.kinesisvideo.REGION.amazonaws.com:443). The TURN UDP port answers
    /// Binding too.
    #[arg(long, env = "KVS_STUN_LISTEN")]
    pub stun_listen: Option<String>,

    /// GetIceServerConfig's URIs for the embedded relay: `default` (one server, every
    /// transport served) or `aws` (two servers of turn:…udp and turns:…tcp, as AWS answers).
    /// --turn-uri overrides both.
    #[arg(long, env = "KVS_ICE_URIS", value_enum, default_value_t = IceUris::Default)]
    pub ice_uris: IceUris,

    /// TURN allocations per signaling channel (1..100000).
    #[arg(long, env = "KVS_TURN_MAX_ALLOCATIONS", default_value = "50", value_parser = counts(1usize, 100_000))]
    pub turn_max_allocations: usize,

    /// Addresses the storage session's WebRTC peer offers as host candidates (comma-separated
    /// IPs). Default: --turn-relay-ip (and loopback) when set, else every interface's IPv4
    /// address and loopback (docs/webrtc-ingestion.md "Network").
    #[arg(
        long = "media-host-candidates",
        env = "KVS_MEDIA_HOST_CANDIDATES",
        value_delimiter = ','
    )]
    pub media_host_candidates: Vec<std::net::IpAddr>,

    /// Where the storage session's peer binds its UDP socket for a candidate address that is
    /// not local to this host (a public address NATed to it). Each session uses ephemeral ports.
    #[arg(
        long = "media-udp-bind",
        env = "KVS_MEDIA_UDP_BIND",
        default_value = "0.0.0.0"
    )]
    pub media_udp_bind: std::net::IpAddr,

    /// HTTPS + WSS listen address (TLS), beside the plain listener; port 0 picks a free port.
    #[arg(long, env = "KVS_TLS_LISTEN")]
    pub tls_listen: Option<String>,

    /// PEM certificate chain for --tls-listen. Without it (and --tls-key) a local CA in
    /// DATA_DIR/tls signs a server certificate.
    #[arg(long, env = "KVS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "KVS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Extra DNS name or IP address for the generated server certificate (repeatable;
    /// localhost, 127.0.0.1, ::1 and the listen and public hosts are always included).
    #[arg(long = "tls-san", env = "KVS_TLS_SANS", value_delimiter = ',')]
    pub tls_sans: Vec<String>,

    /// How long SendAlexaOfferToMaster waits for the master's answer (100ms..10m).
    #[arg(long, env = "KVS_ALEXA_ANSWER_TIMEOUT", default_value = "5s", value_parser = durations(100 * MILLISECOND, 10 * MINUTE))]
    pub alexa_answer_timeout: Duration,

    /// Time to receive a request's headers, a connection that sends nothing included
    /// (1s..10m).
    #[arg(long, env = "KVS_HEADER_TIMEOUT", default_value = "20s", value_parser = durations(SECOND, 10 * MINUTE))]
    pub header_timeout: Duration,

    /// Time to receive a request's body (1s..10m).
    #[arg(long, env = "KVS_BODY_TIMEOUT", default_value = "30s", value_parser = durations(SECOND, 10 * MINUTE))]
    pub body_timeout: Duration,

    /// Idle time allowed between requests on a keep-alive connection (1s..1h).
    #[arg(long, env = "KVS_KEEPALIVE_TIMEOUT", default_value = "60s", value_parser = durations(SECOND, HOUR))]
    pub keepalive_timeout: Duration,

    /// Time allowed for a TLS handshake, and for a WebSocket handshake (1s..2m).
    #[arg(long, env = "KVS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = durations(SECOND, 2 * MINUTE))]
    pub handshake_timeout: Duration,

    /// Open client connections at most, over all listeners; 0: derived from the process's
    /// open-file limit (0..1000000).
    #[arg(long, env = "KVS_MAX_CONNECTIONS", default_value = "0", value_parser = counts(0u32, 1_000_000))]
    pub max_connections: u32,

    /// Open client connections from one IP address at most; 0: no per-address cap
    /// (0..1000000).
    #[arg(long, env = "KVS_MAX_CONNECTIONS_PER_IP", default_value = "4096", value_parser = counts(0u32, 1_000_000))]
    pub max_connections_per_ip: u32,

    /// Backlog of each listening TCP socket: connections the kernel queues before they are
    /// accepted (1..65535).
    #[arg(long, env = "KVS_LISTEN_BACKLOG", default_value = "4096", value_parser = counts(1u32, 65_535))]
    pub listen_backlog: u32,

    /// API quotas: off, or aws (AWS's published rates per account and per channel; a call
    /// beyond them gets ClientLimitExceededException).
    #[arg(long, env = "KVS_QUOTAS", default_value = "off", value_parser = PossibleValuesParser::new(["off", "aws"]).map(quota_mode))]
    pub quotas: QuotaMode,

    /// Override one quota, SCOPE.OPERATION=RATE in requests per second (repeatable;
    /// comma-separated in the environment): SCOPE is account or channel, OPERATION an API
    /// name (e.g. channel.ConnectAsMaster=10); 0 removes that limit, else 0.001..1000000.
    #[arg(long, env = "KVS_QUOTA", value_name = "SCOPE.OPERATION=RATE", value_delimiter = ',', value_parser = parse_quota_override)]
    pub quota: Vec<QuotaOverride>,

    /// The config file's `[quota.SCOPE]` tables; `--quota` wins over them per operation.
    #[arg(skip)]
    file_quota: Vec<QuotaOverride>,
}

impl ServeConfig {
    pub fn listen_addr_is_loopback(addrs: &[SocketAddr]) -> bool {
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
    }

    /// The API quotas in force: `--quotas`' table, then the file's `[quota.SCOPE]` overrides,
    /// then `--quota` / `KVS_QUOTA` ones (which win for the same scope and operation).
    pub fn quota_table(&self) -> Quotas {
        let mut table = Quotas::for_mode(self.quotas);
        for o in self.file_quota.iter().chain(&self.quota) {
            table.set(o.scope, o.op, o.rate);
        }
        table
    }
}

/// Parses the process arguments (and environment, and config file).
pub fn parse() -> anyhow::Result<Cli> {
    parse_from(
        std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    )
}

pub fn parse_from(args: Vec<String>) -> anyhow::Result<Cli> {
    parse_with(Cli::command(), args)
}

/// Parses `args` with `cmd` (the tests give it other environment variable names): once to
/// find `--config`, and with a file, once more with the file's values as the defaults.
fn parse_with(cmd: clap::Command, args: Vec<String>) -> anyhow::Result<Cli> {
    let matches = cmd.clone().try_get_matches_from(&args)?;
    let path = matches
        .subcommand_matches("serve")
        .and_then(|m| m.get_one::<PathBuf>("config"))
        .cloned();
    let Some(path) = path else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let mut serve = cmd
        .find_subcommand("serve")
        .cloned()
        .context("the serve command")?;
    serve.build();
    let file = FileLayer::read(&path, &serve)?;
    let cmd = cmd.mut_subcommand("serve", |mut serve| {
        for (id, values) in file.defaults {
            serve = serve.mut_arg(id, |a| a.default_values(values));
        }
        serve
    });
    let matches = cmd.try_get_matches_from(&args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    let Command::Serve(serve) = &mut cli.command;
    serve.file_quota = file.quota;
    Ok(cli)
}

/// What the value of a config file key must be, from its option's action and value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Boolean,
    Integer,
    Duration,
    Text,
    /// A repeatable option: a list of strings (or one string).
    List,
}

impl FileKind {
    pub(crate) fn of(arg: &clap::Arg) -> Self {
        let t = arg.get_value_parser().type_id();
        let integers = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
        ];
        if matches!(arg.get_action(), ArgAction::Append) {
            Self::List
        } else if matches!(arg.get_action(), ArgAction::SetTrue) || t == TypeId::of::<bool>() {
            Self::Boolean
        } else if t == TypeId::of::<Duration>() {
            Self::Duration
        } else if integers.iter().any(|i| t == *i) {
            Self::Integer
        } else {
            Self::Text
        }
    }

    /// The type's name in docs/configuration.md (config_reference.rs).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Duration => "duration string",
            Self::Text => "string",
            Self::List => "list of strings",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Boolean => "a boolean (true or false)",
            Self::Integer => "an integer",
            Self::Duration => "a duration string with a unit (\"500ms\", \"2s\", \"10m\")",
            Self::Text => "a string",
            Self::List => "a list of strings",
        }
    }

    /// The value as clap arguments, or `None` when it has the wrong type.
    fn strings(self, value: &toml::Value) -> Option<Vec<String>> {
        use toml::Value as V;
        match (self, value) {
            (Self::Boolean, V::Boolean(b)) => Some(vec![b.to_string()]),
            (Self::Integer, V::Integer(i)) => Some(vec![i.to_string()]),
            (Self::Duration | Self::Text | Self::List, V::String(s)) => Some(vec![s.clone()]),
            (Self::List, V::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    }
}

/// The config file, checked: the defaults it gives options, and its quota overrides.
struct FileLayer {
    defaults: Vec<(clap::Id, Vec<String>)>,
    quota: Vec<QuotaOverride>,
}

impl FileLayer {
    /// Reads `path` against the (built) serve command: every key must name one of its options
    /// and hold a value of that option's type that its value parser accepts.
    fn read(path: &Path, serve: &clap::Command) -> anyhow::Result<Self> {
        let file = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::startup::cannot_read("the config file", "--config or KVS_CONFIG", path, &e)
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            crate::startup::Refusal::new(
                format!("the config file {file} is not valid TOML"),
                crate::startup::toml_reason(&e, Some(&text)),
                "its keys are the flags' names in snake_case, e.g. lifecycle_delay = \"2s\"",
            )
        })?;
        let mut layer = Self {
            defaults: Vec::new(),
            quota: Vec::new(),
        };
        for (key, value) in &table {
            if key == "quota" {
                layer.quota = file_quota(value).map_err(|e| anyhow!("config file {file}: {e}"))?;
                continue;
            }
            let Some(arg) = serve
                .get_arguments()
                .find(|a| a.get_id() == key.as_str() && file_may_set(a))
            else {
                bail!("config file {file}: {}", unknown_key(serve, key));
            };
            let kind = FileKind::of(arg);
            let values = kind.strings(value).ok_or_else(|| {
                anyhow!(
                    "config file {file}: {key} must be {}, not {}",
                    kind.expected(),
                    value.type_str()
                )
            })?;
            for v in &values {
                let parts: Vec<&str> = match arg.get_value_delimiter() {
                    Some(d) => v.split(d).collect(),
                    None => vec![v.as_str()],
                };
                for part in parts {
                    check_value(arg, part)
                        .map_err(|e| anyhow!("config file {file}: {key} = {value}: {e}"))?;
                }
            }
            layer.defaults.push((arg.get_id().clone(), values));
        }
        Ok(layer)
    }
}

/// Options the file may not set: `config` itself, and clap's `help` / `version`.
pub(crate) fn file_may_set(arg: &clap::Arg) -> bool {
    !matches!(
        arg.get_id().as_str(),
        "config" | "quota" | "help" | "version"
    )
}

/// "unknown option `lifecycle-delay` (did you mean lifecycle_delay?)".
fn unknown_key(serve: &clap::Command, key: &str) -> String {
    let wanted = key.replace('-', "_");
    let near = serve.get_arguments().filter(|a| file_may_set(a)).find(|a| {
        a.get_id().as_str() == wanted
            || a.get_long().map(|l| l.replace('-', "_")) == Some(wanted.clone())
    });
    match near {
        Some(a) => format!("unknown option {key:?} (did you mean {}?)", a.get_id()),
        None if key == "config" => "a config file cannot name another (\"config\")".to_owned(),
        None => format!(
            "unknown option {key:?} (the options are the flags' names in snake_case, e.g. \
             lifecycle_delay)"
        ),
    }
}

/// Runs `value` through `arg`'s own value parser (on a one-option command, clap keeping the
/// parser's entry point to itself); the error is the parser's reason.
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    let probe = clap::Command::new("probe").no_binary_name(true).arg(
        clap::Arg::new("value")
            .long("value")
            .action(ArgAction::Set)
            .value_parser(arg.get_value_parser().clone()),
    );
    let Err(e) = probe.try_get_matches_from([format!("--value={value}")]) else {
        return Ok(());
    };
    if let Some(reason) = std::error::Error::source(&e) {
        return Err(reason.to_string());
    }
    let possible: Vec<_> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_owned())
        .collect();
    if !possible.is_empty() {
        return Err(format!("expected one of {}", possible.join(", ")));
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    Err(first.trim_start_matches("error: ").to_owned())
}

/// The configuration, checked once by [`ServeConfig::validate`] (the only way to get one
/// outside this crate): everything [`crate::app::App::build`] needs that can be wrong.
#[non_exhaustive]
pub struct Validated {
    pub config: ServeConfig,
    pub account: AccountId,
    pub region: Region,
    pub credentials: Option<CredentialMap>,
    pub public_endpoint: Option<EndpointBase>,
}

impl ServeConfig {
    /// Checks what the value parsers cannot check on their own (options that depend on each
    /// other, files to load). Takes the configuration, so it runs once per start.
    pub fn validate(self) -> anyhow::Result<Validated> {
        let account =
            AccountId::parse(&self.account_id).map_err(|e| anyhow::anyhow!("--account-id: {e}"))?;
        let region = Region::parse(&self.region).map_err(|e| anyhow::anyhow!("--region: {e}"))?;
        // A renewal may wait a whole response timeout before it fails; the next one (a third
        // of a lease later) must still come before the lease ends.
        let min_lease = kvs_redis::RESPONSE_TIMEOUT * 2;
        if matches!(self.store, StoreKind::Redis(_)) && self.node_lease < min_lease {
            bail!(
                "--node-lease must be at least {}s with a Redis store (twice the Redis response \
                 timeout of {}s, so a renewal that times out can be retried before the lease ends)",
                min_lease.as_secs(),
                kvs_redis::RESPONSE_TIMEOUT.as_secs()
            );
        }
        if self.ice_uris == IceUris::Aws
            && self.turn_uris.is_empty()
            && (!self.embedded_turn
                || (self.tls_listen.is_none() && self.turn_tls_listen.is_none()))
        {
            bail!(
                "--ice-uris aws hands out turns: URIs: run the embedded relay with TURN over TLS \
                 (--tls-listen or --turn-tls-listen), or give --turn-uri"
            );
        }
        // clap pairs the flags (`requires`); a file's values are defaults, which it does not.
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("--tls-cert and --tls-key go together: give both or neither");
        }
        let credentials = self
            .credentials
            .as_deref()
            .map(credentials::load)
            .transpose()?;
        let public_endpoint = self
            .public_endpoint
            .as_deref()
            .map(EndpointBase::parse)
            .transpose()
            .context("--public-endpoint")?;
        Ok(Validated {
            config: self,
            account,
            region,
            credentials,
            public_endpoint,
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
