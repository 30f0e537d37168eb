//! Harness for the aws-sdk-kinesisvideo suites: starts the real `kvs-signaling` binary on a free
//! port, builds SDK clients pointed at it, and turns SDK errors into (code, HTTP status) pairs.
//!
//! Every expectation in the suites comes from docs/protocol.md and docs/behaviour.md, not from what
//! the server happens to do.
#![allow(dead_code, clippy::unwrap_used)]

use std::fmt::Debug;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_kinesisvideo::config::http::HttpResponse;
use aws_sdk_kinesisvideo::config::retry::RetryConfig;
use aws_sdk_kinesisvideo::config::{BehaviorVersion, Region};
use aws_sdk_kinesisvideo::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesisvideo::operation::RequestId;
use aws_sdk_kinesisvideo::types::{ChannelInfo, SingleMasterConfiguration, Tag};
use aws_sdk_kinesisvideo::Client;
use aws_types::sdk_config::TimeSource;

/// Default open-mode identity of the server (behaviour.md: `--account-id` default).
pub const OPEN_ACCOUNT: &str = "000000000000";
pub const REGION: &str = "us-east-1";

/// A running `kvs-signaling serve`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    stderr_tail: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `serve --listen 127.0.0.1:0` plus `extra`; `--store memory` unless `extra` chooses a
    /// store or a data directory.
    pub fn start(extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()];
        if !extra.iter().any(|a| *a == "--store" || *a == "--data-dir") {
            args.extend(["--store".into(), "memory".into()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
            .args(&args)
            .env("KVS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kvs-signaling");

        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        {
            let tail = Arc::clone(&stderr_tail);
            let mut stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = String::new();
                let _ = stderr.read_to_string(&mut buf);
                let mut t = tail.lock().unwrap();
                t.extend(buf.lines().map(str::to_owned));
            });
        }

        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<Option<u16>>();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(port) = parse_ready_line(&line) {
                        let _ = tx.send(Some(port));
                        sent = true;
                    }
                }
                // Keep draining so the server never blocks on a full pipe.
            }
            if !sent {
                let _ = tx.send(None);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "kvs-signaling {args:?} did not print its ready line ({other:?}, exit {status:?}); stderr:\n{}",
                    stderr_tail.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            port,
            stderr_tail,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client as the brief prescribes: us-east-1, static credentials, no retries.
    pub fn client(&self) -> Client {
        self.client_as("AKID", "secret", REGION)
    }

    pub fn client_as(&self, access_key: &str, secret: &str, region: &str) -> Client {
        Client::from_conf(self.config(access_key, secret, region).build())
    }

    /// A client whose clock (and so its SigV4 `X-Amz-Date`) is off by `skew_secs`.
    pub fn client_with_skew(&self, access_key: &str, secret: &str, skew_secs: i64) -> Client {
        let conf = self
            .config(access_key, secret, REGION)
            .time_source(SkewedClock(skew_secs))
            .build();
        Client::from_conf(conf)
    }

    fn config(
        &self,
        access_key: &str,
        secret: &str,
        region: &str,
    ) -> aws_sdk_kinesisvideo::config::Builder {
        aws_sdk_kinesisvideo::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new(access_key, secret, None, None, "test"))
            .retry_config(RetryConfig::disabled())
    }

    /// SIGTERM, then wait up to `timeout` for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("-TERM");
        self.wait_exit(timeout)
    }

    /// SIGKILL (`kill -KILL`): no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        assert!(
            self.wait_exit(Duration::from_secs(10)).is_some(),
            "server survived SIGKILL"
        );
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {} failed", self.pid());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr_tail.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port from `... listening on http://HOST:PORT ...` (the line may go on, e.g. with the TLS
/// listener).
fn parse_ready_line(line: &str) -> Option<u16> {
    let rest = line.split("listening on http://").nth(1)?;
    let authority = rest.split_whitespace().next()?;
    authority.rsplit(':').next()?.parse().ok()
}

#[derive(Debug)]
struct SkewedClock(i64);

impl TimeSource for SkewedClock {
    fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        if self.0 >= 0 {
            now + Duration::from_secs(self.0.unsigned_abs())
        } else {
            now - Duration::from_secs(self.0.unsigned_abs())
        }
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "kvs-sdk-{label}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn str(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a failed call looked like on the wire.
#[derive(Debug)]
pub struct Failure<E> {
    /// The modeled error as the SDK parsed it (`into_service_error()`), when it was one.
    pub err: Option<E>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub display: String,
}

/// Expects `res` to be an error and describes it; panics on success.
pub fn failure<O: Debug, E>(res: Result<O, SdkError<E, HttpResponse>>) -> Failure<E>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let e = match res {
        Ok(out) => panic!("expected an error, got Ok({out:?})"),
        Err(e) => e,
    };
    let display = format!("{}", aws_sdk_kinesisvideo::error::DisplayErrorContext(&e));
    let status = e.raw_response().map(|r| r.status().as_u16());
    let request_id = e.request_id().map(str::to_owned);
    // `into_service_error()` for the modeled error (matched by hand: its generic bound is not
    // nameable through the SDK's re-exports).
    let err = match e {
        SdkError::ServiceError(ctx) => ctx.into_err(),
        _ => {
            return Failure {
                err: None,
                code: None,
                message: None,
                status,
                request_id,
                display,
            }
        }
    };
    Failure {
        code: err.meta().code().map(str::to_owned),
        message: err.meta().message().map(str::to_owned),
        err: Some(err),
        status,
        request_id,
        display,
    }
}

