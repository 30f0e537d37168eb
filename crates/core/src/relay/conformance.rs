//! The behaviour every backend of the relay's ports (presence, held messages, bus) must show,
//! with several hubs linked as nodes of one cluster: what crosses between nodes, and only where
//! it must; held messages and their TTLs across nodes; one master and the viewer limit
//! cluster-wide; GO_AWAY on delete everywhere; a dead node's lease. The in-memory ports run it
//! in `cluster_tests.rs`, the Redis ports in `kvs-redis`. A backend invokes
//! [`crate::relay_conformance!`] with an expression that makes a fresh
//! [`ClusterBackend`] (it may `.await`); the macro expands to one test per case.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::bus::Bus;
use super::held::HeldMessages;
use super::presence::Presence;
use super::testkit::{msg, viewer, Join, RecordingSink, TestTtl, ARN};
use super::{Action, Event, Hub, HubConfig, HubPorts, HubTasks, NodeId, Role};
use crate::clock::{Clock as _, ManualClock};

/// The lease the suite's nodes hold.
pub const LEASE: Duration = Duration::from_secs(30);

/// The ports of one node.
#[derive(Clone)]
pub struct NodePorts {
    pub presence: Arc<dyn Presence>,
    pub held: Arc<dyn HeldMessages>,
    pub bus: Arc<dyn Bus>,
    /// The live view's feed, shared by the nodes like the bus.
    pub feed: Arc<dyn super::watch::Feed>,
}

/// A backend under test: it makes the ports of one more node, sharing state with the nodes it
/// made before (as processes share Redis).
#[async_trait]
pub trait ClusterBackend: Send + Sync {
    async fn node(&self, lease: Duration) -> NodePorts;

    /// Makes `channel_arn` an existing, ACTIVE channel for a backend whose presence checks the
    /// channel's record when it claims (Redis: the claim fails on a deleted channel).
    async fn channel_created(&self, _channel_arn: &str) {}

    /// Ends `node`'s lease now, as if it had run out (on the backend's clock).
    async fn end_lease(&self, node: NodeId);
}

/// The second channel some cases use.
pub const SECOND_ARN: &str = "arn:aws:kinesisvideo:us-east-1:111122223333:channel/x/2";

#[macro_export]
macro_rules! relay_conformance {
    ($make:expr) => {
        $crate::relay_conformance!(@cases $make;
            viewer_and_master_on_different_nodes_talk_through_one_hop_each,
            late_master_on_another_node_gets_held_messages_in_order,
            held_offers_replace_older_ones_and_expire_by_their_own_ttl,
            one_master_cluster_wide_and_the_viewer_limit_counts_every_node,
            go_away_on_delete_reaches_every_node,
            a_dead_node_stops_counting_after_its_lease,
            a_message_for_a_node_that_left_the_bus_waits_for_the_next_connection,
            a_claim_after_the_channel_was_removed_fails,
            a_renewal_after_the_lease_ran_out_says_so,
            expired_messages_do_not_count_toward_the_bound,
            held_messages_can_be_read_without_taking_them,
            a_watcher_on_one_node_sees_what_happens_on_every_node,
            a_redirected_viewer_talks_to_the_storage_peer_wherever_it_is
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend: ::std::sync::Arc<dyn $crate::relay::conformance::ClusterBackend> =
                    $make.await;
                $crate::relay::conformance::$case(backend).await;
            }
        )*
    };
}

pub struct Cluster {
    pub hubs: Vec<Arc<Hub>>,
    pub ports: Vec<NodePorts>,
    pub tasks: Vec<Option<HubTasks>>,
    pub clock: Arc<ManualClock>,
    pub ttl: Arc<TestTtl>,
}

