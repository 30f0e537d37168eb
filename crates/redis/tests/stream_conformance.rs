//! The stream store conformance suite (the same cases as the memory and SQLite stream stores),
//! against a real redis-server started for each case.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::streams::{MediaLink, StoreError, Stream, StreamName, StreamStore};
use kvs_redis::RedisStreamStore;

/// The store with its server, which is killed when the case drops the store.
struct WithServer {
    store: RedisStreamStore,
    _server: support::RedisServer,
}

#[async_trait]
impl StreamStore for WithServer {
    async fn insert(&self, s: Stream, max: usize) -> Result<(), StoreError> {
        self.store.insert(s, max).await
    }
    async fn get(&self, ns: &Namespace, n: &StreamName) -> Result<Option<Stream>, StoreError> {
        self.store.get(ns, n).await
    }
    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&StreamName>,
        limit: usize,
    ) -> Result<Vec<Stream>, StoreError> {
        self.store.list(ns, prefix, after, limit).await
    }
    async fn replace(&self, s: Stream, expected: u64) -> Result<(), StoreError> {
        self.store.replace(s, expected).await
    }
    async fn remove(
        &self,
        ns: &Namespace,
        n: &StreamName,
        expected: u64,
    ) -> Result<(), StoreError> {
        self.store.remove(ns, n, expected).await
    }
    async fn link_of_channel(
        &self,
        ns: &Namespace,
        a: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        self.store.link_of_channel(ns, a).await
    }
    async fn link_of_stream(
        &self,
        ns: &Namespace,
        a: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        self.store.link_of_stream(ns, a).await
    }
    async fn set_link(&self, l: MediaLink) -> Result<(), StoreError> {
        self.store.set_link(l).await
    }
    async fn unlink_channel(&self, ns: &Namespace, a: &ResourceArn) -> Result<(), StoreError> {
        self.store.unlink_channel(ns, a).await
    }
    async fn unlink_stream(&self, ns: &Namespace, a: &ResourceArn) -> Result<(), StoreError> {
        self.store.unlink_stream(ns, a).await
    }
    async fn clear(&self) -> Result<usize, StoreError> {
        self.store.clear().await
    }
}

async fn fresh() -> Arc<WithServer> {
    let server = support::RedisServer::start();
    Arc::new(WithServer {
        store: RedisStreamStore::new(server.connect()),
        _server: server,
    })
}

kvs_core::stream_store_conformance!(fresh());
