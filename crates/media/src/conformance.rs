//! The behaviour every [`FragmentStore`] backend must show, one test per case. A backend's tests
//! invoke [`crate::fragment_store_conformance!`] with an expression making a fresh, empty store
//! (it may `.await`), or a [`Made`] when the store needs something kept alive and cleaned up
//! after the case (a temporary directory); the macro expands to one `#[tokio::test]` per case.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::store::*;

/// A store made for one case, and what is dropped after it (e.g. a [`TempDir`] removing the
/// store's directory).
pub struct Made {
    pub store: Arc<dyn FragmentStore>,
    pub keep: Option<TempDir>,
}

impl<S: FragmentStore + 'static> From<Arc<S>> for Made {
    fn from(store: Arc<S>) -> Self {
        Self { store, keep: None }
    }
}

/// A directory removed (with what it holds) when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new, unique path under the system's temporary directory (not created).
    pub fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("{prefix}-{}-{nanos}", std::process::id());
        Self(std::env::temp_dir().join(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.0) {
                // A test's teardown failure is a failure, not a leak.
                panic!("cannot remove {}: {e}", self.0.display());
            }
        }
    }
}

#[macro_export]
macro_rules! fragment_store_conformance {
    ($make:expr) => {
        $crate::fragment_store_conformance!(@cases $make;
            appends_are_numbered_in_order_and_read_back,
            positions_select_where_a_listing_starts,
            deletions_count_what_they_remove,
            streams_are_isolated,
            waiting_readers_wake_on_append_or_time_out,
            ingesting_marks_expire
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let made: $crate::conformance::Made = $make.await.into();
                $crate::conformance::$case(::std::sync::Arc::clone(&made.store)).await;
                drop(made);
            }
        )*
    };
}

pub fn key(name: &str) -> StreamKey {
    StreamKey {
        account: "111122223333".into(),
        region: "us-west-2".into(),
        name: name.into(),
        created: "1700000000000".into(),
    }
}

/// A fragment received at `server_ms`, produced 5 ms earlier, lasting 1 s.
pub fn frag(server_ms: u64, body: &str) -> NewFragment {
    NewFragment {
        producer_ms: server_ms - 5,
        server_ms,
        duration_ms: 1000,
        cluster_offset: 3,
        bytes: Bytes::from(body.as_bytes().to_vec()),
    }
}

fn numbers(v: &[FragmentMeta]) -> Vec<u64> {
    v.iter().map(|m| m.number).collect()
}

