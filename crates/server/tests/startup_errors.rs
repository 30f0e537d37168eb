//! Start-up refusals on the real binary (docs/behaviour.md "Start-up errors"): each case exits
//! with its status and prints exactly one line on stderr, `kvs-signaling: error: WHAT: WHY
//! (FIX)`, and never the ready line.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir() -> Dir {
    let d = std::env::temp_dir().join(format!("kvs-startup-errors-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// Runs `serve` with `args`; it must exit by itself. Returns (status, stdout, stderr).
fn run(args: &[String]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
        .arg("serve")
        .args(args)
        .env("KVS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kvs-signaling {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_refusal_is_one_line_with_its_fix_and_exit_status() {
    let d = dir();
    let p = |name: &str| d.0.join(name).display().to_string();
    // A port taken by someone else.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    std::fs::write(p("bad.toml"), "listen = \n").unwrap();
    std::fs::write(p("creds.toml"), "[[credentials]]\naccess_key_id = \n").unwrap();
    std::fs::write(p("garbage.pem"), "garbage\n").unwrap();
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let base = ["--store", "memory", "--embedded-turn", "false"];
    let with_base = |v: &[&str]| {
        let mut args = s(&base);
        args.extend(s(v));
        if !v.contains(&"--listen") {
            args.extend(s(&["--listen", "127.0.0.1:0"]));
        }
        args
    };
    // (case, arguments, exit status, the whole stderr line)
    let cases: Vec<(&str, Vec<String>, i32, String)> = vec![
        (
            "port already taken",
            with_base(&["--listen", &taken_addr]),
            1,
            format!(
                "kvs-signaling: error: cannot listen on {taken_addr}: address already in use \
                 (another kvs-signaling? choose another with --listen, or port 0 for any free port)"
            ),
        ),
        (
            "config file that is not TOML",
            with_base(&["--config", &p("bad.toml")]),
            2,
            format!(
                "kvs-signaling: error: the config file {} is not valid TOML: line 1, column 10: \
                 string values must be quoted, expected literal string (its keys are the flags' \
                 names in snake_case, e.g. lifecycle_delay = \"2s\")",
                p("bad.toml")
            ),
        ),
        (
            "config file missing",
            with_base(&["--config", &p("nope.toml")]),
            2,
            format!(
                "kvs-signaling: error: cannot read the config file {}: no such file or directory \
                 (check the path given to --config or KVS_CONFIG)",
                p("nope.toml")
            ),
        ),
        (
            "flag value out of shape",
            with_base(&["--lifecycle-delay", "soon"]),
            2,
            "kvs-signaling: error: invalid value 'soon' for '--lifecycle-delay \
             <LIFECYCLE_DELAY>': expected number at 0 (write durations with a unit: 500ms, 2s, \
             10m) (see kvs-signaling serve --help)"
                .to_owned(),
        ),
        (
            "misspelt flag",
            with_base(&["--listne", "x"]),
            2,
            "kvs-signaling: error: unexpected argument '--listne' found (a similar argument \
             exists: '--listen'; see kvs-signaling serve --help)"
                .to_owned(),
        ),
        (
            "credentials file missing",
            with_base(&["--credentials", &p("none.toml")]),
            1,
            format!(
                "kvs-signaling: error: cannot read the credentials file {}: no such file or \
                 directory (check the path given to --credentials)",
                p("none.toml")
            ),
        ),
        (
            "credentials file invalid",
            with_base(&["--credentials", &p("creds.toml")]),
            1,
            format!(
                "kvs-signaling: error: the credentials file {} is not valid: line 2, column 17: \
                 string values must be quoted, expected literal string (it holds \
                 [[credentials]] tables of access_key_id, secret_access_key and account_id \
                 strings; see docs/behaviour.md)",
                p("creds.toml")
            ),
        ),
        (
            "certificate missing",
            with_base(&[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                &p("none.pem"),
                "--tls-key",
                &p("garbage.pem"),
            ]),
            1,
            format!(
                "kvs-signaling: error: cannot read the TLS certificate {}: no such file or \
                 directory (check the path given to --tls-cert)",
                p("none.pem")
            ),
        ),
        (
            "certificate not PEM",
            with_base(&[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                &p("garbage.pem"),
                "--tls-key",
                &p("garbage.pem"),
            ]),
            1,
            "kvs-signaling: error: cannot use the TLS certificate and key: the TLS certificate \
             file holds no certificate (give --tls-cert a PEM certificate chain and --tls-key \
             the PEM private key that goes with it, or neither for a generated certificate)"
                .to_owned(),
        ),
    ];
    for (case, args, status, line) in cases {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, Some(status), "{case}: exit status; stderr: {stderr}");
        assert!(
            !stdout.contains("listening on"),
            "{case}: must not serve: {stdout}"
        );
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("kvs-signaling: "))
            .collect();
        assert_eq!(errors, [line.as_str()], "{case}: stderr: {stderr}");
        // Nothing else but log lines (a warning about the credentials file's mode, say).
        assert!(
            stderr.lines().all(|l| l.starts_with("kvs-signaling: ")
                || l.contains(" WARN ")
                || l.contains(" ERROR ")),
            "{case}: stray lines on stderr: {stderr}"
        );
    }
    drop(taken);
}
