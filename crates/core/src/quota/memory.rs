//! The in-process limiter: one `governor` keyed limiter (GCRA, equivalent to a token bucket)
//! per limited (scope, operation), keyed by the bucket's subject. Idle keys are forgotten
//! every second, so memory follows the number of subjects seen in the last second, not all
//! subjects ever seen.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

use super::{BucketKey, QuotaOp, Quotas, RateLimiter, Scope, Throttled};
use crate::clock::Clock;
use crate::error::ServiceError;

/// Time for `governor`, read from the injected [`Clock`] (tests step it; nothing sleeps).
#[derive(Clone)]
pub struct GovernorClock(pub Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_millis())
    }
}

/// A quota of `per_second` with a burst of one second's worth (at least one request).
pub fn governor_quota(per_second: f64) -> Option<Quota> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return None;
    }
    let period = Duration::from_secs_f64((1.0 / per_second).min(86_400.0));
    let burst = NonZeroU32::new(per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32)?;
    Some(Quota::with_period(period)?.allow_burst(burst))
}

type Keyed = governor::RateLimiter<
    String,
    DashMapStateStore<String>,
    GovernorClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// Keys kept before idle ones are swept out of turn (a flood of distinct channel names).
const SWEEP_AT: usize = 100_000;

pub struct MemoryLimiter {
    limiters: HashMap<(Scope, QuotaOp), Keyed>,
    clock: Arc<dyn Clock>,
    last_sweep: std::sync::atomic::AtomicU64,
}

impl MemoryLimiter {
    pub fn new(quotas: &Quotas, clock: Arc<dyn Clock>) -> Self {
        let limiters = quotas
            .iter()
            .filter_map(|(scope, op, rate)| {
                let q = governor_quota(rate)?;
                Some((
                    (scope, op),
                    Keyed::dashmap_with_clock(q, GovernorClock(Arc::clone(&clock))),
                ))
            })
            .collect();
        Self {
            limiters,
            clock,
            last_sweep: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Subjects currently remembered, over all buckets.
    pub fn tracked(&self) -> usize {
        self.limiters.values().map(|l| l.len()).sum()
    }

    /// Forgets subjects whose bucket is full again (at most once a second, or at once when a
    /// limiter holds more than [`SWEEP_AT`] keys).
    fn sweep(&self, limiter: &Keyed) {
        use std::sync::atomic::Ordering;
        let now = self.clock.now_millis();
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= 1000;
        if (due
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
            || limiter.len() > SWEEP_AT
        {
            for l in self.limiters.values() {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn acquire(&self, buckets: &[BucketKey]) -> Result<Result<(), Throttled>, ServiceError> {
        for key in buckets {
            let Some(limiter) = self.limiters.get(&(key.scope, key.op)) else {
                continue;
            };
            self.sweep(limiter);
            if limiter.check_key(&key.subject).is_err() {
                return Ok(Err(Throttled {
                    scope: key.scope,
                    op: key.op,
                }));
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    async fn make(
        quotas: Quotas,
    ) -> (Arc<dyn RateLimiter>, impl Fn(u64) -> std::future::Ready<()>) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::new(&quotas, clock.clone()));
        let step = move |ms| {
            clock.advance(Duration::from_millis(ms));
            std::future::ready(())
        };
        (limiter, step)
    }

    crate::quota_conformance!(make);

    #[test]
    fn quotas_have_a_burst_of_one_seconds_worth() {
        let q = governor_quota(5.0).expect("quota");
        assert_eq!(q.burst_size().get(), 5);
        assert_eq!(q.replenish_interval(), Duration::from_millis(200));
        let q = governor_quota(0.5).expect("quota");
        assert_eq!(q.burst_size().get(), 1);
        assert_eq!(q.replenish_interval(), Duration::from_secs(2));
        assert!(governor_quota(0.0).is_none());
        assert!(governor_quota(f64::NAN).is_none());
    }

    #[tokio::test]
    async fn idle_subjects_are_forgotten() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let l = MemoryLimiter::new(&Quotas::aws(), clock.clone());
        for c in 0..100 {
            let k = super::super::conformance::key(
                Scope::Channel,
                QuotaOp::ConnectAsMaster,
                &format!("c{c}"),
            );
            assert!(l.acquire(&[k]).await.expect("store").is_ok());
        }
        assert_eq!(l.tracked(), 100);
        clock.advance(Duration::from_secs(2));
        let k = super::super::conformance::key(Scope::Channel, QuotaOp::ConnectAsMaster, "x");
        assert!(l.acquire(&[k]).await.expect("store").is_ok());
        assert_eq!(
            l.tracked(),
            1,
            "only the subject seen in the last second is kept"
        );
    }
}
