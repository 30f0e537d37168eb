#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::clock::ManualClock;
use crate::relay::bus::{self, MemoryBus};
use crate::relay::held::MemoryHeld;
use crate::relay::presence::{self, MemoryPresence, Renewal};
pub(crate) use crate::relay::testkit::{msg, viewer, Join, RecordingSink, TestTtl, ARN};
use crate::relay::{
    Action, ClientMessage, Event, HeldMessage, HubTasks, Member, NodeId, Relayed, Role, SignalError,
};

struct Fixture {
    hub: Arc<Hub>,
    clock: Arc<ManualClock>,
    ttl: Arc<TestTtl>,
    _tasks: HubTasks,
}

fn fixture_with(config: HubConfig) -> Fixture {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let ttl = Arc::new(TestTtl(AtomicU32::new(60)));
    let ports = HubPorts {
        presence: Arc::new(MemoryPresence::new()),
        held: Arc::new(MemoryHeld::new()),
        bus: Arc::new(MemoryBus::new()),
        ttl: ttl.clone(),
    };
    let hub = Hub::new(NodeId(1), clock.clone(), config, ports);
    let tasks = hub.start();
    Fixture {
        hub,
        clock,
        ttl,
        _tasks: tasks,
    }
}

fn fixture() -> Fixture {
    fixture_with(HubConfig::default())
}

fn sink() -> Arc<RecordingSink> {
    Arc::new(RecordingSink::default())
}

#[tokio::test]
async fn viewer_to_master_carries_the_viewer_id() {
    let f = fixture();
    let (m, v) = (sink(), sink());
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    let vc = f.hub.join(ARN, viewer("v1"), v.clone()).await.unwrap();
    // A viewer's recipientClientId is ignored: it always goes to the master.
    f.hub
        .relay(&vc, msg(Action::SdpOffer, Some("someone"), "b2ZmZXI="))
        .await
        .unwrap();
    let got = m.relayed();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sender.as_deref(), Some("v1"));
    assert_eq!(got[0].action, Action::SdpOffer);
    assert_eq!(got[0].payload, "b2ZmZXI=");
    assert!(v.all().is_empty());
}

#[tokio::test]
async fn master_to_named_viewer_only() {
    let f = fixture();
    let (m, v1, v2) = (sink(), sink(), sink());
    let mc = f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    f.hub.join(ARN, viewer("v1"), v1.clone()).await.unwrap();
    f.hub.join(ARN, viewer("v2"), v2.clone()).await.unwrap();
    f.hub
        .relay(&mc, msg(Action::SdpAnswer, Some("v2"), "YW5zd2Vy"))
        .await
        .unwrap();
    assert!(v1.all().is_empty());
    let got = v2.relayed();
    assert_eq!(got[0].action, Action::SdpAnswer);
    assert_eq!(got[0].sender, None);
    let err = f
        .hub
        .relay(
            &mc,
            ClientMessage {
                correlation_id: Some("c1".into()),
                ..msg(Action::SdpAnswer, None, "YW5zd2Vy")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.correlation_id.as_deref(), Some("c1"));
    assert_eq!(err.error_type, "InvalidArgumentException");
}

#[tokio::test]
async fn late_master_gets_held_offer_and_candidates_in_order() {
    let f = fixture();
    let vc = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    for (a, p) in [
        (Action::SdpOffer, "b2ZmZXI="),
        (Action::IceCandidate, "aWNlMQ=="),
        (Action::IceCandidate, "aWNlMg=="),
    ] {
        f.hub.relay(&vc, msg(a, None, p)).await.unwrap();
    }
    assert_eq!(f.hub.held_count(ARN).await, 3);
    let m = sink();
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["b2ZmZXI=", "aWNlMQ==", "aWNlMg=="]);
    assert_eq!(f.hub.held_count(ARN).await, 0);
    assert_eq!(f.hub.metrics().snapshot().messages_delivered_from_hold, 3);
}

#[tokio::test]
async fn ttl_is_stamped_when_accepted() {
    // The seed case: send with TTL 60, the channel's TTL becomes 5, send again, 10 s pass:
    // the first message is still delivered, the second is gone.
    let f = fixture();
    let vc = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::IceCandidate, None, "Zmlyc3Q="))
        .await
        .unwrap();
    f.ttl.0.store(5, Ordering::SeqCst);
    f.hub
        .relay(&vc, msg(Action::IceCandidate, None, "c2Vjb25k"))
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(10));
    let m = sink();
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["Zmlyc3Q="]);
    assert_eq!(f.hub.metrics().snapshot().messages_expired, 1);
}

