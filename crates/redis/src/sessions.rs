//! Storage-session claims on Redis (issue 15): exactly one node runs a channel's recording
//! peer. Every claim, renewal and release is one Lua script on one hash (`P:{ss}`, channel ARN
//! → claim), so the most recent claim wins in Redis's order of execution, and expiry is decided
//! on Redis's clock (`TIME`), never on a node's. A claim's value is
//! `SESSION|NODE|SINCE_MS|EXPIRES_MS|STATE` (session ids are UUIDs, states fixed words).
//!
//! A claim that replaces a live one publishes the replaced session's id on `P:ss:superseded`
//! (from inside the script, so the notice follows the claim); every node listens there and
//! stops that session's peer at once if it runs it. Best effort: a lost subscription is
//! re-established with backoff, and the peer's renewal (every second) is the guarantee.
//!
//! Viewer memberships live in one hash per channel (`P:{ss}:v:ARN`, ClientId →
//! `SEQ|SINCE_MS|EXPIRES_MS|STATE`), joined, renewed and left by scripts on Redis's clock, so
//! the per-session viewer limit holds across nodes. The hash expires a minute after its last
//! write, so a channel nobody serves leaves nothing behind. A join is announced on
//! `P:ss:viewers` (payload: the channel ARN).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use kvs_core::clock::Clock;
use kvs_core::relay::NodeId;
use kvs_core::storage_session::{
    RegistryError, SessionRecord, SessionRegistry, SessionState, ViewerJoin, ViewerRecord,
    ViewerRenewal, SUPERSEDED_BUFFER, VIEWER_WAITING,
};
use redis::Script;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::{Redis, CONNECT_TIMEOUT};

/// Now in ms inside a script: ARGV[1] when a test steps time, else Redis's `TIME`.
const NOW: &str = "local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse(v)
  local f = {}
  -- Fields are never empty; '[^|]*' would also yield the empty matches between them (Lua 5.1).
  for p in string.gmatch(v, '[^|]+') do f[#f + 1] = p end
  return f
end
";

/// KEYS[1] the hash; ARGV: now, channel, session, node, ttl ms, state, notice channel.
/// Returns {new value, replaced live value or ''}.
const CLAIM: &str = "
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(parse(all[i + 1])[4]) <= now then redis.call('HDEL', KEYS[1], all[i]) end
end
local old = redis.call('HGET', KEYS[1], ARGV[2]) or ''
if old ~= '' then redis.call('PUBLISH', ARGV[7], parse(old)[1]) end
local v = ARGV[3] .. '|' .. ARGV[4] .. '|' .. string.format('%d', now) .. '|'
  .. string.format('%d', now + tonumber(ARGV[5])) .. '|' .. ARGV[6]
redis.call('HSET', KEYS[1], ARGV[2], v)
return {v, old}
";

/// ARGV: now, channel, session, ttl ms, state. 1 when renewed.
const RENEW: &str = "
local v = redis.call('HGET', KEYS[1], ARGV[2])
if not v then return 0 end
local f = parse(v)
if f[1] ~= ARGV[3] or tonumber(f[4]) <= now then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], f[1] .. '|' .. f[2] .. '|' .. f[3] .. '|'
  .. string.format('%d', now + tonumber(ARGV[4])) .. '|' .. ARGV[5])
return 1
";

/// ARGV: now, channel, session. 1 when released.
const RELEASE: &str = "
local v = redis.call('HGET', KEYS[1], ARGV[2])
if not v or parse(v)[1] ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
";

/// ARGV: now. The live claims, flat: channel, value, ...
const LIST: &str = "
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  if tonumber(parse(all[i + 1])[4]) > now then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
";

/// Drops the lapsed members of KEYS[1] (viewer scripts).
const PURGE: &str = "
local function purge()
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if tonumber(parse(all[i + 1])[3]) <= now then redis.call('HDEL', KEYS[1], all[i]) end
  end
end
";

/// How long a viewer hash outlives its last write.
const VIEWERS_KEY_GRACE_MS: u64 = 60_000;

/// KEYS[1] the channel's viewers, KEYS[2] the join counter; ARGV: now, client, max, ttl ms,
/// state, notice channel, channel ARN, key grace ms. The new seq, or 0 when full.
const JOIN_VIEWER: &str = "
purge()
if not redis.call('HGET', KEYS[1], ARGV[2]) and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[2], string.format('%d', seq) .. '|' .. string.format('%d', now)
  .. '|' .. string.format('%d', now + tonumber(ARGV[4])) .. '|' .. ARGV[5])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[8]))
redis.call('PUBLISH', ARGV[6], ARGV[7])
return seq
";

