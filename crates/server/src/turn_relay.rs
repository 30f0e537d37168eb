//! The embedded TURN relay (`--turn-listen`, default port 3478 on the listen host), built on the
//! webrtc-rs `turn` crate, over UDP and TCP.
//!
//! Credentials are the ones GetIceServerConfig hands out (TURN REST style, see
//! `data_plane::ice`): the username is `<expiry>:<base64 label naming the channel>`, the password
//! the HMAC of the current shared secret, so a rotated secret invalidates old credentials here
//! too. Allocations are bounded per channel: once a channel holds `max_per_channel`, a client
//! that does not already own one of them is refused.
//!
//! The turn crate serves packet connections; TURN over TCP (RFC 5766 §2.1) frames the same
//! messages on a stream, so [`TcpMux`] turns accepted TCP connections into one packet
//! connection keyed by the client's address.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use turn::auth::{generate_auth_key, AuthHandler};
use turn::relay::relay_static::RelayAddressGeneratorStatic;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;
use webrtc_util::vnet::net::Net;
use webrtc_util::Conn;

use crate::data_plane::ice::IceCredentials;
use crate::listener::admission::{Admission, Admit};

pub const REALM: &str = "kvs-signaling";

#[derive(Debug, Clone)]
pub struct TurnOptions {
    /// Where to listen (UDP and TCP, same port).
    pub listen: SocketAddr,
    /// The address put in relayed candidates: the one peers can reach.
    pub relay_ip: IpAddr,
    /// The local address relay sockets bind to.
    pub relay_bind: IpAddr,
    pub max_per_channel: usize,
    /// Backlog of the TCP listener.
    pub backlog: u32,
    /// The node's connection caps, shared with the HTTP listeners.
    pub admission: Arc<Admission>,
    /// How long a TCP client may take to send its first message.
    pub first_message_timeout: Duration,
    /// Allocations and relayed bytes, counted on the relay sockets (`/metrics`).
    pub metrics: Arc<crate::metrics::turn::TurnMetrics>,
}

/// How long a TCP client may stay silent between messages: an allocation lives at most
/// 10 minutes without a refresh (RFC 5766 §2.2), so a client silent for longer has nothing left.
const TCP_IDLE: Duration = Duration::from_secs(600);
/// How long one message may take to arrive once its first bytes did.
const TCP_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Turn {
    server: Arc<Server>,
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Turn {
    pub async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.server.close().await;
    }
}

/// Which channel a TURN REST username belongs to (the label is `v1:<ChannelARN>[:<ClientId>]`).
fn channel_of(username: &str) -> Option<String> {
    let (_, label) = username.split_once(':')?;
    let raw = STANDARD.decode(label).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let rest = text.strip_prefix("v1:")?;
    // The ARN itself contains ':'; the client id, if any, follows the channel's creation millis.
    let arn_end = rest.find("/").and_then(|slash| {
        rest[slash..]
            .match_indices('/')
            .nth(1)
            .map(|(i, _)| slash + i)
    })?;
    let tail = &rest[arn_end + 1..];
    let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
    Some(rest[..arn_end + 1 + digits].to_owned())
}

/// Allocations per channel, by client address, refreshed from the servers.
type Occupancy = Arc<Mutex<HashMap<String, HashSet<SocketAddr>>>>;

struct RestAuth {
    ice: Arc<IceCredentials>,
    occupancy: Occupancy,
    max_per_channel: usize,
}

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let (expiry, _) = username
            .split_once(':')
            .ok_or_else(|| turn::Error::Other("not a time-limited username".into()))?;
        let expiry: u64 = expiry
            .parse()
            .map_err(|_| turn::Error::Other("not a time-limited username".into()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if expiry < now {
            return Err(turn::Error::Other("expired credentials".into()));
        }
        let channel = channel_of(username)
            .ok_or_else(|| turn::Error::Other("credentials name no channel".into()))?;
        {
            let occ = self
                .occupancy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(clients) = occ.get(&channel) {
                if clients.len() >= self.max_per_channel && !clients.contains(&src_addr) {
                    return Err(turn::Error::Other(format!(
                        "channel has the maximum of {} allocations",
                        self.max_per_channel
                    )));
                }
            }
        }
        let password = self.ice.password_for(username);
        Ok(generate_auth_key(username, realm, &password))
    }
}

fn conn_config(conn: Arc<dyn Conn + Send + Sync>, opts: &TurnOptions) -> ConnConfig {
    ConnConfig {
        conn,
        relay_addr_generator: Box::new(crate::metrics::turn::Counted::new(
            RelayAddressGeneratorStatic {
                relay_address: opts.relay_ip,
                address: opts.relay_bind.to_string(),
                net: Arc::new(Net::new(None)),
            },
            Arc::clone(&opts.metrics),
        )),
    }
}

