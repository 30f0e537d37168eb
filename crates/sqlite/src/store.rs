//! [`SqliteStore`]: the embedded default store (`--store sqlite`), the [`Store`] port over one
//! SQLite file in the data directory.
//!
//! Reads are served from the in-memory [`Index`], loaded once at start-up; the database is only
//! written, by the writer thread (`writer.rs`), which commits in groups and answers each caller
//! once its change is durable. This type is the async front of that thread: it queues jobs and
//! waits for their answers. The queue is bounded (`queue`); when it is full, callers wait for
//! room (backpressure, no drop). Purges of finished deletes (a read path's housekeeping) are
//! queued without waiting for their commit, so a read never waits for an fsync and a burst of
//! them shares one.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use kvs_core::ids::{ChannelName, Namespace};
use kvs_core::model::Channel;
use kvs_core::store::{Change, Index, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::db;
use crate::lock::{DataDirLock, LockError};
use crate::writer::{self, Job};

/// How long `GET /ready` waits for the writer to answer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most changes committed in one transaction.
    pub max_batch: usize,
    /// Changes waiting for the writer before callers wait for room.
    pub queue: usize,
    /// Who holds the data directory, beside the pid, for the error of a second process (e.g.
    /// `listening on http://127.0.0.1:4580`).
    pub holder: String,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_batch: 256,
            queue: 4096,
            holder: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the sqlite writer thread: {0}")]
    Thread(std::io::Error),
}

pub struct SqliteStore {
    index: Arc<RwLock<Index>>,
    writer: mpsc::Sender<Job>,
    thread: Option<JoinHandle<()>>,
    /// Shared with the writer thread: the directory stays locked while either runs.
    _lock: Arc<DataDirLock>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the sqlite writer has stopped".into())
}

impl SqliteStore {
    /// Locks `dir` and opens (creating if needed) `kvs.sqlite3` in it.
    pub fn open_dir(dir: &Path) -> Result<Self, OpenError> {
        Self::open_dir_with(dir, SqliteOptions::default())
    }

    pub fn open_dir_with(dir: &Path, options: SqliteOptions) -> Result<Self, OpenError> {
        // Before the file is opened: a second process must not even load the index.
        let lock = Arc::new(DataDirLock::acquire(dir, &options.holder)?);
        let path = dir.join(db::FILE_NAME);
        let conn = db::open(&path)?;
        let index = Arc::new(RwLock::new(db::load_index(&conn)?));
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let ctx = writer::Ctx {
            path,
            index: Arc::clone(&index),
            max_batch: options.max_batch.max(1),
        };
        let thread = writer::spawn(ctx, conn, rx, Arc::clone(&lock)).map_err(OpenError::Thread)?;
        Ok(Self {
            index,
            writer: tx,
            thread: Some(thread),
            _lock: lock,
        })
    }

    /// Number of channels held (all namespaces); for start-up logs.
    pub fn len(&self) -> usize {
        writer::read(&self.index).len()
    }

    pub fn is_empty(&self) -> bool {
        writer::read(&self.index).is_empty()
    }

    async fn submit(&self, change: Change) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job::Change {
                change,
                reply: Some(reply),
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| {
            StoreError::Backend(
                "the sqlite writer stopped while writing this change; the change may or may \
                 not be on disk"
                    .into(),
            )
        })?
    }

    #[cfg(test)]
    pub(crate) async fn send_test_job(&self, job: Job) {
        assert!(self.writer.send(job).await.is_ok(), "writer stopped");
    }
}

