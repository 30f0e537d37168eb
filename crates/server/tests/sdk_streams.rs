//! Streams and the channels' media-storage configuration (issue 15) through aws-sdk-kinesisvideo:
//! every operation and its error paths, with exact codes, statuses and messages. The main flow
//! runs against every store backend (memory, SQLite, and Redis on a redis-server started here).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_kinesisvideo::types::{
    ApiName, ChannelProtocol, ChannelRole, ComparisonOperator, MediaStorageConfiguration,
    MediaStorageConfigurationStatus, SingleMasterChannelEndpointConfiguration, Status,
    StreamNameCondition, UpdateDataRetentionOperation,
};
use aws_sdk_kinesisvideo::Client;
use common::*;

/// A redis-server on a free port for one test, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = TempDir::new("redis-streams");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir", dir.str()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, dir }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

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

async fn stream_version(kv: &Client, name: &str) -> String {
    kv.describe_stream()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_info
        .unwrap()
        .version
        .unwrap()
}

fn storage(
    status: MediaStorageConfigurationStatus,
    stream: Option<&str>,
) -> MediaStorageConfiguration {
    MediaStorageConfiguration::builder()
        .status(status)
        .set_stream_arn(stream.map(str::to_owned))
        .build()
        .unwrap()
}

async fn set_storage(
    kv: &Client,
    channel: &str,
    status: MediaStorageConfigurationStatus,
    stream: Option<&str>,
) -> Result<
    aws_sdk_kinesisvideo::operation::update_media_storage_configuration::UpdateMediaStorageConfigurationOutput,
    aws_sdk_kinesisvideo::error::SdkError<
        aws_sdk_kinesisvideo::operation::update_media_storage_configuration::UpdateMediaStorageConfigurationError,
        aws_sdk_kinesisvideo::config::http::HttpResponse,
    >,
>{
    kv.update_media_storage_configuration()
        .channel_arn(channel)
        .media_storage_configuration(storage(status, stream))
        .send()
        .await
}

async fn storage_of(kv: &Client, channel_name: &str) -> (String, Option<String>) {
    let out = kv
        .describe_media_storage_configuration()
        .channel_name(channel_name)
        .send()
        .await
        .unwrap();
    let cfg = out.media_storage_configuration.unwrap();
    (cfg.status.as_str().to_owned(), cfg.stream_arn)
}

async fn mapped(kv: &Client, stream: &str) -> Vec<(String, String)> {
    kv.describe_mapped_resource_configuration()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .mapped_resource_configuration_list
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.r#type.unwrap(), i.arn.unwrap()))
        .collect()
}

fn webrtc() -> SingleMasterChannelEndpointConfiguration {
    SingleMasterChannelEndpointConfiguration::builder()
        .protocols(ChannelProtocol::Wss)
        .protocols(ChannelProtocol::Https)
        .protocols(ChannelProtocol::Webrtc)
        .role(ChannelRole::Master)
        .build()
}

