//! Streams (issue 15) through aws-sdk-kinesisvideo: every validation refusal of the stream
//! operations, with AWS's exact code, status and message (the flows and the media-storage errors
//! are in sdk_streams.rs).
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_kinesisvideo::types::ApiName;
use aws_sdk_kinesisvideo::Client;
use common::*;

async fn create_stream(kv: &Client, name: &str, hours: i32) -> String {
    kv.create_stream()
        .stream_name(name)
        .data_retention_in_hours(hours)
        .send()
        .await
        .unwrap()
        .stream_arn
        .unwrap()
}

#[tokio::test]
async fn validation_errors_read_like_aws() {
    let s = Server::start(&[]);
    let kv = s.client();
    let arn = create_stream(&kv, "valid", 1).await;
    let cases: Vec<(String, &str)> = vec![
        (
            expect_error(
                kv.create_stream().stream_name("valid").send().await,
                "ResourceInUseException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "The stream valid already exists.",
        ),
        (
            expect_error(
                kv.create_stream().stream_name("a".repeat(257)).send().await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "1 validation error detected: Value at 'streamName' failed to satisfy constraint: \
             Member must have length between 1 and 256 (inclusive); got 257",
        ),
        (
            expect_error(
                kv.create_stream()
                    .stream_name("m")
                    .media_type("h264")
                    .send()
                    .await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "1 validation error detected: Value at 'mediaType' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: \
             [\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+(,[\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+)*",
        ),
        (
            expect_error(
                kv.create_stream()
                    .stream_name("d")
                    .device_name("bad device")
                    .send()
                    .await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "1 validation error detected: Value at 'deviceName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ),
        (
            expect_error(
                kv.create_stream()
                    .stream_name("r")
                    .data_retention_in_hours(87_601)
                    .send()
                    .await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "1 validation error detected: Value '87601' at 'dataRetentionInHours' failed to \
             satisfy constraint: Member must have value between 0 and 87600 (inclusive)",
        ),
        (
            expect_error(
                kv.describe_stream().send().await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "Either StreamName or StreamARN must be specified.",
        ),
        (
            expect_error(
                kv.describe_stream()
                    .stream_name("valid")
                    .stream_arn(&arn)
                    .send()
                    .await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "Specify either StreamName or StreamARN, not both.",
        ),
        (
            expect_error(
                kv.describe_stream().stream_name("missing").send().await,
                "ResourceNotFoundException",
                404,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "The requested stream is not found or not active.",
        ),
        (
            expect_error(
                kv.list_streams()
                    .next_token("bm90LWEtdG9rZW4=")
                    .send()
                    .await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "The NextToken is not valid.",
        ),
        (
            expect_error(
                kv.get_data_endpoint()
                    .stream_name("missing")
                    .api_name(ApiName::GetMedia)
                    .send()
                    .await,
                "ResourceNotFoundException",
                404,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "The requested stream is not found or not active.",
        ),
        (
            expect_error(
                kv.get_data_endpoint()
                    .stream_name("valid")
                    .api_name(ApiName::from("PUT_FRAGMENTS"))
                    .send()
                    .await,
                "InvalidArgumentException",
                400,
            )
            .meta()
            .message()
            .unwrap()
            .to_owned(),
            "1 validation error detected: Value 'PUT_FRAGMENTS' at 'APIName' failed to satisfy \
             constraint: Member must satisfy enum value set: [PUT_MEDIA, GET_MEDIA, \
             LIST_FRAGMENTS, GET_MEDIA_FOR_FRAGMENT_LIST, GET_HLS_STREAMING_SESSION_URL, \
             GET_DASH_STREAMING_SESSION_URL, GET_CLIP, GET_IMAGES]",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    // 51 tags on create, and 51 in total after TagStream.
    let mut creating = kv.create_stream().stream_name("tags");
    for i in 0..51 {
        creating = creating.tags(format!("k{i}"), "v");
    }
    expect_error(
        creating.send().await,
        "TagsPerResourceExceededLimitException",
        400,
    );
    let mut tag = kv.tag_stream().stream_arn(&arn);
    for i in 0..50 {
        tag = tag.tags(format!("k{i}"), "v");
    }
    tag.send().await.unwrap();
    let e = kv
        .tag_stream()
        .stream_arn(&arn)
        .tags("one", "more")
        .send()
        .await;
    expect_error(e, "TagsPerResourceExceededLimitException", 400);
    // A channel's ARN given to the stream tag operations.
    let ch = create(&kv, "a-channel").await;
    let e = kv.tag_stream().stream_arn(&ch).tags("k", "v").send().await;
    let err = expect_error(e, "InvalidResourceFormatException", 400);
    assert_eq!(
        err.meta().message(),
        Some(format!("The StreamARN {ch} is not the ARN of a stream.").as_str())
    );
    let e = kv.list_tags_for_stream().stream_arn(&ch).send().await;
    expect_error(e, "InvalidResourceFormatException", 400);
    let e = kv
        .untag_stream()
        .stream_arn(&ch)
        .tag_key_list("k")
        .send()
        .await;
    expect_error(e, "InvalidResourceFormatException", 400);
    // ...and to DescribeStream: simply no such stream.
    let e = kv.describe_stream().stream_arn(&ch).send().await;
    expect_error(e, "ResourceNotFoundException", 404);
    let e = kv.delete_stream().stream_arn(ghost_arn()).send().await;
    expect_error(e, "ResourceNotFoundException", 404);
}
