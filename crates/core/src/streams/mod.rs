//! Kinesis video streams (issue 15): the stream control plane's rules ([`StreamService`]), the
//! media-storage links that bind a signaling channel to a stream, and their storage port
//! ([`StreamStore`]) with its in-memory backend and conformance suite. The SQLite and Redis
//! backends live in `kvs-sqlite` and `kvs-redis` and run the same suite.
//!
//! The port is separate from the channel [`crate::store::Store`] on purpose: streams and links
//! have their own keys, limits and lifecycle, and a backend can add them without touching the
//! channel registry. Like the channel store, every method is atomic on its own: the name's
//! uniqueness and the per-namespace limit are checked in the insert's step; replace and remove
//! are compare-and-swap on the revision; setting a link checks, in the same step, that its
//! stream is stored and linked to no other channel; removing a stream removes its link. Every
//! query is scoped to one namespace (account, region).

mod memory;
pub mod model;
mod record;
pub mod service;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use memory::MemoryStreamStore;
pub use model::{MediaLink, Stream, StreamName};
pub use record::{StoredLink, StoredStream, STREAM_FORMAT_VERSION};
pub use service::{StreamConfig, StreamService};

use async_trait::async_trait;

use crate::ids::{Namespace, ResourceArn};
pub use crate::store::StoreError;

#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Inserts a new stream unless its name exists in its namespace (`AlreadyExists`) or the
    /// namespace already holds `max_per_namespace` streams (`LimitExceeded`).
    async fn insert(&self, stream: Stream, max_per_namespace: usize) -> Result<(), StoreError>;

    async fn get(&self, ns: &Namespace, name: &StreamName) -> Result<Option<Stream>, StoreError>;

    /// Streams of `ns` in name order, strictly after `after`, whose names start with `prefix`.
    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&StreamName>,
        limit: usize,
    ) -> Result<Vec<Stream>, StoreError>;

    /// Replaces the stored stream with `stream` if the stored revision is `expected_revision`.
    async fn replace(&self, stream: Stream, expected_revision: u64) -> Result<(), StoreError>;

    /// Removes the stream if its stored revision is `expected_revision`, and with it the link
    /// that names it, if any.
    async fn remove(
        &self,
        ns: &Namespace,
        name: &StreamName,
        expected_revision: u64,
    ) -> Result<(), StoreError>;

    /// The link of a channel, if it has one.
    async fn link_of_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError>;

    /// The link that names a stream, if any.
    async fn link_of_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError>;

    /// Sets (or replaces) the link of `link.channel_arn`. `NotFound` unless the stream it
    /// names is stored (the name with exactly that ARN); `AlreadyExists` when that stream is
    /// linked to another channel.
    async fn set_link(&self, link: MediaLink) -> Result<(), StoreError>;

    /// Removes the channel's link; done when there is none.
    async fn unlink_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<(), StoreError>;

    /// Removes the link that names the stream; done when there is none.
    async fn unlink_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<(), StoreError>;

    /// Removes every stream and every link of every namespace (`POST /_kvs/reset`); returns
    /// how many streams there were. Not for request paths: a networked backend may walk its
    /// keyspace.
    async fn clear(&self) -> Result<usize, StoreError>;

    /// Whether the backend answers.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
