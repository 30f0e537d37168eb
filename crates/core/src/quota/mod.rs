//! API quotas (docs/protocol.md §8.1-8.2): token buckets per account and per channel for each
//! rate-limited operation, refusing with `ClientLimitExceededException` as AWS does.
//!
//! This module owns the table of rates ([`Quotas`]: AWS's published figures, or none, plus the
//! operator's overrides) and the port that counts requests against it ([`RateLimiter`]). The
//! in-memory limiter keeps its buckets in the process; the Redis one shares them across nodes,
//! so three nodes together allow what AWS allows, not three times that.

pub mod memory;
pub use memory::MemoryLimiter;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::error::ServiceError;

/// The operations AWS publishes a rate for (docs/protocol.md §8.1-8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaOp {
    CreateSignalingChannel,
    DeleteSignalingChannel,
    DescribeMediaStorageConfiguration,
    DescribeSignalingChannel,
    GetSignalingChannelEndpoint,
    ListSignalingChannels,
    ListTagsForResource,
    TagResource,
    UntagResource,
    UpdateMediaStorageConfiguration,
    UpdateSignalingChannel,
    ConnectAsMaster,
    ConnectAsViewer,
    SendAlexaOfferToMaster,
    GetIceServerConfig,
}

impl QuotaOp {
    pub const ALL: [QuotaOp; 15] = [
        Self::CreateSignalingChannel,
        Self::DeleteSignalingChannel,
        Self::DescribeMediaStorageConfiguration,
        Self::DescribeSignalingChannel,
        Self::GetSignalingChannelEndpoint,
        Self::ListSignalingChannels,
        Self::ListTagsForResource,
        Self::TagResource,
        Self::UntagResource,
        Self::UpdateMediaStorageConfiguration,
        Self::UpdateSignalingChannel,
        Self::ConnectAsMaster,
        Self::ConnectAsViewer,
        Self::SendAlexaOfferToMaster,
        Self::GetIceServerConfig,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CreateSignalingChannel => "CreateSignalingChannel",
            Self::DeleteSignalingChannel => "DeleteSignalingChannel",
            Self::DescribeMediaStorageConfiguration => "DescribeMediaStorageConfiguration",
            Self::DescribeSignalingChannel => "DescribeSignalingChannel",
            Self::GetSignalingChannelEndpoint => "GetSignalingChannelEndpoint",
            Self::ListSignalingChannels => "ListSignalingChannels",
            Self::ListTagsForResource => "ListTagsForResource",
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::UpdateMediaStorageConfiguration => "UpdateMediaStorageConfiguration",
            Self::UpdateSignalingChannel => "UpdateSignalingChannel",
            Self::ConnectAsMaster => "ConnectAsMaster",
            Self::ConnectAsViewer => "ConnectAsViewer",
            Self::SendAlexaOfferToMaster => "SendAlexaOfferToMaster",
            Self::GetIceServerConfig => "GetIceServerConfig",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// AWS's published rates: (per account, per channel), requests per second.
    pub fn aws_rates(self) -> (Option<f64>, Option<f64>) {
        match self {
            Self::CreateSignalingChannel => (Some(50.0), None),
            Self::DeleteSignalingChannel => (Some(50.0), Some(5.0)),
            Self::DescribeMediaStorageConfiguration => (Some(50.0), Some(5.0)),
            Self::DescribeSignalingChannel => (Some(300.0), Some(5.0)),
            Self::GetSignalingChannelEndpoint => (Some(300.0), None),
            Self::ListSignalingChannels => (Some(50.0), None),
            Self::ListTagsForResource | Self::TagResource | Self::UntagResource => {
                (Some(50.0), Some(5.0))
            }
            Self::UpdateMediaStorageConfiguration => (Some(10.0), Some(5.0)),
            Self::UpdateSignalingChannel => (Some(50.0), Some(5.0)),
            Self::ConnectAsMaster | Self::ConnectAsViewer => (None, Some(3.0)),
            Self::SendAlexaOfferToMaster => (Some(100.0), Some(5.0)),
            Self::GetIceServerConfig => (None, Some(5.0)),
        }
    }
}

impl fmt::Display for QuotaOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a bucket is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Per account and region.
    Account,
    /// Per signaling channel.
    Channel,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Channel => "channel",
        }
    }
}

/// `--quotas`: AWS's published rates, or none at all (the default, so local test suites are
/// never throttled by surprise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuotaMode {
    #[default]
    Off,
    Aws,
}

/// The rate of every (scope, operation) pair that is limited, in requests per second. A burst
/// of one second's worth is allowed (AWS publishes no other).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quotas {
    rates: BTreeMap<(Scope, QuotaOp), f64>,
}

impl Quotas {
    /// No quota at all.
    pub fn off() -> Self {
        Self::default()
    }

