//! The behaviour every [`Store`] backend must show, one test per case. A backend's tests invoke
//! [`crate::store_conformance!`] with an expression that makes a fresh, empty store (it may
//! `.await`); the macro expands to one `#[tokio::test]` per case, so a failure names its case.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::{Store, StoreError};
use crate::ids::{AccountId, ChannelName, MessageTtl, Namespace, Region, ResourceArn, Version};
use crate::model::{Channel, ChannelStatus, ChannelType, Tags};

/// Expands to one test per conformance case for the store made by `$make` (an expression of
/// type `impl Future<Output = Arc<impl Store>>`, evaluated once per test).
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            insert_then_get_round_trips,
            duplicate_names_are_refused,
            limit_counts_only_its_namespace,
            list_is_ordered_filtered_and_keyset_paged,
            list_walks_large_namespaces_in_pages,
            replace_is_compare_and_swap,
            remove_is_compare_and_swap,
            namespaces_are_isolated,
            concurrent_replace_has_one_winner,
            concurrent_inserts_of_one_name_have_one_winner,
            reads_see_acknowledged_writes,
            purge_is_ordered_before_later_writes,
            clear_empties_every_namespace
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::store::Store> = $make.await;
                $crate::store::conformance::$case(store).await;
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

pub fn channel(ns: &Namespace, name: &str) -> Channel {
    let name = ChannelName::parse("n", name).unwrap();
    Channel {
        arn: ResourceArn::channel(ns, &name, 1_700_000_000_000),
        ns: ns.clone(),
        name,
        channel_type: ChannelType::SingleMaster,
        status: ChannelStatus::Active,
        status_until_millis: 0,
        created_millis: 1_700_000_000_000,
        ttl: MessageTtl::DEFAULT,
        version: Version::generate(),
        tags: Tags::from([("k".to_string(), "v".to_string())]),
        revision: 1,
    }
}

fn cname(s: &str) -> ChannelName {
    ChannelName::parse("n", s).unwrap()
}

async fn names(s: &dyn Store, ns: &Namespace) -> Vec<String> {
    s.list(ns, None, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name.to_string())
        .collect()
}

pub async fn insert_then_get_round_trips(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "one");
    s.insert(c.clone(), 10).await.unwrap();
    assert_eq!(s.get(&a, &c.name).await.unwrap(), Some(c.clone()));
    assert_eq!(s.get(&a, &cname("two")).await.unwrap(), None);
    assert_eq!(s.list(&a, None, None, 10).await.unwrap(), vec![c]);
}

pub async fn duplicate_names_are_refused(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let first = channel(&a, "dup");
    s.insert(first.clone(), 10).await.unwrap();
    let again = channel(&a, "dup");
    assert_eq!(s.insert(again, 10).await, Err(StoreError::AlreadyExists));
    assert_eq!(s.list(&a, None, None, 10).await.unwrap(), vec![first]);
}

pub async fn limit_counts_only_its_namespace(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let b = ns("111111111111", "us-west-2");
    s.insert(channel(&a, "a1"), 2).await.unwrap();
    s.insert(channel(&a, "a2"), 2).await.unwrap();
    assert_eq!(
        s.insert(channel(&a, "a3"), 2).await,
        Err(StoreError::LimitExceeded)
    );
    s.insert(channel(&b, "b1"), 2).await.unwrap();
    // Removing one frees a place.
    s.remove(&a, &cname("a1"), 1).await.unwrap();
    s.insert(channel(&a, "a3"), 2).await.unwrap();
}

