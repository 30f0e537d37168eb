//! kvs-signaling's Redis backends (issue 8): the channel registry ([`RedisStore`]), cluster-wide
//! presence with node leases ([`RedisPresence`]), held messages with per-message expiry
//! ([`RedisHeld`]) and the point-to-point bus between nodes ([`RedisBus`]). They implement the
//! core's ports, so the application and the relay run unchanged on one node or many.
//!
//! One [`Redis`] handle (a multiplexed, self-reconnecting connection with short timeouts) is
//! shared by every backend of a node; only the bus opens a second connection, for its
//! subscription. Nothing is cached: every read goes to Redis, so a node never answers from a
//! stale copy after another node's acknowledged write. The key layout lives in [`keys`].

mod bus;
mod error;
mod feed;
mod held;
pub mod keys;
mod limiter;
mod media;
mod presence;
mod sessions;
mod store;
mod streams;
mod timed;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use bus::RedisBus;
pub use error::{misconfigured, unavailable};
pub use feed::RedisFeed;
pub use held::RedisHeld;
pub use keys::Keys;
pub use limiter::RedisLimiter;
pub use media::RedisFragmentStore;
pub use presence::RedisPresence;
pub use sessions::RedisSessionRegistry;
pub use store::RedisStore;
pub use streams::RedisStreamStore;
pub use timed::{RoundTrips, TimedConn};

/// How long a command may take before the caller gets `Unavailable` (requests fail fast when
/// Redis is down, issue 8 "Faults").
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A node's connection to Redis, cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    /// Told about every round trip (the node's metrics), when set.
    round_trips: Option<Arc<dyn RoundTrips>>,
}

impl Redis {
    /// Opens `url` (`redis://[:PASSWORD@]HOST:PORT[/DB]` or `rediss://` for TLS) with keys under
    /// `prefix`. Connects lazily: a node may start before Redis does, and answers 503 until it
    /// can reach it.
    pub fn open(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // Reconnect quickly and give up quickly: a caller waits at most about a second
            // for a reconnection before it is answered, and the next call tries again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            client,
            conn,
            keys: Keys::new(prefix),
            round_trips: None,
        })
    }

    /// Reports every round trip of this handle and its clones to `observer` (set it before
    /// handing clones to the backends).
    pub fn with_round_trips(mut self, observer: Arc<dyn RoundTrips>) -> Self {
        self.round_trips = Some(observer);
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn conn(&self) -> TimedConn {
        TimedConn {
            inner: self.conn.clone(),
            observer: self.round_trips.clone(),
        }
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether this endpoint is a Redis Cluster node (`INFO cluster` says `cluster_enabled:1`).
    /// The cluster protocol (MOVED/ASK redirections, sharded pub/sub) is not spoken here, so a
    /// server refuses such an endpoint at start-up.
    pub async fn is_cluster_node(&self) -> Result<bool, redis::RedisError> {
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut self.conn())
            .await?;
        Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
    }

    /// Round trip to Redis.
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn())
            .await
            .map(|_| ())
    }
}
