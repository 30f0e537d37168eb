//! One keep-alive HTTP/1.1 connection (hyper's low-level client: no pool, no retries), sending
//! signed restJson1 POSTs one at a time.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::sign::{Signed, Signer};

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    addr: SocketAddr,
    /// Times the server closed the connection between two requests (moto's werkzeug server
    /// closes after every response) and it was reopened before the next one.
    pub reopened: u64,
}

/// What came back: status and body, or why nothing did.
pub enum Reply {
    Ok { status: u16, body: Bytes },
    Timeout,
    Io(String),
}

impl Conn {
    pub async fn connect(addr: SocketAddr, host: &str) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: HeaderValue::from_str(host)?,
            addr,
            reopened: 0,
        })
    }

    /// POSTs `body` to `path` with the given signature; waits at most `timeout`.
    pub async fn post(
        &mut self,
        path: &str,
        body: Bytes,
        signed: &Signed,
        timeout: Duration,
    ) -> Reply {
        match tokio::time::timeout(timeout, self.post_inner(path, body, signed)).await {
            Err(_) => Reply::Timeout,
            Ok(Err(e)) => Reply::Io(format!("{e:#}")),
            Ok(Ok((status, body))) => Reply::Ok { status, body },
        }
    }

    async fn post_inner(
        &mut self,
        path: &str,
        body: Bytes,
        signed: &Signed,
    ) -> anyhow::Result<(u16, Bytes)> {
        if self.sender.ready().await.is_err() {
            // Closed by the server after the previous response: not an error of this request.
            let host = self.host.to_str()?.to_string();
            let reopened = self.reopened + 1;
            *self = Conn::connect(self.addr, &host).await?;
            self.reopened = reopened;
            self.sender.ready().await?;
        }
        let req = Request::post(path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("x-amz-date", signed.amz_date.as_str())
            .header(AUTHORIZATION, signed.authorization.as_str())
            .body(Full::new(body))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A connection plus its signer, for setup calls that must succeed.
pub struct Client {
    pub conn: Conn,
    pub signer: Signer,
}

impl Client {
    pub async fn connect(addr: SocketAddr, signer: Signer) -> anyhow::Result<Self> {
        let conn = Conn::connect(addr, &signer.host).await?;
        Ok(Self { conn, signer })
    }

    /// POSTs a JSON value; a non-2xx status is an error carrying the body.
    pub async fn call(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let bytes = Bytes::from(serde_json::to_vec(body)?);
        let signed = self.signer.sign_post(path, &bytes, SystemTime::now());
        match self
            .conn
            .post(path, bytes, &signed, Duration::from_secs(30))
            .await
        {
            Reply::Ok { status, body } if (200..300).contains(&status) => {
                if body.is_empty() {
                    Ok(serde_json::Value::Null)
                } else {
                    Ok(serde_json::from_slice(&body)?)
                }
            }
            Reply::Ok { status, body } => {
                anyhow::bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body))
            }
            Reply::Timeout => anyhow::bail!("{path}: timed out"),
            Reply::Io(e) => anyhow::bail!("{path}: {e}"),
        }
    }

    /// CreateSignalingChannel; returns the ARN.
    pub async fn create_channel(&mut self, name: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                "/createSignalingChannel",
                &serde_json::json!({ "ChannelName": name }),
            )
            .await?;
        v["ChannelARN"]
            .as_str()
            .map(str::to_string)
            .context("CreateSignalingChannel answered no ChannelARN")
    }

    /// DescribeSignalingChannel by ARN; returns the Version.
    pub async fn channel_version(&mut self, arn: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                "/describeSignalingChannel",
                &serde_json::json!({ "ChannelARN": arn }),
            )
            .await?;
        v["ChannelInfo"]["Version"]
            .as_str()
            .map(str::to_string)
            .context("DescribeSignalingChannel answered no ChannelInfo.Version")
    }
}

/// A name suffix unique to this process and moment, so repeated runs against one store never
/// collide.
pub fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos % 0xffff_ffff)
}