/// Every operation's success path and the cross-resource rules, on one server.
async fn full_flow(s: &Server) {
    let kv = s.client();
    // CreateStream with every member.
    let arn = kv
        .create_stream()
        .stream_name("cam-1")
        .device_name("device-7")
        .media_type("video/h264,audio/opus")
        .kms_key_id("alias/mine")
        .data_retention_in_hours(24)
        .tags("team", "video")
        .send()
        .await
        .unwrap()
        .stream_arn
        .unwrap();
    let prefix = format!("arn:aws:kinesisvideo:{REGION}:{OPEN_ACCOUNT}:stream/cam-1/");
    assert!(arn.starts_with(&prefix), "{arn}");
    let millis: i64 = arn[prefix.len()..].parse().unwrap();
    // DescribeStream by name and by ARN.
    for info in [
        kv.describe_stream()
            .stream_name("cam-1")
            .send()
            .await
            .unwrap(),
        kv.describe_stream().stream_arn(&arn).send().await.unwrap(),
    ] {
        let i = info.stream_info.unwrap();
        assert_eq!(i.stream_name.as_deref(), Some("cam-1"));
        assert_eq!(i.stream_arn.as_deref(), Some(arn.as_str()));
        assert_eq!(i.device_name.as_deref(), Some("device-7"));
        assert_eq!(i.media_type.as_deref(), Some("video/h264,audio/opus"));
        assert_eq!(i.kms_key_id.as_deref(), Some("alias/mine"));
        assert_eq!(i.status, Some(Status::Active));
        assert_eq!(i.data_retention_in_hours, Some(24));
        assert_eq!(epoch_millis(&i.creation_time.unwrap()), millis);
        assert_version_format(i.version.as_deref().unwrap());
    }
    // Defaults: no retention, the AWS-managed key, no device or media type.
    let bare = create_stream(&kv, "cam-2", 0).await;
    let i = kv
        .describe_stream()
        .stream_arn(&bare)
        .send()
        .await
        .unwrap()
        .stream_info
        .unwrap();
    assert_eq!(i.data_retention_in_hours, Some(0));
    assert_eq!(
        i.kms_key_id.as_deref(),
        Some(format!("arn:aws:kms:{REGION}:{OPEN_ACCOUNT}:alias/aws/kinesisvideo").as_str())
    );
    assert_eq!(i.device_name, None);
    create_stream(&kv, "other", 1).await;
    // ListStreams: the BEGINS_WITH filter and pages of one.
    let cond = StreamNameCondition::builder()
        .comparison_operator(ComparisonOperator::BeginsWith)
        .comparison_value("cam-")
        .build();
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = kv
            .list_streams()
            .max_results(1)
            .stream_name_condition(cond.clone())
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        names.extend(
            page.stream_info_list
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.stream_name.unwrap()),
        );
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(names, ["cam-1", "cam-2"]);
    let all = kv.list_streams().send().await.unwrap();
    assert_eq!(all.stream_info_list.unwrap().len(), 3);
    assert_eq!(all.next_token, None);
    // UpdateStream rotates the version; the old one is then stale.
    let v1 = stream_version(&kv, "cam-1").await;
    kv.update_stream()
        .stream_name("cam-1")
        .current_version(&v1)
        .device_name("device-8")
        .media_type("video/h265")
        .send()
        .await
        .unwrap();
    let v2 = stream_version(&kv, "cam-1").await;
    assert_ne!(v1, v2);
    let e = kv
        .update_stream()
        .stream_arn(&arn)
        .current_version(&v1)
        .send()
        .await;
    let err = expect_error(e, "VersionMismatchException", 400);
    assert_eq!(
        err.meta().message(),
        Some("The specified version does not match the latest version of the stream.")
    );
    let i = kv
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_info
        .unwrap();
    assert_eq!(i.device_name.as_deref(), Some("device-8"));
    assert_eq!(i.media_type.as_deref(), Some("video/h265"));
    // UpdateDataRetention both ways; below zero is refused.
    kv.update_data_retention()
        .stream_name("cam-1")
        .current_version(&v2)
        .operation(UpdateDataRetentionOperation::IncreaseDataRetention)
        .data_retention_change_in_hours(6)
        .send()
        .await
        .unwrap();
    let v3 = stream_version(&kv, "cam-1").await;
    let e = kv
        .update_data_retention()
        .stream_name("cam-1")
        .current_version(&v3)
        .operation(UpdateDataRetentionOperation::DecreaseDataRetention)
        .data_retention_change_in_hours(31)
        .send()
        .await;
    let err = expect_error(e, "InvalidArgumentException", 400);
    assert_eq!(
        err.meta().message(),
        Some("The data retention of stream cam-1 is 30 hours; it cannot be decreased by 31 hours.")
    );
    kv.update_data_retention()
        .stream_arn(&arn)
        .current_version(&v3)
        .operation(UpdateDataRetentionOperation::DecreaseDataRetention)
        .data_retention_change_in_hours(10)
        .send()
        .await
        .unwrap();
    let i = kv
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_info
        .unwrap();
    assert_eq!(i.data_retention_in_hours, Some(20));
    // Tags by name and by ARN.
    kv.tag_stream()
        .stream_name("cam-1")
        .tags("site", "lobby")
        .tags("team", "security")
        .send()
        .await
        .unwrap();
    kv.untag_stream()
        .stream_arn(&arn)
        .tag_key_list("site")
        .tag_key_list("absent")
        .send()
        .await
        .unwrap();
    let tags = kv
        .list_tags_for_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags.get("team").map(String::as_str), Some("security"));
    // GetDataEndpoint: this server, for every data API.
    for api in [
        ApiName::PutMedia,
        ApiName::GetMedia,
        ApiName::GetHlsStreamingSessionUrl,
    ] {
        let ep = kv
            .get_data_endpoint()
            .stream_name("cam-1")
            .api_name(api)
            .send()
            .await
            .unwrap();
        assert_eq!(ep.data_endpoint.as_deref(), Some(s.url().as_str()));
    }
    // Media storage: a channel never configured is DISABLED.
    let ch = create(&kv, "doorbell").await;
    assert_eq!(storage_of(&kv, "doorbell").await, ("DISABLED".into(), None));
    let e = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&ch)
        .single_master_channel_endpoint_configuration(webrtc())
        .send()
        .await;
    expect_error(e, "InvalidArgumentException", 400);
    // A stream without retention cannot store.
    let e = set_storage(
        &kv,
        &ch,
        MediaStorageConfigurationStatus::Enabled,
        Some(&bare),
    )
    .await;
    let err = expect_error(e, "NoDataRetentionException", 400);
    assert_eq!(
        err.meta().message(),
        Some(
            "The stream cam-2 has no data retention (DataRetentionInHours is 0); media storage \
             needs a stream that keeps data."
        )
    );
    set_storage(
        &kv,
        &ch,
        MediaStorageConfigurationStatus::Enabled,
        Some(&arn),
    )
    .await
    .unwrap();
    assert_eq!(
        storage_of(&kv, "doorbell").await,
        ("ENABLED".into(), Some(arn.clone()))
    );
    assert_eq!(
        mapped(&kv, "cam-1").await,
        vec![("SIGNALING_CHANNEL".to_owned(), ch.clone())]
    );
    assert!(mapped(&kv, "cam-2").await.is_empty());
    let eps = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&ch)
        .single_master_channel_endpoint_configuration(webrtc())
        .send()
        .await
        .unwrap()
        .resource_endpoint_list
        .unwrap();
    let webrtc_ep = eps
        .iter()
        .find(|e| e.protocol == Some(ChannelProtocol::Webrtc))
        .and_then(|e| e.resource_endpoint.clone());
    assert_eq!(webrtc_ep.as_deref(), Some(s.url().as_str()));
    // One channel per stream.
    let ch2 = create(&kv, "porch").await;
    let e = set_storage(
        &kv,
        &ch2,
        MediaStorageConfigurationStatus::Enabled,
        Some(&arn),
    )
    .await;
    let err = expect_error(e, "ResourceInUseException", 400);
    assert_eq!(
        err.meta().message(),
        Some(format!("The stream cam-1 is already mapped to {ch}.").as_str())
    );
    // Deleting the channel frees the stream.
    kv.delete_signaling_channel()
        .channel_arn(&ch)
        .send()
        .await
        .unwrap();
    assert!(mapped(&kv, "cam-1").await.is_empty());
    set_storage(
        &kv,
        &ch2,
        MediaStorageConfigurationStatus::Enabled,
        Some(&arn),
    )
    .await
    .unwrap();
    // DISABLED with the stream keeps the mapping, switched off; without one it goes.
    set_storage(
        &kv,
        &ch2,
        MediaStorageConfigurationStatus::Disabled,
        Some(&arn),
    )
    .await
    .unwrap();
    assert_eq!(
        storage_of(&kv, "porch").await,
        ("DISABLED".into(), Some(arn.clone()))
    );
    set_storage(&kv, &ch2, MediaStorageConfigurationStatus::Disabled, None)
        .await
        .unwrap();
    assert_eq!(storage_of(&kv, "porch").await, ("DISABLED".into(), None));
    set_storage(
        &kv,
        &ch2,
        MediaStorageConfigurationStatus::Enabled,
        Some(&arn),
    )
    .await
    .unwrap();
    // DeleteStream: a stale version is refused; the delete unmaps the channel.
    let e = kv
        .delete_stream()
        .stream_arn(&arn)
        .current_version(&v1)
        .send()
        .await;
    expect_error(e, "VersionMismatchException", 400);
    let v = stream_version(&kv, "cam-1").await;
    kv.delete_stream()
        .stream_arn(&arn)
        .current_version(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(storage_of(&kv, "porch").await, ("DISABLED".into(), None));
    let e = kv.describe_stream().stream_arn(&arn).send().await;
    let err = expect_error(e, "ResourceNotFoundException", 404);
    assert_eq!(
        err.meta().message(),
        Some("The requested stream is not found or not active.")
    );
}

