//! Presence on Redis: one hash per channel, field = role (`M`, `V:ClientId`, `W:ClientId`),
//! value = `NODE:CONN`, and one sorted set of node leases (node → lease end, ms).
//!
//! A member counts while its node's lease runs. Leases are checked here, not in the scripts,
//! because the lease set lives in another hash slot than the channel (Redis Cluster lets a
//! script touch one slot only): a claim reads the channel's members, works out which belong to
//! dead nodes, and its script drops those and applies the one-master rule and the viewer limit
//! atomically. A node's lease end only moves forward while it lives, so a lease end seen once
//! is a safe lower bound: this node caches them and asks Redis again only about a node whose
//! cached lease has run out (a dead node, or one that renewed since).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use kvs_core::signaling::presence::{Presence, PresenceError};
use kvs_core::signaling::{Member, NodeId, Role};
use redis::Script;

use crate::Redis;

const CLAIM: &str = r"
local dead = {}
for i = 6, #ARGV do dead[ARGV[i]] = true end
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

/// Keeps nodes' lease ends for an hour after they pass, then forgets them.
const FORGET_NODES_AFTER_MS: u64 = 3_600_000;

pub struct RedisPresence {
    redis: Redis,
    /// This node's lease: a node that claims is alive, so its lease starts with its first
    /// claim if the heartbeat has not renewed it yet.
    lease: Duration,
    /// How long a channel's presence hash outlives its last connect (at least the longest a
    /// connection may stay open).
    key_ttl: Duration,
    leases: Mutex<HashMap<NodeId, u64>>,
    claim: Script,
    release: Script,
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

impl RedisPresence {
    pub fn new(redis: Redis, lease: Duration, key_ttl: Duration) -> Self {
        Self {
            redis,
            lease,
            key_ttl,
            leases: Mutex::new(HashMap::new()),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
        }
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<NodeId, u64>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `node`'s lease runs at `now`, asking Redis only when the cached end has passed.
    async fn alive(&self, node: NodeId, now: u64) -> Result<bool, PresenceError> {
        if self.leases().get(&node).is_some_and(|until| *until > now) {
            return Ok(true);
        }
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(self.redis.keys().nodes())
            .arg(node.to_string())
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let until = score.map_or(0, |s| s as u64);
        self.leases().insert(node, until);
        Ok(until > now)
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

    async fn dead_nodes(
        &self,
        members: &[(String, Member)],
        now: u64,
    ) -> Result<Vec<NodeId>, PresenceError> {
        let mut dead = Vec::new();
        for (_, m) in members {
            if !dead.contains(&m.node) && !self.alive(m.node, now).await? {
                dead.push(m.node);
            }
        }
        Ok(dead)
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
        now_millis: u64,
    ) -> Result<Option<Member>, PresenceError> {
        let lease_ms = self.lease.as_millis() as u64;
        let own = self.leases().get(&member.node).copied().unwrap_or(0);
        if own < now_millis.saturating_add(lease_ms / 2) {
            self.renew(member.node, now_millis.saturating_add(lease_ms))
                .await?;
        }
        let members = self.members(channel).await?;
        let dead = self.dead_nodes(&members, now_millis).await?;
        let mut call = self.claim.key(self.redis.keys().presence(channel));
        call.arg(role_field(role))
            .arg(member_value(&member))
            .arg(if role.is_viewer() { "1" } else { "0" })
            .arg(max_viewers as u64)
            .arg(self.key_ttl.as_millis() as u64);
        for n in &dead {
            call.arg(n.to_string());
        }
        let (code, old): (i64, String) = call
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        if code == 1 {
            return Err(PresenceError::ViewerLimit(max_viewers));
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

    async fn lookup(
        &self,
        channel: &str,
        role: &Role,
        now_millis: u64,
    ) -> Result<Option<Member>, PresenceError> {
        let value: Option<String> = redis::cmd("HGET")
            .arg(self.redis.keys().presence(channel))
            .arg(role_field(role))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let Some(m) = value.as_deref().and_then(parse_member) else {
            return Ok(None);
        };
        Ok(self.alive(m.node, now_millis).await?.then_some(m))
    }

    async fn lookup_first(
        &self,
        channel: &str,
        roles: &[Role],
        now_millis: u64,
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
                if self.alive(m.node, now_millis).await? {
                    return Ok(Some((i, m)));
                }
            }
        }
        Ok(None)
    }

    async fn nodes(&self, channel: &str, now_millis: u64) -> Result<Vec<NodeId>, PresenceError> {
        let members = self.members(channel).await?;
        let dead = self.dead_nodes(&members, now_millis).await?;
        let mut nodes: Vec<NodeId> = members
            .into_iter()
            .map(|(_, m)| m.node)
            .filter(|n| !dead.contains(n))
            .collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    async fn remove_channel(&self, channel: &str) -> Result<(), PresenceError> {
        redis::cmd("DEL")
            .arg(self.redis.keys().presence(channel))
            .query_async::<i64>(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn renew(&self, node: NodeId, until_millis: u64) -> Result<(), PresenceError> {
        let key = self.redis.keys().nodes();
        let forget_before = until_millis.saturating_sub(FORGET_NODES_AFTER_MS);
        let mut pipe = redis::pipe();
        // GT: a lease end never moves backwards, whatever order renewals arrive in (GT still
        // adds a node that is not there yet).
        pipe.cmd("ZADD")
            .arg(&key)
            .arg("GT")
            .arg(until_millis)
            .arg(node.to_string())
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({forget_before}"))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(86_400_000u64)
            .ignore()
            .cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        let (all,): (Vec<(String, f64)>,) = pipe
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        // The set is the cache, replaced whole: nodes forgotten by Redis leave it too.
        *self.leases() = all
            .into_iter()
            .filter_map(|(n, until)| {
                Some((NodeId(u64::from_str_radix(&n, 16).ok()?), until as u64))
            })
            .collect();
        Ok(())
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