/// Asserts that `res` failed with the AWS error `code` and HTTP `status` (docs/protocol.md §4.1),
/// with a request id; returns the typed error for `is_*` checks.
#[track_caller]
pub fn expect_error<O: Debug, E>(
    res: Result<O, SdkError<E, HttpResponse>>,
    code: &str,
    status: u16,
) -> E
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let f = failure(res);
    assert_eq!(
        f.code.as_deref(),
        Some(code),
        "error code (status {:?}): {}",
        f.status,
        f.display
    );
    assert_eq!(
        f.status,
        Some(status),
        "HTTP status for {code}: {}",
        f.display
    );
    assert!(
        f.request_id.as_deref().is_some_and(|r| !r.is_empty()),
        "x-amzn-RequestId missing on {code}"
    );
    f.err.unwrap()
}

/// Code only (for places where several outcomes are legal and the status follows the code).
pub fn error_code<O: Debug, E>(res: Result<O, SdkError<E, HttpResponse>>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let f = failure(res);
    f.code
        .unwrap_or_else(|| format!("<not a service error: {}>", f.display))
}

pub fn ttl(secs: i32) -> SingleMasterConfiguration {
    SingleMasterConfiguration::builder()
        .message_ttl_seconds(secs)
        .build()
}

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

pub fn tags(n: usize, prefix: &str) -> Vec<Tag> {
    (0..n).map(|i| tag(&format!("{prefix}{i}"), "v")).collect()
}

pub async fn create(kv: &Client, name: &str) -> String {
    kv.create_signaling_channel()
        .channel_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", DisplayErr(&e)))
        .channel_arn
        .expect("CreateSignalingChannel returned no ChannelARN")
}

pub async fn describe_arn(kv: &Client, arn: &str) -> ChannelInfo {
    kv.describe_signaling_channel()
        .channel_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe {arn}: {}", DisplayErr(&e)))
        .channel_info
        .expect("no ChannelInfo")
}

pub async fn describe_name(kv: &Client, name: &str) -> ChannelInfo {
    kv.describe_signaling_channel()
        .channel_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe {name}: {}", DisplayErr(&e)))
        .channel_info
        .expect("no ChannelInfo")
}

pub async fn version_of(kv: &Client, arn: &str) -> String {
    describe_arn(kv, arn).await.version.expect("no Version")
}

pub fn ttl_of(info: &ChannelInfo) -> Option<i32> {
    info.single_master_configuration
        .as_ref()
        .and_then(|c| c.message_ttl_seconds)
}

pub fn status_of(info: &ChannelInfo) -> String {
    info.channel_status
        .as_ref()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default()
}

/// Epoch milliseconds of a timestamp, rounded to the nearest millisecond: the wire carries
/// seconds as a JSON number, so `x.494` may arrive as `x.49399999`.
pub fn epoch_millis(t: &aws_smithy_types::DateTime) -> i64 {
    let nanos = i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos());
    i64::try_from((nanos + 500_000).div_euclid(1_000_000)).unwrap()
}

/// Checks the identity formats of docs/protocol.md §9.1 and returns the ARN's millisecond suffix.
#[track_caller]
pub fn assert_channel_identity(info: &ChannelInfo, name: &str, account: &str, region: &str) -> i64 {
    assert_eq!(info.channel_name.as_deref(), Some(name));
    let arn = info.channel_arn.as_deref().expect("ChannelARN");
    let prefix = format!("arn:aws:kinesisvideo:{region}:{account}:channel/{name}/");
    let millis = arn
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("ARN {arn} does not start with {prefix}"));
    assert_eq!(millis.len(), 13, "ARN suffix {millis} is not 13 digits");
    assert!(
        millis.bytes().all(|b| b.is_ascii_digit()),
        "ARN suffix {millis}"
    );
    let millis: i64 = millis.parse().unwrap();
    let created = info.creation_time.as_ref().expect("CreationTime");
    assert_eq!(
        millis,
        epoch_millis(created),
        "ARN millis must equal CreationTime x 1000"
    );
    assert_version_format(info.version.as_deref().expect("Version"));
    millis
}

#[track_caller]
pub fn assert_version_format(v: &str) {
    assert_eq!(v.len(), 20, "Version {v:?} is not 20 characters");
    assert!(
        v.bytes().all(|b| b.is_ascii_alphanumeric()),
        "Version {v:?} is not alphanumeric"
    );
}

/// Display for SDK errors with their whole source chain.
pub struct DisplayErr<'a, E>(pub &'a E);

impl<E: std::error::Error> std::fmt::Display for DisplayErr<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}",
            aws_sdk_kinesisvideo::error::DisplayErrorContext(self.0)
        )
    }
}

/// Runs `f(i)` for `i in 0..n`, at most `parallel` at a time, and returns the results in order.
pub async fn run_concurrently<T, F, Fut>(n: usize, parallel: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        let fut = f(i);
        handles.push(tokio::spawn(async move {
            let out = fut.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

pub async fn list_tags(kv: &Client, arn: &str) -> std::collections::HashMap<String, String> {
    kv.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags
        .expect("ListTagsForResource must return Tags ({} when none)")
}

pub async fn list_names(kv: &Client) -> Vec<String> {
    kv.list_signaling_channels()
        .send()
        .await
        .unwrap()
        .channel_info_list
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.channel_name.unwrap())
        .collect()
}

/// An ARN of the right shape that names no channel.
pub fn ghost_arn() -> String {
    format!("arn:aws:kinesisvideo:{REGION}:{OPEN_ACCOUNT}:channel/ghost/1712136149494")
}
