//! Per-connection message rate limits (docs/protocol.md §8.2: SDP offers and answers 5 per second,
//! ICE candidates 20 per second, each per WebSocket connection). A token bucket per action whose
//! burst equals its rate; time is passed in, so it is tested without sleeping.

use super::message::Action;

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

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last_millis: u64,
}

#[derive(Debug, Clone)]
pub struct ConnectionRateLimiter {
    limits: RateLimits,
    buckets: [Option<Bucket>; 3],
}

fn index(a: Action) -> usize {
    match a {
        Action::SdpOffer => 0,
        Action::SdpAnswer => 1,
        Action::IceCandidate => 2,
    }
}

impl ConnectionRateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: [None, None, None],
        }
    }

    /// Takes one token for `action` at `now_millis`; false when the rate is exceeded.
    pub fn allow(&mut self, action: Action, now_millis: u64) -> bool {
        let Some(rate) = self.limits.for_action(action) else {
            return true;
        };
        let bucket = self.buckets[index(action)].get_or_insert(Bucket {
            tokens: rate,
            last_millis: now_millis,
        });
        let elapsed = now_millis.saturating_sub(bucket.last_millis) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last_millis = now_millis;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut r = ConnectionRateLimiter::new(RateLimits::AWS);
        let t = 1_000_000;
        for _ in 0..5 {
            assert!(r.allow(Action::SdpOffer, t));
        }
        assert!(!r.allow(Action::SdpOffer, t));
        // Other actions have their own buckets.
        for _ in 0..20 {
            assert!(r.allow(Action::IceCandidate, t));
        }
        assert!(!r.allow(Action::IceCandidate, t));
        // 200 ms later one offer token is back.
        assert!(r.allow(Action::SdpOffer, t + 200));
        assert!(!r.allow(Action::SdpOffer, t + 200));
        // Never more than the burst, however long the pause.
        let later = t + 60_000;
        for _ in 0..5 {
            assert!(r.allow(Action::SdpAnswer, later));
        }
        assert!(!r.allow(Action::SdpAnswer, later));
    }

    #[test]
    fn unlimited_never_refuses() {
        let mut r = ConnectionRateLimiter::new(RateLimits::UNLIMITED);
        for _ in 0..10_000 {
            assert!(r.allow(Action::SdpOffer, 0));
        }
    }
}
