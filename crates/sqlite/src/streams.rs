//! [`SqliteStreamStore`]: streams and media-storage links (issue 15) in the data directory's
//! database file, beside the channels, through the core's [`StreamStore`] port.
//!
//! Two tables of their own, added to an existing file on first open (`CREATE TABLE IF NOT
//! EXISTS`) and versioned by their own `meta` row (`streams_schema`), so the channel schema
//! and its group-committing writer (`writer.rs`) are untouched. Stream calls are rare next to
//! channel traffic, so this store keeps it simple: one connection behind a mutex, each call one
//! `BEGIN IMMEDIATE` transaction on the blocking pool, its checks and writes together (which
//! is what makes the limit, the compare-and-swap and the one-channel-per-stream rule exact).
//! WAL with `synchronous=FULL`, as the channel file: a call returns once its write is on disk.
//! SQLite's own locking orders it against the channel writer; `busy_timeout` waits for it.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::streams::{
    MediaLink, StoreError, StoredLink, StoredStream, Stream, StreamName, StreamStore,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::db::{backend, rev};

const STREAMS_SCHEMA_VERSION: i64 = 1;

/// A character that sorts after every character a stream name may hold (`[a-zA-Z0-9_.-]`), so
/// `prefix || '~'` bounds the names that start with `prefix`.
const AFTER_NAME_CHARS: char = '~';

pub struct SqliteStreamStore {
    conn: Arc<Mutex<Connection>>,
}

/// Creates the stream tables if the file has none yet, and checks their version.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS streams (
             account  TEXT NOT NULL,
             region   TEXT NOT NULL,
             name     TEXT NOT NULL,
             revision INTEGER NOT NULL,
             arn      TEXT NOT NULL,
             record   TEXT NOT NULL,
             PRIMARY KEY (account, region, name)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS media_links (
             account     TEXT NOT NULL,
             region      TEXT NOT NULL,
             channel_arn TEXT NOT NULL,
             stream_arn  TEXT NOT NULL,
             record      TEXT NOT NULL,
             PRIMARY KEY (account, region, channel_arn),
             UNIQUE (account, region, stream_arn)
         ) WITHOUT ROWID;",
    )
    .map_err(backend)?;
    let found: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'streams_schema'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    match found {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('streams_schema', ?1)",
                params![STREAMS_SCHEMA_VERSION],
            )
            .map_err(backend)?;
            Ok(())
        }
        Some(STREAMS_SCHEMA_VERSION) => Ok(()),
        Some(v) => Err(StoreError::Corrupt(format!(
            "stream schema {v} is not supported by this build (expects {STREAMS_SCHEMA_VERSION})"
        ))),
    }
}

fn decode_stream(text: &str) -> Result<Stream, StoreError> {
    Stream::try_from(StoredStream::from_json(text)?)
}

fn decode_link(text: &str) -> Result<MediaLink, StoreError> {
    MediaLink::try_from(StoredLink::from_json(text)?)
}

