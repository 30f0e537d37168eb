//! Recorded fragments on Redis (issue 15), the media crate's [`FragmentStore`] port: any node
//! of a cluster answers GetMedia for a recording another node makes. Per stream, a sorted set
//! of fragment numbers, a hash of their metadata, one string per fragment's bytes and a byte
//! total, all under the stream's namespace tag ([`crate::keys`]). Appending is one script that
//! numbers the fragment (from the stream's last number and the fragment's server time, so
//! numbers keep increasing after retention emptied the stream) and evicts the stream's oldest
//! fragments beyond its byte cap, so Redis's memory is bounded per stream whatever the
//! upkeep's pace. Waiting readers poll ([`POLL`]): a fragment is written every second or few.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kvs_media::store::{
    FragmentMeta, FragmentStore, MediaStoreError, NewFragment, Position, Removed, Result,
    StreamKey, Usage,
};
use redis::Script;

use crate::error::unavailable;
use crate::Redis;

/// How often a waiting GetMedia looks for a new fragment.
pub const POLL: Duration = Duration::from_millis(200);

const APPEND: &str = r"
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
local n = math.max(last + 1, tonumber(ARGV[1]) * 1000)
local ns = string.format('%.0f', n)
redis.call('SET', KEYS[4], ns)
redis.call('SET', ARGV[6] .. ns, ARGV[3])
redis.call('HSET', KEYS[2], ns, ARGV[2])
redis.call('ZADD', KEYS[1], n, ns)
local total = redis.call('INCRBY', KEYS[3], #ARGV[3])
redis.call('SADD', KEYS[5], ARGV[5])
local evicted = 0
local cap = tonumber(ARGV[4])
while total > cap do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if (not oldest) or oldest == ns then break end
  local meta = redis.call('HGET', KEYS[2], oldest)
  local len = tonumber(string.match(meta, '([^,]+)$'))
  redis.call('ZREM', KEYS[1], oldest)
  redis.call('HDEL', KEYS[2], oldest)
  redis.call('DEL', ARGV[6] .. oldest)
  total = redis.call('DECRBY', KEYS[3], len)
  evicted = evicted + 1
end
return {ns, evicted}
";

const DELETE: &str = r"
local removed, bytes = 0, 0
for i = 3, #ARGV do
  local meta = redis.call('HGET', KEYS[2], ARGV[i])
  if meta then
    local len = tonumber(string.match(meta, '([^,]+)$'))
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('DEL', ARGV[1] .. ARGV[i])
    redis.call('DECRBY', KEYS[3], len)
    removed = removed + 1
    bytes = bytes + len
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[3])
  redis.call('SREM', KEYS[4], ARGV[2])
end
return {removed, bytes}
";

pub struct RedisFragmentStore {
    redis: Redis,
    /// Bytes one stream may hold; its oldest fragments go beyond it.
    per_stream_cap: u64,
    append: Script,
    delete: Script,
}

fn err(e: redis::RedisError) -> MediaStoreError {
    if unavailable(&e) {
        MediaStoreError::Unavailable(e.to_string())
    } else {
        MediaStoreError::Backend(e.to_string())
    }
}

fn member(k: &StreamKey) -> String {
    format!("{}|{}|{}|{}", k.account, k.region, k.name, k.created)
}

fn parse_member(m: &str) -> Option<StreamKey> {
    let mut p = m.splitn(4, '|');
    Some(StreamKey {
        account: p.next()?.to_owned(),
        region: p.next()?.to_owned(),
        name: p.next()?.to_owned(),
        created: p.next()?.to_owned(),
    })
}

fn meta_text(f: &NewFragment) -> String {
    format!(
        "{},{},{},{},{}",
        f.producer_ms,
        f.server_ms,
        f.duration_ms,
        f.cluster_offset,
        f.bytes.len()
    )
}

