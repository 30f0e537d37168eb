//! The fragment store of one process: [`LocalFragmentStore::memory`] keeps the bytes in memory,
//! [`LocalFragmentStore::disk`] in files under the data directory (docs/media-storage.md
//! "Layout"). Both keep the index (metadata by stream and number) in memory; the disk store
//! rebuilds it from the file names on open, so there is nothing else to keep consistent.
//!
//! Disk writes are crash-safe: a fragment is written to a `.tmp-` file, synced, then renamed to
//! its final name, so a crash leaves either the whole fragment or a temporary file that the
//! next open removes. Readers are told of new fragments by a `watch` per stream (no polling).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::*;

#[derive(Default)]
struct StreamIndex {
    frags: BTreeMap<u64, (FragmentMeta, Option<Bytes>)>,
    last: u64,
    /// The newest number written, for waiting readers.
    tx: Option<watch::Sender<u64>>,
    ingesting_until: Option<Instant>,
}

pub struct LocalFragmentStore {
    /// `None`: bytes kept in memory.
    root: Option<PathBuf>,
    index: Mutex<HashMap<StreamKey, StreamIndex>>,
    /// Appends one at a time, so fragments enter the index in number order and a reader that
    /// listed fragment n+1 never finds n appearing after it.
    appending: tokio::sync::Mutex<()>,
}

/// The next fragment number: increasing, and above any number given before even after every
/// fragment of the stream was deleted and the process restarted (it follows the server clock).
pub fn next_number(last: u64, server_ms: u64) -> u64 {
    last.saturating_add(1).max(server_ms.saturating_mul(1000))
}

fn io(e: std::io::Error) -> MediaStoreError {
    MediaStoreError::Backend(e.to_string())
}

impl LocalFragmentStore {
    pub fn memory() -> Self {
        Self {
            root: None,
            index: Mutex::new(HashMap::new()),
            appending: tokio::sync::Mutex::new(()),
        }
    }