pub async fn start(opts: TurnOptions, ice: Arc<IceCredentials>) -> anyhow::Result<Turn> {
    let (udp, tcp) = bind_pair(opts.listen, opts.backlog).await?;
    let udp_addr = udp.local_addr()?;
    let tcp_addr = tcp.local_addr()?;
    let occupancy: Occupancy = Arc::default();
    let auth = Arc::new(RestAuth {
        ice,
        occupancy: Arc::clone(&occupancy),
        max_per_channel: opts.max_per_channel,
    });
    let (mux, accept_task) =
        TcpMux::start(tcp, Arc::clone(&opts.admission), opts.first_message_timeout);
    let server = Server::new(ServerConfig {
        conn_configs: vec![conn_config(Arc::new(udp), &opts), conn_config(mux, &opts)],
        realm: REALM.to_owned(),
        auth_handler: auth,
        channel_bind_timeout: Duration::from_secs(0),
        alloc_close_notify: None,
    })
    .await
    .context("starting the TURN server")?;
    let server = Arc::new(server);
    let watcher = tokio::spawn(watch_allocations(
        Arc::clone(&server),
        occupancy,
        opts.max_per_channel,
    ));
    Ok(Turn {
        server,
        udp_addr,
        tcp_addr,
        tasks: vec![accept_task, watcher],
    })
}

/// UDP and TCP on the same port. With port 0 the UDP bind picks it, and another process may
/// hold that port for TCP: try again with a fresh one.
async fn bind_pair(listen: SocketAddr, backlog: u32) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if listen.port() == 0 { 32 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(listen)
            .await
            .with_context(|| format!("binding TURN UDP {listen}"))?;
        let addr = udp.local_addr()?;
        match crate::listener::bind(&[addr], backlog) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e.context(format!("binding TURN TCP {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("binding TURN on {listen}")))
}

/// Refreshes who holds allocations on which channel, and trims a channel that went over its
/// bound through a race (requests authenticated before the refresh saw the newcomers).
async fn watch_allocations(server: Arc<Server>, occupancy: Occupancy, max: usize) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Ok(infos) = server.get_allocations_info(None).await else {
            return;
        };
        let mut by_channel: HashMap<String, Vec<(SocketAddr, String)>> = HashMap::new();
        for (tuple, info) in infos {
            if let Some(ch) = channel_of(&info.username) {
                by_channel
                    .entry(ch)
                    .or_default()
                    .push((tuple.src_addr, info.username.clone()));
            }
        }
        let mut over = Vec::new();
        let snapshot: HashMap<String, HashSet<SocketAddr>> = by_channel
            .iter()
            .map(|(ch, v)| {
                if v.len() > max {
                    over.extend(v[max..].iter().map(|(_, u)| u.clone()));
                }
                (ch.clone(), v.iter().map(|(a, _)| *a).collect())
            })
            .collect();
        *occupancy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot;
        for username in over {
            tracing::warn!(%username, "TURN allocations over the per-channel bound; closing");
            let _ = server.delete_allocations_by_username(username).await;
        }
    }
}

/// Many TURN-over-TCP clients as one packet connection: each accepted stream is read as framed
/// STUN messages and ChannelData (RFC 5766 §11.5: padded to 4 bytes on streams) and fed to the
/// server tagged with the client's address; replies go back to the stream of that address.
pub struct TcpMux {
    local: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    writers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
}

/// Bound on frames queued per TCP client and for the server; beyond it the client's frames wait
/// (backpressure on its socket) and replies to it are dropped like lost UDP datagrams.
const TCP_QUEUE: usize = 256;
const MAX_FRAME: usize = 65_535 + 20;

impl TcpMux {
    fn start(
        listener: TcpListener,
        admission: Arc<Admission>,
        first_message: Duration,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(TCP_QUEUE);
        let mux = Arc::new(Self {
            local,
            incoming: tokio::sync::Mutex::new(rx),
            writers: Arc::default(),
        });
        let writers = Arc::clone(&mux.writers);
        let task = tokio::spawn(async move {
            let mut spare = crate::listener::Spare::open();
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        crate::listener::on_accept_error(&listener, &mut spare, e, false).await;
                        continue;
                    }
                };
                // Over a cap: closed (TURN has no error to send before the first request).
                let Admit::Serve(ticket) = admission.admit(peer.ip()) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let writers = Arc::clone(&writers);
                let tx = tx.clone();
                tokio::spawn(async move {
                    serve_tcp(stream, peer, tx, writers, first_message).await;
                    drop(ticket);
                });
            }
        });
        (mux, task)
    }
}

