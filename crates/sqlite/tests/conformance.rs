//! The store conformance suite (the same cases as the memory and Redis stores) against a
//! SQLite store in a fresh data directory per case.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kvs_sqlite::SqliteStore;

fn fresh_dir() -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kvs-sqlite-conformance-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

kvs_core::store_conformance!(async {
    Arc::new(SqliteStore::open_dir(&fresh_dir()).expect("open a fresh sqlite store"))
});
