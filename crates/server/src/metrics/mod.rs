//! `GET /metrics`: everything the node counts, in the Prometheus text format (0.0.4), rendered
//! by `prometheus-client` from one [`Registry`] (docs/metrics.md lists every metric).
//!
//! Two kinds of figures meet here:
//! - the signaling core's counters and the listeners' figures stay lock-free atomics where they
//!   are counted (`kvs_core::relay::metrics`, the admission caps) and are read only when a scrape
//!   asks, by a [`Collector`] ([`signaling::CoreCollector`]): the hot paths pay nothing;
//! - what the server measures itself (API calls by operation and code, API, store and Redis
//!   latency, TURN allocations and bytes) are `prometheus-client` metrics owned by this module
//!   and updated where the call passes: [`api::ApiMetrics`] watches every API call
//!   ([`crate::observe::CallWatcher`]), [`store::TimedStore`] wraps the store port,
//!   [`RedisTimings`] watches every Redis round trip, [`turn::TurnMetrics`] the relay.
//!
//! Every family is declared from the start ([`Declared`]): its `# HELP` and `# TYPE` lines are in
//! the first scrape even before anything was observed, so dashboards and alerts can be checked
//! against a fresh node.

pub mod api;
pub mod media;
pub mod signaling;
pub mod storage;
pub mod store;
pub mod turn;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use signaling::{CoreCollector, CoreFigures, ServerFigures};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Request latency buckets, in seconds: 0.5 ms to 10 s (an API call is answered from memory in
/// well under a millisecond, a durable write waits for its group commit, a slow Redis for its
/// 2 s timeout).
pub const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Store and Redis latency buckets, in seconds: 50 µs to 10 s (an in-memory read takes
/// microseconds, a Redis round trip a fraction of a millisecond on a LAN).
pub const BACKEND_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn backend_histogram() -> Histogram {
    Histogram::new(BACKEND_BUCKETS)
}

/// One label `operation` (an API operation or a store method), or `command` (Redis).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

/// Histograms by one static label, built with a plain function (so the type can be named).
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A metric whose descriptor is written even while it has no sample (a family nobody has
/// touched yet): the registry itself skips empty families.
struct Declared<M> {
    name: &'static str,
    help: &'static str,
    metric: M,
}

impl<M> fmt::Debug for Declared<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Declared")
            .field("name", &self.name)
            .finish()
    }
}

impl<M: EncodeMetric + Send + Sync + 'static> Collector for Declared<M> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let metric_encoder =
            encoder.encode_descriptor(self.name, self.help, None, self.metric.metric_type())?;
        self.metric.encode(metric_encoder)
    }
}

/// Registers `metric` under `name` (for a counter, without its `_total`: the encoder adds it).
fn declare<M: EncodeMetric + Send + Sync + 'static>(
    registry: &mut Registry,
    name: &'static str,
    help: &'static str,
    metric: M,
) {
    registry.register_collector(Box::new(Declared { name, help, metric }));
}

/// Redis round trips by command (`kvs_redis_command_duration_seconds`), told by `kvs-redis`.
#[derive(Debug)]
pub struct RedisTimings {
    seconds: HistogramFamily<RedisLabel>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedisLabel {
    pub command: &'static str,
}

impl kvs_redis::RoundTrips for RedisTimings {
    fn observe(&self, command: &'static str, elapsed: Duration) {
        self.seconds
            .get_or_create(&RedisLabel { command })
            .observe(elapsed.as_secs_f64());
    }
}

/// The node's metrics: the registry `/metrics` renders, and the handles that update it.
pub struct Metrics {
    registry: Registry,
    api: Arc<api::ApiMetrics>,
    store: store::StoreTimings,
    redis: Arc<RedisTimings>,
    turn: Arc<turn::TurnMetrics>,
    storage: Arc<storage::StorageMetrics>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family the server updates itself, registered and empty. The core's counters are
    /// added by [`Metrics::collect`] once the application exists.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let api = Arc::new(api::ApiMetrics::new());
        api.register(&mut registry);
        let store = store::StoreTimings::new();
        store.register(&mut registry);
        let redis = Arc::new(RedisTimings {
            seconds: Family::new_with_constructor(backend_histogram),
        });
        declare(
            &mut registry,
            "kvs_redis_command_duration_seconds",
            "Redis round trips of this node by command (EVALSHA runs the backends' Lua scripts; empty without --store redis)",
            redis.seconds.clone(),
        );
        let turn = Arc::new(turn::TurnMetrics::new());
        turn.register(&mut registry);
        let storage = Arc::new(storage::StorageMetrics::new());
        storage.register(&mut registry);
        Self {
            registry,
            api,
            store,
            redis,
            turn,
            storage,
        }
    }