pub async fn appends_are_numbered_in_order_and_read_back(s: Arc<dyn FragmentStore>) {
    let k = key("cam");
    let a = s.append(&k, frag(10_000, "first")).await.unwrap();
    // A fragment stamped earlier still gets a larger number.
    let b = s.append(&k, frag(9_000, "second!")).await.unwrap();
    let c = s.append(&k, frag(12_000, "third")).await.unwrap();
    assert!(a.number < b.number && b.number < c.number);
    assert_eq!(a.server_ms, 10_000);
    assert_eq!(a.producer_ms, 9_995);
    assert_eq!(a.duration_ms, 1000);
    assert_eq!(a.cluster_offset, 3);
    assert_eq!(b.len, 7);
    let all = s.list(&k, Position::Earliest, 10).await.unwrap();
    assert_eq!(all, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(
        numbers(&s.list(&k, Position::Earliest, 2).await.unwrap()),
        [a.number, b.number]
    );
    assert_eq!(
        s.read(&k, b.number).await.unwrap().unwrap(),
        &b"second!"[..]
    );
    assert_eq!(s.read(&k, c.number + 1).await.unwrap(), None);
    assert_eq!(
        s.usage().await.unwrap(),
        Usage {
            fragments: 3,
            bytes: 17
        }
    );
    assert_eq!(s.streams().await.unwrap(), vec![k]);
}

pub async fn positions_select_where_a_listing_starts(s: Arc<dyn FragmentStore>) {
    let k = key("cam");
    let a = s.append(&k, frag(10_000, "a")).await.unwrap();
    let b = s.append(&k, frag(11_000, "b")).await.unwrap();
    let c = s.append(&k, frag(12_000, "c")).await.unwrap();
    let from = |p| {
        let s = Arc::clone(&s);
        let k = k.clone();
        async move { numbers(&s.list(&k, p, 10).await.unwrap()) }
    };
    assert_eq!(from(Position::After(a.number)).await, [b.number, c.number]);
    assert_eq!(from(Position::After(c.number)).await, Vec::<u64>::new());
    assert_eq!(
        from(Position::After(0)).await,
        [a.number, b.number, c.number]
    );
    assert_eq!(from(Position::Latest).await, [c.number]);
    // Server 11,500 is inside b ([11,000, 12,000)); 9,000 is before everything.
    assert_eq!(from(Position::Server(11_500)).await, [b.number, c.number]);
    assert_eq!(from(Position::Server(11_000)).await, [b.number, c.number]);
    assert_eq!(
        from(Position::Server(9_000)).await,
        [a.number, b.number, c.number]
    );
    assert_eq!(from(Position::Server(13_000)).await, Vec::<u64>::new());
    // Producer times are 5 ms earlier: 10,996 is still inside a.
    assert_eq!(
        from(Position::Producer(10_994)).await,
        [a.number, b.number, c.number]
    );
    assert_eq!(from(Position::Producer(10_995)).await, [b.number, c.number]);
    assert_eq!(
        numbers(&s.list(&key("other"), Position::Earliest, 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        numbers(&s.list(&key("other"), Position::Latest, 10).await.unwrap()),
        Vec::<u64>::new()
    );
}

pub async fn deletions_count_what_they_remove(s: Arc<dyn FragmentStore>) {
    let k = key("cam");
    let a = s.append(&k, frag(10_000, "aa")).await.unwrap();
    let b = s.append(&k, frag(11_000, "bbb")).await.unwrap();
    let c = s.append(&k, frag(12_000, "cccc")).await.unwrap();
    let d = s.append(&k, frag(13_000, "d")).await.unwrap();
    let removed = s.delete_before(&k, 11_000).await.unwrap();
    assert_eq!(
        removed,
        Removed {
            fragments: 1,
            bytes: 2
        }
    );
    assert_eq!(s.read(&k, a.number).await.unwrap(), None);
    let removed = s.delete_through(&k, b.number).await.unwrap();
    assert_eq!(
        removed,
        Removed {
            fragments: 1,
            bytes: 3
        }
    );
    assert_eq!(
        numbers(&s.list(&k, Position::Earliest, 10).await.unwrap()),
        [c.number, d.number]
    );
    assert_eq!(
        s.usage().await.unwrap(),
        Usage {
            fragments: 2,
            bytes: 5
        }
    );
    assert_eq!(s.delete_before(&k, 1).await.unwrap(), Removed::default());
    let removed = s.delete_stream(&k).await.unwrap();
    assert_eq!(
        removed,
        Removed {
            fragments: 2,
            bytes: 5
        }
    );
    assert_eq!(s.usage().await.unwrap(), Usage::default());
    assert!(s.streams().await.unwrap().is_empty());
    assert_eq!(s.delete_stream(&k).await.unwrap(), Removed::default());
    // Numbers go on increasing after retention deleted everything.
    let e = s.append(&k, frag(10_000, "e")).await.unwrap();
    assert_eq!(s.delete_before(&k, u64::MAX).await.unwrap().fragments, 1);
    let f = s.append(&k, frag(9_000, "f")).await.unwrap();
    assert!(f.number > e.number);
}

pub async fn streams_are_isolated(s: Arc<dyn FragmentStore>) {
    let (one, two) = (key("one"), key("two"));
    let mut other_created = key("one");
    other_created.created = "1700000000001".into();
    s.append(&one, frag(10_000, "1")).await.unwrap();
    s.append(&two, frag(10_000, "22")).await.unwrap();
    assert!(s
        .list(&other_created, Position::Earliest, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.streams().await.unwrap(), vec![one.clone(), two.clone()]);
    s.delete_stream(&one).await.unwrap();
    assert_eq!(s.streams().await.unwrap(), vec![two.clone()]);
    assert_eq!(s.list(&two, Position::Earliest, 10).await.unwrap().len(), 1);
}

pub async fn waiting_readers_wake_on_append_or_time_out(s: Arc<dyn FragmentStore>) {
    let k = key("cam");
    assert!(!s
        .wait_newer(&k, None, Duration::from_millis(50))
        .await
        .unwrap());
    let a = s.append(&k, frag(10_000, "a")).await.unwrap();
    assert!(s
        .wait_newer(&k, None, Duration::from_millis(50))
        .await
        .unwrap());
    assert!(!s
        .wait_newer(&k, Some(a.number), Duration::from_millis(50))
        .await
        .unwrap());
    let waiter = {
        let (s, k) = (Arc::clone(&s), k.clone());
        tokio::spawn(async move {
            s.wait_newer(&k, Some(a.number), Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.append(&k, frag(11_000, "b")).await.unwrap();
    assert!(waiter.await.unwrap().unwrap());
}

pub async fn ingesting_marks_expire(s: Arc<dyn FragmentStore>) {
    let k = key("cam");
    assert!(!s.is_ingesting(&k).await.unwrap());
    s.mark_ingesting(&k, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(s.is_ingesting(&k).await.unwrap());
    assert!(!s.is_ingesting(&key("other")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!s.is_ingesting(&k).await.unwrap());
}
