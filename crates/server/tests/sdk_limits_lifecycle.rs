//! The account channel limit, concurrency (one winner per CurrentVersion) and the asynchronous
//! status lifecycle through aws-sdk-kinesisvideo.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
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
