//! Embedded default store: one SQLite database in WAL mode with `synchronous=FULL`, so a write is
//! on disk before the request that made it is acknowledged (it survives `kill -9` and power loss).
//!
//! Rows keep the key columns the queries need (namespace, name, revision) beside the versioned
//! JSON record (see `record.rs`). One connection behind a mutex: the control plane's write rate
//! is bounded by fsync anyway, and serialising writers makes every method trivially atomic.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::record::StoredChannel;
use super::{Store, StoreError};
use crate::ids::{ChannelName, Namespace};
use crate::model::Channel;

const SCHEMA_VERSION: i64 = 1;

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) `kvs.sqlite3` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        Self::open(&dir.join("kvs.sqlite3"))
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS channels (
                 account TEXT NOT NULL,
                 region  TEXT NOT NULL,
                 name    TEXT NOT NULL,
                 revision INTEGER NOT NULL,
                 record  TEXT NOT NULL,
                 PRIMARY KEY (account, region, name)
             ) WITHOUT ROWID;",
        )
        .map_err(backend)?;
        let found: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        match found {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION],
                )
                .map_err(backend)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(StoreError::Corrupt(format!(
                    "database schema {v} is not supported by this build (expects {SCHEMA_VERSION})"
                )))
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("sqlite store lock poisoned".into()))
    }
}

fn rev(r: u64) -> Result<i64, StoreError> {
    i64::try_from(r).map_err(|_| StoreError::Backend(format!("revision {r} out of range")))
}

fn decode(text: &str) -> Result<Channel, StoreError> {
    Channel::try_from(StoredChannel::from_json(text)?)
}

impl Store for SqliteStore {
    fn insert(&self, channel: &Channel, max_per_namespace: usize) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let (account, region) = (channel.ns.account.as_str(), channel.ns.region.as_str());
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM channels WHERE account=?1 AND region=?2 AND name=?3)",
                params![account, region, channel.name.as_str()],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if exists {
            return Err(StoreError::AlreadyExists);
        }
        let count: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM channels WHERE account=?1 AND region=?2",
                params![account, region],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_namespace {
            return Err(StoreError::LimitExceeded);
        }
        let record = StoredChannel::from(channel).to_json()?;
        tx.execute(
            "INSERT INTO channels (account, region, name, revision, record) VALUES (?1,?2,?3,?4,?5)",
            params![
                account,
                region,
                channel.name.as_str(),
                rev(channel.revision)?,
                record
            ],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        let conn = self.lock()?;
        let text: Option<String> = conn
            .query_row(
                "SELECT record FROM channels WHERE account=?1 AND region=?2 AND name=?3",
                params![ns.account.as_str(), ns.region.as_str(), name.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        text.as_deref().map(decode).transpose()
    }

    fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT record FROM channels
                 WHERE account=?1 AND region=?2 AND name > ?3
                   AND (?4 IS NULL OR substr(name, 1, length(?4)) = ?4)
                 ORDER BY name LIMIT ?5",
            )
            .map_err(backend)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![
                    ns.account.as_str(),
                    ns.region.as_str(),
                    after.map_or("", |a| a.as_str()),
                    prefix,
                    limit
                ],
                |r| r.get::<_, String>(0),
            )
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(&row.map_err(backend)?)?);
        }
        Ok(out)
    }

    fn replace(&self, channel: &Channel, expected_revision: u64) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let (account, region, name) = (
            channel.ns.account.as_str(),
            channel.ns.region.as_str(),
            channel.name.as_str(),
        );
        let current: Option<i64> = tx
            .query_row(
                "SELECT revision FROM channels WHERE account=?1 AND region=?2 AND name=?3",
                params![account, region, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        match current {
            None => return Err(StoreError::NotFound),
            Some(v) if v != rev(expected_revision)? => return Err(StoreError::VersionConflict),
            Some(_) => {}
        }
        let record = StoredChannel::from(channel).to_json()?;
        tx.execute(
            "UPDATE channels SET revision=?4, record=?5 WHERE account=?1 AND region=?2 AND name=?3",
            params![account, region, name, rev(channel.revision)?, record],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let current: Option<i64> = tx
            .query_row(
                "SELECT revision FROM channels WHERE account=?1 AND region=?2 AND name=?3",
                params![ns.account.as_str(), ns.region.as_str(), name.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        match current {
            None => return Err(StoreError::NotFound),
            Some(v) if v != rev(expected_revision)? => return Err(StoreError::VersionConflict),
            Some(_) => {}
        }
        tx.execute(
            "DELETE FROM channels WHERE account=?1 AND region=?2 AND name=?3",
            params![ns.account.as_str(), ns.region.as_str(), name.as_str()],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn all(&self) -> Result<Vec<Channel>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached("SELECT record FROM channels")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(&row.map_err(backend)?)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance;

    fn temp_dir() -> std::path::PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kvs-sqlite-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn sqlite_store_conforms() {
        conformance::run_all(&|| Arc::new(SqliteStore::open_dir(&temp_dir()).unwrap()));
    }

    #[test]
    fn data_survives_reopen() {
        let dir = temp_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let c = conformance::channel(&a, "durable");
        {
            let s = SqliteStore::open_dir(&dir).unwrap();
            s.insert(&c, 10).unwrap();
        }
        let s = SqliteStore::open_dir(&dir).unwrap();
        assert_eq!(s.get(&a, &c.name).unwrap(), Some(c));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_record_format_is_reported_not_guessed() {
        let dir = temp_dir();
        let s = SqliteStore::open_dir(&dir).unwrap();
        let a = conformance::ns("111111111111", "us-east-1");
        let c = conformance::channel(&a, "future");
        s.insert(&c, 10).unwrap();
        s.lock()
            .unwrap()
            .execute(
                "UPDATE channels SET record = replace(record, '\"format\":1', '\"format\":99')",
                [],
            )
            .unwrap();
        assert!(matches!(s.get(&a, &c.name), Err(StoreError::Corrupt(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
