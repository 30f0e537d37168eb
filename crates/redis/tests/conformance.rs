//! The store conformance suite (the same cases as the memory and SQLite stores), against a
//! real redis-server started for each case.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use kvs_core::ids::{ChannelName, Namespace};
use kvs_core::model::Channel;
use kvs_core::store::{Store, StoreError};
use kvs_redis::RedisStore;

/// The store with its server, which is killed when the case drops the store.
struct WithServer {
    store: RedisStore,
    _server: support::RedisServer,
}

#[async_trait]
impl Store for WithServer {
    async fn insert(&self, channel: Channel, max: usize) -> Result<(), StoreError> {
        self.store.insert(channel, max).await
    }
    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        self.store.get(ns, name).await
    }
    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        self.store.list(ns, prefix, after, limit).await
    }
    async fn replace(&self, channel: Channel, expected: u64) -> Result<(), StoreError> {
        self.store.replace(channel, expected).await
    }
    async fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected: u64,
    ) -> Result<(), StoreError> {
        self.store.remove(ns, name, expected).await
    }
    async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        self.store.namespaces().await
    }
    async fn clear(&self) -> Result<Vec<Channel>, StoreError> {
        self.store.clear().await
    }
}

async fn fresh() -> Arc<WithServer> {
    let server = support::RedisServer::start();
    Arc::new(WithServer {
        store: RedisStore::new(server.connect()),
        _server: server,
    })
}

kvs_core::store_conformance!(fresh());
