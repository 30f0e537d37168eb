//! The channel registry on Redis (`--store redis://…`). Each channel is a hash (`rev`, `rec`)
//! and each namespace a sorted set of names, all under the namespace's hash tag
//! ([`crate::keys`]). Create-if-absent with the channel limit, and the `CurrentVersion`
//! compare-and-swap on replace and remove, are each one Lua script, so they are atomic across
//! every node. Listing walks the name index with `ZRANGE BYLEX` from the page's start (the
//! `BEGINS_WITH` prefix, or just after the `NextToken`'s last name), never the keyspace, so a
//! token made on one node works on any other. A write is acknowledged once Redis has it (with
//! `appendfsync always`, once it is on disk); there is no cache, so reads are never stale.

use async_trait::async_trait;
use kvs_core::ids::{AccountId, ChannelName, Namespace, Region};
use kvs_core::model::Channel;
use kvs_core::store::{Store, StoreError, StoredChannel};
use redis::Script;

use crate::error::store_error;
use crate::Redis;

const INSERT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 2 end
redis.call('HSET', KEYS[2], 'rev', ARGV[3], 'rec', ARGV[2])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 0
";

const REPLACE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'rev')
if not cur then return 1 end
if cur ~= ARGV[1] then return 2 end
redis.call('HSET', KEYS[1], 'rev', ARGV[3], 'rec', ARGV[2])
return 0
";

const REMOVE: &str = r"
local cur = redis.call('HGET', KEYS[2], 'rev')
if not cur then return 1 end
if cur ~= ARGV[1] then return 2 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[2])
return 0
";

/// Empties one namespace in one step (its keys share one hash tag, so one slot): every channel
/// record named in its index, then the index; returns the records removed. The record keys are
/// built from the prefix in ARGV[1] rather than passed as KEYS, since the names are only known
/// inside the script (standalone Redis only, which is all the server accepts).
const CLEAR_NAMESPACE: &str = r"
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
local recs = {}
for _, n in ipairs(names) do
  local key = ARGV[1] .. n
  local rec = redis.call('HGET', key, 'rec')
  if rec then table.insert(recs, rec) end
  redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return recs
";

pub struct RedisStore {
    redis: Redis,
    insert: Script,
    replace: Script,
    remove: Script,
    clear_namespace: Script,
}

impl RedisStore {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            insert: Script::new(INSERT),
            replace: Script::new(REPLACE),
            remove: Script::new(REMOVE),
            clear_namespace: Script::new(CLEAR_NAMESPACE),
        }
    }

    /// Maps a compare-and-swap script's answer (0 done, 1 missing, 2 other revision).
    fn cas_outcome(code: i64) -> Result<(), StoreError> {
        match code {
            0 => Ok(()),
            1 => Err(StoreError::NotFound),
            _ => Err(StoreError::VersionConflict),
        }
    }

    fn decode(rec: &str) -> Result<Channel, StoreError> {
        Channel::try_from(StoredChannel::from_json(rec)?)
    }
}

/// The `ZRANGE BYLEX` bounds of a page: names starting with `prefix`, strictly after `after`.
/// Channel names are ASCII ([a-zA-Z0-9_.-]), so `\xff` sorts after every name with the prefix.
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
impl Store for RedisStore {
    async fn insert(&self, channel: Channel, max_per_namespace: usize) -> Result<(), StoreError> {
        let keys = self.redis.keys();
        let rec = StoredChannel::from(&channel).to_json()?;
        let code: i64 = self
            .insert
            .key(keys.names(&channel.ns))
            .key(keys.channel(&channel.ns, &channel.name))
            .arg(channel.name.as_str())
            .arg(rec)
            .arg(channel.revision)
            .arg(max_per_namespace as u64)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        match code {
            0 => Ok(()),
            1 => Err(StoreError::AlreadyExists),
            _ => Err(StoreError::LimitExceeded),
        }
    }

    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        let rec: Option<String> = redis::cmd("HGET")
            .arg(self.redis.keys().channel(ns, name))
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
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        let keys = self.redis.keys();
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut cursor: Option<String> = after.map(|a| a.as_str().to_owned());
        while out.len() < limit {
            let want = limit - out.len();
            let (min, max) = lex_bounds(prefix, cursor.as_deref());
            let names: Vec<String> = redis::cmd("ZRANGE")
                .arg(keys.names(ns))
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
                let name = ChannelName::parse("name", n)
                    .map_err(|_| StoreError::Corrupt(format!("channel name {n:?} in the index")))?;
                pipe.cmd("HGET").arg(keys.channel(ns, &name)).arg("rec");
            }
            let recs: Vec<Option<String>> = pipe
                .query_async(&mut self.redis.conn())
                .await
                .map_err(store_error)?;
            // A channel removed between the two reads is simply not listed; the page is then
            // topped up from after the last name seen.
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

    async fn replace(&self, channel: Channel, expected_revision: u64) -> Result<(), StoreError> {
        let rec = StoredChannel::from(&channel).to_json()?;
        let code: i64 = self
            .replace
            .key(self.redis.keys().channel(&channel.ns, &channel.name))
            .arg(expected_revision)
            .arg(rec)
            .arg(channel.revision)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        Self::cas_outcome(code)
    }

    async fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        let keys = self.redis.keys();
        let code: i64 = self
            .remove
            .key(keys.names(ns))
            .key(keys.channel(ns, name))
            .arg(expected_revision)
            .arg(name.as_str())
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(store_error)?;
        Self::cas_outcome(code)
    }

    /// Walks the keyspace with `SCAN` for the namespaces' name indexes (the one walk of the
    /// store, for `/_kvs/state` and `/_kvs/reset` only).
    async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        let keys = self.redis.keys();
        let mut conn = self.redis.conn();
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys.all_names_pattern())
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
            for key in found {
                let ns = keys.namespace_of_names(&key).and_then(|(a, r)| {
                    Some(Namespace::new(
                        AccountId::parse(&a).ok()?,
                        Region::parse(&r).ok()?,
                    ))
                });
                match ns {
                    Some(ns) => out.push(ns),
                    None => return Err(StoreError::Corrupt(format!("name index key {key:?}"))),
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// One atomic script per namespace; the namespaces are emptied one after another.
    async fn clear(&self) -> Result<Vec<Channel>, StoreError> {
        let keys = self.redis.keys();
        let mut out = Vec::new();
        for ns in self.namespaces().await? {
            let recs: Vec<String> = self
                .clear_namespace
                .key(keys.names(&ns))
                .arg(keys.channel_prefix(&ns))
                .invoke_async(&mut self.redis.conn())
                .await
                .map_err(store_error)?;
            for rec in &recs {
                out.push(Self::decode(rec)?);
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.redis.ping().await.map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::lex_bounds;

    #[test]
    fn page_bounds_follow_prefix_and_token() {
        let s = |(a, b): (Vec<u8>, Vec<u8>)| {
            (
                String::from_utf8_lossy(&a).into_owned(),
                String::from_utf8_lossy(&b).into_owned(),
            )
        };
        assert_eq!(s(lex_bounds(None, None)), ("-".into(), "+".into()));
        assert_eq!(s(lex_bounds(Some("cam"), None)).0, "[cam");
        assert_eq!(s(lex_bounds(Some("cam"), Some("ab"))).0, "[cam");
        assert_eq!(s(lex_bounds(Some("cam"), Some("cam-2"))).0, "(cam-2");
        assert_eq!(s(lex_bounds(None, Some("x"))), ("(x".into(), "+".into()));
    }
}