#[tokio::test]
async fn every_operation_on_the_memory_store() {
    full_flow(&Server::start(&[])).await;
}

#[tokio::test]
async fn every_operation_on_the_sqlite_store_and_after_a_restart() {
    let dir = TempDir::new("streams-sqlite");
    {
        let s = Server::start(&["--store", "sqlite", "--data-dir", dir.str()]);
        full_flow(&s).await;
    }
    // What was acknowledged is still there after a restart.
    let s = Server::start(&["--store", "sqlite", "--data-dir", dir.str()]);
    let kv = s.client();
    let names: Vec<String> = kv
        .list_streams()
        .send()
        .await
        .unwrap()
        .stream_info_list
        .unwrap()
        .into_iter()
        .map(|i| i.stream_name.unwrap())
        .collect();
    assert_eq!(names, ["cam-2", "other"]);
    assert_eq!(storage_of(&kv, "porch").await, ("DISABLED".into(), None));
}

#[tokio::test]
async fn every_operation_on_the_redis_store() {
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let dir = TempDir::new("streams-redis");
    let s = Server::start(&["--store", &url, "--data-dir", dir.str()]);
    full_flow(&s).await;
}

#[tokio::test]
async fn media_storage_errors() {
    let s = Server::start(&[]);
    let kv = s.client();
    let stream = create_stream(&kv, "st", 1).await;
    let ch = create(&kv, "ch").await;
    // A missing channel, by ARN and by name.
    let e = set_storage(
        &kv,
        &ghost_arn(),
        MediaStorageConfigurationStatus::Enabled,
        Some(&stream),
    )
    .await;
    let err = expect_error(e, "ResourceNotFoundException", 404);
    assert_eq!(
        err.meta().message(),
        Some("The requested channel is not found or not active.")
    );
    let e = kv
        .describe_media_storage_configuration()
        .channel_name("nope")
        .send()
        .await;
    expect_error(e, "ResourceNotFoundException", 404);
    let e = kv.describe_media_storage_configuration().send().await;
    let err = expect_error(e, "InvalidArgumentException", 400);
    assert_eq!(
        err.meta().message(),
        Some("Either ChannelName or ChannelARN must be specified.")
    );
    // ENABLED without a stream; a stream that does not exist.
    let e = set_storage(&kv, &ch, MediaStorageConfigurationStatus::Enabled, None).await;
    let err = expect_error(e, "InvalidArgumentException", 400);
    assert_eq!(
        err.meta().message(),
        Some("MediaStorageConfiguration.StreamARN must be specified when Status is ENABLED.")
    );
    let missing = stream.replace("/st/", "/gone/");
    let e = set_storage(
        &kv,
        &ch,
        MediaStorageConfigurationStatus::Enabled,
        Some(&missing),
    )
    .await;
    let err = expect_error(e, "ResourceNotFoundException", 404);
    assert_eq!(
        err.meta().message(),
        Some("The requested stream is not found or not active.")
    );
    // A status outside the enum (the SDK sends what it is given).
    let e = kv
        .update_media_storage_configuration()
        .channel_arn(&ch)
        .media_storage_configuration(storage(
            MediaStorageConfigurationStatus::from("PAUSED"),
            Some(&stream),
        ))
        .send()
        .await;
    let err = expect_error(e, "InvalidArgumentException", 400);
    assert_eq!(
        err.meta().message(),
        Some(
            "1 validation error detected: Value 'PAUSED' at 'mediaStorageConfiguration.status' \
             failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"
        )
    );
    // DescribeMappedResourceConfiguration: MaxResults is 1 at most.
    let e = kv
        .describe_mapped_resource_configuration()
        .stream_name("st")
        .max_results(2)
        .send()
        .await;
    expect_error(e, "InvalidArgumentException", 400);
    let e = kv
        .describe_mapped_resource_configuration()
        .stream_name("nope")
        .send()
        .await;
    expect_error(e, "ResourceNotFoundException", 404);
}