/// KEYS[1] the channel's viewers; ARGV: now, ttl ms, key grace ms, then (client, seq, state)
/// per leg. The live members, flat: client, value, ...
const RENEW_VIEWERS: &str = "
purge()
for i = 4, #ARGV, 3 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local f = parse(v)
    if f[1] == ARGV[i + 1] then
      redis.call('HSET', KEYS[1], ARGV[i], f[1] .. '|' .. f[2] .. '|'
        .. string.format('%d', now + tonumber(ARGV[2])) .. '|' .. ARGV[i + 2])
      redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]))
    end
  end
end
return redis.call('HGETALL', KEYS[1])
";

/// KEYS[1] the channel's viewers; ARGV: now, client, seq. 1 when left.
const LEAVE_VIEWER: &str = "
local v = redis.call('HGET', KEYS[1], ARGV[2])
if not v or parse(v)[1] ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
";

pub struct RedisSessionRegistry {
    redis: Redis,
    claim: Script,
    renew: Script,
    release: Script,
    list: Script,
    join_viewer: Script,
    renew_viewers: Script,
    leave_viewer: Script,
    /// Tests step time; production uses Redis's clock.
    test_clock: Option<Arc<dyn Clock>>,
    superseded: broadcast::Sender<String>,
    viewers_changed: broadcast::Sender<String>,
    listener: JoinHandle<()>,
}

