//! What every [`super::SessionRegistry`] must do, run against each backend with a clock the
//! test steps (`session_registry_conformance!`): the most recent claim wins, a superseded or
//! lapsed claim cannot renew or release, listings show live claims only.

/// Expands to one test per case; `$make` is an async fn returning `(registry, step)` where
/// `step(ms)` advances the registry's clock.
#[macro_export]
macro_rules! session_registry_conformance {
    ($make:path) => {
        mod session_registry_conformance {
            #![allow(clippy::unwrap_used)]
            #[allow(unused_imports)]
            use super::*;
            use std::time::Duration;
            use $crate::relay::NodeId;
            use $crate::storage_session::SessionState;

            const C1: &str = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/a/1";
            const C2: &str = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/b/2";
            const TTL: Duration = Duration::from_secs(10);

            #[tokio::test]
            async fn the_most_recent_claim_wins() {
                let (r, step) = $make().await;
                let (first, replaced) = r.claim(C1, "s1", NodeId(1), TTL).await.unwrap();
                assert_eq!(replaced, None);
                assert_eq!(first.session_id, "s1");
                assert_eq!(first.node, NodeId(1));
                assert_eq!(first.state, "OFFERING");
                assert_eq!(first.expires_millis - first.since_millis, 10_000);
                step(5).await;
                let (second, replaced) = r.claim(C1, "s2", NodeId(2), TTL).await.unwrap();
                assert_eq!(replaced, Some(first.clone()));
                assert_eq!(
                    second.since_millis,
                    first.since_millis + 5,
                    "the registry's clock"
                );
                assert!(!r
                    .renew(C1, "s1", SessionState::Connected, TTL)
                    .await
                    .unwrap());
                assert!(!r.release(C1, "s1").await.unwrap(), "s1 no longer holds it");
                let listed = r.list().await.unwrap();
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].session_id, "s2");
                assert_eq!(listed[0].node, NodeId(2));
            }

            #[tokio::test]
            async fn renew_extends_and_records_the_state() {
                let (r, step) = $make().await;
                r.claim(C1, "s1", NodeId(1), TTL).await.unwrap();
                step(9_000).await;
                assert!(r
                    .renew(C1, "s1", SessionState::Connected, TTL)
                    .await
                    .unwrap());
                step(9_000).await;
                let listed = r.list().await.unwrap();
                assert_eq!(listed.len(), 1, "renewed: still live 18 s after the claim");
                assert_eq!(listed[0].state, "CONNECTED");
            }

            #[tokio::test]
            async fn an_unrenewed_claim_lapses() {
                let (r, step) = $make().await;
                r.claim(C1, "s1", NodeId(1), TTL).await.unwrap();
                step(10_001).await;
                assert_eq!(r.list().await.unwrap(), vec![]);
                assert!(!r
                    .renew(C1, "s1", SessionState::Connected, TTL)
                    .await
                    .unwrap());
                let (_, replaced) = r.claim(C1, "s2", NodeId(2), TTL).await.unwrap();
                assert_eq!(replaced, None, "a lapsed claim is not reported as replaced");
            }

            #[tokio::test]
            async fn release_frees_only_its_own_channel() {
                let (r, _step) = $make().await;
                r.claim(C1, "s1", NodeId(1), TTL).await.unwrap();
                r.claim(C2, "s2", NodeId(1), TTL).await.unwrap();
                assert!(r.release(C1, "s1").await.unwrap());
                assert!(!r.release(C1, "s1").await.unwrap());
                let listed: Vec<_> = r
                    .list()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.channel_arn)
                    .collect();
                assert_eq!(listed, vec![C2.to_owned()]);
            }

            #[tokio::test]
            async fn a_replaced_claim_is_announced() {
                let (r, _step) = $make().await;
                let mut notices = r.superseded();
                r.claim(C1, "s0", NodeId(1), TTL).await.unwrap();
                // A subscription may take a moment to start (Redis pub/sub): claim again until
                // a notice arrives; each one names the claim just replaced.
                let mut heard = None;
                for i in 1..50 {
                    r.claim(C1, &format!("s{i}"), NodeId(2), TTL).await.unwrap();
                    let wait = Duration::from_millis(100);
                    if let Ok(Ok(id)) = tokio::time::timeout(wait, notices.recv()).await {
                        heard = Some((i, id));
                        break;
                    }
                }
                let (i, id) = heard.expect("no notice of a replaced claim");
                let n: usize = id.strip_prefix('s').and_then(|n| n.parse().ok()).unwrap();
                assert!(n < i, "{id} announced after claiming s{i}");
                // A claim on a free channel replaces nothing and announces nothing.
                while notices.try_recv().is_ok() {}
                r.claim(C2, "fresh", NodeId(1), TTL).await.unwrap();
                let quiet = tokio::time::timeout(Duration::from_millis(200), notices.recv()).await;
                assert!(quiet.is_err(), "{quiet:?}");
            }

            #[tokio::test]
            async fn listing_is_ordered_by_channel() {
                let (r, _step) = $make().await;
                r.claim(C2, "s2", NodeId(2), TTL).await.unwrap();
                r.claim(C1, "s1", NodeId(1), TTL).await.unwrap();
                let listed: Vec<_> = r
                    .list()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.session_id)
                    .collect();
                assert_eq!(listed, vec!["s1".to_owned(), "s2".to_owned()]);
            }
        }
    };
}
