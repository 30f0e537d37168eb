//! Create, describe, update and delete of signaling channels and their error paths, driven by
//! the official aws-sdk-kinesisvideo against the real binary (docs/protocol.md §2, §4, §9).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_kinesisvideo::operation::RequestId;
use aws_sdk_kinesisvideo::types::ChannelType;
use common::*;
#[tokio::test]
async fn create_defaults_and_describe_by_name_and_arn() {
    let s = Server::start(&[]);
    let kv = s.client();
    let before = SystemTime::now();
    let out = kv
        .create_signaling_channel()
        .channel_name("front-door")
        .send()
        .await
        .unwrap();
    assert!(out.request_id().is_some(), "x-amzn-RequestId on success");
    let arn = out.channel_arn.unwrap();

    let by_name = describe_name(&kv, "front-door").await;
    let by_arn = describe_arn(&kv, &arn).await;
    assert_eq!(by_name, by_arn, "describe by name and by ARN agree");
    assert_eq!(by_name.channel_arn.as_deref(), Some(arn.as_str()));
    let millis = assert_channel_identity(&by_name, "front-door", OPEN_ACCOUNT, REGION);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let then = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (then - 2_000..=now + 2_000).contains(&millis),
        "creation millis {millis} not between {then} and {now}"
    );
    assert_eq!(by_name.channel_type, Some(ChannelType::SingleMaster));
    assert_eq!(
        ttl_of(&by_name),
        Some(60),
        "MessageTtlSeconds defaults to 60"
    );
    assert_eq!(
        status_of(&by_name),
        "ACTIVE",
        "lifecycle delay 0: ACTIVE at once"
    );

    // ListSignalingChannels carries the same ChannelInfo.
    let listed = kv
        .list_signaling_channels()
        .send()
        .await
        .unwrap()
        .channel_info_list
        .unwrap();
    assert_eq!(listed, vec![by_name.clone()]);

    // Explicit type, TTL and tags.
    let arn2 = kv
        .create_signaling_channel()
        .channel_name("back_door.2")
        .channel_type(ChannelType::SingleMaster)
        .single_master_configuration(ttl(5))
        .tags(tag("env", "test"))
        .tags(tag("owner", "me@example.com"))
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let info2 = describe_arn(&kv, &arn2).await;
    assert_channel_identity(&info2, "back_door.2", OPEN_ACCOUNT, REGION);
    assert_eq!(ttl_of(&info2), Some(5));
    assert_ne!(
        info2.version, by_name.version,
        "versions are random per channel"
    );
    let t = list_tags(&kv, &arn2).await;
    assert_eq!(t.len(), 2);
    assert_eq!(t["env"], "test");
    assert_eq!(t["owner"], "me@example.com");
    assert!(
        list_tags(&kv, &arn).await.is_empty(),
        "no tags: an empty map"
    );

    // TTL bounds are inclusive (5..=120).
    create(&kv, "ttl-min").await;
    let arn120 = kv
        .create_signaling_channel()
        .channel_name("ttl-max")
        .single_master_configuration(ttl(120))
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    assert_eq!(ttl_of(&describe_arn(&kv, &arn120).await), Some(120));
    // A 256-character name is the longest allowed.
    let long = "n".repeat(256);
    let arn_long = create(&kv, &long).await;
    assert_channel_identity(
        &describe_arn(&kv, &arn_long).await,
        &long,
        OPEN_ACCOUNT,
        REGION,
    );
}

