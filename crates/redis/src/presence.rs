//! Presence on Redis: one hash per channel, field = role (`M`, `V:ClientId`, `W:ClientId`),
//! value = `NODE:CONN`, and one sorted set of node leases (node → lease end, in Redis's ms).
//!
//! Every lease is decided on Redis's clock: a renewal script reads `TIME` and sets the lease
//! end to Redis's now plus the lease, and liveness is answered by a script that compares with
//! Redis's now and returns the time left. A node's own clock never enters: a node running
//! a minute ahead or behind agrees with the others on who is alive. What a node caches is "alive
//! for at least this long from when I asked", kept on its monotonic clock, which a wall-clock
//! step does not move.
//!
//! A member counts while its node's lease runs. Leases are checked outside the claim script,
//! because the lease set lives in another hash slot than the channel (Redis Cluster lets a
//! script touch one slot only): a claim reads the channel's members, works out which belong to
//! dead nodes, and its script drops those and applies the one-master rule and the viewer limit
//! atomically. The same script refuses a claim on a channel whose record is gone, is another
//! channel's (same name, recreated) or is DELETING, or that a delete marked gone: so a connect
//! that checked the channel before a delete cannot register after it. A node whose lease ran
//! out and whose members were dropped learns it at its next renewal, which says so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use kvs_core::relay::presence::{Presence, PresenceError, Renewal};
use kvs_core::relay::{Member, NodeId, Role};
use redis::Script;
use tokio::time::Instant;

use crate::Redis;

/// Redis's now in ms, inside a script.
const REDIS_NOW: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return {2, ''} end
local rec = redis.call('HGET', KEYS[2], 'rec')
if not rec then return {2, ''} end
local ok, c = pcall(cjson.decode, rec)
if not ok or c['arn'] ~= ARGV[6] or c['status'] == 'DELETING' then return {2, ''} end
local dead = {}
for i = 7, #ARGV do dead[ARGV[i]] = true end
local all = redis.call('HGETALL', KEYS[1])
local viewers = 0
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if dead[string.match(v, '^([^:]*)')] then
    redis.call('HDEL', KEYS[1], f)
  elseif f ~= ARGV[1] and string.sub(f, 1, 2) == 'V:' then
    viewers = viewers + 1
  end
end
if ARGV[3] == '1' and viewers >= tonumber(ARGV[4]) then return {1, ''} end
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {0, old or ''}
";

const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// Drops a deleted channel's presence and marks it gone, atomically; returns the members.
const REMOVE: &str = r"
local members = redis.call('HVALS', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return members
";

/// Keeps a deleted channel's mark this long: far longer than a connect takes between its check
/// of the channel and its claim (ARNs are never reused, so it guards nothing after that).
const GONE_MARK_MS: u64 = 3_600_000;

/// Keeps nodes' lease ends for an hour after they pass, then forgets them.
const FORGET_NODES_AFTER_MS: u64 = 3_600_000;

fn renew_script() -> String {
    format!(
        "{REDIS_NOW}
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - {FORGET_NODES_AFTER_MS}))
redis.call('PEXPIRE', KEYS[1], 86400000)
if not old then return 0 end
if tonumber(old) > now then return 1 end
return 2
"
    )
}

/// For each node in ARGV, the ms its lease still runs (negative: it ran out or never was).
fn alive_script() -> String {
    format!(
        "{REDIS_NOW}
local out = {{}}
for i, n in ipairs(ARGV) do
  local s = redis.call('ZSCORE', KEYS[1], n)
  if s then out[i] = tonumber(s) - now else out[i] = -1 end
end
return out
"
    )
}

pub struct RedisPresence {
    redis: Redis,
    /// This node's lease: a node that claims is alive, so it renews before its first claim if
    /// the heartbeat has not yet.
    lease: Duration,
    /// How long a channel's presence hash outlives its last connect (at least the longest a
    /// connection may stay open).
    key_ttl: Duration,
    /// Nodes known alive until an instant of this node's monotonic clock.
    alive_until: Mutex<HashMap<NodeId, Instant>>,
    /// A renewal made by a claim found the lease had run out: the next heartbeat renewal says
    /// so, so the hub sends its connections GO_AWAY.
    lapse_seen: AtomicBool,
    claim: Script,
    release: Script,
    remove: Script,
    renew: Script,
    alive: Script,
}

