//! kvs-sqlite: the embedded default store of kvs-signaling (`--store sqlite`), one SQLite file
//! in `--data-dir`, plugged into `kvs_core`'s [`Store`](kvs_core::store::Store) port like the
//! Redis backends of `kvs-redis` are; it passes the same store conformance suite.
//!
//! - `lock.rs`: one process per data directory (an OS lock on `LOCK`).
//! - `db.rs`: the schema and every SQL statement.
//! - `writer.rs`: the one thread that writes, in group commits, and its restart after a panic.
//! - `store.rs`: [`SqliteStore`], the async front that queues work for the writer and serves
//!   reads from the in-memory index.
//! - `streams.rs`: [`SqliteStreamStore`], streams and media-storage links (issue 15) in tables
//!   of their own in the same file.
//!
//! What an operator sees (the lock, the restart, `/ready`) is in docs/behaviour.md.

mod db;
mod lock;
mod store;
mod streams;
mod writer;

pub use db::FILE_NAME;
pub use lock::{DataDirLock, LockError, LOCK_FILE};
pub use store::{OpenError, SqliteOptions, SqliteStore, PING_TIMEOUT};
pub use streams::SqliteStreamStore;
pub use writer::{MAX_RESTARTS, RESTART_WINDOW};

/// A fresh directory under the system temp dir for one test.
#[cfg(test)]
pub(crate) fn test_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kvs-sqlite-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
