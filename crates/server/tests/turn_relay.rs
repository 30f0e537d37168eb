//! The embedded TURN relay with credentials from GetIceServerConfig, driven by the webrtc-rs
//! TURN client over UDP and over TCP: allocate, relay both ways, refuse bad or spent credentials,
//! bound allocations per channel.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

use support::Server;

struct Creds {
    port: u16,
    username: String,
    password: String,
}

async fn creds(s: &Server, arn: &str, client: &str) -> Creds {
    let out = s
        .signaling()
        .get_ice_server_config()
        .channel_arn(arn)
        .client_id(client)
        .send()
        .await
        .unwrap();
    let srv = out.ice_server_list.unwrap().remove(0);
    let uris = srv.uris.unwrap();
    assert!(uris.iter().any(|u| u.ends_with("?transport=udp")));
    assert!(uris.iter().any(|u| u.ends_with("?transport=tcp")));
    let port = uris[0]
        .split(':')
        .nth(2)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Creds {
        port,
        username: srv.username.unwrap(),
        password: srv.password.unwrap(),
    }
}

async fn client(c: &Creds, password: &str, conn: Arc<dyn Conn + Send + Sync>) -> Client {
    let addr = format!("127.0.0.1:{}", c.port);
    let client = Client::new(ClientConfig {
        stun_serv_addr: addr.clone(),
        turn_serv_addr: addr,
        username: c.username.clone(),
        password: password.to_owned(),
        realm: "kvs-signaling".into(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    client
}

/// Relays "ping" out to a plain UDP peer and "pong" back through the allocation.
async fn relay_round_trip(relay: impl Conn) {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    relay
        .send_to(b"ping", peer.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from, relay_addr);
    peer.send_to(b"pong", relay_addr).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), relay.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"pong");
}

#[tokio::test]
async fn udp_allocation_relays_with_get_ice_server_config_credentials() {
    let s = Server::start(&["--turn-listen", "127.0.0.1:0"]);
    let arn = s.channel("turn-udp", 60).await;
    let c = creds(&s, &arn, "viewer-1").await;
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let cl = client(&c, &c.password, sock).await;
    let relay = cl.allocate().await.unwrap();
    assert_eq!(relay.local_addr().unwrap().ip().to_string(), "127.0.0.1");
    relay_round_trip(relay).await;
    // Counted on the relay socket (docs/metrics.md "TURN"): one allocation, "ping" out, "pong" in.
    let metrics = s.metrics().await;
    for line in [
        "kvs_turn_allocations_total 1",
        "kvs_turn_allocations_open 1",
        r#"kvs_turn_relayed_bytes_total{direction="to_peer"} 4"#,
        r#"kvs_turn_relayed_bytes_total{direction="from_peer"} 4"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
    cl.close().await.unwrap();

    // A wrong password is refused.
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let bad = client(&c, "not-the-password", sock).await;
    assert!(bad.allocate().await.is_err());
    bad.close().await.unwrap();
}

#[tokio::test]
async fn tcp_allocation_relays_too() {
    let s = Server::start(&["--turn-listen", "127.0.0.1:0"]);
    let arn = s.channel("turn-tcp", 60).await;
    let c = creds(&s, &arn, "viewer-1").await;
    let server: SocketAddr = format!("127.0.0.1:{}", c.port).parse().unwrap();
    let conn = TcpClientConn::connect(server).await;
    let cl = client(&c, &c.password, conn).await;
    let relay = cl.allocate().await.unwrap();
    relay_round_trip(relay).await;
    cl.close().await.unwrap();
}

/// The port of the ICE server URI starting with `prefix` (e.g. "turns:").
async fn uri_port(s: &Server, arn: &str, prefix: &str) -> u16 {
    let out = s
        .signaling()
        .get_ice_server_config()
        .channel_arn(arn)
        .send()
        .await
        .unwrap();
    let uris = out.ice_server_list.unwrap().remove(0).uris.unwrap();
    let uri = uris.iter().find(|u| u.starts_with(prefix)).unwrap();
    uri.rsplit(':')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// TURN over TLS (docs/turn.md): on --turn-tls-listen, and on the HTTPS port without ALPN (the
/// KVS C SDK's way) and with RFC 7443's `stun.turn`; an allocation relays both ways each time.
#[tokio::test]
async fn tls_allocation_relays_on_its_own_port_and_on_the_https_port() {
    let dir = std::env::temp_dir().join(format!("kvs-turn-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = Server::start(&[
        "--turn-listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let arn = s.channel("turn-tls", 60).await;
    let c = creds(&s, &arn, "viewer-1").await;
    let https = uri_port(&s, &arn, "turns:").await;
    let ca = dir.join("tls").join("ca.pem");
    let alpns: [&[&[u8]]; 2] = [&[], &[b"stun.turn"]];
    for alpn in alpns {
        let server: SocketAddr = format!("127.0.0.1:{https}").parse().unwrap();
        let conn = TcpClientConn::connect_tls(server, &ca, alpn).await;
        let at_tls = Creds {
            port: https,
            username: c.username.clone(),
            password: c.password.clone(),
        };
        let cl = client(&at_tls, &c.password, conn).await;
        let relay = cl.allocate().await.unwrap();
        relay_round_trip(relay).await;
        cl.close().await.unwrap();
    }
    drop(s);
    let s = Server::start(&[
        "--turn-listen",
        "127.0.0.1:0",
        "--turn-tls-listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let arn = s.channel("turn-tls", 60).await;
    let c = creds(&s, &arn, "viewer-1").await;
    let port = uri_port(&s, &arn, "turns:").await;
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conn = TcpClientConn::connect_tls(server, &ca, &[]).await;
    let at_tls = Creds {
        port,
        username: c.username.clone(),
        password: c.password.clone(),
    };
    let cl = client(&at_tls, &c.password, conn).await;
    let relay = cl.allocate().await.unwrap();
    relay_round_trip(relay).await;
    cl.close().await.unwrap();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn rotated_secret_invalidates_old_credentials() {
    let dir = std::env::temp_dir().join(format!("kvs-turn-rot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "first").unwrap();
    let s = Server::start(&[
        "--turn-listen",
        "127.0.0.1:0",
        "--turn-secret-file",
        file.to_str().unwrap(),
    ]);
    let arn = s.channel("turn-rot", 60).await;
    let old = creds(&s, &arn, "v").await;
    std::fs::write(&file, "second").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let cl = client(&old, &old.password, sock).await;
    assert!(
        cl.allocate().await.is_err(),
        "old credentials after rotation"
    );
    cl.close().await.unwrap();
    let new = creds(&s, &arn, "v").await;
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let cl = client(&new, &new.password, sock).await;
    assert!(cl.allocate().await.is_ok());
    cl.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn allocations_are_bounded_per_channel() {
    let s = Server::start(&[
        "--turn-listen",
        "127.0.0.1:0",
        "--turn-max-allocations",
        "1",
    ]);
    let arn = s.channel("turn-bound", 60).await;
    let other = s.channel("turn-other", 60).await;
    let c = creds(&s, &arn, "a").await;
    let first = client(
        &c,
        &c.password,
        Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
    )
    .await;
    let _relay = first.allocate().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let c2 = creds(&s, &arn, "b").await;
    let second = client(
        &c2,
        &c2.password,
        Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
    )
    .await;
    assert!(
        second.allocate().await.is_err(),
        "second allocation on a full channel"
    );
    // Another channel is not affected.
    let c3 = creds(&s, &other, "c").await;
    let third = client(
        &c3,
        &c3.password,
        Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
    )
    .await;
    assert!(third.allocate().await.is_ok());
    for c in [first, second, third] {
        c.close().await.unwrap();
    }
}

/// TURN over TCP or TLS from the client side: STUN messages and ChannelData framed on one stream.
struct TcpClientConn {
    server: SocketAddr,
    local: SocketAddr,
    rd: tokio::sync::Mutex<Box<dyn AsyncRead + Send + Unpin>>,
    wr: tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl TcpClientConn {
    async fn connect(server: SocketAddr) -> Arc<Self> {
        let stream = TcpStream::connect(server).await.unwrap();
        let local = stream.local_addr().unwrap();
        Self::over(stream, server, local)
    }

    /// TLS to `server`, its certificate checked against `ca` for "localhost", offering `alpn`.
    async fn connect_tls(server: SocketAddr, ca: &std::path::Path, alpn: &[&[u8]]) -> Arc<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).unwrap();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(server).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        Self::over(tls, server, local)
    }

    fn over<S>(stream: S, server: SocketAddr, local: SocketAddr) -> Arc<Self>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        Arc::new(Self {
            server,
            local,
            rd: tokio::sync::Mutex::new(Box::new(rd)),
            wr: tokio::sync::Mutex::new(Box::new(wr)),
        })
    }
}

#[async_trait]
impl Conn for TcpClientConn {
    async fn connect(&self, _: SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut rd = self.rd.lock().await;
        let mut h = [0u8; 4];
        rd.read_exact(&mut h).await?;
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let (body, pad) = if h[0] >> 6 == 0 {
            (16 + len, 0)
        } else {
            (len, (4 - len % 4) % 4)
        };
        buf[..4].copy_from_slice(&h);
        rd.read_exact(&mut buf[4..4 + body]).await?;
        let mut skip = [0u8; 3];
        rd.read_exact(&mut skip[..pad]).await?;
        Ok((4 + body, self.server))
    }
    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.send_to(buf, self.server).await
    }
    async fn send_to(&self, buf: &[u8], _: SocketAddr) -> webrtc_util::Result<usize> {
        let mut frame = buf.to_vec();
        if buf[0] >> 6 == 1 {
            frame.resize(buf.len().div_ceil(4) * 4, 0);
        }
        let mut wr = self.wr.lock().await;
        wr.write_all(&frame).await?;
        wr.flush().await?;
        Ok(buf.len())
    }
    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.server)
    }
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
