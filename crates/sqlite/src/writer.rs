//! The writer thread: the only code that writes the database file or the in-memory index, so
//! every check against the index is exact. It owns the connection, shares the data directory's
//! lock with the store (released once both are gone), and commits in groups (issue 7): it takes every job waiting in its queue (up to
//! `max_batch`), checks each change against the index plus the changes accepted ahead of it,
//! writes each accepted change under its own savepoint in one transaction (one fsync for all of
//! them; a change that fails rolls back only itself), applies the written ones to the index and
//! only then answers each caller. A change is visible to readers only once it is durable.
//!
//! **If the thread panics it is restarted** (docs/behaviour.md, "The SQLite writer"): the
//! connection is dropped (SQLite rolls back an open transaction), the file is reopened and the
//! index is reloaded from it under the index's write lock before the next job is taken, so the
//! index never stays behind or ahead of the file. Callers whose change was in the batch that
//! panicked get an error; their change may or may not be on disk, which the reloaded index
//! shows. More than [`MAX_RESTARTS`] panics within [`RESTART_WINDOW`], or a file that cannot be
//! reopened, stop the writer for good: the queue closes, writes answer `Unavailable` and
//! `GET /ready` answers 503 until the process is restarted.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvs_core::model::Channel;
use kvs_core::store::{Change, Index, Staged, StoreError};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::db;
use crate::lock::DataDirLock;

/// Panics tolerated within [`RESTART_WINDOW`] before the writer stops for good.
pub const MAX_RESTARTS: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Attempts to reopen the file after a panic, with a doubling pause from 50 ms.
const REOPEN_ATTEMPTS: u32 = 5;

pub type Reply = oneshot::Sender<Result<(), StoreError>>;
pub type ClearReply = oneshot::Sender<Result<Vec<Channel>, StoreError>>;

// Nearly every job is a change: boxing it to shrink the rare pings would cost an allocation
// per write for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// A change; `reply` is `None` for a purge that nobody waits for.
    Change {
        change: Change,
        reply: Option<Reply>,
    },
    /// Answered as soon as it is taken: the writer is running (`GET /ready`).
    Ping(oneshot::Sender<()>),
    /// Removes every channel (`Store::clear`) after committing the changes taken ahead of it,
    /// answering with the channels removed.
    Clear(ClearReply),
    /// Test only: the writer blocks until the sender is dropped or sends.
    #[cfg(test)]
    Pause(std::sync::mpsc::Receiver<()>),
    /// Test only: the writer panics after committing its batch, before applying it.
    #[cfg(test)]
    CrashAfterCommit,
}

/// What the writer needs besides its queue and connection.
pub struct Ctx {
    pub path: PathBuf,
    pub index: Arc<RwLock<Index>>,
    pub max_batch: usize,
}

pub fn read(index: &RwLock<Index>) -> RwLockReadGuard<'_, Index> {
    // Only the writer thread writes, and it applies a batch whole or reloads the whole index
    // after a panic: a poisoned lock still holds a consistent index.
    index.read().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the writer thread; it holds `lock` until it stops (the store holds it too, so a
/// writer that gave up does not free the directory while this process still serves it).
pub fn spawn(
    ctx: Ctx,
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    lock: Arc<DataDirLock>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("kvs-sqlite-writer".into())
        .spawn(move || {
            supervise(&ctx, conn, rx);
            // Released only once the connection is closed and nothing more will be written.
            drop(lock);
        })
}

/// Runs the writer, restarting it after a panic (see the module doc). Returns when every
/// sender is gone or the writer gives up.
fn supervise(ctx: &Ctx, mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut panics: VecDeque<Instant> = VecDeque::new();
    loop {
        let outcome = catch_unwind(AssertUnwindSafe(|| run(ctx, conn, &mut rx)));
        let Err(panic) = outcome else { return };
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let now = Instant::now();
        panics.push_back(now);
        while panics
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            panics.pop_front();
        }
        if panics.len() > MAX_RESTARTS {
            tracing::error!(
                panic = %what,
                "the sqlite writer panicked {} times within {:?}; it stays stopped: writes fail \
                 and /ready answers 503 until the process is restarted",
                panics.len(),
                RESTART_WINDOW
            );
            return;
        }
        match reopen(ctx) {
            Ok(fresh) => {
                tracing::error!(
                    panic = %what,
                    channels = read(&ctx.index).len(),
                    "the sqlite writer panicked; restarted it with the index reloaded from the file"
                );
                conn = fresh;
            }
            Err(e) => {
                tracing::error!(
                    panic = %what,
                    error = %e,
                    "the sqlite writer panicked and the database cannot be reopened; it stays \
                     stopped: writes fail and /ready answers 503"
                );
                return;
            }
        }
    }
}

