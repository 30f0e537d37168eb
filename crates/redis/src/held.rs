//! Held messages on Redis, per channel (all under its namespace's hash tag, [`crate::keys`]):
//! `hm` maps a sequence number to the message, `hq` orders the sequence numbers (acceptance
//! order, and the per-channel bound: the oldest go first), `hr:RECIPIENT` orders those of one
//! recipient (so a connect reads only its own, not the whole channel's), `hx` points from
//! (recipient, sender, action) to the newest held offer or answer so a newer one replaces it,
//! and holds the sequence counter and which recipients have an `hr`. Each message carries the expiry stamped when it was accepted, so a TTL
//! change applies only to messages sent afterwards; expired messages are never handed over.
//! Every key expires with the latest message it holds, so nothing outlives its TTL by more than
//! the longest TTL (120 s), and the bound caps a channel at `max_per_channel` messages.
//!
//! A message is stored as `RECIPIENT\nSENDER\nACTION\nEXPIRES\nPAYLOAD`; its first three
//! lines are its replacement key. One script holds, one takes: each is atomic, so a message is
//! handed over exactly once whatever node takes it.

use async_trait::async_trait;
use kvs_core::relay::held::{replaces_older, HeldError, HeldMessages, HoldOutcome, Taken};
use kvs_core::relay::{Action, HeldMessage, Relayed, Role};
use redis::Script;

use crate::presence::{parse_role, role_field};
use crate::Redis;

// KEYS: hm, hq, hx, hr (the recipient's own order). ARGV: message, replacement key, bound,
// ttl ms, now ms, the prefix of every recipient's hr key, the recipient.
const HOLD: &str = r"
local function unindex(s, m)
  local r = m and string.match(m, '^([^\n]*)\n')
  if r then redis.call('ZREM', ARGV[6] .. r, s) end
end
local seq = redis.call('HINCRBY', KEYS[3], '#', 1)
local replaced = 0
if ARGV[2] ~= '' then
  local old = redis.call('HGET', KEYS[3], ARGV[2])
  if old then
    replaced = redis.call('HDEL', KEYS[1], old)
    redis.call('ZREM', KEYS[2], old)
    redis.call('ZREM', KEYS[4], old)
  end
  redis.call('HSET', KEYS[3], ARGV[2], seq)
end
local dropped = 0
local expired = 0
local max = tonumber(ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= max then
  -- At the bound: expired messages go first, and are not overflow.
  local now = tonumber(ARGV[5])
  for _, s in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local m = redis.call('HGET', KEYS[1], s)
    local exp = m and tonumber(string.match(m, '^[^\n]*\n[^\n]*\n[^\n]*\n([^\n]*)\n'))
    if not m then
      redis.call('ZREM', KEYS[2], s)
    elseif exp and exp <= now then
      unindex(s, m)
      redis.call('ZREM', KEYS[2], s)
      redis.call('HDEL', KEYS[1], s)
      expired = expired + 1
    end
  end
end
while redis.call('ZCARD', KEYS[2]) >= max do
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  unindex(oldest[1], redis.call('HGET', KEYS[1], oldest[1]))
  redis.call('HDEL', KEYS[1], oldest[1])
  dropped = dropped + 1
end
redis.call('HSET', KEYS[1], seq, ARGV[1])
redis.call('ZADD', KEYS[2], seq, seq)
redis.call('ZADD', KEYS[4], seq, seq)
redis.call('HSET', KEYS[3], 'r:' .. ARGV[7], 1)
local ttl = tonumber(ARGV[4])
for i = 1, 4 do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return {replaced, dropped, expired}
";

// KEYS: hm, hq, hx, hr. ARGV: the recipient. Reads only the recipient's own messages.
const TAKE: &str = r"
local out = {}
for _, s in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local m = redis.call('HGET', KEYS[1], s)
  if m then
    out[#out + 1] = m
    redis.call('HDEL', KEYS[1], s)
    local k = string.match(m, '^([^\n]*\n[^\n]*\n[^\n]*)\n')
    if k and redis.call('HGET', KEYS[3], k) == s then
      redis.call('HDEL', KEYS[3], k)
    end
  end
  redis.call('ZREM', KEYS[2], s)
end
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[3], 'r:' .. ARGV[1])
return out
";

// KEYS: hm, hq, hx. ARGV: the prefix of every recipient's hr key.
const DROP: &str = r"
local n = redis.call('ZCARD', KEYS[2])
for _, f in ipairs(redis.call('HKEYS', KEYS[3])) do
  if string.sub(f, 1, 2) == 'r:' then
    redis.call('DEL', ARGV[1] .. string.sub(f, 3))
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return n
";

pub struct RedisHeld {
    redis: Redis,
    hold: Script,
    take: Script,
    drop: Script,
}

fn backend(e: redis::RedisError) -> HeldError {
    HeldError(e.to_string())
}

fn encode(h: &HeldMessage) -> String {
    let sender = h
        .message
        .sender
        .as_deref()
        .map_or_else(|| "-".to_owned(), |s| format!("+{s}"));
    format!(
        "{}\n{sender}\n{}\n{}\n{}",
        role_field(&h.recipient),
        h.message.action.as_str(),
        h.expires_at_millis,
        h.message.payload
    )
}

fn decode(text: &str) -> Option<HeldMessage> {
    let mut parts = text.splitn(5, '\n');
    let recipient = parse_role(parts.next()?)?;
    let sender = match parts.next()? {
        "-" => None,
        s => Some(s.strip_prefix('+')?.to_owned()),
    };
    let action = Action::parse(parts.next()?)?;
    let expires_at_millis = parts.next()?.parse().ok()?;
    Some(HeldMessage {
        recipient,
        message: Relayed {
            action,
            sender,
            payload: parts.next()?.to_owned(),
        },
        expires_at_millis,
    })
}

/// The replacement key of a message: its first three lines.
fn replace_key(encoded: &str) -> &str {
    let mut end = 0;
    for _ in 0..3 {
        match encoded[end..].find('\n') {
            Some(i) => end += i + 1,
            None => return encoded,
        }
    }
    &encoded[..end - 1]
}

impl RedisHeld {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            hold: Script::new(HOLD),
            take: Script::new(TAKE),
            drop: Script::new(DROP),
        }
    }
}

