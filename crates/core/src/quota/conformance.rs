//! What every [`RateLimiter`] must do, run against each backend with a clock the test steps
//! (`quota_conformance!`): a burst of one second's worth, then refusals, refill over time,
//! subjects and operations counted apart.

use super::{BucketKey, QuotaOp, RateLimiter, Scope};

pub fn key(scope: Scope, op: QuotaOp, subject: &str) -> BucketKey {
    BucketKey {
        scope,
        op,
        subject: subject.to_owned(),
    }
}

/// How many of `n` back-to-back requests on `buckets` are allowed.
pub async fn allowed(limiter: &dyn RateLimiter, buckets: &[BucketKey], n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if limiter
            .acquire(buckets)
            .await
            .expect("limiter store")
            .is_ok()
        {
            ok += 1;
        }
    }
    ok
}

/// Expands to one test per case; `$make` is an async fn taking the quotas and returning
/// `(Arc<dyn RateLimiter>, Arc<ManualClock>)`-like `(limiter, step)` where `step(ms)`
/// advances the limiter's clock.
#[macro_export]
macro_rules! quota_conformance {
    ($make:path) => {
        mod quota_conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::quota::conformance::{allowed, key};
            use $crate::quota::{QuotaMode, QuotaOp, Quotas, Scope};

            #[tokio::test]
            async fn a_burst_of_one_seconds_worth_then_refusals() {
                let (l, _step) = $make(Quotas::for_mode(QuotaMode::Aws)).await;
                let b = [key(Scope::Channel, QuotaOp::ConnectAsMaster, "arn:c1")];
                assert_eq!(allowed(&*l, &b, 10).await, 3);
                let refused = l.acquire(&b).await.expect("store").unwrap_err();
                assert_eq!(refused.op, QuotaOp::ConnectAsMaster);
                assert_eq!(refused.scope, Scope::Channel);
            }

            #[tokio::test]
            async fn tokens_come_back_at_the_rate() {
                let (l, step) = $make(Quotas::for_mode(QuotaMode::Aws)).await;
                let b = [key(Scope::Channel, QuotaOp::GetIceServerConfig, "arn:c1")];
                assert_eq!(allowed(&*l, &b, 20).await, 5);
                step(200).await;
                assert_eq!(allowed(&*l, &b, 20).await, 1, "one token per 200 ms");
                step(1000).await;
                assert_eq!(allowed(&*l, &b, 20).await, 5, "never more than the burst");
            }

            #[tokio::test]
            async fn subjects_and_operations_are_counted_apart() {
                let (l, _step) = $make(Quotas::for_mode(QuotaMode::Aws)).await;
                let c1 = [key(Scope::Channel, QuotaOp::ConnectAsViewer, "arn:c1")];
                let c2 = [key(Scope::Channel, QuotaOp::ConnectAsViewer, "arn:c2")];
                let m1 = [key(Scope::Channel, QuotaOp::ConnectAsMaster, "arn:c1")];
                assert_eq!(allowed(&*l, &c1, 10).await, 3);
                assert_eq!(allowed(&*l, &c2, 10).await, 3);
                assert_eq!(allowed(&*l, &m1, 10).await, 3);
            }

            #[tokio::test]
            async fn any_empty_bucket_refuses_the_request() {
                let (l, _step) = $make(Quotas::for_mode(QuotaMode::Aws)).await;
                let account = key(Scope::Account, QuotaOp::DescribeSignalingChannel, "1:r");
                // 300 per account, 5 per channel: 60 channels exhaust the account.
                let mut ok = 0;
                for c in 0..70 {
                    let chan = key(
                        Scope::Channel,
                        QuotaOp::DescribeSignalingChannel,
                        &format!("arn:c{c}"),
                    );
                    ok += allowed(&*l, &[account.clone(), chan], 5).await;
                }
                assert_eq!(ok, 300);
            }

            #[tokio::test]
            async fn unlimited_operations_are_never_refused() {
                let (l, _step) = $make(Quotas::off()).await;
                let b = [key(Scope::Channel, QuotaOp::ConnectAsMaster, "arn:c1")];
                assert_eq!(allowed(&*l, &b, 50).await, 50);
            }
        }
    };
}
