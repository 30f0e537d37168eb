//! One process per data directory: an exclusive OS lock on `LOCK` inside `--data-dir`, held for
//! as long as the store's writer runs.
//!
//! Two servers on one SQLite file would each serve their own in-memory index of it: two
//! diverging views of one store. SQLite's own locking does not prevent that (each transaction
//! is fine on its own), so the data directory is locked before the file is opened. The lock is
//! `flock(2)` on Unix and `LockFileEx` on Windows (std's `File::try_lock`): the kernel releases
//! it when the process ends however it ends, `kill -9` included, so a stale `LOCK` file never
//! keeps the next server out. The file holds one line naming the holder (its pid and what the
//! caller adds, e.g. its listen address), which the refused process puts in its error.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// The longest holder description read back from a lock file (it is put in one error line).
const MAX_HOLDER: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {} is in use by another process ({holder}): only one process may \
         serve a data directory; stop it or choose another --data-dir",
        dir.display()
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock data directory {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock on one data directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    dir: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it, writing `pid N` and `holder` (when not empty) into
    /// the lock file. Fails with [`LockError::Held`], naming the holder, when another process
    /// (or another store in this process) holds it.
    pub fn acquire(dir: &Path, holder: &str) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder: read_holder(&file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut line = format!("pid {}", std::process::id());
        if !holder.is_empty() {
            line.push_str(", ");
            line.push_str(holder);
        }
        line.push('\n');
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)?;
        Ok(Self {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The holder's line, made safe for one line of error text.
fn read_holder(file: &File) -> String {
    let mut bytes = Vec::new();
    let _ = file.take(4096).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let line: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_HOLDER)
        .collect();
    if line.trim().is_empty() {
        // Locked a moment ago and not written yet, or written by something else.
        "holder unknown".into()
    } else {
        line.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir;

    #[test]
    fn second_lock_is_refused_naming_dir_and_holder_then_free_after_drop() {
        let dir = test_dir();
        let first = DataDirLock::acquire(&dir, "listening on http://127.0.0.1:1").unwrap();
        assert_eq!(first.dir(), dir);
        match DataDirLock::acquire(&dir, "second") {
            Err(e @ LockError::Held { .. }) => {
                let line = e.to_string();
                assert!(line.contains(&dir.display().to_string()), "{line}");
                assert!(
                    line.contains(&format!(
                        "pid {}, listening on http://127.0.0.1:1",
                        std::process::id()
                    )),
                    "{line}"
                );
                assert!(!line.contains('\n'), "one line: {line:?}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        let again = DataDirLock::acquire(&dir, "").unwrap();
        let text = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("pid {}\n", std::process::id()));
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stale_lock_file_does_not_keep_anyone_out() {
        let dir = test_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(LOCK_FILE), "pid 999999999, long gone\n").unwrap();
        let lock = DataDirLock::acquire(&dir, "").unwrap();
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn holder_text_is_one_bounded_line() {
        let dir = test_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LOCK_FILE);
        std::fs::write(
            &path,
            format!("pid 1\u{1b}[31m{}\nsecond line\n", "x".repeat(500)),
        )
        .unwrap();
        let holder = read_holder(&File::open(&path).unwrap());
        assert!(holder.starts_with("pid 1[31mxxx"), "{holder}");
        assert_eq!(holder.chars().count(), MAX_HOLDER);
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_holder(&File::open(&path).unwrap()), "holder unknown");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
