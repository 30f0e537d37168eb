//! The signaling WebSocket over real sockets: tokio-tungstenite clients against the real
//! binary (docs/protocol.md §6).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{b64, request, Server};

#[tokio::test]
async fn offer_answer_and_candidates_are_relayed_between_master_and_viewers() {
    let s = Server::start(&[]);
    let arn = s.channel("relay", 60).await;
    let mut master = s.connect(&arn, None).await;
    let mut v1 = s.connect(&arn, Some("viewer-1")).await;
    let mut v2 = s.connect(&arn, Some("viewer-2")).await;

    let offer = b64(r#"{"type":"offer","sdp":"v=0..."}"#);
    // A viewer's recipientClientId is ignored: viewer -> viewer never happens.
    v1.send(json!({"action":"SDP_OFFER","messagePayload":offer,"recipientClientId":"viewer-2"}))
        .await;
    let got = master.recv().await;
    assert_eq!(got["messageType"], "SDP_OFFER");
    assert_eq!(got["senderClientId"], "viewer-1");
    assert_eq!(
        got["messagePayload"],
        offer.as_str(),
        "payload byte for byte"
    );
    assert!(v2.recv_within(Duration::from_millis(300)).await.is_none());

    let answer = b64(r#"{"type":"answer","sdp":"v=0..."}"#);
    master
        .send(json!({"action":"SDP_ANSWER","recipientClientId":"viewer-1","messagePayload":answer}))
        .await;
    let got = v1.recv().await;
    assert_eq!(got["messageType"], "SDP_ANSWER");
    assert_eq!(got["messagePayload"], answer.as_str());

    // The C SDK's PascalCase form, pretty-printed, with its extra IceServerList.
    let cand = b64(r#"{"candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host","sdpMid":"0"}"#);
    master
        .send_text(&format!(
            "{{\n\t\"action\": \"ICE_CANDIDATE\",\n\t\"RecipientClientId\": \"viewer-2\",\n\t\"MessagePayload\": \"{cand}\",\n\t\"IceServerList\": []\n}}"
        ))
        .await;
    let got = v2.recv().await;
    assert_eq!(got["messageType"], "ICE_CANDIDATE");
    assert_eq!(got["messagePayload"], cand.as_str());
    assert!(v1.recv_within(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn invalid_messages_get_status_responses_and_the_connection_survives() {
    let s = Server::start(&[]);
    let arn = s.channel("invalid", 60).await;
    let mut master = s.connect(&arn, None).await;
    let mut viewer = s.connect(&arn, Some("v")).await;
    let cases = [
        json!({"action":"HELLO","messagePayload":"aGk=","correlationId":"c1"}),
        json!({"action":"SDP_OFFER","messagePayload":"***","correlationId":"c2"}),
        json!({"action":"SDP_OFFER","messagePayload":"A".repeat(10_004),"correlationId":"c3"}),
        json!({"action":"SDP_OFFER","correlationId":"c4"}),
    ];
    for (i, c) in cases.iter().enumerate() {
        viewer.send(c.clone()).await;
        let got = viewer.recv().await;
        assert_eq!(got["messageType"], "STATUS_RESPONSE", "{c}");
        assert_eq!(
            got["statusResponse"]["correlationId"],
            format!("c{}", i + 1)
        );
        assert_eq!(
            got["statusResponse"]["errorType"],
            "InvalidArgumentException"
        );
        assert_eq!(got["statusResponse"]["statusCode"], "400");
    }
    // The master must name a recipient.
    master
        .send(json!({"action":"SDP_ANSWER","messagePayload":"aGk=","correlationId":"m1"}))
        .await;
    let got = master.recv().await;
    assert_eq!(got["statusResponse"]["correlationId"], "m1");
    // Malformed JSON and binary frames: no correlation id, no answer, no crash.
    viewer.send_text("{not json").await;
    use futures_util::SinkExt;
    viewer
        .0
        .send(tokio_tungstenite::tungstenite::Message::binary(
            br#"{"action":"SDP_OFFER","messagePayload":"aGk=","correlationId":"bin"}"#.to_vec(),
        ))
        .await
        .unwrap();
    let got = viewer.recv().await;
    assert_eq!(got["statusResponse"]["correlationId"], "bin");
    // Still relaying afterwards.
    viewer
        .send(json!({"action":"SDP_OFFER","messagePayload":"aGk="}))
        .await;
    assert_eq!(master.recv().await["senderClientId"], "v");
}

#[tokio::test]
async fn a_late_master_receives_held_offer_and_candidates_in_order() {
    let s = Server::start(&[]);
    let arn = s.channel("late", 60).await;
    let mut viewer = s.connect(&arn, Some("early-viewer")).await;
    let payloads = [b64("offer"), b64("cand-1"), b64("cand-2")];
    viewer
        .send(json!({"action":"SDP_OFFER","messagePayload":payloads[0]}))
        .await;
    for p in &payloads[1..] {
        viewer
            .send(json!({"action":"ICE_CANDIDATE","messagePayload":p}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut master = s.connect(&arn, None).await;
    for p in &payloads {
        let got = master.recv().await;
        assert_eq!(got["messagePayload"], p.as_str());
        assert_eq!(got["senderClientId"], "early-viewer");
    }
    let metrics = http_get(&s, "/metrics").await;
    assert!(
        metrics.contains("kvs_signaling_messages_delivered_from_hold_total 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn held_messages_expire_with_the_ttl_they_were_accepted_under() {
    let s = Server::start(&[]);
    let arn = s.channel("ttl", 60).await;
    let mut viewer = s.connect(&arn, Some("v")).await;
    viewer
        .send(json!({"action":"ICE_CANDIDATE","messagePayload":b64("first")}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Lower the TTL to 5 s: only messages sent from now on are affected.
    let kv = s.kv();
    let info = kv
        .describe_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap()
        .channel_info
        .unwrap();
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(info.version.unwrap())
        .single_master_configuration(
            aws_sdk_kinesisvideo::types::SingleMasterConfiguration::builder()
                .message_ttl_seconds(5)
                .build(),
        )
        .send()
        .await
        .unwrap();
    viewer
        .send(json!({"action":"ICE_CANDIDATE","messagePayload":b64("second")}))
        .await;
    tokio::time::sleep(Duration::from_millis(5_600)).await;
    let mut master = s.connect(&arn, None).await;
    assert_eq!(master.recv().await["messagePayload"], b64("first").as_str());
    assert!(master
        .recv_within(Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn one_master_per_channel_and_viewer_ids_replace_their_old_connection() {
    let s = Server::start(&["--max-viewers", "2"]);
    let arn = s.channel("replace", 60).await;
    let mut m1 = s.connect(&arn, None).await;
    let mut m2 = s.connect(&arn, None).await;
    assert!(m1.closed_within(Duration::from_secs(3)).await.is_some());
    let mut a1 = s.connect(&arn, Some("a")).await;
    let _b = s.connect(&arn, Some("b")).await;
    // A third distinct viewer is over the limit: HTTP 400 at the handshake.
    assert_eq!(s.connect_status(&s.ws_url(&arn, Some("c"))).await, 400);
    // Reconnecting "a" replaces its old connection rather than counting as a new viewer.
    let mut a2 = s.connect(&arn, Some("a")).await;
    assert!(a1.closed_within(Duration::from_secs(3)).await.is_some());
    a2.send(json!({"action":"SDP_OFFER","messagePayload":b64("x")}))
        .await;
    assert_eq!(m2.recv().await["senderClientId"], "a");
}

#[tokio::test]
async fn handshake_errors_have_the_documented_status() {
    let s = Server::start(&[]);
    let arn = s.channel("hs", 60).await;
    let base = format!("ws://127.0.0.1:{}/", s.port);
    assert_eq!(s.connect_status(&base).await, 400, "missing ChannelARN");
    assert_eq!(
        s.connect_status(&format!("{base}?X-Amz-ChannelARN=nope"))
            .await,
        400
    );
    let missing = arn.replace("/hs/", "/no-such-channel/");
    assert_eq!(s.connect_status(&s.ws_url(&missing, None)).await, 404);
    assert_eq!(
        s.connect_status(&s.ws_url(&arn, Some("AWS_reserved")))
            .await,
        400
    );
    assert_eq!(s.connect_status(&s.ws_url(&arn, Some("aws_x"))).await, 400);
    assert_eq!(s.connect_status(&s.ws_url(&arn, Some("bad id"))).await, 400);
    // Another region's channel is not found.
    let other_region = arn.replace("us-east-1", "eu-west-1");
    assert_eq!(s.connect_status(&s.ws_url(&other_region, None)).await, 404);
}

#[tokio::test]
async fn the_c_sdk_subprotocol_is_echoed() {
    let s = Server::start(&[]);
    let arn = s.channel("proto", 60).await;
    let mut req = request(&s.ws_url(&arn, None));
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "wss".parse().unwrap());
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "wss");
}

#[tokio::test]
async fn deleting_a_channel_sends_go_away_then_closes_after_the_grace() {
    let s = Server::start(&["--go-away-grace", "1500ms"]);
    let arn = s.channel("doomed", 60).await;
    let mut master = s.connect(&arn, None).await;
    let mut viewer = s.connect(&arn, Some("v")).await;
    s.kv()
        .delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(master.recv().await["messageType"], "GO_AWAY");
    assert_eq!(viewer.recv().await["messageType"], "GO_AWAY");
    // The grace period is a promise: the connections stay open through it (the deleted
    // channel's state must not take their outboxes with it)...
    assert_eq!(master.closed_within(Duration::from_millis(800)).await, None);
    assert_eq!(viewer.closed_within(Duration::from_millis(10)).await, None);
    // ...and then end with a close frame (1001 going away), not a dropped socket.
    assert_eq!(
        master.closed_within(Duration::from_secs(3)).await,
        Some(1001)
    );
    assert_eq!(
        viewer.closed_within(Duration::from_secs(3)).await,
        Some(1001)
    );
}

#[tokio::test]
async fn idle_connections_are_closed_and_pings_keep_them_open() {
    let s = Server::start(&["--idle-timeout", "1s"]);
    let arn = s.channel("idle", 60).await;
    let mut quiet = s.connect(&arn, Some("quiet")).await;
    let mut pinger = s.connect(&arn, Some("pinger")).await;
    use futures_util::SinkExt;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        pinger
            .0
            .send(tokio_tungstenite::tungstenite::Message::Ping(
                vec![1].into(),
            ))
            .await
            .unwrap();
    }
    assert!(quiet
        .closed_within(Duration::from_millis(100))
        .await
        .is_some());
    assert!(pinger
        .closed_within(Duration::from_millis(100))
        .await
        .is_none());
}

#[tokio::test]
async fn message_rates_are_limited_per_connection_and_can_be_switched_off() {
    for (flags, expect_limited) in [
        (vec![], true),
        (vec!["--message-rate-limits", "false"], false),
    ] {
        let s = Server::start(&flags);
        let arn = s.channel("rate", 60).await;
        let mut viewer = s.connect(&arn, Some("v")).await;
        for i in 0..8 {
            viewer
                .send(json!({"action":"SDP_OFFER","messagePayload":b64("o"),"correlationId":format!("r{i}")}))
                .await;
        }
        let mut limited = 0;
        while let Some(f) = viewer.recv_within(Duration::from_millis(500)).await {
            if f["statusResponse"]["errorType"] == "ClientLimitExceededException" {
                limited += 1;
            }
        }
        assert_eq!(
            limited > 0,
            expect_limited,
            "flags {flags:?}: {limited} limited"
        );
    }
}

#[tokio::test]
async fn get_ice_server_config_returns_turn_rest_credentials() {
    let s = Server::start(&["--turn-secret", "north", "--ice-ttl", "300s"]);
    let arn = s.channel("ice", 60).await;
    let out = s
        .signaling()
        .get_ice_server_config()
        .channel_arn(&arn)
        .client_id("viewer-1")
        .service(aws_sdk_kinesisvideosignaling::types::Service::Turn)
        .send()
        .await
        .unwrap();
    let servers = out.ice_server_list.unwrap();
    assert!(!servers.is_empty());
    for srv in &servers {
        let uris = srv.uris.clone().unwrap();
        assert!((1..=4).contains(&uris.len()));
        assert!(uris
            .iter()
            .all(|u| u.starts_with("turn:") || u.starts_with("turns:")));
        assert_eq!(srv.ttl, Some(300));
        let user = srv.username.clone().unwrap();
        let (expiry, _) = user.split_once(':').unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let expiry: u64 = expiry.parse().unwrap();
        assert!(expiry > now + 290 && expiry <= now + 301);
        assert!(!srv.password.clone().unwrap().is_empty());
    }
    let err = s
        .signaling()
        .get_ice_server_config()
        .channel_arn(arn.replace("/ice/", "/nope/"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn send_alexa_offer_to_master_returns_the_masters_answer() {
    let s = Server::start(&["--alexa-answer-timeout", "2s"]);
    let arn = s.channel("alexa", 60).await;
    let mut master = s.connect(&arn, None).await;
    let sig = s.signaling();
    let arn2 = arn.clone();
    let call = tokio::spawn(async move {
        sig.send_alexa_offer_to_master()
            .channel_arn(arn2)
            .sender_client_id("alexa-1")
            .message_payload(b64("offer"))
            .send()
            .await
    });
    let got = master.recv().await;
    assert_eq!(got["messageType"], "SDP_OFFER");
    assert_eq!(got["senderClientId"], "alexa-1");
    master
        .send(json!({"action":"SDP_ANSWER","recipientClientId":"alexa-1","messagePayload":b64("answer")}))
        .await;
    let out = call.await.unwrap().unwrap();
    assert_eq!(out.answer.as_deref(), Some(b64("answer").as_str()));

    // Nobody answers: a clear error after the timeout.
    let err = s
        .signaling()
        .send_alexa_offer_to_master()
        .channel_arn(&arn)
        .sender_client_id("alexa-2")
        .message_payload(b64("offer"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn rotating_the_turn_secret_sends_reconnect_ice_server() {
    let dir = std::env::temp_dir().join(format!("kvs-turn-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "one").unwrap();
    let s = Server::start(&["--turn-secret-file", file.to_str().unwrap()]);
    let arn = s.channel("rotate", 60).await;
    let mut viewer = s.connect(&arn, Some("v")).await;
    std::fs::write(&file, "two").unwrap();
    let got = viewer.recv_within(Duration::from_secs(4)).await.unwrap();
    assert_eq!(got["messageType"], "RECONNECT_ICE_SERVER");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn http_get(s: &Server, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn pings_are_answered_with_pongs() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let s = Server::start(&[]);
    let arn = s.channel("ping", 60).await;
    let mut ws = s.connect(&arn, None).await;
    ws.0.send(Message::Ping(b"are-you-there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(Ok(Message::Pong(p))) = ws.0.next().await {
                return p;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"are-you-there");
}

#[tokio::test]
async fn shutdown_sends_go_away_to_everyone_and_exits_cleanly() {
    let mut s = Server::start(&["--shutdown-timeout", "3s"]);
    let a = s.channel("shut-a", 60).await;
    let b = s.channel("shut-b", 60).await;
    let mut m = s.connect(&a, None).await;
    let mut v = s.connect(&b, Some("v")).await;
    std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert_eq!(m.recv().await["messageType"], "GO_AWAY");
    assert_eq!(v.recv().await["messageType"], "GO_AWAY");
    assert!(m.closed_within(Duration::from_secs(5)).await.is_some());
    let status = s.wait();
    assert!(status.success(), "{status:?}");
}

/// Presigned connects with `--credentials`: valid ones work, week-long expiries (the C SDK's)
/// are accepted, expired, wrongly signed, wrongly scoped and other accounts' are refused.
#[tokio::test]
async fn presigned_connects_are_verified_in_credentials_mode() {
    let dir = std::env::temp_dir().join(format!("kvs-ws-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("credentials.toml");
    std::fs::write(
        &file,
        // ASIAT: temporary credentials of account A; its URLs carry its session token.
        "[[credentials]]\naccess_key_id = \"AKIDA\"\nsecret_access_key = \"sa\"\naccount_id = \"111111111111\"\n\
         [[credentials]]\naccess_key_id = \"AKIDB\"\nsecret_access_key = \"sb\"\naccount_id = \"222222222222\"\n\
         [[credentials]]\naccess_key_id = \"ASIAT\"\nsecret_access_key = \"st\"\naccount_id = \"111111111111\"\nsession_token = \"session-token\"\n",
    )
    .unwrap();
    let s = Server::start(&["--credentials", file.to_str().unwrap()]);
    let arn = s
        .kv_as("AKIDA", "sa", "us-east-1")
        .create_signaling_channel()
        .channel_name("secure")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let host = format!("127.0.0.1:{}", s.port);
    let now = std::time::SystemTime::now();
    let url = |ak: &str,
               secret: &str,
               region: &str,
               service: &str,
               at: std::time::SystemTime,
               expires: u64,
               client: Option<&str>| {
        let mut params = vec![("X-Amz-ChannelARN".to_string(), arn.clone())];
        if let Some(c) = client {
            params.push(("X-Amz-ClientId".to_string(), c.to_string()));
        }
        if ak.starts_with("ASIA") {
            params.push((
                "X-Amz-Security-Token".to_string(),
                "session-token".to_string(),
            ));
        }
        let date = kvs_sigv4::format_amz_date(at);
        let q = kvs_sigv4::presign_query(
            "GET", &host, "/", &params, ak, secret, region, service, &date, expires,
        );
        format!("ws://{host}/?{q}")
    };
    let ok = url("AKIDA", "sa", "us-east-1", "kinesisvideo", now, 299, None);
    assert_eq!(s.connect_status(&ok).await, 101);
    // Temporary credentials with their token (inside the signed query).
    let temp = url(
        "ASIAT",
        "st",
        "us-east-1",
        "kinesisvideo",
        now,
        299,
        Some("t"),
    );
    assert_eq!(s.connect_status(&temp).await, 101);
    // A token added to a signed URL is outside its signature (auth.rs tests cover a signed token
    // on a key that has none).
    let with_token = format!("{}&X-Amz-Security-Token=session-token", ok);
    assert_eq!(s.connect_status(&with_token).await, 403, "unsigned token");
    let week = url(
        "AKIDA",
        "sa",
        "us-east-1",
        "kinesisvideo",
        now,
        604_800,
        Some("v1"),
    );
    assert_eq!(s.connect_status(&week).await, 101);
    let hour_ago = now - Duration::from_secs(3600);
    for (what, bad) in [
        (
            "expired",
            url(
                "AKIDA",
                "sa",
                "us-east-1",
                "kinesisvideo",
                hour_ago,
                299,
                None,
            ),
        ),
        (
            "future",
            url(
                "AKIDA",
                "sa",
                "us-east-1",
                "kinesisvideo",
                now + Duration::from_secs(900),
                299,
                None,
            ),
        ),
        (
            "wrong secret",
            url("AKIDA", "nope", "us-east-1", "kinesisvideo", now, 299, None),
        ),
        (
            "unknown key",
            url("AKIDZ", "sa", "us-east-1", "kinesisvideo", now, 299, None),
        ),
        (
            "wrong service",
            url("AKIDA", "sa", "us-east-1", "s3", now, 299, None),
        ),
    ] {
        assert_eq!(s.connect_status(&bad).await, 403, "{what}");
    }
    // Another account, or the same account in another region, does not see the channel.
    let other = url("AKIDB", "sb", "us-east-1", "kinesisvideo", now, 299, None);
    assert_eq!(s.connect_status(&other).await, 404);
    let region = url("AKIDA", "sa", "eu-west-1", "kinesisvideo", now, 299, None);
    assert_eq!(s.connect_status(&region).await, 404);
    // No signature at all.
    assert_eq!(s.connect_status(&s.ws_url(&arn, None)).await, 403);
    let _ = std::fs::remove_dir_all(&dir);
}