pub async fn list_is_ordered_filtered_and_keyset_paged(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    for n in ["b", "a", "ab", "a_c", "c", "A", "a.b", "a-b"] {
        s.insert(channel(&a, n), 100).await.unwrap();
    }
    let list = |prefix: Option<&'static str>, after: Option<&'static str>, limit: usize| {
        let s = Arc::clone(&s);
        let a = a.clone();
        async move {
            let after = after.map(cname);
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
    // `_` and `.` are literal in a prefix, not wildcards.
    assert_eq!(list(Some("a_"), None, 100).await, ["a_c"]);
    assert_eq!(list(Some("a"), Some("a.b"), 100).await, ["a_c", "ab"]);
    // A cursor before the prefix starts at the prefix; one after it ends the listing.
    assert_eq!(list(Some("b"), Some("A"), 100).await, ["b"]);
    assert!(list(Some("a"), Some("b"), 100).await.is_empty());
    // A cursor that no longer exists still pages correctly.
    assert_eq!(list(None, Some("aa"), 1).await, ["ab"]);
}

pub async fn list_walks_large_namespaces_in_pages(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    for i in 0..300 {
        s.insert(channel(&a, &format!("ch-{i:04}")), 1000)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<ChannelName> = None;
    loop {
        let page = s.list(&a, Some("ch-"), after.as_ref(), 64).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        seen.extend(page.into_iter().map(|c| c.name.to_string()));
    }
    let want: Vec<String> = (0..300).map(|i| format!("ch-{i:04}")).collect();
    assert_eq!(seen, want);
}

pub async fn replace_is_compare_and_swap(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "cas");
    s.insert(c.clone(), 10).await.unwrap();
    let mut next = c.clone();
    next.version = Version::generate();
    next.ttl = MessageTtl::parse("t", 5).unwrap();
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
    let missing = channel(&a, "missing");
    assert_eq!(s.replace(missing, 1).await, Err(StoreError::NotFound));
}

pub async fn remove_is_compare_and_swap(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "rm");
    s.insert(c.clone(), 10).await.unwrap();
    assert_eq!(
        s.remove(&a, &c.name, 2).await,
        Err(StoreError::VersionConflict)
    );
    s.remove(&a, &c.name, 1).await.unwrap();
    assert_eq!(s.get(&a, &c.name).await.unwrap(), None);
    assert_eq!(s.remove(&a, &c.name, 1).await, Err(StoreError::NotFound));
    // The name is free again.
    s.insert(channel(&a, "rm"), 10).await.unwrap();
}

pub async fn namespaces_are_isolated(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let b = ns("222222222222", "us-east-1");
    let c = channel(&a, "same");
    s.insert(c.clone(), 10).await.unwrap();
    s.insert(channel(&b, "same"), 10).await.unwrap();
    assert_eq!(s.list(&a, None, None, 10).await.unwrap().len(), 1);
    assert_eq!(s.get(&a, &c.name).await.unwrap().unwrap().ns, a);
    assert_eq!(s.get(&b, &c.name).await.unwrap().unwrap().ns, b);
    s.remove(&a, &c.name, 1).await.unwrap();
    assert!(s.get(&b, &c.name).await.unwrap().is_some());
    assert_eq!(names(&*s, &a).await, Vec::<String>::new());
}

pub async fn concurrent_replace_has_one_winner(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "race");
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
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| *r == Err(StoreError::VersionConflict)));
}

pub async fn concurrent_inserts_of_one_name_have_one_winner(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = Arc::clone(&s);
            let c = channel(&a, "contested");
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

pub async fn reads_see_acknowledged_writes(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let mut c = channel(&a, "fresh");
    s.insert(c.clone(), 10).await.unwrap();
    for rev in 1..20 {
        let mut next = c.clone();
        next.revision = rev + 1;
        next.version = Version::generate();
        s.replace(next.clone(), rev).await.unwrap();
        assert_eq!(s.get(&a, &c.name).await.unwrap(), Some(next.clone()));
        c = next;
    }
}

/// A purge may resolve before it is durable, but a later write by the same caller sees it: the
/// name is free and the namespace has room (the service purges, then creates).
pub async fn purge_is_ordered_before_later_writes(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let old = channel(&a, "purged");
    s.insert(old.clone(), 1).await.unwrap();
    // A purge that lost its race changes nothing (whether it says so is up to the backend).
    let _ = s.purge(&a, &old.name, 7).await;
    s.purge(&a, &old.name, 1).await.unwrap();
    let mut new = channel(&a, "purged");
    new.version = Version::generate();
    s.insert(new.clone(), 1).await.unwrap();
    assert_eq!(s.get(&a, &new.name).await.unwrap(), Some(new));
    assert_eq!(s.list(&a, None, None, 10).await.unwrap().len(), 1);
}

/// `clear` removes every channel of every namespace, returns them, and leaves a store that
/// works as a fresh one: names are free again and the limits count from zero.
pub async fn clear_empties_every_namespace(s: Arc<dyn Store>) {
    assert!(s.namespaces().await.unwrap().is_empty());
    assert!(s.clear().await.unwrap().is_empty());
    let a = ns("111111111111", "us-east-1");
    let b = ns("222222222222", "eu-west-1");
    let c = ns("111111111111", "ap-south-1");
    let mut inserted = Vec::new();
    for (n, names) in [
        (&a, &["x", "y", "z"][..]),
        (&b, &["x"][..]),
        (&c, &["q", "r"][..]),
    ] {
        for name in names {
            let ch = channel(n, name);
            s.insert(ch.clone(), 3).await.unwrap();
            inserted.push(ch);
        }
    }
    let mut listed = s.namespaces().await.unwrap();
    listed.sort();
    assert_eq!(listed, [c.clone(), a.clone(), b.clone()]);
    let mut cleared = s.clear().await.unwrap();
    let key = |ch: &Channel| (ch.ns.clone(), ch.name.clone());
    cleared.sort_by_key(key);
    inserted.sort_by_key(key);
    assert_eq!(cleared, inserted);
    for n in [&a, &b, &c] {
        assert!(names(&*s, n).await.is_empty());
        assert_eq!(s.get(n, &cname("x")).await.unwrap(), None);
    }
    assert!(s.namespaces().await.unwrap().is_empty());
    assert!(s.clear().await.unwrap().is_empty());
    // The namespace's limit counts from zero again, and a cleared name can be created anew.
    for name in ["x", "y", "z"] {
        s.insert(channel(&a, name), 3).await.unwrap();
    }
    assert_eq!(names(&*s, &a).await, ["x", "y", "z"]);
    assert_eq!(s.namespaces().await.unwrap(), [a]);
}
