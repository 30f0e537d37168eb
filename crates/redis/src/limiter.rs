//! API quotas shared by every node ([`RedisLimiter`], docs/deployment.md "Quotas"): one GCRA
//! cell per bucket (the time its next request is due, a token bucket in one number) in a key
//! that expires once the bucket is full again. One script per request checks every bucket of
//! the request and takes a token from each only if all have one: one round trip, no scan.
//! Time is Redis's `TIME`, so nodes whose clocks disagree still count against the same buckets.

use std::sync::Arc;

use async_trait::async_trait;
use kvs_core::clock::Clock;
use kvs_core::quota::{BucketKey, Quotas, RateLimiter, Throttled};
use kvs_core::ServiceError;
use redis::Script;

use crate::Redis;

/// KEYS: the buckets. ARGV: now in microseconds ("" for Redis's TIME), then per bucket its
/// emission interval and burst tolerance in microseconds. Returns 0 when allowed, else the
/// 1-based index of the first empty bucket.
const ACQUIRE: &str = r#"
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  if tat - now > tolerance then return i end
  tats[i] = tat + interval
end
for i, key in ipairs(KEYS) do
  -- A second beyond the moment the bucket is full again: an absent cell and a full one mean
  -- the same, so the margin changes nothing but tolerates a stepped test clock.
  local ttl = math.ceil((tats[i] - now) / 1000) + 1000
  redis.call('SET', key, string.format('%d', tats[i]), 'PX', ttl)
end
return 0
"#;

pub struct RedisLimiter {
    redis: Redis,
    quotas: Quotas,
    script: Script,
    /// Tests step time; production uses Redis's clock.
    test_clock: Option<Arc<dyn Clock>>,
}

impl RedisLimiter {
    pub fn new(redis: Redis, quotas: Quotas) -> Self {
        Self {
            redis,
            quotas,
            script: Script::new(ACQUIRE),
            test_clock: None,
        }
    }

    /// A limiter that reads time from `clock` instead of Redis's `TIME` (tests only: nodes
    /// must share Redis's clock).
    pub fn with_test_clock(redis: Redis, quotas: Quotas, clock: Arc<dyn Clock>) -> Self {
        Self {
            test_clock: Some(clock),
            ..Self::new(redis, quotas)
        }
    }
}

/// GCRA parameters of a rate with a burst of one second's worth: (interval, tolerance) in µs.
fn gcra(per_second: f64) -> (u64, u64) {
    let interval = (1_000_000.0 / per_second).round().max(1.0) as u64;
    let burst = per_second.ceil().max(1.0) as u64;
    (interval, interval * (burst - 1))
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn acquire(&self, buckets: &[BucketKey]) -> Result<Result<(), Throttled>, ServiceError> {
        let limited: Vec<(&BucketKey, f64)> = buckets
            .iter()
            .filter_map(|b| Some((b, self.quotas.rate(b.scope, b.op)?)))
            .collect();
        if limited.is_empty() {
            return Ok(Ok(()));
        }
        let mut call = self.script.prepare_invoke();
        let now = self
            .test_clock
            .as_ref()
            .map_or_else(String::new, |c| (c.now_millis() * 1000).to_string());
        call.arg(now);
        for (b, rate) in &limited {
            call.key(
                self.redis
                    .keys()
                    .quota(b.scope.name(), b.op.name(), &b.subject),
            );
            let (interval, tolerance) = gcra(*rate);
            call.arg(interval).arg(tolerance);
        }
        let refused: usize = call
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(|e| {
                if crate::unavailable(&e) {
                    ServiceError::Unavailable(e.to_string())
                } else {
                    ServiceError::Internal(Box::new(e))
                }
            })?;
        Ok(match refused.checked_sub(1).and_then(|i| limited.get(i)) {
            None => Ok(()),
            Some((b, _)) => Err(Throttled {
                scope: b.scope,
                op: b.op,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gcra_of_aws_rates() {
        assert_eq!(super::gcra(5.0), (200_000, 800_000));
        assert_eq!(super::gcra(300.0), (3_333, 3_333 * 299));
        assert_eq!(super::gcra(0.5), (2_000_000, 0));
    }
}
