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
}
