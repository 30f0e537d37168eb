//! Harness for in-process tests: the server assembled by `App::build` (as `main.rs` does) and run
//! in the test's own runtime with a [`ManualClock`], so channel lifecycles and message TTLs are
//! stepped by the test instead of slept through (issue 7 item 6; docs/design.md §5.8).
//!
//! Only the injected clock is manual. SigV4 signing-time checks read the real clock, so the
//! manual clock starts at the real time and is only moved forward.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_kinesisvideo::config::retry::RetryConfig;
use aws_sdk_kinesisvideo::config::{BehaviorVersion, Region};
use kvs_core::clock::{Clock, ManualClock, SystemClock};
use kvs_signaling::app::{self, App, Listeners};
use kvs_signaling::config::{self, Command};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long `run` may take to return once the shutdown future completes.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(15);

/// A server running in this test's runtime. Stop it with [`Server::shutdown`]; if the test
/// panics first, the runtime's end aborts it.
pub struct Server {
    pub port: u16,
    pub clock: Arc<ManualClock>,
    /// The assembled state (the recorder, the fragment store), for tests that record.
    pub state: kvs_signaling::state::SharedState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// `serve --listen 127.0.0.1:0 --store memory --embedded-turn false` plus `extra` (which
    /// may choose another store), in open mode, with a manual clock starting at the real time.
    pub async fn start(extra: &[&str]) -> Self {
        let mut args: Vec<String> = [
            "kvs-signaling",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--embedded-turn",
            "false",
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect();
        if !extra.contains(&"--store") {
            args.extend(["--store".to_owned(), "memory".to_owned()]);
        }
        // The memory store writes nothing here; named so that nothing could land in the
        // working directory.
        let data_dir = std::env::temp_dir().join(format!("kvs-inproc-{}", std::process::id()));
        args.extend(["--data-dir".to_owned(), data_dir.display().to_string()]);
        let Command::Serve(cfg) = config::parse_from(args).unwrap().command;
        let clock = Arc::new(ManualClock::new(SystemClock.now_millis()));
        let cfg = cfg.validate().unwrap();
        let listeners = Listeners::bind(&cfg.config).await.unwrap();
        let port = listeners.http.local_addr().unwrap().port();
        let app = App::build(cfg, Arc::clone(&clock) as Arc<dyn Clock>, &listeners)
            .await
            .unwrap();
        let state = Arc::clone(app.state());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::run(listeners, app, async move {
            let _ = stopped.await;
        }));
        Self {
            port,
            clock,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An SDK client: us-east-1, static credentials, no retries.
    pub fn kv(&self) -> aws_sdk_kinesisvideo::Client {
        let conf = aws_sdk_kinesisvideo::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new("AKIDINPROC", "secret", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_kinesisvideo::Client::from_conf(conf)
    }

    /// The signaling connect URL; open mode accepts it without a signature.
    pub fn ws_url(&self, arn: &str, client_id: Option<&str>) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut url = format!(
            "ws://127.0.0.1:{}/?X-Amz-ChannelARN={}",
            self.port,
            enc(arn)
        );
        if let Some(c) = client_id {
            url.push_str(&format!("&X-Amz-ClientId={}", enc(c)));
        }
        url
    }

    pub async fn connect_ws(
        &self,
        arn: &str,
        client_id: Option<&str>,
    ) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let url = self.ws_url(arn, client_id);
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .expect("websocket connect timed out")
        .expect("websocket connect");
        ws
    }

    /// `GET path` over HTTP/1.1; the whole response, head and body.
    pub async fn http_get(&self, path: &str) -> String {
        let get = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).await.unwrap();
            out
        };
        tokio::time::timeout(Duration::from_secs(5), get)
            .await
            .expect("GET timed out")
    }

    /// The value of the unlabelled sample `name` in `GET /metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let body = self.http_get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in /metrics:\n{body}"))
    }

    /// Completes the shutdown future and waits (bounded) for `run` to return cleanly.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(SHUTDOWN_BOUND, task)
            .await
            .expect("the server did not stop within the bound")
            .expect("the server task panicked")
            .expect("the server returned an error");
    }
}