pub async fn cluster(backend: &dyn ClusterBackend, n: u64, config: HubConfig) -> Cluster {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let ttl = Arc::new(TestTtl(AtomicU32::new(60)));
    let config = HubConfig {
        lease: LEASE,
        ..config
    };
    let mut c = Cluster {
        hubs: Vec::new(),
        ports: Vec::new(),
        tasks: Vec::new(),
        clock,
        ttl,
    };
    for i in 1..=n {
        let p = backend.node(LEASE).await;
        let hub = Hub::new(
            NodeId(i),
            c.clock.clone(),
            config.clone(),
            HubPorts {
                presence: p.presence.clone(),
                held: p.held.clone(),
                bus: p.bus.clone(),
                ttl: c.ttl.clone(),
            },
        );
        hub.watch().use_feed(p.feed.clone());
        c.tasks.push(Some(hub.start()));
        c.hubs.push(hub);
        c.ports.push(p);
    }
    // Every node holds its lease before the test starts.
    for (i, p) in c.ports.iter().enumerate() {
        p.presence.renew(NodeId(i as u64 + 1), LEASE).await.unwrap();
    }
    backend.channel_created(ARN).await;
    backend.channel_created(SECOND_ARN).await;
    c
}

impl Cluster {
    fn received(&self, node: usize) -> u64 {
        self.hubs[node]
            .metrics()
            .bus_received
            .load(Ordering::Relaxed)
    }
}

fn sink() -> Arc<RecordingSink> {
    Arc::new(RecordingSink::default())
}

/// Waits (bounded) for the bus to deliver.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub async fn viewer_and_master_on_different_nodes_talk_through_one_hop_each(
    backend: Arc<dyn ClusterBackend>,
) {
    let c = cluster(&*backend, 3, HubConfig::default()).await;
    let (a, b) = (&c.hubs[0], &c.hubs[1]);
    let (m, v) = (sink(), sink());
    let mc = b.join(ARN, Role::Master, m.clone()).await.unwrap();
    let vc = a.join(ARN, viewer("v1"), v.clone()).await.unwrap();
    a.relay(&vc, msg(Action::SdpOffer, None, "b2ZmZXI="))
        .await
        .unwrap();
    eventually("offer at the master", || m.relayed().len() == 1).await;
    assert_eq!(m.relayed()[0].sender.as_deref(), Some("v1"));
    b.relay(&mc, msg(Action::SdpAnswer, Some("v1"), "YW5z"))
        .await
        .unwrap();
    b.relay(&mc, msg(Action::IceCandidate, Some("v1"), "aWNl"))
        .await
        .unwrap();
    eventually("answer and candidate at the viewer", || {
        v.payloads() == ["YW5z", "aWNl"]
    })
    .await;
    // Each message crossed the bus once, to the node of its recipient; the third node saw none.
    assert_eq!(c.received(1), 1);
    assert_eq!(c.received(0), 2);
    assert_eq!(c.received(2), 0);
}

/// JoinStorageSessionAsViewer: the storage peer (a viewer connection of its own, here on the
/// third node) redirects the viewer (on the first) to itself; the viewer's messages then reach
/// the peer with its ClientId and never the master, and the peer's reach the viewer as the
/// master's would (no sender). Undone, they go to the master again.
pub async fn a_redirected_viewer_talks_to_the_storage_peer_wherever_it_is(
    backend: Arc<dyn ClusterBackend>,
) {
    let c = cluster(&*backend, 3, HubConfig::default()).await;
    let (m, v, p) = (sink(), sink(), sink());
    c.hubs[1].join(ARN, Role::Master, m.clone()).await.unwrap();
    let vc = c.hubs[0].join(ARN, viewer("v1"), v.clone()).await.unwrap();
    c.hubs[2]
        .join(ARN, viewer("peer"), p.clone())
        .await
        .unwrap();
    let redirected = c.hubs[2].redirect_viewer(ARN, "v1", Some("peer")).await;
    assert_eq!(redirected, Ok(true));
    assert_eq!(
        c.hubs[2].redirect_viewer(ARN, "nobody", Some("peer")).await,
        Ok(false)
    );
    // The redirect travels the way the offer does, so it lands first.
    c.hubs[2]
        .route(
            ARN,
            viewer("v1"),
            super::Relayed {
                action: Action::SdpOffer,
                sender: None,
                payload: "b2ZmZXI=".into(),
            },
            None,
        )
        .await
        .unwrap();
    eventually("the peer's offer at the viewer", || {
        v.payloads() == ["b2ZmZXI="]
    })
    .await;
    assert_eq!(v.relayed()[0].sender, None);
    c.hubs[0]
        .relay(&vc, msg(Action::SdpAnswer, None, "YW5z"))
        .await
        .unwrap();
    eventually("the answer at the peer", || p.payloads() == ["YW5z"]).await;
    assert_eq!(p.relayed()[0].sender.as_deref(), Some("v1"));
    assert!(m.relayed().is_empty(), "the master got {:?}", m.relayed());
    // Undone: the viewer talks to the master again.
    let undone = c.hubs[2].redirect_viewer(ARN, "v1", None).await;
    assert_eq!(undone, Ok(true));
    eventually("the redirect undone on the viewer's node", || {
        c.hubs[0].local.redirect(vc.id).is_none()
    })
    .await;
    c.hubs[0]
        .relay(&vc, msg(Action::IceCandidate, None, "aWNl"))
        .await
        .unwrap();
    eventually("the candidate at the master", || m.payloads() == ["aWNl"]).await;
    assert_eq!(p.payloads(), ["YW5z"]);
}