/// Reopens the file and replaces the index with what the file holds.
fn reopen(ctx: &Ctx) -> Result<Connection, StoreError> {
    let mut pause = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        let fresh = db::open(&ctx.path).and_then(|c| db::load_index(&c).map(|i| (c, i)));
        match fresh {
            Ok((conn, index)) => {
                *ctx.index.write().unwrap_or_else(PoisonError::into_inner) = index;
                ctx.index.clear_poison();
                return Ok(conn);
            }
            Err(e) if attempt >= REOPEN_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, attempt, "reopening the sqlite database");
                std::thread::sleep(pause);
                pause *= 2;
                attempt += 1;
            }
        }
    }
}

/// Takes jobs until every sender is gone.
fn run(ctx: &Ctx, mut conn: Connection, rx: &mut mpsc::Receiver<Job>) {
    let mut batch: Vec<(Change, Option<Reply>)> = Vec::with_capacity(ctx.max_batch);
    let mut crash = false;
    while let Some(first) = rx.blocking_recv() {
        // A clear ends the batch: the changes ahead of it are committed first.
        let mut clearing = None;
        crash |= take(first, &mut batch, &mut clearing);
        while clearing.is_none() && batch.len() < ctx.max_batch {
            match rx.try_recv() {
                Ok(job) => crash |= take(job, &mut batch, &mut clearing),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let verdicts = commit(&mut conn, &ctx.index, &batch);
            if crash {
                // Only a test job asks for this (see `Job::CrashAfterCommit`).
                panic!("the writer was asked to crash between commit and apply");
            }
            answer(&ctx.index, &mut batch, verdicts);
        }
        if let Some(reply) = clearing {
            let cleared = db::clear(&mut conn).map(|()| {
                ctx.index
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take_all()
            });
            let _ = reply.send(cleared);
        }
    }
}

/// Adds a change to the batch or handles a control job; true when a test asks for a crash.
fn take(
    job: Job,
    batch: &mut Vec<(Change, Option<Reply>)>,
    clearing: &mut Option<ClearReply>,
) -> bool {
    match job {
        Job::Change { change, reply } => batch.push((change, reply)),
        Job::Clear(reply) => *clearing = Some(reply),
        Job::Ping(reply) => {
            let _ = reply.send(());
        }
        #[cfg(test)]
        Job::Pause(until) => {
            let _ = until.recv();
        }
        #[cfg(test)]
        Job::CrashAfterCommit => return true,
    }
    false
}

/// Checks and writes `batch` in one transaction and commits it (one fsync, none when nothing
/// was accepted); returns each change's verdict. The index is only read.
pub fn commit(
    conn: &mut Connection,
    index: &RwLock<Index>,
    batch: &[(Change, Option<Reply>)],
) -> Vec<Result<(), StoreError>> {
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => return vec![Err(db::backend(e)); batch.len()],
    };
    let mut verdicts = Vec::with_capacity(batch.len());
    {
        let index = read(index);
        let mut staged = Staged::default();
        for (change, _) in batch {
            // A change is staged (seen by the ones behind it) only once its row is written, so
            // a failed row never makes a later check pass or fail.
            let verdict = index
                .check(change, &staged)
                .and_then(|()| db::write_change(&tx, change));
            match &verdict {
                Ok(()) => staged.stage(change),
                // SQLite rolled the whole transaction back (it may on I/O errors, a full disk):
                // nothing of the batch is written, and later statements must not run outside
                // a transaction.
                Err(e) if tx.is_autocommit() => return vec![Err(e.clone()); batch.len()],
                Err(_) => {}
            }
            verdicts.push(verdict);
        }
    }
    if verdicts.iter().any(Result::is_ok) {
        if let Err(e) = tx.commit() {
            let e = db::backend(e);
            for v in verdicts.iter_mut().filter(|v| v.is_ok()) {
                *v = Err(e.clone());
            }
        }
    }
    verdicts
}

/// Applies the committed changes to the index, then answers every caller; leaves `batch` empty.
pub fn answer(
    index: &RwLock<Index>,
    batch: &mut Vec<(Change, Option<Reply>)>,
    verdicts: Vec<Result<(), StoreError>>,
) {
    let mut replies = Vec::with_capacity(batch.len());
    {
        let mut index = index.write().unwrap_or_else(PoisonError::into_inner);
        for ((change, reply), verdict) in batch.drain(..).zip(verdicts) {
            if verdict.is_ok() {
                index.apply(change);
            }
            replies.push((reply, verdict));
        }
    }
    for (reply, verdict) in replies {
        match reply {
            // A caller that stopped waiting (its request was cancelled) still had its change
            // committed; nobody is left to tell.
            Some(reply) => {
                let _ = reply.send(verdict);
            }
            None => match verdict {
                // A purge that lost a race: someone else purged or replaced the channel.
                Ok(()) | Err(StoreError::NotFound | StoreError::VersionConflict) => {}
                Err(e) => tracing::warn!(error = %e, "purging a deleted channel failed"),
            },
        }
    }
}