#[tokio::test]
async fn create_rejects_bad_input_duplicates_and_too_many_tags() {
    let s = Server::start(&[]);
    let kv = s.client();
    let arn = create(&kv, "taken").await;
    let original = describe_arn(&kv, &arn).await;

    let e = expect_error(
        kv.create_signaling_channel()
            .channel_name("taken")
            .single_master_configuration(ttl(30))
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    assert!(e.is_resource_in_use_exception());
    assert_eq!(
        describe_name(&kv, "taken").await,
        original,
        "a refused duplicate leaves the channel alone"
    );

    for bad_ttl in [4, 121, 0, -1] {
        let e = expect_error(
            kv.create_signaling_channel()
                .channel_name(format!("ttl-{}", bad_ttl + 10))
                .single_master_configuration(ttl(bad_ttl))
                .send()
                .await,
            "InvalidArgumentException",
            400,
        );
        assert!(e.is_invalid_argument_exception(), "TTL {bad_ttl}");
    }

    let too_long = "a".repeat(257);
    for bad in [
        too_long.as_str(),
        "",
        "has space",
        "slash/no",
        "colon:no",
        "ümlaut",
        "star*",
    ] {
        let e = expect_error(
            kv.create_signaling_channel().channel_name(bad).send().await,
            "InvalidArgumentException",
            400,
        );
        assert!(e.is_invalid_argument_exception(), "name {bad:?}");
    }

    // 51 tags: TagsPerResourceExceededLimitException, and nothing is created.
    let e = expect_error(
        kv.create_signaling_channel()
            .channel_name("tag-heavy")
            .set_tags(Some(tags(51, "k")))
            .send()
            .await,
        "TagsPerResourceExceededLimitException",
        400,
    );
    assert!(e.is_tags_per_resource_exceeded_limit_exception());
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("tag-heavy")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    // Exactly 50 is fine.
    let arn50 = kv
        .create_signaling_channel()
        .channel_name("tag-heavy")
        .set_tags(Some(tags(50, "k")))
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    assert_eq!(list_tags(&kv, &arn50).await.len(), 50);

    // Tag keys and values are validated (1..128 / 0..256 characters, docs/protocol.md §8.3).
    for (k, v) in [
        (String::new(), "v".to_owned()),
        ("k".repeat(129), "v".to_owned()),
        ("k".to_owned(), "v".repeat(257)),
    ] {
        expect_error(
            kv.create_signaling_channel()
                .channel_name("bad-tag")
                .tags(tag(&k, &v))
                .send()
                .await,
            "InvalidArgumentException",
            400,
        );
    }
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("bad-tag")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );

    let mut names = list_names(&kv).await;
    names.sort();
    assert_eq!(
        names,
        ["tag-heavy", "taken"],
        "refused creates leave nothing"
    );
}

