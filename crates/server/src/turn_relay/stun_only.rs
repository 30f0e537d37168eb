//! `--stun-listen`: an extra UDP address where the relay answers STUN Binding requests and
//! nothing else. The KVS C SDK samples and JS SDK examples put
//! `stun:stun.kinesisvideo.REGION.amazonaws.com:443` first in their ICE servers; mapping that name
//! to this server (DNS or /etc/hosts) with `--stun-listen 0.0.0.0:443` serves them unmodified.
//!
//! The `turn` crate answers Binding without credentials on every connection it serves; this
//! wrapper hands it only Binding requests, so no allocation can be made on this address. Only
//! the message type and magic cookie are looked at (the framing); the crate parses the rest.

use std::net::SocketAddr;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use webrtc_util::Conn;

/// STUN's magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// Binding request: method 0x001, class request.
const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];

/// Whether a datagram is a STUN Binding request (by its header).
pub fn is_binding_request(datagram: &[u8]) -> bool {
    datagram.len() >= 20 && datagram[..2] == BINDING_REQUEST && datagram[4..8] == MAGIC_COOKIE
}

/// A UDP socket that passes only Binding requests up.
pub struct StunOnly(pub UdpSocket);

#[async_trait]
impl Conn for StunOnly {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(self.0.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.0.recv_from(buf).await?;
            if is_binding_request(&buf[..n]) {
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.0.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        Ok(self.0.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.0.local_addr()?)
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
    use super::is_binding_request;

    #[test]
    fn only_binding_requests_pass() {
        let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        binding.extend_from_slice(&[7; 12]);
        assert!(is_binding_request(&binding));
        let mut allocate = binding.clone();
        allocate[1] = 0x03;
        assert!(!is_binding_request(&allocate));
        let mut no_cookie = binding.clone();
        no_cookie[4] = 0;
        assert!(!is_binding_request(&no_cookie));
        assert!(!is_binding_request(&binding[..19]));
    }
}
