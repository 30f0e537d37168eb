//! Embedded default store: one SQLite database in WAL mode with `synchronous=FULL`, so a write is
//! on disk before the request that made it is acknowledged (it survives `kill -9` and power loss).
//!
//! Reads are served from the in-memory [`Index`], loaded once at start-up; the database is only
//! written. One writer thread owns the connection and commits in groups: it takes every change
//! waiting in its queue (up to `max_batch`), checks each against the index plus the changes
//! accepted ahead of it in the batch, writes the accepted ones in one transaction (one fsync for
//! all of them), applies them to the index, and only then answers each caller. Concurrent creates
//! therefore cost one fsync per batch instead of one each (issue 7), and a change is visible to
//! readers only once it is durable.
//!
//! The queue is bounded (`queue`); when it is full, callers wait for room (backpressure, no
//! drop). Rows keep the key columns beside the versioned JSON record (see `record.rs`).

use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::record::StoredChannel;
use super::{Change, Index, Staged, Store, StoreError};
use crate::ids::{ChannelName, Namespace};
use crate::model::Channel;

const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// Most changes committed in one transaction.
    pub max_batch: usize,
    /// Changes waiting for the writer before callers wait for room.
    pub queue: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_batch: 256,
            queue: 4096,
        }
    }
}

struct Job {
    change: Change,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

pub struct SqliteStore {
    index: Arc<RwLock<Index>>,
    writer: mpsc::Sender<Job>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn read(index: &RwLock<Index>) -> RwLockReadGuard<'_, Index> {
    // Only the writer thread writes, and it applies a batch whole: a poisoned lock still holds
    // a consistent index.
    index
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens (creating if needed) `kvs.sqlite3` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open_dir_with(dir, SqliteOptions::default())
    }

    pub fn open_dir_with(dir: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        Self::open(&dir.join("kvs.sqlite3"), options)
    }

    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        let index = Arc::new(RwLock::new(load_index(&conn)?));
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let writer_index = Arc::clone(&index);
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("kvs-sqlite-writer".into())
            .spawn(move || writer_loop(conn, &writer_index, rx, max_batch))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { index, writer: tx })
    }

    /// Number of channels held (all namespaces); for start-up logs.
    pub fn len(&self) -> usize {
        read(&self.index).len()
    }

    pub fn is_empty(&self) -> bool {
        read(&self.index).is_empty()
    }

    async fn submit(&self, change: Change) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { change, reply })
            .await
            .map_err(|_| StoreError::Backend("the sqlite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the sqlite writer has stopped".into()))?
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
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
    Ok(conn)
}

fn load_index(conn: &Connection) -> Result<Index, StoreError> {
    let mut index = Index::default();
    let mut stmt = conn
        .prepare("SELECT record FROM channels")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(backend)?;
    for row in rows {
        let text = row.map_err(backend)?;
        index.load(Channel::try_from(StoredChannel::from_json(&text)?)?);
    }
    Ok(index)
}

fn writer_loop(
    mut conn: Connection,
    index: &RwLock<Index>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, index, &mut jobs);
    }
}

/// Checks, writes, applies and answers one batch; leaves `jobs` empty.
fn commit_batch(conn: &mut Connection, index: &RwLock<Index>, jobs: &mut Vec<Job>) {
    let mut staged = Staged::default();
    let mut verdicts: Vec<Result<(), StoreError>> = {
        let index = read(index);
        jobs.iter()
            .map(|job| {
                let verdict = index.check(&job.change, &staged);
                if verdict.is_ok() {
                    staged.stage(&job.change);
                }
                verdict
            })
            .collect()
    };
    let accepted: Vec<&Change> = jobs
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_ok())
        .map(|(j, _)| &j.change)
        .collect();
    if !accepted.is_empty() {
        match write(conn, &accepted) {
            Ok(()) => {
                let mut index = index
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for (job, verdict) in jobs.iter().zip(&verdicts) {
                    if verdict.is_ok() {
                        index.apply(job.change.clone());
                    }
                }
            }
            Err(e) => {
                for v in verdicts.iter_mut().filter(|v| v.is_ok()) {
                    *v = Err(e.clone());
                }
            }
        }
    }
    for (job, verdict) in jobs.drain(..).zip(verdicts) {
        // A caller that stopped waiting (its request was cancelled) still had its change
        // committed; nobody is left to tell.
        let _ = job.reply.send(verdict);
    }
}

fn rev(r: u64) -> Result<i64, StoreError> {
    i64::try_from(r).map_err(|_| StoreError::Backend(format!("revision {r} out of range")))
}

