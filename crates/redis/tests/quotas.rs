//! The quota conformance suite (the same cases as the in-memory limiter) on the Redis limiter,
//! with a stepped clock, plus what only a shared limiter does: two nodes draw on one bucket.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kvs_core::clock::ManualClock;
use kvs_core::quota::conformance::{allowed, key};
use kvs_core::quota::{QuotaOp, Quotas, RateLimiter, Scope};
use kvs_redis::{Redis, RedisLimiter};

async fn make(quotas: Quotas) -> (Arc<dyn RateLimiter>, impl Fn(u64) -> std::future::Ready<()>) {
    // Each test its own server, owned by the step closure so it stops with the test.
    let server = support::RedisServer::start();
    let redis = Redis::open(&server.url(), "kvs").unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::new(1_000_000));
    let limiter: Arc<dyn RateLimiter> =
        Arc::new(RedisLimiter::with_test_clock(redis, quotas, clock.clone()));
    let step = move |ms| {
        let _server = &server;
        clock.advance(Duration::from_millis(ms));
        std::future::ready(())
    };
    (limiter, step)
}

kvs_core::quota_conformance!(make);

#[tokio::test]
async fn nodes_share_the_buckets_on_redis_time() {
    let server = support::RedisServer::start();
    let node = || {
        let redis = Redis::open(&server.url(), "kvs").unwrap_or_else(|e| panic!("{e}"));
        RedisLimiter::new(redis, Quotas::aws())
    };
    let (a, b, c) = (node(), node(), node());
    let bucket = [key(Scope::Channel, QuotaOp::ConnectAsMaster, "arn:c1")];
    // 3 per second per channel, whichever node is asked.
    let total = allowed(&a, &bucket, 3).await
        + allowed(&b, &bucket, 3).await
        + allowed(&c, &bucket, 3).await;
    assert_eq!(total, 3);
    let client = redis::Client::open(server.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("kvs:q:*")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys, ["kvs:q:channel:ConnectAsMaster:arn:c1"]);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        (1000..=2000).contains(&ttl),
        "the bucket expires a second after it is full again: {ttl}"
    );
}
