//! The storage-session registry conformance suite (the same cases as the in-memory registry)
//! on Redis, with a stepped clock, plus what only a shared registry does: two nodes' claims on
//! one channel, decided on Redis's own clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kvs_core::clock::ManualClock;
use kvs_core::relay::NodeId;
use kvs_core::storage_session::{SessionRegistry, SessionState};
use kvs_redis::{Redis, RedisSessionRegistry};

async fn make() -> (
    Arc<dyn SessionRegistry>,
    impl Fn(u64) -> std::future::Ready<()>,
) {
    // Each test its own server, owned by the step closure so it stops with the test.
    let server = support::RedisServer::start();
    let redis = Redis::open(&server.url(), "kvs").unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new(1_000_000));
    let registry: Arc<dyn SessionRegistry> =
        Arc::new(RedisSessionRegistry::with_test_clock(redis, clock.clone()));
    let step = move |ms| {
        let _server = &server;
        clock.advance(Duration::from_millis(ms));
        std::future::ready(())
    };
    (registry, step)
}

kvs_core::session_registry_conformance!(make);

#[tokio::test]
async fn two_nodes_one_channel_on_redis_time() {
    let server = support::RedisServer::start();
    let node = || {
        let redis = Redis::open(&server.url(), "kvs").unwrap_or_else(|e| panic!("{e}"));
        RedisSessionRegistry::new(redis)
    };
    let (a, b) = (node(), node());
    let ch = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/c/1";
    let ttl = Duration::from_secs(30);
    let (first, _) = a.claim(ch, "sa", NodeId(1), ttl).await.expect("claim");
    let (second, replaced) = b.claim(ch, "sb", NodeId(2), ttl).await.expect("claim");
    assert_eq!(replaced.as_ref().map(|r| r.node), Some(NodeId(1)));
    assert!(second.since_millis >= first.since_millis);
    assert!(!a
        .renew(ch, "sa", SessionState::Connected, ttl)
        .await
        .expect("renew"));
    assert!(b
        .renew(ch, "sb", SessionState::Connected, ttl)
        .await
        .expect("renew"));
    let seen_by_a = a.list().await.expect("list");
    assert_eq!(seen_by_a.len(), 1);
    assert_eq!(seen_by_a[0].node, NodeId(2));
    assert_eq!(seen_by_a[0].state, "CONNECTED");
}
