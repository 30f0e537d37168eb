//! One TLS port for the API and TURN (docs/turn.md "TURN over TLS"): behind a firewall that
//! lets only TCP 443 out, the HTTPS + WSS listener also serves TURN over TLS. The ClientHello
//! decides, read before a configuration is chosen (rustls's `Acceptor`):
//! - ALPN offering `h2` or `http/1.1`: the API;
//! - ALPN offering neither (e.g. `stun.turn`, RFC 7443): TURN;
//! - no ALPN (the KVS C SDK sends none, nor do Node's `https` and `ws` by default): the
//!   handshake completes with the API's configuration and the first decrypted byte decides:
//!   a STUN message starts with two zero bits (RFC 5389 §6), an HTTP request with a letter.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::admission::Ticket;
use crate::turn_relay::stream::StreamMux;

/// Where the HTTPS listener sends TURN: the relay's stream mux and its TLS configuration (the
/// same certificate, no ALPN).
#[derive(Clone)]
pub struct TurnIntake {
    pub config: Arc<rustls::ServerConfig>,
    pub mux: Arc<StreamMux>,
}

/// Where a connection goes, from its ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Api,
    Turn,
    /// No ALPN: the first decrypted byte decides ([`by_first_byte`]).
    FirstByte,
}

/// The decision on the ClientHello's ALPN list (`None`: no ALPN extension).
pub fn route<'a>(alpn: Option<impl IntoIterator<Item = &'a [u8]>>) -> Route {
    match alpn {
        None => Route::FirstByte,
        Some(protocols) => {
            let mut any = false;
            for p in protocols {
                any = true;
                if p == b"h2" || p == b"http/1.1" {
                    return Route::Api;
                }
            }
            // An empty list is malformed (RFC 7301 §3.1); treated like no ALPN.
            if any {
                Route::Turn
            } else {
                Route::FirstByte
            }
        }
    }
}

/// After a handshake without ALPN: TURN when the first byte opens a STUN message (first two
/// bits 00), else the API.
pub fn by_first_byte(b: u8) -> Route {
    if b >> 6 == 0 {
        Route::Turn
    } else {
        Route::Api
    }
}

/// Accepts one TLS connection on the HTTPS listener within `timeout` (ClientHello, handshake and,
/// without ALPN, the first byte): `Some` when it is for the API (with its ticket back), `None`
/// when it went to TURN or failed. A `shed` connection (over a cap, let in only to be answered
/// 503) is closed if it is for TURN, which has no refusal to send before a request.
pub async fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    api: Arc<rustls::ServerConfig>,
    turn: &TurnIntake,
    timeout: Duration,
    shed: bool,
) -> Option<(Rewind<TlsStream<TcpStream>>, Ticket)> {
    let opened = tokio::time::timeout(timeout, async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
        let decision = route(start.client_hello().alpn());
        let config = if decision == Route::Turn {
            Arc::clone(&turn.config)
        } else {
            api
        };
        let mut tls = start.into_stream(config).await?;
        let mut first = None;
        let decision = match decision {
            Route::FirstByte => {
                let b = tls.read_u8().await?;
                first = Some(b);
                by_first_byte(b)
            }
            d => d,
        };
        io::Result::Ok((decision, Rewind { first, inner: tls }))
    })
    .await;
    match opened {
        Ok(Ok((Route::Turn, stream))) => {
            if !shed {
                turn.mux.serve(stream, peer, ticket);
            }
            None
        }
        Ok(Ok((_, stream))) => Some((stream, ticket)),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// A stream with the byte read to route it put back in front.
pub struct Rewind<S> {
    first: Option<u8>,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(inner: S) -> Self {
        Self { first: None, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0 {
            if let Some(b) = self.first.take() {
                buf.put_slice(&[b]);
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_routes_http_to_the_api_and_the_rest_to_turn() {
        type Case = (&'static str, Option<&'static [&'static [u8]]>, Route);
        let cases: &[Case] = &[
            ("no ALPN (KVS C SDK)", None, Route::FirstByte),
            ("empty list", Some(&[]), Route::FirstByte),
            ("h2", Some(&[b"h2"]), Route::Api),
            ("http/1.1", Some(&[b"http/1.1"]), Route::Api),
            ("browser", Some(&[b"h2", b"http/1.1"]), Route::Api),
            ("http later", Some(&[b"stun.turn", b"http/1.1"]), Route::Api),
            ("stun.turn (RFC 7443)", Some(&[b"stun.turn"]), Route::Turn),
            ("webrtc", Some(&[b"webrtc", b"c-webrtc"]), Route::Turn),
            ("http/1.0 only", Some(&[b"http/1.0"]), Route::Turn),
            ("h2c is not h2", Some(&[b"h2c"]), Route::Turn),
            ("case matters", Some(&[b"HTTP/1.1"]), Route::Turn),
        ];
        for (case, alpn, want) in cases {
            assert_eq!(route(alpn.map(|l| l.iter().copied())), *want, "{case}");
        }
    }

    #[test]
    fn without_alpn_stun_goes_to_turn_and_http_to_the_api() {
        for (case, first, want) in [
            ("STUN request (Allocate 0x0003)", 0x00, Route::Turn),
            ("STUN indication class bit", 0x01, Route::Turn),
            ("max 00 byte", 0x3f, Route::Turn),
            ("ChannelData (not a first message)", 0x40, Route::Api),
            ("GET", b'G', Route::Api),
            ("POST", b'P', Route::Api),
            ("HTTP/2 preface", b'P', Route::Api),
            ("high byte", 0xff, Route::Api),
        ] {
            assert_eq!(by_first_byte(first), want, "{case}");
        }
    }

    #[tokio::test]
    async fn rewind_puts_the_first_byte_back() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"ET /")
            .await
            .unwrap();
        drop(a);
        let mut r = Rewind {
            first: Some(b'G'),
            inner: b,
        };
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "GET /");
    }
}