pub(crate) fn role_field(role: &Role) -> String {
    match role {
        Role::Master => "M".into(),
        Role::Viewer(id) => format!("V:{id}"),
        Role::AnswerWaiter(id) => format!("W:{id}"),
    }
}

pub(crate) fn parse_role(field: &str) -> Option<Role> {
    match field.split_once(':') {
        None if field == "M" => Some(Role::Master),
        Some(("V", id)) => Some(Role::Viewer(id.to_owned())),
        Some(("W", id)) => Some(Role::AnswerWaiter(id.to_owned())),
        _ => None,
    }
}

fn member_value(m: &Member) -> String {
    format!("{}:{}", m.node, m.conn)
}

fn parse_member(v: &str) -> Option<Member> {
    let (node, conn) = v.split_once(':')?;
    Some(Member {
        node: NodeId(u64::from_str_radix(node, 16).ok()?),
        conn: conn.parse().ok()?,
    })
}

fn backend(e: redis::RedisError) -> PresenceError {
    PresenceError::Backend(e.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisPresence {
    pub fn new(redis: Redis, lease: Duration, key_ttl: Duration) -> Self {
        Self {
            redis,
            lease,
            key_ttl,
            alive_until: Mutex::new(HashMap::new()),
            lapse_seen: AtomicBool::new(false),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            remove: Script::new(REMOVE),
            renew: Script::new(&renew_script()),
            alive: Script::new(&alive_script()),
        }
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<NodeId, Instant>> {
        self.alive_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Which of `nodes` are dead, asking Redis only about those not known alive.
    async fn dead_among(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>, PresenceError> {
        let now = Instant::now();
        let mut unknown: Vec<NodeId> = {
            let cache = self.cache();
            nodes
                .iter()
                .filter(|n| cache.get(n).is_none_or(|until| *until <= now))
                .copied()
                .collect()
        };
        unknown.sort();
        unknown.dedup();
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.alive.key(self.redis.keys().nodes());
        for n in &unknown {
            call.arg(n.to_string());
        }
        let asked = Instant::now();
        let left: Vec<i64> = call
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let mut dead = Vec::new();
        let mut cache = self.cache();
        for (n, ms) in unknown.into_iter().zip(left) {
            match u64::try_from(ms) {
                // The lease ran at least `ms` past the moment Redis answered, which is after
                // `asked`: a safe lower bound on this node's monotonic clock.
                Ok(ms) if ms > 0 => {
                    cache.insert(n, asked + Duration::from_millis(ms));
                }
                _ => {
                    cache.remove(&n);
                    dead.push(n);
                }
            }
        }
        Ok(dead)
    }

    async fn is_alive(&self, node: NodeId) -> Result<bool, PresenceError> {
        Ok(self.dead_among(&[node]).await?.is_empty())
    }

    async fn members(&self, channel: &str) -> Result<Vec<(String, Member)>, PresenceError> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.redis.keys().presence(channel))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(all
            .into_iter()
            .filter_map(|(f, v)| parse_member(&v).map(|m| (f, m)))
            .collect())
    }

    /// Renews `node`'s lease on Redis's clock; caches it alive for the lease from `sent`.
    async fn renew_now(&self, node: NodeId, lease: Duration) -> Result<Renewal, PresenceError> {
        let sent = Instant::now();
        let state: i64 = self
            .renew
            .key(self.redis.keys().nodes())
            .arg(node.to_string())
            .arg(millis(lease))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        self.cache().insert(node, sent + lease);
        Ok(match state {
            0 => Renewal::Fresh,
            1 => Renewal::Continued,
            _ => Renewal::Lapsed,
        })
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn claim(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
        max_viewers: usize,
    ) -> Result<Option<Member>, PresenceError> {
        let fresh_enough = self
            .cache()
            .get(&member.node)
            .is_some_and(|until| *until > Instant::now() + self.lease / 2);
        if !fresh_enough && self.renew_now(member.node, self.lease).await? == Renewal::Lapsed {
            self.lapse_seen.store(true, Ordering::SeqCst);
        }
        let members = self.members(channel).await?;
        let nodes: Vec<NodeId> = members.iter().map(|(_, m)| m.node).collect();
        let dead = self.dead_among(&nodes).await?;
        let keys = self.redis.keys();
        let mut call = self.claim.key(keys.presence(channel));
        call.key(keys.channel_of_arn(channel))
            .key(keys.gone(channel))
            .arg(role_field(role))
            .arg(member_value(&member))
            .arg(if role.is_viewer() { "1" } else { "0" })
            .arg(max_viewers as u64)
            .arg(millis(self.key_ttl))
            .arg(channel);
        for n in &dead {
            call.arg(n.to_string());
        }
        let (code, old): (i64, String) = call
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        match code {
            1 => return Err(PresenceError::ViewerLimit(max_viewers)),
            2 => return Err(PresenceError::ChannelGone),
            _ => {}
        }
        Ok(parse_member(&old).filter(|m| !dead.contains(&m.node)))
    }

    async fn release(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
    ) -> Result<(), PresenceError> {
        let _: i64 = self
            .release
            .key(self.redis.keys().presence(channel))
            .arg(role_field(role))
            .arg(member_value(&member))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn lookup(&self, channel: &str, role: &Role) -> Result<Option<Member>, PresenceError> {
        let value: Option<String> = redis::cmd("HGET")
            .arg(self.redis.keys().presence(channel))
            .arg(role_field(role))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let Some(m) = value.as_deref().and_then(parse_member) else {
            return Ok(None);
        };
        Ok(self.is_alive(m.node).await?.then_some(m))
    }

    async fn lookup_first(
        &self,
        channel: &str,
        roles: &[Role],
    ) -> Result<Option<(usize, Member)>, PresenceError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.redis.keys().presence(channel));
        for role in roles {
            cmd.arg(role_field(role));
        }
        let values: Vec<Option<String>> = cmd
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        for (i, value) in values.iter().enumerate() {
            if let Some(m) = value.as_deref().and_then(parse_member) {
                if self.is_alive(m.node).await? {
                    return Ok(Some((i, m)));
                }
            }
        }
        Ok(None)
    }

    async fn roles(&self, channel: &str) -> Result<Vec<(Role, Member)>, PresenceError> {
        let members = self.members(channel).await?;
        let nodes: Vec<NodeId> = members.iter().map(|(_, m)| m.node).collect();
        let dead = self.dead_among(&nodes).await?;
        let mut roles: Vec<(Role, Member)> = members
            .into_iter()
            .filter(|(_, m)| !dead.contains(&m.node))
            .filter_map(|(f, m)| Some((parse_role(&f)?, m)))
            .collect();
        roles.sort_by(|a, b| {
            kvs_core::relay::presence::role_key(&a.0)
                .cmp(&kvs_core::relay::presence::role_key(&b.0))
        });
        Ok(roles)
    }

    async fn nodes(&self, channel: &str) -> Result<Vec<NodeId>, PresenceError> {
        let members = self.members(channel).await?;
        let mut nodes: Vec<NodeId> = members.into_iter().map(|(_, m)| m.node).collect();
        let dead = self.dead_among(&nodes).await?;
        nodes.retain(|n| !dead.contains(n));
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    async fn remove_channel(&self, channel: &str) -> Result<Vec<NodeId>, PresenceError> {
        let keys = self.redis.keys();
        let members: Vec<String> = self
            .remove
            .key(keys.presence(channel))
            .key(keys.gone(channel))
            .arg(GONE_MARK_MS)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let mut nodes: Vec<NodeId> = members
            .iter()
            .filter_map(|v| parse_member(v))
            .map(|m| m.node)
            .collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    async fn renew(&self, node: NodeId, lease: Duration) -> Result<Renewal, PresenceError> {
        let renewal = self.renew_now(node, lease).await?;
        if self.lapse_seen.swap(false, Ordering::SeqCst) {
            return Ok(Renewal::Lapsed);
        }
        Ok(renewal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_members_round_trip() {
        for role in [
            Role::Master,
            Role::Viewer("v:1".into()),
            Role::AnswerWaiter("a".into()),
        ] {
            assert_eq!(parse_role(&role_field(&role)), Some(role));
        }
        let m = Member {
            node: NodeId(0xabc),
            conn: 42,
        };
        assert_eq!(parse_member(&member_value(&m)), Some(m));
    }
}