impl Drop for RedisSessionRegistry {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn script(body: &str) -> Script {
    Script::new(&format!("{NOW}{body}"))
}

fn viewer_script(body: &str) -> Script {
    Script::new(&format!("{NOW}{PURGE}{body}"))
}

fn backend(e: redis::RedisError) -> RegistryError {
    RegistryError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse(channel: &str, value: &str) -> Option<SessionRecord> {
    let mut f = value.split('|');
    let session_id = f.next()?.to_owned();
    let node = NodeId(u64::from_str_radix(f.next()?, 16).ok()?);
    let since_millis = f.next()?.parse().ok()?;
    let expires_millis = f.next()?.parse().ok()?;
    let state = f.next()?.to_owned();
    Some(SessionRecord {
        channel_arn: channel.to_owned(),
        session_id,
        node,
        since_millis,
        expires_millis,
        state,
    })
}

impl RedisSessionRegistry {
    /// Starts listening for notices (inside a Tokio runtime).
    pub fn new(redis: Redis) -> Self {
        Self::build(redis, None)
    }

    /// A registry that reads time from `clock` instead of Redis's `TIME` (tests only: nodes
    /// must share Redis's clock).
    pub fn with_test_clock(redis: Redis, clock: Arc<dyn Clock>) -> Self {
        Self::build(redis, Some(clock))
    }

    fn build(redis: Redis, test_clock: Option<Arc<dyn Clock>>) -> Self {
        let superseded = broadcast::channel(SUPERSEDED_BUFFER).0;
        let viewers_changed = broadcast::channel(SUPERSEDED_BUFFER).0;
        let listener = tokio::spawn(listen(
            redis.clone(),
            superseded.clone(),
            viewers_changed.clone(),
        ));
        Self {
            redis,
            claim: script(CLAIM),
            renew: script(RENEW),
            release: script(RELEASE),
            list: script(LIST),
            join_viewer: viewer_script(JOIN_VIEWER),
            renew_viewers: viewer_script(RENEW_VIEWERS),
            leave_viewer: viewer_script(LEAVE_VIEWER),
            test_clock,
            superseded,
            viewers_changed,
            listener,
        }
    }

    fn now_arg(&self) -> String {
        self.test_clock
            .as_ref()
            .map_or_else(String::new, |c| c.now_millis().to_string())
    }
}

#[async_trait]
impl SessionRegistry for RedisSessionRegistry {
    async fn claim(
        &self,
        channel: &str,
        session_id: &str,
        node: NodeId,
        ttl: Duration,
    ) -> Result<(SessionRecord, Option<SessionRecord>), RegistryError> {
        let (new, old): (String, String) = self
            .claim
            .key(self.redis.keys().storage_sessions())
            .arg(self.now_arg())
            .arg(channel)
            .arg(session_id)
            .arg(node.to_string())
            .arg(millis(ttl))
            .arg(SessionState::Offering.as_str())
            .arg(self.redis.keys().storage_session_notices())
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let record = parse(channel, &new)
            .ok_or_else(|| RegistryError::Unavailable(format!("unreadable claim {new:?}")))?;
        Ok((record, parse(channel, &old)))
    }

    async fn renew(
        &self,
        channel: &str,
        session_id: &str,
        state: SessionState,
        ttl: Duration,
    ) -> Result<bool, RegistryError> {
        let renewed: i64 = self
            .renew
            .key(self.redis.keys().storage_sessions())
            .arg(self.now_arg())
            .arg(channel)
            .arg(session_id)
            .arg(millis(ttl))
            .arg(state.as_str())
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(renewed == 1)
    }

    async fn release(&self, channel: &str, session_id: &str) -> Result<bool, RegistryError> {
        let released: i64 = self
            .release
            .key(self.redis.keys().storage_sessions())
            .arg(self.now_arg())
            .arg(channel)
            .arg(session_id)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(released == 1)
    }

    async fn list(&self) -> Result<Vec<SessionRecord>, RegistryError> {
        let flat: Vec<String> = self
            .list
            .key(self.redis.keys().storage_sessions())
            .arg(self.now_arg())
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let mut out: Vec<SessionRecord> = flat
            .chunks(2)
            .filter_map(|c| parse(c.first()?, c.get(1)?))
            .collect();
        out.sort_by(|a, b| a.channel_arn.cmp(&b.channel_arn));
        Ok(out)
    }

    fn superseded(&self) -> broadcast::Receiver<String> {
        self.superseded.subscribe()
    }

    async fn join_viewer(
        &self,
        channel: &str,
        client_id: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<ViewerJoin, RegistryError> {
        let keys = self.redis.keys();
        let seq: u64 = self
            .join_viewer
            .key(keys.storage_session_viewers(channel))
            .key(keys.storage_session_viewer_seq())
            .arg(self.now_arg())
            .arg(client_id)
            .arg(max)
            .arg(millis(ttl))
            .arg(VIEWER_WAITING)
            .arg(keys.storage_session_viewer_notices())
            .arg(channel)
            .arg(VIEWERS_KEY_GRACE_MS)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(match seq {
            0 => ViewerJoin::Full,
            seq => ViewerJoin::Joined { seq },
        })
    }

    async fn renew_viewers(
        &self,
        channel: &str,
        legs: &[ViewerRenewal],
        ttl: Duration,
    ) -> Result<Vec<ViewerRecord>, RegistryError> {
        let mut call = self
            .renew_viewers
            .key(self.redis.keys().storage_session_viewers(channel));
        call.arg(self.now_arg())
            .arg(millis(ttl))
            .arg(VIEWERS_KEY_GRACE_MS);
        for leg in legs {
            call.arg(&leg.client_id)
                .arg(leg.seq.to_string())
                .arg(leg.state.as_str());
        }
        let flat: Vec<String> = call
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let mut out: Vec<ViewerRecord> = flat
            .chunks(2)
            .filter_map(|c| parse_viewer(c.first()?, c.get(1)?))
            .collect();
        out.sort_by_key(|v| v.seq);
        Ok(out)
    }

    async fn leave_viewer(
        &self,
        channel: &str,
        client_id: &str,
        seq: u64,
    ) -> Result<bool, RegistryError> {
        let left: i64 = self
            .leave_viewer
            .key(self.redis.keys().storage_session_viewers(channel))
            .arg(self.now_arg())
            .arg(client_id)
            .arg(seq.to_string())
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(left == 1)
    }

    fn viewers_changed(&self) -> broadcast::Receiver<String> {
        self.viewers_changed.subscribe()
    }
}

fn parse_viewer(client_id: &str, value: &str) -> Option<ViewerRecord> {
    let mut f = value.split('|');
    Some(ViewerRecord {
        client_id: client_id.to_owned(),
        seq: f.next()?.parse().ok()?,
        since_millis: f.next()?.parse().ok()?,
        expires_millis: f.next()?.parse().ok()?,
        state: f.next()?.to_owned(),
    })
}

/// Hands the notices published on `P:ss:superseded` and `P:ss:viewers` to this node's
/// subscribers, resubscribing with backoff when the subscription is lost.
async fn listen(
    redis: Redis,
    superseded: broadcast::Sender<String>,
    viewers: broadcast::Sender<String>,
) {
    let channel = redis.keys().storage_session_notices();
    let viewer_channel = redis.keys().storage_session_viewer_notices();
    let mut pause = Duration::from_millis(100);
    loop {
        let subscribed = tokio::time::timeout(CONNECT_TIMEOUT * 2, async {
            let mut pubsub = redis.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            pubsub.subscribe(&viewer_channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => {
                pause = Duration::from_millis(100);
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let local = if msg.get_channel_name() == viewer_channel {
                        &viewers
                    } else {
                        &superseded
                    };
                    if let Ok(payload) = msg.get_payload::<String>() {
                        // No subscriber on this node: nothing of its to tell.
                        let _ = local.send(payload);
                    }
                }
                tracing::warn!("storage-session notices: subscription lost; resubscribing");
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot subscribe to storage-session notices")
            }
            Err(_) => tracing::debug!("subscribing to storage-session notices timed out"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip() {
        let r = parse("arn:c", "s1|00000000000000ff|1000|11000|OFFERING");
        assert_eq!(
            r,
            Some(SessionRecord {
                channel_arn: "arn:c".into(),
                session_id: "s1".into(),
                node: NodeId(255),
                since_millis: 1000,
                expires_millis: 11000,
                state: "OFFERING".into(),
            })
        );
        assert_eq!(parse("arn:c", ""), None);
    }
}
