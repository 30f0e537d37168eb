//! Start-up refusals as one line each (docs/behaviour.md "Start-up errors"): what could not be
//! done, why, and what to change, e.g. `kvs-signaling: error: cannot listen on
//! 127.0.0.1:4580: address already in use (another kvs-signaling? choose another with --listen,
//! or port 0 for any free port)`.
//!
//! The place that knows what was being done (binding `--listen`, reading `--credentials`)
//! returns a [`Refusal`]; `main.rs` prints whatever error reaches it with [`one_line`], so an
//! error without a refusal of its own is still one line (its chain joined, TOML's multi-line
//! snippets folded to `line L, column C: …`).

use std::fmt;
use std::io;

/// What could not be done at start-up, why, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub what: String,
    pub why: String,
    pub fix: String,
}

impl Refusal {
    pub fn new(what: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            why: why.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.what, self.why, self.fix)
    }
}

impl std::error::Error for Refusal {}

/// The error as one line: its [`Refusal`] if it carries one, else its chain joined with `: `
/// and folded onto one line.
pub fn one_line(e: &anyhow::Error) -> String {
    if let Some(r) = e.chain().find_map(|c| c.downcast_ref::<Refusal>()) {
        return r.to_string();
    }
    let parts: Vec<String> = e
        .chain()
        .map(|c| match c.downcast_ref::<toml::de::Error>() {
            Some(t) => toml_reason(t, None),
            None => fold(&c.to_string()),
        })
        .collect();
    parts.join(": ")
}

/// Whitespace (newlines included) collapsed to single spaces.
fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An I/O failure as a reader would say it, without the `(os error N)`.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "no interface of this machine has that address".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::IsADirectory => "it is a directory".into(),
        io::ErrorKind::InvalidData => "it is not UTF-8 text".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

/// The I/O error in `e`'s chain, if any.
pub fn io_cause(e: &anyhow::Error) -> Option<&io::Error> {
    e.chain().find_map(|c| c.downcast_ref::<io::Error>())
}

/// A TOML parse error as `line L, column C: MESSAGE` (its span read against `text` when given;
/// the message alone otherwise), instead of the crate's multi-line snippet.
pub fn toml_reason(e: &toml::de::Error, text: Option<&str>) -> String {
    let message = fold(e.message());
    match (e.span(), text) {
        (Some(span), Some(text)) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        _ => message,
    }
}

/// Refusal to bind `flag`'s address `addr`, with the fix for the usual causes.
pub fn cannot_listen(flag: &str, addr: &str, e: &anyhow::Error) -> Refusal {
    let what = format!("cannot listen on {addr}");
    let Some(io) = io_cause(e) else {
        return Refusal::new(what, one_line(e), format!("check {flag} HOST:PORT"));
    };
    let fix = match io.kind() {
        io::ErrorKind::AddrInUse => format!(
            "another kvs-signaling? choose another with {flag}, or port 0 for any free port"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("ports below 1024 need privileges: choose a port above 1023 with {flag}")
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("use one of this machine's addresses, or 127.0.0.1, with {flag}")
        }
        _ => format!("check {flag} HOST:PORT"),
    };
    Refusal::new(what, io_reason(io), fix)
}

/// Refusal to read the file `path` that `flag` names.
pub fn cannot_read(what: &str, flag: &str, path: &std::path::Path, e: &io::Error) -> Refusal {
    let fix = match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "make it readable by the user running kvs-signaling".to_owned()
        }
        _ => format!("check the path given to {flag}"),
    };
    Refusal::new(
        format!("cannot read {what} {}", path.display()),
        io_reason(e),
        fix,
    )
}

/// A clap refusal (a flag, an environment variable or a config file value) as one line: its
/// first line without clap's `error: `, with its tip if it gives one.
pub fn clap_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .trim();
    let tip = lines.find_map(|l| l.trim().strip_prefix("tip: ").map(str::to_owned));
    match tip {
        Some(tip) => format!("{first} ({tip}; see kvs-signaling serve --help)"),
        None => format!("{first} (see kvs-signaling serve --help)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_anywhere_in_the_chain_is_the_line() {
        let e = anyhow::Error::new(Refusal::new("cannot do x", "because", "do y"))
            .context("outer context");
        assert_eq!(one_line(&e), "cannot do x: because (do y)");
    }

    #[test]
    fn other_errors_are_folded_onto_one_line() {
        let e = anyhow::anyhow!("inner\n  detail").context("outer");
        assert_eq!(one_line(&e), "outer: inner detail");
    }

    #[test]
    fn toml_errors_say_line_and_column() {
        let text = "a = 1\nlisten = \n";
        let Err(e) = toml::from_str::<toml::Table>(text) else {
            panic!("parsed")
        };
        let reason = toml_reason(&e, Some(text));
        assert!(reason.starts_with("line 2, column 10: "), "{reason}");
        assert!(!reason.contains('\n'));
    }

    #[test]
    fn io_reasons_drop_the_os_error_number() {
        let e = io::Error::from(io::ErrorKind::AddrInUse);
        assert_eq!(io_reason(&e), "address already in use");
        let e = io::Error::from_raw_os_error(111);
        assert!(!io_reason(&e).contains("os error"));
    }
}