pub async fn late_master_on_another_node_gets_held_messages_in_order(
    backend: Arc<dyn ClusterBackend>,
) {
    let c = cluster(&*backend, 2, HubConfig::default()).await;
    let vc = c.hubs[0].join(ARN, viewer("v1"), sink()).await.unwrap();
    for p in ["MQ==", "Mg==", "Mw=="] {
        c.hubs[0]
            .relay(&vc, msg(Action::IceCandidate, None, p))
            .await
            .unwrap();
    }
    assert_eq!(c.hubs[1].held_count(ARN).await, 3);
    let m = sink();
    c.hubs[1].join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["MQ==", "Mg==", "Mw=="]);
    assert_eq!(m.relayed()[0].sender.as_deref(), Some("v1"));
    // Live messages follow the held ones.
    c.hubs[0]
        .relay(&vc, msg(Action::IceCandidate, None, "NA=="))
        .await
        .unwrap();
    eventually("live after held", || m.payloads().len() == 4).await;
    assert_eq!(m.payloads()[3], "NA==");
}

pub async fn held_offers_replace_older_ones_and_expire_by_their_own_ttl(
    backend: Arc<dyn ClusterBackend>,
) {
    let c = cluster(&*backend, 2, HubConfig::default()).await;
    let vc = c.hubs[0].join(ARN, viewer("v1"), sink()).await.unwrap();
    // Sent with TTL 60: a newer offer from the same viewer replaces the older one.
    c.ttl.0.store(60, Ordering::SeqCst);
    for p in ["b2xk", "bmV3"] {
        c.hubs[0]
            .relay(&vc, msg(Action::SdpOffer, None, p))
            .await
            .unwrap();
    }
    // The TTL changes to 5 s: only messages sent from now on get it (the seed case).
    c.ttl.0.store(5, Ordering::SeqCst);
    c.hubs[0]
        .relay(&vc, msg(Action::IceCandidate, None, "c2hvcnQ="))
        .await
        .unwrap();
    assert_eq!(c.hubs[1].held_count(ARN).await, 2);
    c.clock.advance(Duration::from_secs(10));
    let m = sink();
    c.hubs[1].join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["bmV3"]);
    assert_eq!(c.hubs[1].held_count(ARN).await, 0);
}

pub async fn one_master_cluster_wide_and_the_viewer_limit_counts_every_node(
    backend: Arc<dyn ClusterBackend>,
) {
    let config = HubConfig {
        max_viewers: 2,
        ..HubConfig::default()
    };
    let c = cluster(&*backend, 3, config).await;
    let (m1, m2) = (sink(), sink());
    c.hubs[0].join(ARN, Role::Master, m1.clone()).await.unwrap();
    c.hubs[1].join(ARN, Role::Master, m2.clone()).await.unwrap();
    eventually("old master closed", || {
        matches!(m1.all().first(), Some(Event::Close { .. }))
    })
    .await;
    c.hubs[0].join(ARN, viewer("a"), sink()).await.unwrap();
    c.hubs[1].join(ARN, viewer("b"), sink()).await.unwrap();
    let err = c.hubs[2].join(ARN, viewer("c"), sink()).await.unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
    // The same viewer id on another node replaces, wherever the old one is.
    c.hubs[2].join(ARN, viewer("a"), sink()).await.unwrap();
}