    /// Opens the store under `root` (`<data-dir>/media`, made at the first fragment), removing
    /// temporary files a crash left and indexing every fragment file.
    pub fn disk(root: &Path) -> std::io::Result<Self> {
        let mut index: HashMap<StreamKey, StreamIndex> = HashMap::new();
        let accounts = if root.exists() {
            read_dirs(root)?
        } else {
            Vec::new()
        };
        for account in accounts {
            for region in read_dirs(&account)? {
                for stream in read_dirs(&region)? {
                    let Some(key) = key_of(&account, &region, &stream) else {
                        continue;
                    };
                    let entry = index.entry(key).or_default();
                    for file in std::fs::read_dir(&stream)? {
                        let path = file?.path();
                        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        if name.starts_with(".tmp-") {
                            let _ = std::fs::remove_file(&path);
                            continue;
                        }
                        let len = std::fs::metadata(&path)?.len();
                        if let Some(meta) = parse_file_name(name, len) {
                            entry.last = entry.last.max(meta.number);
                            entry.frags.insert(meta.number, (meta, None));
                        }
                    }
                }
            }
        }
        Ok(Self {
            root: Some(root.to_owned()),
            index: Mutex::new(index),
            appending: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, StreamIndex>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the store: keep serving.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stream_dir(&self, key: &StreamKey) -> Option<PathBuf> {
        self.root.as_ref().map(|r| {
            r.join(&key.account)
                .join(&key.region)
                .join(format!("{}~{}", key.name, key.created))
        })
    }

    fn remove_where(&self, key: &StreamKey, doomed: impl Fn(&FragmentMeta) -> bool) -> Removed {
        let mut removed = Removed::default();
        let mut files = Vec::new();
        {
            let mut index = self.lock();
            let Some(entry) = index.get_mut(key) else {
                return removed;
            };
            entry.frags.retain(|_, (meta, _)| {
                if doomed(meta) {
                    removed.fragments += 1;
                    removed.bytes += meta.len;
                    files.push(file_name(meta));
                    false
                } else {
                    true
                }
            });
        }
        if let Some(dir) = self.stream_dir(key) {
            for f in files {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
        removed
    }
}

fn read_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.push(e.path());
        }
    }
    Ok(out)
}

fn key_of(account: &Path, region: &Path, stream: &Path) -> Option<StreamKey> {
    let last = |p: &Path| p.file_name()?.to_str().map(str::to_owned);
    let dir = last(stream)?;
    let (name, created) = dir.rsplit_once('~')?;
    Some(StreamKey {
        account: last(account)?,
        region: last(region)?,
        name: name.to_owned(),
        created: created.to_owned(),
    })
}

/// `NUMBER-PRODUCER_MS-SERVER_MS-DURATION_MS-CLUSTER_OFFSET.mkv`, the number zero-padded so a
/// directory listing is in stream order.
pub fn file_name(m: &FragmentMeta) -> String {
    format!(
        "{:020}-{}-{}-{}-{}.mkv",
        m.number, m.producer_ms, m.server_ms, m.duration_ms, m.cluster_offset
    )
}

pub fn parse_file_name(name: &str, len: u64) -> Option<FragmentMeta> {
    let stem = name.strip_suffix(".mkv")?;
    let mut parts = stem.split('-').map(|p| p.parse::<u64>().ok());
    let mut next = || parts.next().flatten();
    let meta = FragmentMeta {
        number: next()?,
        producer_ms: next()?,
        server_ms: next()?,
        duration_ms: next()?,
        cluster_offset: next()?,
        len,
    };
    Some(meta)
}

/// Where a listing from `from` starts in `frags`.
pub fn first_number(frags: &BTreeMap<u64, (FragmentMeta, Option<Bytes>)>, from: Position) -> u64 {
    match from {
        Position::Earliest => 0,
        Position::After(n) => n.saturating_add(1),
        Position::Latest => frags.keys().next_back().copied().unwrap_or(0),
        Position::Producer(t) => frags
            .values()
            .find(|(m, _)| m.producer_ms + m.duration_ms > t)
            .map_or(u64::MAX, |(m, _)| m.number),
        Position::Server(t) => frags
            .values()
            .find(|(m, _)| m.server_ms + m.duration_ms > t)
            .map_or(u64::MAX, |(m, _)| m.number),
    }
}

#[async_trait]
impl FragmentStore for LocalFragmentStore {
    async fn append(&self, key: &StreamKey, fragment: NewFragment) -> Result<FragmentMeta> {
        // The number is taken under the lock; the index entry is made only once the bytes are
        // durable, so a reader never lists a fragment it cannot read.
        let _one_at_a_time = self.appending.lock().await;
        let number = {
            let mut index = self.lock();
            let entry = index.entry(key.clone()).or_default();
            entry.last = next_number(entry.last, fragment.server_ms);
            entry.last
        };
        let meta = FragmentMeta::of(number, &fragment);
        let bytes = match self.stream_dir(key) {
            None => Some(fragment.bytes),
            Some(dir) => {
                let name = file_name(&meta);
                let data = fragment.bytes;
                tokio::task::spawn_blocking(move || write_durably(&dir, &name, &data))
                    .await
                    .map_err(|e| MediaStoreError::Backend(e.to_string()))?
                    .map_err(io)?;
                None
            }
        };
        let mut index = self.lock();
        let entry = index.entry(key.clone()).or_default();
        entry.frags.insert(number, (meta.clone(), bytes));
        if let Some(tx) = &entry.tx {
            tx.send_replace(number);
        }
        Ok(meta)
    }

    async fn list(
        &self,
        key: &StreamKey,
        from: Position,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        let index = self.lock();
        let Some(entry) = index.get(key) else {
            return Ok(Vec::new());
        };
        let first = first_number(&entry.frags, from);
        Ok(entry
            .frags
            .range(first..)
            .take(limit)
            .map(|(_, (m, _))| m.clone())
            .collect())
    }

    async fn read(&self, key: &StreamKey, number: u64) -> Result<Option<Bytes>> {
        let meta = {
            let index = self.lock();
            match index.get(key).and_then(|e| e.frags.get(&number)) {
                None => return Ok(None),
                Some((_, Some(bytes))) => return Ok(Some(bytes.clone())),
                Some((meta, None)) => meta.clone(),
            }
        };
        let Some(dir) = self.stream_dir(key) else {
            return Ok(None);
        };
        match tokio::fs::read(dir.join(file_name(&meta))).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            // Deleted between the index read and the file read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn wait_newer(
        &self,
        key: &StreamKey,
        after: Option<u64>,
        timeout: Duration,
    ) -> Result<bool> {
        let mut rx = {
            let mut index = self.lock();
            let entry = index.entry(key.clone()).or_default();
            let newest = entry.frags.keys().next_back().copied();
            if newest.is_some() && newest > after {
                return Ok(true);
            }
            entry
                .tx
                .get_or_insert_with(|| watch::channel(newest.unwrap_or(0)).0)
                .subscribe()
        };
        let floor = after.unwrap_or(0);
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|n| *n > floor || after.is_none() && *n > 0),
        )
        .await;
        Ok(matches!(waited, Ok(Ok(_))))
    }

