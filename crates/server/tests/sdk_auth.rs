//! `--credentials FILE`: SigV4 verification and account isolation, seen through
//! aws-sdk-kinesisvideo (docs/protocol.md §4.2, §7.1; docs/behaviour.md "Errors").
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_kinesisvideo::Client;
use common::*;

const A_KEY: &str = "AKIDACCOUNTA";
const A_SECRET: &str = "secret-of-account-a";
const A_ACCOUNT: &str = "111111111111";
const B_KEY: &str = "AKIDACCOUNTB";
const B_SECRET: &str = "secret-of-account-b";
const B_ACCOUNT: &str = "222222222222";

fn credentials_file(dir: &TempDir) -> String {
    let path = dir.path().join("credentials.toml");
    std::fs::write(
        &path,
        format!(
            "[[credentials]]\n\
             access_key_id = \"{A_KEY}\"\n\
             secret_access_key = \"{A_SECRET}\"\n\
             account_id = \"{A_ACCOUNT}\"\n\
             \n\
             [[credentials]]\n\
             access_key_id = \"{B_KEY}\"\n\
             secret_access_key = \"{B_SECRET}\"\n\
             account_id = \"{B_ACCOUNT}\"\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

async fn names(kv: &Client) -> Vec<String> {
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

#[tokio::test]
async fn signatures_are_verified() {
    let dir = TempDir::new("auth-sig");
    let file = credentials_file(&dir);
    let s = Server::start(&["--credentials", &file]);
    let a = s.client_as(A_KEY, A_SECRET, REGION);
    let arn = create(&a, "signed").await;
    assert_channel_identity(&describe_arn(&a, &arn).await, "signed", A_ACCOUNT, REGION);

    // Wrong secret for a known key.
    let wrong = s.client_as(A_KEY, "not-the-secret", REGION);
    expect_error(
        wrong.list_signaling_channels().send().await,
        "InvalidSignatureException",
        403,
    );
    expect_error(
        wrong
            .create_signaling_channel()
            .channel_name("forged")
            .send()
            .await,
        "InvalidSignatureException",
        403,
    );
    expect_error(
        wrong
            .delete_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "InvalidSignatureException",
        403,
    );
    // B's secret with A's key is just as wrong.
    expect_error(
        s.client_as(A_KEY, B_SECRET, REGION)
            .describe_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "InvalidSignatureException",
        403,
    );
    // Unknown access key.
    let unknown = s.client_as("AKIDNOBODY", A_SECRET, REGION);
    expect_error(
        unknown.list_signaling_channels().send().await,
        "UnrecognizedClientException",
        403,
    );
    expect_error(
        unknown
            .describe_signaling_channel()
            .channel_arn(&arn)
            .send()
            .await,
        "UnrecognizedClientException",
        403,
    );

    // Clock skew beyond ±5 minutes (behaviour.md: message prefixes the C SDK looks for).
    let late = failure(
        s.client_with_skew(A_KEY, A_SECRET, -600)
            .list_signaling_channels()
            .send()
            .await,
    );
    assert_eq!(late.code.as_deref(), Some("InvalidSignatureException"));
    assert_eq!(late.status, Some(403));
    assert!(
        late.message
            .as_deref()
            .unwrap_or_default()
            .starts_with("Signature expired"),
        "{:?}",
        late.message
    );
    let early = failure(
        s.client_with_skew(A_KEY, A_SECRET, 600)
            .list_signaling_channels()
            .send()
            .await,
    );
    assert_eq!(early.code.as_deref(), Some("InvalidSignatureException"));
    assert_eq!(early.status, Some(403));
    assert!(
        early
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("Signature not yet current"),
        "{:?}",
        early.message
    );
    // Within the window is fine.
    for skew in [-240, 240] {
        let ok = s.client_with_skew(A_KEY, A_SECRET, skew);
        assert_eq!(names(&ok).await, ["signed"], "skew {skew}s");
    }

    // Nothing a refused request asked for happened.
    assert_eq!(names(&a).await, ["signed"]);
    assert_eq!(
        describe_arn(&a, &arn).await.channel_name.as_deref(),
        Some("signed")
    );
}

#[tokio::test]
async fn accounts_and_regions_are_isolated() {
    let dir = TempDir::new("auth-iso");
    let file = credentials_file(&dir);
    let s = Server::start(&["--credentials", &file, "--max-channels", "2"]);
    let a = s.client_as(A_KEY, A_SECRET, REGION);
    let b = s.client_as(B_KEY, B_SECRET, REGION);

    let a_arn = create(&a, "shared-name").await;
    let b_arn = create(&b, "shared-name").await;
    assert_ne!(a_arn, b_arn);
    let a_info = describe_arn(&a, &a_arn).await;
    let b_info = describe_arn(&b, &b_arn).await;
    assert_channel_identity(&a_info, "shared-name", A_ACCOUNT, REGION);
    assert_channel_identity(&b_info, "shared-name", B_ACCOUNT, REGION);
    // By name, each account sees its own.
    assert_eq!(describe_name(&a, "shared-name").await, a_info);
    assert_eq!(describe_name(&b, "shared-name").await, b_info);

    let a_only = create(&a, "a-only").await;
    a.tag_resource()
        .resource_arn(&a_only)
        .tags(tag("owner", "a"))
        .send()
        .await
        .unwrap();
    let a_version = version_of(&a, &a_only).await;

    // B cannot see or touch A's channel, by ARN or by name.
    let e = expect_error(
        b.describe_signaling_channel()
            .channel_arn(&a_only)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert!(e.is_resource_not_found_exception());
    expect_error(
        b.describe_signaling_channel()
            .channel_name("a-only")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        b.update_signaling_channel()
            .channel_arn(&a_only)
            .current_version(&a_version)
            .single_master_configuration(ttl(10))
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        b.delete_signaling_channel()
            .channel_arn(&a_only)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        b.delete_signaling_channel()
            .channel_arn(&a_only)
            .current_version(&a_version)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        b.tag_resource()
            .resource_arn(&a_only)
            .tags(tag("owner", "b"))
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        b.untag_resource()
            .resource_arn(&a_only)
            .tag_key_list("owner")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        b.list_tags_for_resource()
            .resource_arn(&a_only)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        b.get_signaling_channel_endpoint()
            .channel_arn(&a_only)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    // Lists hold only the caller's channels.
    let mut a_names = names(&a).await;
    a_names.sort();
    assert_eq!(a_names, ["a-only", "shared-name"]);
    assert_eq!(names(&b).await, ["shared-name"]);
    // A's channel is untouched.
    let after = describe_arn(&a, &a_only).await;
    assert_eq!(after.version.as_deref(), Some(a_version.as_str()));
    assert_eq!(ttl_of(&after), Some(60));
    let t = a
        .list_tags_for_resource()
        .resource_arn(&a_only)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t["owner"], "a");

    // The channel limit is per account and region: A is full, B and A-in-another-region aren't.
    expect_error(
        a.create_signaling_channel()
            .channel_name("a-third")
            .send()
            .await,
        "AccountChannelLimitExceededException",
        400,
    );
    create(&b, "b-second").await;

    // The region comes from the SigV4 scope.
    let a_eu = s.client_as(A_KEY, A_SECRET, "eu-west-1");
    let eu_arn = create(&a_eu, "a-only").await;
    assert_channel_identity(
        &describe_arn(&a_eu, &eu_arn).await,
        "a-only",
        A_ACCOUNT,
        "eu-west-1",
    );
    assert_eq!(names(&a_eu).await, ["a-only"]);
    expect_error(
        a_eu.describe_signaling_channel()
            .channel_arn(&a_only)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    expect_error(
        a.describe_signaling_channel()
            .channel_arn(&eu_arn)
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    assert_eq!(
        describe_name(&a, "a-only").await.channel_arn.as_deref(),
        Some(a_only.as_str()),
        "the us-east-1 channel by name is still A's us-east-1 channel"
    );

    // Each owner can still delete its own.
    a.delete_signaling_channel()
        .channel_arn(&a_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe_arn(&b, &b_arn).await,
        b_info,
        "deleting A's channel leaves B's same-named channel"
    );
}
