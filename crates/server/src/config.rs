//! Configuration from flags, `KVS_*` environment variables and an optional TOML file
//! (docs/design.md §2). Precedence: flag, then environment, then file, then default.
//!
//! The file uses the flags' names in snake_case (`lifecycle_delay = "2s"`). It is merged by
//! turning its entries into flags for every option the command line and environment left at its
//! default, so the file goes through exactly the same parsers and checks as flags do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use kvs_core::ids::{AccountId, Region};

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

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write durations with a unit: 500ms, 2s, 10m)"))
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
    /// without a goodbye (kill -9), on Redis. At most 30 s.
    #[arg(long, env = "KVS_NODE_LEASE", default_value = "15s", value_parser = parse_duration)]
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

    /// How long CREATING / UPDATING / DELETING last (0s: complete before the response).
    #[arg(long, env = "KVS_LIFECYCLE_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub lifecycle_delay: Duration,

    /// Signaling channels per account and region (AccountChannelLimitExceededException).
    #[arg(long, env = "KVS_MAX_CHANNELS", default_value_t = 10_000)]
    pub max_channels: usize,

    /// Base URL handed out by GetSignalingChannelEndpoint instead of the request's Host, e.g.
    /// https://kvs.example.com.
    #[arg(long, env = "KVS_PUBLIC_ENDPOINT")]
    pub public_endpoint: Option<String>,

    /// Log format on stderr.
    #[arg(long, env = "KVS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How long graceful shutdown waits for requests and signaling connections to finish
    /// (connections get GO_AWAY first).
    #[arg(long, env = "KVS_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Concurrent viewers per channel (ClientLimitExceededException beyond).
    #[arg(long, env = "KVS_MAX_VIEWERS", default_value_t = 10)]
    pub max_viewers: usize,

    /// Messages held per channel for recipients that are not connected; the oldest is dropped
    /// beyond this.
    #[arg(long, env = "KVS_MAX_HELD_MESSAGES", default_value_t = 1000)]
    pub max_held_messages: usize,

    /// Per-connection message rate limits of AWS (offers and answers 5/s, ICE candidates 20/s).
    #[arg(long, env = "KVS_MESSAGE_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set)]
    pub message_rate_limits: bool,

    /// Close a signaling connection after this long without a frame from the client.
    #[arg(long, env = "KVS_IDLE_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Close a signaling connection after this long, whatever it is doing.
    #[arg(long, env = "KVS_MAX_CONNECTION_DURATION", default_value = "1h", value_parser = parse_duration)]
    pub max_connection_duration: Duration,

    /// After GO_AWAY (channel deleted), close the connection after this long.
    #[arg(long, env = "KVS_GO_AWAY_GRACE", default_value = "60s", value_parser = parse_duration)]
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
    /// environment). Default: turn:HOST:3478 over UDP and TCP, HOST being how the client reached us.
    #[arg(long = "turn-uri", env = "KVS_TURN_URIS", value_delimiter = ',')]
    pub turn_uris: Vec<String>,

    /// Lifetime of TURN credentials (GetIceServerConfig's Ttl); at least 31s.
    #[arg(long, env = "KVS_ICE_TTL", default_value = "300s", value_parser = parse_duration)]
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

    /// TURN allocations per signaling channel.
    #[arg(long, env = "KVS_TURN_MAX_ALLOCATIONS", default_value_t = 50)]
    pub turn_max_allocations: usize,

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

    /// How long SendAlexaOfferToMaster waits for the master's answer.
    #[arg(long, env = "KVS_ALEXA_ANSWER_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub alexa_answer_timeout: Duration,
}

