//! `rediss://`: the store and the bus over TLS to a redis-server that speaks only TLS. The
//! test's certificate is self-signed, so the URL asks the client not to verify it
//! (`#insecure`); without that the connection is refused, as it must be.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kvs_core::relay::bus::{Bus, Envelope};
use kvs_core::relay::NodeId;
use kvs_core::store::conformance::{channel, ns};
use kvs_core::store::{Store, StoreError};
use kvs_redis::{Redis, RedisBus, RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_bus_work_over_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = support::TlsRedisServer::start();
    let url = format!("rediss://127.0.0.1:{}/#insecure", server.port);
    let redis = Redis::open(&url, "tls").unwrap();
    let store = RedisStore::new(redis.clone());
    let ns = ns("111122223333", "us-east-1");
    store.insert(channel(&ns, "over-tls"), 10).await.unwrap();
    assert!(store
        .get(&ns, &channel(&ns, "over-tls").name)
        .await
        .unwrap()
        .is_some());

    let bus = Arc::new(RedisBus::new(redis));
    let mut inbox = bus.subscribe(NodeId(7));
    // The subscription announces itself once it is up.
    let first = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await;
    assert_eq!(first.unwrap(), Some(Envelope::Resubscribed));
    let go = Envelope::GoAway {
        channel: "arn".into(),
        grace: Duration::from_secs(1),
    };
    bus.publish(NodeId(7), go.clone()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await;
    assert_eq!(got.unwrap(), Some(go));

    // Verifying the self-signed certificate fails: the store says Unavailable, not a success.
    let strict = Redis::open(&format!("rediss://127.0.0.1:{}/", server.port), "tls").unwrap();
    let r = RedisStore::new(strict)
        .get(&ns, &channel(&ns, "over-tls").name)
        .await;
    assert!(
        matches!(
            r,
            Err(StoreError::Unavailable(_)) | Err(StoreError::Backend(_))
        ),
        "{r:?}"
    );
}
