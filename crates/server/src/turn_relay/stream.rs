//! TURN over streams (TCP, and TLS over TCP) as the one packet connection the `turn` crate
//! serves: the crate reads and writes datagrams, RFC 5766 §2.1 frames the same messages on a
//! stream. [`StreamMux`] takes every accepted stream (plain, or the TLS session on top of one),
//! reads it as framed STUN messages and ChannelData (§11.5: padded to 4 bytes on streams), feeds
//! them to the server tagged with the client's address, and writes replies back to the stream of
//! that address. The framing is the part the crate leaves to its user; parsing stays in the crate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use webrtc_util::Conn;

use crate::listener::admission::Ticket;

/// How long a stream client may stay silent between messages: an allocation lives at most
/// 10 minutes without a refresh (RFC 5766 §2.2), so a client silent for longer has nothing left.
const IDLE: Duration = Duration::from_secs(600);
/// How long one message may take to arrive once its first bytes did.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on frames queued per client and for the server; beyond it the client's frames wait
/// (backpressure on its socket) and replies to it are dropped like lost UDP datagrams.
const QUEUE: usize = 256;
const MAX_FRAME: usize = 65_535 + 20;

/// What a stream client may be: a TCP socket, or a TLS session over one.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

type Writers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// Many stream clients as one packet connection (see the module doc).
pub struct StreamMux {
    local: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    to_server: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    first_message: Duration,
}

impl StreamMux {
    /// `local` is the address reported to the server as this connection's own; a client has
    /// `first_message` to send its first message.
    pub fn new(local: SocketAddr, first_message: Duration) -> Arc<Self> {
        let (to_server, rx) = mpsc::channel(QUEUE);
        Arc::new(Self {
            local,
            incoming: tokio::sync::Mutex::new(rx),
            to_server,
            writers: Arc::default(),
            first_message,
        })
    }

    /// Serves one client's stream in its own task; `ticket` (its connection slot) is held until
    /// the stream ends.
    pub fn serve<S: Stream>(&self, stream: S, peer: SocketAddr, ticket: Ticket) {
        let to_server = self.to_server.clone();
        let writers = Arc::clone(&self.writers);
        let first = self.first_message;
        tokio::spawn(async move {
            serve_stream(stream, peer, to_server, writers, first).await;
            drop(ticket);
        });
    }
}

async fn serve_stream<S: Stream>(
    stream: S,
    peer: SocketAddr,
    to_server: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    first_message: Duration,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    writers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(peer, out_tx);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            // A TLS session buffers: flush each frame so replies are not held back.
            if wr.write_all(&frame).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
    });
    let mut header = [0u8; 4];
    let mut wait = first_message;
    loop {
        // Silent too long (before the first message, or between two): the client is gone.
        match tokio::time::timeout(wait, rd.read_exact(&mut header)).await {
            Ok(Ok(_)) => wait = IDLE,
            _ => break,
        }
        let Some((body, pad)) = frame_len(header) else {
            break;
        };
        let mut frame = vec![0u8; 4 + body];
        frame[..4].copy_from_slice(&header);
        // The rest of a message that started must follow promptly (no byte-a-minute client).
        let rest = async {
            rd.read_exact(&mut frame[4..]).await?;
            let mut skip = [0u8; 3];
            rd.read_exact(&mut skip[..pad]).await
        };
        if !matches!(tokio::time::timeout(FRAME_TIMEOUT, rest).await, Ok(Ok(_))) {
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

/// From a frame's first four bytes: the bytes that follow them in the message, and the padding
/// after it; `None` for what is neither a STUN message (first two bits 00) nor ChannelData
/// (01, channel numbers 0x4000..), or is too long.
fn frame_len(header: [u8; 4]) -> Option<(usize, usize)> {
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let (body, pad) = match header[0] >> 6 {
        0 => (16 + len, 0),
        1 => (len, (4 - len % 4) % 4),
        _ => return None,
    };
    (4 + body <= MAX_FRAME).then_some((body, pad))
}

#[async_trait]
impl Conn for StreamMux {
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
    use super::frame_len;

    #[test]
    fn frames_are_stun_messages_or_padded_channel_data() {
        for (header, want) in [
            // A STUN message: 20-byte header, then its length in attributes.
            ([0x00, 0x03, 0x00, 0x08], Some((24, 0))),
            // ChannelData of 5 bytes: padded to 8 on a stream.
            ([0x40, 0x00, 0x00, 0x05], Some((5, 3))),
            ([0x7f, 0xff, 0x00, 0x04], Some((4, 0))),
            // Neither (first bits 10 or 11); a TLS record (0x16) is told apart before framing
            // starts (see `accept`).
            ([0x80, 0x00, 0x00, 0x00], None),
            ([0xc0, 0x00, 0x00, 0x00], None),
        ] {
            assert_eq!(frame_len(header), want, "{header:02x?}");
        }
    }
}
