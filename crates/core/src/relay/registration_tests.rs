//! The hub's cancel-safety and lease tests, on a presence port that fails or blocks on command.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, ManualClock};
use crate::relay::bus::MemoryBus;
use crate::relay::held::MemoryHeld;
use crate::relay::hub::tests::{fixture, sink};
use crate::relay::presence::Presence;
use crate::relay::presence::{self, MemoryPresence, Renewal};
use crate::relay::testkit::{msg, viewer, Join, TestTtl, ARN};
use crate::relay::{Action, Event, HubTasks, Member, NodeId, Relayed, Role, SignalError};
use crate::relay::{Hub, HubConfig, HubPorts};

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
    /// Claims are applied, then answered with a backend error (the answer was lost: a caller
    /// that timed out while Redis was paused, Redis running the claim when it resumed).
    lose_claim_answers: AtomicBool,
}

impl GatedPresence {
    fn new(down: bool) -> Self {
        Self {
            inner: MemoryPresence::new(),
            down: AtomicBool::new(down),
            blocked: std::sync::Mutex::default(),
            gate: tokio::sync::watch::Sender::new(false),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            lose_claim_answers: AtomicBool::new(false),
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
        let claimed = self.inner.claim(channel, role, member, max_viewers).await;
        if self.lose_claim_answers.load(Ordering::SeqCst) {
            return Err(presence::PresenceError::Backend("answer lost".into()));
        }
        claimed
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
    async fn roles(&self, channel: &str) -> Result<Vec<(Role, Member)>, presence::PresenceError> {
        self.inner.roles(channel).await
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
async fn a_claim_whose_answer_was_lost_is_released_so_the_viewer_stops_counting() {
    let (hub, presence, _tasks) = gated_hub(false, 1);
    presence.lose_claim_answers.store(true, Ordering::SeqCst);
    let err = hub.join(ARN, viewer("a"), sink()).await.unwrap_err();
    assert_eq!(err.error_type, "ServiceUnavailable");
    presence.lose_claim_answers.store(false, Ordering::SeqCst);
    // The claim was applied although the hub was told it failed: the heartbeat releases it
    // (every third of the 3 s lease), and the viewer limit is free again.
    assert_eq!(hub.pending_releases(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(hub.pending_releases(), 0);
    assert_eq!(
        presence.inner.lookup(ARN, &viewer("a")).await.unwrap(),
        None
    );
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
