//! The server in-process with a manual clock: the status lifecycle (docs/protocol.md §2) and held
//! message TTLs (docs/protocol.md §6) are checked by stepping the clock, not by sleeping through them
//! (issue 7 item 6). The only real waits are the 1 s held-message sweeper tick and short
//! "nothing arrives" windows.
#![allow(clippy::unwrap_used)]

mod common;
mod inproc;
mod support;

use std::time::Duration;

use common::{create, describe_arn, describe_name, expect_error, status_of, ttl, ttl_of};
use inproc::Server;
use serde_json::json;
use support::{b64, Ws};

const HELD: &str = "kvs_signaling_messages_held_total";
const EXPIRED: &str = "kvs_signaling_messages_expired_total";
const FROM_HOLD: &str = "kvs_signaling_messages_delivered_from_hold_total";

/// Polls `GET /metrics` until `name` is at least `want`, for at most `within` (real time).
async fn wait_metric(s: &Server, name: &str, want: u64, within: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = s.metric(name).await;
        if v >= want || tokio::time::Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn channel_with_ttl(s: &Server, name: &str, secs: i32) -> String {
    s.kv()
        .create_signaling_channel()
        .channel_name(name)
        .single_master_configuration(ttl(secs))
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap()
}

async fn connect(s: &Server, arn: &str, client_id: Option<&str>) -> Ws {
    Ws(s.connect_ws(arn, client_id).await)
}

/// Sends an ICE_CANDIDATE from a viewer with no master connected and waits until it is held.
async fn hold_candidate(s: &Server, viewer: &mut Ws, payload: &str, held_total: u64) {
    viewer
        .send(json!({"action":"ICE_CANDIDATE","messagePayload":b64(payload)}))
        .await;
    let held = wait_metric(s, HELD, held_total, Duration::from_secs(3)).await;
    assert_eq!(held, held_total, "{payload:?} was not held");
}

#[tokio::test]
async fn lifecycle_statuses_follow_the_manual_clock() {
    let s = Server::start(&["--lifecycle-delay", "30s"]).await;
    let kv = s.kv();

    // CREATING until the delay has passed on the server's clock, to the second.
    let arn = create(&kv, "stepped").await;
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&info), "CREATING");
    let v1 = info.version.unwrap();
    expect_error(
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v1)
            .single_master_configuration(ttl(10))
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    expect_error(
        kv.delete_signaling_channel().channel_arn(&arn).send().await,
        "ResourceInUseException",
        400,
    );
    s.advance(Duration::from_secs(29));
    assert_eq!(status_of(&describe_arn(&kv, &arn).await), "CREATING");
    s.advance(Duration::from_secs(1));
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&info), "ACTIVE");
    assert_eq!(info.version.as_deref(), Some(v1.as_str()));
    assert_eq!(ttl_of(&info), Some(60));

    // UPDATING, then ACTIVE with the new TTL and a new Version.
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v1)
        .single_master_configuration(ttl(10))
        .send()
        .await
        .unwrap();
    let updating = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&updating), "UPDATING");
    let v2 = updating.version.unwrap();
    assert_ne!(v2, v1);
    expect_error(
        kv.delete_signaling_channel().channel_arn(&arn).send().await,
        "ResourceInUseException",
        400,
    );
    s.advance(Duration::from_secs(30));
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&info), "ACTIVE");
    assert_eq!(ttl_of(&info), Some(10));
    assert_eq!(info.version.as_deref(), Some(v2.as_str()));

    // DELETING holds the name; once the delay passes the channel is gone and the name free.
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(&describe_arn(&kv, &arn).await), "DELETING");
    expect_error(
        kv.create_signaling_channel()
            .channel_name("stepped")
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    s.advance(Duration::from_secs(30));
    expect_error(
        kv.describe_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    let again = create(&kv, "stepped").await;
    assert_ne!(again, arn, "a new channel, not the deleted one");
    assert_eq!(status_of(&describe_name(&kv, "stepped").await), "CREATING");

    s.shutdown().await;
}

#[tokio::test]
async fn held_messages_keep_the_ttl_they_were_accepted_under() {
    let s = Server::start(&[]).await;
    let kv = s.kv();
    let arn = channel_with_ttl(&s, "seed", 60).await;
    let mut viewer = connect(&s, &arn, Some("v")).await;
    hold_candidate(&s, &mut viewer, "first", 1).await;

    // Lowering the TTL applies to messages accepted from now on, not to the one held.
    let v = describe_arn(&kv, &arn).await.version.unwrap();
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(v)
        .single_master_configuration(ttl(5))
        .send()
        .await
        .unwrap();
    hold_candidate(&s, &mut viewer, "second", 2).await;

    // 10 s on: past the second message's 5 s, well within the first one's 60 s.
    s.advance(Duration::from_secs(10));
    let mut master = connect(&s, &arn, None).await;
    let got = master
        .recv_within(Duration::from_secs(5))
        .await
        .expect("the first message, within its 60 s TTL, must be delivered");
    assert_eq!(got["messageType"], "ICE_CANDIDATE");
    assert_eq!(got["senderClientId"], "v");
    assert_eq!(got["messagePayload"], b64("first").as_str());
    assert_eq!(
        master.recv_within(Duration::from_millis(500)).await,
        None,
        "only the first message is still within its TTL"
    );
    assert_eq!(s.metric(EXPIRED).await, 1);
    assert_eq!(s.metric(FROM_HOLD).await, 1);

    drop((viewer, master));
    s.shutdown().await;
}

#[tokio::test]
async fn the_sweeper_expires_held_messages_nobody_collects() {
    let s = Server::start(&[]).await;
    let arn = channel_with_ttl(&s, "sweep", 5).await;
    let mut viewer = connect(&s, &arn, Some("v")).await;
    hold_candidate(&s, &mut viewer, "stale", 1).await;
    assert_eq!(s.metric(EXPIRED).await, 0);

    // No one connects: the once-a-second sweep (real time) finds it past its TTL.
    s.advance(Duration::from_secs(6));
    let expired = wait_metric(&s, EXPIRED, 1, Duration::from_secs(3)).await;
    assert_eq!(expired, 1, "the sweeper did not expire the held message");

    let mut master = connect(&s, &arn, None).await;
    assert_eq!(
        master.recv_within(Duration::from_millis(300)).await,
        None,
        "an expired message must not be delivered"
    );
    assert_eq!(s.metric(FROM_HOLD).await, 0);

    drop((viewer, master));
    s.shutdown().await;
}
