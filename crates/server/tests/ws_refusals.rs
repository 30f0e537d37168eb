//! What ends a signaling WebSocket from the client's side, against the in-process server: a
//! frame that breaks RFC 6455 closes the connection with its code (docs/protocol.md §6.3: 1009,
//! 1007, 1002), a binary frame does not (docs/behaviour.md "Signaling data plane": binary
//! frames are refused with a STATUS_RESPONSE), and a client that does not read is closed while
//! the messages it could not take wait for its next connection ("a message to a connection that
//! is closing is held for its next connection").
//!
//! Broken frames are written as bytes ([`raw::RawWs`]): tungstenite will not send invalid
//! UTF-8, unmasked client frames or reserved bits.
#![allow(clippy::unwrap_used)]

mod inproc;
mod raw;
mod support;

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use inproc::Server;
use raw::{RawWs, WsEnd};
use serde_json::json;
use support::{b64, Ws};
use tokio_tungstenite::tungstenite::Message;

const CLOSED_SLOW: &str = "kvs_signaling_connections_closed_slow_consumer_total";
const HELD_SLOW: &str = "kvs_signaling_messages_held_slow_consumer_total";
const HELD: &str = "kvs_signaling_messages_held_total";
const DROPPED_OVERFLOW: &str = "kvs_signaling_messages_dropped_overflow_total";
const FROM_HOLD: &str = "kvs_signaling_messages_delivered_from_hold_total";

async fn channel(s: &Server, name: &str) -> String {
    s.kv()
        .create_signaling_channel()
        .channel_name(name)
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap()
}

/// The path and query of the connect URL, for a hand-written upgrade.
fn target(s: &Server, arn: &str, client_id: Option<&str>) -> String {
    let url = s.ws_url(arn, client_id);
    url[url.find("/?").unwrap()..].to_owned()
}

#[tokio::test]
async fn frames_that_break_the_protocol_close_the_connection_with_their_code() {
    let s = Server::start(&[]).await;
    let arn = channel(&s, "frames").await;
    let part = vec![b'a'; 25 * 1024];
    // One frame: (first byte: FIN, RSV bits and opcode; payload; masked).
    type Frame = (u8, Vec<u8>, bool);
    // (case, frames sent, close code)
    let cases: Vec<(&str, Vec<Frame>, u16)> = vec![
        (
            "a 70 KiB text message",
            vec![(0x81, vec![b'a'; 70 * 1024], true)],
            1009,
        ),
        (
            "a 75 KiB text message in three frames",
            vec![
                (0x01, part.clone(), true),
                (0x00, part.clone(), true),
                (0x80, part, true),
            ],
            1009,
        ),
        (
            "invalid UTF-8 in a text frame",
            vec![(0x81, vec![b'{', 0xff, 0xfe, b'}'], true)],
            1007,
        ),
        (
            "an unmasked client frame",
            vec![(0x81, b"{}".to_vec(), false)],
            1002,
        ),
        (
            "a reserved opcode",
            vec![(0x83, b"{}".to_vec(), true)],
            1002,
        ),
        (
            "RSV1 set without an extension",
            vec![(0xC1, b"{}".to_vec(), true)],
            1002,
        ),
        ("a fragmented ping", vec![(0x09, b"p".to_vec(), true)], 1002),
    ];
    for (i, (case, frames, code)) in cases.into_iter().enumerate() {
        let id = format!("viewer-{i}");
        let mut ws = RawWs::open(s.port, &target(&s, &arn, Some(&id))).await;
        for (first, payload, masked) in frames {
            ws.send_frame(first, &payload, masked).await;
        }
        let (end, texts) = ws.until_end().await;
        assert!(
            texts.is_empty(),
            "{case}: frames before the close: {texts:?}"
        );
        match end {
            WsEnd::Close(got, reason) => {
                assert_eq!(got, code, "{case}: close code (reason {reason:?})");
                assert!(!reason.is_empty(), "{case}: no close reason");
            }
            WsEnd::Gone => panic!("{case}: the connection ended without a close frame"),
        }
        ws.expect_eof().await;
    }
}

