//! Every signaling-channel control-plane operation and error path, driven by the official
//! aws-sdk-kinesisvideo against the real binary (kvs-spec.md §2, §4, §9; docs/behaviour.md).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_kinesisvideo::operation::RequestId;
use aws_sdk_kinesisvideo::types::{
    ChannelProtocol, ChannelRole, ChannelType, SingleMasterChannelEndpointConfiguration,
};
use aws_sdk_kinesisvideo::Client;
use common::*;

async fn list_tags(kv: &Client, arn: &str) -> HashMap<String, String> {
    kv.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags
        .expect("ListTagsForResource must return Tags ({} when none)")
}

async fn list_names(kv: &Client) -> Vec<String> {
    kv.list_signaling_channels()
        .send()
        .await
        .unwrap()
        .channel_info_list
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.channel_name.unwrap())
        .collect()
}

/// An ARN of the right shape that names no channel.
fn ghost_arn() -> String {
    format!("arn:aws:kinesisvideo:{REGION}:{OPEN_ACCOUNT}:channel/ghost/1712136149494")
}

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

    // Tag keys and values are validated (1..128 / 0..256 characters, kvs-spec.md §8.3).
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
    // Neither ChannelName nor ChannelARN (kvs-spec.md §9.3).
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

fn endpoint_config(
    role: ChannelRole,
    protocols: &[ChannelProtocol],
) -> SingleMasterChannelEndpointConfiguration {
    SingleMasterChannelEndpointConfiguration::builder()
        .set_protocols(Some(protocols.to_vec()))
        .role(role)
        .build()
}

async fn endpoints(
    kv: &Client,
    arn: &str,
    cfg: Option<SingleMasterChannelEndpointConfiguration>,
) -> Vec<(ChannelProtocol, String)> {
    kv.get_signaling_channel_endpoint()
        .channel_arn(arn)
        .set_single_master_channel_endpoint_configuration(cfg)
        .send()
        .await
        .unwrap()
        .resource_endpoint_list
        .unwrap()
        .into_iter()
        .map(|e| (e.protocol.unwrap(), e.resource_endpoint.unwrap()))
        .collect()
}

