//! SigV4 over HTTP/2: a request signed with `host` in SignedHeaders carries the host as the
//! `:authority` pseudo-header, not a Host header (curl, browsers and HTTP/2 proxies do this).
//! The server runs in-process, assembled by `App::build` like `main.rs` does, on its TLS listener
//! (ALPN h2) with a local CA made in a temporary data dir.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kvs_core::clock::SystemClock;
use kvs_signaling::app::{self, App, Listeners};
use kvs_signaling::config::{self, Command};

const AK: &str = "AKIDH2TEST";
const SECRET: &str = "h2-secret";

fn amz_date(t: SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

struct H2 {
    send: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    authority: String,
}

impl H2 {
    async fn connect(port: u16, ca_pem: &[u8]) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        Self {
            send,
            authority: format!("localhost:{port}"),
        }
    }

    /// POSTs `body` to `path`, signed with `host` (the authority) and `x-amz-date`.
    async fn call(&mut self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let authority = self.authority.clone();
        self.call_signed_for(&authority, path, body).await
    }

    /// Like `call`, but signs as if the host were `signed_authority`.
    async fn call_signed_for(
        &mut self,
        signed_authority: &str,
        path: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let date = amz_date(SystemTime::now());
        let headers = vec![
            ("host".to_owned(), signed_authority.to_owned()),
            ("x-amz-date".to_owned(), date.clone()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let req = kvs_sigv4::HttpRequest {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let auth = kvs_sigv4::sign_headers(
            &req,
            AK,
            SECRET,
            "us-east-1",
            "kinesisvideo",
            &date,
            &["host", "x-amz-date"],
        );
        // No Host header: over HTTP/2 the authority travels in the URI (`:authority`).
        let request = hyper::Request::post(format!("https://{}{path}", self.authority))
            .header("x-amz-date", &date)
            .header("content-type", "application/json")
            .header("authorization", auth)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        assert!(request.headers().get("host").is_none());
        let resp = self.send.send_request(request).await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_over_http2_are_verified_against_the_authority() {
    let dir = std::env::temp_dir().join(format!("kvs-h2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("credentials.toml");
    std::fs::write(
        &creds,
        format!(
            "[[credentials]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SECRET}\"\n\
             account_id = \"123456789012\"\n"
        ),
    )
    .unwrap();
    let args: Vec<String> = [
        "kvs-signaling",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--store",
        "memory",
        "--embedded-turn",
        "false",
        "--data-dir",
        dir.to_str().unwrap(),
        "--credentials",
        creds.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let Command::Serve(cfg) = config::parse_from(args).unwrap().command;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = cfg.validate().unwrap();
    let listeners = Listeners::bind(&cfg.config).await.unwrap();
    let port = listeners
        .tls
        .as_ref()
        .unwrap()
        .listener
        .local_addr()
        .unwrap()
        .port();
    let ca = std::fs::read(listeners.tls_ca.clone().unwrap()).unwrap();
    let app = App::build(cfg, Arc::new(SystemClock), &listeners)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::run(listeners, app, async move {
        let _ = stopped.await;
    }));

    let mut h2 = H2::connect(port, &ca).await;
    let (status, body) = h2
        .call("/createSignalingChannel", r#"{"ChannelName":"over-h2"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let arn = body["ChannelARN"].as_str().unwrap().to_owned();
    assert!(arn.contains(":123456789012:channel/over-h2/"));
    let (status, body) = h2
        .call("/describeSignalingChannel", r#"{"ChannelName":"over-h2"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ChannelInfo"]["ChannelARN"], arn.as_str());

    // A signature made for another host is still refused.
    let (status, body) = h2
        .call_signed_for(
            &format!("otherhost:{port}"),
            "/describeSignalingChannel",
            r#"{"ChannelName":"over-h2"}"#,
        )
        .await;
    assert_eq!(status, 403, "{body}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
