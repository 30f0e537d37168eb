//! The control plane driven by the official aws-sdk-kinesisvideo against the real binary.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_kinesisvideo::error::ProvideErrorMetadata;
use aws_sdk_kinesisvideo::types::{
    ChannelNameCondition, ChannelProtocol, ChannelRole, ComparisonOperator,
    SingleMasterChannelEndpointConfiguration, SingleMasterConfiguration, Tag,
};
use aws_sdk_kinesisvideo::Client;
use support::Server;

fn code<E: ProvideErrorMetadata, R>(e: aws_sdk_kinesisvideo::error::SdkError<E, R>) -> String {
    match e.as_service_error() {
        Some(se) => se.code().unwrap_or("?").to_owned(),
        None => format!("not a service error: {}", e.code().unwrap_or("?")),
    }
}

fn ttl(n: i32) -> SingleMasterConfiguration {
    SingleMasterConfiguration::builder()
        .message_ttl_seconds(n)
        .build()
}

async fn describe(kv: &Client, arn: &str) -> aws_sdk_kinesisvideo::types::ChannelInfo {
    kv.describe_signaling_channel()
        .channel_arn(arn)
        .send()
        .await
        .unwrap()
        .channel_info
        .unwrap()
}

#[tokio::test]
async fn create_describe_update_delete_with_aws_identity_formats() {
    let s = Server::start(&[]);
    let kv = s.kv();
    let arn = kv
        .create_signaling_channel()
        .channel_name("front-door")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let info = kv
        .describe_signaling_channel()
        .channel_name("front-door")
        .send()
        .await
        .unwrap()
        .channel_info
        .unwrap();
    assert_eq!(info.channel_arn.as_deref(), Some(arn.as_str()));
    let prefix = "arn:aws:kinesisvideo:us-east-1:000000000000:channel/front-door/";
    let millis = arn.strip_prefix(prefix).unwrap();
    assert_eq!(millis.len(), 13);
    let created = info.creation_time.unwrap();
    assert_eq!(
        millis.parse::<i64>().unwrap(),
        created.secs() * 1000 + i64::from(created.subsec_nanos() / 1_000_000)
    );
    assert_eq!(info.channel_type.unwrap().as_str(), "SINGLE_MASTER");
    assert_eq!(info.channel_status.unwrap().as_str(), "ACTIVE");
    assert_eq!(
        info.single_master_configuration
            .unwrap()
            .message_ttl_seconds,
        Some(60)
    );
    let v1 = info.version.unwrap();
    assert_eq!(v1.len(), 20);
    assert!(v1.chars().all(|c| c.is_ascii_alphanumeric()));

    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v1)
        .single_master_configuration(ttl(30))
        .send()
        .await
        .unwrap();
    let after = describe(&kv, &arn).await;
    let v2 = after.version.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        after
            .single_master_configuration
            .unwrap()
            .message_ttl_seconds,
        Some(30)
    );

    // Stale version: VersionMismatchException and nothing changes.
    let e = kv
        .update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v1)
        .single_master_configuration(ttl(90))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "VersionMismatchException");
    let same = describe(&kv, &arn).await;
    assert_eq!(same.version.as_deref(), Some(v2.as_str()));
    assert_eq!(
        same.single_master_configuration
            .unwrap()
            .message_ttl_seconds,
        Some(30)
    );

    for bad in [4, 121] {
        let e = kv
            .update_signaling_channel()
            .channel_arn(&arn)
            .current_version(&v2)
            .single_master_configuration(ttl(bad))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(e), "InvalidArgumentException");
    }

    // Delete with a wrong version fails; with the right one (and without one) it works.
    let e = kv
        .delete_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "VersionMismatchException");
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v2)
        .send()
        .await
        .unwrap();
    let e = kv
        .describe_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceNotFoundException");
    let again = s.channel("front-door", 60).await;
    kv.delete_signaling_channel()
        .channel_arn(&again)
        .send()
        .await
        .unwrap();
    let e = kv
        .update_signaling_channel()
        .channel_arn(&again)
        .current_version(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceNotFoundException");
}

