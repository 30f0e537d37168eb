//! The fragment store port: where a stream's Matroska fragments are kept for GetMedia, and the
//! types it speaks. Backends: memory and disk ([`crate::local`]), Redis (`kvs-redis`); all pass
//! [`crate::conformance`].
//!
//! The store numbers fragments (monotonically increasing per stream, never reused while the
//! stream lives), so whoever writes need not coordinate with readers or other nodes. Reads are
//! by metadata first ([`FragmentStore::list`], small) and bytes one fragment at a time
//! ([`FragmentStore::read`]), so a reader holds at most one fragment in memory.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kvs_core::ids::ResourceArn;

/// Which stream: the parts of its ARN. The creation time is part of it, so a stream deleted and
/// created again under the same name never sees the old one's fragments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub account: String,
    pub region: String,
    pub name: String,
    pub created: String,
}

impl StreamKey {
    pub fn from_arn(arn: &ResourceArn) -> Self {
        Self {
            account: arn.account.clone(),
            region: arn.region.clone(),
            name: arn.name.clone(),
            created: arn.suffix.clone(),
        }
    }

    /// The ARN text (`arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME/CREATED`).
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kinesisvideo:{}:{}:stream/{}/{}",
            self.region, self.account, self.name, self.created
        )
    }
}

/// A fragment to store (the fragmenter's output).
#[derive(Debug, Clone)]
pub struct NewFragment {
    /// Producer timestamp of the fragment's first frame (epoch ms).
    pub producer_ms: u64,
    /// When the server received its first frame (epoch ms).
    pub server_ms: u64,
    pub duration_ms: u64,
    /// Where the Cluster starts in `bytes` (GetMedia puts the fragment tags there).
    pub cluster_offset: u64,
    pub bytes: Bytes,
}

/// What is known of a stored fragment without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentMeta {
    pub number: u64,
    pub producer_ms: u64,
    pub server_ms: u64,
    pub duration_ms: u64,
    pub cluster_offset: u64,
    pub len: u64,
}

impl FragmentMeta {
    pub fn of(number: u64, f: &NewFragment) -> Self {
        Self {
            number,
            producer_ms: f.producer_ms,
            server_ms: f.server_ms,
            duration_ms: f.duration_ms,
            cluster_offset: f.cluster_offset,
            len: f.bytes.len() as u64,
        }
    }
}

/// Where a listing starts (GetMedia's StartSelector, resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Earliest,
    /// Fragments numbered strictly after this one.
    After(u64),
    /// The first fragment that contains this producer time or starts after it.
    Producer(u64),
    /// The same by server time.
    Server(u64),
    /// The newest fragment (and what follows it).
    Latest,
}

/// What a deletion removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub fragments: u64,
    pub bytes: u64,
}

impl Removed {
    pub fn add(&mut self, other: Removed) {
        self.fragments += other.fragments;
        self.bytes += other.bytes;
    }
}

/// What a store holds in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub fragments: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaStoreError {
    #[error("media store unavailable: {0}")]
    Unavailable(String),
    #[error("media store failure: {0}")]
    Backend(String),
}

impl From<MediaStoreError> for kvs_core::media::MediaError {
    fn from(e: MediaStoreError) -> Self {
        kvs_core::media::MediaError::Unavailable(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, MediaStoreError>;

#[async_trait]
pub trait FragmentStore: Send + Sync {
    /// Stores a fragment as the stream's newest and returns its metadata (with its number).
    async fn append(&self, key: &StreamKey, fragment: NewFragment) -> Result<FragmentMeta>;

    /// Up to `limit` fragments from `from` on, in number order.
    async fn list(
        &self,
        key: &StreamKey,
        from: Position,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>>;

    /// One fragment's bytes; `None` once it was deleted.
    async fn read(&self, key: &StreamKey, number: u64) -> Result<Option<Bytes>>;

    /// Waits up to `timeout` for a fragment numbered after `after` (any fragment when `None`);
    /// whether there is one. Cancel-safe; backends without notifications poll.
    async fn wait_newer(
        &self,
        key: &StreamKey,
        after: Option<u64>,
        timeout: Duration,
    ) -> Result<bool>;

    /// Deletes the stream's fragments received (server time) before `server_ms`.
    async fn delete_before(&self, key: &StreamKey, server_ms: u64) -> Result<Removed>;

    /// Deletes the stream's fragments numbered up to `number` (eviction of the oldest).
    async fn delete_through(&self, key: &StreamKey, number: u64) -> Result<Removed>;

    /// Deletes every fragment of the stream.
    async fn delete_stream(&self, key: &StreamKey) -> Result<Removed>;

    /// The streams that have fragments.
    async fn streams(&self) -> Result<Vec<StreamKey>>;

    async fn usage(&self) -> Result<Usage>;

    /// Says the stream is being recorded for the next `ttl` (renewed while samples flow), so
    /// GetMedia on any node keeps waiting for the next fragment.
    async fn mark_ingesting(&self, key: &StreamKey, ttl: Duration) -> Result<()>;

    async fn is_ingesting(&self, key: &StreamKey) -> Result<bool>;
}
