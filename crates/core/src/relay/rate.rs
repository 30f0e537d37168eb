//! Per-connection message rate limits (docs/protocol.md §8.2: SDP offers and answers 5 per second,
//! ICE candidates 20 per second, each per WebSocket connection). A token bucket per action whose
//! burst equals its rate; time comes from the injected clock, so it is tested without sleeping.

use std::sync::Arc;

use super::message::Action;
use crate::clock::Clock;
use crate::quota::memory::{governor_quota, GovernorClock};

/// Messages per second for each action; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub sdp_offer: Option<f64>,
    pub sdp_answer: Option<f64>,
    pub ice_candidate: Option<f64>,
}

impl RateLimits {
    /// AWS's limits.
    pub const AWS: Self = Self {
        sdp_offer: Some(5.0),
        sdp_answer: Some(5.0),
        ice_candidate: Some(20.0),
    };

    pub const UNLIMITED: Self = Self {
        sdp_offer: None,
        sdp_answer: None,
        ice_candidate: None,
    };

    fn for_action(&self, a: Action) -> Option<f64> {
        match a {
            Action::SdpOffer => self.sdp_offer,
            Action::SdpAnswer => self.sdp_answer,
            Action::IceCandidate => self.ice_candidate,
        }
    }
}

type Direct = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    GovernorClock,
    governor::middleware::NoOpMiddleware<std::time::Duration>,
>;

/// The buckets of one connection, one per action, made on first use; the same GCRA limiter
/// (`governor`) and clock as the API quotas ([`crate::quota`]).
pub struct ConnectionRateLimiter {
    limits: RateLimits,
    clock: GovernorClock,
    buckets: [Option<Box<Direct>>; 3],
}

fn index(a: Action) -> usize {
    match a {
        Action::SdpOffer => 0,
        Action::SdpAnswer => 1,
        Action::IceCandidate => 2,
    }
}

impl ConnectionRateLimiter {
    pub fn new(limits: RateLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            limits,
            clock: GovernorClock(clock),
            buckets: [None, None, None],
        }
    }

    /// Takes one token for `action`; false when the rate is exceeded.
    pub fn allow(&mut self, action: Action) -> bool {
        let Some(quota) = self.limits.for_action(action).and_then(governor_quota) else {
            return true;
        };
        let clock = &self.clock;
        self.buckets[index(action)]
            .get_or_insert_with(|| Box::new(Direct::direct_with_clock(quota, clock.clone())))
            .check()
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::ManualClock;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut r = ConnectionRateLimiter::new(RateLimits::AWS, clock.clone());
        for _ in 0..5 {
            assert!(r.allow(Action::SdpOffer));
        }
        assert!(!r.allow(Action::SdpOffer));
        // Other actions have their own buckets.
        for _ in 0..20 {
            assert!(r.allow(Action::IceCandidate));
        }
        assert!(!r.allow(Action::IceCandidate));
        // 200 ms later one offer token is back.
        clock.advance(Duration::from_millis(200));
        assert!(r.allow(Action::SdpOffer));
        assert!(!r.allow(Action::SdpOffer));
        // Never more than the burst, however long the pause.
        clock.advance(Duration::from_secs(60));
        for _ in 0..5 {
            assert!(r.allow(Action::SdpOffer));
        }
        assert!(!r.allow(Action::SdpOffer));
    }

    #[test]
    fn unlimited_never_refuses() {
        let clock = Arc::new(ManualClock::new(0));
        let mut r = ConnectionRateLimiter::new(RateLimits::UNLIMITED, clock);
        for _ in 0..10_000 {
            assert!(r.allow(Action::SdpOffer));
        }
    }
}
