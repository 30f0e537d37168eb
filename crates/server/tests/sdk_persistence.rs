//! Durability of the SQLite store (`--data-dir`): every acknowledged create, update, tag and
//! delete survives `kill -9` and a graceful SIGTERM restart (docs/design.md §2 "Storage").
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesisvideo::types::ChannelInfo;
use aws_sdk_kinesisvideo::Client;
use common::*;

/// What the test expects to find again after a restart.
struct Snapshot {
    infos: Vec<ChannelInfo>,
    tags: HashMap<String, HashMap<String, String>>,
    deleted_arn: String,
}

async fn all_channels(kv: &Client) -> Vec<ChannelInfo> {
    let mut v: Vec<ChannelInfo> = kv
        .list_signaling_channels()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    v.sort_by(|a, b| a.channel_name.cmp(&b.channel_name));
    v
}

async fn tags_of(kv: &Client, arn: &str) -> HashMap<String, String> {
    kv.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default()
}

/// Creates, updates, tags, untags and deletes; returns what must survive.
async fn write_everything(kv: &Client) -> Snapshot {
    // Plain channel.
    create(kv, "plain").await;
    // Created with TTL and tags, then updated twice and re-tagged.
    let arn = kv
        .create_signaling_channel()
        .channel_name("busy")
        .single_master_configuration(ttl(42))
        .tags(tag("keep", "1"))
        .tags(tag("drop", "2"))
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    for t in [30, 7] {
        let v = version_of(kv, &arn).await;
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(v)
            .single_master_configuration(ttl(t))
            .send()
            .await
            .unwrap();
    }
    kv.tag_resource()
        .resource_arn(&arn)
        .tags(tag("keep", "replaced"))
        .tags(tag("added", "3"))
        .send()
        .await
        .unwrap();
    kv.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("drop")
        .send()
        .await
        .unwrap();
    // Many tags on one more channel.
    let heavy = kv
        .create_signaling_channel()
        .channel_name("heavy.tags_1")
        .set_tags(Some(tags(50, "t")))
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    // Created then deleted.
    let deleted_arn = create(kv, "gone").await;
    kv.delete_signaling_channel()
        .channel_arn(&deleted_arn)
        .send()
        .await
        .unwrap();

    let infos = all_channels(kv).await;
    assert_eq!(infos.len(), 3);
    let mut tags = HashMap::new();
    for info in &infos {
        let arn = info.channel_arn.clone().unwrap();
        tags.insert(arn.clone(), tags_of(kv, &arn).await);
    }
    assert_eq!(tags[&heavy].len(), 50);
    assert_eq!(
        tags[&arn],
        HashMap::from([
            ("keep".to_owned(), "replaced".to_owned()),
            ("added".to_owned(), "3".to_owned())
        ])
    );
    Snapshot {
        infos,
        tags,
        deleted_arn,
    }
}

/// After a restart: the same channels, field for field (ARN, CreationTime, Version, TTL,
/// status), the same tags, the deleted one still gone, and the old Versions still current.
async fn check_everything(kv: &Client, snap: &Snapshot) {
    let infos = all_channels(kv).await;
    assert_eq!(infos, snap.infos, "channels after restart");
    for info in &infos {
        let arn = info.channel_arn.as_deref().unwrap();
        assert_eq!(&describe_arn(kv, arn).await, info);
        assert_eq!(
            &tags_of(kv, arn).await,
            &snap.tags[arn],
            "tags of {arn} after restart"
        );
    }
    expect_error(
        kv.describe_signaling_channel()
            .channel_arn(&snap.deleted_arn)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("gone")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    // Names are still taken.
    expect_error(
        kv.create_signaling_channel()
            .channel_name("busy")
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    // The Version read before the restart is still the current one.
    let busy = infos
        .iter()
        .find(|i| i.channel_name.as_deref() == Some("busy"))
        .unwrap();
    assert_eq!(ttl_of(busy), Some(7));
    let arn = busy.channel_arn.as_deref().unwrap();
    let old_version = busy.version.as_deref().unwrap();
    kv.update_signaling_channel()
        .channel_arn(arn)
        .current_version(old_version)
        .single_master_configuration(ttl(8))
        .send()
        .await
        .unwrap();
    assert_ne!(version_of(kv, arn).await, old_version);
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = TempDir::new("kill9");
    let snap = {
        let mut s = Server::start(&["--data-dir", dir.str()]);
        let snap = write_everything(&s.client()).await;
        s.kill9();
        snap
    };
    assert!(
        dir.path().join("kvs.sqlite3").exists(),
        "the SQLite database lives in --data-dir as kvs.sqlite3"
    );
    let s = Server::start(&["--data-dir", dir.str()]);
    check_everything(&s.client(), &snap).await;

    // A second crash right after more writes loses nothing either.
    let kv = s.client();
    let late = create(&kv, "late").await;
    let late_info = describe_arn(&kv, &late).await;
    let busy_after = describe_name(&kv, "busy").await;
    let mut s = s;
    s.kill9();
    let s = Server::start(&["--store", "sqlite", "--data-dir", dir.str()]);
    let kv = s.client();
    assert_eq!(describe_arn(&kv, &late).await, late_info);
    assert_eq!(describe_name(&kv, "busy").await, busy_after);
}

#[tokio::test]
async fn graceful_sigterm_then_restart_keeps_everything() {
    let dir = TempDir::new("sigterm");
    let snap = {
        let mut s = Server::start(&["--data-dir", dir.str()]);
        let snap = write_everything(&s.client()).await;
        let status = s
            .terminate(Duration::from_secs(15))
            .expect("SIGTERM: the server exits within its shutdown timeout");
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
        snap
    };
    let s = Server::start(&["--data-dir", dir.str()]);
    check_everything(&s.client(), &snap).await;
}

#[tokio::test]
async fn memory_store_keeps_nothing() {
    let dir = TempDir::new("memory");
    {
        let mut s = Server::start(&["--store", "memory", "--data-dir", dir.str()]);
        create(&s.client(), "ephemeral").await;
        s.kill9();
    }
    assert!(
        !dir.path().join("kvs.sqlite3").exists(),
        "--store memory writes nothing to disk"
    );
    let s = Server::start(&["--store", "memory", "--data-dir", dir.str()]);
    let kv = s.client();
    assert!(all_channels(&kv).await.is_empty());
    create(&kv, "ephemeral").await;
}