impl SqliteStreamStore {
    /// Opens the database file of `dir` (`kvs.sqlite3`), adding the stream tables if needed.
    /// The caller holds the data directory's lock: open the channel store
    /// ([`crate::SqliteStore::open_dir`]) first.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open_file(&dir.join(crate::FILE_NAME))
    }

    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        migrate(&conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` in one immediate transaction on the blocking pool; commits when it succeeds.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic mid-call leaves no open transaction (it is rolled back on drop).
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let out = f(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("stream store task failed: {e}")))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("stream store task failed: {e}")))?
    }
}

/// The stored revision and ARN of a stream, if it is stored.
fn current(
    conn: &Connection,
    ns: &Namespace,
    name: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    conn.prepare_cached(
        "SELECT revision, arn FROM streams WHERE account=?1 AND region=?2 AND name=?3",
    )
    .and_then(|mut s| {
        s.query_row(
            params![ns.account.as_str(), ns.region.as_str(), name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
    })
    .map_err(backend)
}

fn link_query(
    conn: &Connection,
    ns: &Namespace,
    column: &str,
    arn: &str,
) -> Result<Option<MediaLink>, StoreError> {
    let sql =
        format!("SELECT record FROM media_links WHERE account=?1 AND region=?2 AND {column}=?3");
    let text: Option<String> = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![ns.account.as_str(), ns.region.as_str(), arn], |r| {
                r.get(0)
            })
            .optional()
        })
        .map_err(backend)?;
    text.as_deref().map(decode_link).transpose()
}

fn delete_link(
    conn: &Connection,
    ns: &Namespace,
    column: &str,
    arn: &str,
) -> Result<(), StoreError> {
    let sql = format!("DELETE FROM media_links WHERE account=?1 AND region=?2 AND {column}=?3");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.execute(params![ns.account.as_str(), ns.region.as_str(), arn]))
        .map(|_| ())
        .map_err(backend)
}

#[async_trait]
impl StreamStore for SqliteStreamStore {
    async fn insert(&self, stream: Stream, max_per_namespace: usize) -> Result<(), StoreError> {
        let record = StoredStream::from(&stream).to_json()?;
        let revision = rev(stream.revision)?;
        self.write(move |tx| {
            let ns = &stream.ns;
            if current(tx, ns, stream.name.as_str())?.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            let count: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM streams WHERE account=?1 AND region=?2",
                    params![ns.account.as_str(), ns.region.as_str()],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_namespace {
                return Err(StoreError::LimitExceeded);
            }
            tx.execute(
                "INSERT INTO streams (account, region, name, revision, arn, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    ns.account.as_str(),
                    ns.region.as_str(),
                    stream.name.as_str(),
                    revision,
                    stream.arn.as_str(),
                    record
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, ns: &Namespace, name: &StreamName) -> Result<Option<Stream>, StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        self.read(move |conn| {
            let text: Option<String> = conn
                .prepare_cached(
                    "SELECT record FROM streams WHERE account=?1 AND region=?2 AND name=?3",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![ns.account.as_str(), ns.region.as_str(), name.as_str()],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(backend)?;
            text.as_deref().map(decode_stream).transpose()
        })
        .await
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&StreamName>,
        limit: usize,
    ) -> Result<Vec<Stream>, StoreError> {
        let ns = ns.clone();
        let prefix = prefix.map(str::to_owned);
        let after = after.map(|a| a.as_str().to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            // The page starts at the prefix or just after the cursor, whichever is later, and
            // ends with the names that start with the prefix.
            let (op, start) = match (&after, &prefix) {
                (Some(a), Some(p)) if a < p => (">=", p.clone()),
                (Some(a), _) => (">", a.clone()),
                (None, Some(p)) => (">=", p.clone()),
                (None, None) => (">=", String::new()),
            };
            let end = prefix
                .as_ref()
                .map(|p| format!("{p}{AFTER_NAME_CHARS}"))
                .unwrap_or_else(|| AFTER_NAME_CHARS.to_string());
            let sql = format!(
                "SELECT record FROM streams WHERE account=?1 AND region=?2 AND name {op} ?3
                 AND name < ?4 ORDER BY name LIMIT ?5"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![ns.account.as_str(), ns.region.as_str(), start, end, limit],
                    |r| r.get::<_, String>(0),
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(decode_stream(&row.map_err(backend)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn replace(&self, stream: Stream, expected_revision: u64) -> Result<(), StoreError> {
        let record = StoredStream::from(&stream).to_json()?;
        let revision = rev(stream.revision)?;
        let expected = rev(expected_revision)?;
        self.write(move |tx| {
            let ns = &stream.ns;
            match current(tx, ns, stream.name.as_str())? {
                None => return Err(StoreError::NotFound),
                Some((r, _)) if r != expected => return Err(StoreError::VersionConflict),
                Some(_) => {}
            }
            tx.execute(
                "UPDATE streams SET revision=?4, arn=?5, record=?6
                 WHERE account=?1 AND region=?2 AND name=?3",
                params![
                    ns.account.as_str(),
                    ns.region.as_str(),
                    stream.name.as_str(),
                    revision,
                    stream.arn.as_str(),
                    record
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn clear(&self) -> Result<usize, StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM media_links", []).map_err(backend)?;
            tx.execute("DELETE FROM streams", []).map_err(backend)
        })
        .await
    }

    async fn remove(
        &self,
        ns: &Namespace,
        name: &StreamName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        let expected = rev(expected_revision)?;
        self.write(move |tx| {
            let arn = match current(tx, &ns, name.as_str())? {
                None => return Err(StoreError::NotFound),
                Some((r, _)) if r != expected => return Err(StoreError::VersionConflict),
                Some((_, arn)) => arn,
            };
            tx.execute(
                "DELETE FROM streams WHERE account=?1 AND region=?2 AND name=?3",
                params![ns.account.as_str(), ns.region.as_str(), name.as_str()],
            )
            .map_err(backend)?;
            delete_link(tx, &ns, "stream_arn", &arn)
        })
        .await
    }

    async fn link_of_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        let (ns, arn) = (ns.clone(), channel_arn.to_string());
        self.read(move |conn| link_query(conn, &ns, "channel_arn", &arn))
            .await
    }

    async fn link_of_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        let (ns, arn) = (ns.clone(), stream_arn.to_string());
        self.read(move |conn| link_query(conn, &ns, "stream_arn", &arn))
            .await
    }

    async fn set_link(&self, link: MediaLink) -> Result<(), StoreError> {
        let record = StoredLink::from(&link).to_json()?;
        self.write(move |tx| {
            let ns = &link.ns;
            let stored = current(tx, ns, &link.stream_arn.name)?
                .is_some_and(|(_, arn)| arn == link.stream_arn.as_str());
            if !stored {
                return Err(StoreError::NotFound);
            }
            if let Some(other) = link_query(tx, ns, "stream_arn", link.stream_arn.as_str())? {
                if other.channel_arn != link.channel_arn {
                    return Err(StoreError::AlreadyExists);
                }
            }
            delete_link(tx, ns, "channel_arn", link.channel_arn.as_str())?;
            tx.execute(
                "INSERT INTO media_links (account, region, channel_arn, stream_arn, record)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    ns.account.as_str(),
                    ns.region.as_str(),
                    link.channel_arn.as_str(),
                    link.stream_arn.as_str(),
                    record
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn unlink_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<(), StoreError> {
        let (ns, arn) = (ns.clone(), channel_arn.to_string());
        self.write(move |tx| delete_link(tx, &ns, "channel_arn", &arn))
            .await
    }

    async fn unlink_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<(), StoreError> {
        let (ns, arn) = (ns.clone(), stream_arn.to_string());
        self.write(move |tx| delete_link(tx, &ns, "stream_arn", &arn))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::test_dir;
    use kvs_core::streams::conformance;

    /// A fresh store in a directory of its own (the file is created on open).
    async fn fresh() -> Arc<SqliteStreamStore> {
        let dir = test_dir();
        std::fs::create_dir_all(&dir).unwrap();
        Arc::new(SqliteStreamStore::open_dir(&dir).unwrap())
    }

    kvs_core::stream_store_conformance!(fresh());

    #[tokio::test]
    async fn streams_and_links_survive_reopen_beside_channels() {
        let dir = test_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let s = conformance::stream(&a, "kept");
        {
            let channels = crate::SqliteStore::open_dir(&dir).unwrap();
            let streams = SqliteStreamStore::open_dir(&dir).unwrap();
            streams.insert(s.clone(), 10).await.unwrap();
            streams
                .set_link(conformance::link(&a, "cam", &s, true))
                .await
                .unwrap();
            // Channels and streams share the file and do not disturb each other.
            use kvs_core::store::Store;
            channels
                .insert(kvs_core::store::conformance::channel(&a, "cam"), 10)
                .await
                .unwrap();
        }
        let channels = crate::SqliteStore::open_dir(&dir).unwrap();
        assert_eq!(channels.len(), 1);
        let streams = SqliteStreamStore::open_dir(&dir).unwrap();
        assert_eq!(streams.get(&a, &s.name).await.unwrap(), Some(s.clone()));
        assert!(streams.link_of_stream(&a, &s.arn).await.unwrap().is_some());
        streams.ping().await.unwrap();
        drop(streams);
        drop(channels);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
