//! The behaviour every [`StreamStore`] backend must show, one test per case. A backend's tests
//! invoke [`crate::stream_store_conformance!`] with an expression that makes a fresh, empty
//! store (it may `.await`); the macro expands to one `#[tokio::test]` per case.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::model::{stream_arn, KmsKeyId, MediaType};
use super::{MediaLink, StoreError, Stream, StreamName, StreamStore};
use crate::ids::{AccountId, ChannelName, Namespace, Region, ResourceArn, Version};
use crate::model::{ChannelStatus, Tags};

/// Expands to one test per conformance case for the store made by `$make` (an expression of
/// type `impl Future<Output = Arc<impl StreamStore>>`, evaluated once per test).
#[macro_export]
macro_rules! stream_store_conformance {
    ($make:expr) => {
        $crate::stream_store_conformance!(@cases $make;
            insert_then_get_round_trips,
            duplicate_names_are_refused,
            limit_counts_only_its_namespace,
            list_is_ordered_filtered_and_keyset_paged,
            replace_is_compare_and_swap,
            remove_is_compare_and_swap,
            namespaces_are_isolated,
            concurrent_replace_has_one_winner,
            concurrent_inserts_of_one_name_have_one_winner,
            links_are_read_both_ways_and_replaced,
            a_link_needs_its_stream,
            a_stream_is_linked_to_one_channel,
            removing_a_stream_removes_its_link,
            unlinking_by_either_side,
            concurrent_links_to_one_stream_have_one_winner,
            clear_empties_every_namespace_and_link
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::streams::StreamStore> = $make.await;
                $crate::streams::conformance::$case(store).await;
            }
        )*
    };
}

pub fn ns(account: &str, region: &str) -> Namespace {
    Namespace::new(
        AccountId::parse(account).unwrap(),
        Region::parse(region).unwrap(),
    )
}

pub fn sname(s: &str) -> StreamName {
    StreamName::parse("n", s).unwrap()
}

pub fn stream(ns: &Namespace, name: &str) -> Stream {
    let name = sname(name);
    Stream {
        arn: stream_arn(ns, &name, 1_700_000_000_000),
        ns: ns.clone(),
        name,
        device_name: None,
        media_type: Some(MediaType::parse("m", "video/h264").unwrap()),
        kms_key_id: KmsKeyId::aws_managed(ns),
        data_retention_hours: 24,
        status: ChannelStatus::Active,
        status_until_millis: 0,
        created_millis: 1_700_000_000_000,
        version: Version::generate(),
        tags: Tags::from([("k".to_string(), "v".to_string())]),
        revision: 1,
    }
}

pub fn channel_arn(ns: &Namespace, name: &str) -> ResourceArn {
    ResourceArn::channel(
        ns,
        &ChannelName::parse("n", name).unwrap(),
        1_700_000_000_001,
    )
}

pub fn link(ns: &Namespace, channel: &str, stream: &Stream, enabled: bool) -> MediaLink {
    MediaLink {
        ns: ns.clone(),
        channel_arn: channel_arn(ns, channel),
        stream_arn: stream.arn.clone(),
        enabled,
    }
}

async fn names(s: &dyn StreamStore, ns: &Namespace) -> Vec<String> {
    s.list(ns, None, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name.to_string())
        .collect()
}

pub async fn insert_then_get_round_trips(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let plain = stream(&a, "one");
    let mut full = stream(&a, "two");
    full.device_name = Some(super::model::DeviceName::parse("d", "cam-7").unwrap());
    full.media_type = None;
    full.kms_key_id = KmsKeyId::parse("k", "alias/mine").unwrap();
    full.data_retention_hours = 0;
    full.status = ChannelStatus::Creating;
    full.status_until_millis = 1_700_000_002_000;
    s.insert(plain.clone(), 10).await.unwrap();
    s.insert(full.clone(), 10).await.unwrap();
    assert_eq!(s.get(&a, &plain.name).await.unwrap(), Some(plain.clone()));
    assert_eq!(s.get(&a, &full.name).await.unwrap(), Some(full.clone()));
    assert_eq!(s.get(&a, &sname("three")).await.unwrap(), None);
    assert_eq!(s.list(&a, None, None, 10).await.unwrap(), vec![plain, full]);
}

