//! Accepting connections (docs/behaviour.md "Connections"): sockets bound with a listen backlog
//! sized for bursts, connection caps per node and per source address ([`admission`]), a TLS
//! handshake bounded in time, every connection's timeouts enforced on its socket
//! ([`watched`]), and file-descriptor exhaustion answered by shedding new connections while
//! the existing ones keep being served. A TLS listener shared with the TURN relay hands TURN
//! connections over after reading their ClientHello ([`tls_route`]).
//!
//! hyper serves each connection (HTTP/1.1 with upgrades, and HTTP/2); axum's own `serve` has
//! none of these knobs, so the accept loop is here.

pub mod admission;
pub mod canned;
mod service;
pub mod tls_route;

pub use service::PeerAddr;
pub mod watched;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use admission::{Admission, Admit};
use service::Watching;
use watched::{ConnWatch, Timeouts, Watched};

/// Most request headers accepted (beyond: 431).
const MAX_HEADERS: usize = 100;
/// Largest request head accepted, request line included (beyond: 431).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Over-cap connections served at once to answer probes (see [`admission`]).
pub const SHED_SLOTS: usize = 32;
/// A shed connection gets at most this long to send its one request.
const SHED_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection settings of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    pub timeouts: Timeouts,
    pub handshake_timeout: Duration,
}

/// Binds `addrs` (the first that works) with `backlog` pending connections.
pub fn bind(addrs: &[SocketAddr], backlog: u32) -> anyhow::Result<TcpListener> {
    let mut last = None;
    for addr in addrs {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }?;
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(*addr).and_then(|()| socket.listen(backlog)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(anyhow::Error::from(e).context(format!("binding {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address to bind")))
}

/// What a TLS listener serves: the API, and TURN over TLS when the relay shares the port
/// ([`tls_route`]).
#[derive(Clone)]
pub struct TlsSetup {
    pub acceptor: TlsAcceptor,
    pub config: Arc<rustls::ServerConfig>,
    pub turn: Option<tls_route::TurnIntake>,
}

/// One listener's accept loop; returns when `stop` completes. Connections it started are
/// watched by `graceful`.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsSetup>,
    router: Router,
    cfg: ConnConfig,
    admission: Arc<Admission>,
    graceful: &GracefulShutdown,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut spare = Spare::open();
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => return,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                on_accept_error(&listener, &mut spare, e, tls.is_none()).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let admit = admission.admit(peer.ip());
        let (ticket, shed) = match admit {
            Admit::Serve(t) => (t, None),
            Admit::Shed(t, refusal) => (t, Some(refusal)),
            Admit::Refuse(refusal) => {
                if tls.is_none() {
                    let _ = tcp.try_write(&refusal.to_bytes());
                }
                continue;
            }
        };
        let tls = tls.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let evicted = ticket.evicted();
        let conn = async move {
            let mut timeouts = cfg.timeouts;
            if shed.is_some() {
                timeouts.header = timeouts.header.min(SHED_HEADER_TIMEOUT);
            }
            let watch = ConnWatch::new(timeouts);
            match tls {
                None => {
                    serve(
                        Watched::new(tcp, watch.clone(), ticket),
                        watch,
                        router,
                        shed,
                        watcher,
                        peer,
                    )
                    .await
                }
                Some(TlsSetup {
                    config,
                    turn: Some(turn),
                    ..
                }) => {
                    let accepted = tls_route::accept(
                        tcp,
                        peer,
                        ticket,
                        config,
                        &turn,
                        cfg.handshake_timeout,
                        shed.is_some(),
                    );
                    if let Some((stream, ticket)) = accepted.await {
                        serve(
                            Watched::new(stream, watch.clone(), ticket),
                            watch,
                            router,
                            shed,
                            watcher,
                            peer,
                        )
                        .await
                    }
                }
                Some(TlsSetup { acceptor, .. }) => {
                    let handshake =
                        tokio::time::timeout(cfg.handshake_timeout, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            serve(
                                Watched::new(stream, watch.clone(), ticket),
                                watch,
                                router,
                                shed,
                                watcher,
                                peer,
                            )
                            .await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        };
        tokio::spawn(async move {
            match evicted {
                // A shed connection ends when a newer one takes its slot.
                Some(signal) => {
                    tokio::select! {
                        () = conn => {}
                        () = signal.notified() => {}
                    }
                }
                None => conn.await,
            }
        });
    }
}

async fn serve<IO>(
    io: Watched<IO>,
    watch: Arc<ConnWatch>,
    router: Router,
    shed: Option<canned::Refusal>,
    watcher: Watcher,
    peer: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(None)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(shed.is_none());
    builder.http2().max_header_list_size(MAX_HEAD_BYTES as u32);
    let svc = TowerToHyperService::new(Watching {
        router,
        watch,
        shed,
        peer,
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A file descriptor kept in reserve: when the process runs out, it is given up for a moment
/// to accept the waiting connection and close it (with a refusal on the plain listener), so a
/// full backlog does not make every client wait for its SYN retries.
pub struct Spare(Option<std::fs::File>);

impl Spare {
    pub fn open() -> Self {
        Self(std::fs::File::open("/dev/null").ok())
    }
}

/// Handles a failed `accept`: out of descriptors, the spare one takes the waiting connection
/// (refused with a 503 when `http`) and closes it; other errors are logged and slowed down.
pub async fn on_accept_error(
    listener: &TcpListener,
    spare: &mut Spare,
    e: std::io::Error,
    http: bool,
) {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    match e.raw_os_error() {
        Some(EMFILE | ENFILE) => {
            metrics_fd_exhausted();
            if spare.0.take().is_some() {
                if let Ok((tcp, _)) = listener.accept().await {
                    if http {
                        let _ = tcp.try_write(&canned::NODE_FULL.to_bytes());
                    }
                    drop(tcp);
                }
                *spare = Spare::open();
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                *spare = Spare::open();
            }
        }
        // The peer gave up before we took it: nothing to do.
        _ if e.kind() == std::io::ErrorKind::ConnectionAborted => {}
        _ => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

static FD_EXHAUSTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Accepts that failed for want of descriptors since start.
pub fn fd_exhausted() -> u64 {
    FD_EXHAUSTED.load(std::sync::atomic::Ordering::Relaxed)
}

fn metrics_fd_exhausted() {
    FD_EXHAUSTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if LAST.swap(now, std::sync::atomic::Ordering::Relaxed) != now {
        tracing::warn!("out of file descriptors: shedding new connections");
    }
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does) and returns it.
pub fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024),
    }
}

/// The TLS setup for a rustls configuration, and the TURN relay sharing the port if any.
pub fn tls_setup(
    config: Arc<rustls::ServerConfig>,
    turn: Option<tls_route::TurnIntake>,
) -> TlsSetup {
    TlsSetup {
        acceptor: TlsAcceptor::from(Arc::clone(&config)),
        config,
        turn,
    }
}

/// Context for errors binding a listener.
pub fn bind_named(what: &str, addrs: &[SocketAddr], backlog: u32) -> anyhow::Result<TcpListener> {
    bind(addrs, backlog).with_context(|| format!("binding {what}"))
}
