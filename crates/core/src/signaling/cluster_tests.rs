//! Several hubs linked inside one process, sharing presence, held messages and a bus as nodes
//! share Redis: what crosses between nodes, and only where it must.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use super::bus::MemoryBus;
use super::held::MemoryHeld;
use super::hub::tests::{msg, viewer, RecordingSink, TestTtl, ARN};
use super::presence::{MemoryPresence, Presence};
use super::*;
use crate::clock::{Clock, ManualClock};

const LEASE: Duration = Duration::from_secs(30);

struct Cluster {
    hubs: Vec<Arc<Hub>>,
    tasks: Vec<Option<HubTasks>>,
    bus: Arc<MemoryBus>,
    presence: Arc<MemoryPresence>,
    clock: Arc<ManualClock>,
}

fn cluster(n: u64, config: HubConfig) -> Cluster {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let bus = Arc::new(MemoryBus::new());
    let presence = Arc::new(MemoryPresence::new(Some(LEASE)));
    let ports = HubPorts {
        presence: presence.clone(),
        held: Arc::new(MemoryHeld::new()),
        bus: bus.clone(),
        ttl: Arc::new(TestTtl(AtomicU32::new(60))),
    };
    let config = HubConfig {
        lease: LEASE,
        ..config
    };
    let hubs: Vec<_> = (1..=n)
        .map(|i| Hub::new(NodeId(i), clock.clone(), config.clone(), ports.clone()))
        .collect();
    let tasks = hubs.iter().map(|h| Some(h.start())).collect();
    Cluster {
        hubs,
        tasks,
        bus,
        presence,
        clock,
    }
}

fn sink() -> Arc<RecordingSink> {
    Arc::new(RecordingSink::default())
}

/// Waits (bounded) for the bus pumps to deliver.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn viewer_and_master_on_different_nodes_talk_through_one_hop_each() {
    let c = cluster(3, HubConfig::default());
    let (a, b) = (&c.hubs[0], &c.hubs[1]);
    let (m, v) = (sink(), sink());
    let mc = b.connect(ARN, Role::Master, m.clone()).await.unwrap();
    let vc = a.connect(ARN, viewer("v1"), v.clone()).await.unwrap();
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
    assert_eq!(c.bus.received(NodeId(2)), 1);
    assert_eq!(c.bus.received(NodeId(1)), 2);
    assert_eq!(c.bus.received(NodeId(3)), 0);
}

#[tokio::test]
async fn late_master_on_another_node_gets_held_messages_in_order() {
    let c = cluster(2, HubConfig::default());
    let vc = c.hubs[0].connect(ARN, viewer("v1"), sink()).await.unwrap();
    for p in ["MQ==", "Mg==", "Mw=="] {
        c.hubs[0]
            .relay(&vc, msg(Action::IceCandidate, None, p))
            .await
            .unwrap();
    }
    assert_eq!(c.hubs[1].held_count(ARN).await, 3);
    let m = sink();
    c.hubs[1]
        .connect(ARN, Role::Master, m.clone())
        .await
        .unwrap();
    assert_eq!(m.payloads(), ["MQ==", "Mg==", "Mw=="]);
    // Live messages follow the held ones.
    c.hubs[0]
        .relay(&vc, msg(Action::IceCandidate, None, "NA=="))
        .await
        .unwrap();
    eventually("live after held", || m.payloads().len() == 4).await;
    assert_eq!(m.payloads()[3], "NA==");
}

#[tokio::test]
async fn one_master_cluster_wide_and_the_viewer_limit_counts_every_node() {
    let c = cluster(
        3,
        HubConfig {
            max_viewers: 2,
            ..HubConfig::default()
        },
    );
    let (m1, m2) = (sink(), sink());
    c.hubs[0]
        .connect(ARN, Role::Master, m1.clone())
        .await
        .unwrap();
    c.hubs[1]
        .connect(ARN, Role::Master, m2.clone())
        .await
        .unwrap();
    eventually("old master closed", || {
        matches!(m1.all().first(), Some(Event::Close { .. }))
    })
    .await;
    c.hubs[0].connect(ARN, viewer("a"), sink()).await.unwrap();
    c.hubs[1].connect(ARN, viewer("b"), sink()).await.unwrap();
    let err = c.hubs[2]
        .connect(ARN, viewer("c"), sink())
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
    // The same viewer id on another node replaces, wherever the old one is.
    c.hubs[2].connect(ARN, viewer("a"), sink()).await.unwrap();
}

#[tokio::test]
async fn go_away_on_delete_reaches_every_node() {
    let c = cluster(3, HubConfig::default());
    let sinks: Vec<_> = (0..3).map(|_| sink()).collect();
    c.hubs[0]
        .connect(ARN, Role::Master, sinks[0].clone())
        .await
        .unwrap();
    c.hubs[1]
        .connect(ARN, viewer("v1"), sinks[1].clone())
        .await
        .unwrap();
    c.hubs[2]
        .connect(ARN, viewer("v2"), sinks[2].clone())
        .await
        .unwrap();
    c.hubs[1].channel_deleted(ARN).await;
    for s in &sinks {
        eventually("GO_AWAY", || {
            matches!(s.all().first(), Some(Event::GoAway { .. }))
        })
        .await;
    }
    // A broadcast (shutdown of one node) reaches that node's connections only.
    let other = sink();
    c.hubs[0]
        .connect("arn:x", viewer("z"), other.clone())
        .await
        .unwrap();
    assert_eq!(c.hubs[2].broadcast(&Event::ReconnectIceServer), 1);
    assert!(other.all().is_empty());
}

#[tokio::test]
async fn a_dead_node_stops_counting_after_its_lease() {
    let mut c = cluster(
        2,
        HubConfig {
            max_viewers: 1,
            ..HubConfig::default()
        },
    );
    c.hubs[1].connect(ARN, Role::Master, sink()).await.unwrap();
    c.hubs[1].connect(ARN, viewer("a"), sink()).await.unwrap();
    assert!(c.hubs[0].connect(ARN, viewer("b"), sink()).await.is_err());
    // Node 2 dies: it stops renewing and leaves the bus.
    c.tasks[1] = None;
    c.clock.advance(LEASE + Duration::from_secs(1));
    c.presence
        .renew(NodeId(1), c.clock.now_millis() + 30_000)
        .await
        .unwrap();
    assert!(!c.hubs[0].has_master(ARN).await);
    let vc = c.hubs[0].connect(ARN, viewer("b"), sink()).await.unwrap();
    // With no master anywhere, the viewer's offer is held for the next one.
    c.hubs[0]
        .relay(&vc, msg(Action::SdpOffer, None, "eA=="))
        .await
        .unwrap();
    let m = sink();
    c.hubs[0]
        .connect(ARN, Role::Master, m.clone())
        .await
        .unwrap();
    assert_eq!(m.payloads(), ["eA=="]);
}