#[async_trait]
impl HeldMessages for RedisHeld {
    async fn hold(
        &self,
        channel: &str,
        message: HeldMessage,
        max_per_channel: usize,
        now_millis: u64,
    ) -> Result<HoldOutcome, HeldError> {
        // Keys expire relative to Redis's clock, by what is left of the message's TTL (the
        // nodes' clocks need not agree with Redis's).
        let ttl_ms = message.expires_at_millis.saturating_sub(now_millis).max(1);
        let [hm, hq, hx] = self.redis.keys().held(channel);
        let recipient = role_field(&message.recipient);
        let hr_prefix = self.redis.keys().held_for_prefix(channel);
        let hr = format!("{hr_prefix}{recipient}");
        let encoded = encode(&message);
        let key = if replaces_older(message.message.action) {
            replace_key(&encoded)
        } else {
            ""
        };
        let (replaced, dropped, expired): (u64, u64, u64) = self
            .hold
            .key(hm)
            .key(hq)
            .key(hx)
            .key(hr)
            .arg(&encoded)
            .arg(key)
            .arg(max_per_channel.max(1) as u64)
            .arg(ttl_ms)
            .arg(now_millis)
            .arg(&hr_prefix)
            .arg(&recipient)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(HoldOutcome {
            replaced: replaced as usize,
            dropped: dropped as usize,
            expired: expired as usize,
        })
    }

    async fn take(
        &self,
        channel: &str,
        recipient: &Role,
        now_millis: u64,
    ) -> Result<Taken, HeldError> {
        let [hm, hq, hx] = self.redis.keys().held(channel);
        let recipient = role_field(recipient);
        let hr = format!("{}{recipient}", self.redis.keys().held_for_prefix(channel));
        let all: Vec<String> = self
            .take
            .key(hm)
            .key(hq)
            .key(hx)
            .key(hr)
            .arg(&recipient)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let mut taken = Taken::default();
        for text in all {
            match decode(&text) {
                Some(h) if h.expires_at_millis > now_millis => taken.messages.push(h),
                Some(_) => taken.expired += 1,
                None => tracing::error!("unreadable held message dropped"),
            }
        }
        Ok(taken)
    }

    async fn drop_channel(&self, channel: &str) -> Result<usize, HeldError> {
        let [hm, hq, hx] = self.redis.keys().held(channel);
        let n: u64 = self
            .drop
            .key(hm)
            .key(hq)
            .key(hx)
            .arg(self.redis.keys().held_for_prefix(channel))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(n as usize)
    }

    /// Nothing to do: every key expires with the latest message it holds, and the per-channel
    /// bound caps what an expired-but-not-yet-taken message can cost meanwhile.
    async fn sweep(&self, _now_millis: u64) -> Result<usize, HeldError> {
        Ok(0)
    }

    async fn peek(&self, channel: &str, now_millis: u64) -> Result<Vec<HeldMessage>, HeldError> {
        let [hm, _, _] = self.redis.keys().held(channel);
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(hm)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        let mut held: Vec<(u64, HeldMessage)> = all
            .into_iter()
            .filter_map(|(seq, text)| Some((seq.parse().ok()?, decode(&text)?)))
            .filter(|(_, h)| h.expires_at_millis > now_millis)
            .collect();
        held.sort_by_key(|(seq, _)| *seq);
        Ok(held.into_iter().map(|(_, h)| h).collect())
    }

    async fn count(&self, channel: &str) -> Result<usize, HeldError> {
        let [_, hq, _] = self.redis.keys().held(channel);
        let n: u64 = redis::cmd("ZCARD")
            .arg(hq)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(backend)?;
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_key_on_their_first_three_lines() {
        let h = HeldMessage {
            recipient: Role::Master,
            message: Relayed {
                action: Action::SdpOffer,
                sender: Some("viewer-1".into()),
                payload: "eyJ0\nIjoi".into(),
            },
            expires_at_millis: 1234,
        };
        let e = encode(&h);
        assert_eq!(decode(&e), Some(h));
        assert_eq!(replace_key(&e), "M\n+viewer-1\nSDP_OFFER");
        let from_master = HeldMessage {
            recipient: Role::Viewer("v".into()),
            message: Relayed {
                action: Action::SdpAnswer,
                sender: None,
                payload: String::new(),
            },
            expires_at_millis: 1,
        };
        assert_eq!(decode(&encode(&from_master)), Some(from_master));
    }
}