pub async fn go_away_on_delete_reaches_every_node(backend: Arc<dyn ClusterBackend>) {
    let c = cluster(&*backend, 3, HubConfig::default()).await;
    let sinks: Vec<_> = (0..3).map(|_| sink()).collect();
    c.hubs[0]
        .join(ARN, Role::Master, sinks[0].clone())
        .await
        .unwrap();
    c.hubs[1]
        .join(ARN, viewer("v1"), sinks[1].clone())
        .await
        .unwrap();
    c.hubs[2]
        .join(ARN, viewer("v2"), sinks[2].clone())
        .await
        .unwrap();
    c.hubs[1].channel_deleted(ARN).await.unwrap();
    for s in &sinks {
        eventually("GO_AWAY", || {
            matches!(s.all().first(), Some(Event::GoAway { .. }))
        })
        .await;
    }
    assert!(!c.hubs[0].has_master(ARN).await);
    // A broadcast (shutdown of one node) reaches that node's connections only.
    let other = sink();
    let second = SECOND_ARN;
    c.hubs[0]
        .join(second, viewer("z"), other.clone())
        .await
        .unwrap();
    assert_eq!(c.hubs[2].broadcast(&Event::ReconnectIceServer), 1);
    assert!(other.all().is_empty());
}

pub async fn a_dead_node_stops_counting_after_its_lease(backend: Arc<dyn ClusterBackend>) {
    let config = HubConfig {
        max_viewers: 1,
        ..HubConfig::default()
    };
    let mut c = cluster(&*backend, 3, config).await;
    c.hubs[1].join(ARN, Role::Master, sink()).await.unwrap();
    c.hubs[1].join(ARN, viewer("a"), sink()).await.unwrap();
    let err = c.hubs[0].join(ARN, viewer("b"), sink()).await.unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
    // Node 2 dies: it stops renewing and leaves the bus; its lease runs out. (Node 1 saw node 2
    // alive a moment ago and may trust that for the rest of the lease it read; node 3, which
    // has not looked yet, asks and finds it dead.)
    c.tasks[1] = None;
    backend.end_lease(NodeId(2)).await;
    assert!(!c.hubs[2].has_master(ARN).await);
    let vc = c.hubs[2].join(ARN, viewer("b"), sink()).await.unwrap();
    // With no master anywhere, the viewer's offer is held for the next one.
    c.hubs[2]
        .relay(&vc, msg(Action::SdpOffer, None, "eA=="))
        .await
        .unwrap();
    let m = sink();
    c.hubs[2].join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["eA=="]);
}

pub async fn a_message_for_a_node_that_left_the_bus_waits_for_the_next_connection(
    backend: Arc<dyn ClusterBackend>,
) {
    let mut c = cluster(&*backend, 3, HubConfig::default()).await;
    let vc = c.hubs[0].join(ARN, viewer("v1"), sink()).await.unwrap();
    c.hubs[1].join(ARN, Role::Master, sink()).await.unwrap();
    // Node 2 is killed: its lease still runs, but nobody listens on its bus any more.
    c.tasks[1] = None;
    for p in ["MQ==", "Mg=="] {
        c.hubs[0]
            .relay(&vc, msg(Action::IceCandidate, None, p))
            .await
            .unwrap();
    }
    assert_eq!(c.hubs[0].held_count(ARN).await, 2);
    // The master reconnects to node 3 and gets them, in order.
    let m = sink();
    c.hubs[2].join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["MQ==", "Mg=="]);
}

pub async fn a_claim_after_the_channel_was_removed_fails(backend: Arc<dyn ClusterBackend>) {
    let c = cluster(&*backend, 2, HubConfig::default()).await;
    let v = sink();
    c.hubs[1].join(ARN, viewer("v1"), v.clone()).await.unwrap();
    // The delete tells node 2 although it runs on node 1.
    c.hubs[0].channel_deleted(ARN).await.unwrap();
    eventually("GO_AWAY on node 2", || {
        matches!(v.all().first(), Some(Event::GoAway { .. }))
    })
    .await;
    // A connect that checked the channel before the delete and claims after it is refused.
    for (i, role) in [Role::Master, viewer("v2")].into_iter().enumerate() {
        let err = c.hubs[i].join(ARN, role, sink()).await.unwrap_err();
        assert_eq!(err.error_type, "ResourceNotFoundException");
        assert_eq!(c.hubs[i].connection_count(), i);
    }
    assert!(!c.hubs[0].has_master(ARN).await);
    // Another channel is not affected.
    c.hubs[0]
        .join(SECOND_ARN, Role::Master, sink())
        .await
        .unwrap();
}