#[tokio::test]
async fn a_binary_frame_is_answered_and_the_connection_stays_open() {
    let s = Server::start(&[]).await;
    let arn = channel(&s, "binary").await;
    let mut master = Ws(s.connect_ws(&arn, None).await);
    let mut viewer = Ws(s.connect_ws(&arn, Some("v")).await);
    let offer = json!({"action":"SDP_OFFER","messagePayload":b64("offer"),"correlationId":"bin"});
    viewer
        .0
        .send(Message::binary(offer.to_string().into_bytes()))
        .await
        .unwrap();
    let got = viewer.recv().await;
    assert_eq!(got["messageType"], "STATUS_RESPONSE", "{got}");
    assert_eq!(got["statusResponse"]["correlationId"], "bin");
    assert_eq!(
        got["statusResponse"]["errorType"],
        "InvalidArgumentException"
    );
    assert_eq!(got["statusResponse"]["statusCode"], "400");
    assert!(
        master
            .recv_within(Duration::from_millis(300))
            .await
            .is_none(),
        "a binary frame was relayed"
    );
    // Still open: the same message as text is relayed.
    viewer.send_text(&offer.to_string()).await;
    let got = master.recv().await;
    assert_eq!(got["messageType"], "SDP_OFFER", "{got}");
    assert_eq!(got["senderClientId"], "v");
    assert_eq!(viewer.closed_within(Duration::from_millis(300)).await, None);
}

/// The sequence number a payload of [`numbered`] carries.
fn number_of(frame: &serde_json::Value) -> u32 {
    let payload = frame["messagePayload"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap();
    std::str::from_utf8(&bytes[..10]).unwrap().parse().unwrap()
}

/// A 10,000-character payload (the largest, docs/protocol.md §8.2) carrying `n`.
fn numbered(n: u32) -> String {
    b64(&format!("{n:010}{}", "x".repeat(7_490)))
}

#[tokio::test]
async fn a_master_that_does_not_read_is_closed_and_its_messages_wait_for_the_next_one() {
    // --max-held-messages 256: an outbox of 256 + 64 = 320 events, and room to hold what
    // comes after it.
    let s = Server::start(&[
        "--message-rate-limits",
        "false",
        "--max-held-messages",
        "256",
    ])
    .await;
    let arn = channel(&s, "slow").await;
    // A master whose socket takes in little, and which never reads after the upgrade.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(([127, 0, 0, 1], s.port).into())
        .await
        .unwrap();
    let mut stalled = RawWs::upgrade(tcp, &target(&s, &arn, None)).await;
    let mut viewer = Ws(s.connect_ws(&arn, Some("fast")).await);

    // The viewer sends until the master's connection is closed for not reading.
    const MOST: u32 = 4000;
    let mut sent = 0;
    while sent < MOST {
        let msg = json!({
            "action": "ICE_CANDIDATE",
            "messagePayload": numbered(sent),
            "correlationId": format!("c{sent}"),
        });
        viewer.send(msg).await;
        sent += 1;
        if sent % 25 == 0 && s.metric(CLOSED_SLOW).await > 0 {
            break;
        }
    }
    assert_eq!(
        s.metric(CLOSED_SLOW).await,
        1,
        "the master was not closed after {sent} messages of 10 KB"
    );
    let held_slow = s.metric(HELD_SLOW).await;
    assert!(held_slow > 0, "nothing held for the slow consumer");
    // Every send succeeded: no STATUS_RESPONSE (each had a correlationId), no close.
    if let Ok(frame) = tokio::time::timeout(Duration::from_millis(500), viewer.0.next()).await {
        panic!("the viewer got {frame:?}");
    }

    // The stalled connection ends; if its close frame got through, it says why (1008).
    let (end, _) = stalled.until_end().await;
    if let WsEnd::Close(code, reason) = &end {
        assert_eq!(*code, 1008, "{reason}");
        assert!(reason.contains("not reading"), "{reason}");
    }

    // The next master gets what was held, in order: from the first message the stalled master
    // could not take to the last one sent.
    assert_eq!(s.metric(DROPPED_OVERFLOW).await, 0, "more than 256 held");
    let held = s.metric(HELD).await;
    assert!(held >= held_slow, "held {held}, slow {held_slow}");
    let held = u32::try_from(held).unwrap();
    let mut master = Ws(s.connect_ws(&arn, None).await);
    for want in sent - held..sent {
        let got = master.recv().await;
        assert_eq!(got["messageType"], "ICE_CANDIDATE");
        assert_eq!(got["senderClientId"], "fast");
        assert_eq!(number_of(&got), want);
    }
    assert_eq!(s.metric(FROM_HOLD).await, u64::from(held));
    // And the viewer keeps working: live messages reach the new master.
    viewer
        .send(json!({"action":"ICE_CANDIDATE","messagePayload":numbered(MOST)}))
        .await;
    assert_eq!(number_of(&master.recv().await), MOST);
    assert!(
        master
            .recv_within(Duration::from_millis(300))
            .await
            .is_none(),
        "more than was held"
    );
}
