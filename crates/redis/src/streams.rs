//! Streams and media-storage links on Redis (issue 15), the core's [`StreamStore`] port. The
//! layout follows the channel registry's (`store.rs`): each stream a hash (`rev`, `arn`,
//! `rec`), each namespace a sorted set of stream names, every key under the namespace's hash
//! tag ([`crate::keys`]). A link is two strings, the channel's record and the stream's reverse
//! pointer. Every write is one Lua script, so the limit, the compare-and-swap, "a link needs its
//! stream, and a stream has one channel", and "removing a stream removes its link" hold across
//! nodes. Listing walks the name index with `ZRANGE BYLEX`, as for channels.

use async_trait::async_trait;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::streams::{
    MediaLink, StoreError, StoredLink, StoredStream, Stream, StreamName, StreamStore,
};
use redis::Script;

use crate::error::store_error;
use crate::Redis;

const INSERT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 2 end
redis.call('HSET', KEYS[2], 'rev', ARGV[3], 'arn', ARGV[5], 'rec', ARGV[2])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 0
";

const REPLACE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'rev')
if not cur then return 1 end
if cur ~= ARGV[1] then return 2 end
redis.call('HSET', KEYS[1], 'rev', ARGV[3], 'arn', ARGV[4], 'rec', ARGV[2])
return 0
";

/// ARGV: expected revision, name, reverse-link prefix, link prefix.
const REMOVE: &str = r"
local cur = redis.call('HGET', KEYS[2], 'rev')
if not cur then return 1 end
if cur ~= ARGV[1] then return 2 end
local arn = redis.call('HGET', KEYS[2], 'arn')
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[2])
if arn then
  local ch = redis.call('GET', ARGV[3] .. arn)
  if ch then redis.call('DEL', ARGV[3] .. arn, ARGV[4] .. ch) end
end
return 0
";

const SET_LINK: &str = r"
if redis.call('HGET', KEYS[1], 'arn') ~= ARGV[1] then return 1 end
local other = redis.call('GET', KEYS[2])
if other and other ~= ARGV[2] then return 2 end
local old = redis.call('GET', KEYS[3])
if old then
  local was = cjson.decode(old).stream_arn
  if was ~= ARGV[1] then redis.call('DEL', ARGV[4] .. was) end
end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
return 0
";

const UNLINK_CHANNEL: &str = r"
local old = redis.call('GET', KEYS[1])
if old then
  redis.call('DEL', ARGV[1] .. cjson.decode(old).stream_arn, KEYS[1])
end
return 0
";

const UNLINK_STREAM: &str = r"
local ch = redis.call('GET', KEYS[1])
if ch then redis.call('DEL', ARGV[1] .. ch, KEYS[1]) end
return 0
";

pub struct RedisStreamStore {
    redis: Redis,
    insert: Script,
    replace: Script,
    remove: Script,
    set_link: Script,
    unlink_channel: Script,
    unlink_stream: Script,
}

impl RedisStreamStore {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            insert: Script::new(INSERT),
            replace: Script::new(REPLACE),
            remove: Script::new(REMOVE),
            set_link: Script::new(SET_LINK),
            unlink_channel: Script::new(UNLINK_CHANNEL),
            unlink_stream: Script::new(UNLINK_STREAM),
        }
    }

    fn cas_outcome(code: i64) -> Result<(), StoreError> {
        match code {
            0 => Ok(()),
            1 => Err(StoreError::NotFound),
            _ => Err(StoreError::VersionConflict),
        }
    }

    fn decode(rec: &str) -> Result<Stream, StoreError> {
        Stream::try_from(StoredStream::from_json(rec)?)
    }

    async fn link_at(&self, key: String) -> Result<Option<MediaLink>, StoreError> {
        let rec: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        rec.as_deref()
            .map(|r| MediaLink::try_from(StoredLink::from_json(r)?))
            .transpose()
    }
}

/// The `ZRANGE BYLEX` bounds of a page (the channel registry's rule, `store.rs`).
fn lex_bounds(prefix: Option<&str>, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let min = match (after, prefix) {
        (Some(a), Some(p)) if a < p => [b"[", p.as_bytes()].concat(),
        (Some(a), _) => [b"(", a.as_bytes()].concat(),
        (None, Some(p)) => [b"[", p.as_bytes()].concat(),
        (None, None) => b"-".to_vec(),
    };
    let max = match prefix {
        Some(p) => [b"[", p.as_bytes(), b"\xff"].concat(),
        None => b"+".to_vec(),
    };
    (min, max)
}

#[async_trait]
impl StreamStore for RedisStreamStore {
    async fn insert(&self, stream: Stream, max_per_namespace: usize) -> Result<(), StoreError> {
        let keys = self.redis.keys();
        let rec = StoredStream::from(&stream).to_json()?;
        let code: i64 = self
            .insert
            .key(keys.stream_names(&stream.ns))
            .key(keys.stream(&stream.ns, stream.name.as_str()))
            .arg(stream.name.as_str())
            .arg(rec)
            .arg(stream.revision)
            .arg(max_per_namespace as u64)
            .arg(stream.arn.as_str())
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        match code {
            0 => Ok(()),
            1 => Err(StoreError::AlreadyExists),
            _ => Err(StoreError::LimitExceeded),
        }
    }

