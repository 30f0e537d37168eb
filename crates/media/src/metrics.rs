//! What the media side counts, as lock-free atomics read at scrape time by the server's metrics
//! module (docs/metrics.md, `kvs_media_*`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::fragmenter::DropReason;

#[derive(Debug, Default)]
pub struct MediaMetrics {
    fragments: AtomicU64,
    bytes: AtomicU64,
    expired: AtomicU64,
    evicted: AtomicU64,
    orphaned: AtomicU64,
    sessions: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

/// A reading of every counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaFigures {
    pub fragments_written: u64,
    pub bytes_written: u64,
    /// Removed by the stream's data retention.
    pub fragments_expired: u64,
    /// Removed to keep the store under `--media-max-bytes`.
    pub fragments_evicted: u64,
    /// Removed because their stream was deleted.
    pub fragments_orphaned: u64,
    /// Recordings opened.
    pub sessions: u64,
    pub dropped: Vec<(DropReason, u64)>,
}

impl MediaMetrics {
    pub fn written(&self, bytes: u64) {
        self.fragments.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn dropped(&self, why: DropReason, n: u64) {
        let i = DropReason::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.dropped[i].fetch_add(n, Ordering::Relaxed);
    }

    pub fn expired(&self, n: u64) {
        self.expired.fetch_add(n, Ordering::Relaxed);
    }

    pub fn evicted(&self, n: u64) {
        self.evicted.fetch_add(n, Ordering::Relaxed);
    }

    pub fn orphaned(&self, n: u64) {
        self.orphaned.fetch_add(n, Ordering::Relaxed);
    }

    pub fn session_opened(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn figures(&self) -> MediaFigures {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MediaFigures {
            fragments_written: get(&self.fragments),
            bytes_written: get(&self.bytes),
            fragments_expired: get(&self.expired),
            fragments_evicted: get(&self.evicted),
            fragments_orphaned: get(&self.orphaned),
            sessions: get(&self.sessions),
            dropped: DropReason::ALL
                .iter()
                .zip(&self.dropped)
                .map(|(r, a)| (*r, get(a)))
                .collect(),
        }
    }
}