/// Option ids that the config file may set (every option but `config` itself).
const FILE_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "store",
    "node_lease",
    "redis_prefix",
    "region",
    "account_id",
    "credentials",
    "allow_open_non_loopback",
    "lifecycle_delay",
    "max_channels",
    "public_endpoint",
    "log_format",
    "shutdown_timeout",
    "max_viewers",
    "max_held_messages",
    "message_rate_limits",
    "idle_timeout",
    "max_connection_duration",
    "go_away_grace",
    "turn_secret",
    "turn_secret_file",
    "turn_uris",
    "ice_ttl",
    "alexa_answer_timeout",
    "embedded_turn",
    "turn_listen",
    "turn_relay_ip",
    "turn_max_allocations",
    "tls_listen",
    "tls_cert",
    "tls_key",
    "tls_sans",
];

impl ServeConfig {
    pub fn listen_addr_is_loopback(addrs: &[SocketAddr]) -> bool {
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
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
    let matches = Cli::command().try_get_matches_from(args.clone())?;
    let cli = Cli::from_arg_matches(&matches)?;
    let Command::Serve(serve) = &cli.command;
    let Some(path) = &serve.config else {
        return Ok(cli);
    };
    let sub = matches
        .subcommand_matches("serve")
        .context("serve arguments")?;
    let extra = file_args(path, sub)?;
    if extra.is_empty() {
        return Ok(cli);
    }
    let mut all = args;
    all.extend(extra);
    let matches = Cli::command().try_get_matches_from(all)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

fn file_args(path: &PathBuf, sub: &ArgMatches) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let Some(id) = FILE_KEYS.iter().find(|k| **k == key) else {
            bail!("config file {}: unknown option {key:?}", path.display());
        };
        let explicit = matches!(
            sub.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if explicit {
            continue;
        }
        let flag = match *id {
            "turn_uris" => "--turn-uri".to_owned(),
            "tls_sans" => "--tls-san".to_owned(),
            _ => format!("--{}", id.replace('_', "-")),
        };
        match value {
            // `message_rate_limits` takes a value; the others are plain switches.
            toml::Value::Boolean(b) if *id == "message_rate_limits" || *id == "embedded_turn" => {
                out.extend([flag, b.to_string()])
            }
            toml::Value::Boolean(true) => out.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    let toml::Value::String(s) = item else {
                        bail!(
                            "config file {}: {key:?} must be a list of strings",
                            path.display()
                        );
                    };
                    out.extend([flag.clone(), s]);
                }
            }
            toml::Value::String(s) => out.extend([flag, s]),
            toml::Value::Integer(i) => out.extend([flag, i.to_string()]),
            other => bail!(
                "config file {}: option {key:?} must be a string, integer or boolean, not {}",
                path.display(),
                other.type_str()
            ),
        }
    }
    Ok(out)
}

/// The configuration, checked once: everything [`crate::app::App::build`] needs that can be
/// wrong.
pub struct Validated {
    pub account: AccountId,
    pub region: Region,
    pub credentials: Option<CredentialMap>,
    pub public_endpoint: Option<EndpointBase>,
}

