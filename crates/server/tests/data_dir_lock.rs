//! One process per data directory (docs/behaviour.md, "One process per data directory"), on
//! the real binary: a second `kvs-signaling serve` on a data directory in use exits at start-up
//! with exit code 1 and one line naming the directory and the holder (its pid and listen
//! address), and never serves; after `kill -9` of the holder a new server starts on the same
//! directory (the OS lock died with its process; the stale `LOCK` file keeps nobody out).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn fresh_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kvs-data-dir-lock-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn spawn(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", "sqlite"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--embedded-turn", "false"])
        .env("KVS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvs-signaling")
}

/// A server that printed its ready line; killed with SIGKILL when dropped.
struct Running {
    child: Child,
    /// `127.0.0.1:PORT` from the ready line.
    addr: String,
}

impl Running {
    fn start(dir: &Path) -> Self {
        let mut child = spawn(dir);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => Self { child, addr },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not print its ready line: {:?}",
                    child.wait()
                );
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /ready`'s status code.
    fn ready_status(&self) -> u16 {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {response:?}"))
    }

    fn kill_9(mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a server that is expected to exit at start-up; returns its status, stdout and stderr.
/// A server that is still running after the start-up timeout is killed and fails the test.
fn run_to_exit(dir: &Path) -> (ExitStatus, String, String) {
    let mut child = spawn(dir);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "a second server on a data directory in use did not exit; stdout: {}",
                out.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

#[test]
fn a_second_server_on_one_data_dir_exits_naming_the_holder_and_kill_9_frees_it() {
    let dir = fresh_dir();
    let first = Running::start(&dir);
    assert_eq!(first.ready_status(), 200);

    let (status, stdout, stderr) = run_to_exit(&dir);
    assert_eq!(status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(
        !stdout.contains("listening on"),
        "the second server must not serve: {stdout}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kvs-signaling: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line; stderr: {stderr}");
    let line = lines[0];
    assert!(
        line.contains(&dir.display().to_string()),
        "names the directory: {line}"
    );
    assert!(
        line.contains(&format!("pid {},", first.pid())),
        "names the holder's pid {}: {line}",
        first.pid()
    );
    assert!(
        line.contains(&format!("listening on http://{}", first.addr)),
        "names the holder's address {}: {line}",
        first.addr
    );
    // The refused start-up changed nothing for the holder.
    assert_eq!(first.ready_status(), 200);

    first.kill_9();
    let third = Running::start(&dir);
    assert_eq!(third.ready_status(), 200);
    let lock = std::fs::read_to_string(dir.join(kvs_sqlite::LOCK_FILE)).unwrap();
    assert!(
        lock.starts_with(&format!("pid {},", third.pid())),
        "the lock file names the new holder: {lock}"
    );
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
}
