//! The channel registry port. One narrow async trait, the in-memory backend, and one conformance
//! suite that every backend passes, one test per case; the durable backends live in their own
//! crates (`kvs-sqlite`, `kvs-redis`) and run the suite from there.
//!
//! Every method is atomic on its own: uniqueness and the per-namespace limit are checked in the
//! same step as the insert, and replace/remove are compare-and-swap on the channel's revision,
//! which is what makes `CurrentVersion` optimistic concurrency exact under concurrent callers.
//! Every query is scoped to one namespace (account, region): nothing on a request path scans the
//! whole registry, so a networked backend (Redis) can serve it with keyed reads. The two
//! exceptions, [`Store::namespaces`] and [`Store::clear`], serve the test-suite endpoints
//! (`GET /_kvs/state`, `POST /_kvs/reset`, docs/testing-with-kvs-signaling.md), which exist only
//! in open mode and may walk everything.
//!
//! A write is durable before its future resolves; a read sees every write that resolved before
//! it started.

mod index;
mod memory;
mod record;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use index::{Change, Index, Staged};
pub use memory::MemoryStore;
pub use record::{StoredChannel, FORMAT_VERSION};

use async_trait::async_trait;
use thiserror::Error;

use crate::ids::{ChannelName, Namespace};
use crate::model::Channel;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("a channel with this name already exists")]
    AlreadyExists,
    #[error("the namespace already holds the maximum number of channels")]
    LimitExceeded,
    #[error("no such channel")]
    NotFound,
    #[error("the channel's version is not the expected one")]
    VersionConflict,
    #[error("storage backend failure: {0}")]
    Backend(String),
    /// The backend cannot be reached right now (it may come back by itself).
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a new channel unless its name exists in its namespace (`AlreadyExists`) or the
    /// namespace already holds `max_per_namespace` channels (`LimitExceeded`).
    async fn insert(&self, channel: Channel, max_per_namespace: usize) -> Result<(), StoreError>;

    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError>;

    /// Channels of `ns` in name order, strictly after `after`, whose names start with `prefix`.
    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError>;

    /// Replaces the stored channel with `channel` if the stored revision is `expected_revision`.
    async fn replace(&self, channel: Channel, expected_revision: u64) -> Result<(), StoreError>;

    /// Removes the channel if its stored revision is `expected_revision`.
    async fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError>;

    /// Removes a channel that finished deleting, like [`Store::remove`], except that the caller
    /// does not wait for it to be durable: it is a read path's housekeeping, and a purge lost to
    /// a crash is simply done again by the next read. A backend may queue it and resolve at
    /// once (the SQLite store does, so reads never wait for an fsync and a burst of purges
    /// shares one), provided every later write from the same caller is applied after it.
    async fn purge(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        self.remove(ns, name, expected_revision).await
    }

    /// Every namespace that holds at least one channel (`GET /_kvs/state`). Not for request
    /// paths: a networked backend may walk its whole keyspace to answer.
    async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError>;

    /// Removes every channel of every namespace and returns the channels removed
    /// (`POST /_kvs/reset`). A write that resolved before the call started is removed; one that
    /// resolves after it returns is kept. Each namespace is emptied in one atomic step (a
    /// backend may empty the namespaces one after another), and the removal is durable before
    /// the future resolves.
    async fn clear(&self) -> Result<Vec<Channel>, StoreError>;

    /// Whether the backend answers (`GET /ready`).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
