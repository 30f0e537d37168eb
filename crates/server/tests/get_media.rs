//! GetMedia end to end (issue 15): real H.264 and Opus (made by ffmpeg) pushed through the
//! recorder the storage session's peer uses (`state.recording`), read back over a real socket by
//! the AWS Rust SDK's kinesis-video-media client from the endpoint GetDataEndpoint gives, and
//! probed with ffprobe: h264 320x240 and opus, with the frames of the fragments selected.
#![allow(clippy::unwrap_used)]

mod inproc;
#[path = "../../media/tests/support/mod.rs"]
mod media;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_kinesisvideo::types::ApiName;
use aws_sdk_kinesisvideomedia::config::http::HttpResponse;
use aws_sdk_kinesisvideomedia::config::{BehaviorVersion, Region};
use aws_sdk_kinesisvideomedia::error::SdkError;
use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
use aws_smithy_types::DateTime;
use inproc::Server;
use kvs_core::clock::Clock;
use kvs_core::ids::ResourceArn;
use kvs_core::media::Sample;

async fn media_client(s: &Server, stream: &str) -> aws_sdk_kinesisvideomedia::Client {
    let endpoint = s
        .kv()
        .get_data_endpoint()
        .stream_name(stream)
        .api_name(ApiName::GetMedia)
        .send()
        .await
        .unwrap()
        .data_endpoint
        .unwrap();
    let conf = aws_sdk_kinesisvideomedia::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDINPROC", "secret", None, None, "test"))
        .retry_config(aws_sdk_kinesisvideomedia::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesisvideomedia::Client::from_conf(conf)
}

fn selector(
    kind: StartSelectorType,
) -> aws_sdk_kinesisvideomedia::types::builders::StartSelectorBuilder {
    StartSelector::builder().start_selector_type(kind)
}

/// The whole body of a GetMedia call (a second later on the server's clock than the last,
/// under the 5 calls a second limit).
async fn get(
    s: &Server,
    c: &aws_sdk_kinesisvideomedia::Client,
    stream: &str,
    sel: StartSelector,
) -> Vec<u8> {
    s.advance(Duration::from_secs(1));
    let out = c
        .get_media()
        .stream_name(stream)
        .start_selector(sel)
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), Some("video/webm"));
    out.payload.collect().await.unwrap().into_bytes().to_vec()
}

/// The values of the simple tag `name` in a body, in order (a TagName, then its TagString).
fn tag_values(body: &[u8], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = body[from..]
        .windows(name.len())
        .position(|w| w == name.as_bytes())
    {
        let at = from + i + name.len();
        // TagString: ID 0x4487, a one-byte size (our values are short).
        assert_eq!(&body[at..at + 2], &[0x44, 0x87]);
        let len = usize::from(body[at + 2] & 0x7F);
        out.push(String::from_utf8(body[at + 3..at + 3 + len].to_vec()).unwrap());
        from = at + 3 + len;
    }
    out
}

/// ffprobe's view of a body: h264 320x240 and stereo opus; the video frames in it.
fn probe(dir: &Path, name: &str, body: &[u8]) -> u64 {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    let p = media::ffprobe(&path);
    let streams = p["streams"].as_array().unwrap();
    let v = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    let a = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(a["codec_name"], "opus");
    let (frames, _, _) = media::decode_counts(&path);
    frames
}

/// The error code and HTTP status of a failed call.
fn code<O, E: aws_sdk_kinesisvideomedia::error::ProvideErrorMetadata>(
    r: Result<O, SdkError<E, HttpResponse>>,
) -> (Option<String>, Option<u16>) {
    let Err(e) = r else {
        panic!("the call succeeded")
    };
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e
        .as_service_error()
        .and_then(|se| se.code())
        .map(str::to_owned);
    (code, status)
}

async fn create_stream(s: &Server, name: &str) -> ResourceArn {
    let arn = s
        .kv()
        .create_stream()
        .stream_name(name)
        .data_retention_in_hours(1)
        .send()
        .await
        .unwrap()
        .stream_arn
        .unwrap();
    ResourceArn::parse("StreamARN", &arn).unwrap()
}

fn channel() -> ResourceArn {
    ResourceArn::parse(
        "c",
        "arn:aws:kinesisvideo:us-east-1:111122223333:channel/ch/1",
    )
    .unwrap()
}