#[tokio::test]
async fn describe_errors() {
    let s = Server::start(&[]);
    let kv = s.client();
    create(&kv, "exists").await;
    let e = expect_error(
        kv.describe_signaling_channel()
            .channel_name("missing")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    expect_error(
        kv.describe_signaling_channel()
            .channel_arn(ghost_arn())
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    // Neither ChannelName nor ChannelARN (docs/protocol.md §9.3).
    expect_error(
        kv.describe_signaling_channel().send().await,
        "InvalidArgumentException",
        400,
    );
    expect_error(
        kv.describe_signaling_channel()
            .channel_arn("not-an-arn")
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("bad name")
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );
}

#[tokio::test]
async fn update_rotates_version_and_refuses_stale_versions() {
    let s = Server::start(&[]);
    let kv = s.client();
    let arn = create(&kv, "upd").await;
    let v1_info = describe_arn(&kv, &arn).await;
    let v1 = v1_info.version.clone().unwrap();

    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v1)
        .single_master_configuration(ttl(30))
        .send()
        .await
        .unwrap();
    let v2_info = describe_arn(&kv, &arn).await;
    let v2 = v2_info.version.clone().unwrap();
    assert_version_format(&v2);
    assert_ne!(v1, v2, "Version rotates on every accepted update");
    assert_eq!(ttl_of(&v2_info), Some(30));
    assert_eq!(status_of(&v2_info), "ACTIVE");
    assert_eq!(v2_info.channel_arn, v1_info.channel_arn);
    assert_eq!(v2_info.creation_time, v1_info.creation_time);
    assert_eq!(v2_info.channel_name, v1_info.channel_name);
    assert_eq!(v2_info.channel_type, v1_info.channel_type);

    // Stale and made-up versions: VersionMismatchException, nothing changes.
    for stale in [v1.as_str(), "AAAAAAAAAAAAAAAAAAAA"] {
        let e = expect_error(
            kv.update_signaling_channel()
                .channel_arn(&arn)
                .current_version(stale)
                .single_master_configuration(ttl(90))
                .send()
                .await,
            "VersionMismatchException",
            400,
        );
        assert!(e.is_version_mismatch_exception());
        let now = describe_arn(&kv, &arn).await;
        assert_eq!(now.version.as_deref(), Some(v2.as_str()));
        assert_eq!(ttl_of(&now), Some(30));
    }

    // Out-of-range TTL with the right version: InvalidArgumentException, nothing changes.
    for bad in [4, 121] {
        let e = expect_error(
            kv.update_signaling_channel()
                .channel_arn(&arn)
                .current_version(&v2)
                .single_master_configuration(ttl(bad))
                .send()
                .await,
            "InvalidArgumentException",
            400,
        );
        assert!(e.is_invalid_argument_exception());
        let now = describe_arn(&kv, &arn).await;
        assert_eq!(now.version.as_deref(), Some(v2.as_str()), "TTL {bad}");
        assert_eq!(ttl_of(&now), Some(30), "TTL {bad}");
    }
    // A version that breaks the Version pattern is bad input.
    expect_error(
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version("not-a-version!")
            .single_master_configuration(ttl(40))
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );

    // Inclusive bounds, and every accepted update rotates again.
    let mut v = v2;
    let mut seen = vec![v1.clone(), v.clone()];
    for t in [5, 120] {
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v)
            .single_master_configuration(ttl(t))
            .send()
            .await
            .unwrap();
        let info = describe_arn(&kv, &arn).await;
        assert_eq!(ttl_of(&info), Some(t));
        v = info.version.unwrap();
        assert!(!seen.contains(&v), "version {v} reused");
        seen.push(v.clone());
    }

    let e = expect_error(
        kv.update_signaling_channel()
            .channel_arn(ghost_arn())
            .current_version(&v)
            .single_master_configuration(ttl(30))
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
}

#[tokio::test]
async fn delete_with_and_without_current_version() {
    let s = Server::start(&[]);
    let kv = s.client();
    let arn = create(&kv, "del-versioned").await;
    let v1 = version_of(&kv, &arn).await;
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v1)
        .single_master_configuration(ttl(20))
        .send()
        .await
        .unwrap();
    let v2 = version_of(&kv, &arn).await;

    let e = expect_error(
        kv.delete_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v1)
            .send()
            .await,
        "VersionMismatchException",
        400,
    );
    assert!(e.is_version_mismatch_exception());
    let still = describe_arn(&kv, &arn).await;
    assert_eq!(still.version.as_deref(), Some(v2.as_str()));
    assert_eq!(ttl_of(&still), Some(20));

    let out = kv
        .delete_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v2)
        .send()
        .await
        .unwrap();
    assert!(out.request_id().is_some());
    expect_error(
        kv.describe_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("del-versioned")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(list_names(&kv).await.is_empty());

    // Without CurrentVersion: deletes the latest.
    let arn = create(&kv, "del-latest").await;
    let v = version_of(&kv, &arn).await;
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v)
        .single_master_configuration(ttl(10))
        .send()
        .await
        .unwrap();
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let e = expect_error(
        kv.describe_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());

    // Deleting what is gone, or never was.
    let e = expect_error(
        kv.delete_signaling_channel().channel_arn(&arn).send().await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    expect_error(
        kv.delete_signaling_channel()
            .channel_arn(ghost_arn())
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        kv.delete_signaling_channel()
            .channel_arn("arn:nope")
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );

    // The name is free again; the new channel is a new resource with a new ARN.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let arn_again = create(&kv, "del-latest").await;
    assert_ne!(
        arn_again, arn,
        "a re-created channel gets a new creation millis"
    );
    let info = describe_arn(&kv, &arn_again).await;
    assert_eq!(status_of(&info), "ACTIVE");
    assert_eq!(
        ttl_of(&info),
        Some(60),
        "nothing inherited from the deleted channel"
    );
    assert!(list_tags(&kv, &arn_again).await.is_empty());
    expect_error(
        kv.describe_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
}
