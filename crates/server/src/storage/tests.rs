//! The storage session's rules on one node, with the in-memory registry and a stepped clock:
//! the peer offers to the master over the relay, the most recent join wins, the master leaving
//! ends the session, no answer within the timeout ends it. (Media is covered end to end by
//! tests/interop/python/test_storage_session.py with a real WebRTC master.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kvs_core::app::{Application, SignalingPorts};
use kvs_core::clock::ManualClock;
use kvs_core::ids::{AccountId, ChannelName, MessageTtl, Namespace, Region, ResourceArn};
use kvs_core::model::ChannelType;
use kvs_core::relay::{
    Action, ChannelSink, ClientMessage, Event, HubConfig, NodeId, Registration, Role,
};
use kvs_core::service::{CreateChannel, ServiceConfig};
use kvs_core::storage_session::{EndReason, MemorySessionRegistry, SessionLimits, ViewerEnd};
use kvs_core::store::MemoryStore;
use kvs_core::ErrorCode;
use tokio::sync::mpsc;

use super::{CountingTarget, MediaNetConfig, StorageSessions};
use crate::metrics::storage::StorageMetrics;

struct Fixture {
    app: Arc<Application>,
    clock: Arc<ManualClock>,
    sessions: Arc<StorageSessions>,
    ns: Namespace,
    channel: ResourceArn,
    stream: ResourceArn,
}

async fn fixture() -> Fixture {
    fixture_with(HubConfig::default()).await
}

async fn fixture_with(hub: HubConfig) -> Fixture {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let app = Arc::new(Application::new(
        Arc::new(MemoryStore::new()),
        clock.clone(),
        ServiceConfig::default(),
        hub,
        NodeId(7),
        SignalingPorts::in_process(),
    ));
    let ns = Namespace::new(
        AccountId::parse("111122223333").unwrap(),
        Region::parse("us-east-1").unwrap(),
    );
    let channel = app
        .channels()
        .create(
            &ns,
            CreateChannel {
                name: ChannelName::parse("n", "cam").unwrap(),
                channel_type: ChannelType::SingleMaster,
                ttl: MessageTtl::DEFAULT,
                tags: vec![],
            },
        )
        .await
        .unwrap()
        .arn;
    let sessions = StorageSessions::new(
        Arc::new(MemorySessionRegistry::new(clock.clone())),
        SessionLimits {
            // Checks come often so the test waits little; the limits themselves are the
            // documented ones, reached by stepping the clock.
            check_interval: Duration::from_millis(20),
            // Claims outlast the clock steps below (lapsing is the registry's own suite's).
            claim_ttl: Duration::from_secs(3600),
            ..SessionLimits::default()
        },
        MediaNetConfig {
            host_candidates: vec!["127.0.0.1".parse().unwrap()],
            ..MediaNetConfig::default()
        },
        Arc::new(StorageMetrics::new()),
    );
    let stream = ResourceArn::parse(
        "s",
        "arn:aws:kinesisvideo:us-east-1:111122223333:stream/s/1",
    )
    .unwrap();
    Fixture {
        app,
        clock,
        sessions,
        ns,
        channel,
        stream,
    }
}

impl Fixture {
    async fn master(&self) -> (Registration, mpsc::Receiver<Event>) {
        self.connect(Role::Master).await
    }

    async fn viewer(&self, id: &str) -> (Registration, mpsc::Receiver<Event>) {
        self.connect(Role::Viewer(id.into())).await
    }

    async fn connect(&self, role: Role) -> (Registration, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(64);
        let reg = self
            .app
            .connect(&self.ns, &self.channel, role, Arc::new(ChannelSink(tx)))
            .await
            .unwrap();
        reg.activate().await;
        (reg, rx)
    }

    async fn join(&self) -> Result<super::Started, kvs_core::ServiceError> {
        self.sessions
            .start(
                &self.app,
                Arc::new(CountingTarget::default()),
                &self.ns,
                &self.channel,
                &self.stream,
            )
            .await
    }

    async fn viewer_ended(&self, reason: ViewerEnd, n: u64) {
        let m = Arc::clone(self.sessions.metrics());
        until(
            &format!("{n} viewer legs ended with {reason:?}"),
            move || m.viewer_ended_with(reason) >= n,
        )
        .await;
    }

    async fn ended(&self, reason: EndReason, n: u64) {
        let m = Arc::clone(self.sessions.metrics());
        until(&format!("{n} sessions ended with {reason:?}"), move || {
            m.ended_with(reason) >= n
        })
        .await;
    }
}

/// Waits (at most 10 s) for `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not reached: {what}"));
}

/// The next SDP_OFFER a connection receives: its sender (the master receives the peer's
/// ClientId; a joined viewer none, as from the master).
async fn offer(rx: &mut mpsc::Receiver<Event>) -> Option<String> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Event::Message(m) = event {
            if m.action == Action::SdpOffer {
                let sdp = super::signal::answer_sdp(&m.payload);
                assert_eq!(sdp, None, "an offer, not an answer");
                return m.sender;
            }
        }
    }
}

#[tokio::test]
async fn the_most_recent_join_wins_and_the_master_leaving_ends_it() {
    let f = fixture().await;
    let (master, mut rx) = f.master().await;
    let first = f.join().await.unwrap();
    assert_eq!(offer(&mut rx).await, Some(first.client_id));
    let second = f.join().await.unwrap();
    assert_eq!(offer(&mut rx).await, Some(second.client_id));
    f.ended(EndReason::Superseded, 1).await;
    let listed = f.sessions.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, second.session_id);
    assert_eq!(listed[0].node, NodeId(7));
    assert_eq!(f.sessions.metrics().active(), 1);
    master.release().await;
    f.ended(EndReason::MasterLeft, 1).await;
    assert_eq!(f.sessions.metrics().active(), 0);
    assert!(f.sessions.list().await.unwrap().is_empty());
    assert!(f.sessions.local_channels().is_empty());
}

