//! Starting the real binary for WebSocket/data-plane tests, and small WebSocket helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_types::region::Region;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        let store: &[&str] = if extra.contains(&"--store") {
            &[]
        } else {
            &["--store", "memory"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvs-signaling"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(store)
            .args(extra)
            .env("KVS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kvs-signaling");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines.next().expect("server exited before ready").unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, port }
    }

    /// The body of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or(out)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kv(&self) -> aws_sdk_kinesisvideo::Client {
        self.kv_as("AKIDTEST", "secret", "us-east-1")
    }

    pub fn kv_as(&self, ak: &str, secret: &str, region: &str) -> aws_sdk_kinesisvideo::Client {
        let conf = aws_sdk_kinesisvideo::Config::builder()
            .behavior_version(aws_sdk_kinesisvideo::config::BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new(ak, secret, None, None, "test"))
            .retry_config(aws_sdk_kinesisvideo::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_kinesisvideo::Client::from_conf(conf)
    }

    pub fn signaling(&self) -> aws_sdk_kinesisvideosignaling::Client {
        let conf = aws_sdk_kinesisvideosignaling::Config::builder()
            .behavior_version(aws_sdk_kinesisvideosignaling::config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .build();
        aws_sdk_kinesisvideosignaling::Client::from_conf(conf)
    }

    /// Creates a channel and returns its ARN.
    pub async fn channel(&self, name: &str, ttl: i32) -> String {
        let cfg = aws_sdk_kinesisvideo::types::SingleMasterConfiguration::builder()
            .message_ttl_seconds(ttl)
            .build();
        self.kv()
            .create_signaling_channel()
            .channel_name(name)
            .single_master_configuration(cfg)
            .send()
            .await
            .unwrap()
            .channel_arn
            .unwrap()
    }

    pub fn ws_url(&self, arn: &str, client_id: Option<&str>) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
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

    pub async fn connect(&self, arn: &str, client_id: Option<&str>) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(self.ws_url(arn, client_id))
            .await
            .expect("websocket connect");
        Ws(ws)
    }

    /// Attempts a connect and returns the HTTP status of a refused handshake.
    pub async fn connect_status(&self, url: &str) -> u16 {
        match tokio_tungstenite::connect_async(url).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    /// Waits for the process to exit (after a signal sent by the test).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Ws(pub WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Ws {
    pub async fn send(&mut self, v: serde_json::Value) {
        self.0.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, t: &str) {
        self.0.send(Message::text(t.to_owned())).await.unwrap();
    }

    /// The next text frame as JSON, failing after `secs`.
    pub async fn recv(&mut self) -> serde_json::Value {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("expected a frame")
    }

    pub async fn recv_within(&mut self, d: Duration) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let next = tokio::time::timeout_at(deadline, self.0.next())
                .await
                .ok()??;
            match next {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Waits for the server to close the connection; returns the close code.
    pub async fn closed_within(&mut self, d: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(1006),
                Ok(Some(Ok(Message::Close(f)))) => return Some(f.map_or(1005, |f| f.code.into())),
                Ok(Some(Err(_))) => return Some(1006),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    url.into_client_request().unwrap()
}
