//! Keeping secrets out of logs, panic messages and `{:?}` output (SECURITY.md "Secrets"): the
//! TURN shared secret as a [`Secret`], a Redis URL's password through its redacting `Display`.

use std::fmt;

use crate::config::StoreKind;

/// A secret from the command line, the environment or the config file. `Debug` shows only that
/// it is set; [`Secret::expose`] is the one way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// As `Display`: a Redis URL with its password replaced (`config::redact_url`).
impl fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite => f.write_str("Sqlite"),
            Self::Memory => f.write_str("Memory"),
            Self::Redis(url) => write!(f, "Redis({:?})", crate::config::redact_url(url)),
        }
    }
}

/// The log filter: `spec` (`KVS_LOG`; `info` when unset or unreadable), and when it enables
/// `trace` anywhere, the WebSocket library capped at `debug`: at `trace` it logs every frame it
/// reads or writes, SDP and ICE candidates included.
pub fn log_filter(spec: Option<&str>) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let filter = spec
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if filter.max_level_hint() != Some(LevelFilter::TRACE) {
        return filter;
    }
    match "tungstenite=debug".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{parse_from, Command};

    #[test]
    fn the_parsed_configuration_debugs_without_secrets() {
        let args = [
            "kvs-signaling",
            "serve",
            "--store",
            "rediss://default:redis-password-1@redis.internal:6380/0",
            "--turn-secret",
            "turn-secret-2",
        ];
        let cli = parse_from(args.iter().map(|s| (*s).to_owned()).collect()).unwrap();
        let Command::Serve(cfg) = &cli.command;
        assert_eq!(
            cfg.turn_secret.as_ref().map(Secret::expose),
            Some("turn-secret-2")
        );
        for shown in [format!("{cli:?}"), format!("{cfg:#?}")] {
            assert!(!shown.contains("redis-password-1"), "{shown}");
            assert!(!shown.contains("turn-secret-2"), "{shown}");
            assert!(shown.contains("redis.internal:6380"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    /// Whether an event of `target` at `level` passes `log_filter(spec)`.
    fn passes(spec: Option<&str>, target: &'static str, level: tracing::Level) -> bool {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(log_filter(spec));
        tracing::subscriber::with_default(subscriber, || match (target, level) {
            ("tungstenite::protocol", tracing::Level::TRACE) => {
                tracing::enabled!(target: "tungstenite::protocol", tracing::Level::TRACE)
            }
            ("tungstenite::protocol", tracing::Level::DEBUG) => {
                tracing::enabled!(target: "tungstenite::protocol", tracing::Level::DEBUG)
            }
            ("kvs_signaling", tracing::Level::TRACE) => {
                tracing::enabled!(target: "kvs_signaling", tracing::Level::TRACE)
            }
            ("kvs_signaling", tracing::Level::INFO) => {
                tracing::enabled!(target: "kvs_signaling", tracing::Level::INFO)
            }
            _ => unreachable!(),
        })
    }

    #[test]
    fn websocket_frames_are_never_logged() {
        use tracing::Level;
        // At trace, everything but the WebSocket library's frame dumps.
        for spec in [
            "trace",
            "info,tungstenite=trace",
            "warn,kvs_signaling=trace",
        ] {
            assert!(
                !passes(Some(spec), "tungstenite::protocol", Level::TRACE),
                "{spec}"
            );
        }
        assert!(passes(Some("trace"), "kvs_signaling", Level::TRACE));
        assert!(passes(Some("trace"), "tungstenite::protocol", Level::DEBUG));
        // Below trace the filter is the operator's.
        assert!(passes(None, "kvs_signaling", Level::INFO));
        assert!(!passes(None, "tungstenite::protocol", Level::DEBUG));
        assert!(!passes(Some("warn"), "kvs_signaling", Level::INFO));
        assert!(!passes(Some("warn"), "tungstenite::protocol", Level::DEBUG));
    }
}
