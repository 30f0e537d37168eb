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

/// The hour-long delay of the window checks: longer than any test takes, however slow the machine.
const HELD: &str = "1h";
/// The delay whose transitions must end.
const DELAY: Duration = Duration::from_secs(1);
/// Only bounds a hang while polling for the end of a transition.
const HANG: Duration = Duration::from_secs(60);

/// The channel's status, or "GONE" once describing it answers 404 ResourceNotFoundException.
async fn status_or_gone(kv: &aws_sdk_kinesisvideo::Client, arn: &str) -> String {
    let r = kv
        .describe_signaling_channel()
        .channel_arn(arn)
        .send()
        .await;
    match r {
        Ok(out) => status_of(&out.channel_info.expect("no ChannelInfo")),
        Err(_) => {
            expect_error(r, "ResourceNotFoundException", 404);
            "GONE".to_owned()
        }
    }
}

/// Polls until the channel's status is `after` ("GONE": deleted). Every read whose response came
/// back less than [`DELAY`] after `t0` (taken before the call that started the transition) must
/// show `during`: the server cannot have ended the transition before then. No read may show
/// `after` before that either. Only [`HANG`] bounds the wait.
async fn await_transition(
    kv: &aws_sdk_kinesisvideo::Client,
    arn: &str,
    during: &str,
    after: &str,
    t0: Instant,
) {
    let mut seen = Vec::new();
    loop {
        let st = status_or_gone(kv, arn).await;
        let at = t0.elapsed();
        seen.push((at.as_millis(), st.clone()));
        if at < DELAY {
            assert_eq!(st, during, "before the delay could pass: {seen:?}");
        }
        if st == after {
            return;
        }
        assert_eq!(st, during, "expected {during} then {after}: {seen:?}");
        assert!(at < HANG, "still {during} after {HANG:?}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CREATING, UPDATING and DELETING refuse what behaviour.md says they refuse. The server's delay
/// is an hour, so every check lands inside the window however slow the machine; the ACTIVE
/// channels it updates and deletes were created on the same data dir by a server without one.
#[tokio::test]
async fn lifecycle_windows_refuse_changes() {
    let dir = TempDir::new("lifecycle");
    let (upd, del) = {
        let mut s = Server::start(&["--data-dir", dir.str()]);
        let kv = s.client();
        let arns = (create(&kv, "upd").await, create(&kv, "del").await);
        let status = s
            .terminate(HANG)
            .expect("the preparing server hung on SIGTERM");
        assert!(status.success(), "{status:?}: {}", s.stderr());
        arns
    };
    let s = Server::start(&["--data-dir", dir.str(), "--lifecycle-delay", HELD]);
    let kv = s.client();

    // CREATING right after create.
    let arn = create(&kv, "slow").await;
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(status_of(&info), "CREATING");
    let v = info.version.clone().unwrap();
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
    expect_error(
        kv.create_signaling_channel()
            .channel_name("slow")
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    let still = describe_arn(&kv, &arn).await;
    assert_eq!(still, info, "nothing changed");
    assert_eq!(ttl_of(&still), Some(60));

    // UPDATING, with the new Version and TTL at once.
    let v1 = version_of(&kv, &upd).await;
    assert_eq!(status_of(&describe_arn(&kv, &upd).await), "ACTIVE");
    kv.update_signaling_channel()
        .channel_arn(&upd)
        .current_version(&v1)
        .single_master_configuration(ttl(10))
        .send()
        .await
        .unwrap();
    let updating = describe_arn(&kv, &upd).await;
    assert_eq!(status_of(&updating), "UPDATING");
    assert_eq!(ttl_of(&updating), Some(10));
    let v2 = updating.version.clone().unwrap();
    assert_ne!(v2, v1);
    expect_error(
        kv.update_signaling_channel()
            .channel_arn(&upd)
            .current_version(&v2)
            .single_master_configuration(ttl(20))
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    expect_error(
        kv.delete_signaling_channel().channel_arn(&upd).send().await,
        "ResourceInUseException",
        400,
    );
    assert_eq!(describe_arn(&kv, &upd).await, updating, "nothing changed");

    // DELETING, still holding its name.
    let v = version_of(&kv, &del).await;
    kv.delete_signaling_channel()
        .channel_arn(&del)
        .current_version(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(&describe_arn(&kv, &del).await), "DELETING");
    assert_eq!(status_of(&describe_name(&kv, "del").await), "DELETING");
    expect_error(
        kv.delete_signaling_channel().channel_arn(&del).send().await,
        "ResourceInUseException",
        400,
    );
    expect_error(
        kv.update_signaling_channel()
            .channel_arn(&del)
            .current_version(&v)
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
    expect_error(
        kv.create_signaling_channel()
            .channel_name("del")
            .send()
            .await,
        "ResourceInUseException",
        400,
    );
}

/// With a one-second delay each transition ends: polled for (only a hang is bounded), never
/// seen ended before the delay could pass.
#[tokio::test]
async fn lifecycle_transitions_end_after_a_one_second_delay() {
    let s = Server::start(&["--lifecycle-delay", "1s"]);
    let kv = s.client();

    // CREATING, then ACTIVE with the same Version.
    let t0 = Instant::now();
    let arn = create(&kv, "slow").await;
    let v = version_of(&kv, &arn).await;
    await_transition(&kv, &arn, "CREATING", "ACTIVE", t0).await;
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(info.version.as_deref(), Some(v.as_str()));
    assert_eq!(ttl_of(&info), Some(60));

    // UPDATING, then ACTIVE with the new Version and TTL.
    let t0 = Instant::now();
    kv.update_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v)
        .single_master_configuration(ttl(10))
        .send()
        .await
        .unwrap();
    let v2 = version_of(&kv, &arn).await;
    assert_ne!(v2, v);
    await_transition(&kv, &arn, "UPDATING", "ACTIVE", t0).await;
    let info = describe_arn(&kv, &arn).await;
    assert_eq!(info.version.as_deref(), Some(v2.as_str()));
    assert_eq!(ttl_of(&info), Some(10));

    // DELETING, then gone: by ARN and by name, and the name is free again.
    let t0 = Instant::now();
    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .current_version(&v2)
        .send()
        .await
        .unwrap();
    await_transition(&kv, &arn, "DELETING", "GONE", t0).await;
    expect_error(
        kv.describe_signaling_channel()
            .channel_name("slow")
            .send()
            .await,
        "ResourceNotFoundException",
        404,
    );
    let t0 = Instant::now();
    let again = create(&kv, "slow").await;
    assert_ne!(again, arn, "a new channel, not the deleted one");
    await_transition(&kv, &again, "CREATING", "ACTIVE", t0).await;
}