#[tokio::test]
async fn holding_for_a_channel_that_is_gone_is_refused() {
    let f = fixture();
    let vc = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    f.ttl.0.store(0, Ordering::SeqCst);
    let err = f
        .hub
        .relay(&vc, msg(Action::IceCandidate, None, "eA=="))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "ResourceNotFoundException");
    assert_eq!(f.hub.held_count(ARN).await, 0);
}

#[tokio::test]
async fn sweep_expires_held_messages() {
    let f = fixture();
    f.ttl.0.store(5, Ordering::SeqCst);
    let vc = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::IceCandidate, None, "aWNl"))
        .await
        .unwrap();
    f.hub.disconnect(&vc).await;
    assert_eq!(f.hub.held_count(ARN).await, 1);
    f.clock.advance(Duration::from_millis(4_999));
    assert_eq!(f.hub.sweep().await, 0);
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(f.hub.sweep().await, 1);
    assert_eq!(f.hub.held_count(ARN).await, 0);
}

#[tokio::test]
async fn newer_offer_replaces_held_one_from_same_sender() {
    let f = fixture();
    let v1 = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    let v2 = f.hub.join(ARN, viewer("v2"), sink()).await.unwrap();
    f.hub
        .relay(&v1, msg(Action::SdpOffer, None, "b2xk"))
        .await
        .unwrap();
    f.hub
        .relay(&v2, msg(Action::SdpOffer, None, "djI="))
        .await
        .unwrap();
    f.hub
        .relay(&v1, msg(Action::SdpOffer, None, "bmV3"))
        .await
        .unwrap();
    let m = sink();
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(
        m.messages(),
        [
            (Some("v2".into()), "djI=".into()),
            (Some("v1".into()), "bmV3".into())
        ]
    );
    assert_eq!(f.hub.metrics().snapshot().messages_replaced, 1);
}

#[tokio::test]
async fn held_messages_are_bounded_oldest_dropped() {
    let f = fixture_with(HubConfig {
        max_held_per_channel: 3,
        ..HubConfig::default()
    });
    let vc = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    for p in ["MQ==", "Mg==", "Mw==", "NA==", "NQ=="] {
        f.hub
            .relay(&vc, msg(Action::IceCandidate, None, p))
            .await
            .unwrap();
    }
    assert_eq!(f.hub.held_count(ARN).await, 3);
    assert_eq!(f.hub.metrics().snapshot().messages_dropped_overflow, 2);
    let m = sink();
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    assert_eq!(m.payloads(), ["Mw==", "NA==", "NQ=="]);
}

#[tokio::test]
async fn new_master_replaces_old_and_viewer_id_replaces_its_old_connection() {
    let f = fixture();
    let (m1, m2) = (sink(), sink());
    let c1 = f.hub.join(ARN, Role::Master, m1.clone()).await.unwrap();
    f.hub.join(ARN, Role::Master, m2.clone()).await.unwrap();
    assert!(matches!(m1.all()[0], Event::Close { .. }));
    // The old session's disconnect must not remove the new master.
    f.hub.disconnect(&c1).await;
    assert!(f.hub.has_master(ARN).await);
    assert_eq!(f.hub.metrics().snapshot().masters_connected, 1);

    let (v1a, v1b) = (sink(), sink());
    let old = f.hub.join(ARN, viewer("v1"), v1a.clone()).await.unwrap();
    let vc = f.hub.join(ARN, viewer("v1"), v1b.clone()).await.unwrap();
    assert!(matches!(v1a.all()[0], Event::Close { .. }));
    f.hub.disconnect(&old).await;
    assert_eq!(f.hub.metrics().snapshot().viewers_connected, 1);
    f.hub
        .relay(&vc, msg(Action::SdpOffer, None, "eA=="))
        .await
        .unwrap();
    assert_eq!(m2.relayed().len(), 1);
}