impl Drop for SqliteStore {
    /// Closes the queue and waits for the writer to finish what is queued and release the
    /// data directory, so the directory can be opened again as soon as this returns.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.writer, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, channel: Channel, max_per_namespace: usize) -> Result<(), StoreError> {
        db::rev(channel.revision)?;
        self.submit(Change::Insert {
            channel,
            max_per_namespace,
        })
        .await
    }

    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        Ok(writer::read(&self.index).get(ns, name).cloned())
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        Ok(writer::read(&self.index).list(ns, prefix, after, limit))
    }

    async fn replace(&self, channel: Channel, expected_revision: u64) -> Result<(), StoreError> {
        db::rev(channel.revision)?;
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

    /// Queued behind the caller's earlier writes and ahead of its later ones (one FIFO queue),
    /// not waited for: it commits with whatever batch the writer takes next.
    async fn purge(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        self.writer
            .send(Job::Change {
                change: Change::Remove {
                    ns: ns.clone(),
                    name: name.clone(),
                    expected_revision,
                },
                reply: None,
            })
            .await
            .map_err(|_| stopped())
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        Ok(writer::read(&self.index).namespaces())
    }

    /// Queued like a change: what the caller wrote before is removed too.
    async fn clear(&self) -> Result<Vec<Channel>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job::Clear(reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| {
            StoreError::Backend(
                "the sqlite writer stopped while clearing; some channels may remain".into(),
            )
        })?
    }

    /// The writer answers a ping between two batches: it is running and taking jobs.
    async fn ping(&self) -> Result<(), StoreError> {
        let round_trip = async {
            let (reply, answer) = oneshot::channel();
            self.writer
                .send(Job::Ping(reply))
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())
        };
        tokio::time::timeout(PING_TIMEOUT, round_trip)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the sqlite writer did not answer within {PING_TIMEOUT:?}"
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::test_dir;
    use crate::writer::{Reply, MAX_RESTARTS};
    use kvs_core::store::{conformance, StoredChannel};

    /// Writes `c`'s row through a second connection, as if another process had.
    fn write_behind_the_index(dir: &Path, c: &Channel) {
        let other = Connection::open(dir.join(db::FILE_NAME)).unwrap();
        other
            .execute(
                "INSERT INTO channels (account, region, name, revision, record)
                 VALUES (?1, ?2, ?3, 1, ?4)",
                rusqlite::params![
                    c.ns.account.as_str(),
                    c.ns.region.as_str(),
                    c.name.as_str(),
                    StoredChannel::from(c).to_json().unwrap()
                ],
            )
            .unwrap();
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = test_dir();
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
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A clear is on disk when it resolves, and it removes what was queued ahead of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clear_survives_reopen() {
        let dir = test_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        {
            let s = SqliteStore::open_dir(&dir).unwrap();
            s.insert(conformance::channel(&a, "one"), 10).await.unwrap();
            // Queued without waiting, so the clear is behind it in the same queue.
            let two = conformance::channel(&a, "two");
            let (inserted, cleared) = tokio::join!(s.insert(two, 10), s.clear());
            inserted.unwrap();
            let cleared = cleared.unwrap();
            assert!(!cleared.is_empty());
            assert!(s.is_empty() || s.len() == 1);
            let _ = s.clear().await.unwrap();
        }
        let s = SqliteStore::open_dir(&dir).unwrap();
        assert!(s.is_empty());
        assert!(s.namespaces().await.unwrap().is_empty());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_are_group_committed_and_all_durable() {
        let dir = test_dir();
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
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn unknown_record_format_is_reported_not_guessed() {
        let dir = test_dir();
        {
            let s = SqliteStore::open_dir(&dir).unwrap();
            let a = conformance::ns("111111111111", "us-east-1");
            s.insert(conformance::channel(&a, "future"), 10)
                .await
                .unwrap();
        }
        let conn = Connection::open(dir.join(db::FILE_NAME)).unwrap();
        conn.execute(
            "UPDATE channels SET record = replace(record, '\"format\":1', '\"format\":99')",
            [],
        )
        .unwrap();
        drop(conn);
        assert!(matches!(
            SqliteStore::open_dir(&dir),
            Err(OpenError::Store(StoreError::Corrupt(_)))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_second_store_on_one_dir_is_refused_until_the_first_is_dropped() {
        let dir = test_dir();
        let first = SqliteStore::open_dir_with(
            &dir,
            SqliteOptions {
                holder: "the first".into(),
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        match SqliteStore::open_dir(&dir) {
            Err(OpenError::Locked(LockError::Held { holder, .. })) => {
                assert_eq!(holder, format!("pid {}, the first", std::process::id()));
            }
            Err(e) => panic!("expected the lock to be held, got {e}"),
            Ok(_) => panic!("a second store opened a locked data directory"),
        }
        drop(first);
        let again = SqliteStore::open_dir(&dir).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A row that fails in SQL (here: a primary-key conflict with a row written behind the
    /// index's back) fails only its own change; the other changes of its batch, another
    /// account's among them, commit and are acknowledged.
    #[tokio::test]
    async fn a_failing_row_fails_only_its_own_write() {
        let dir = test_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let b = conformance::ns("222222222222", "us-east-1");
        let clash = conformance::channel(&a, "clash");
        let index = Arc::new(RwLock::new(Index::default()));
        {
            let _lock = DataDirLock::acquire(&dir, "").unwrap();
            let mut conn = db::open(&dir.join(db::FILE_NAME)).unwrap();
            // Another connection writes the conflicting row; the index does not know it.
            write_behind_the_index(&dir, &clash);
            let changes = vec![
                conformance::channel(&b, "good-1"),
                clash.clone(),
                conformance::channel(&b, "good-2"),
                conformance::channel(&a, "good-3"),
            ];
            let mut answers = Vec::new();
            let mut batch: Vec<(Change, Option<Reply>)> = changes
                .into_iter()
                .map(|channel| {
                    let (tx, rx) = oneshot::channel();
                    answers.push(rx);
                    (
                        Change::Insert {
                            channel,
                            max_per_namespace: 10,
                        },
                        Some(tx),
                    )
                })
                .collect();
            let verdicts = writer::commit(&mut conn, &index, &batch);
            writer::answer(&index, &mut batch, verdicts);
            let answers: Vec<_> = answers
                .into_iter()
                .map(|mut rx| rx.try_recv().unwrap())
                .collect();
            assert!(answers[0].is_ok(), "{:?}", answers[0]);
            assert!(
                matches!(&answers[1], Err(StoreError::Backend(e)) if e.contains("UNIQUE")),
                "{:?}",
                answers[1]
            );
            assert!(answers[2].is_ok(), "{:?}", answers[2]);
            assert!(answers[3].is_ok(), "{:?}", answers[3]);
            // The index holds exactly what was acknowledged.
            let index = writer::read(&index);
            assert!(index.get(&a, &clash.name).is_none());
            assert_eq!(index.len(), 3);
        }
        // The acknowledged rows are on disk; the conflicting row is the one written beside.
        let conn = Connection::open(dir.join(db::FILE_NAME)).unwrap();
        let mut names: Vec<String> = conn
            .prepare("SELECT account || '/' || name FROM channels ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "111111111111/clash",
                "111111111111/good-3",
                "222222222222/good-1",
                "222222222222/good-2"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same through the store: with the writer paused, the conflicting insert and good
    /// inserts of another account queue up and are committed as one batch.
    #[tokio::test]
    async fn a_failing_row_fails_only_its_own_write_through_the_store() {
        let dir = test_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let b = conformance::ns("222222222222", "us-east-1");
        let s = Arc::new(SqliteStore::open_dir(&dir).unwrap());
        write_behind_the_index(&dir, &conformance::channel(&a, "clash"));
        let (resume, paused) = std::sync::mpsc::channel();
        s.send_test_job(Job::Pause(paused)).await;
        let insert = |c: Channel| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.insert(c, 10).await })
        };
        let good_1 = insert(conformance::channel(&b, "good-1"));
        tokio::task::yield_now().await;
        let clash = insert(conformance::channel(&a, "clash"));
        tokio::task::yield_now().await;
        let good_2 = insert(conformance::channel(&b, "good-2"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        resume.send(()).unwrap();
        assert_eq!(good_1.await.unwrap(), Ok(()));
        assert!(matches!(clash.await.unwrap(), Err(StoreError::Backend(_))));
        assert_eq!(good_2.await.unwrap(), Ok(()));
        drop(s);
        let s = SqliteStore::open_dir(&dir).unwrap();
        for name in ["good-1", "good-2"] {
            let name = ChannelName::parse("n", name).unwrap();
            assert!(
                s.get(&b, &name).await.unwrap().is_some(),
                "{name} after reopen"
            );
        }
        // The row written beside the store is the one that was there.
        assert_eq!(s.len(), 3);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Purges are queued, not waited for: with the writer paused, every purge still returns at
    /// once, and all of them then commit in one batch. A later write is ordered after them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn purges_do_not_wait_for_the_disk_and_share_one_commit() {
        let dir = test_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let s = SqliteStore::open_dir(&dir).unwrap();
        for i in 0..50 {
            s.insert(conformance::channel(&a, &format!("gone-{i:02}")), 50)
                .await
                .unwrap();
        }
        let (resume, paused) = std::sync::mpsc::channel();
        s.send_test_job(Job::Pause(paused)).await;
        for i in 0..50 {
            let name = ChannelName::parse("n", &format!("gone-{i:02}")).unwrap();
            tokio::time::timeout(Duration::from_secs(1), s.purge(&a, &name, 1))
                .await
                .expect("a purge waited for the writer")
                .unwrap();
        }
        // Still there: nothing is applied before it is on disk.
        assert_eq!(s.len(), 50);
        // Queued behind the purges: the namespace has room again when it is checked.
        let insert = s.insert(conformance::channel(&a, "after"), 1);
        resume.send(()).unwrap();
        insert.await.unwrap();
        assert_eq!(s.len(), 1);
        drop(s);
        let s = SqliteStore::open_dir(&dir).unwrap();
        assert_eq!(s.len(), 1);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn ping_answers_while_the_writer_runs() {
        let dir = test_dir();
        let s = SqliteStore::open_dir(&dir).unwrap();
        s.ping().await.unwrap();
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A writer that panics between commit and apply is restarted with the index reloaded
    /// from the file: the committed change shows, later writes work, ping answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_writer_is_restarted_with_the_index_reloaded() {
        let dir = test_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let s = Arc::new(SqliteStore::open_dir(&dir).unwrap());
        let (resume, paused) = std::sync::mpsc::channel();
        s.send_test_job(Job::Pause(paused)).await;
        s.send_test_job(Job::CrashAfterCommit).await;
        let c = conformance::channel(&a, "in-the-crash");
        let lost_answer = {
            let s = Arc::clone(&s);
            let c = c.clone();
            tokio::spawn(async move { s.insert(c, 10).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        resume.send(()).unwrap();
        // Its caller is told the outcome is unknown...
        assert!(matches!(
            lost_answer.await.unwrap(),
            Err(StoreError::Backend(_))
        ));
        // ...and the restarted writer's index shows it was committed.
        s.ping().await.unwrap();
        assert_eq!(s.get(&a, &c.name).await.unwrap(), Some(c.clone()));
        s.insert(conformance::channel(&a, "after"), 10)
            .await
            .unwrap();
        assert_eq!(
            s.insert(c.clone(), 10).await,
            Err(StoreError::AlreadyExists),
            "the reloaded index checks against the file's rows"
        );
        drop(s);
        let s = SqliteStore::open_dir(&dir).unwrap();
        assert_eq!(s.len(), 2);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Past the restart budget the writer stays stopped: ping (so `/ready`) and writes answer
    /// Unavailable, reads still answer from the index.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_keeps_panicking_stays_stopped_and_ping_fails() {
        let dir = test_dir();
        let a = conformance::ns("111111111111", "us-east-1");
        let s = SqliteStore::open_dir(&dir).unwrap();
        s.insert(conformance::channel(&a, "kept"), 10)
            .await
            .unwrap();
        for i in 0..=MAX_RESTARTS {
            s.send_test_job(Job::CrashAfterCommit).await;
            // A change to commit, so the batch runs and the writer crashes.
            let _ = s
                .insert(conformance::channel(&a, &format!("c{i}")), 100)
                .await;
        }
        assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));
        assert!(matches!(
            s.insert(conformance::channel(&a, "refused"), 100).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(s
            .get(&a, &conformance::channel(&a, "kept").name)
            .await
            .unwrap()
            .is_some());
        // This process still serves the directory: it stays locked.
        assert!(matches!(
            SqliteStore::open_dir(&dir),
            Err(OpenError::Locked(LockError::Held { .. }))
        ));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
