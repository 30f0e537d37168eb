//! The test-suite endpoints (docs/testing-with-kvs-signaling.md) against the in-process server:
//! `POST /_kvs/reset` empties every region of the account, drops held messages and closes the
//! signaling connections with GO_AWAY; `GET /_kvs/state` counts what is there; both are refused
//! with AccessDeniedException when the server runs with `--credentials`.
#![allow(clippy::unwrap_used)]

mod inproc;
mod raw;

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_kinesisvideo::config::retry::RetryConfig;
use aws_sdk_kinesisvideo::config::{BehaviorVersion, Region};
use futures_util::{SinkExt, StreamExt};
use inproc::Server;
use raw::{assert_aws_error, call, post};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn client(s: &Server, region: &str) -> aws_sdk_kinesisvideo::Client {
    let conf = aws_sdk_kinesisvideo::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(s.url())
        .credentials_provider(Credentials::new("AKIDINPROC", "secret", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_kinesisvideo::Client::from_conf(conf)
}

async fn create(kv: &aws_sdk_kinesisvideo::Client, name: &str) -> String {
    kv.create_signaling_channel()
        .channel_name(name)
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap()
}

const GET_STATE: &[u8] = b"GET /_kvs/state HTTP/1.1\r\nHost: x\r\n\r\n";

async fn state(s: &Server) -> Value {
    let resp = call(s.port, GET_STATE).await;
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()
}

/// Polls the state until `want` (the relay holds a message asynchronously).
async fn state_becomes(s: &Server, want: Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = state(s).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "state stayed {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reset_empties_every_region_and_closes_connections_with_go_away() {
    let s = Server::start(&[]).await;
    let east = client(&s, "us-east-1");
    let west = client(&s, "eu-west-1");
    let cam = create(&east, "cam").await;
    create(&east, "door").await;
    create(&west, "cam").await;
    let mut master = s.connect_ws(&cam, None).await;
    let mut viewer = s.connect_ws(&cam, Some("v1")).await;
    // An offer to a viewer that is not connected is held for it.
    let offer = json!({
        "action": "SDP_OFFER",
        "messagePayload": "eyJ0eXBlIjoib2ZmZXIifQ==",
        "recipientClientId": "v2",
    });
    master
        .send(Message::Text(offer.to_string().into()))
        .await
        .unwrap();
    state_becomes(
        &s,
        json!({"channels": 3, "connections": {"masters": 1, "viewers": 1}, "heldMessages": 1}),
    )
    .await;

    let resp = call(s.port, &post("/_kvs/reset", "")).await;
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(
        resp.json(),
        json!({"channels": 3, "heldMessages": 1, "streams": 0})
    );

    // Each connection hears GO_AWAY, then the server closes it (no grace on a reset).
    for (who, ws) in [("master", &mut master), ("viewer", &mut viewer)] {
        let mut frames = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Text(t) => frames.push(serde_json::from_str::<Value>(&t).unwrap()),
                    Message::Close(_) => return,
                    _ => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{who}: not closed after the reset");
        assert_eq!(frames.len(), 1, "{who}: {frames:?}");
        assert_eq!(frames[0]["messageType"], "GO_AWAY", "{who}");
    }

    // Right after the reset answers, nothing is left.
    assert_eq!(
        state(&s).await,
        json!({"channels": 0, "connections": {"masters": 0, "viewers": 0}, "heldMessages": 0})
    );
    for kv in [&east, &west] {
        let listed = kv.list_signaling_channels().send().await.unwrap();
        assert!(listed.channel_info_list().is_empty());
    }
    // The names are free again, and a second reset of an empty server is fine.
    create(&east, "cam").await;
    let resp = call(s.port, &post("/_kvs/reset", "")).await;
    assert_eq!(
        resp.json(),
        json!({"channels": 1, "heldMessages": 0, "streams": 0})
    );
    s.shutdown().await;
}

/// A deployment with real users is not emptied or inventoried by one unsigned call.
#[tokio::test]
async fn both_are_refused_with_credentials() {
    let dir = std::env::temp_dir().join(format!("kvs-suite-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("credentials.toml");
    std::fs::write(
        &file,
        "[[credentials]]\naccess_key_id = \"AKIDSUITE\"\nsecret_access_key = \"secret\"\n\
         account_id = \"111122223333\"\n",
    )
    .unwrap();
    let s = Server::start(&["--credentials", file.to_str().unwrap()]).await;
    let cases: [(&str, Vec<u8>); 2] = [
        ("POST /_kvs/reset", post("/_kvs/reset", "")),
        ("GET /_kvs/state", GET_STATE.to_vec()),
    ];
    for (case, request) in cases {
        let resp = call(s.port, &request).await;
        let message = assert_aws_error(&resp, 403, "AccessDeniedException");
        assert!(message.contains("open mode"), "{case}: {message}");
    }
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