#[tokio::test]
async fn viewer_limit_counts_distinct_viewers() {
    let f = fixture_with(HubConfig {
        max_viewers: 2,
        ..HubConfig::default()
    });
    f.hub.join(ARN, viewer("a"), sink()).await.unwrap();
    f.hub.join(ARN, viewer("b"), sink()).await.unwrap();
    let err = f.hub.join(ARN, viewer("c"), sink()).await.unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
    assert_eq!(f.hub.connection_count(), 2);
    // Reconnecting an existing viewer is a replacement, not a new viewer.
    f.hub.join(ARN, viewer("a"), sink()).await.unwrap();
    // Masters and waiting SendAlexaOfferToMaster calls do not count.
    f.hub.join(ARN, Role::Master, sink()).await.unwrap();
    f.hub
        .join(ARN, Role::AnswerWaiter("c".into()), sink())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_answer_waiter_gets_the_answer_without_evicting_the_viewer() {
    let f = fixture();
    let (m, v, w) = (sink(), sink(), sink());
    let mc = f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    f.hub.join(ARN, viewer("alexa"), v.clone()).await.unwrap();
    let wc = f
        .hub
        .join(ARN, Role::AnswerWaiter("alexa".into()), w.clone())
        .await
        .unwrap();
    assert!(v.all().is_empty(), "the viewer is not replaced");
    f.hub
        .relay(&mc, msg(Action::SdpAnswer, Some("alexa"), "YW5z"))
        .await
        .unwrap();
    assert_eq!(w.payloads(), ["YW5z"]);
    assert!(v.all().is_empty());
    // Once the call stopped waiting, answers go to the viewer again.
    f.hub.disconnect(&wc).await;
    f.hub
        .relay(&mc, msg(Action::SdpAnswer, Some("alexa"), "dHdv"))
        .await
        .unwrap();
    assert_eq!(v.payloads(), ["dHdv"]);
}

#[tokio::test]
async fn deleting_a_channel_sends_go_away_and_drops_held() {
    let f = fixture();
    let v = sink();
    let vc = f.hub.join(ARN, viewer("v1"), v.clone()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::SdpOffer, None, "eA=="))
        .await
        .unwrap();
    f.hub.channel_deleted(ARN).await.unwrap();
    assert!(matches!(v.all()[0], Event::GoAway { .. }));
    assert_eq!(f.hub.held_count(ARN).await, 0);
    let s = f.hub.metrics().snapshot();
    assert_eq!(s.messages_dropped_deleted, 1);
    // The connection stays open for the grace period; its session closes it.
    assert_eq!(s.viewers_connected, 1);
    f.hub.disconnect(&vc).await;
    assert_eq!(f.hub.metrics().snapshot().viewers_connected, 0);
    assert!(!f.hub.has_master(ARN).await);
}

#[tokio::test]
async fn slow_consumer_is_reported_not_blocking() {
    let f = fixture();
    let m = Arc::new(RecordingSink {
        capacity: Some(1),
        ..RecordingSink::default()
    });
    f.hub.join(ARN, Role::Master, m).await.unwrap();
    let vc = f.hub.join(ARN, viewer("v"), sink()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::IceCandidate, None, "eA=="))
        .await
        .unwrap();
    let err = f
        .hub
        .relay(&vc, msg(Action::IceCandidate, None, "eQ=="))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
}

#[tokio::test]
async fn closed_recipient_gets_message_on_reconnect() {
    let f = fixture();
    let m = sink();
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    m.closed.store(true, Ordering::SeqCst);
    let vc = f.hub.join(ARN, viewer("v"), sink()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::SdpOffer, None, "eA=="))
        .await
        .unwrap();
    let m2 = sink();
    f.hub.join(ARN, Role::Master, m2.clone()).await.unwrap();
    assert_eq!(m2.payloads(), ["eA=="]);
}

#[tokio::test]
async fn broadcast_reaches_every_connection() {
    let f = fixture();
    let (a, b) = (sink(), sink());
    f.hub.join(ARN, Role::Master, a.clone()).await.unwrap();
    f.hub
        .join("arn:other", viewer("x"), b.clone())
        .await
        .unwrap();
    assert_eq!(f.hub.broadcast(&Event::ReconnectIceServer), 2);
    assert_eq!(b.all(), [Event::ReconnectIceServer]);
    assert_eq!(f.hub.connection_count(), 2);
}

#[tokio::test]
async fn nothing_crosses_the_bus_on_one_node() {
    let f = fixture();
    let m = sink();
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    let vc = f.hub.join(ARN, viewer("v"), sink()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::SdpOffer, None, "eA=="))
        .await
        .unwrap();
    let s = f.hub.metrics().snapshot();
    assert_eq!((s.bus_published, s.bus_received), (0, 0));
    assert_eq!(m.payloads(), ["eA=="]);
}

