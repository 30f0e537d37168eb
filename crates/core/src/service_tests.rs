#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::ids::{AccountId, Region};
use crate::store::MemoryStore;

struct Fixture {
    svc: Arc<ChannelService>,
    clock: Arc<ManualClock>,
    ns: Namespace,
}

fn fixture(delay: Duration, max_channels: usize) -> Fixture {
    let clock = Arc::new(ManualClock::new(1_700_000_000_123));
    let svc = Arc::new(ChannelService::new(
        Arc::new(MemoryStore::new()),
        clock.clone(),
        ServiceConfig {
            lifecycle_delay: delay,
            max_channels,
        },
    ));
    let ns = Namespace::new(
        AccountId::parse("111122223333").unwrap(),
        Region::parse("us-east-1").unwrap(),
    );
    Fixture { svc, clock, ns }
}

fn name(s: &str) -> ChannelName {
    ChannelName::parse("ChannelName", s).unwrap()
}

async fn create(f: &Fixture, n: &str) -> Channel {
    f.svc
        .create(
            &f.ns,
            CreateChannel {
                name: name(n),
                channel_type: ChannelType::SingleMaster,
                ttl: MessageTtl::DEFAULT,
                tags: vec![],
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn create_sets_aws_identity_and_defaults() {
    let f = fixture(Duration::ZERO, 10);
    let c = create(&f, "demo").await;
    assert!(c
        .arn
        .as_str()
        .starts_with("arn:aws:kinesisvideo:us-east-1:111122223333:channel/demo/170000000012"));
    assert_eq!(c.arn.suffix, c.created_millis.to_string());
    assert_eq!(c.version.as_str().len(), 20);
    let v = f
        .svc
        .describe(&f.ns, &ChannelRef::Name(name("demo")))
        .await
        .unwrap();
    assert_eq!(v.status, ChannelStatus::Active);
    assert_eq!(v.channel.ttl, MessageTtl::DEFAULT);
    let by_arn = f
        .svc
        .describe(&f.ns, &ChannelRef::Arn(c.arn.clone()))
        .await
        .unwrap();
    assert_eq!(by_arn, v);
}

#[tokio::test]
async fn duplicate_names_and_full_mesh_are_refused() {
    let f = fixture(Duration::ZERO, 10);
    create(&f, "dup").await;
    let err = f
        .svc
        .create(
            &f.ns,
            CreateChannel {
                name: name("dup"),
                channel_type: ChannelType::SingleMaster,
                ttl: MessageTtl::DEFAULT,
                tags: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ResourceInUseException");
    let err = f
        .svc
        .create(
            &f.ns,
            CreateChannel {
                name: name("mesh"),
                channel_type: ChannelType::FullMesh,
                ttl: MessageTtl::DEFAULT,
                tags: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidArgumentException");
}

#[tokio::test]
async fn arns_of_other_namespaces_and_old_incarnations_are_not_found() {
    let f = fixture(Duration::ZERO, 10);
    let c = create(&f, "x").await;
    let other = Namespace::new(
        AccountId::parse("999999999999").unwrap(),
        Region::parse("us-east-1").unwrap(),
    );
    let err = f
        .svc
        .describe(&other, &ChannelRef::Arn(c.arn.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ResourceNotFoundException");
    f.svc.delete(&f.ns, &c.arn, None).await.unwrap();
    f.clock.advance(Duration::from_millis(5));
    let again = create(&f, "x").await;
    assert_ne!(again.arn, c.arn);
    let err = f
        .svc
        .describe(&f.ns, &ChannelRef::Arn(c.arn))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ResourceNotFoundException");
}

#[tokio::test]
async fn update_rotates_version_and_checks_current_version() {
    let f = fixture(Duration::ZERO, 10);
    let c = create(&f, "u").await;
    let ttl5 = MessageTtl::parse("t", 5).unwrap();
    let stale = Version::generate();
    let err = f
        .svc
        .update(&f.ns, &c.arn, &stale, Some(ttl5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VersionMismatchException");
    let unchanged = f.svc.get_by_arn(&f.ns, &c.arn).await.unwrap();
    assert_eq!(unchanged.channel.version, c.version);
    assert_eq!(unchanged.channel.ttl, MessageTtl::DEFAULT);

    let next = f
        .svc
        .update(&f.ns, &c.arn, &c.version, Some(ttl5))
        .await
        .unwrap();
    assert_ne!(next.version, c.version);
    let now = f.svc.get_by_arn(&f.ns, &c.arn).await.unwrap();
    assert_eq!(now.channel.ttl, ttl5);
    assert_eq!(now.status, ChannelStatus::Active);
    // The old version is now stale.
    let err = f
        .svc
        .update(&f.ns, &c.arn, &c.version, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VersionMismatchException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_with_one_version_have_one_winner() {
    let f = fixture(Duration::ZERO, 10);
    let c = create(&f, "race").await;
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let svc = Arc::clone(&f.svc);
            let (ns, arn, v) = (f.ns.clone(), c.arn.clone(), c.version.clone());
            tokio::spawn(async move {
                let ttl = MessageTtl::parse("t", 10 + i).unwrap();
                svc.update(&ns, &arn, &v, Some(ttl)).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), "VersionMismatchException");
    }
}

#[tokio::test]
async fn lifecycle_with_delay_is_observable() {
    let f = fixture(Duration::from_secs(2), 10);
    let c = create(&f, "slow").await;
    let status = |f: &Fixture| {
        let (svc, ns, arn) = (Arc::clone(&f.svc), f.ns.clone(), c.arn.clone());
        async move { svc.get_by_arn(&ns, &arn).await.map(|v| v.status) }
    };
    assert_eq!(status(&f).await.unwrap(), ChannelStatus::Creating);
    let err = f
        .svc
        .update(&f.ns, &c.arn, &c.version, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ResourceInUseException");
    assert_eq!(
        f.svc.delete(&f.ns, &c.arn, None).await.unwrap_err().code(),
        "ResourceInUseException"
    );
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(status(&f).await.unwrap(), ChannelStatus::Active);

    let next = f.svc.update(&f.ns, &c.arn, &c.version, None).await.unwrap();
    assert_eq!(status(&f).await.unwrap(), ChannelStatus::Updating);
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(status(&f).await.unwrap(), ChannelStatus::Active);

    f.svc
        .delete(&f.ns, &c.arn, Some(&next.version))
        .await
        .unwrap();
    assert_eq!(status(&f).await.unwrap(), ChannelStatus::Deleting);
    // The name is still held while deleting.
    let again = f
        .svc
        .create(
            &f.ns,
            CreateChannel {
                name: name("slow"),
                channel_type: ChannelType::SingleMaster,
                ttl: MessageTtl::DEFAULT,
                tags: vec![],
            },
        )
        .await;
    assert_eq!(again.unwrap_err().code(), "ResourceInUseException");
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(
        status(&f).await.unwrap_err().code(),
        "ResourceNotFoundException"
    );
    create(&f, "slow").await;
}

#[tokio::test]
async fn delete_checks_version_when_given() {
    let f = fixture(Duration::ZERO, 10);
    let c = create(&f, "d").await;
    let err = f
        .svc
        .delete(&f.ns, &c.arn, Some(&Version::generate()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VersionMismatchException");
    f.svc.delete(&f.ns, &c.arn, Some(&c.version)).await.unwrap();
    assert_eq!(
        f.svc.get_by_arn(&f.ns, &c.arn).await.unwrap_err().code(),
        "ResourceNotFoundException"
    );
}

#[tokio::test]
async fn account_limit_counts_live_channels_only() {
    let f = fixture(Duration::from_secs(1), 2);
    let a = create(&f, "a").await;
    create(&f, "b").await;
    let err = f
        .svc
        .create(
            &f.ns,
            CreateChannel {
                name: name("c"),
                channel_type: ChannelType::SingleMaster,
                ttl: MessageTtl::DEFAULT,
                tags: vec![],
            },
        )
        .await;
    assert_eq!(
        err.unwrap_err().code(),
        "AccountChannelLimitExceededException"
    );
    f.clock.advance(Duration::from_secs(1));
    f.svc.delete(&f.ns, &a.arn, None).await.unwrap();
    f.clock.advance(Duration::from_secs(1));
    create(&f, "c").await;
}

#[tokio::test]
async fn list_pages_survive_creates_and_deletes() {
    let f = fixture(Duration::ZERO, 1000);
    let mut arns = std::collections::BTreeMap::new();
    for i in 0..50 {
        let n = format!("ch{i:03}");
        arns.insert(n.clone(), create(&f, &n).await.arn);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut round = 0;
    loop {
        let page = f.svc.list(&f.ns, None, 7, token.as_deref()).await.unwrap();
        assert!(page.channels.len() <= 7);
        seen.extend(page.channels.iter().map(|v| v.channel.name.to_string()));
        // Between pages: delete one channel not yet seen and create new ones.
        round += 1;
        let victim = format!("ch{:03}", 49 - round);
        if !seen.contains(&victim) {
            if let Some(arn) = arns.remove(&victim) {
                f.svc.delete(&f.ns, &arn, None).await.unwrap();
            }
        }
        create(&f, &format!("new{round:03}")).await;
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "no duplicates, in order");
    for n in arns.keys() {
        assert!(seen.contains(n), "{n} survived and must be listed");
    }
}

#[tokio::test]
async fn list_filters_by_prefix_and_rejects_bad_tokens() {
    let f = fixture(Duration::ZERO, 100);
    for n in ["cam-1", "cam-2", "door", "cam_3"] {
        create(&f, n).await;
    }
    let p = name("cam-");
    let page = f.svc.list(&f.ns, Some(&p), 500, None).await.unwrap();
    let names: Vec<_> = page
        .channels
        .iter()
        .map(|v| v.channel.name.to_string())
        .collect();
    assert_eq!(names, ["cam-1", "cam-2"]);
    assert!(page.next_token.is_none());
    let exact = f.svc.list(&f.ns, None, 4, None).await.unwrap();
    assert_eq!(exact.channels.len(), 4);
    assert!(exact.next_token.is_none(), "no token when nothing follows");
    assert_eq!(
        f.svc
            .list(&f.ns, None, 5, Some("bogus!"))
            .await
            .unwrap_err()
            .code(),
        "InvalidArgumentException"
    );
}

#[tokio::test]
async fn tags_merge_replace_and_cap_at_fifty() {
    let f = fixture(Duration::ZERO, 10);
    let c = create(&f, "t").await;
    let tag = |k: &str, v: &str| {
        (
            TagKey::parse("Key", k).unwrap(),
            TagValue::parse("Value", v).unwrap(),
        )
    };
    f.svc
        .tag(&f.ns, &c.arn, vec![tag("a", "1"), tag("b", "2")])
        .await
        .unwrap();
    f.svc.tag(&f.ns, &c.arn, vec![tag("a", "3")]).await.unwrap();
    let tags = f.svc.list_tags(&f.ns, &c.arn).await.unwrap();
    assert_eq!(tags.get("a").map(String::as_str), Some("3"));
    assert_eq!(tags.len(), 2);
    f.svc
        .untag(
            &f.ns,
            &c.arn,
            &[
                TagKey::parse("k", "b").unwrap(),
                TagKey::parse("k", "zz").unwrap(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(f.svc.list_tags(&f.ns, &c.arn).await.unwrap().len(), 1);
    let many: Vec<_> = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
    f.svc.tag(&f.ns, &c.arn, many).await.unwrap();
    let err = f
        .svc
        .tag(&f.ns, &c.arn, vec![tag("one-too-many", "v")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TagsPerResourceExceededLimitException");
    assert_eq!(f.svc.list_tags(&f.ns, &c.arn).await.unwrap().len(), 50);
    // Tagging does not rotate the channel's Version.
    assert_eq!(
        f.svc
            .get_by_arn(&f.ns, &c.arn)
            .await
            .unwrap()
            .channel
            .version,
        c.version
    );
}

/// A store that counts which of `remove` and `purge` the service calls.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    removes: std::sync::atomic::AtomicUsize,
    purges: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn insert(&self, channel: Channel, max: usize) -> Result<(), StoreError> {
        self.inner.insert(channel, max).await
    }
    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        self.inner.get(ns, name).await
    }
    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        self.inner.list(ns, prefix, after, limit).await
    }
    async fn replace(&self, channel: Channel, expected: u64) -> Result<(), StoreError> {
        self.inner.replace(channel, expected).await
    }
    async fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected: u64,
    ) -> Result<(), StoreError> {
        self.removes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.remove(ns, name, expected).await
    }
    async fn purge(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected: u64,
    ) -> Result<(), StoreError> {
        self.purges
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.remove(ns, name, expected).await
    }
    async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        self.inner.namespaces().await
    }
    async fn clear(&self) -> Result<Vec<Channel>, StoreError> {
        self.inner.clear().await
    }
}

/// Reads (describe, list, the create that reuses the name) purge channels that finished
/// deleting through `Store::purge`, which a durable store need not wait for: a read never
/// waits for an fsync of its own.
#[tokio::test]
async fn reads_purge_finished_deletes_without_a_durable_remove() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(CountingStore::default());
    let clock = Arc::new(ManualClock::new(1_700_000_000_123));
    let svc = ChannelService::new(
        Arc::clone(&store) as Arc<dyn Store>,
        clock.clone(),
        ServiceConfig {
            lifecycle_delay: Duration::from_secs(1),
            max_channels: 10,
        },
    );
    let f = Fixture {
        svc: Arc::new(svc),
        clock,
        ns: Namespace::new(
            AccountId::parse("111122223333").unwrap(),
            Region::parse("us-east-1").unwrap(),
        ),
    };
    for n in ["one", "two", "three"] {
        let c = create(&f, n).await;
        f.clock.advance(Duration::from_secs(1));
        f.svc.delete(&f.ns, &c.arn, None).await.unwrap();
    }
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        f.svc
            .describe(&f.ns, &ChannelRef::Name(name("one")))
            .await
            .unwrap_err()
            .code(),
        "ResourceNotFoundException"
    );
    assert!(f
        .svc
        .list(&f.ns, None, 10, None)
        .await
        .unwrap()
        .channels
        .is_empty());
    create(&f, "three").await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 3);
    assert_eq!(store.removes.load(Ordering::SeqCst), 0);
}
