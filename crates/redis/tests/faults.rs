//! What the Redis backends do when Redis goes away and comes back: callers are answered
//! `Unavailable` quickly (never hang), everything works again by itself when Redis returns,
//! and every acknowledged write survives a kill -9 of Redis (AOF, `appendfsync always`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvs_core::store::conformance::{channel, ns};
use kvs_core::store::{Store, StoreError};
use kvs_redis::RedisStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_and_recovers_by_itself() {
    let mut server = support::RedisServer::start();
    let store = RedisStore::new(server.connect());
    let ns = ns("111122223333", "us-east-1");
    store.insert(channel(&ns, "before"), 100).await.unwrap();

    server.kill();
    for name in ["down-1", "down-2", "down-3"] {
        let started = Instant::now();
        let r = store.insert(channel(&ns, name), 100).await;
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "expected Unavailable, got {r:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
    }
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.get(&ns, &channel(&ns, "before").name).await {
            Ok(found) => {
                assert!(
                    found.is_some(),
                    "the acknowledged write survived the restart"
                );
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.insert(channel(&ns, "after"), 100).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_redis_kill_9() {
    let mut server = support::RedisServer::start();
    let redis = server.connect();
    let store = Arc::new(RedisStore::new(redis.clone()));
    let ns = ns("111122223333", "us-east-1");
    // Writers race a kill -9; whatever was acknowledged must be there after the restart.
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = Arc::clone(&store);
        let ns = ns.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let c = channel(&ns, &format!("w{w}-{i:05}"));
                match store.insert(c.clone(), usize::MAX).await {
                    Ok(()) => acked.push(c.name),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() > 10,
        "the writers got going ({} writes)",
        acked.len()
    );
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in &acked {
        assert!(
            store.get(&ns, name).await.unwrap().is_some(),
            "acknowledged {name} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_node_is_recognised_and_its_refusals_are_unavailable() {
    let cluster = support::RedisServer::start_with(&["--cluster-enabled", "yes"]);
    let redis = cluster.connect();
    // What the server checks at start-up, to refuse a Cluster endpoint with one clear line.
    assert!(redis.is_cluster_node().await.unwrap());
    // A node that serves no slot (or redirects) answers every key command with an error the
    // backends map to Unavailable (503 to the caller), never a 500.
    let store = RedisStore::new(redis);
    let ns = ns("111122223333", "us-east-1");
    let r = store.insert(channel(&ns, "c"), 100).await;
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "expected Unavailable, got {r:?}"
    );
    let plain = support::RedisServer::start();
    assert!(!plain.connect().is_cluster_node().await.unwrap());
}
