//! What every [`super::SessionRegistry`] must do, run against each backend with a clock the
//! test steps (`session_registry_conformance!`): the most recent claim wins, a superseded or
//! lapsed claim cannot renew or release, listings show live claims only; viewer memberships are
//! bounded per channel, replaced by the same ClientId, renewed only by their own join, and
//! lapse without renewal.

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
            use $crate::storage_session::{SessionState, ViewerJoin, ViewerRenewal};

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
            fn ids(v: &[$crate::storage_session::ViewerRecord]) -> Vec<(String, u64, String)> {
                v.iter()
                    .map(|r| (r.client_id.clone(), r.seq, r.state.clone()))
                    .collect()
            }

            fn seq(j: ViewerJoin) -> u64 {
                match j {
                    ViewerJoin::Joined { seq } => seq,
                    ViewerJoin::Full => panic!("refused"),
                }
            }

            #[tokio::test]
            async fn viewers_are_bounded_per_channel_and_replaced_by_client_id() {
                let (r, _step) = $make().await;
                let a = seq(r.join_viewer(C1, "a", 3, TTL).await.unwrap());
                let b = seq(r.join_viewer(C1, "b", 3, TTL).await.unwrap());
                let c = seq(r.join_viewer(C1, "c", 3, TTL).await.unwrap());
                assert!(a < b && b < c, "{a} {b} {c}");
                assert_eq!(
                    r.join_viewer(C1, "d", 3, TTL).await.unwrap(),
                    ViewerJoin::Full
                );
                // Another channel has its own three.
                seq(r.join_viewer(C2, "d", 3, TTL).await.unwrap());
                // The same ClientId joins again: a new seq, counted once.
                let b2 = seq(r.join_viewer(C1, "b", 3, TTL).await.unwrap());
                assert!(b2 > c);
                let live = r.renew_viewers(C1, &[], TTL).await.unwrap();
                let w = "WAITING".to_owned();
                assert_eq!(
                    ids(&live),
                    vec![
                        ("a".into(), a, w.clone()),
                        ("c".into(), c, w.clone()),
                        ("b".into(), b2, w)
                    ]
                );
                // Leaving needs the current join: b's first one is gone already.
                assert!(!r.leave_viewer(C1, "b", b).await.unwrap());
                assert!(r.leave_viewer(C1, "b", b2).await.unwrap());
                assert!(!r.leave_viewer(C1, "b", b2).await.unwrap());
                seq(r.join_viewer(C1, "d", 3, TTL).await.unwrap());
                let names: Vec<_> = r
                    .renew_viewers(C1, &[], TTL)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|v| v.client_id)
                    .collect();
                assert_eq!(names, vec!["a", "c", "d"]);
            }

            #[tokio::test]
            async fn viewer_memberships_lapse_unless_their_leg_renews_them() {
                let (r, step) = $make().await;
                let a = seq(r.join_viewer(C1, "a", 3, TTL).await.unwrap());
                let b = seq(r.join_viewer(C1, "b", 3, TTL).await.unwrap());
                step(9_000).await;
                let legs = [
                    ViewerRenewal {
                        client_id: "a".into(),
                        seq: a,
                        state: SessionState::Connected,
                    },
                    // A stale join of b's renews nothing.
                    ViewerRenewal {
                        client_id: "b".into(),
                        seq: b + 100,
                        state: SessionState::Connected,
                    },
                ];
                let live = r.renew_viewers(C1, &legs, TTL).await.unwrap();
                assert_eq!(
                    ids(&live),
                    vec![
                        ("a".into(), a, "CONNECTED".into()),
                        ("b".into(), b, "WAITING".into())
                    ]
                );
                assert_eq!(live[0].expires_millis - live[0].since_millis, 19_000);
                step(1_001).await;
                let live = r.renew_viewers(C1, &[], TTL).await.unwrap();
                assert_eq!(ids(&live), vec![("a".into(), a, "CONNECTED".into())]);
                // A lapsed member no longer counts toward the limit.
                seq(r.join_viewer(C1, "x", 2, TTL).await.unwrap());
                assert_eq!(
                    r.join_viewer(C1, "y", 2, TTL).await.unwrap(),
                    ViewerJoin::Full
                );
                step(10_001).await;
                assert_eq!(r.renew_viewers(C1, &[], TTL).await.unwrap(), vec![]);
            }

            #[tokio::test]
            async fn a_viewer_join_is_announced() {
                let (r, _step) = $make().await;
                let mut notices = r.viewers_changed();
                let mut heard = None;
                for i in 0..50 {
                    let _ = r
                        .join_viewer(C1, &format!("v{}", i % 2), 3, TTL)
                        .await
                        .unwrap();
                    let wait = Duration::from_millis(100);
                    if let Ok(Ok(ch)) = tokio::time::timeout(wait, notices.recv()).await {
                        heard = Some(ch);
                        break;
                    }
                }
                assert_eq!(heard.as_deref(), Some(C1));
                // A refused join changes nothing and announces nothing.
                for v in ["a", "b", "c"] {
                    let _ = r.join_viewer(C2, v, 1, TTL).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                while notices.try_recv().is_ok() {}
                assert_eq!(
                    r.join_viewer(C2, "z", 1, TTL).await.unwrap(),
                    ViewerJoin::Full
                );
                let quiet = tokio::time::timeout(Duration::from_millis(200), notices.recv()).await;
                assert!(quiet.is_err(), "{quiet:?}");
            }
        }
    };
}
