//! The embedded TURN relay (`--turn-listen`, default port 3478 on the listen host), built on the
//! webrtc-rs `turn` crate: over UDP and TCP, over TLS (`--turn-tls-listen`, and on the HTTPS
//! listener, see `listener::tls_route`), and STUN Binding only on `--stun-listen`.
//!
//! Credentials are the ones GetIceServerConfig hands out (TURN REST style, see
//! `data_plane::ice`): the username is `<expiry>:<base64 label naming the channel>`, the password
//! the HMAC of the current shared secret, so a rotated secret invalidates old credentials here
//! too. Allocations are bounded per channel: once a channel holds `max_per_channel`, a client
//! that does not already own one of them is refused.
//!
//! The turn crate serves packet connections; TURN over TCP and TLS (RFC 5766 §2.1) frames the
//! same messages on a stream, so [`stream::StreamMux`] turns accepted streams into one packet
//! connection keyed by the client's address ([`accept`] takes them from the listeners).

pub mod accept;
pub mod stream;
pub mod stun_only;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::net::{TcpListener, UdpSocket};
use turn::auth::{generate_auth_key, AuthHandler};
use turn::relay::relay_static::RelayAddressGeneratorStatic;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;
use webrtc_util::vnet::net::Net;
use webrtc_util::Conn;

use crate::data_plane::ice::IceCredentials;
use crate::listener::admission::Admission;
use accept::Security;
use stream::StreamMux;

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
    /// How long a stream client may take to open (TLS handshake) and send its first message.
    pub first_message_timeout: Duration,
    /// The TLS configuration for TURN over TLS (the server's certificate, no ALPN), when the
    /// server has one: `--turn-tls-listen`, TLS on the TCP port, and the HTTPS listener's share.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `--turn-tls-listen`.
    pub tls_listen: Option<SocketAddr>,
    /// `--stun-listen`.
    pub stun_listen: Option<SocketAddr>,
    /// `--turn-udp-listen`: another UDP address for TURN.
    pub udp_listen: Option<SocketAddr>,
    /// Allocations and relayed bytes, counted on the relay sockets (`/metrics`).
    pub metrics: Arc<crate::metrics::turn::TurnMetrics>,
}

pub struct Turn {
    server: Arc<Server>,
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    /// `--turn-tls-listen`'s bound address.
    pub tls_addr: Option<SocketAddr>,
    /// `--stun-listen`'s bound address.
    pub stun_addr: Option<SocketAddr>,
    /// `--turn-udp-listen`'s bound address.
    pub extra_udp_addr: Option<SocketAddr>,
    /// What the HTTPS listener hands TURN-over-TLS connections to, when TLS is configured.
    pub intake: Option<crate::listener::tls_route::TurnIntake>,
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
    // Every stream client (TCP, TLS on any listener) goes through one mux: one conn for the
    // server, so a client is known by its address whichever listener it came in on.
    let mux = StreamMux::new(tcp_addr, opts.first_message_timeout);
    let acceptor = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let stream_listener = |listener, security| {
        accept::accept_streams(
            listener,
            Arc::clone(&opts.admission),
            Arc::clone(&mux),
            security,
            opts.first_message_timeout,
        )
    };
    let mut tasks = vec![stream_listener(
        tcp,
        acceptor.clone().map_or(Security::Plain, Security::Sniff),
    )];
    let mut tls_addr = None;
    if let (Some(addr), Some(acceptor)) = (opts.tls_listen, &acceptor) {
        let listener = crate::listener::bind(&[addr], opts.backlog)
            .with_context(|| format!("binding TURN TLS {addr}"))?;
        tls_addr = Some(listener.local_addr()?);
        tasks.push(stream_listener(listener, Security::Tls(acceptor.clone())));
    }
    let mut conn_configs = vec![
        conn_config(Arc::new(udp), &opts),
        conn_config(Arc::clone(&mux) as Arc<dyn Conn + Send + Sync>, &opts),
    ];
    let mut extra_udp_addr = None;
    if let Some(addr) = opts.udp_listen {
        let sock = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding TURN UDP {addr}"))?;
        extra_udp_addr = Some(sock.local_addr()?);
        conn_configs.push(conn_config(Arc::new(sock), &opts));
    }
    let mut stun_addr = None;
    if let Some(addr) = opts.stun_listen {
        let sock = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding STUN UDP {addr}"))?;
        stun_addr = Some(sock.local_addr()?);
        conn_configs.push(conn_config(Arc::new(stun_only::StunOnly(sock)), &opts));
    }
    let intake = opts
        .tls
        .clone()
        .map(|config| crate::listener::tls_route::TurnIntake {
            config,
            mux: Arc::clone(&mux),
        });
    let server = Server::new(ServerConfig {
        conn_configs,
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
    tasks.push(watcher);
    Ok(Turn {
        server,
        udp_addr,
        tcp_addr,
        tls_addr,
        stun_addr,
        extra_udp_addr,
        intake,
        tasks,
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
