//! The store port, timed: [`TimedStore`] wraps whichever backend `App::build` chose and observes
//! each call's duration in `kvs_store_operation_duration_seconds{operation}`. The backends know
//! nothing of it (docs/metrics.md "Store and Redis").

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use kvs_core::ids::{ChannelName, Namespace};
use kvs_core::model::Channel;
use kvs_core::store::{Store, StoreError};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{backend_histogram, declare, HistogramFamily, OperationLabel};

/// One histogram per store method, looked up once.
#[derive(Clone, Debug)]
pub struct StoreTimings {
    family: HistogramFamily<OperationLabel>,
    insert: Histogram,
    get: Histogram,
    list: Histogram,
    replace: Histogram,
    remove: Histogram,
    purge: Histogram,
    ping: Histogram,
}

impl Default for StoreTimings {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreTimings {
    pub fn new() -> Self {
        let family: HistogramFamily<OperationLabel> =
            Family::new_with_constructor(backend_histogram);
        let of = |operation| family.get_or_create_owned(&OperationLabel { operation });
        Self {
            insert: of("insert"),
            get: of("get"),
            list: of("list"),
            replace: of("replace"),
            remove: of("remove"),
            purge: of("purge"),
            ping: of("ping"),
            family,
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        declare(
            registry,
            "kvs_store_operation_duration_seconds",
            "Channel store calls by operation (insert, get, list, replace, remove, purge, ping), whatever the backend",
            self.family.clone(),
        );
    }
}

/// A store whose every call is timed.
pub struct TimedStore {
    inner: Arc<dyn Store>,
    timings: StoreTimings,
}

impl TimedStore {
    pub fn new(inner: Arc<dyn Store>, timings: StoreTimings) -> Self {
        Self { inner, timings }
    }
}

async fn timed<T>(histogram: &Histogram, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    histogram.observe(started.elapsed().as_secs_f64());
    out
}

#[async_trait]
impl Store for TimedStore {
    async fn insert(&self, channel: Channel, max_per_namespace: usize) -> Result<(), StoreError> {
        timed(
            &self.timings.insert,
            self.inner.insert(channel, max_per_namespace),
        )
        .await
    }

    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        timed(&self.timings.get, self.inner.get(ns, name)).await
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        timed(
            &self.timings.list,
            self.inner.list(ns, prefix, after, limit),
        )
        .await
    }

    async fn replace(&self, channel: Channel, expected_revision: u64) -> Result<(), StoreError> {
        timed(
            &self.timings.replace,
            self.inner.replace(channel, expected_revision),
        )
        .await
    }

    async fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        timed(
            &self.timings.remove,
            self.inner.remove(ns, name, expected_revision),
        )
        .await
    }

    async fn purge(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        timed(
            &self.timings.purge,
            self.inner.purge(ns, name, expected_revision),
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(&self.timings.ping, self.inner.ping()).await
    }

    // Test-suite endpoints only (`/_kvs/state`, `/_kvs/reset`): not timed.
    async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        self.inner.namespaces().await
    }

    async fn clear(&self) -> Result<Vec<Channel>, StoreError> {
        self.inner.clear().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvs_core::store::MemoryStore;

    #[tokio::test]
    async fn every_call_is_observed_under_its_operation() {
        let timings = StoreTimings::new();
        let mut registry = Registry::default();
        timings.register(&mut registry);
        let store = TimedStore::new(Arc::new(MemoryStore::new()), timings);
        store.ping().await.unwrap();
        store.ping().await.unwrap();
        let text = super::super::render(&registry);
        for line in [
            r#"kvs_store_operation_duration_seconds_count{operation="ping"} 2"#,
            r#"kvs_store_operation_duration_seconds_count{operation="get"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
