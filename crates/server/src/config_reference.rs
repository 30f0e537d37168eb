//! docs/configuration.md, generated from the clap definition of `serve` (config.rs), so the
//! reference cannot drift from the options: every flag with its `KVS_*` variable, its key in the
//! config file (the option's id, which is how `config::FileLayer` maps file keys), the type the
//! file wants, the default and the help text.
//!
//! `kvs-signaling config-reference` prints it (a hidden subcommand, handled by main.rs before
//! the CLI is parsed, so the `Command` enum and its users stay as they are); the test below
//! fails when the committed file differs.

use std::fmt::Write as _;

use clap::{ArgAction, CommandFactory};
use kvs_core::quota::QuotaOp;

use crate::config::{file_may_set, Cli, FileKind};

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "config-reference";

/// The command that regenerates the file, as the test's failure message and the file say.
pub const REGENERATE: &str =
    "cargo run -p kvs-signaling -- config-reference > docs/configuration.md";

/// True when the process was started as `kvs-signaling config-reference` (nothing else).
pub fn requested(args: &[String]) -> bool {
    matches!(args, [_, sub] if sub == SUBCOMMAND)
}

const INTRO: &str = "\
Every option of `kvs-signaling serve` is a flag, a `KVS_*` environment variable, or a key in the
TOML file given with `--config`. A flag wins over the environment, which wins over the file,
which wins over the default.

- The file's keys are the flags' names in snake_case (`--lifecycle-delay` is `lifecycle_delay`);
  the repeatable `--turn-uri` and `--tls-san` are the lists `turn_uris` and `tls_sans`, and
  `--quota` overrides are the tables `[quota.account]` and `[quota.channel]` of
  `Operation = rate`. `--config` cannot be set from the file.
- In the file, durations are strings with a unit (`\"2s\"`), counts are integers, switches are
  booleans and repeatable options are lists of strings. In the environment, a repeatable option
  takes its values comma-separated.
- Durations take a unit: `500ms`, `2s`, `10m`, `1h`, `7d`.
- Every value is checked at start-up, whichever of the three it came from: a value out of its
  range, a file key that is no option or a file value of the wrong type stops the server with a
  one-line error naming the flag or the key.
";

const EXAMPLE: &str = r#"```toml
listen = "0.0.0.0:4580"
credentials = "/etc/kvs/credentials.toml"
lifecycle_delay = "2s"
max_viewers = 10
message_rate_limits = true
turn_uris = ["turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp"]
quotas = "aws"

[quota.account]
DescribeSignalingChannel = 100

[quota.channel]
ConnectAsMaster = 10
```
"#;

/// docs/configuration.md.
pub fn markdown() -> String {
    let mut serve = Cli::command()
        .find_subcommand("serve")
        .cloned()
        .expect("the serve command");
    // Building fills in what the derive leaves implicit (a switch's "false" default).
    serve.build();
    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the CLI definition (crates/server/src/config.rs) by\n     \
         `{REGENERATE}`.\n     Do not edit: a test fails when this file differs from \
         the generated text. -->\n"
    );
    out.push_str(INTRO);
    out.push_str("\n## Options\n\n");
    out.push_str("| flag | environment variable | config file key | default | meaning |\n");
    out.push_str("|---|---|---|---|---|\n");
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || matches!(id, "help" | "version") {
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            flag(arg),
            env(arg),
            file_key(arg),
            default(arg),
            cell(&help(arg)),
        );
    }
    let ops: Vec<String> = QuotaOp::ALL
        .iter()
        .map(|op| format!("`{}`", op.name()))
        .collect();
    let _ = write!(
        out,
        "\nQuota operations (`--quota SCOPE.OPERATION=RATE`, SCOPE `account` or `channel`): {}.\n",
        ops.join(", ")
    );
    out.push_str("\n## Example file\n\n");
    out.push_str(EXAMPLE);
    out
}

/// `--listen <LISTEN>`, `--log-format <text|json>`, `--allow-open-non-loopback`.
fn flag(arg: &clap::Arg) -> String {
    let long = arg.get_long().unwrap_or(arg.get_id().as_str());
    let value = if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        String::new()
    } else {
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| p.get_name().to_owned())
            .collect();
        let name = if possible.is_empty() {
            arg.get_value_names()
                .and_then(|n| n.first())
                .map(ToString::to_string)
                .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
        } else {
            possible.join("|")
        };
        format!(" <{name}>")
    };
    let repeat = if matches!(arg.get_action(), ArgAction::Append) {
        " (repeatable)"
    } else {
        ""
    };
    cell(&format!("`--{long}{value}`{repeat}"))
}

fn env(arg: &clap::Arg) -> String {
    match arg.get_env() {
        Some(e) if arg.get_value_delimiter().is_some() => {
            format!("`{}` (comma-separated)", e.to_string_lossy())
        }
        Some(e) => format!("`{}`", e.to_string_lossy()),
        None => "–".to_owned(),
    }
}

fn file_key(arg: &clap::Arg) -> String {
    match arg.get_id().as_str() {
        "quota" => "`[quota.account]`, `[quota.channel]` tables".to_owned(),
        id if file_may_set(arg) => format!("`{id}` ({})", FileKind::of(arg).name()),
        _ => "–".to_owned(),
    }
}

fn default(arg: &clap::Arg) -> String {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect();
    if values.is_empty() {
        "–".to_owned()
    } else {
        values.join(", ")
    }
}

fn help(arg: &clap::Arg) -> String {
    arg.get_long_help()
        .or_else(|| arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Text fit for one table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn docs_configuration_md_is_generated_from_the_cli() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == markdown(),
            "docs/configuration.md differs from the options in crates/server/src/config.rs; \
             regenerate it with `{REGENERATE}`"
        );
    }

    #[test]
    fn every_option_has_a_row() {
        let text = markdown();
        let serve = Cli::command().find_subcommand("serve").cloned().unwrap();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            assert!(text.contains(&format!("`--{long}")), "no row for --{long}");
            if let Some(env) = arg.get_env() {
                assert!(text.contains(&format!("`{}`", env.to_string_lossy())));
            }
        }
    }

    #[test]
    fn the_example_file_is_a_valid_config() {
        let toml = EXAMPLE
            .trim_start_matches("```toml\n")
            .trim_end_matches("```\n");
        let path = std::env::temp_dir().join(format!(
            "kvs-config-reference-example-{}.toml",
            std::process::id()
        ));
        std::fs::write(&path, toml).unwrap();
        let args = ["kvs-signaling", "serve", "--config", path.to_str().unwrap()];
        let parsed = crate::config::parse_from(args.iter().map(|s| s.to_string()).collect());
        std::fs::remove_file(&path).unwrap();
        let crate::config::Command::Serve(serve) = parsed.unwrap().command;
        assert_eq!(serve.max_viewers, 10);
        assert_eq!(serve.turn_uris.len(), 2);
    }

    #[test]
    fn only_the_bare_subcommand_asks_for_the_reference() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(requested(&args(&["kvs-signaling", "config-reference"])));
        assert!(!requested(&args(&["kvs-signaling", "serve"])));
        assert!(!requested(&args(&[
            "kvs-signaling",
            "config-reference",
            "x"
        ])));
        assert!(!requested(&args(&["kvs-signaling"])));
    }
}
