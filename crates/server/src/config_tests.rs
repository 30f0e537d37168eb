#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's environment: the command reads `KVS_T<unique>_…` instead of `KVS_…`, so tests
/// running in parallel (and the shell running them) never see each other's variables.
struct Env {
    prefix: String,
    vars: Vec<String>,
}

impl Env {
    fn new() -> Self {
        Self {
            prefix: format!("KVS_T{}_", unique()),
            vars: Vec::new(),
        }
    }

    /// Sets `name` (spelled as documented, `KVS_MAX_VIEWERS`) for this test only.
    fn set(&mut self, name: &str, value: &str) -> &mut Self {
        let var = name.replacen("KVS_", &self.prefix, 1);
        std::env::set_var(&var, value);
        self.vars.push(var);
        self
    }

    fn command(&self) -> clap::Command {
        let prefix = self.prefix.clone();
        Cli::command().mut_subcommand("serve", move |s| {
            s.mut_args(|a| {
                let renamed = a
                    .get_env()
                    .map(|e| e.to_string_lossy().replacen("KVS_", &prefix, 1));
                match renamed {
                    Some(e) => a.env(e),
                    None => a,
                }
            })
        })
    }

    fn parse(&self, args: &[&str]) -> anyhow::Result<ServeConfig> {
        let mut v = vec!["kvs-signaling".to_string(), "serve".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        let Command::Serve(s) = parse_with(self.command(), v)?.command;
        Ok(s)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for v in &self.vars {
            std::env::remove_var(v);
        }
    }
}

/// A config file, removed when dropped.
struct File(PathBuf);

impl File {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("kvs-config-test-{}.toml", unique()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn serve(args: &[&str]) -> ServeConfig {
    Env::new().parse(args).unwrap()
}

/// The error of a configuration that must be refused, as one line (clap's first line).
fn refusal(args: &[&str]) -> String {
    refusal_in(&Env::new(), args)
}

fn refusal_in(env: &Env, args: &[&str]) -> String {
    match env.parse(args) {
        Ok(s) => panic!("{args:?} was accepted: {s:?}"),
        Err(e) => format!("{e:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn refusal_of_file(text: &str) -> String {
    let f = File::new(text);
    let e = refusal(&["--config", &f.arg()]);
    assert!(e.contains(&f.arg()), "the error names the file: {e}");
    e
}

#[test]
fn defaults_match_the_cli_contract() {
    let s = serve(&[]);
    assert_eq!(s.config, None);
    assert_eq!(s.listen, "127.0.0.1:4580");
    assert_eq!(s.data_dir, PathBuf::from("./kvs-data"));
    assert_eq!(s.store, StoreKind::Sqlite);
    assert_eq!(s.node_lease, Duration::from_secs(15));
    assert_eq!(s.redis_prefix, "kvs");
    assert_eq!(s.region, "us-east-1");
    assert_eq!(s.account_id, "000000000000");
    assert_eq!(s.credentials, None);
    assert!(!s.allow_open_non_loopback);
    assert_eq!(s.lifecycle_delay, Duration::ZERO);
    assert_eq!(s.max_channels, 10_000);
    assert_eq!(s.public_endpoint, None);
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(s.max_viewers, 10);
    assert_eq!(s.max_held_messages, 1000);
    assert!(s.message_rate_limits);
    assert_eq!(s.idle_timeout, Duration::from_secs(600));
    assert_eq!(s.max_connection_duration, Duration::from_secs(3600));
    assert_eq!(s.go_away_grace, Duration::from_secs(60));
    assert_eq!(s.turn_secret, None);
    assert_eq!(s.turn_secret_file, None);
    assert!(s.turn_uris.is_empty());
    assert_eq!(s.ice_ttl, Duration::from_secs(300));
    assert!(s.embedded_turn);
    assert_eq!(s.turn_listen, None);
    assert_eq!(s.turn_relay_ip, None);
    assert_eq!(s.turn_max_allocations, 50);
    assert_eq!(s.tls_listen, None);
    assert_eq!(s.tls_cert, None);
    assert_eq!(s.tls_key, None);
    assert!(s.tls_sans.is_empty());
    assert_eq!(s.alexa_answer_timeout, Duration::from_secs(5));
    // Issue 13's options.
    assert_eq!(s.header_timeout, Duration::from_secs(20));
    assert_eq!(s.body_timeout, Duration::from_secs(30));
    assert_eq!(s.keepalive_timeout, Duration::from_secs(60));
    assert_eq!(s.handshake_timeout, Duration::from_secs(10));
    assert_eq!(s.max_connections, 0);
    assert_eq!(s.max_connections_per_ip, 4096);
    assert_eq!(s.listen_backlog, 4096);
    assert_eq!(s.quotas, QuotaMode::Off);
    assert!(s.quota.is_empty());
    assert_eq!(s.quota_table(), Quotas::off());
}

#[test]
fn help_shows_every_default_and_variable() {
    let mut cmd = Cli::command();
    let help = cmd
        .find_subcommand_mut("serve")
        .unwrap()
        .render_long_help()
        .to_string();
    for (flag, env, default) in [
        ("--header-timeout", "KVS_HEADER_TIMEOUT", Some("20s")),
        ("--body-timeout", "KVS_BODY_TIMEOUT", Some("30s")),
        ("--keepalive-timeout", "KVS_KEEPALIVE_TIMEOUT", Some("60s")),
        ("--handshake-timeout", "KVS_HANDSHAKE_TIMEOUT", Some("10s")),
        ("--max-connections", "KVS_MAX_CONNECTIONS", Some("0")),
        (
            "--max-connections-per-ip",
            "KVS_MAX_CONNECTIONS_PER_IP",
            Some("4096"),
        ),
        ("--listen-backlog", "KVS_LISTEN_BACKLOG", Some("4096")),
        ("--quotas", "KVS_QUOTAS", Some("off")),
        ("--quota", "KVS_QUOTA", None),
        ("--max-held-messages", "KVS_MAX_HELD_MESSAGES", Some("1000")),
        ("--max-channels", "KVS_MAX_CHANNELS", Some("10000")),
        ("--lifecycle-delay", "KVS_LIFECYCLE_DELAY", Some("0s")),
    ] {
        let start = help.find(&format!("{flag} ")).unwrap();
        let rest = &help[start..];
        let end = rest[2..].find("\n  -").map_or(rest.len(), |e| e + 2);
        let entry = &rest[..end];
        assert!(entry.contains(&format!("[env: {env}=")), "{entry}");
        if let Some(d) = default {
            assert!(entry.contains(&format!("[default: {d}]")), "{entry}");
        }
    }
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    // (file key = value, env variable and value, flag and value, the default, and the
    // value as the field shows it for each source.)
    type Show = fn(&ServeConfig) -> String;
    let cases: [(&str, &str, &str, &str, &str, &str, Show); 6] = [
        (
            "max_viewers = 3",
            "KVS_MAX_VIEWERS",
            "5",
            "--max-viewers",
            "7",
            "10",
            |s| s.max_viewers.to_string(),
        ),
        (
            "idle_timeout = \"3m\"",
            "KVS_IDLE_TIMEOUT",
            "5m",
            "--idle-timeout",
            "7m",
            "10m",
            |s| show_duration(s.idle_timeout),
        ),
        (
            "region = \"eu-west-3\"",
            "KVS_REGION",
            "eu-west-5",
            "--region",
            "eu-west-7",
            "us-east-1",
            |s| s.region.clone(),
        ),
        (
            "quotas = \"aws\"",
            "KVS_QUOTAS",
            "off",
            "--quotas",
            "aws",
            "off",
            |s| format!("{:?}", s.quotas).to_lowercase(),
        ),
        (
            "message_rate_limits = false",
            "KVS_MESSAGE_RATE_LIMITS",
            "true",
            "--message-rate-limits",
            "false",
            "true",
            |s| s.message_rate_limits.to_string(),
        ),
        (
            "turn_uris = [\"turn:file:3478\"]",
            "KVS_TURN_URIS",
            "turn:env:3478",
            "--turn-uri",
            "turn:flag:3478",
            "",
            |s| s.turn_uris.join(","),
        ),
    ];
    for (file_line, var, env_value, flag, flag_value, default, show) in cases {
        let file_value = match file_line.split_once(" = ").unwrap().1 {
            v if v.starts_with('[') => v.trim_matches(['[', ']', '"']).to_owned(),
            v => v.trim_matches('"').to_owned(),
        };
        let f = File::new(file_line);
        let config = f.arg();
        for (with_file, with_env, with_flag, want) in [
            (false, false, false, default),
            (true, false, false, file_value.as_str()),
            (true, true, false, env_value),
            (true, true, true, flag_value),
            (false, true, false, env_value),
            (false, true, true, flag_value),
            (true, false, true, flag_value),
        ] {
            let mut env = Env::new();
            if with_env {
                env.set(var, env_value);
            }
            let mut args = Vec::new();
            if with_file {
                args.extend(["--config", config.as_str()]);
            }
            if with_flag {
                args.extend([flag, flag_value]);
            }
            let got = show(&env.parse(&args).unwrap());
            assert_eq!(
                got, want,
                "{flag}: file {with_file}, env {with_env}, flag {with_flag}"
            );
        }
    }
}

#[test]
fn the_config_file_can_come_from_the_environment() {
    let f = File::new("max_channels = 7\n");
    let mut env = Env::new();
    env.set("KVS_CONFIG", &f.arg());
    assert_eq!(env.parse(&[]).unwrap().max_channels, 7);
}

#[test]
fn config_file_fills_what_flags_leave_unset() {
    let f = File::new(
        "lifecycle_delay = \"3s\"\nmax_channels = 7\nregion = \"eu-west-1\"\nstore = \"memory\"\n\
         allow_open_non_loopback = true\nembedded_turn = false\ntls_sans = [\"a.example\", \"b.example\"]\n\
         turn_relay_ip = \"192.0.2.1\"\nlog_format = \"json\"\n",
    );
    let s = serve(&["--config", &f.arg(), "--region", "ap-south-1"]);
    assert_eq!(s.lifecycle_delay, Duration::from_secs(3));
    assert_eq!(s.max_channels, 7);
    assert_eq!(s.store, StoreKind::Memory);
    assert_eq!(s.region, "ap-south-1", "the flag wins over the file");
    assert!(s.allow_open_non_loopback);
    assert!(!s.embedded_turn);
    assert_eq!(s.tls_sans, ["a.example", "b.example"]);
    assert_eq!(s.turn_relay_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(s.log_format, LogFormat::Json);
    let f = File::new("store = \"redis://127.0.0.1:6390/2\"\n");
    let s = serve(&["--config", &f.arg()]);
    assert_eq!(s.store, StoreKind::Redis("redis://127.0.0.1:6390/2".into()));
}

#[test]
fn unknown_keys_in_the_file_are_named() {
    for (text, names) in [
        ("no_such_option = 1\n", "unknown option \"no_such_option\""),
        (
            "lifecycle-delay = \"2s\"\n",
            "unknown option \"lifecycle-delay\" (did you mean lifecycle_delay?)",
        ),
        (
            "turn_uri = [\"turn:x\"]\n",
            "unknown option \"turn_uri\" (did you mean turn_uris?)",
        ),
        (
            "config = \"other.toml\"\n",
            "cannot name another (\"config\")",
        ),
        ("help = true\n", "unknown option \"help\""),
        (
            "[quota.region]\nConnectAsMaster = 1\n",
            "quota.region: unknown quota scope \"region\"",
        ),
        (
            "[quota.channel]\nConnectAsMastr = 1\n",
            "quota.channel.ConnectAsMastr: unknown operation \"ConnectAsMastr\": expected one of \
             CreateSignalingChannel, ",
        ),
    ] {
        let e = refusal_of_file(text);
        assert!(e.contains(names), "{text:?}: {e}");
    }
}

#[test]
fn values_of_the_wrong_type_name_the_key_and_what_it_expects() {
    for (text, want) in [
        ("max_viewers = \"10\"", "max_viewers must be an integer, not string"),
        ("max_viewers = 2.5", "max_viewers must be an integer, not float"),
        (
            "idle_timeout = 600",
            "idle_timeout must be a duration string with a unit (\"500ms\", \"2s\", \"10m\"), not integer",
        ),
        (
            "embedded_turn = \"no\"",
            "embedded_turn must be a boolean (true or false), not string",
        ),
        (
            "allow_open_non_loopback = 1",
            "allow_open_non_loopback must be a boolean (true or false), not integer",
        ),
        ("region = 1", "region must be a string, not integer"),
        ("turn_uris = [1, 2]", "turn_uris must be a list of strings, not array"),
        ("tls_sans = true", "tls_sans must be a list of strings, not boolean"),
        (
            "quota = [\"channel.ConnectAsMaster=1\"]",
            "quota must be tables [quota.account] and [quota.channel]",
        ),
        (
            "quota = { channel = 1 }",
            "quota.channel must be a table of Operation = rate, not integer",
        ),
        (
            "[quota.channel]\nConnectAsMaster = \"fast\"",
            "quota.channel.ConnectAsMaster must be a number (requests per second), not string",
        ),
        // The right type, refused by the option's own parser.
        (
            "idle_timeout = \"10\"",
            "idle_timeout = \"10\": time unit needed",
        ),
        ("store = \"floppy\"", "store = \"floppy\": expected sqlite, memory"),
        ("log_format = \"xml\"", "log_format = \"xml\": expected one of text, json"),
        ("quotas = \"gcp\"", "quotas = \"gcp\": expected one of off, aws"),
        (
            "turn_relay_ip = \"not-an-ip\"",
            "turn_relay_ip = \"not-an-ip\": invalid IP address syntax",
        ),
    ] {
        let e = refusal_of_file(text);
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn every_option_the_file_may_set_has_the_type_of_its_flag() {
    let mut serve = Cli::command().find_subcommand("serve").cloned().unwrap();
    serve.build();
    let kinds: Vec<(String, FileKind)> = serve
        .get_arguments()
        .filter(|a| file_may_set(a))
        .map(|a| (a.get_id().to_string(), FileKind::of(a)))
        .collect();
    let kind = |key: &str| kinds.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    for (key, want) in [
        ("allow_open_non_loopback", FileKind::Boolean),
        ("message_rate_limits", FileKind::Boolean),
        ("embedded_turn", FileKind::Boolean),
        ("max_channels", FileKind::Integer),
        ("max_connections", FileKind::Integer),
        ("listen_backlog", FileKind::Integer),
        ("idle_timeout", FileKind::Duration),
        ("header_timeout", FileKind::Duration),
        ("turn_uris", FileKind::List),
        ("tls_sans", FileKind::List),
        ("store", FileKind::Text),
        ("quotas", FileKind::Text),
        ("turn_relay_ip", FileKind::Text),
        ("data_dir", FileKind::Text),
    ] {
        assert_eq!(kind(key), Some(want), "{key}");
    }
    // Every duration option is a Duration to the file, every count an integer.
    for (key, k) in &kinds {
        let duration = key.ends_with("_timeout")
            || [
                "node_lease",
                "lifecycle_delay",
                "max_connection_duration",
                "go_away_grace",
                "ice_ttl",
            ]
            .contains(&key.as_str());
        if duration {
            assert_eq!(*k, FileKind::Duration, "{key}");
        }
        if key.starts_with("max_") && key != "max_connection_duration" || key == "listen_backlog" {
            assert_eq!(*k, FileKind::Integer, "{key}");
        }
    }
}

/// Every bounded option: "FLAG TOO-LOW LOWEST HIGHEST TOO-HIGH", `-` as too low when the lowest
/// is the lowest value there is.
const BOUNDS: &[&str] = &[
    "--node-lease 999ms 1s 30s 31s",
    "--lifecycle-delay - 0s 24h 86401s",
    "--shutdown-timeout - 0s 1h 3601s",
    "--idle-timeout 999ms 1s 7d 604801s",
    "--max-connection-duration 999ms 1s 7d 604801s",
    "--go-away-grace - 0s 1h 3601s",
    "--ice-ttl 30s 31s 24h 86401s",
    "--alexa-answer-timeout 99ms 100ms 10m 601s",
    "--header-timeout 999ms 1s 10m 601s",
    "--body-timeout 999ms 1s 10m 601s",
    "--keepalive-timeout 999ms 1s 1h 3601s",
    "--handshake-timeout 999ms 1s 2m 121s",
    "--max-channels 0 1 100000000 100000001",
    "--max-streams 0 1 100000000 100000001",
    "--media-max-bytes 1048575 1048576 1125899906842624 1125899906842625",
    "--media-stream-max-bytes 1048575 1048576 1125899906842624 1125899906842625",
    "--max-viewers 0 1 100000 100001",
    "--max-held-messages 0 1 1000000 1000001",
    "--turn-max-allocations 0 1 100000 100001",
    "--max-connections - 0 1000000 1000001",
    "--max-connections-per-ip - 0 1000000 1000001",
    "--listen-backlog 0 1 65535 65536",
];

#[test]
fn every_bounded_option_refuses_what_is_out_of_range_wherever_it_comes_from() {
    let mut serve_cmd = Cli::command().find_subcommand("serve").cloned().unwrap();
    serve_cmd.build();
    for row in BOUNDS {
        let [flag, below, min, max, above] = row.split(' ').collect::<Vec<_>>()[..] else {
            panic!("{row}");
        };
        let message = if min.parse::<u64>().is_ok() {
            format!("must be a whole number between {min} and {max}")
        } else if flag == "--ice-ttl" {
            format!("must be between {min} and {max} (the KVS C SDK refreshes 30 s before expiry)")
        } else {
            format!("must be between {min} and {max}")
        };
        let message = message.as_str();
        let arg = serve_cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(&flag[2..]))
            .unwrap();
        let key = arg.get_id().to_string();
        let var = arg.get_env().unwrap().to_string_lossy().into_owned();
        let kind = FileKind::of(arg);
        let toml = |v: &str| match kind {
            FileKind::Integer => format!("{key} = {v}"),
            _ => format!("{key} = \"{v}\""),
        };
        // --help says the range.
        let help = arg.get_help().unwrap().to_string();
        assert!(help.contains(&format!("{min}..{max}")), "{flag}: {help}");
        for ok in [min, max] {
            assert!(Env::new().parse(&[flag, ok]).is_ok(), "{flag} {ok}");
            let f = File::new(&toml(ok));
            assert!(
                Env::new().parse(&["--config", &f.arg()]).is_ok(),
                "{key} = {ok}"
            );
            let mut env = Env::new();
            env.set(&var, ok);
            assert!(env.parse(&[]).is_ok(), "{var}={ok}");
        }
        for bad in [below, above].into_iter().filter(|b| *b != "-") {
            let e = refusal(&[flag, bad]);
            assert!(
                e.contains(flag) && e.ends_with(message),
                "{flag} {bad}: {e}"
            );
            let e = refusal_of_file(&toml(bad));
            assert!(
                e.contains(&format!("{key} = ")) && e.ends_with(message),
                "{key} = {bad}: {e}"
            );
            let mut env = Env::new();
            env.set(&var, bad);
            let e = refusal_in(&env, &[]);
            assert!(e.contains(flag) && e.ends_with(message), "{var}={bad}: {e}");
        }
    }
    // No duration or count escapes the table.
    for a in serve_cmd.get_arguments().filter(|a| file_may_set(a)) {
        if matches!(FileKind::of(a), FileKind::Duration | FileKind::Integer) {
            let flag = format!("--{} ", a.get_long().unwrap());
            assert!(
                BOUNDS.iter().any(|r| r.starts_with(&flag)),
                "{flag}is not in BOUNDS"
            );
        }
    }
}

#[test]
fn a_duration_that_would_overflow_a_deadline_is_refused() {
    let e = refusal(&["--max-connection-duration", "18446744073709551615s"]);
    assert!(e.ends_with("must be between 1s and 7d"), "{e}");
    // Too large even for a Duration: humantime's own refusal.
    let e = refusal(&["--idle-timeout", "99999999999999999999999s"]);
    assert!(e.contains("--idle-timeout"), "{e}");
    let e = refusal_of_file("max_connection_duration = \"18446744073709551615s\"");
    assert!(e.contains("max_connection_duration"), "{e}");
    // Negative and huge counts alike.
    let e = refusal_of_file("max_viewers = -1");
    assert!(
        e.ends_with("must be a whole number between 1 and 100000"),
        "{e}"
    );
    let e = refusal_of_file("max_channels = 9223372036854775807");
    assert!(
        e.ends_with("must be a whole number between 1 and 100000000"),
        "{e}"
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
    let e = refusal(&["--lifecycle-delay", "abc"]);
    assert!(e.contains("write durations with a unit"), "{e}");
    let e = refusal(&["--lifecycle-delay", "10"]);
    assert!(e.contains("write durations with a unit"), "{e}");
}

#[test]
fn node_lease_is_checked_against_the_redis_response_timeout() {
    let redis = "redis://127.0.0.1:6379";
    for (args, ok) in [
        (vec!["--node-lease", "1s"], true),
        (vec!["--store", redis, "--node-lease", "3s"], false),
        (vec!["--store", redis, "--node-lease", "4s"], true),
        (vec!["--store", redis], true),
    ] {
        let got = serve(&args).validate();
        assert_eq!(got.is_ok(), ok, "{args:?}");
        if let Err(e) = got {
            assert!(e.to_string().starts_with("--node-lease must be"), "{e}");
        }
    }
    let e = refusal(&["--store", redis, "--node-lease", "31s"]);
    assert!(
        e.contains("--node-lease") && e.ends_with("must be between 1s and 30s"),
        "{e}"
    );
}

#[test]
fn validation_checks_what_depends_on_other_options() {
    let e = |args: &[&str]| serve(args).validate().err().map(|e| format!("{e:#}"));
    assert_eq!(e(&[]), None);
    assert!(e(&["--account-id", "12"])
        .unwrap()
        .starts_with("--account-id"));
    assert!(e(&["--region", "Mars 1"]).unwrap().starts_with("--region"));
    assert!(e(&["--public-endpoint", "ftp://x"])
        .unwrap()
        .starts_with("--public-endpoint"));
    // A certificate without its key is refused from the file as from flags.
    let f = File::new("tls_cert = \"/etc/kvs/cert.pem\"\n");
    let got = e(&["--config", &f.arg()]).unwrap();
    assert!(
        got.starts_with("--tls-cert and --tls-key go together"),
        "{got}"
    );
    assert!(Env::new()
        .parse(&["--tls-cert", "/etc/kvs/cert.pem"])
        .is_err());
    let v = serve(&["--account-id", "123456789012"]).validate().unwrap();
    assert_eq!(v.config.account_id, "123456789012");
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
        let r = Env::new().parse(&["--store", arg]);
        assert_eq!(r.is_ok(), want, "{arg}");
    }
    assert_eq!(
        StoreKind::Redis("redis://:s3cret@h:1/0".into()).to_string(),
        "redis://***@h:1/0"
    );
}

#[test]
fn bounds_are_shown_as_written() {
    for (d, want) in [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(100), "100ms"),
        (Duration::from_millis(1500), "1500ms"),
        (Duration::from_secs(31), "31s"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(600), "10m"),
        (Duration::from_secs(3600), "1h"),
        (Duration::from_secs(86_400), "24h"),
        (Duration::from_secs(7 * 86_400), "7d"),
    ] {
        assert_eq!(show_duration(d), want);
        assert_eq!(
            humantime::parse_duration(want).unwrap(),
            d,
            "{want} parses back"
        );
    }
}

#[path = "config_quota_tests.rs"]
mod quotas;
