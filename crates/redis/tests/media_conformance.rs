//! The fragment store conformance suite (the same cases as the memory and disk stores) against
//! a real redis-server started for each case, plus the per-stream byte cap.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kvs_media::store::*;
use kvs_redis::RedisFragmentStore;

/// The store with its server, which is killed when the case drops the store.
struct WithServer {
    store: RedisFragmentStore,
    _server: support::RedisServer,
}

#[async_trait]
impl FragmentStore for WithServer {
    async fn append(&self, k: &StreamKey, f: NewFragment) -> Result<FragmentMeta> {
        self.store.append(k, f).await
    }
    async fn list(&self, k: &StreamKey, p: Position, l: usize) -> Result<Vec<FragmentMeta>> {
        self.store.list(k, p, l).await
    }
    async fn read(&self, k: &StreamKey, n: u64) -> Result<Option<Bytes>> {
        self.store.read(k, n).await
    }
    async fn wait_newer(&self, k: &StreamKey, a: Option<u64>, t: Duration) -> Result<bool> {
        self.store.wait_newer(k, a, t).await
    }
    async fn delete_before(&self, k: &StreamKey, ms: u64) -> Result<Removed> {
        self.store.delete_before(k, ms).await
    }
    async fn delete_through(&self, k: &StreamKey, n: u64) -> Result<Removed> {
        self.store.delete_through(k, n).await
    }
    async fn delete_stream(&self, k: &StreamKey) -> Result<Removed> {
        self.store.delete_stream(k).await
    }
    async fn streams(&self) -> Result<Vec<StreamKey>> {
        self.store.streams().await
    }
    async fn usage(&self) -> Result<Usage> {
        self.store.usage().await
    }
    async fn mark_ingesting(&self, k: &StreamKey, ttl: Duration) -> Result<()> {
        self.store.mark_ingesting(k, ttl).await
    }
    async fn is_ingesting(&self, k: &StreamKey) -> Result<bool> {
        self.store.is_ingesting(k).await
    }
}

async fn fresh() -> Arc<WithServer> {
    let server = support::RedisServer::start();
    Arc::new(WithServer {
        store: RedisFragmentStore::new(server.connect(), 1 << 30),
        _server: server,
    })
}

kvs_media::fragment_store_conformance!(fresh());

#[tokio::test]
async fn a_stream_over_its_byte_cap_loses_its_oldest_fragments() {
    use kvs_media::conformance::{frag, key};
    let server = support::RedisServer::start();
    let s = RedisFragmentStore::new(server.connect(), 10);
    let k = key("cam");
    let a = s.append(&k, frag(10_000, "aaaa")).await.unwrap();
    let b = s.append(&k, frag(11_000, "bbbb")).await.unwrap();
    let c = s.append(&k, frag(12_000, "cccc")).await.unwrap();
    let left: Vec<u64> = s
        .list(&k, Position::Earliest, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.number)
        .collect();
    assert_eq!(left, [b.number, c.number]);
    assert_eq!(s.read(&k, a.number).await.unwrap(), None);
    assert_eq!(
        s.usage().await.unwrap(),
        Usage {
            fragments: 2,
            bytes: 8
        }
    );
    // One fragment larger than the cap is kept alone (the newest is never evicted).
    let d = s
        .append(&k, frag(13_000, "dddddddddddddddd"))
        .await
        .unwrap();
    assert_eq!(s.list(&k, Position::Earliest, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.list(&k, Position::Earliest, 10).await.unwrap()[0].number,
        d.number
    );
}