async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    to_server: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
    first_message: Duration,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(TCP_QUEUE);
    writers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(peer, out_tx);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut header = [0u8; 4];
    let mut wait = first_message;
    loop {
        // Silent too long (before the first message, or between two): the client is gone.
        match tokio::time::timeout(wait, rd.read_exact(&mut header)).await {
            Ok(Ok(_)) => wait = TCP_IDLE,
            _ => break,
        }
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        // STUN messages start with 0b00, ChannelData with 0b01 (channel numbers 0x4000..).
        let (body, pad) = match header[0] >> 6 {
            0 => (16 + len, 0),
            1 => (len, (4 - len % 4) % 4),
            _ => break,
        };
        if 4 + body > MAX_FRAME {
            break;
        }
        let mut frame = vec![0u8; 4 + body];
        frame[..4].copy_from_slice(&header);
        // The rest of a message that started must follow promptly (no byte-a-minute client).
        let rest = async {
            rd.read_exact(&mut frame[4..]).await?;
            let mut skip = [0u8; 3];
            rd.read_exact(&mut skip[..pad]).await
        };
        if !matches!(
            tokio::time::timeout(TCP_FRAME_TIMEOUT, rest).await,
            Ok(Ok(_))
        ) {
            break;
        }
        if to_server.send((frame, peer)).await.is_err() {
            break;
        }
    }
    writers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&peer);
    writer.abort();
}

#[async_trait]
impl Conn for TcpMux {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("not supported".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut rx = self.incoming.lock().await;
        let (frame, peer) = rx
            .recv()
            .await
            .ok_or_else(|| webrtc_util::Error::Other("closed".into()))?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, peer))
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("not connected".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let tx = self
            .writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&target)
            .cloned();
        let Some(tx) = tx else {
            // The client went away; like a datagram to nowhere.
            return Ok(buf.len());
        };
        let mut frame = buf.to_vec();
        if buf.first().is_some_and(|b| b >> 6 == 1) {
            frame.resize(buf.len().div_ceil(4) * 4, 0);
        }
        let _ = tx.try_send(frame);
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(max: usize) -> (RestAuth, Arc<IceCredentials>) {
        let ice = Arc::new(IceCredentials::new("secret".into(), 300));
        let auth = RestAuth {
            ice: Arc::clone(&ice),
            occupancy: Arc::default(),
            max_per_channel: max,
        };
        (auth, ice)
    }

    const ARN: &str = "arn:aws:kinesisvideo:us-east-1:111122223333:channel/cam-1/1712136149494";

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn credentials_are_checked_against_expiry_and_channel() {
        let (auth, ice) = auth(50);
        let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (user, pass) = ice.issue(now(), ARN, Some("v"));
        let key = auth.auth_handle(&user, REALM, src).unwrap();
        assert_eq!(key, generate_auth_key(&user, REALM, &pass));
        // Issued 301 s ago with a 300 s lifetime: expired.
        let (old, _) = ice.issue(now() - 301, ARN, Some("v"));
        assert!(auth.auth_handle(&old, REALM, src).is_err());
        assert!(auth.auth_handle("no-expiry", REALM, src).is_err());
        let stranger = format!("{}:{}", now() + 60, STANDARD.encode("not a channel"));
        assert!(auth.auth_handle(&stranger, REALM, src).is_err());
    }

    #[test]
    fn a_full_channel_refuses_newcomers_only() {
        let (auth, ice) = auth(1);
        let holder: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let newcomer: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        auth.occupancy
            .lock()
            .unwrap()
            .insert(ARN.to_string(), HashSet::from([holder]));
        let (user, _) = ice.issue(now(), ARN, None);
        assert!(auth.auth_handle(&user, REALM, holder).is_ok());
        assert!(auth.auth_handle(&user, REALM, newcomer).is_err());
    }

    #[test]
    fn usernames_name_their_channel() {
        let arn = "arn:aws:kinesisvideo:us-east-1:111122223333:channel/cam-1/1712136149494";
        let with_client = format!(
            "1700000000:{}",
            STANDARD.encode(format!("v1:{arn}:viewer-7"))
        );
        assert_eq!(channel_of(&with_client).as_deref(), Some(arn));
        let bare = format!("1700000000:{}", STANDARD.encode(format!("v1:{arn}")));
        assert_eq!(channel_of(&bare).as_deref(), Some(arn));
        assert_eq!(channel_of("1700000000:bm9wZQ=="), None);
        assert_eq!(channel_of("plain"), None);
    }
}