#[tokio::test]
async fn the_account_stream_limit() {
    let s = Server::start(&["--max-streams", "2"]);
    let kv = s.client();
    create_stream(&kv, "a", 0).await;
    let b = create_stream(&kv, "b", 0).await;
    let e = kv.create_stream().stream_name("c").send().await;
    let err = expect_error(e, "AccountStreamLimitExceededException", 400);
    assert_eq!(
        err.meta().message(),
        Some("You have reached the maximum limit of streams (2) for this account.")
    );
    // Other accounts have their own; a delete frees a place.
    let other = s.client_as("AKIDOTHER", "secret", "eu-west-1");
    create_stream(&other, "c", 0).await;
    kv.delete_stream().stream_arn(&b).send().await.unwrap();
    create_stream(&kv, "c", 0).await;
}

#[tokio::test]
async fn the_stream_lifecycle_follows_the_delay() {
    let s = Server::start(&["--lifecycle-delay", "1s"]);
    let kv = s.client();
    let arn = create_stream(&kv, "slow", 1).await;
    let status = |kv: Client| async move {
        kv.describe_stream()
            .stream_name("slow")
            .send()
            .await
            .map(|o| o.stream_info.unwrap().status.unwrap())
    };
    assert_eq!(status(kv.clone()).await.unwrap(), Status::Creating);
    let v = stream_version(&kv, "slow").await;
    let e = kv
        .update_stream()
        .stream_name("slow")
        .current_version(&v)
        .device_name("d")
        .send()
        .await;
    let err = expect_error(e, "ResourceInUseException", 400);
    assert_eq!(
        err.meta().message(),
        Some("The stream slow is not in the ACTIVE state (it is CREATING).")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(kv.clone()).await.unwrap(), Status::Active);
    kv.delete_stream().stream_arn(&arn).send().await.unwrap();
    assert_eq!(status(kv.clone()).await.unwrap(), Status::Deleting);
    let e = kv.delete_stream().stream_arn(&arn).send().await;
    expect_error(e, "ResourceInUseException", 400);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect_error(
        kv.describe_stream().stream_name("slow").send().await,
        "ResourceNotFoundException",
        404,
    );
}
