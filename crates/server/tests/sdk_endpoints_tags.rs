//! GetSignalingChannelEndpoint and the tag operations through aws-sdk-kinesisvideo.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use aws_sdk_kinesisvideo::types::{
    ChannelProtocol, ChannelRole, SingleMasterChannelEndpointConfiguration,
};
use aws_sdk_kinesisvideo::Client;
use common::*;
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
