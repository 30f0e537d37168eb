//! Accepting TURN stream clients: the plain TCP port (`--turn-listen`) and the TURN-over-TLS
//! port (`--turn-tls-listen`), counted in the node's connection caps like every listener.
//!
//! The plain TCP port also takes TLS when the server has a certificate: the KVS C SDK speaks
//! TLS on every TCP TURN connection, `turn:…?transport=tcp` included, so a client whose first
//! byte opens a TLS handshake record (0x16; a STUN message starts with 0x00 or 0x01) gets TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::stream::StreamMux;
use crate::listener::admission::{Admission, Admit, Ticket};

/// The first byte of a TLS record carrying a handshake message (RFC 8446 §5.1).
const TLS_HANDSHAKE: u8 = 0x16;

/// What a TURN stream listener speaks.
#[derive(Clone)]
pub enum Security {
    /// TURN over TCP only.
    Plain,
    /// TURN over TCP, or over TLS when the first byte opens a handshake.
    Sniff(TlsAcceptor),
    /// TURN over TLS only.
    Tls(TlsAcceptor),
}

/// Accepts connections until aborted; each gets `handshake` to open (first byte, TLS
/// handshake), then the mux's own first-message and idle timeouts.
pub fn accept_streams(
    listener: TcpListener,
    admission: Arc<Admission>,
    mux: Arc<StreamMux>,
    security: Security,
    handshake: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut spare = crate::listener::Spare::open();
        loop {
            let (tcp, peer) = match listener.accept().await {
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
            let _ = tcp.set_nodelay(true);
            let mux = Arc::clone(&mux);
            let security = security.clone();
            tokio::spawn(open(tcp, peer, ticket, mux, security, handshake));
        }
    })
}

async fn open(
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    mux: Arc<StreamMux>,
    security: Security,
    handshake: Duration,
) {
    let acceptor = match security {
        Security::Plain => return mux.serve(tcp, peer, ticket),
        Security::Tls(a) => a,
        Security::Sniff(a) => {
            let mut first = [0u8; 1];
            match tokio::time::timeout(handshake, tcp.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => a,
                Ok(Ok(1)) => return mux.serve(tcp, peer, ticket),
                _ => return,
            }
        }
    };
    match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => mux.serve(tls, peer, ticket),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TURN TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TURN TLS handshake timed out"),
    }
}
