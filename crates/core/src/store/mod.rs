//! The channel registry port. One narrow async trait, an in-memory and a SQLite backend, and one
//! conformance suite that every backend passes, one test per case (architecture.md §5.6).
//!
//! Every method is atomic on its own: uniqueness and the per-namespace limit are checked in the
//! same step as the insert, and replace/remove are compare-and-swap on the channel's revision,
//! which is what makes `CurrentVersion` optimistic concurrency exact under concurrent callers.
//! Every query is scoped to one namespace (account, region): nothing on a request path scans the
//! whole registry, so a networked backend (Redis) can serve it with keyed reads.
//!
//! A write is durable before its future resolves; a read sees every write that resolved before
//! it started.

mod index;
mod memory;
mod record;
mod sqlite;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use index::{Change, Index, Staged};
pub use memory::MemoryStore;
pub use record::{StoredChannel, FORMAT_VERSION};
pub use sqlite::{SqliteOptions, SqliteStore};

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

    /// Whether the backend answers (`GET /ready`).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
