#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicU32;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::relay::bus::{self, MemoryBus};
use crate::relay::held::MemoryHeld;
use crate::relay::presence::MemoryPresence;
pub(crate) use crate::relay::testkit::{msg, viewer, Join, RecordingSink, TestTtl, ARN};
use crate::relay::{Action, ClientMessage, Event, HeldMessage, HubTasks, NodeId, Relayed, Role};

pub(crate) struct Fixture {
    pub(crate) hub: Arc<Hub>,
    pub(crate) clock: Arc<ManualClock>,
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

pub(crate) fn fixture() -> Fixture {
    fixture_with(HubConfig::default())
}

pub(crate) fn sink() -> Arc<RecordingSink> {
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
async fn a_slow_consumers_messages_wait_for_its_next_connection() {
    let f = fixture();
    let m = Arc::new(RecordingSink {
        capacity: Some(1),
        ..RecordingSink::default()
    });
    f.hub.join(ARN, Role::Master, m.clone()).await.unwrap();
    let vc = f.hub.join(ARN, viewer("v"), sink()).await.unwrap();
    for p in ["eA==", "eQ==", "eg=="] {
        f.hub
            .relay(&vc, msg(Action::IceCandidate, None, p))
            .await
            .unwrap();
    }
    assert_eq!(m.payloads(), ["eA=="]);
    assert_eq!(f.hub.metrics().snapshot().messages_held_slow_consumer, 2);
    // Its connection is closed (the session's policy); the next master gets the rest in order.
    let m2 = sink();
    f.hub.join(ARN, Role::Master, m2.clone()).await.unwrap();
    assert_eq!(m2.payloads(), ["eQ==", "eg=="]);
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
