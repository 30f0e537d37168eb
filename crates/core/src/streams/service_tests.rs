#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::ids::ChannelName;
use crate::streams::conformance::{ns, sname};
use crate::streams::MemoryStreamStore;

fn service(delay: Duration, max: usize) -> (StreamService, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let s = StreamService::new(
        Arc::new(MemoryStreamStore::new()),
        clock.clone(),
        StreamConfig {
            lifecycle_delay: delay,
            max_streams: max,
        },
    );
    (s, clock)
}

fn req(name: &str, hours: u32) -> CreateStream {
    CreateStream {
        name: sname(name),
        device_name: None,
        media_type: None,
        kms_key_id: None,
        data_retention_hours: hours,
        tags: Vec::new(),
    }
}

fn code(e: ServiceError) -> &'static str {
    e.code().as_str()
}

fn chan(n: &Namespace, name: &str) -> ResourceArn {
    ResourceArn::channel(
        n,
        &ChannelName::parse("c", name).unwrap(),
        1_700_000_000_000,
    )
}

#[tokio::test]
async fn create_describe_and_limits() {
    let (s, _) = service(Duration::ZERO, 2);
    let a = ns("111111111111", "us-east-1");
    let st = s.create(&a, req("one", 0)).await.unwrap();
    assert!(st
        .arn
        .as_str()
        .starts_with("arn:aws:kinesisvideo:us-east-1:111111111111:stream/one/"));
    assert_eq!(
        st.kms_key_id.as_str(),
        "arn:aws:kms:us-east-1:111111111111:alias/aws/kinesisvideo"
    );
    let v = s
        .describe(&a, &StreamRef::Arn(st.arn.clone()))
        .await
        .unwrap();
    assert_eq!(v.status, Status::Active);
    assert_eq!(
        code(s.create(&a, req("one", 0)).await.unwrap_err()),
        "ResourceInUseException"
    );
    s.create(&a, req("two", 0)).await.unwrap();
    assert_eq!(
        code(s.create(&a, req("three", 0)).await.unwrap_err()),
        "AccountStreamLimitExceededException"
    );
    assert_eq!(
        code(
            s.create(&a, req("big", MAX_RETENTION_HOURS + 1))
                .await
                .unwrap_err()
        ),
        "InvalidArgumentException"
    );
    // Another account's ARN is not found.
    let b = ns("222222222222", "us-east-1");
    assert_eq!(
        code(s.describe(&b, &StreamRef::Arn(st.arn)).await.unwrap_err()),
        "ResourceNotFoundException"
    );
}

#[tokio::test]
async fn lifecycle_follows_the_delay() {
    let (s, clock) = service(Duration::from_secs(2), 10);
    let a = ns("111111111111", "us-east-1");
    let st = s.create(&a, req("slow", 1)).await.unwrap();
    let r = StreamRef::Name(st.name.clone());
    assert_eq!(s.describe(&a, &r).await.unwrap().status, Status::Creating);
    assert_eq!(
        code(s.update(&a, &r, &st.version, None, None).await.unwrap_err()),
        "ResourceInUseException"
    );
    clock.advance(Duration::from_secs(2));
    let v = s.describe(&a, &r).await.unwrap();
    assert_eq!(v.status, Status::Active);
    s.update_retention(&a, &r, &v.stream.version, RetentionChange::Increase(5))
        .await
        .unwrap();
    let u = s.describe(&a, &r).await.unwrap();
    assert_eq!(u.status, Status::Updating);
    assert_eq!(u.stream.data_retention_hours, 6);
    assert_ne!(u.stream.version, v.stream.version);
    clock.advance(Duration::from_secs(2));
    let u = s.describe(&a, &r).await.unwrap();
    s.delete(&a, &st.arn, Some(&u.stream.version))
        .await
        .unwrap();
    assert_eq!(s.describe(&a, &r).await.unwrap().status, Status::Deleting);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        code(s.describe(&a, &r).await.unwrap_err()),
        "ResourceNotFoundException"
    );
    // The name is free again.
    s.create(&a, req("slow", 1)).await.unwrap();
}

#[tokio::test]
async fn versions_and_retention_rules() {
    let (s, _) = service(Duration::ZERO, 10);
    let a = ns("111111111111", "us-east-1");
    let st = s.create(&a, req("v", 3)).await.unwrap();
    let r = StreamRef::Arn(st.arn.clone());
    let stale = Version::generate();
    assert_eq!(
        code(s.update(&a, &r, &stale, None, None).await.unwrap_err()),
        "VersionMismatchException"
    );
    assert_eq!(
        code(
            s.update_retention(&a, &r, &st.version, RetentionChange::Decrease(4))
                .await
                .unwrap_err()
        ),
        "InvalidArgumentException"
    );
    s.update_retention(&a, &r, &st.version, RetentionChange::Decrease(3))
        .await
        .unwrap();
    let v = s.describe(&a, &r).await.unwrap();
    assert_eq!(v.stream.data_retention_hours, 0);
    assert_eq!(
        code(s.delete(&a, &st.arn, Some(&st.version)).await.unwrap_err()),
        "VersionMismatchException"
    );
    s.delete(&a, &st.arn, None).await.unwrap();
}

