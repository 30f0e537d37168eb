#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use super::*;
use crate::clock::ManualClock;

const ARN: &str = "arn:aws:kinesisvideo:us-east-1:111122223333:channel/c/1";

#[derive(Default)]
struct RecordingSink {
    frames: Mutex<Vec<Outbound>>,
    capacity: Option<usize>,
    closed: std::sync::atomic::AtomicBool,
}

impl Sink for RecordingSink {
    fn send(&self, out: Outbound) -> SendOutcome {
        if self.closed.load(Ordering::SeqCst) {
            return SendOutcome::Closed;
        }
        let mut f = self.frames.lock().unwrap();
        if self.capacity.is_some_and(|c| f.len() >= c) {
            return SendOutcome::Full;
        }
        f.push(out);
        SendOutcome::Sent
    }
}

impl RecordingSink {
    fn texts(&self) -> Vec<serde_json::Value> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter_map(|o| match o {
                Outbound::Text(t) => Some(serde_json::from_str(t).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn all(&self) -> Vec<Outbound> {
        self.frames.lock().unwrap().clone()
    }
}

fn hub() -> (Hub, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    (Hub::new(clock.clone(), HubConfig::default()), clock)
}

fn msg(action: Action, recipient: Option<&str>, payload: &str) -> ClientMessage {
    ClientMessage {
        action,
        recipient_client_id: recipient.map(str::to_owned),
        message_payload: payload.to_owned(),
        correlation_id: None,
    }
}

fn viewer(id: &str) -> Role {
    Role::Viewer(id.to_owned())
}

#[test]
fn viewer_to_master_carries_the_viewer_id() {
    let (hub, _) = hub();
    let m = Arc::new(RecordingSink::default());
    let v = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, m.clone()).unwrap();
    let vc = hub.connect(ARN, viewer("v1"), v.clone()).unwrap();
    // A viewer's recipientClientId is ignored: it always goes to the master.
    hub.relay(&vc, msg(Action::SdpOffer, Some("someone"), "b2ZmZXI="), 60)
        .unwrap();
    let got = m.texts();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["senderClientId"], "v1");
    assert_eq!(got[0]["messageType"], "SDP_OFFER");
    assert_eq!(got[0]["messagePayload"], "b2ZmZXI=");
    assert!(v.texts().is_empty());
}

#[test]
fn master_to_named_viewer_only() {
    let (hub, _) = hub();
    let m = Arc::new(RecordingSink::default());
    let v1 = Arc::new(RecordingSink::default());
    let v2 = Arc::new(RecordingSink::default());
    let mc = hub.connect(ARN, Role::Master, m.clone()).unwrap();
    hub.connect(ARN, viewer("v1"), v1.clone()).unwrap();
    hub.connect(ARN, viewer("v2"), v2.clone()).unwrap();
    hub.relay(&mc, msg(Action::SdpAnswer, Some("v2"), "YW5zd2Vy"), 60)
        .unwrap();
    assert!(v1.texts().is_empty());
    let got = v2.texts();
    assert_eq!(got[0]["messageType"], "SDP_ANSWER");
    assert!(got[0].get("senderClientId").is_none());
    let err = hub
        .relay(
            &mc,
            ClientMessage {
                correlation_id: Some("c1".into()),
                ..msg(Action::SdpAnswer, None, "YW5zd2Vy")
            },
            60,
        )
        .unwrap_err();
    assert_eq!(err.correlation_id.as_deref(), Some("c1"));
    assert_eq!(err.error_type, "InvalidArgumentException");
}

#[test]
fn late_master_gets_held_offer_and_candidates_in_order() {
    let (hub, _) = hub();
    let v = Arc::new(RecordingSink::default());
    let vc = hub.connect(ARN, viewer("v1"), v.clone()).unwrap();
    hub.relay(&vc, msg(Action::SdpOffer, None, "b2ZmZXI="), 60)
        .unwrap();
    hub.relay(&vc, msg(Action::IceCandidate, None, "aWNlMQ=="), 60)
        .unwrap();
    hub.relay(&vc, msg(Action::IceCandidate, None, "aWNlMg=="), 60)
        .unwrap();
    assert_eq!(hub.held_count(ARN), 3);
    let m = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, m.clone()).unwrap();
    let got: Vec<_> = m
        .texts()
        .iter()
        .map(|t| t["messagePayload"].clone())
        .collect();
    assert_eq!(got, ["b2ZmZXI=", "aWNlMQ==", "aWNlMg=="]);
    assert_eq!(hub.held_count(ARN), 0);
    assert_eq!(hub.metrics().snapshot().messages_delivered_from_hold, 3);
}