fn parse_meta(number: u64, text: &str) -> Option<FragmentMeta> {
    let mut p = text.split(',').map(|x| x.parse::<u64>().ok());
    let mut next = || p.next().flatten();
    Some(FragmentMeta {
        number,
        producer_ms: next()?,
        server_ms: next()?,
        duration_ms: next()?,
        cluster_offset: next()?,
        len: next()?,
    })
}

impl RedisFragmentStore {
    pub fn new(redis: Redis, per_stream_cap: u64) -> Self {
        Self {
            redis,
            per_stream_cap,
            append: Script::new(APPEND),
            delete: Script::new(DELETE),
        }
    }

    fn key(&self, k: &StreamKey, kind: &str) -> String {
        let stream = format!("{}~{}", k.name, k.created);
        self.redis
            .keys()
            .media(&k.account, &k.region, &stream, kind)
    }

    fn bytes_prefix(&self, k: &StreamKey) -> String {
        format!("{}:", self.key(k, "mfb"))
    }

    async fn numbers(&self, k: &StreamKey, cmd: redis::Cmd) -> Result<Vec<u64>> {
        let _ = k;
        let got: Vec<String> = cmd.query_async(&mut self.redis.conn()).await.map_err(err)?;
        Ok(got.iter().filter_map(|n| n.parse().ok()).collect())
    }

    async fn metas(&self, k: &StreamKey, numbers: &[u64]) -> Result<Vec<FragmentMeta>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(k, "mfm"))
            .arg(numbers)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        Ok(numbers
            .iter()
            .zip(texts)
            .filter_map(|(n, t)| parse_meta(*n, t.as_deref()?))
            .collect())
    }

    async fn all_metas(&self, k: &StreamKey) -> Result<Vec<FragmentMeta>> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.key(k, "mfm"))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        let mut metas: Vec<FragmentMeta> = all
            .iter()
            .filter_map(|(n, t)| parse_meta(n.parse().ok()?, t))
            .collect();
        metas.sort_by_key(|m| m.number);
        Ok(metas)
    }

    async fn delete_numbers(&self, k: &StreamKey, numbers: &[u64]) -> Result<Removed> {
        if numbers.is_empty() {
            return Ok(Removed::default());
        }
        let mut removed = Removed::default();
        // A few hundred per script call, so one call never blocks Redis for long.
        for batch in numbers.chunks(256) {
            let (fragments, bytes): (u64, u64) = self
                .delete
                .key(self.key(k, "mfz"))
                .key(self.key(k, "mfm"))
                .key(self.key(k, "mfs"))
                .key(self.redis.keys().media_streams())
                .arg(self.bytes_prefix(k))
                .arg(member(k))
                .arg(batch)
                .invoke_async(&mut self.redis.conn())
                .await
                .map_err(err)?;
            removed.add(Removed { fragments, bytes });
        }
        Ok(removed)
    }
}

#[async_trait]
impl FragmentStore for RedisFragmentStore {
    async fn append(&self, key: &StreamKey, f: NewFragment) -> Result<FragmentMeta> {
        let (number, _evicted): (String, u64) = self
            .append
            .key(self.key(key, "mfz"))
            .key(self.key(key, "mfm"))
            .key(self.key(key, "mfs"))
            .key(self.key(key, "mfn"))
            .key(self.redis.keys().media_streams())
            .arg(f.server_ms)
            .arg(meta_text(&f))
            .arg(f.bytes.as_ref())
            .arg(self.per_stream_cap)
            .arg(member(key))
            .arg(self.bytes_prefix(key))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        let number = number
            .parse()
            .map_err(|_| MediaStoreError::Backend(format!("fragment number {number:?}")))?;
        Ok(FragmentMeta::of(number, &f))
    }

