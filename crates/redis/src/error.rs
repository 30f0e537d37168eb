//! Which Redis failures mean "unavailable, try again" (a 503 to the caller) and which are a
//! defect of ours (a 500): one place, used by every backend.

use kvs_core::store::StoreError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Whether `e` says Redis cannot serve right now (down, loading, failing over, out of memory),
/// as opposed to a command we got wrong.
pub fn unavailable(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    match e.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound | ErrorKind::AuthenticationFailed => {
            true
        }
        ErrorKind::Server(k) => {
            matches!(
                k,
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    // A Redis Cluster endpoint (refused at start-up; this is one that became a
                    // cluster node while the server ran): not ours to follow, so "unavailable".
                    | ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::CrossSlot
            ) || e.to_string().contains("OOM")
        }
        _ => false,
    }
}

pub(crate) fn store_error(e: RedisError) -> StoreError {
    if unavailable(&e) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// Whether `e` says the connection settings themselves are wrong (retrying cannot help): the
/// server refuses to start with them.
pub fn misconfigured(e: &RedisError) -> bool {
    e.kind() == ErrorKind::InvalidClientConfig
}