    async fn get(&self, ns: &Namespace, name: &StreamName) -> Result<Option<Stream>, StoreError> {
        let rec: Option<String> = redis::cmd("HGET")
            .arg(self.redis.keys().stream(ns, name.as_str()))
            .arg("rec")
            .query_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        rec.as_deref().map(Self::decode).transpose()
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&StreamName>,
        limit: usize,
    ) -> Result<Vec<Stream>, StoreError> {
        let keys = self.redis.keys();
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut cursor: Option<String> = after.map(|a| a.as_str().to_owned());
        while out.len() < limit {
            let want = limit - out.len();
            let (min, max) = lex_bounds(prefix, cursor.as_deref());
            let names: Vec<String> = redis::cmd("ZRANGE")
                .arg(keys.stream_names(ns))
                .arg(min)
                .arg(max)
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(want)
                .query_async(&mut self.redis.conn())
                .await
                .map_err(store_error)?;
            if names.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for n in &names {
                pipe.cmd("HGET").arg(keys.stream(ns, n)).arg("rec");
            }
            let recs: Vec<Option<String>> = pipe
                .query_async(&mut self.redis.conn())
                .await
                .map_err(store_error)?;
            // A stream removed between the two reads is not listed; the page is topped up.
            for rec in recs.iter().flatten() {
                out.push(Self::decode(rec)?);
            }
            if names.len() < want {
                break;
            }
            cursor = names.last().cloned();
        }
        Ok(out)
    }

    async fn replace(&self, stream: Stream, expected_revision: u64) -> Result<(), StoreError> {
        let rec = StoredStream::from(&stream).to_json()?;
        let code: i64 = self
            .replace
            .key(self.redis.keys().stream(&stream.ns, stream.name.as_str()))
            .arg(expected_revision)
            .arg(rec)
            .arg(stream.revision)
            .arg(stream.arn.as_str())
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        Self::cas_outcome(code)
    }

    async fn remove(
        &self,
        ns: &Namespace,
        name: &StreamName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        let keys = self.redis.keys();
        let code: i64 = self
            .remove
            .key(keys.stream_names(ns))
            .key(keys.stream(ns, name.as_str()))
            .arg(expected_revision)
            .arg(name.as_str())
            .arg(keys.stream_link_prefix(ns))
            .arg(keys.media_link_prefix(ns))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        Self::cas_outcome(code)
    }

    async fn link_of_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        let key = format!("{}{channel_arn}", self.redis.keys().media_link_prefix(ns));
        self.link_at(key).await
    }

    async fn link_of_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        let keys = self.redis.keys();
        let channel: Option<String> = redis::cmd("GET")
            .arg(format!("{}{stream_arn}", keys.stream_link_prefix(ns)))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        match channel {
            Some(ch) => {
                let link = self
                    .link_at(format!("{}{ch}", keys.media_link_prefix(ns)))
                    .await?;
                // Between the two reads the channel may have been re-pointed elsewhere.
                Ok(link.filter(|l| l.stream_arn == *stream_arn))
            }
            None => Ok(None),
        }
    }

    async fn set_link(&self, link: MediaLink) -> Result<(), StoreError> {
        let keys = self.redis.keys();
        let ns = &link.ns;
        let rec = StoredLink::from(&link).to_json()?;
        let code: i64 = self
            .set_link
            .key(keys.stream(ns, &link.stream_arn.name))
            .key(format!(
                "{}{}",
                keys.stream_link_prefix(ns),
                link.stream_arn
            ))
            .key(format!(
                "{}{}",
                keys.media_link_prefix(ns),
                link.channel_arn
            ))
            .arg(link.stream_arn.as_str())
            .arg(link.channel_arn.as_str())
            .arg(rec)
            .arg(keys.stream_link_prefix(ns))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        match code {
            0 => Ok(()),
            1 => Err(StoreError::NotFound),
            _ => Err(StoreError::AlreadyExists),
        }
    }

    async fn unlink_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<(), StoreError> {
        let keys = self.redis.keys();
        let _: i64 = self
            .unlink_channel
            .key(format!("{}{channel_arn}", keys.media_link_prefix(ns)))
            .arg(keys.stream_link_prefix(ns))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn unlink_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<(), StoreError> {
        let keys = self.redis.keys();
        let _: i64 = self
            .unlink_stream
            .key(format!("{}{stream_arn}", keys.stream_link_prefix(ns)))
            .arg(keys.media_link_prefix(ns))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Walks the keyspace with `SCAN` and deletes what it finds, in batches: not atomic across
    /// namespaces (a stream created during the walk may survive it), like the channels' reset.
    async fn clear(&self) -> Result<usize, StoreError> {
        let mut conn = self.redis.conn();
        let mut streams = 0;
        for (i, pattern) in self.redis.keys().all_stream_patterns().iter().enumerate() {
            let mut cursor: u64 = 0;
            loop {
                let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(store_error)?;
                if !found.is_empty() {
                    let deleted: usize = redis::cmd("DEL")
                        .arg(&found)
                        .query_async(&mut conn)
                        .await
                        .map_err(store_error)?;
                    // The second pattern is the stream records.
                    if i == 1 {
                        streams += deleted;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(streams)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.redis.ping().await.map_err(store_error)
    }
}