/// Runs `sql` with a channel's row as ?1 account, ?2 region, ?3 name, ?4 revision, ?5 record.
fn write_row(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    channel: &Channel,
) -> Result<(), StoreError> {
    let record = StoredChannel::from(channel).to_json()?;
    tx.prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                channel.ns.account.as_str(),
                channel.ns.region.as_str(),
                channel.name.as_str(),
                rev(channel.revision).unwrap_or(i64::MAX),
                record
            ])
        })
        .map(|_| ())
        .map_err(backend)
}

/// Writes `changes` in one transaction: one commit, one fsync.
fn write(conn: &mut Connection, changes: &[&Change]) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(backend)?;
    for change in changes {
        match change {
            Change::Insert { channel, .. } => write_row(
                &tx,
                "INSERT INTO channels (account, region, name, revision, record)
                 VALUES (?1,?2,?3,?4,?5)",
                channel,
            )?,
            Change::Replace { channel, .. } => write_row(
                &tx,
                "UPDATE channels SET revision=?4, record=?5
                 WHERE account=?1 AND region=?2 AND name=?3",
                channel,
            )?,
            Change::Remove { ns, name, .. } => {
                tx.prepare_cached(
                    "DELETE FROM channels WHERE account=?1 AND region=?2 AND name=?3",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        ns.account.as_str(),
                        ns.region.as_str(),
                        name.as_str()
                    ])
                })
                .map_err(backend)?;
            }
        }
    }
    tx.commit().map_err(backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, channel: Channel, max_per_namespace: usize) -> Result<(), StoreError> {
        rev(channel.revision)?;
        self.submit(Change::Insert {
            channel,
            max_per_namespace,
        })
        .await
    }

    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        Ok(read(&self.index).get(ns, name).cloned())
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        Ok(read(&self.index).list(ns, prefix, after, limit))
    }

    async fn replace(&self, channel: Channel, expected_revision: u64) -> Result<(), StoreError> {
        rev(channel.revision)?;
        self.submit(Change::Replace {
            channel,
            expected_revision,
        })
        .await
    }

    async fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        self.submit(Change::Remove {
            ns: ns.clone(),
            name: name.clone(),
            expected_revision,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::conformance;

    pub(super) fn temp_dir() -> std::path::PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kvs-sqlite-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    crate::store_conformance!(async { Arc::new(SqliteStore::open_dir(&temp_dir()).unwrap()) });

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = temp_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let c = conformance::channel(&a, "durable");
        let mut d = conformance::channel(&a, "dropped");
        {
            let s = SqliteStore::open_dir(&dir).unwrap();
            s.insert(c.clone(), 10).await.unwrap();
            s.insert(d.clone(), 10).await.unwrap();
            d.revision = 2;
            s.replace(d.clone(), 1).await.unwrap();
            s.remove(&a, &d.name, 2).await.unwrap();
        }
        let s = SqliteStore::open_dir(&dir).unwrap();
        assert_eq!(s.get(&a, &c.name).await.unwrap(), Some(c));
        assert_eq!(s.get(&a, &d.name).await.unwrap(), None);
        assert_eq!(s.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_are_group_committed_and_all_durable() {
        let dir = temp_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        {
            let s = Arc::new(SqliteStore::open_dir(&dir).unwrap());
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let s = Arc::clone(&s);
                    let c = conformance::channel(&a, &format!("c{i:03}"));
                    tokio::spawn(async move { s.insert(c, 150).await })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(()) => ok += 1,
                    Err(e) => assert_eq!(e, StoreError::LimitExceeded),
                }
            }
            // The limit is exact even when the inserts share batches.
            assert_eq!(ok, 150);
        }
        let s = SqliteStore::open_dir(&dir).unwrap();
        assert_eq!(s.len(), 150);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn unknown_record_format_is_reported_not_guessed() {
        let dir = temp_dir();
        {
            let s = SqliteStore::open_dir(&dir).unwrap();
            let a = conformance::ns("111111111111", "us-east-1");
            s.insert(conformance::channel(&a, "future"), 10)
                .await
                .unwrap();
        }
        let conn = Connection::open(dir.join("kvs.sqlite3")).unwrap();
        conn.execute(
            "UPDATE channels SET record = replace(record, '\"format\":1', '\"format\":99')",
            [],
        )
        .unwrap();
        drop(conn);
        assert!(matches!(
            SqliteStore::open_dir(&dir),
            Err(StoreError::Corrupt(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