pub async fn duplicate_names_are_refused(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let first = stream(&a, "dup");
    s.insert(first.clone(), 10).await.unwrap();
    assert_eq!(
        s.insert(stream(&a, "dup"), 10).await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(s.list(&a, None, None, 10).await.unwrap(), vec![first]);
}

pub async fn limit_counts_only_its_namespace(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let b = ns("111111111111", "us-west-2");
    s.insert(stream(&a, "a1"), 2).await.unwrap();
    s.insert(stream(&a, "a2"), 2).await.unwrap();
    assert_eq!(
        s.insert(stream(&a, "a3"), 2).await,
        Err(StoreError::LimitExceeded)
    );
    s.insert(stream(&b, "b1"), 2).await.unwrap();
    s.remove(&a, &sname("a1"), 1).await.unwrap();
    s.insert(stream(&a, "a3"), 2).await.unwrap();
}

pub async fn list_is_ordered_filtered_and_keyset_paged(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    for n in ["b", "a", "ab", "a_c", "c", "A", "a.b", "a-b"] {
        s.insert(stream(&a, n), 100).await.unwrap();
    }
    let list = |prefix: Option<&'static str>, after: Option<&'static str>, limit: usize| {
        let s = Arc::clone(&s);
        let a = a.clone();
        async move {
            let after = after.map(sname);
            s.list(&a, prefix, after.as_ref(), limit)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.name.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(None, None, 100).await,
        ["A", "a", "a-b", "a.b", "a_c", "ab", "b", "c"]
    );
    assert_eq!(list(None, None, 2).await, ["A", "a"]);
    assert_eq!(list(None, Some("a.b"), 3).await, ["a_c", "ab", "b"]);
    assert_eq!(
        list(Some("a"), None, 100).await,
        ["a", "a-b", "a.b", "a_c", "ab"]
    );
    assert_eq!(list(Some("a_"), None, 100).await, ["a_c"]);
    assert_eq!(list(Some("a"), Some("a.b"), 100).await, ["a_c", "ab"]);
    assert_eq!(list(Some("b"), Some("A"), 100).await, ["b"]);
    assert!(list(Some("a"), Some("b"), 100).await.is_empty());
    assert_eq!(list(None, Some("aa"), 1).await, ["ab"]);
    // Many pages.
    let b = ns("111111111111", "eu-west-1");
    for i in 0..120 {
        s.insert(stream(&b, &format!("s-{i:03}")), 1000)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<StreamName> = None;
    loop {
        let page = s.list(&b, Some("s-"), after.as_ref(), 50).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        seen.extend(page.into_iter().map(|c| c.name.to_string()));
    }
    assert_eq!(
        seen,
        (0..120).map(|i| format!("s-{i:03}")).collect::<Vec<_>>()
    );
}

pub async fn replace_is_compare_and_swap(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let c = stream(&a, "cas");
    s.insert(c.clone(), 10).await.unwrap();
    let mut next = c.clone();
    next.version = Version::generate();
    next.data_retention_hours = 48;
    next.revision = 2;
    assert_eq!(
        s.replace(next.clone(), 7).await,
        Err(StoreError::VersionConflict)
    );
    assert_eq!(s.get(&a, &c.name).await.unwrap(), Some(c.clone()));
    s.replace(next.clone(), 1).await.unwrap();
    assert_eq!(s.get(&a, &c.name).await.unwrap(), Some(next.clone()));
    assert_eq!(
        s.replace(next.clone(), 1).await,
        Err(StoreError::VersionConflict)
    );
    assert_eq!(
        s.replace(stream(&a, "missing"), 1).await,
        Err(StoreError::NotFound)
    );
}

pub async fn remove_is_compare_and_swap(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let c = stream(&a, "rm");
    s.insert(c.clone(), 10).await.unwrap();
    assert_eq!(
        s.remove(&a, &c.name, 2).await,
        Err(StoreError::VersionConflict)
    );
    s.remove(&a, &c.name, 1).await.unwrap();
    assert_eq!(s.get(&a, &c.name).await.unwrap(), None);
    assert_eq!(s.remove(&a, &c.name, 1).await, Err(StoreError::NotFound));
    s.insert(stream(&a, "rm"), 10).await.unwrap();
}

pub async fn namespaces_are_isolated(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let b = ns("222222222222", "us-east-1");
    let c = stream(&a, "same");
    s.insert(c.clone(), 10).await.unwrap();
    s.insert(stream(&b, "same"), 10).await.unwrap();
    assert_eq!(s.get(&a, &c.name).await.unwrap().unwrap().ns, a);
    assert_eq!(s.get(&b, &c.name).await.unwrap().unwrap().ns, b);
    s.remove(&a, &c.name, 1).await.unwrap();
    assert!(s.get(&b, &c.name).await.unwrap().is_some());
    assert_eq!(names(&*s, &a).await, Vec::<String>::new());
    assert_eq!(names(&*s, &b).await, ["same"]);
}

pub async fn concurrent_replace_has_one_winner(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let c = stream(&a, "race");
    s.insert(c.clone(), 10).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = Arc::clone(&s);
            let mut next = c.clone();
            next.version = Version::generate();
            next.revision = 2;
            tokio::spawn(async move { s.replace(next, 1).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e, StoreError::VersionConflict),
        }
    }
    assert_eq!(ok, 1);
}

pub async fn concurrent_inserts_of_one_name_have_one_winner(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = Arc::clone(&s);
            let c = stream(&a, "contested");
            tokio::spawn(async move { s.insert(c, 10).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e, StoreError::AlreadyExists),
        }
    }
    assert_eq!(ok, 1);
}

pub async fn links_are_read_both_ways_and_replaced(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let one = stream(&a, "one");
    let two = stream(&a, "two");
    s.insert(one.clone(), 10).await.unwrap();
    s.insert(two.clone(), 10).await.unwrap();
    let ch = channel_arn(&a, "cam");
    assert_eq!(s.link_of_channel(&a, &ch).await.unwrap(), None);
    let l = link(&a, "cam", &one, true);
    s.set_link(l.clone()).await.unwrap();
    assert_eq!(s.link_of_channel(&a, &ch).await.unwrap(), Some(l.clone()));
    assert_eq!(s.link_of_stream(&a, &one.arn).await.unwrap(), Some(l));
    // Same pair, now disabled.
    let off = link(&a, "cam", &one, false);
    s.set_link(off.clone()).await.unwrap();
    assert_eq!(s.link_of_channel(&a, &ch).await.unwrap(), Some(off));
    // Re-pointed at another stream: the first one is free again.
    let moved = link(&a, "cam", &two, true);
    s.set_link(moved.clone()).await.unwrap();
    assert_eq!(s.link_of_stream(&a, &one.arn).await.unwrap(), None);
    assert_eq!(s.link_of_stream(&a, &two.arn).await.unwrap(), Some(moved));
    s.set_link(link(&a, "other", &one, true)).await.unwrap();
}

pub async fn a_link_needs_its_stream(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let missing = stream(&a, "missing");
    assert_eq!(
        s.set_link(link(&a, "cam", &missing, true)).await,
        Err(StoreError::NotFound)
    );
    // A stream of that name with another creation time is another stream.
    let stored = stream(&a, "reborn");
    s.insert(stored.clone(), 10).await.unwrap();
    let mut old = stored.clone();
    old.arn = stream_arn(&a, &stored.name, 1_600_000_000_000);
    assert_eq!(
        s.set_link(link(&a, "cam", &old, true)).await,
        Err(StoreError::NotFound)
    );
    // Another namespace's stream is not found either.
    let b = ns("222222222222", "us-east-1");
    let mut foreign = link(&b, "cam", &stored, true);
    foreign.ns = b.clone();
    assert_eq!(s.set_link(foreign).await, Err(StoreError::NotFound));
    assert_eq!(
        s.link_of_channel(&a, &channel_arn(&a, "cam"))
            .await
            .unwrap(),
        None
    );
}

pub async fn a_stream_is_linked_to_one_channel(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let st = stream(&a, "shared");
    s.insert(st.clone(), 10).await.unwrap();
    let first = link(&a, "first", &st, true);
    s.set_link(first.clone()).await.unwrap();
    assert_eq!(
        s.set_link(link(&a, "second", &st, true)).await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(s.link_of_stream(&a, &st.arn).await.unwrap(), Some(first));
    assert_eq!(
        s.link_of_channel(&a, &channel_arn(&a, "second"))
            .await
            .unwrap(),
        None
    );
}

pub async fn removing_a_stream_removes_its_link(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let st = stream(&a, "gone");
    s.insert(st.clone(), 10).await.unwrap();
    s.set_link(link(&a, "cam", &st, true)).await.unwrap();
    s.remove(&a, &st.name, 1).await.unwrap();
    assert_eq!(
        s.link_of_channel(&a, &channel_arn(&a, "cam"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.link_of_stream(&a, &st.arn).await.unwrap(), None);
    // A failed remove keeps the link.
    let kept = stream(&a, "kept");
    s.insert(kept.clone(), 10).await.unwrap();
    s.set_link(link(&a, "cam2", &kept, true)).await.unwrap();
    assert_eq!(
        s.remove(&a, &kept.name, 9).await,
        Err(StoreError::VersionConflict)
    );
    assert!(s.link_of_stream(&a, &kept.arn).await.unwrap().is_some());
}

pub async fn unlinking_by_either_side(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let one = stream(&a, "one");
    let two = stream(&a, "two");
    s.insert(one.clone(), 10).await.unwrap();
    s.insert(two.clone(), 10).await.unwrap();
    s.set_link(link(&a, "c1", &one, true)).await.unwrap();
    s.set_link(link(&a, "c2", &two, true)).await.unwrap();
    s.unlink_channel(&a, &channel_arn(&a, "c1")).await.unwrap();
    assert_eq!(s.link_of_stream(&a, &one.arn).await.unwrap(), None);
    s.unlink_stream(&a, &two.arn).await.unwrap();
    assert_eq!(
        s.link_of_channel(&a, &channel_arn(&a, "c2")).await.unwrap(),
        None
    );
    // Unlinking what is not linked is done.
    s.unlink_channel(&a, &channel_arn(&a, "c1")).await.unwrap();
    s.unlink_stream(&a, &two.arn).await.unwrap();
    // Both streams can be linked again.
    s.set_link(link(&a, "c3", &one, true)).await.unwrap();
    s.set_link(link(&a, "c4", &two, false)).await.unwrap();
}

pub async fn concurrent_links_to_one_stream_have_one_winner(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let st = stream(&a, "popular");
    s.insert(st.clone(), 10).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = Arc::clone(&s);
            let l = link(&a, &format!("c{i}"), &st, true);
            tokio::spawn(async move { s.set_link(l).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e, StoreError::AlreadyExists),
        }
    }
    assert_eq!(ok, 1);
}

pub async fn clear_empties_every_namespace_and_link(s: Arc<dyn StreamStore>) {
    let a = ns("111111111111", "us-east-1");
    let b = ns("222222222222", "eu-west-1");
    let one = stream(&a, "one");
    s.insert(one.clone(), 10).await.unwrap();
    s.insert(stream(&a, "two"), 10).await.unwrap();
    s.insert(stream(&b, "one"), 10).await.unwrap();
    s.set_link(link(&a, "cam", &one, true)).await.unwrap();
    assert_eq!(s.clear().await.unwrap(), 3);
    assert!(names(&*s, &a).await.is_empty());
    assert!(names(&*s, &b).await.is_empty());
    assert_eq!(s.get(&a, &sname("one")).await.unwrap(), None);
    assert_eq!(
        s.link_of_channel(&a, &channel_arn(&a, "cam"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.link_of_stream(&a, &one.arn).await.unwrap(), None);
    // Empty, the store works as new: the same names again, and nothing left to clear after.
    s.insert(one.clone(), 10).await.unwrap();
    assert_eq!(names(&*s, &a).await, ["one"]);
    assert_eq!(s.clear().await.unwrap(), 1);
    assert_eq!(s.clear().await.unwrap(), 0);
}