#[tokio::test]
async fn list_pages_with_tokens() {
    let (s, _) = service(Duration::ZERO, 100);
    let a = ns("111111111111", "us-east-1");
    for i in 0..7 {
        s.create(&a, req(&format!("cam-{i}"), 0)).await.unwrap();
    }
    s.create(&a, req("other", 0)).await.unwrap();
    let prefix = sname("cam-");
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = s
            .list(&a, Some(&prefix), 3, token.as_deref())
            .await
            .unwrap();
        seen.extend(page.streams.iter().map(|v| v.stream.name.to_string()));
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(
        code(
            s.list(&a, None, 3, Some("bm90LWEtdG9rZW4="))
                .await
                .unwrap_err()
        ),
        "InvalidArgumentException"
    );
}

#[tokio::test]
async fn media_storage_links_follow_both_sides() {
    let (s, _) = service(Duration::ZERO, 100);
    let a = ns("111111111111", "us-east-1");
    let keep = s.create(&a, req("keep", 24)).await.unwrap();
    let none = s.create(&a, req("none", 0)).await.unwrap();
    let c1 = chan(&a, "c1");
    let c2 = chan(&a, "c2");
    let off = MediaStorage {
        enabled: false,
        stream_arn: None,
    };
    assert_eq!(s.media_storage(&a, &c1).await.unwrap(), off);
    assert_eq!(
        code(
            s.set_media_storage(&a, &c1, true, Some(&none.arn))
                .await
                .unwrap_err()
        ),
        "NoDataRetentionException"
    );
    assert_eq!(
        code(s.set_media_storage(&a, &c1, true, None).await.unwrap_err()),
        "InvalidArgumentException"
    );
    s.set_media_storage(&a, &c1, true, Some(&keep.arn))
        .await
        .unwrap();
    assert_eq!(
        s.media_storage(&a, &c1).await.unwrap(),
        MediaStorage {
            enabled: true,
            stream_arn: Some(keep.arn.clone())
        }
    );
    assert_eq!(
        code(
            s.set_media_storage(&a, &c2, true, Some(&keep.arn))
                .await
                .unwrap_err()
        ),
        "ResourceInUseException"
    );
    let by_name = StreamRef::Name(keep.name.clone());
    assert_eq!(
        s.mapped_channel(&a, &by_name).await.unwrap(),
        Some(c1.clone())
    );
    // Deleting the channel frees the stream.
    s.channel_deleted(&a, &c1).await.unwrap();
    assert_eq!(s.mapped_channel(&a, &by_name).await.unwrap(), None);
    s.set_media_storage(&a, &c2, true, Some(&keep.arn))
        .await
        .unwrap();
    // Deleting the stream clears the channel's configuration.
    s.delete(&a, &keep.arn, None).await.unwrap();
    assert_eq!(s.media_storage(&a, &c2).await.unwrap(), off);
    // A missing stream is not found; DISABLED without a stream clears.
    assert_eq!(
        code(
            s.set_media_storage(&a, &c2, false, Some(&keep.arn))
                .await
                .unwrap_err()
        ),
        "ResourceNotFoundException"
    );
    s.set_media_storage(&a, &c2, false, None).await.unwrap();
}

#[tokio::test]
async fn only_active_streams_are_mapped_and_deleting_unmaps_at_once() {
    let (s, clock) = service(Duration::from_secs(5), 100);
    let a = ns("111111111111", "us-east-1");
    let st = s.create(&a, req("slow", 1)).await.unwrap();
    let c = chan(&a, "c");
    // CREATING is not ACTIVE.
    assert_eq!(
        code(
            s.set_media_storage(&a, &c, true, Some(&st.arn))
                .await
                .unwrap_err()
        ),
        "ResourceInUseException"
    );
    clock.advance(Duration::from_secs(5));
    s.set_media_storage(&a, &c, true, Some(&st.arn))
        .await
        .unwrap();
    s.delete(&a, &st.arn, None).await.unwrap();
    // Still DELETING, already unmapped.
    let v = s
        .describe(&a, &StreamRef::Arn(st.arn.clone()))
        .await
        .unwrap();
    assert_eq!(v.status, Status::Deleting);
    assert!(!s.media_storage(&a, &c).await.unwrap().enabled);
    assert_eq!(
        s.mapped_channel(&a, &StreamRef::Arn(st.arn)).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn tags_are_bounded() {
    let (s, _) = service(Duration::ZERO, 100);
    let a = ns("111111111111", "us-east-1");
    let st = s.create(&a, req("t", 0)).await.unwrap();
    let r = StreamRef::Name(st.name.clone());
    let tag = |i: usize| {
        (
            TagKey::parse("k", &format!("k{i}")).unwrap(),
            TagValue::parse("v", "v").unwrap(),
        )
    };
    s.tag(&a, &r, (0..50).map(tag).collect()).await.unwrap();
    assert_eq!(
        code(s.tag(&a, &r, vec![tag(50)]).await.unwrap_err()),
        "TagsPerResourceExceededLimitException"
    );
    s.tag(&a, &r, vec![tag(49)]).await.unwrap();
    s.untag(&a, &r, &[tag(0).0, TagKey::parse("k", "absent").unwrap()])
        .await
        .unwrap();
    assert_eq!(s.list_tags(&a, &r).await.unwrap().len(), 49);
}

#[test]
fn tokens_round_trip() {
    let n = sname("a-b.c_9");
    let t = encode_token(&n);
    assert!(t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)));
    assert_eq!(decode_token(&t).unwrap(), n);
    assert!(decode_token("!!").is_err());
}