#[tokio::test]
async fn no_answer_within_the_timeout_ends_it() {
    let f = fixture().await;
    let (_master, mut rx) = f.master().await;
    f.join().await.unwrap();
    assert!(offer(&mut rx).await.is_some(), "from the peer");
    f.clock.advance(Duration::from_secs(29));
    // A few checks happen meanwhile; none may end it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.sessions.metrics().active(), 1, "29 s: still waiting");
    f.clock.advance(Duration::from_secs(1));
    f.ended(EndReason::NoAnswer, 1).await;
    assert_eq!(f.sessions.metrics().ended_with(EndReason::Superseded), 0);
}

#[tokio::test]
async fn a_join_without_a_master_is_refused() {
    let f = fixture().await;
    let e = f.join().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ResourceNotFound);
    assert_eq!(f.sessions.metrics().active(), 0);
    assert!(f.sessions.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_peer_counts_toward_the_viewer_limit() {
    let f = fixture_with(HubConfig {
        max_viewers: 1,
        ..HubConfig::default()
    })
    .await;
    let (_master, _rx) = f.master().await;
    let (tx, _viewer_rx) = mpsc::channel(8);
    let viewer = f
        .app
        .connect(
            &f.ns,
            &f.channel,
            Role::Viewer("v1".into()),
            Arc::new(ChannelSink(tx)),
        )
        .await
        .unwrap();
    let e = f.join().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ClientLimitExceeded);
    assert!(
        f.sessions.list().await.unwrap().is_empty(),
        "nothing claimed"
    );
    viewer.release().await;
    f.join().await.unwrap();
}

fn to_master(action: Action, payload: &str) -> ClientMessage {
    ClientMessage {
        action,
        recipient_client_id: None,
        message_payload: payload.into(),
        correlation_id: None,
    }
}

/// The timeouts of a viewer's leg are the rules' (`check_viewer`, unit-tested there); here the
/// wiring: a failed leg frees its place and its viewer talks to the master again.
#[tokio::test]
async fn a_viewer_whose_leg_fails_frees_its_place_and_talks_to_the_master_again() {
    let f = fixture().await;
    let (_master, mut master_rx) = f.master().await;
    f.join().await.unwrap();
    assert!(offer(&mut master_rx).await.is_some(), "from the peer");
    let (viewer, mut viewer_rx) = f.viewer("v1").await;
    f.sessions
        .join_viewer(f.channel.as_str(), "v1")
        .await
        .unwrap();
    assert_eq!(offer(&mut viewer_rx).await, None, "as from the master");
    assert_eq!(f.sessions.metrics().viewers_active(), 1);
    let members = f.sessions.viewers(f.channel.as_str()).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_id, "v1");
    // An answer that is no SDP: the leg fails.
    f.app
        .relay(
            &viewer,
            to_master(Action::SdpAnswer, "bm90IGFuIGFuc3dlcg=="),
        )
        .await
        .unwrap();
    f.viewer_ended(ViewerEnd::ConnectFailed, 1).await;
    assert_eq!(f.sessions.metrics().viewers_active(), 0);
    assert!(f
        .sessions
        .viewers(f.channel.as_str())
        .await
        .unwrap()
        .is_empty());
    // Its messages reach the master again, and the master had none of them before.
    f.app
        .relay(&viewer, to_master(Action::IceCandidate, "aWNl"))
        .await
        .unwrap();
    let m = loop {
        let event = tokio::time::timeout(Duration::from_secs(10), master_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let Event::Message(m) = event else {
            panic!("{event:?}")
        };
        // The peer's own trickled candidates come first.
        if !m
            .sender
            .as_deref()
            .is_some_and(|s| s.starts_with("kvs-storage-session-"))
        {
            break m;
        }
    };
    assert_eq!(
        (m.action, m.sender.as_deref(), m.payload.as_str()),
        (Action::IceCandidate, Some("v1"), "aWNl")
    );
    assert_eq!(f.sessions.metrics().active(), 1, "the session goes on");
}

#[tokio::test]
async fn three_viewers_at_most_and_a_departure_frees_a_place() {
    let f = fixture().await;
    let (_master, mut master_rx) = f.master().await;
    f.join().await.unwrap();
    assert!(offer(&mut master_rx).await.is_some(), "from the peer");
    let mut viewers = Vec::new();
    for id in ["a", "b", "c"] {
        let (reg, mut rx) = f.viewer(id).await;
        f.sessions
            .join_viewer(f.channel.as_str(), id)
            .await
            .unwrap();
        offer(&mut rx).await;
        viewers.push((reg, rx));
    }
    let (_d, _d_rx) = f.viewer("d").await;
    let e = f
        .sessions
        .join_viewer(f.channel.as_str(), "d")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ClientLimitExceeded);
    assert_eq!(e.to_string(), super::VIEWERS_FULL);
    let (a, _) = viewers.remove(0);
    a.release().await;
    f.viewer_ended(ViewerEnd::Left, 1).await;
    f.sessions
        .join_viewer(f.channel.as_str(), "d")
        .await
        .unwrap();
    assert_eq!(
        f.sessions.metrics().viewer_ended_with(ViewerEnd::Replaced),
        0
    );
}