#[test]
fn ttl_is_stamped_when_accepted() {
    // The seed case: send with TTL 60, the channel's TTL becomes 5, send again, 10 s pass:
    // the first message is still delivered, the second is gone.
    let (hub, clock) = hub();
    let v = Arc::new(RecordingSink::default());
    let vc = hub.connect(ARN, viewer("v1"), v.clone()).unwrap();
    hub.relay(&vc, msg(Action::IceCandidate, None, "Zmlyc3Q="), 60)
        .unwrap();
    hub.relay(&vc, msg(Action::IceCandidate, None, "c2Vjb25k"), 5)
        .unwrap();
    clock.advance(Duration::from_secs(10));
    let m = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, m.clone()).unwrap();
    let got: Vec<_> = m
        .texts()
        .iter()
        .map(|t| t["messagePayload"].clone())
        .collect();
    assert_eq!(got, ["Zmlyc3Q="]);
    assert_eq!(hub.metrics().snapshot().messages_expired, 1);
}

#[test]
fn sweep_expires_and_forgets_empty_channels() {
    let (hub, clock) = hub();
    let v = Arc::new(RecordingSink::default());
    let vc = hub.connect(ARN, viewer("v1"), v).unwrap();
    hub.relay(&vc, msg(Action::IceCandidate, None, "aWNl"), 5)
        .unwrap();
    hub.disconnect(&vc);
    assert_eq!(hub.held_count(ARN), 1);
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(hub.sweep(), 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(hub.sweep(), 1);
    assert_eq!(hub.held_count(ARN), 0);
}

#[test]
fn newer_offer_replaces_held_one_from_same_sender() {
    let (hub, _) = hub();
    let v1 = hub
        .connect(ARN, viewer("v1"), Arc::new(RecordingSink::default()))
        .unwrap();
    let v2 = hub
        .connect(ARN, viewer("v2"), Arc::new(RecordingSink::default()))
        .unwrap();
    hub.relay(&v1, msg(Action::SdpOffer, None, "b2xk"), 60)
        .unwrap();
    hub.relay(&v2, msg(Action::SdpOffer, None, "djI="), 60)
        .unwrap();
    hub.relay(&v1, msg(Action::SdpOffer, None, "bmV3"), 60)
        .unwrap();
    let m = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, m.clone()).unwrap();
    let got: Vec<_> = m
        .texts()
        .iter()
        .map(|t| (t["senderClientId"].clone(), t["messagePayload"].clone()))
        .collect();
    assert_eq!(
        got,
        [("v2".into(), "djI=".into()), ("v1".into(), "bmV3".into())]
    );
}

#[test]
fn held_messages_are_bounded_oldest_dropped() {
    let clock = Arc::new(ManualClock::new(0));
    let hub = Hub::new(
        clock,
        HubConfig {
            max_held_per_channel: 3,
            ..HubConfig::default()
        },
    );
    let vc = hub
        .connect(ARN, viewer("v1"), Arc::new(RecordingSink::default()))
        .unwrap();
    for p in ["MQ==", "Mg==", "Mw==", "NA==", "NQ=="] {
        hub.relay(&vc, msg(Action::IceCandidate, None, p), 60)
            .unwrap();
    }
    assert_eq!(hub.held_count(ARN), 3);
    assert_eq!(hub.metrics().snapshot().messages_dropped_overflow, 2);
    let m = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, m.clone()).unwrap();
    let got: Vec<_> = m
        .texts()
        .iter()
        .map(|t| t["messagePayload"].clone())
        .collect();
    assert_eq!(got, ["Mw==", "NA==", "NQ=="]);
}