impl ServeConfig {
    /// Checks every option that flags and the file cannot check on their own.
    pub fn validate(&self) -> anyhow::Result<Validated> {
        let account =
            AccountId::parse(&self.account_id).map_err(|e| anyhow::anyhow!("--account-id: {e}"))?;
        let region = Region::parse(&self.region).map_err(|e| anyhow::anyhow!("--region: {e}"))?;
        if self.ice_ttl < Duration::from_secs(31) || self.ice_ttl.as_secs() > 86_400 {
            bail!("--ice-ttl must be between 31s and 24h (the KVS C SDK refreshes 30 s before expiry)");
        }
        if self.max_viewers == 0 {
            bail!("--max-viewers must be at least 1");
        }
        if self.node_lease < Duration::from_secs(1) || self.node_lease > Duration::from_secs(30) {
            bail!("--node-lease must be between 1s and 30s");
        }
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
        if self.max_held_messages == 0 {
            bail!("--max-held-messages must be at least 1");
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
            account,
            region,
            credentials,
            public_endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn serve(args: &[&str]) -> ServeConfig {
        let mut v = vec!["kvs-signaling".to_string(), "serve".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        let Command::Serve(s) = parse_from(v).unwrap().command;
        s
    }

    #[test]
    fn node_lease_is_checked_against_the_redis_response_timeout() {
        let redis = "redis://127.0.0.1:6379";
        for (args, ok) in [
            (vec!["--node-lease", "1s"], true),
            (vec!["--store", redis, "--node-lease", "3s"], false),
            (vec!["--store", redis, "--node-lease", "4s"], true),
            (vec!["--store", redis], true),
            (vec!["--store", redis, "--node-lease", "31s"], false),
        ] {
            let got = serve(&args).validate();
            assert_eq!(got.is_ok(), ok, "{args:?}");
            if let Err(e) = got {
                assert!(e.to_string().starts_with("--node-lease must be"), "{e}");
            }
        }
    }

    #[test]
    fn defaults_match_the_cli_contract() {
        let s = serve(&[]);
        assert_eq!(s.listen, "127.0.0.1:4580");
        assert_eq!(s.data_dir, PathBuf::from("./kvs-data"));
        assert_eq!(s.store, StoreKind::Sqlite);
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.lifecycle_delay, Duration::ZERO);
        assert_eq!(s.max_channels, 10_000);
    }

    #[test]
    fn store_takes_a_redis_url() {
        for (arg, want) in [
            ("redis://127.0.0.1:6379", true),
            ("redis://:s3cret@10.0.0.5:6380/3", true),
            ("rediss://cache.example.com:6380", true),
            ("redis://[::1]:6379/0", true),
            ("rediss://127.0.0.1:6380/#insecure", true),
            ("redis://127.0.0.1:6379/1?protocol=resp3", true),
            ("redis://host:port", false),
            ("redis://host:6379/db", false),
            ("redis://", false),
            ("postgres://x", false),
        ] {
            let r = parse_from(vec![
                "k".into(),
                "serve".into(),
                "--store".into(),
                arg.into(),
            ]);
            assert_eq!(r.is_ok(), want, "{arg}");
        }
        assert_eq!(
            StoreKind::Redis("redis://:s3cret@h:1/0".into()).to_string(),
            "redis://***@h:1/0"
        );
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(
            serve(&["--lifecycle-delay", "500ms"]).lifecycle_delay,
            Duration::from_millis(500)
        );
        assert_eq!(
            serve(&["--lifecycle-delay", "2s"]).lifecycle_delay,
            Duration::from_secs(2)
        );
        assert_eq!(
            serve(&["--lifecycle-delay", "10m"]).lifecycle_delay,
            Duration::from_secs(600)
        );
        let bad = parse_from(vec![
            "k".into(),
            "serve".into(),
            "--lifecycle-delay".into(),
            "abc".into(),
        ]);
        assert!(bad.is_err());
    }

    #[test]
    fn config_file_fills_what_flags_leave_unset() {
        let dir = std::env::temp_dir().join(format!("kvs-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kvs.toml");
        std::fs::write(
            &path,
            "lifecycle_delay = \"3s\"\nmax_channels = 7\nregion = \"eu-west-1\"\nstore = \"memory\"\n",
        )
        .unwrap();
        let p = path.to_string_lossy().to_string();
        let s = serve(&["--config", &p, "--region", "ap-south-1"]);
        assert_eq!(s.lifecycle_delay, Duration::from_secs(3));
        assert_eq!(s.max_channels, 7);
        assert_eq!(s.store, StoreKind::Memory);
        assert_eq!(s.region, "ap-south-1", "the flag wins over the file");
        std::fs::write(&path, "store = \"redis://127.0.0.1:6390/2\"\n").unwrap();
        let s = serve(&["--config", &p]);
        assert_eq!(s.store, StoreKind::Redis("redis://127.0.0.1:6390/2".into()));
        std::fs::write(&path, "no_such_option = 1\n").unwrap();
        let v = vec!["k".into(), "serve".into(), "--config".into(), p];
        assert!(parse_from(v).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