/// Presence that can fail (`down`: the backend is unreachable) or block (`gate`: a slow
/// backend, e.g. Redis stalled) on command, so a test can drop a request future at each await.
struct GatedPresence {
    inner: MemoryPresence,
    down: AtomicBool,
    /// Operations that wait while the gate is closed: "claim", "lookup", "release".
    blocked: std::sync::Mutex<Vec<&'static str>>,
    gate: tokio::sync::watch::Sender<bool>,
    /// Operations that reached the gate (so the test knows the future is parked there).
    waiting: std::sync::atomic::AtomicUsize,
}

impl GatedPresence {
    fn new(down: bool) -> Self {
        Self {
            inner: MemoryPresence::new(),
            down: AtomicBool::new(down),
            blocked: std::sync::Mutex::default(),
            gate: tokio::sync::watch::Sender::new(false),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Closes the gate for `ops`.
    fn block(&self, ops: &[&'static str]) {
        *self.blocked.lock().unwrap() = ops.to_vec();
        self.gate.send_replace(true);
    }

    fn open(&self) {
        self.blocked.lock().unwrap().clear();
        self.gate.send_replace(false);
    }

    async fn pass(&self, op: &'static str) -> Result<(), presence::PresenceError> {
        if self.blocked.lock().unwrap().contains(&op) {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let mut rx = self.gate.subscribe();
            let _ = rx.wait_for(|closed| !*closed).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(presence::PresenceError::Backend("down".into()));
        }
        Ok(())
    }

    /// Waits until `n` operations wait at the gate.
    async fn parked(&self, n: usize) {
        for _ in 0..1000 {
            if self.waiting.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("no operation reached the gate");
    }
}

#[async_trait]
impl presence::Presence for GatedPresence {
    async fn claim(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
        max_viewers: usize,
    ) -> Result<Option<Member>, presence::PresenceError> {
        self.pass("claim").await?;
        self.inner.claim(channel, role, member, max_viewers).await
    }
    async fn release(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
    ) -> Result<(), presence::PresenceError> {
        self.pass("release").await?;
        self.inner.release(channel, role, member).await
    }
    async fn lookup(
        &self,
        channel: &str,
        role: &Role,
    ) -> Result<Option<Member>, presence::PresenceError> {
        self.pass("lookup").await?;
        self.inner.lookup(channel, role).await
    }
    async fn nodes(&self, channel: &str) -> Result<Vec<NodeId>, presence::PresenceError> {
        self.inner.nodes(channel).await
    }
    async fn remove_channel(&self, channel: &str) -> Result<Vec<NodeId>, presence::PresenceError> {
        self.pass("remove").await?;
        self.inner.remove_channel(channel).await
    }
    async fn renew(
        &self,
        node: NodeId,
        lease: Duration,
    ) -> Result<Renewal, presence::PresenceError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(presence::PresenceError::Backend("down".into()));
        }
        self.inner.renew(node, lease).await
    }
}

/// A hub on [`GatedPresence`] (down or not at first), with a 3 s lease.
fn gated_hub(down: bool, max_viewers: usize) -> (Arc<Hub>, Arc<GatedPresence>, HubTasks) {
    let presence = Arc::new(GatedPresence::new(down));
    let ports = HubPorts {
        presence: presence.clone(),
        held: Arc::new(MemoryHeld::new()),
        bus: Arc::new(MemoryBus::new()),
        ttl: Arc::new(TestTtl(AtomicU32::new(60))),
    };
    let config = HubConfig {
        max_viewers,
        lease: Duration::from_secs(3),
        ..HubConfig::default()
    };
    let hub = Hub::new(NodeId(1), Arc::new(ManualClock::new(1)), config, ports);
    let tasks = hub.start();
    (hub, presence, tasks)
}

/// Waits (bounded) until the hub has no connection and no release in flight.
async fn settled(hub: &Hub) {
    for _ in 0..1000 {
        if hub.is_settled() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "the hub never settled: {} connections",
        hub.connection_count()
    );
}

#[tokio::test(start_paused = true)]
async fn a_release_that_failed_is_retried_so_the_viewer_stops_counting() {
    let (hub, presence, _tasks) = gated_hub(false, 1);
    let v = hub.join(ARN, viewer("a"), sink()).await.unwrap();
    presence.down.store(true, Ordering::SeqCst);
    hub.disconnect(&v).await;
    assert_eq!(hub.pending_releases(), 1);
    presence.down.store(false, Ordering::SeqCst);
    let err = hub.join(ARN, viewer("b"), sink()).await.unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
    // The heartbeat (every third of the 3 s lease) retries the release.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(hub.pending_releases(), 0);
    hub.join(ARN, viewer("b"), sink()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_renewal_comes_after_its_lease_end_sends_go_away() {
    let (hub, presence, _tasks) = gated_hub(false, 10);
    let s = sink();
    hub.join(ARN, viewer("a"), s.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A short outage (one failed renewal, the lease still ran) changes nothing.
    presence.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    presence.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(s.all().is_empty(), "{:?}", s.all());
    assert_eq!(hub.metrics().snapshot().lease_lapses, 0);
    // Longer than a lease: the renewal that finally succeeds comes after the lease's end, so
    // the others may have taken this node for dead.
    presence.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    presence.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        matches!(s.all().as_slice(), [Event::GoAway { grace }] if *grace == Duration::from_secs(1)),
        "{:?}",
        s.all()
    );
    assert_eq!(hub.metrics().snapshot().lease_lapses, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connect_dropped_while_it_claims_leaves_nothing_behind() {
    let (hub, presence, _tasks) = gated_hub(false, 1);
    presence.block(&["claim"]);
    let mut connect = Box::pin(hub.connect(ARN, viewer("a"), sink()));
    tokio::select! {
        _ = &mut connect => panic!("the claim was blocked"),
        _ = presence.parked(1) => {}
    }
    // The client goes away while its connect waits on the backend.
    drop(connect);
    presence.open();
    settled(&hub).await;
    assert_eq!(
        presence.inner.lookup(ARN, &viewer("a")).await.unwrap(),
        None
    );
    let s = hub.metrics().snapshot();
    assert_eq!((s.viewers_connected, s.connections_total), (0, 1));
    // The viewer limit (1) is free again.
    hub.join(ARN, viewer("b"), sink()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_connect_dropped_while_it_claims_still_closes_the_master_it_replaced() {
    let (hub, presence, _tasks) = gated_hub(false, 10);
    let old = sink();
    hub.join(ARN, Role::Master, old.clone()).await.unwrap();
    presence.block(&["claim"]);
    let mut connect = Box::pin(hub.connect(ARN, Role::Master, sink()));
    tokio::select! {
        _ = &mut connect => panic!("the claim was blocked"),
        _ = presence.parked(1) => {}
    }
    drop(connect);
    presence.open();
    // The claim ran to its end: the old master was replaced and told, then the new one, whose
    // client was gone, was released. No master is left, and none is left unaware.
    for _ in 0..100 {
        if !old.all().is_empty() && hub.connection_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        matches!(old.all().as_slice(), [Event::Close { .. }]),
        "{:?}",
        old.all()
    );
    assert_eq!(
        presence.inner.lookup(ARN, &Role::Master).await.unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn held_messages_wait_for_a_connection_that_becomes_live() {
    let f = fixture();
    let vc = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    for p in ["MQ==", "Mg==", "Mw=="] {
        f.hub
            .relay(&vc, msg(Action::IceCandidate, None, p))
            .await
            .unwrap();
    }
    let before = f.hub.ports.held.count(ARN).await.unwrap();
    assert_eq!(before, 3);
    // A master connects but its upgrade never completes: it takes nothing, and what is relayed
    // to it while it is pending is held again when it goes.
    let m = sink();
    let reg = f.hub.connect(ARN, Role::Master, m.clone()).await.unwrap();
    f.clock.advance(Duration::from_secs(5));
    f.hub
        .relay(&vc, msg(Action::IceCandidate, None, "NA=="))
        .await
        .unwrap();
    assert_eq!(f.hub.held_count(ARN).await, 3);
    drop(reg);
    settled_on(&f.hub, 1).await;
    assert!(m.all().is_empty());
    // In order, the first three with the expiry they were accepted with, the fourth with its
    // own (it was relayed 5 s later).
    let taken = f
        .hub
        .ports
        .held
        .take(ARN, &Role::Master, f.clock.now_millis())
        .await
        .unwrap();
    let got: Vec<_> = taken
        .messages
        .iter()
        .map(|h| (h.message.payload.as_str(), h.expires_at_millis))
        .collect();
    assert_eq!(
        got,
        [
            ("MQ==", 1_060_000),
            ("Mg==", 1_060_000),
            ("Mw==", 1_060_000),
            ("NA==", 1_065_000)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_connection_gets_held_messages_first_then_what_was_buffered() {
    let f = fixture();
    let vc = f.hub.join(ARN, viewer("v1"), sink()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::SdpOffer, None, "b2Zm"))
        .await
        .unwrap();
    let m = sink();
    let reg = f.hub.connect(ARN, Role::Master, m.clone()).await.unwrap();
    f.hub
        .relay(&vc, msg(Action::IceCandidate, None, "aWNl"))
        .await
        .unwrap();
    assert!(m.all().is_empty(), "nothing before the connection is live");
    reg.activate().await;
    assert_eq!(m.payloads(), ["b2Zm", "aWNl"]);
    assert_eq!(f.hub.held_count(ARN).await, 0);
    reg.release().await;
    assert_eq!(f.hub.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_waiter_dropped_at_each_await_is_released() {
    // SendAlexaOfferToMaster's waiter: connect (claim), route the offer (lookup), then wait.
    for gate in ["claim", "lookup", "none"] {
        let (hub, presence, _tasks) = gated_hub(false, 10);
        let master = sink();
        hub.join(ARN, Role::Master, master.clone()).await.unwrap();
        if gate != "none" {
            presence.block(&[gate]);
        }
        let hub2 = Arc::clone(&hub);
        let call = tokio::spawn(async move {
            let waiter = hub2
                .connect(ARN, Role::AnswerWaiter("alexa".into()), sink())
                .await?;
            waiter.activate().await;
            let offer = Relayed {
                action: Action::SdpOffer,
                sender: Some("alexa".into()),
                payload: "b2Zm".into(),
            };
            hub2.route(ARN, Role::Master, offer, None).await?;
            std::future::pending::<()>().await;
            Ok::<_, SignalError>(waiter)
        });
        if gate == "none" {
            for _ in 0..100 {
                if !master.all().is_empty() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(master.payloads(), ["b2Zm"]);
        } else {
            presence.parked(1).await;
        }
        // The caller goes away.
        call.abort();
        let _ = call.await;
        presence.open();
        settled_on(&hub, 1).await;
        assert_eq!(
            presence
                .inner
                .lookup(ARN, &Role::AnswerWaiter("alexa".into()))
                .await
                .unwrap(),
            None,
            "gate {gate}"
        );
    }
}

/// Waits (bounded) until the hub holds `n` connections and no release is in flight.
async fn settled_on(hub: &Hub, n: usize) {
    for _ in 0..1000 {
        if hub.connection_count() == n && hub.releasing.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{} connections, expected {n}", hub.connection_count());
}

#[tokio::test]
async fn a_claim_after_a_delete_is_refused_and_counts_nothing() {
    let f = fixture();
    let v = sink();
    f.hub.join(ARN, viewer("v1"), v.clone()).await.unwrap();
    f.hub.channel_deleted(ARN).await.unwrap();
    assert!(matches!(v.all().as_slice(), [Event::GoAway { .. }]));
    let err = f.hub.join(ARN, Role::Master, sink()).await.unwrap_err();
    assert_eq!(err.error_type, "ResourceNotFoundException");
    assert_eq!(f.hub.connection_count(), 1);
    assert_eq!(f.hub.metrics().snapshot().masters_connected, 0);
}

#[tokio::test]
async fn after_the_bus_resubscribes_connections_get_what_was_held_for_them() {
    let f = fixture();
    let m = sink();
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    // Held while the node's subscription was down (a publish that found no subscriber).
    let held = HeldMessage {
        recipient: Role::Master,
        message: Relayed {
            action: Action::SdpOffer,
            sender: Some("v1".into()),
            payload: "b2Zm".into(),
        },
        expires_at_millis: f.clock.now_millis() + 60_000,
    };
    f.hub
        .ports
        .held
        .hold(ARN, held, 10, f.clock.now_millis())
        .await
        .unwrap();
    f.hub
        .ports
        .bus
        .publish(NodeId(1), bus::Envelope::Resubscribed)
        .await
        .unwrap();
    for _ in 0..100 {
        if !m.payloads().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(m.payloads(), ["b2Zm"]);
}
