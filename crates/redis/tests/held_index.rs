//! What only the Redis layout of held messages does (docs/deployment.md, the `hr` keys): a
//! connect reads only its recipient's own messages, the bound and expiry keep every index
//! in step, and dropping a channel leaves none of its keys behind.

mod support;

use kvs_core::relay::held::HeldMessages;
use kvs_core::relay::{Action, HeldMessage, Relayed, Role};
use kvs_redis::{Redis, RedisHeld};

const ARN: &str = "arn:aws:kinesisvideo:us-east-1:111122223333:channel/cam/1700000000000";

fn msg(to: Role, payload: &str, expires: u64) -> HeldMessage {
    HeldMessage {
        recipient: to,
        message: Relayed {
            action: Action::IceCandidate,
            sender: Some("v1".into()),
            payload: payload.into(),
        },
        expires_at_millis: expires,
    }
}

async fn keys(server: &support::RedisServer) -> Vec<String> {
    let client = redis::Client::open(server.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut k: Vec<String> = redis::cmd("KEYS")
        .arg("kvs:*")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    k.sort();
    k
}

#[tokio::test]
async fn each_recipient_has_its_own_order_and_drop_leaves_nothing() {
    let server = support::RedisServer::start();
    let held = RedisHeld::new(Redis::open(&server.url(), "kvs").unwrap_or_else(|e| panic!("{e}")));
    let now = 1_000_000;
    let viewer = Role::Viewer("a".into());
    for p in ["m1", "m2"] {
        held.hold(ARN, msg(Role::Master, p, now + 60_000), 10, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for p in ["v1", "v2", "v3"] {
        held.hold(ARN, msg(viewer.clone(), p, now + 60_000), 10, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let hr = |r: &str| format!("kvs:{{111122223333:us-east-1}}:hr:{ARN}:{r}");
    assert!(keys(&server).await.contains(&hr("V:a")));
    let taken = held
        .take(ARN, &Role::Master, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<_> = taken
        .messages
        .iter()
        .map(|m| m.message.payload.as_str())
        .collect();
    assert_eq!(got, ["m1", "m2"]);
    let left = keys(&server).await;
    assert!(
        !left.contains(&hr("M")),
        "the master's order is gone: {left:?}"
    );
    assert!(left.contains(&hr("V:a")));
    // At the bound (4), the oldest (v1) goes, from its recipient's order too.
    held.hold(ARN, msg(Role::Master, "m3", now + 60_000), 4, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    held.hold(ARN, msg(Role::Master, "m4", now + 60_000), 4, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = redis::Client::open(server.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let indexed: Vec<String> = redis::cmd("ZRANGE")
        .arg(hr("V:a"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        indexed.len(),
        2,
        "the evicted message left its recipient's order"
    );
    let taken = held
        .take(ARN, &viewer, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<_> = taken
        .messages
        .iter()
        .map(|m| m.message.payload.as_str())
        .collect();
    assert_eq!(got, ["v2", "v3"]);
    assert_eq!(
        held.drop_channel(ARN)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        2
    );
    assert_eq!(
        keys(&server).await,
        Vec::<String>::new(),
        "nothing of the channel is left"
    );
}