pub async fn a_renewal_after_the_lease_ran_out_says_so(backend: Arc<dyn ClusterBackend>) {
    use super::presence::Renewal;
    let c = cluster(&*backend, 2, HubConfig::default()).await;
    let p = &c.ports[0].presence;
    assert_eq!(p.renew(NodeId(9), LEASE).await.unwrap(), Renewal::Fresh);
    assert_eq!(p.renew(NodeId(9), LEASE).await.unwrap(), Renewal::Continued);
    backend.end_lease(NodeId(9)).await;
    assert_eq!(p.renew(NodeId(9), LEASE).await.unwrap(), Renewal::Lapsed);
    assert_eq!(p.renew(NodeId(9), LEASE).await.unwrap(), Renewal::Continued);
}

pub async fn expired_messages_do_not_count_toward_the_bound(backend: Arc<dyn ClusterBackend>) {
    let config = HubConfig {
        max_held_per_channel: 2,
        ..HubConfig::default()
    };
    let c = cluster(&*backend, 2, config).await;
    let vc = c.hubs[0].join(ARN, viewer("v1"), sink()).await.unwrap();
    c.ttl.0.store(5, Ordering::SeqCst);
    for p in ["MQ==", "Mg=="] {
        c.hubs[0]
            .relay(&vc, msg(Action::IceCandidate, None, p))
            .await
            .unwrap();
    }
    c.clock.advance(Duration::from_secs(10));
    c.ttl.0.store(60, Ordering::SeqCst);
    c.hubs[1]
        .relay(&vc, msg(Action::IceCandidate, None, "Mw=="))
        .await
        .unwrap();
    let s = c.hubs[1].metrics().snapshot();
    assert_eq!((s.messages_expired, s.messages_dropped_overflow), (2, 0));
    let m = sink();
    c.hubs[1].join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["Mw=="]);
}

pub async fn held_messages_can_be_read_without_taking_them(backend: Arc<dyn ClusterBackend>) {
    let c = cluster(&*backend, 2, HubConfig::default()).await;
    let vc = c.hubs[0].join(ARN, viewer("v1"), sink()).await.unwrap();
    let sent_at = c.clock.now_millis();
    for (action, p) in [(Action::SdpOffer, "b2Zm"), (Action::IceCandidate, "aWNl")] {
        c.hubs[0].relay(&vc, msg(action, None, p)).await.unwrap();
    }
    let read = |held: Vec<super::HeldMessage>| {
        held.into_iter()
            .map(|h| {
                (
                    h.recipient,
                    h.message.action,
                    h.message.sender,
                    h.message.payload,
                    h.expires_at_millis,
                )
            })
            .collect::<Vec<_>>()
    };
    let expiry = sent_at + 60_000;
    let v1 = Some("v1".to_owned());
    let want = vec![
        (
            Role::Master,
            Action::SdpOffer,
            v1.clone(),
            "b2Zm".to_owned(),
            expiry,
        ),
        (
            Role::Master,
            Action::IceCandidate,
            v1,
            "aWNl".to_owned(),
            expiry,
        ),
    ];
    // From any node, as often as asked: reading takes nothing.
    assert_eq!(read(c.hubs[1].held_messages(ARN).await.unwrap()), want);
    assert_eq!(read(c.hubs[0].held_messages(ARN).await.unwrap()), want);
    assert_eq!(c.hubs[1].held_count(ARN).await, 2);
    assert_eq!(
        read(c.hubs[1].held_messages(SECOND_ARN).await.unwrap()),
        vec![]
    );
    // Expired messages are not shown.
    c.clock.advance(Duration::from_secs(61));
    assert_eq!(read(c.hubs[1].held_messages(ARN).await.unwrap()), vec![]);
}

/// The next event on `channel` that `pick` accepts, within a few seconds.
async fn next_event<T>(
    feed: &mut tokio::sync::broadcast::Receiver<super::watch::FeedItem>,
    channel: &str,
    pick: impl Fn(&super::watch::ChannelEvent) -> Option<T>,
) -> T {
    use super::watch::FeedItem;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let item = tokio::time::timeout_at(deadline, feed.recv())
            .await
            .expect("timed out waiting for a live-view event")
            .expect("the feed closed");
        if let FeedItem::Event { channel: on, event } = item {
            if on == channel {
                if let Some(t) = pick(&event) {
                    return t;
                }
            }
        }
    }
}

