//! The behaviour every [`Store`] backend must show. Each backend's tests call [`run_all`] with a
//! factory for fresh, empty stores.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::{Store, StoreError};
use crate::ids::{AccountId, ChannelName, MessageTtl, Namespace, Region, ResourceArn, Version};
use crate::model::{Channel, ChannelStatus, ChannelType, Tags};

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

pub fn run_all(make: &dyn Fn() -> Arc<dyn Store>) {
    insert_then_get_round_trips(&*make());
    duplicate_names_are_refused(&*make());
    limit_counts_only_its_namespace(&*make());
    list_is_ordered_filtered_and_keyset_paged(&*make());
    replace_is_compare_and_swap(&*make());
    remove_is_compare_and_swap(&*make());
    namespaces_are_isolated(&*make());
    concurrent_replace_has_one_winner(make());
}

fn insert_then_get_round_trips(s: &dyn Store) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "one");
    s.insert(&c, 10).unwrap();
    assert_eq!(s.get(&a, &c.name).unwrap(), Some(c.clone()));
    assert_eq!(
        s.get(&a, &ChannelName::parse("n", "two").unwrap()).unwrap(),
        None
    );
    assert_eq!(s.all().unwrap(), vec![c]);
}

fn duplicate_names_are_refused(s: &dyn Store) {
    let a = ns("111111111111", "us-east-1");
    s.insert(&channel(&a, "dup"), 10).unwrap();
    let again = channel(&a, "dup");
    assert!(matches!(
        s.insert(&again, 10),
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(s.all().unwrap().len(), 1);
}

fn limit_counts_only_its_namespace(s: &dyn Store) {
    let a = ns("111111111111", "us-east-1");
    let b = ns("111111111111", "us-west-2");
    s.insert(&channel(&a, "a1"), 2).unwrap();
    s.insert(&channel(&a, "a2"), 2).unwrap();
    assert!(matches!(
        s.insert(&channel(&a, "a3"), 2),
        Err(StoreError::LimitExceeded)
    ));
    s.insert(&channel(&b, "b1"), 2).unwrap();
}

fn list_is_ordered_filtered_and_keyset_paged(s: &dyn Store) {
    let a = ns("111111111111", "us-east-1");
    for n in ["b", "a", "ab", "a_c", "c", "A", "a.b", "a-b"] {
        s.insert(&channel(&a, n), 100).unwrap();
    }
    let names = |v: Vec<Channel>| {
        v.into_iter()
            .map(|c| c.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.list(&a, None, None, 100).unwrap()),
        ["A", "a", "a-b", "a.b", "a_c", "ab", "b", "c"]
    );
    assert_eq!(names(s.list(&a, None, None, 2).unwrap()), ["A", "a"]);
    let after = ChannelName::parse("n", "a.b").unwrap();
    assert_eq!(
        names(s.list(&a, None, Some(&after), 3).unwrap()),
        ["a_c", "ab", "b"]
    );
    assert_eq!(
        names(s.list(&a, Some("a"), None, 100).unwrap()),
        ["a", "a-b", "a.b", "a_c", "ab"]
    );
    // `_` and `.` are literal in a prefix, not wildcards.
    assert_eq!(names(s.list(&a, Some("a_"), None, 100).unwrap()), ["a_c"]);
    assert_eq!(
        names(s.list(&a, Some("a"), Some(&after), 100).unwrap()),
        ["a_c", "ab"]
    );
    // A cursor that no longer exists still pages correctly.
    let gone = ChannelName::parse("n", "aa").unwrap();
    assert_eq!(names(s.list(&a, None, Some(&gone), 1).unwrap()), ["ab"]);
}

fn replace_is_compare_and_swap(s: &dyn Store) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "cas");
    s.insert(&c, 10).unwrap();
    let mut next = c.clone();
    next.version = Version::generate();
    next.ttl = MessageTtl::parse("t", 5).unwrap();
    next.revision = 2;
    assert!(matches!(
        s.replace(&next, 7),
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(s.get(&a, &c.name).unwrap(), Some(c.clone()));
    s.replace(&next, 1).unwrap();
    assert_eq!(s.get(&a, &c.name).unwrap(), Some(next.clone()));
    assert!(matches!(
        s.replace(&next, 1),
        Err(StoreError::VersionConflict)
    ));
    let missing = channel(&a, "missing");
    assert!(matches!(s.replace(&missing, 1), Err(StoreError::NotFound)));
}

fn remove_is_compare_and_swap(s: &dyn Store) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "rm");
    s.insert(&c, 10).unwrap();
    assert!(matches!(
        s.remove(&a, &c.name, 2),
        Err(StoreError::VersionConflict)
    ));
    s.remove(&a, &c.name, 1).unwrap();
    assert_eq!(s.get(&a, &c.name).unwrap(), None);
    assert!(matches!(
        s.remove(&a, &c.name, 1),
        Err(StoreError::NotFound)
    ));
    // The name is free again.
    s.insert(&channel(&a, "rm"), 10).unwrap();
}

fn namespaces_are_isolated(s: &dyn Store) {
    let a = ns("111111111111", "us-east-1");
    let b = ns("222222222222", "us-east-1");
    let c = channel(&a, "same");
    s.insert(&c, 10).unwrap();
    s.insert(&channel(&b, "same"), 10).unwrap();
    assert_eq!(s.list(&a, None, None, 10).unwrap().len(), 1);
    assert_eq!(s.get(&a, &c.name).unwrap().unwrap().ns, a);
    assert_eq!(s.get(&b, &c.name).unwrap().unwrap().ns, b);
    s.remove(&a, &c.name, 1).unwrap();
    assert!(s.get(&b, &c.name).unwrap().is_some());
}

fn concurrent_replace_has_one_winner(s: Arc<dyn Store>) {
    let a = ns("111111111111", "us-east-1");
    let c = channel(&a, "race");
    s.insert(&c, 10).unwrap();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let s = Arc::clone(&s);
            let c = c.clone();
            std::thread::spawn(move || {
                let mut next = c.clone();
                next.version = Version::generate();
                next.revision = 2;
                s.replace(&next, 1)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| matches!(r, Err(StoreError::VersionConflict))));
}