    async fn list(
        &self,
        key: &StreamKey,
        from: Position,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        let z = self.key(key, "mfz");
        let page = |min: String| {
            let mut c = redis::cmd("ZRANGEBYSCORE");
            c.arg(&z)
                .arg(min)
                .arg("+inf")
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
            c
        };
        let numbers = match from {
            Position::Earliest => self.numbers(key, page("-inf".into())).await?,
            Position::After(n) => self.numbers(key, page(format!("({n}"))).await?,
            Position::Latest => {
                let mut c = redis::cmd("ZRANGE");
                c.arg(&z).arg(-1).arg(-1);
                match self.numbers(key, c).await?.first() {
                    Some(n) => self.numbers(key, page(n.to_string())).await?,
                    None => Vec::new(),
                }
            }
            Position::Producer(t) | Position::Server(t) => {
                let producer = matches!(from, Position::Producer(_));
                let metas = self.all_metas(key).await?;
                return Ok(metas
                    .into_iter()
                    .skip_while(|m| {
                        let start = if producer { m.producer_ms } else { m.server_ms };
                        start + m.duration_ms <= t
                    })
                    .take(limit)
                    .collect());
            }
        };
        self.metas(key, &numbers).await
    }

    async fn read(&self, key: &StreamKey, number: u64) -> Result<Option<Bytes>> {
        let got: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("{}{number}", self.bytes_prefix(key)))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        Ok(got.map(Bytes::from))
    }

    async fn wait_newer(
        &self,
        key: &StreamKey,
        after: Option<u64>,
        timeout: Duration,
    ) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut c = redis::cmd("ZRANGE");
            c.arg(self.key(key, "mfz")).arg(-1).arg(-1);
            let newest = self.numbers(key, c).await?.first().copied();
            if newest.is_some() && newest > after {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    async fn delete_before(&self, key: &StreamKey, server_ms: u64) -> Result<Removed> {
        let doomed: Vec<u64> = self
            .all_metas(key)
            .await?
            .iter()
            .filter(|m| m.server_ms < server_ms)
            .map(|m| m.number)
            .collect();
        self.delete_numbers(key, &doomed).await
    }

    async fn delete_through(&self, key: &StreamKey, number: u64) -> Result<Removed> {
        let mut c = redis::cmd("ZRANGEBYSCORE");
        c.arg(self.key(key, "mfz")).arg("-inf").arg(number);
        let doomed = self.numbers(key, c).await?;
        self.delete_numbers(key, &doomed).await
    }

    async fn delete_stream(&self, key: &StreamKey) -> Result<Removed> {
        let mut c = redis::cmd("ZRANGE");
        c.arg(self.key(key, "mfz")).arg(0).arg(-1);
        let doomed = self.numbers(key, c).await?;
        let removed = self.delete_numbers(key, &doomed).await?;
        let _: () = redis::cmd("SREM")
            .arg(self.redis.keys().media_streams())
            .arg(member(key))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        Ok(removed)
    }

    async fn streams(&self) -> Result<Vec<StreamKey>> {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.redis.keys().media_streams())
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        let mut keys: Vec<StreamKey> = members.iter().filter_map(|m| parse_member(m)).collect();
        keys.sort();
        Ok(keys)
    }

    async fn usage(&self) -> Result<Usage> {
        let mut u = Usage::default();
        for k in self.streams().await? {
            let (count, bytes): (u64, Option<u64>) = redis::pipe()
                .cmd("ZCARD")
                .arg(self.key(&k, "mfz"))
                .cmd("GET")
                .arg(self.key(&k, "mfs"))
                .query_async(&mut self.redis.conn())
                .await
                .map_err(err)?;
            u.fragments += count;
            u.bytes += bytes.unwrap_or(0);
        }
        Ok(u)
    }

    async fn mark_ingesting(&self, key: &StreamKey, ttl: Duration) -> Result<()> {
        let _: () = redis::cmd("SET")
            .arg(self.key(key, "mfi"))
            .arg(1)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn is_ingesting(&self, key: &StreamKey) -> Result<bool> {
        redis::cmd("EXISTS")
            .arg(self.key(key, "mfi"))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(err)
    }
}