pub async fn a_watcher_on_one_node_sees_what_happens_on_every_node(
    backend: Arc<dyn ClusterBackend>,
) {
    use super::watch::What;
    let c = cluster(&*backend, 2, HubConfig::default()).await;
    let mc = c.hubs[0].join(ARN, Role::Master, sink()).await.unwrap();
    let mut feed = c.hubs[1].live_feed();
    // The roll call: node 1 reports the master that was there before the watch began. A
    // watcher renews its watch; so does this test, until the feed's subscriptions are up.
    let node1 = NodeId(1).to_string();
    let mut roll_call = None;
    for _ in 0..50 {
        c.hubs[1].watch_channel(ARN, false);
        let got = tokio::time::timeout(Duration::from_millis(200), async {
            next_event(&mut feed, ARN, |e| match &e.what {
                What::Connected { role, .. } => Some((e.node.clone(), role.clone())),
                _ => None,
            })
            .await
        })
        .await;
        if let Ok(got) = got {
            roll_call = Some(got);
            break;
        }
    }
    assert_eq!(roll_call, Some((node1.clone(), "MASTER".to_owned())));
    let now = c.clock.now_millis();
    eventually("both nodes watch", || {
        c.hubs.iter().all(|h| h.watch().watched(ARN, now).is_some())
    })
    .await;
    // A viewer joins on node 2 and sends an offer that node 2 relays to node 1's master.
    let vc = c.hubs[1].join(ARN, viewer("v1"), sink()).await.unwrap();
    let joined = next_event(&mut feed, ARN, |e| match &e.what {
        What::Connected {
            role, client_id, ..
        } if client_id.is_some() => Some((e.node.clone(), role.clone(), client_id.clone())),
        _ => None,
    })
    .await;
    let node2 = NodeId(2).to_string();
    assert_eq!(
        joined,
        (node2.clone(), "VIEWER".to_owned(), Some("v1".to_owned()))
    );
    let roles = |r: Vec<(Role, super::Member)>| {
        r.into_iter()
            .map(|(role, m)| (role, m.node))
            .collect::<Vec<_>>()
    };
    let both = vec![(Role::Master, NodeId(1)), (viewer("v1"), NodeId(2))];
    assert_eq!(roles(c.hubs[0].connected(ARN).await.unwrap()), both);
    assert_eq!(roles(c.hubs[1].connected(ARN).await.unwrap()), both);
    c.hubs[1]
        .relay(&vc, msg(Action::SdpOffer, None, "b2Zm"))
        .await
        .unwrap();
    let relayed = next_event(&mut feed, ARN, |e| match &e.what {
        What::Message { .. } => Some((e.node.clone(), e.what.clone())),
        _ => None,
    })
    .await;
    assert_eq!(
        relayed,
        (
            node2.clone(),
            What::Message {
                action: "SDP_OFFER".into(),
                size: 4,
                from: "v1".into(),
                to: "MASTER".into(),
                outcome: "relayed".into(),
                reason: None,
                payload: None,
            }
        )
    );
    // The master leaves on node 1: seen from node 2.
    c.hubs[0].disconnect(&mc).await;
    let left = next_event(&mut feed, ARN, |e| match &e.what {
        What::Disconnected { role, .. } => Some((e.node.clone(), role.clone())),
        _ => None,
    })
    .await;
    assert_eq!(left, (node1, "MASTER".to_owned()));
    // A channel nobody watches publishes nothing (counted on the channel itself: late answers
    // to the watch renewals above may still be on their way for the watched one).
    let other = c.hubs[0]
        .join(SECOND_ARN, Role::Master, sink())
        .await
        .unwrap();
    c.hubs[0].disconnect(&other).await;
    c.hubs[0].watch_channel("marker", false);
    let mut seen_second = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), feed.recv()).await {
            Ok(Ok(super::watch::FeedItem::Watch { channel, .. })) if channel == "marker" => break,
            Ok(Ok(super::watch::FeedItem::Event { channel, .. })) if channel == SECOND_ARN => {
                seen_second += 1
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("the feed ended before the marker: {other:?}"),
        }
    }
    assert_eq!(seen_second, 0);
}