    /// AWS's published rates.
    pub fn aws() -> Self {
        let mut q = Self::default();
        for op in QuotaOp::ALL {
            let (account, channel) = op.aws_rates();
            if let Some(r) = account {
                q.rates.insert((Scope::Account, op), r);
            }
            if let Some(r) = channel {
                q.rates.insert((Scope::Channel, op), r);
            }
        }
        q
    }

    pub fn for_mode(mode: QuotaMode) -> Self {
        match mode {
            QuotaMode::Off => Self::off(),
            QuotaMode::Aws => Self::aws(),
        }
    }

    /// Sets one rate (an operator's override); 0 removes the limit.
    pub fn set(&mut self, scope: Scope, op: QuotaOp, per_second: f64) {
        if per_second > 0.0 {
            self.rates.insert((scope, op), per_second);
        } else {
            self.rates.remove(&(scope, op));
        }
    }

    pub fn rate(&self, scope: Scope, op: QuotaOp) -> Option<f64> {
        self.rates.get(&(scope, op)).copied()
    }

    pub fn is_off(&self) -> bool {
        self.rates.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Scope, QuotaOp, f64)> + '_ {
        self.rates.iter().map(|((s, o), r)| (*s, *o, *r))
    }
}

/// One bucket a request is counted against: a scope's key (the account and region, or the
/// channel's ARN) and the operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub scope: Scope,
    pub op: QuotaOp,
    /// `ACCOUNT:REGION` for an account, the channel's ARN (or `ACCOUNT:REGION:name:NAME` when
    /// the request names the channel) for a channel.
    pub subject: String,
}

/// A request that exceeded one of its buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub scope: Scope,
    pub op: QuotaOp,
}

impl From<Throttled> for ServiceError {
    fn from(t: Throttled) -> Self {
        // AWS's documented text for the error, then which bucket ran dry.
        ServiceError::limit(format!(
            "Kinesis Video Streams has throttled the request because you have exceeded the \
             limit of allowed client calls. Try making the call later. ({} per {})",
            t.op.name(),
            t.scope.name()
        ))
    }
}

/// The port: counts one request against its buckets. A request takes one token from each of
/// its buckets and is refused when any of them is empty (the Redis limiter then takes none;
/// the in-memory one may have taken a token from a bucket checked before the empty one, as a
/// refused call counts on AWS too).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// `Ok(Ok(()))`: allowed; `Ok(Err(_))`: refused; `Err(_)`: the limiter's store failed
    /// (the caller answers 503, as for any store failure).
    async fn acquire(&self, buckets: &[BucketKey]) -> Result<Result<(), Throttled>, ServiceError>;
}

/// The quota check of the application layer: which buckets a request counts against, and the
/// limiter that counts. With every quota off it costs one branch.
pub struct Throttle {
    quotas: Quotas,
    limiter: std::sync::Arc<dyn RateLimiter>,
    throttled: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub fn new(quotas: Quotas, limiter: std::sync::Arc<dyn RateLimiter>) -> Self {
        Self {
            quotas,
            limiter,
            throttled: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Calls refused since start.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// No quota at all.
    pub fn off() -> Self {
        let clock: std::sync::Arc<dyn crate::clock::Clock> =
            std::sync::Arc::new(crate::clock::SystemClock);
        Self::new(
            Quotas::off(),
            std::sync::Arc::new(MemoryLimiter::new(&Quotas::off(), clock)),
        )
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Counts a call of `op` by `ns`, on `channel` when the call names one (its ARN, or its
    /// name: [`channel_subject`]).
    pub async fn check(
        &self,
        ns: &crate::ids::Namespace,
        op: QuotaOp,
        channel: Option<&str>,
    ) -> Result<(), ServiceError> {
        if self.quotas.is_off() {
            return Ok(());
        }
        let mut buckets = Vec::with_capacity(2);
        if self.quotas.rate(Scope::Channel, op).is_some() {
            if let Some(subject) = channel {
                buckets.push(BucketKey {
                    scope: Scope::Channel,
                    op,
                    subject: subject.to_owned(),
                });
            }
        }
        if self.quotas.rate(Scope::Account, op).is_some() {
            buckets.push(BucketKey {
                scope: Scope::Account,
                op,
                subject: format!("{}:{}", ns.account, ns.region),
            });
        }
        if buckets.is_empty() {
            return Ok(());
        }
        self.limiter.acquire(&buckets).await?.map_err(|t| {
            self.throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            t.into()
        })
    }
}

/// The channel bucket's subject for a call that names a channel by name rather than ARN.
pub fn channel_subject(ns: &crate::ids::Namespace, name: &str) -> String {
    format!("{}:{}:name/{name}", ns.account, ns.region)
}
