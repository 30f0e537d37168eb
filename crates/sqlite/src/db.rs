//! The database file: its schema, loading it into an [`Index`], and writing one change as one
//! row. Everything that speaks SQL is here, so the writer thread (`writer.rs`) reads as queue
//! handling only.
//!
//! One SQLite database in WAL mode with `synchronous=FULL`: a transaction is on disk when its
//! commit returns (it survives `kill -9` and power loss). Rows keep the key columns beside the
//! versioned JSON record of `kvs_core::store::StoredChannel`.

use std::path::Path;

use kvs_core::model::Channel;
use kvs_core::store::{Change, Index, StoreError, StoredChannel};
use rusqlite::{params, Connection, OptionalExtension};

/// Name of the database file inside the data directory.
pub const FILE_NAME: &str = "kvs.sqlite3";

const SCHEMA_VERSION: i64 = 1;

pub fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Opens (creating if needed) the database at `path` and checks its schema version.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
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

/// Every channel in the file, as a fresh index.
pub fn load_index(conn: &Connection) -> Result<Index, StoreError> {
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

/// Deletes every channel row in one transaction (`Store::clear`).
pub fn clear(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(backend)?;
    tx.execute("DELETE FROM channels", []).map_err(backend)?;
    tx.commit().map_err(backend)
}

pub fn rev(r: u64) -> Result<i64, StoreError> {
    i64::try_from(r).map_err(|_| StoreError::Backend(format!("revision {r} out of range")))
}

/// Writes one change inside `tx`, under its own savepoint: when the change fails (a constraint,
/// a row the index holds but the file does not), only its own statements are rolled back and
/// the rest of the batch's transaction goes on. The savepoint statements are prepared once
/// (cached), so a change pays two short statement steps for it, not two parses.
pub fn write_change(tx: &rusqlite::Transaction<'_>, change: &Change) -> Result<(), StoreError> {
    step(tx, "SAVEPOINT change")?;
    match write_statements(tx, change) {
        Ok(()) => step(tx, "RELEASE change"),
        Err(e) => {
            // Undo this change's statements, then drop the savepoint. If SQLite already rolled
            // the whole transaction back (an I/O error can), these fail too: the caller sees
            // that the transaction is gone.
            let _ = step(tx, "ROLLBACK TO change");
            let _ = step(tx, "RELEASE change");
            Err(e)
        }
    }
}

fn step(tx: &Connection, sql: &str) -> Result<(), StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(backend)
}

fn write_statements(tx: &Connection, change: &Change) -> Result<(), StoreError> {
    let rows = match change {
        Change::Insert { channel, .. } => write_row(
            tx,
            "INSERT INTO channels (account, region, name, revision, record)
             VALUES (?1,?2,?3,?4,?5)",
            channel,
        )?,
        Change::Replace { channel, .. } => write_row(
            tx,
            "UPDATE channels SET revision=?4, record=?5
             WHERE account=?1 AND region=?2 AND name=?3",
            channel,
        )?,
        Change::Remove { ns, name, .. } => tx
            .prepare_cached("DELETE FROM channels WHERE account=?1 AND region=?2 AND name=?3")
            .and_then(|mut s| {
                s.execute(params![
                    ns.account.as_str(),
                    ns.region.as_str(),
                    name.as_str()
                ])
            })
            .map_err(backend)?,
    };
    if rows != 1 {
        // The index said the row exists; the file disagrees. Refuse rather than let the two
        // drift further apart.
        let (ns, name) = change.key();
        return Err(StoreError::Backend(format!(
            "channel {name} of {}/{} is in the index but not in the database",
            ns.account.as_str(),
            ns.region.as_str()
        )));
    }
    Ok(())
}

/// Runs `sql` with a channel's row as ?1 account, ?2 region, ?3 name, ?4 revision, ?5 record;
/// returns the number of rows changed.
fn write_row(conn: &Connection, sql: &str, channel: &Channel) -> Result<usize, StoreError> {
    let record = StoredChannel::from(channel).to_json()?;
    let revision = rev(channel.revision)?;
    conn.prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                channel.ns.account.as_str(),
                channel.ns.region.as_str(),
                channel.name.as_str(),
                revision,
                record
            ])
        })
        .map_err(backend)
}
