//! kvs-signaling's recorded media (issue 15): what the storage session's WebRTC peer records,
//! behind the core's media seam (`kvs_core::media`).
//!
//! - [`fragmenter`] cuts samples into keyframe-aligned fragments, written as Matroska
//!   documents shaped like Kinesis Video Streams' chunks by [`mkv`] (on [`ebml`] and [`h264`]);
//! - [`store`] is the fragment store port, with [`local`] memory and disk backends (the Redis
//!   one is in `kvs-redis`) and the [`conformance`] suite every backend passes;
//! - [`recorder`] opens recordings for streams and keeps the store within retention and bounds;
//! - [`metrics`] counts what happens, read by the server's `/metrics`.
//!
//! Layout, bounds and GetMedia's behaviour: docs/media-storage.md.

pub mod ebml;
pub mod fragmenter;
pub mod h264;
pub mod local;
pub mod metrics;
pub mod mkv;
pub mod recorder;
pub mod store;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use fragmenter::{DropReason, FragmentRules, Fragmenter};
pub use local::LocalFragmentStore;
pub use metrics::{MediaFigures, MediaMetrics};
pub use recorder::{MediaRecorder, RecorderConfig, StreamDirectory};
pub use store::{
    FragmentMeta, FragmentStore, MediaStoreError, NewFragment, Position, Removed, StreamKey, Usage,
};

#[cfg(test)]
mod conformance_memory {
    use std::sync::Arc;
    crate::fragment_store_conformance!(async { Arc::new(crate::LocalFragmentStore::memory()) });
}

#[cfg(test)]
mod conformance_disk {
    use std::sync::Arc;

    use crate::conformance::{Made, TempDir};
    crate::fragment_store_conformance!(async {
        let dir = TempDir::new("kvs-media-conf");
        let store = Arc::new(crate::LocalFragmentStore::disk(&dir.0).expect("temp dir"));
        Made {
            store,
            keep: Some(dir),
        }
    });
}
