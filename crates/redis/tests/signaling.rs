//! The signaling conformance suite (the same cases as the in-memory ports) on the Redis
//! presence, held messages and bus: each node of the cluster is its own Redis connection, as
//! separate processes would be.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kvs_core::relay::conformance::{ClusterBackend, NodePorts};
use kvs_core::relay::NodeId;
use kvs_redis::{Redis, RedisBus, RedisHeld, RedisPresence};

struct OnRedis {
    server: support::RedisServer,
    prefix: String,
}

#[async_trait]
impl ClusterBackend for OnRedis {
    async fn node(&self, lease: Duration) -> NodePorts {
        let redis = Redis::open(&self.server.url(), &self.prefix).unwrap_or_else(|e| panic!("{e}"));
        NodePorts {
            presence: Arc::new(RedisPresence::new(
                redis.clone(),
                lease,
                Duration::from_secs(3600),
            )),
            held: Arc::new(RedisHeld::new(redis.clone())),
            bus: Arc::new(RedisBus::new(redis.clone())),
            feed: Arc::new(kvs_redis::RedisFeed::new(redis)),
        }
    }

    async fn channel_created(&self, arn: &str) {
        let redis = Redis::open(&self.server.url(), &self.prefix).unwrap_or_else(|e| panic!("{e}"));
        let rec = serde_json::json!({ "arn": arn, "status": "ACTIVE" }).to_string();
        self.server
            .cmd(&[
                "HSET",
                &redis.keys().channel_of_arn(arn),
                "rev",
                "1",
                "rec",
                &rec,
            ])
            .await;
    }

    async fn end_lease(&self, node: NodeId) {
        let redis = Redis::open(&self.server.url(), &self.prefix).unwrap_or_else(|e| panic!("{e}"));
        self.server
            .cmd(&["ZADD", &redis.keys().nodes(), "0", &node.to_string()])
            .await;
    }
}

async fn on_redis() -> Arc<OnRedis> {
    Arc::new(OnRedis {
        server: support::RedisServer::start(),
        prefix: "kvs".into(),
    })
}

kvs_core::relay_conformance!(on_redis());