    /// Adds figures read at scrape time (the core's counters, the listeners').
    pub fn collect(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// The watcher that counts and times API calls, for [`crate::observe::Calls`].
    pub fn api(&self) -> Arc<dyn crate::observe::CallWatcher> {
        Arc::clone(&self.api) as Arc<dyn crate::observe::CallWatcher>
    }

    /// Wraps the store port so every call is timed.
    pub fn timed_store(
        &self,
        store: Arc<dyn kvs_core::store::Store>,
    ) -> Arc<dyn kvs_core::store::Store> {
        Arc::new(store::TimedStore::new(store, self.store.clone()))
    }

    /// The observer of Redis round trips, for [`kvs_redis::Redis::with_round_trips`].
    pub fn redis(&self) -> Arc<dyn kvs_redis::RoundTrips> {
        Arc::clone(&self.redis) as Arc<dyn kvs_redis::RoundTrips>
    }

    pub fn turn(&self) -> Arc<turn::TurnMetrics> {
        Arc::clone(&self.turn)
    }

    /// The storage sessions' counters (issue 15).
    pub fn storage(&self) -> Arc<storage::StorageMetrics> {
        Arc::clone(&self.storage)
    }

    /// The exposition, in the Prometheus text format.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// `registry` in the Prometheus text format. Writing to a `String` cannot fail; a collector's
/// error (none of ours returns one) would cut the text short, and is logged.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        tracing::error!(error = %e, "encoding /metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_node_declares_every_family() {
        let text = Metrics::new().render();
        for family in [
            "# TYPE kvs_api_requests_total counter",
            "# TYPE kvs_api_request_duration_seconds histogram",
            "# TYPE kvs_store_operation_duration_seconds histogram",
            "# TYPE kvs_redis_command_duration_seconds histogram",
            "# TYPE kvs_turn_allocations_total counter",
            "# TYPE kvs_turn_allocations_open gauge",
            "# TYPE kvs_turn_relayed_bytes_total counter",
            "# TYPE kvs_storage_sessions_started_total counter",
            "# TYPE kvs_storage_sessions_active gauge",
        ] {
            assert!(text.contains(family), "{family} missing in:\n{text}");
        }
    }

    #[test]
    fn redis_round_trips_are_a_histogram_by_command() {
        let m = Metrics::new();
        let redis = m.redis();
        redis.observe("HGET", Duration::from_micros(70));
        redis.observe("HGET", Duration::from_millis(3));
        let text = m.render();
        for line in [
            r#"kvs_redis_command_duration_seconds_bucket{command="HGET",le="5e-05"} 0"#,
            r#"kvs_redis_command_duration_seconds_bucket{command="HGET",le="0.0001"} 1"#,
            r#"kvs_redis_command_duration_seconds_bucket{command="HGET",le="0.005"} 2"#,
            r#"kvs_redis_command_duration_seconds_bucket{command="HGET",le="+Inf"} 2"#,
            r#"kvs_redis_command_duration_seconds_count{command="HGET"} 2"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
