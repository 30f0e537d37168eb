//! The embedded TURN relay's allocations and relayed bytes (docs/metrics.md "TURN").
//!
//! The `turn` crate has no hook for either, but it asks a [`RelayAddressGenerator`] for each
//! allocation's relay socket and relays every peer datagram through that socket: [`Counted`]
//! wraps the generator, and [`CountedConn`] the sockets it hands out. Bytes are payload bytes
//! to and from peers (the client side's TURN framing is not counted).

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use super::declare;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

/// `kvs_turn_allocations_total`, `kvs_turn_allocations_open`, `kvs_turn_relayed_bytes_total`.
#[derive(Debug)]
pub struct TurnMetrics {
    allocations_total: Counter,
    allocations: Gauge,
    bytes: Family<DirectionLabel, Counter>,
    to_peer: Counter,
    from_peer: Counter,
}

impl Default for TurnMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl TurnMetrics {
    pub fn new() -> Self {
        let bytes: Family<DirectionLabel, Counter> = Family::default();
        let of = |direction| bytes.get_or_create_owned(&DirectionLabel { direction });
        Self {
            allocations_total: Counter::default(),
            allocations: Gauge::default(),
            to_peer: of("to_peer"),
            from_peer: of("from_peer"),
            bytes,
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        declare(
            registry,
            "kvs_turn_allocations",
            "TURN allocations made by the embedded relay (each one relay socket)",
            self.allocations_total.clone(),
        );
        declare(
            registry,
            "kvs_turn_allocations_open",
            "TURN allocations of the embedded relay open now",
            self.allocations.clone(),
        );
        declare(
            registry,
            "kvs_turn_relayed_bytes",
            "Payload bytes the embedded TURN relay sent to peers (to_peer) and received from them (from_peer)",
            self.bytes.clone(),
        );
    }

    /// Totals, for tests and logs: (allocations made, open now, bytes to peers, from peers).
    pub fn totals(&self) -> (u64, i64, u64, u64) {
        (
            self.allocations_total.get(),
            self.allocations.get(),
            self.to_peer.get(),
            self.from_peer.get(),
        )
    }
}

/// A relay address generator whose sockets are counted.
pub struct Counted<G> {
    inner: G,
    metrics: Arc<TurnMetrics>,
}

impl<G> Counted<G> {
    pub fn new(inner: G, metrics: Arc<TurnMetrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl<G: RelayAddressGenerator + Send + Sync> RelayAddressGenerator for Counted<G> {
    fn validate(&self) -> Result<(), turn::Error> {
        self.inner.validate()
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let (conn, addr) = self.inner.allocate_conn(use_ipv4, requested_port).await?;
        Ok((
            Arc::new(CountedConn::new(conn, Arc::clone(&self.metrics))),
            addr,
        ))
    }
}

/// An allocation's relay socket: counts what goes through it, and is open until dropped (the
/// allocation and its reading task let go of it when the allocation ends).
pub struct CountedConn {
    inner: Arc<dyn Conn + Send + Sync>,
    metrics: Arc<TurnMetrics>,
}

impl CountedConn {
    fn new(inner: Arc<dyn Conn + Send + Sync>, metrics: Arc<TurnMetrics>) -> Self {
        metrics.allocations_total.inc();
        metrics.allocations.inc();
        Self { inner, metrics }
    }
}

impl Drop for CountedConn {
    fn drop(&mut self) {
        self.metrics.allocations.dec();
    }
}

fn count<T>(
    counter: &Counter,
    out: webrtc_util::Result<T>,
    n: impl Fn(&T) -> usize,
) -> webrtc_util::Result<T> {
    if let Ok(v) = &out {
        counter.inc_by(u64::try_from(n(v)).unwrap_or(u64::MAX));
    }
    out
}

#[async_trait]
impl Conn for CountedConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        count(&self.metrics.from_peer, self.inner.recv(buf).await, |n| *n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        count(
            &self.metrics.from_peer,
            self.inner.recv_from(buf).await,
            |(n, _)| *n,
        )
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        count(&self.metrics.to_peer, self.inner.send(buf).await, |n| *n)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        count(
            &self.metrics.to_peer,
            self.inner.send_to(buf, target).await,
            |n| *n,
        )
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turn::relay::relay_static::RelayAddressGeneratorStatic;
    use webrtc_util::vnet::net::Net;

    #[tokio::test]
    async fn relay_sockets_count_allocations_and_bytes() {
        let metrics = Arc::new(TurnMetrics::new());
        let generator = Counted::new(
            RelayAddressGeneratorStatic {
                relay_address: "127.0.0.1".parse().unwrap(),
                address: "127.0.0.1".to_owned(),
                net: Arc::new(Net::new(None)),
            },
            Arc::clone(&metrics),
        );
        let (relay, _) = generator.allocate_conn(true, 0).await.unwrap();
        assert_eq!(metrics.totals(), (1, 1, 0, 0));
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        relay
            .send_to(b"hello", peer.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (_, from) = peer.recv_from(&mut buf).await.unwrap();
        peer.send_to(b"hi", from).await.unwrap();
        relay.recv_from(&mut buf).await.unwrap();
        assert_eq!(metrics.totals(), (1, 1, 5, 2));
        drop(relay);
        assert_eq!(metrics.totals(), (1, 0, 5, 2));
    }
}