#[tokio::test]
async fn get_signaling_channel_endpoint_for_master_and_viewer() {
    let s = Server::start(&[]);
    let kv = s.client();
    let arn = create(&kv, "ep").await;
    let wss = format!("ws://127.0.0.1:{}", s.port);
    let https = format!("http://127.0.0.1:{}", s.port);
    let both = [ChannelProtocol::Wss, ChannelProtocol::Https];
    for role in [ChannelRole::Master, ChannelRole::Viewer] {
        let mut got = endpoints(&kv, &arn, Some(endpoint_config(role.clone(), &both))).await;
        got.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        assert_eq!(
            got,
            vec![
                (ChannelProtocol::Https, https.clone()),
                (ChannelProtocol::Wss, wss.clone())
            ],
            "role {role:?}"
        );
    }
    // One protocol asked, one answered; duplicates answered once.
    assert_eq!(
        endpoints(
            &kv,
            &arn,
            Some(endpoint_config(
                ChannelRole::Viewer,
                &[ChannelProtocol::Https]
            ))
        )
        .await,
        vec![(ChannelProtocol::Https, https.clone())]
    );
    assert_eq!(
        endpoints(
            &kv,
            &arn,
            Some(endpoint_config(
                ChannelRole::Master,
                &[ChannelProtocol::Wss, ChannelProtocol::Wss]
            ))
        )
        .await,
        vec![(ChannelProtocol::Wss, wss.clone())]
    );
    // No configuration: WSS and HTTPS as MASTER (behaviour.md).
    let mut got = endpoints(&kv, &arn, None).await;
    got.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(
        got,
        vec![(ChannelProtocol::Https, https), (ChannelProtocol::Wss, wss)]
    );

    // WEBRTC without media storage.
    let e = expect_error(
        kv.get_signaling_channel_endpoint()
            .channel_arn(&arn)
            .single_master_channel_endpoint_configuration(endpoint_config(
                ChannelRole::Master,
                &[ChannelProtocol::Webrtc],
            ))
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );
    assert!(e.is_invalid_argument_exception());
    let e = expect_error(
        kv.get_signaling_channel_endpoint()
            .channel_arn(ghost_arn())
            .single_master_channel_endpoint_configuration(endpoint_config(
                ChannelRole::Master,
                &both,
            ))
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    expect_error(
        kv.get_signaling_channel_endpoint()
            .channel_arn("channel/ep")
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );
}

#[tokio::test]
async fn tag_untag_list_tags_and_the_50_tag_cap() {
    let s = Server::start(&[]);
    let kv = s.client();
    let arn = create(&kv, "tags").await;
    let version = version_of(&kv, &arn).await;
    assert!(list_tags(&kv, &arn).await.is_empty());

    kv.tag_resource()
        .resource_arn(&arn)
        .tags(tag("a", "1"))
        .tags(tag("b", "2"))
        .send()
        .await
        .unwrap();
    // An existing key gets its value replaced.
    kv.tag_resource()
        .resource_arn(&arn)
        .tags(tag("a", "3"))
        .tags(tag("c", ""))
        .send()
        .await
        .unwrap();
    let t = list_tags(&kv, &arn).await;
    assert_eq!(
        t,
        HashMap::from([
            ("a".to_owned(), "3".to_owned()),
            ("b".to_owned(), "2".to_owned()),
            ("c".to_owned(), String::new()),
        ])
    );
    // Unknown keys are ignored by UntagResource.
    kv.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("b")
        .tag_key_list("never-there")
        .send()
        .await
        .unwrap();
    let t = list_tags(&kv, &arn).await;
    assert_eq!(
        t,
        HashMap::from([
            ("a".to_owned(), "3".to_owned()),
            ("c".to_owned(), String::new())
        ])
    );
    kv.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("a")
        .tag_key_list("c")
        .send()
        .await
        .unwrap();
    assert!(list_tags(&kv, &arn).await.is_empty());

    // Accumulating past 50.
    kv.tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(tags(30, "x")))
        .send()
        .await
        .unwrap();
    kv.tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(tags(20, "y")))
        .send()
        .await
        .unwrap();
    let full = list_tags(&kv, &arn).await;
    assert_eq!(full.len(), 50);
    let e = expect_error(
        kv.tag_resource()
            .resource_arn(&arn)
            .tags(tag("one-too-many", "v"))
            .send()
            .await,
        "TagsPerResourceExceededLimitException",
        400,
    );
    assert!(e.is_tags_per_resource_exceeded_limit_exception());
    // A mix of replacements and one new key also goes past 50, and is refused as a whole.
    expect_error(
        kv.tag_resource()
            .resource_arn(&arn)
            .tags(tag("x0", "changed"))
            .tags(tag("another-new", "v"))
            .send()
            .await,
        "TagsPerResourceExceededLimitException",
        400,
    );
    assert_eq!(
        list_tags(&kv, &arn).await,
        full,
        "refused tagging changes nothing"
    );
    // Replacing at 50 keeps 50: fine.
    kv.tag_resource()
        .resource_arn(&arn)
        .tags(tag("x0", "replaced"))
        .send()
        .await
        .unwrap();
    assert_eq!(list_tags(&kv, &arn).await["x0"], "replaced");
    // Make room, then add.
    kv.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("y19")
        .send()
        .await
        .unwrap();
    kv.tag_resource()
        .resource_arn(&arn)
        .tags(tag("newcomer", "v"))
        .send()
        .await
        .unwrap();
    let t = list_tags(&kv, &arn).await;
    assert_eq!(t.len(), 50);
    assert!(t.contains_key("newcomer") && !t.contains_key("y19"));

    // Invalid tags.
    for (k, v) in [
        (String::new(), "v".to_owned()),
        ("k".repeat(129), "v".to_owned()),
        ("k".to_owned(), "v".repeat(257)),
    ] {
        expect_error(
            kv.tag_resource()
                .resource_arn(&arn)
                .tags(tag(&k, &v))
                .send()
                .await,
            "InvalidArgumentException",
            400,
        );
    }

    // Unknown and malformed resources.
    let ghost = ghost_arn();
    let e = expect_error(
        kv.tag_resource()
            .resource_arn(&ghost)
            .tags(tag("k", "v"))
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    let e = expect_error(
        kv.untag_resource()
            .resource_arn(&ghost)
            .tag_key_list("k")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    let e = expect_error(
        kv.list_tags_for_resource()
            .resource_arn(&ghost)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    expect_error(
        kv.list_tags_for_resource()
            .resource_arn("garbage")
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );

    // Tags are not part of the channel's Version.
    assert_eq!(version_of(&kv, &arn).await, version);

    // Tags go with the channel.
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    expect_error(
        kv.list_tags_for_resource().resource_arn(&arn).send().await,
        "ResourceNotFoundException",
        404,
    );
}

#[tokio::test]
async fn account_channel_limit() {
    let s = Server::start(&["--max-channels", "3"]);
    let kv = s.client();
    // Refused creates do not count.
    expect_error(
        kv.create_signaling_channel()
            .channel_name("bad name")
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );
    let one = create(&kv, "one").await;
    create(&kv, "two").await;
    create(&kv, "three").await;
    let e = expect_error(
        kv.create_signaling_channel()
            .channel_name("four")
            .send()
            .await,
        "AccountChannelLimitExceededException",
        400,
    );
    assert!(e.is_account_channel_limit_exceeded_exception());
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("four")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    // Deleting frees a slot.
    kv.delete_signaling_channel()
        .channel_arn(&one)
        .send()
        .await
        .unwrap();
    create(&kv, "four").await;
    expect_error(
        kv.create_signaling_channel()
            .channel_name("five")
            .send()
            .await,
        "AccountChannelLimitExceededException",
        400,
    );
    let mut names = list_names(&kv).await;
    names.sort();
    assert_eq!(names, ["four", "three", "two"]);
}

async fn sixteen_updates_one_version(s: &Server) {
    let kv = s.client();
    let arn = create(&kv, "race").await;
    let v = version_of(&kv, &arn).await;
    let results = run_concurrently(16, 16, |i| {
        let (kv, arn, v) = (kv.clone(), arn.clone(), v.clone());
        async move {
            let ttl_secs = 10 + i as i32;
            let r = kv
                .update_signaling_channel()
                .channel_arn(arn)
                .current_version(v)
                .single_master_configuration(ttl(ttl_secs))
                .send()
                .await;
            match r {
                Ok(_) => Ok(ttl_secs),
                Err(e) => Err(error_code(Err::<(), _>(e))),
            }
        }
    })
    .await;
    let winners: Vec<i32> = results.iter().filter_map(|r| r.clone().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {results:?}");
    for r in &results {
        if let Err(code) = r {
            assert_eq!(code, "VersionMismatchException", "{results:?}");
        }
    }
    let info = describe_arn(&kv, &arn).await;
    assert_ne!(info.version.as_deref(), Some(v.as_str()));
    assert_eq!(
        ttl_of(&info),
        Some(winners[0]),
        "the winner's TTL is stored"
    );

    // The same for deletes: one succeeds, the others find nothing (or a stale version).
    let v = info.version.unwrap();
    let results = run_concurrently(16, 16, |_| {
        let (kv, arn, v) = (kv.clone(), arn.clone(), v.clone());
        async move {
            kv.delete_signaling_channel()
                .channel_arn(arn)
                .current_version(v)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| error_code(Err::<(), _>(e)))
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in &results {
        if let Err(code) = r {
            assert!(
                code == "ResourceNotFoundException" || code == "VersionMismatchException",
                "{results:?}"
            );
        }
    }
}

#[tokio::test]
async fn concurrent_updates_with_one_version_have_one_winner_memory() {
    let s = Server::start(&[]);
    sixteen_updates_one_version(&s).await;
}

#[tokio::test]
async fn concurrent_updates_with_one_version_have_one_winner_sqlite() {
    let dir = TempDir::new("race");
    let s = Server::start(&["--store", "sqlite", "--data-dir", dir.str()]);
    sixteen_updates_one_version(&s).await;
}

#[tokio::test]
async fn concurrent_creates_of_one_name_have_one_winner() {
    let s = Server::start(&[]);
    let kv = s.client();
    let results = run_concurrently(16, 16, |_| {
        let kv = kv.clone();
        async move {
            kv.create_signaling_channel()
                .channel_name("contested")
                .send()
                .await
                .map(|o| o.channel_arn.unwrap())
                .map_err(|e| error_code(Err::<(), _>(e)))
        }
    })
    .await;
    let arns: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(arns.len(), 1, "{results:?}");
    for r in &results {
        if let Err(code) = r {
            assert_eq!(code, "ResourceInUseException");
        }
    }
    assert_eq!(list_names(&kv).await, ["contested"]);
    assert_eq!(
        describe_name(&kv, "contested").await.channel_arn.as_ref(),
        Some(arns[0])
    );
}

/// Sleeps until `start + d`.
async fn sleep_until(start: Instant, d: Duration) {
    tokio::time::sleep_until((start + d).into()).await;
}

#[tokio::test]
async fn lifecycle_with_a_one_second_delay() {
    let s = Server::start(&["--lifecycle-delay", "1s"]);
    let kv = s.client();
    let settle = Duration::from_millis(1200);

    // CREATING right after create.
    let created_at = Instant::now();
    let arn = create(&kv, "slow").await;
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&info), "CREATING");
    let v = info.version.unwrap();
    let e = expect_error(
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v)
            .single_master_configuration(ttl(10))
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    assert!(e.is_resource_in_use_exception());
    let e = expect_error(
        kv.delete_signaling_channel().channel_arn(&arn).send().await,
        "ResourceInUseException",
        400,
    );
    assert!(e.is_resource_in_use_exception());
    expect_error(
        kv.get_signaling_channel_endpoint()
            .channel_arn(&arn)
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    let still = describe_arn(&kv, &arn).await;
    assert_eq!(still.version.as_deref(), Some(v.as_str()));
    assert_eq!(ttl_of(&still), Some(60));
    assert!(
        created_at.elapsed() < Duration::from_millis(900),
        "the CREATING checks took too long to be meaningful"
    );

    // ACTIVE after the delay.
    sleep_until(created_at, settle).await;
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&info), "ACTIVE");
    assert_eq!(info.version.as_deref(), Some(v.as_str()));

    // UPDATING, with the new Version and TTL at once.
    let updated_at = Instant::now();
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v)
        .single_master_configuration(ttl(10))
        .send()
        .await
        .unwrap();
    let updating = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&updating), "UPDATING");
    assert_eq!(ttl_of(&updating), Some(10));
    let v2 = updating.version.unwrap();
    assert_ne!(v2, v);
    expect_error(
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v2)
            .single_master_configuration(ttl(20))
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
    sleep_until(updated_at, settle).await;
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&info), "ACTIVE");
    assert_eq!(info.version.as_deref(), Some(v2.as_str()));
    assert_eq!(ttl_of(&info), Some(10));

    // DELETING, still holding its name, then gone.
    let deleted_at = Instant::now();
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(&describe_arn(&kv, &arn).await), "DELETING");
    assert_eq!(status_of(&describe_name(&kv, "slow").await), "DELETING");
    expect_error(
        kv.delete_signaling_channel().channel_arn(&arn).send().await,
        "ResourceInUseException",
        400,
    );
    expect_error(
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v2)
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    expect_error(
        kv.create_signaling_channel()
            .channel_name("slow")
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    sleep_until(deleted_at, settle).await;
    let e = expect_error(
        kv.describe_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("slow")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    // The name is free once the channel is gone; the new one starts CREATING.
    let again = create(&kv, "slow").await;
    assert_eq!(status_of(&describe_arn(&kv, &again).await), "CREATING");
}
