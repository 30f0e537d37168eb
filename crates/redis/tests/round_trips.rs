//! Every Redis round trip of a handle given an observer is reported with its command's name
//! (the node's `kvs_redis_command_duration_seconds`, docs/metrics.md "Store and Redis").
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvs_core::store::conformance::{channel, ns};
use kvs_core::store::Store;
use kvs_redis::{Redis, RedisStore, RoundTrips};

#[derive(Default)]
struct Seen(Mutex<Vec<&'static str>>);

impl RoundTrips for Seen {
    fn observe(&self, command: &'static str, _elapsed: Duration) {
        self.0.lock().unwrap().push(command);
    }
}

#[tokio::test]
async fn round_trips_are_reported_by_command() {
    let server = support::RedisServer::start();
    let seen = Arc::new(Seen::default());
    let redis = Redis::open(&server.url(), "rt")
        .unwrap()
        .with_round_trips(Arc::clone(&seen) as Arc<dyn RoundTrips>);
    redis.ping().await.unwrap();
    assert_eq!(*seen.0.lock().unwrap(), ["PING"]);

    // The backends get clones of the handle: their calls are reported too.
    let store = RedisStore::new(redis.clone());
    let n = ns("111122223333", "us-east-1");
    store.insert(channel(&n, "cam"), 10).await.unwrap();
    store.get(&n, &channel(&n, "cam").name).await.unwrap();
    let seen = seen.0.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.iter().any(|c| *c == "EVALSHA" || *c == "EVAL"),
        "the insert runs a script: {seen:?}"
    );
    assert!(!seen.contains(&"other"), "{seen:?}");

    // Without an observer nothing is reported, and nothing changes.
    let plain = Redis::open(&server.url(), "rt").unwrap();
    plain.ping().await.unwrap();
}