    async fn delete_before(&self, key: &StreamKey, server_ms: u64) -> Result<Removed> {
        Ok(self.remove_where(key, |m| m.server_ms < server_ms))
    }

    async fn delete_through(&self, key: &StreamKey, number: u64) -> Result<Removed> {
        Ok(self.remove_where(key, |m| m.number <= number))
    }

    async fn delete_stream(&self, key: &StreamKey) -> Result<Removed> {
        let removed = self.remove_where(key, |_| true);
        if let Some(dir) = self.stream_dir(key) {
            let _ = std::fs::remove_dir(dir);
        }
        let mut index = self.lock();
        if index
            .get(key)
            .is_some_and(|e| e.tx.as_ref().is_none_or(|tx| tx.receiver_count() == 0))
        {
            index.remove(key);
        }
        Ok(removed)
    }

    async fn streams(&self) -> Result<Vec<StreamKey>> {
        let index = self.lock();
        let mut keys: Vec<StreamKey> = index
            .iter()
            .filter(|(_, e)| !e.frags.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn usage(&self) -> Result<Usage> {
        let index = self.lock();
        let mut u = Usage::default();
        for e in index.values() {
            u.fragments += e.frags.len() as u64;
            u.bytes += e.frags.values().map(|(m, _)| m.len).sum::<u64>();
        }
        Ok(u)
    }

    async fn mark_ingesting(&self, key: &StreamKey, ttl: Duration) -> Result<()> {
        let mut index = self.lock();
        index.entry(key.clone()).or_default().ingesting_until = Some(Instant::now() + ttl);
        Ok(())
    }

    async fn is_ingesting(&self, key: &StreamKey) -> Result<bool> {
        let index = self.lock();
        Ok(index
            .get(key)
            .and_then(|e| e.ingesting_until)
            .is_some_and(|until| Instant::now() < until))
    }
}

fn write_durably(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{name}"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_by_number() {
        let m = FragmentMeta {
            number: 1_700_000_000_000_000,
            producer_ms: 1_699_999_999_990,
            server_ms: 1_700_000_000_000,
            duration_ms: 2002,
            cluster_offset: 321,
            len: 9,
        };
        let name = file_name(&m);
        assert_eq!(
            name,
            "00001700000000000000-1699999999990-1700000000000-2002-321.mkv"
        );
        assert_eq!(parse_file_name(&name, 9), Some(m));
        assert_eq!(parse_file_name("junk.mkv", 1), None);
        assert_eq!(parse_file_name(".tmp-1-2-3-4-5.mkv", 1), None);
    }

    #[test]
    fn numbers_increase_and_follow_the_clock() {
        assert_eq!(next_number(0, 5), 5000);
        assert_eq!(next_number(5000, 5), 5001);
        assert_eq!(next_number(9_999, 6), 10_000);
    }

    #[tokio::test]
    async fn disk_store_reopens_with_its_fragments_and_drops_temporaries() {
        let dir = std::env::temp_dir().join(format!("kvs-media-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = StreamKey {
            account: "111122223333".into(),
            region: "us-west-2".into(),
            name: "cam".into(),
            created: "1".into(),
        };
        let s = LocalFragmentStore::disk(&dir).unwrap();
        let frag = |server_ms| NewFragment {
            producer_ms: server_ms,
            server_ms,
            duration_ms: 1000,
            cluster_offset: 2,
            bytes: Bytes::from_static(b"abcd"),
        };
        let a = s.append(&key, frag(10)).await.unwrap();
        let b = s.append(&key, frag(20)).await.unwrap();
        let stream_dir = dir.join("111122223333/us-west-2/cam~1");
        std::fs::write(stream_dir.join(".tmp-x.mkv"), b"partial").unwrap();
        drop(s);
        let s = LocalFragmentStore::disk(&dir).unwrap();
        let listed = s.list(&key, Position::Earliest, 10).await.unwrap();
        assert_eq!(listed, vec![a.clone(), b.clone()]);
        assert_eq!(s.read(&key, b.number).await.unwrap().unwrap(), &b"abcd"[..]);
        assert!(!stream_dir.join(".tmp-x.mkv").exists());
        let c = s.append(&key, frag(15)).await.unwrap();
        assert!(c.number > b.number);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
