//! Accounts are isolated on every path (SECURITY.md "Accounts"): with `--credentials` holding keys
//! of accounts A and B, B cannot reach A's channel through the HTTPS data plane
//! (GetIceServerConfig, SendAlexaOfferToMaster), the signaling WebSocket or the TURN relay, even
//! when it names A's ARN or an ARN rewritten to its own account. The control plane's share
//! (describe, update, delete, tag, untag, list tags, get endpoint, list) is in sdk_auth.rs.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_kinesisvideosignaling::error::ProvideErrorMetadata;
use aws_types::region::Region;
use base64::Engine;
use serde_json::json;
use support::{b64, Server};
use tokio::net::UdpSocket;
use turn::client::{Client as TurnClient, ClientConfig};

const A: (&str, &str) = ("AKIDACCOUNTA", "secret-of-a");
const B: (&str, &str) = ("AKIDACCOUNTB", "secret-of-b");
const A_ACCOUNT: &str = "111111111111";
const B_ACCOUNT: &str = "222222222222";

struct Setup {
    s: Server,
    _dir: std::path::PathBuf,
}

fn start(extra: &[&str]) -> Setup {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kvs-isolation-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("credentials.toml");
    std::fs::write(
        &file,
        format!(
            "[[credentials]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\naccount_id = \"{A_ACCOUNT}\"\n\
             [[credentials]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\naccount_id = \"{B_ACCOUNT}\"\n",
            A.0, A.1, B.0, B.1
        ),
    )
    .unwrap();
    let mut args = vec!["--credentials", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    Setup {
        s: Server::start(&args),
        _dir: dir,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn signaling(s: &Server, who: (&str, &str), region: &str) -> aws_sdk_kinesisvideosignaling::Client {
    let conf = aws_sdk_kinesisvideosignaling::Config::builder()
        .behavior_version(aws_sdk_kinesisvideosignaling::config::BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(s.url())
        .credentials_provider(Credentials::new(who.0, who.1, None, None, "test"))
        .retry_config(aws_sdk_kinesisvideosignaling::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesisvideosignaling::Client::from_conf(conf)
}

async fn create(s: &Server, who: (&str, &str), name: &str) -> String {
    s.kv_as(who.0, who.1, "us-east-1")
        .create_signaling_channel()
        .channel_name(name)
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap()
}

/// The presigned connect URL of `who` for `arn`, as the KVS SDKs build it.
fn ws_url(s: &Server, who: (&str, &str), region: &str, arn: &str, client: Option<&str>) -> String {
    let host = format!("127.0.0.1:{}", s.port);
    let mut params = vec![("X-Amz-ChannelARN".to_string(), arn.to_string())];
    if let Some(c) = client {
        params.push(("X-Amz-ClientId".to_string(), c.to_string()));
    }
    let date = kvs_sigv4::format_amz_date(SystemTime::now());
    let q = kvs_sigv4::presign_query(
        "GET",
        &host,
        "/",
        &params,
        who.0,
        who.1,
        region,
        "kinesisvideo",
        &date,
        299,
    );
    format!("ws://{host}/?{q}")
}

/// The (code, HTTP status) of a failed signaling-API call.
fn refusal<O: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<
        O,
        aws_sdk_kinesisvideosignaling::error::SdkError<
            E,
            aws_sdk_kinesisvideosignaling::config::http::HttpResponse,
        >,
    >,
) -> (String, u16) {
    let e = r.expect_err("the call must be refused");
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    (e.code().unwrap_or_default().to_owned(), status)
}

/// ARNs B might try for A's channel: A's own, and A's rewritten to name B's account or region.
fn forged_arns(a_arn: &str) -> Vec<String> {
    vec![
        a_arn.to_owned(),
        a_arn.replace(&format!(":{A_ACCOUNT}:"), &format!(":{B_ACCOUNT}:")),
        a_arn.replace(":us-east-1:", ":eu-west-1:"),
    ]
}

#[tokio::test]
async fn the_data_plane_and_the_websocket_keep_accounts_apart() {
    let setup = start(&["--alexa-answer-timeout", "5s"]);
    let s = &setup.s;
    let a_arn = create(s, A, "private").await;
    // B has a channel of the same name: its ARN differs, and it is the only one B reaches.
    let b_arn = create(s, B, "private").await;
    assert_ne!(a_arn, b_arn);

    // A's master is connected, so anything delivered to A's channel would reach it.
    let mut master = support::Ws(
        tokio_tungstenite::connect_async(ws_url(s, A, "us-east-1", &a_arn, None))
            .await
            .unwrap()
            .0,
    );

    let b = signaling(s, B, "us-east-1");
    for arn in forged_arns(&a_arn) {
        assert_eq!(
            refusal(b.get_ice_server_config().channel_arn(&arn).send().await),
            ("ResourceNotFoundException".to_owned(), 404),
            "GetIceServerConfig by B for {arn}"
        );
        let started = Instant::now();
        assert_eq!(
            refusal(
                b.send_alexa_offer_to_master()
                    .channel_arn(&arn)
                    .sender_client_id("intruder")
                    .message_payload(b64("offer from B"))
                    .send()
                    .await
            ),
            ("ResourceNotFoundException".to_owned(), 404),
            "SendAlexaOfferToMaster by B for {arn}"
        );
        // Refused at once, not after waiting for an answer that was never asked for.
        assert!(started.elapsed() < Duration::from_secs(3), "{arn}");
        for client in [None, Some("intruder")] {
            let url = ws_url(s, B, "us-east-1", &arn, client);
            assert_eq!(
                s.connect_status(&url).await,
                404,
                "B connects to {arn} as {client:?}"
            );
        }
    }
    // A's key in another region does not reach A's us-east-1 channel either.
    let a_eu = signaling(s, A, "eu-west-1");
    assert_eq!(
        refusal(
            a_eu.get_ice_server_config()
                .channel_arn(&a_arn)
                .send()
                .await
        ),
        ("ResourceNotFoundException".to_owned(), 404)
    );
    assert_eq!(
        s.connect_status(&ws_url(s, A, "eu-west-1", &a_arn, Some("v")))
            .await,
        404
    );
    // Nothing B (or A-in-eu-west-1) did reached A's master.
    assert!(master
        .recv_within(Duration::from_millis(500))
        .await
        .is_none());

    // B's own channel works for B, and its viewers reach B's master only.
    let b_ice = signaling(s, B, "us-east-1")
        .get_ice_server_config()
        .channel_arn(&b_arn)
        .send()
        .await
        .unwrap();
    assert!(!b_ice.ice_server_list.unwrap().is_empty());
    let mut b_master = support::Ws(
        tokio_tungstenite::connect_async(ws_url(s, B, "us-east-1", &b_arn, None))
            .await
            .unwrap()
            .0,
    );
    let mut b_viewer = support::Ws(
        tokio_tungstenite::connect_async(ws_url(s, B, "us-east-1", &b_arn, Some("v")))
            .await
            .unwrap()
            .0,
    );
    b_viewer
        .send(json!({"action":"SDP_OFFER","messagePayload":b64("offer")}))
        .await;
    assert_eq!(b_master.recv().await["senderClientId"], "v");
    assert!(master
        .recv_within(Duration::from_millis(300))
        .await
        .is_none());

    // And A still owns its channel.
    let a = signaling(s, A, "us-east-1");
    a.get_ice_server_config()
        .channel_arn(&a_arn)
        .send()
        .await
        .unwrap();
}

struct TurnCreds {
    port: u16,
    username: String,
    password: String,
}

async fn turn_creds(s: &Server, who: (&str, &str), arn: &str, client: &str) -> TurnCreds {
    let srv = signaling(s, who, "us-east-1")
        .get_ice_server_config()
        .channel_arn(arn)
        .client_id(client)
        .send()
        .await
        .unwrap()
        .ice_server_list
        .unwrap()
        .remove(0);
    let uri = srv.uris.unwrap().remove(0);
    let port = uri
        .rsplit(':')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    TurnCreds {
        port,
        username: srv.username.unwrap(),
        password: srv.password.unwrap(),
    }
}

/// Whether a TURN allocation with `username`/`password` succeeds; the client is returned so an
/// allocation stays held until it is closed.
async fn allocate(port: u16, username: &str, password: &str) -> (bool, TurnClient) {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = format!("127.0.0.1:{port}");
    let client = TurnClient::new(ClientConfig {
        stun_serv_addr: addr.clone(),
        turn_serv_addr: addr,
        username: username.to_owned(),
        password: password.to_owned(),
        realm: "kvs-signaling".into(),
        software: String::new(),
        rto_in_ms: 0,
        conn: sock,
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    let ok = tokio::time::timeout(Duration::from_secs(10), client.allocate())
        .await
        .is_ok_and(|r| r.is_ok());
    (ok, client)
}

/// TURN credentials name their channel (and so its account) inside an HMAC'd username: B cannot
/// get A's, cannot relabel its own for A's channel, and the per-channel allocation bound of A's
/// channel is A's alone.
#[tokio::test]
async fn turn_credentials_are_bound_to_one_accounts_channel() {
    let setup = start(&[
        "--turn-listen",
        "127.0.0.1:0",
        "--turn-max-allocations",
        "1",
    ]);
    let s = &setup.s;
    let a_arn = create(s, A, "cam").await;
    let b_arn = create(s, B, "cam").await;

    // B cannot obtain credentials for A's channel (the data-plane test covers the ARN forms).
    assert_eq!(
        refusal(
            signaling(s, B, "us-east-1")
                .get_ice_server_config()
                .channel_arn(&a_arn)
                .send()
                .await
        ),
        ("ResourceNotFoundException".to_owned(), 404)
    );

    // B relabels its own username to name A's channel: the password (HMAC of the username under
    // the server's secret) no longer matches, so the relay refuses it.
    let b = turn_creds(s, B, &b_arn, "viewer-b").await;
    let (expiry, _) = b.username.split_once(':').unwrap();
    let label = base64::engine::general_purpose::STANDARD.encode(format!("v1:{a_arn}:viewer-b"));
    let relabelled = format!("{expiry}:{label}");
    let (ok, c) = allocate(b.port, &relabelled, &b.password).await;
    assert!(!ok, "B's password with a username naming A's channel");
    c.close().await.unwrap();
    // Lengthening the expiry is the same forgery.
    let later = format!(
        "{}:{}",
        expiry.parse::<u64>().unwrap() + 86_400,
        b.username.split_once(':').unwrap().1
    );
    let (ok, c) = allocate(b.port, &later, &b.password).await;
    assert!(!ok, "B's password with a later expiry");
    c.close().await.unwrap();

    // A fills its channel's single allocation.
    let a = turn_creds(s, A, &a_arn, "viewer-a").await;
    let (ok, a_client) = allocate(a.port, &a.username, &a.password).await;
    assert!(ok, "A's own credentials");
    // The bound is per channel ARN, and the ARN carries the account: B's channel of the same
    // name is not A's, so B still allocates.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (ok, b_client) = allocate(b.port, &b.username, &b.password).await;
    assert!(ok, "B's allocation on its own channel while A's is full");
    // A second allocation on A's channel is refused: B's allocation did not count against it,
    // and A's did not count against B's.
    let a2 = turn_creds(s, A, &a_arn, "viewer-a2").await;
    let (ok, a2_client) = allocate(a2.port, &a2.username, &a2.password).await;
    assert!(!ok, "A's channel is full with A's own allocation");
    for c in [a_client, b_client, a2_client] {
        c.close().await.unwrap();
    }
}