#[tokio::test]
async fn creation_errors_and_limits() {
    let s = Server::start(&["--max-channels", "3"]);
    let kv = s.kv();
    s.channel("one", 60).await;
    let e = kv
        .create_signaling_channel()
        .channel_name("one")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceInUseException");
    for bad in ["a".repeat(257), "has space".into(), "slash/no".into()] {
        let e = kv
            .create_signaling_channel()
            .channel_name(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(e), "InvalidArgumentException");
    }
    let tags: Vec<Tag> = (0..51)
        .map(|i| {
            Tag::builder()
                .key(format!("k{i}"))
                .value("v")
                .build()
                .unwrap()
        })
        .collect();
    let e = kv
        .create_signaling_channel()
        .channel_name("tagged")
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "TagsPerResourceExceededLimitException");
    s.channel("two", 60).await;
    s.channel("three", 60).await;
    let e = kv
        .create_signaling_channel()
        .channel_name("four")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "AccountChannelLimitExceededException");
}

#[tokio::test]
async fn concurrent_updates_with_one_version_have_exactly_one_winner() {
    let s = Server::start(&["--data-dir", &temp("race"), "--store", "sqlite"]);
    let kv = s.kv();
    let arn = s.channel("race", 60).await;
    let v = describe(&kv, &arn).await.version.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (kv, arn, v) = (kv.clone(), arn.clone(), v.clone());
        tasks.push(tokio::spawn(async move {
            kv.update_signaling_channel()
                .channel_arn(arn)
                .current_version(v)
                .single_master_configuration(ttl(10 + i))
                .send()
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(code(e), "VersionMismatchException"),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn pagination_over_1200_channels_is_exact_under_churn() {
    let s = Server::start(&[]);
    let kv = s.kv();
    let mut tasks = Vec::new();
    for chunk in 0..32 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            for i in (chunk..1200).step_by(32) {
                kv.create_signaling_channel()
                    .channel_name(format!("page-{i:04}"))
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all: Vec<String> = (0..1200).map(|i| format!("page-{i:04}")).collect();
    for size in [1, 7, 500, 10_000] {
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let out = kv
                .list_signaling_channels()
                .max_results(size)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            let page = out.channel_info_list.unwrap_or_default();
            assert!(page.len() <= size as usize);
            seen.extend(page.into_iter().map(|c| c.channel_name.unwrap()));
            token = out.next_token;
            if token.is_none() {
                break;
            }
            if size == 1 && seen.len() > 60 {
                // Page size 1 over 1200 channels is slow in debug builds; the rest is covered
                // by the other sizes.
                break;
            }
        }
        if size == 1 {
            assert_eq!(seen, all[..seen.len()]);
        } else {
            assert_eq!(seen, all, "page size {size}");
        }
    }
    // Churn between pages: every channel that exists throughout is seen exactly once.
    let mut seen = Vec::new();
    let mut token = None;
    let mut round = 0;
    let mut deleted = BTreeSet::new();
    loop {
        let out = kv
            .list_signaling_channels()
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        seen.extend(
            out.channel_info_list
                .unwrap()
                .into_iter()
                .map(|c| c.channel_name.unwrap()),
        );
        round += 1;
        let victim = format!("page-{:04}", 1199 - round * 7);
        if let Ok(d) = kv
            .describe_signaling_channel()
            .channel_name(&victim)
            .send()
            .await
        {
            let arn = d.channel_info.unwrap().channel_arn.unwrap();
            kv.delete_signaling_channel()
                .channel_arn(arn)
                .send()
                .await
                .unwrap();
            deleted.insert(victim);
        }
        kv.create_signaling_channel()
            .channel_name(format!("page-{:04}-new{round}", round * 37 % 1200))
            .send()
            .await
            .unwrap();
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    for name in &all {
        if !deleted.contains(name) {
            assert!(
                unique.contains(name),
                "{name} existed throughout but was not listed"
            );
        }
    }
    // BEGINS_WITH and the SDK's paginator.
    let cond = ChannelNameCondition::builder()
        .comparison_operator(ComparisonOperator::BeginsWith)
        .comparison_value("page-011")
        .build();
    let pages: Vec<_> = kv
        .list_signaling_channels()
        .channel_name_condition(cond)
        .max_results(3)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let names: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.channel_info_list.unwrap_or_default())
        .map(|c| c.channel_name.unwrap())
        .collect();
    assert!(
        names.len() >= 10 && names.iter().all(|n| n.starts_with("page-011")),
        "{names:?}"
    );
}

#[tokio::test]
async fn endpoints_point_at_this_server_for_both_roles() {
    let s = Server::start(&[]);
    let kv = s.kv();
    let arn = s.channel("ep", 60).await;
    for role in [ChannelRole::Master, ChannelRole::Viewer] {
        let cfg = SingleMasterChannelEndpointConfiguration::builder()
            .protocols(ChannelProtocol::Wss)
            .protocols(ChannelProtocol::Https)
            .role(role)
            .build();
        let out = kv
            .get_signaling_channel_endpoint()
            .channel_arn(&arn)
            .single_master_channel_endpoint_configuration(cfg)
            .send()
            .await
            .unwrap();
        let list = out.resource_endpoint_list.unwrap();
        assert_eq!(list.len(), 2);
        for item in list {
            let url = item.resource_endpoint.unwrap();
            match item.protocol.unwrap() {
                ChannelProtocol::Wss => assert_eq!(url, format!("ws://127.0.0.1:{}", s.port)),
                ChannelProtocol::Https => assert_eq!(url, format!("http://127.0.0.1:{}", s.port)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let cfg = SingleMasterChannelEndpointConfiguration::builder()
        .protocols(ChannelProtocol::Webrtc)
        .role(ChannelRole::Master)
        .build();
    let e = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&arn)
        .single_master_channel_endpoint_configuration(cfg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidArgumentException");
}

#[tokio::test]
async fn tags_are_merged_replaced_removed_and_capped() {
    let s = Server::start(&[]);
    let kv = s.kv();
    let arn = s.channel("tags", 60).await;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    kv.tag_resource()
        .resource_arn(&arn)
        .tags(tag("a", "1"))
        .tags(tag("b", "2"))
        .send()
        .await
        .unwrap();
    kv.tag_resource()
        .resource_arn(&arn)
        .tags(tag("a", "3"))
        .send()
        .await
        .unwrap();
    kv.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("b")
        .tag_key_list("never-there")
        .send()
        .await
        .unwrap();
    let tags = kv
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags["a"], "3");
    let many: Vec<Tag> = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
    kv.tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(many))
        .send()
        .await
        .unwrap();
    let e = kv
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("fifty-one", "v"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "TagsPerResourceExceededLimitException");
    let e = kv
        .list_tags_for_resource()
        .resource_arn(arn.replace("/tags/", "/nope/"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceNotFoundException");
}

#[tokio::test]
async fn lifecycle_with_a_delay_is_observable() {
    let s = Server::start(&["--lifecycle-delay", "1s"]);
    let kv = s.kv();
    let arn = s.channel("slow", 60).await;
    let info = describe(&kv, &arn).await;
    assert_eq!(info.channel_status.unwrap().as_str(), "CREATING");
    let v = info.version.unwrap();
    let e = kv
        .update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceInUseException");
    let e = kv
        .delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceInUseException");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        describe(&kv, &arn).await.channel_status.unwrap().as_str(),
        "ACTIVE"
    );
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v)
        .single_master_configuration(ttl(10))
        .send()
        .await
        .unwrap();
    let updating = describe(&kv, &arn).await;
    assert_eq!(updating.channel_status.unwrap().as_str(), "UPDATING");
    assert_eq!(
        updating
            .single_master_configuration
            .unwrap()
            .message_ttl_seconds,
        Some(10)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kv, &arn).await.channel_status.unwrap().as_str(),
        "DELETING"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = kv
        .describe_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceNotFoundException");
}

fn temp(name: &str) -> String {
    let d = std::env::temp_dir().join(format!(
        "kvs-sdk-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    d.to_string_lossy().into_owned()
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = temp("persist");
    let (arn, version) = {
        let s = Server::start(&["--store", "sqlite", "--data-dir", &dir]);
        let kv = s.kv();
        let arn = s.channel("durable", 60).await;
        let v = describe(&kv, &arn).await.version.unwrap();
        kv.update_signaling_channel()
            .channel_arn(&arn)
            .current_version(v)
            .single_master_configuration(ttl(42))
            .send()
            .await
            .unwrap();
        kv.tag_resource()
            .resource_arn(&arn)
            .tags(Tag::builder().key("k").value("v").build().unwrap())
            .send()
            .await
            .unwrap();
        let version = describe(&kv, &arn).await.version.unwrap();
        std::process::Command::new("kill")
            .args(["-9", &s.pid().to_string()])
            .status()
            .unwrap();
        (arn, version)
    };
    let s = Server::start(&["--store", "sqlite", "--data-dir", &dir]);
    let kv = s.kv();
    let info = describe(&kv, &arn).await;
    assert_eq!(info.version.as_deref(), Some(version.as_str()));
    assert_eq!(
        info.single_master_configuration
            .unwrap()
            .message_ttl_seconds,
        Some(42)
    );
    let tags = kv
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags.unwrap()["k"], "v");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn credentials_mode_verifies_signatures_and_isolates_accounts() {
    let dir = temp("creds");
    std::fs::create_dir_all(&dir).unwrap();
    let file = format!("{dir}/credentials.toml");
    std::fs::write(
        &file,
        "[[credentials]]\naccess_key_id = \"AKIDA\"\nsecret_access_key = \"secret-a\"\naccount_id = \"111111111111\"\n\
         [[credentials]]\naccess_key_id = \"AKIDB\"\nsecret_access_key = \"secret-b\"\naccount_id = \"222222222222\"\n",
    )
    .unwrap();
    let s = Server::start(&["--credentials", &file]);
    let a = s.kv_as("AKIDA", "secret-a", "us-east-1");
    let b = s.kv_as("AKIDB", "secret-b", "us-east-1");
    let arn = a
        .create_signaling_channel()
        .channel_name("mine")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    assert!(arn.contains(":111111111111:channel/mine/"));
    // Region comes from the signature's scope.
    let eu = s.kv_as("AKIDA", "secret-a", "eu-west-1");
    let eu_arn = eu
        .create_signaling_channel()
        .channel_name("mine")
        .send()
        .await
        .unwrap();
    assert!(eu_arn
        .channel_arn
        .unwrap()
        .starts_with("arn:aws:kinesisvideo:eu-west-1:111111111111:"));

    let v = describe(&a, &arn).await.version.unwrap();
    assert_eq!(
        code(
            b.describe_signaling_channel()
                .channel_arn(&arn)
                .send()
                .await
                .unwrap_err()
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(
            b.describe_signaling_channel()
                .channel_name("mine")
                .send()
                .await
                .unwrap_err()
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(
            b.update_signaling_channel()
                .channel_arn(&arn)
                .current_version(&v)
                .send()
                .await
                .unwrap_err()
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(
            b.delete_signaling_channel()
                .channel_arn(&arn)
                .send()
                .await
                .unwrap_err()
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(
            b.tag_resource()
                .resource_arn(&arn)
                .tags(Tag::builder().key("x").value("y").build().unwrap())
                .send()
                .await
                .unwrap_err()
        ),
        "ResourceNotFoundException"
    );
    let listed = b.list_signaling_channels().send().await.unwrap();
    assert!(listed.channel_info_list.unwrap_or_default().is_empty());
    // B can create its own channel with the same name.
    b.create_signaling_channel()
        .channel_name("mine")
        .send()
        .await
        .unwrap();

    let wrong = s.kv_as("AKIDA", "not-secret-a", "us-east-1");
    assert_eq!(
        code(wrong.list_signaling_channels().send().await.unwrap_err()),
        "InvalidSignatureException"
    );
    let unknown = s.kv_as("AKIDZ", "whatever", "us-east-1");
    assert_eq!(
        code(unknown.list_signaling_channels().send().await.unwrap_err()),
        "UnrecognizedClientException"
    );
    // Nothing changed for A.
    assert_eq!(
        describe(&a, &arn).await.version.as_deref(),
        Some(v.as_str())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