fn six_seconds(dir: &Path, start_ms: u64) -> Vec<Sample> {
    let (video, audio) = media::make_media(dir, 6);
    media::samples(&video, &audio, media::epoch(start_ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_media_reads_back_from_every_start_selector() {
    let s = Server::start(&[]).await;
    let dir = std::env::temp_dir().join(format!("kvs-get-media-{}", std::process::id()));
    let arn = create_stream(&s, "cam").await;
    let start_ms = s.clock.now_millis() - 10_000;
    let mut sink = s.state.recording.open(&arn, &channel()).await.unwrap();
    for sample in six_seconds(&dir, start_ms) {
        sink.push(sample).await.unwrap();
    }
    sink.finish().await.unwrap();
    // `--store memory` keeps recordings in memory, like its channels and streams: nothing is
    // written under the data directory.
    let data_dir = std::env::temp_dir().join(format!("kvs-inproc-{}", std::process::id()));
    assert!(!data_dir.join("media").exists());
    let c = media_client(&s, "cam").await;

    let all = get(
        &s,
        &c,
        "cam",
        selector(StartSelectorType::Earliest).build().unwrap(),
    )
    .await;
    let numbers = tag_values(&all, "AWS_KINESISVIDEO_FRAGMENT_NUMBER");
    assert_eq!(numbers.len(), 6);
    assert_eq!(
        tag_values(&all, "AWS_KINESISVIDEO_CONTINUATION_TOKEN"),
        numbers
    );
    let servers = tag_values(&all, "AWS_KINESISVIDEO_SERVER_TIMESTAMP");
    let producers = tag_values(&all, "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP");
    // Fragments start at each second's keyframe; received 40 ms after they were produced.
    for (i, (p, sv)) in producers.iter().zip(&servers).enumerate() {
        let p_ms = (p.parse::<f64>().unwrap() * 1000.0).round() as u64;
        let s_ms = (sv.parse::<f64>().unwrap() * 1000.0).round() as u64;
        assert_eq!(p_ms, start_ms + 1000 * i as u64, "{p}");
        assert_eq!(s_ms, p_ms + 40);
    }
    assert_eq!(
        tag_values(&all, "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW").len(),
        6
    );
    assert_eq!(probe(&dir, "all.mkv", &all), 180);

    let after_first = get(
        &s,
        &c,
        "cam",
        selector(StartSelectorType::FragmentNumber)
            .after_fragment_number(&numbers[0])
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(
        tag_values(&after_first, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
        numbers[1..]
    );
    assert_eq!(probe(&dir, "after.mkv", &after_first), 150);

    let resumed = get(
        &s,
        &c,
        "cam",
        selector(StartSelectorType::ContinuationToken)
            .continuation_token(&numbers[2])
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(
        tag_values(&resumed, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
        numbers[3..]
    );
    assert_eq!(probe(&dir, "resumed.mkv", &resumed), 90);

    // Inside the fourth fragment (it starts at +3 s server time): from it on.
    let at = UNIX_EPOCH + Duration::from_millis(start_ms + 3_500);
    let by_server = get(
        &s,
        &c,
        "cam",
        selector(StartSelectorType::ServerTimestamp)
            .start_timestamp(DateTime::from(at))
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(
        tag_values(&by_server, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
        numbers[3..]
    );
    let by_producer = get(
        &s,
        &c,
        "cam",
        selector(StartSelectorType::ProducerTimestamp)
            .start_timestamp(DateTime::from(
                UNIX_EPOCH + Duration::from_millis(start_ms + 5_000),
            ))
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(
        tag_values(&by_producer, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
        numbers[5..]
    );

    // After every fragment kept: nothing (and the response ends, rather than taking the older
    // fragments for new ones while it waits).
    let later = UNIX_EPOCH + Duration::from_millis(start_ms + 60_000);
    let after_all = tokio::time::timeout(
        Duration::from_secs(20),
        get(
            &s,
            &c,
            "cam",
            selector(StartSelectorType::ServerTimestamp)
                .start_timestamp(DateTime::from(later))
                .build()
                .unwrap(),
        ),
    )
    .await
    .expect("the response ends");
    assert!(after_all.is_empty());
    // NOW with nothing being recorded: an empty body, once the idle time has passed.
    let now = get(
        &s,
        &c,
        "cam",
        selector(StartSelectorType::Now).build().unwrap(),
    )
    .await;
    assert!(now.is_empty());
    assert_eq!(s.metric("kvs_media_fragments_total").await, 6);
    assert_eq!(s.metric("kvs_media_sessions_total").await, 1);
    let _ = std::fs::remove_dir_all(&dir);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_media_streams_fragments_while_the_recording_goes_on() {
    let s = Server::start(&[]).await;
    let dir = std::env::temp_dir().join(format!("kvs-get-media-live-{}", std::process::id()));
    let arn = create_stream(&s, "live").await;
    let c = media_client(&s, "live").await;
    let mut first_half = six_seconds(&dir, s.clock.now_millis() - 10_000);
    let second_half = first_half.split_off(first_half.len() / 2);
    let mut sink = s.state.recording.open(&arn, &channel()).await.unwrap();
    for sample in first_half {
        sink.push(sample).await.unwrap();
    }
    let mut out = c
        .get_media()
        .stream_name("live")
        .start_selector(selector(StartSelectorType::Earliest).build().unwrap())
        .send()
        .await
        .unwrap();
    // Chunks already written arrive while the recording is still open.
    let first = tokio::time::timeout(Duration::from_secs(5), out.payload.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        tag_values(&first, "AWS_KINESISVIDEO_FRAGMENT_NUMBER").len(),
        1
    );
    let mut body = first.to_vec();
    let pusher = tokio::spawn(async move {
        // A pause longer than the SDK's stalled-stream grace (5 s), samples still flowing as a
        // sender between keyframes would: the body carries keep-alives meanwhile.
        let mut rest = second_half.into_iter();
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            sink.push(rest.next().unwrap()).await.unwrap();
        }
        for sample in rest {
            sink.push(sample).await.unwrap();
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        sink.finish().await.unwrap();
    });
    let mut keepalives = 0;
    while let Some(chunk) = out.payload.next().await {
        let chunk = chunk.unwrap();
        keepalives += usize::from(chunk.as_ref() == [0xEC, 0x80]);
        body.extend_from_slice(&chunk);
    }
    pusher.await.unwrap();
    // Empty EBML Void elements kept the body alive during the pause; readers skip them.
    assert!(keepalives >= 2, "{keepalives} keep-alives");
    assert_eq!(
        tag_values(&body, "AWS_KINESISVIDEO_FRAGMENT_NUMBER").len(),
        6
    );
    assert_eq!(probe(&dir, "live.mkv", &body), 180);
    let _ = std::fs::remove_dir_all(&dir);
    s.shutdown().await;
}

#[tokio::test]
async fn get_media_errors_are_aws_errors() {
    let s = Server::start(&[]).await;
    create_stream(&s, "cam").await;
    let c = media_client(&s, "cam").await;
    let missing = c
        .get_media()
        .stream_name("nope")
        .start_selector(selector(StartSelectorType::Earliest).build().unwrap())
        .send()
        .await;
    assert_eq!(
        code(missing),
        (Some("ResourceNotFoundException".into()), Some(404))
    );
    let no_number = c
        .get_media()
        .stream_name("cam")
        .start_selector(selector(StartSelectorType::FragmentNumber).build().unwrap())
        .send()
        .await;
    assert_eq!(
        code(no_number),
        (Some("InvalidArgumentException".into()), Some(400))
    );
    // Six calls in the same second of the server's (stopped) clock: the sixth is refused.
    let mut results = Vec::new();
    for _ in 0..6 {
        results.push(
            c.get_media()
                .stream_name("cam")
                .start_selector(selector(StartSelectorType::Now).build().unwrap())
                .send()
                .await
                .map(|_| ()),
        );
    }
    let last = results.pop().unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        code(last),
        (Some("ClientLimitExceededException".into()), Some(400))
    );
    s.shutdown().await;
}

/// A redis-server on a free loopback port, killed on drop.
struct Redis(std::process::Child, u16, std::path::PathBuf);

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("kvs-get-media-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian redis-server; scripts/test.sh installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child, port, dir)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.2);
    }
}

/// Two nodes on one Redis: node A records, GetMedia on node B streams it live (B polls the
/// fragments on Redis and keeps waiting while A's recording is marked live there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_of_a_redis_cluster_streams_another_nodes_recording() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.1);
    let a = Server::start(&["--store", &url]).await;
    let b = Server::start(&["--store", &url]).await;
    let dir = std::env::temp_dir().join(format!("kvs-get-media-redis-{}", std::process::id()));
    let arn = create_stream(&a, "shared").await;
    let mut first_half = six_seconds(&dir, a.clock.now_millis() - 10_000);
    let second_half = first_half.split_off(first_half.len() / 2);
    let mut sink = a.state.recording.open(&arn, &channel()).await.unwrap();
    for sample in first_half {
        sink.push(sample).await.unwrap();
    }
    let c = media_client(&b, "shared").await;
    let mut out = c
        .get_media()
        .stream_name("shared")
        .start_selector(selector(StartSelectorType::Earliest).build().unwrap())
        .send()
        .await
        .unwrap();
    let pusher = tokio::spawn(async move {
        // Longer than the idle time of a stream not being recorded: B must keep waiting.
        tokio::time::sleep(Duration::from_secs(4)).await;
        for sample in second_half {
            sink.push(sample).await.unwrap();
        }
        sink.finish().await.unwrap();
    });
    let mut body = Vec::new();
    while let Some(chunk) = out.payload.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    pusher.await.unwrap();
    assert_eq!(
        tag_values(&body, "AWS_KINESISVIDEO_FRAGMENT_NUMBER").len(),
        6
    );
    assert_eq!(probe(&dir, "redis.mkv", &body), 180);
    // Deleting the stream on B deletes the recording on Redis.
    b.kv()
        .delete_stream()
        .stream_arn(arn.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(a.state.media.store().usage().await.unwrap().fragments, 0);
    let _ = std::fs::remove_dir_all(&dir);
    a.shutdown().await;
    b.shutdown().await;
}