#[test]
fn new_master_replaces_old_and_viewer_id_replaces_its_old_connection() {
    let (hub, _) = hub();
    let m1 = Arc::new(RecordingSink::default());
    let m2 = Arc::new(RecordingSink::default());
    let c1 = hub.connect(ARN, Role::Master, m1.clone()).unwrap();
    hub.connect(ARN, Role::Master, m2.clone()).unwrap();
    assert!(matches!(m1.all()[0], Outbound::Close { .. }));
    // The old session's disconnect must not remove the new master.
    hub.disconnect(&c1);
    assert!(hub.has_master(ARN));
    assert_eq!(hub.metrics().snapshot().masters_connected, 1);

    let v1a = Arc::new(RecordingSink::default());
    let v1b = Arc::new(RecordingSink::default());
    hub.connect(ARN, viewer("v1"), v1a.clone()).unwrap();
    let vc = hub.connect(ARN, viewer("v1"), v1b.clone()).unwrap();
    assert!(matches!(v1a.all()[0], Outbound::Close { .. }));
    assert_eq!(hub.metrics().snapshot().viewers_connected, 1);
    hub.relay(&vc, msg(Action::SdpOffer, None, "eA=="), 60)
        .unwrap();
    assert_eq!(m2.texts().len(), 1);
}

#[test]
fn viewer_limit_counts_distinct_viewers() {
    let clock = Arc::new(ManualClock::new(0));
    let hub = Hub::new(
        clock,
        HubConfig {
            max_viewers: 2,
            ..HubConfig::default()
        },
    );
    hub.connect(ARN, viewer("a"), Arc::new(RecordingSink::default()))
        .unwrap();
    hub.connect(ARN, viewer("b"), Arc::new(RecordingSink::default()))
        .unwrap();
    let err = hub
        .connect(ARN, viewer("c"), Arc::new(RecordingSink::default()))
        .unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
    // Reconnecting an existing viewer is a replacement, not a new viewer.
    hub.connect(ARN, viewer("a"), Arc::new(RecordingSink::default()))
        .unwrap();
    // Masters do not count.
    hub.connect(ARN, Role::Master, Arc::new(RecordingSink::default()))
        .unwrap();
}

#[test]
fn deleting_a_channel_sends_go_away_and_drops_held() {
    let (hub, _) = hub();
    let v = Arc::new(RecordingSink::default());
    let vc = hub.connect(ARN, viewer("v1"), v.clone()).unwrap();
    hub.relay(&vc, msg(Action::SdpOffer, None, "eA=="), 60)
        .unwrap();
    hub.channel_deleted(ARN);
    assert!(matches!(v.all()[0], Outbound::GoAway { .. }));
    assert_eq!(hub.held_count(ARN), 0);
    let s = hub.metrics().snapshot();
    assert_eq!(s.messages_dropped_deleted, 1);
    assert_eq!(s.viewers_connected, 0);
    hub.disconnect(&vc);
    assert_eq!(hub.metrics().snapshot().viewers_connected, 0);
}

#[test]
fn slow_consumer_is_reported_not_blocking() {
    let (hub, _) = hub();
    let m = Arc::new(RecordingSink {
        capacity: Some(1),
        ..RecordingSink::default()
    });
    hub.connect(ARN, Role::Master, m).unwrap();
    let vc = hub
        .connect(ARN, viewer("v"), Arc::new(RecordingSink::default()))
        .unwrap();
    hub.relay(&vc, msg(Action::IceCandidate, None, "eA=="), 60)
        .unwrap();
    let err = hub
        .relay(&vc, msg(Action::IceCandidate, None, "eQ=="), 60)
        .unwrap_err();
    assert_eq!(err.error_type, "ClientLimitExceededException");
}

#[test]
fn closed_recipient_gets_message_on_reconnect() {
    let (hub, _) = hub();
    let m = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, m.clone()).unwrap();
    m.closed.store(true, Ordering::SeqCst);
    let vc = hub
        .connect(ARN, viewer("v"), Arc::new(RecordingSink::default()))
        .unwrap();
    hub.relay(&vc, msg(Action::SdpOffer, None, "eA=="), 60)
        .unwrap();
    let m2 = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, m2.clone()).unwrap();
    assert_eq!(m2.texts().len(), 1);
}

#[test]
fn broadcast_reaches_every_connection() {
    let (hub, _) = hub();
    let a = Arc::new(RecordingSink::default());
    let b = Arc::new(RecordingSink::default());
    hub.connect(ARN, Role::Master, a.clone()).unwrap();
    hub.connect("arn:other", viewer("x"), b.clone()).unwrap();
    let n = hub.broadcast(&Outbound::Text(
        ServerMessage::reconnect_ice_server().to_json(),
    ));
    assert_eq!(n, 2);
    assert_eq!(b.texts()[0]["messageType"], "RECONNECT_ICE_SERVER");
    assert_eq!(hub.connection_count(), 2);
}
