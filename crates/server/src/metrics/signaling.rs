//! The signaling core's counters (`kvs_core::relay::metrics`, names prefixed `kvs_signaling_`)
//! and the listeners' and quotas' figures, read when a scrape asks ([`CoreCollector`]): they
//! stay plain atomics where they are counted, and the hot paths pay nothing for `/metrics`.
//!
//! The names are a contract (tests, dashboards and the soak read them): each keeps its name and
//! meaning. The message outcomes are also given as one family with an `outcome` label, and the
//! drops with a `reason` label, for dashboards that graph them side by side.

use std::fmt;

use kvs_core::relay::metrics::MetricsSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// The listeners' and quotas' figures (docs/behaviour.md "Connections").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFigures {
    pub connections_open: usize,
    pub connections_max: usize,
    pub connections_refused: usize,
    pub fd_exhausted: u64,
    pub requests_throttled: u64,
}

/// Everything the collector reads at a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreFigures {
    pub signaling: MetricsSnapshot,
    pub server: ServerFigures,
}

type Read<T> = fn(&T) -> u64;
type ReadSigned<T> = fn(&T) -> i64;

/// Gauges of the core: (name, help, value).
const CORE_GAUGES: [(&str, &str, ReadSigned<MetricsSnapshot>); 2] = [
    (
        "kvs_signaling_masters_connected",
        "Masters connected now",
        |s| s.masters_connected,
    ),
    (
        "kvs_signaling_viewers_connected",
        "Viewers connected now",
        |s| s.viewers_connected,
    ),
];

/// Counters of the core: (name, help, value); the names end in `_total`.
const CORE_COUNTERS: [(&str, &str, Read<MetricsSnapshot>); 20] = [
    (
        "kvs_signaling_connections_total",
        "Signaling connections accepted",
        |s| s.connections_total,
    ),
    (
        "kvs_signaling_connections_rejected_total",
        "Signaling connections refused",
        |s| s.connections_rejected,
    ),
    (
        "kvs_signaling_messages_relayed_total",
        "Messages delivered live",
        |s| s.messages_relayed,
    ),
    (
        "kvs_signaling_messages_held_total",
        "Messages held for a recipient not connected",
        |s| s.messages_held,
    ),
    (
        "kvs_signaling_messages_delivered_from_hold_total",
        "Held messages delivered on connect",
        |s| s.messages_delivered_from_hold,
    ),
    (
        "kvs_signaling_messages_expired_total",
        "Held messages whose TTL ran out",
        |s| s.messages_expired,
    ),
    (
        "kvs_signaling_messages_replaced_total",
        "Held offers/answers replaced by a newer one",
        |s| s.messages_replaced,
    ),
    (
        "kvs_signaling_messages_dropped_overflow_total",
        "Held messages dropped: per-channel bound",
        |s| s.messages_dropped_overflow,
    ),
    (
        "kvs_signaling_messages_dropped_deleted_total",
        "Held messages dropped: channel deleted",
        |s| s.messages_dropped_deleted,
    ),
    (
        "kvs_signaling_messages_held_slow_consumer_total",
        "Messages held for the recipient's next connection: its outbox was full",
        |s| s.messages_held_slow_consumer,
    ),
    (
        "kvs_signaling_connections_closed_slow_consumer_total",
        "Signaling connections closed because their client did not read (outbox full)",
        |s| s.connections_closed_slow_consumer,
    ),
    (
        "kvs_signaling_messages_rejected_total",
        "Invalid messages refused",
        |s| s.messages_rejected,
    ),
    (
        "kvs_signaling_messages_rate_limited_total",
        "Messages refused by rate limits",
        |s| s.messages_rate_limited,
    ),
    (
        "kvs_signaling_bus_published_total",
        "Envelopes sent to another node",
        |s| s.bus_published,
    ),
    (
        "kvs_signaling_bus_received_total",
        "Envelopes received from another node",
        |s| s.bus_received,
    ),
    (
        "kvs_signaling_bus_dropped_total",
        "Envelopes the bus refused (inbox full or node gone)",
        |s| s.bus_dropped,
    ),
    (
        "kvs_signaling_bus_dropped_on_arrival_total",
        "Relayed messages that reached this node's bus subscription with its inbox full",
        |s| s.bus_dropped_on_arrival,
    ),
    (
        "kvs_signaling_messages_dropped_unavailable_total",
        "Messages lost because the held-message backend was unreachable when putting them back",
        |s| s.messages_dropped_unavailable,
    ),
    (
        "kvs_signaling_lease_lapses_total",
        "Times this node's lease ran out before it was renewed (its connections were told to register again)",
        |s| s.lease_lapses,
    ),
    (
        "kvs_signaling_connections_reregistered_total",
        "Connections told to register again because presence no longer listed them",
        |s| s.connections_reregistered,
    ),
];

/// A message's outcomes as one family (`kvs_signaling_messages_total{outcome}`), each equal to
/// its own counter above. They are events in a message's life, not exclusive: a message held
/// and later delivered counts under `held` and `delivered_from_hold`.
const OUTCOMES: [(&str, Read<MetricsSnapshot>); 9] = [
    ("relayed", |s| s.messages_relayed),
    ("held", |s| s.messages_held),
    ("delivered_from_hold", |s| s.messages_delivered_from_hold),
    ("expired", |s| s.messages_expired),
    ("replaced", |s| s.messages_replaced),
    ("held_slow_consumer", |s| s.messages_held_slow_consumer),
    ("dropped", |s| {
        s.messages_dropped_overflow
            .saturating_add(s.messages_dropped_deleted)
            .saturating_add(s.messages_dropped_unavailable)
    }),
    ("rejected", |s| s.messages_rejected),
    ("rate_limited", |s| s.messages_rate_limited),
];

/// Why messages were dropped (`kvs_signaling_messages_dropped_total{reason}`).
const DROP_REASONS: [(&str, Read<MetricsSnapshot>); 3] = [
    ("overflow", |s| s.messages_dropped_overflow),
    ("deleted", |s| s.messages_dropped_deleted),
    ("unavailable", |s| s.messages_dropped_unavailable),
];

/// Writes every figure of `f`.
pub fn encode(f: &CoreFigures, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let s = &f.signaling;
    for (name, help, read) in CORE_GAUGES {
        gauge(enc, name, help, read(s))?;
    }
    for (name, help, read) in CORE_COUNTERS {
        counter(enc, name, help, read(s))?;
    }
    let to_i = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let to_u = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let srv = &f.server;
    gauge(
        enc,
        "kvs_http_connections_open",
        "Client connections open now (HTTP, HTTPS, TURN/TCP; upgraded WebSockets included)",
        to_i(srv.connections_open),
    )?;
    gauge(
        enc,
        "kvs_http_connections_max",
        "The node's connection cap (--max-connections, or derived from the open-file limit)",
        to_i(srv.connections_max),
    )?;
    counter(
        enc,
        "kvs_http_connections_refused_total",
        "Connections over a cap (per node or per source address), shed or closed",
        to_u(srv.connections_refused),
    )?;
    counter(
        enc,
        "kvs_http_accept_fd_exhausted_total",
        "Accepts that failed for want of file descriptors",
        srv.fd_exhausted,
    )?;
    counter(
        enc,
        "kvs_api_requests_throttled_total",
        "API calls refused with ClientLimitExceededException by a quota",
        srv.requests_throttled,
    )?;
    labelled_counter(
        enc,
        "kvs_signaling_messages_total",
        "Signaling messages by outcome (each outcome is also its own kvs_signaling_messages_*_total)",
        "outcome",
        OUTCOMES.iter().map(|(l, read)| (*l, read(s))),
    )?;
    labelled_counter(
        enc,
        "kvs_signaling_messages_dropped_total",
        "Held messages dropped, by reason: overflow (per-channel bound), deleted (channel deleted), unavailable (held-message backend unreachable)",
        "reason",
        DROP_REASONS.iter().map(|(l, read)| (*l, read(s))),
    )
}

pub(super) fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), fmt::Error> {
    let g = ConstGauge::new(v);
    let metric = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(metric)
}

/// `name` is the sample's name; the encoder appends the `_total` a counter's name ends in.
pub(super) fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), fmt::Error> {
    let name = name.strip_suffix("_total").unwrap_or(name);
    let c = ConstCounter::new(v);
    let metric = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(metric)
}

pub(super) fn labelled_counter<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> Result<(), fmt::Error> {
    let name = name.strip_suffix("_total").unwrap_or(name);
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, v) in values {
        let labels = [(label, value)];
        ConstCounter::new(v).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Reads the core's and the listeners' figures when a scrape asks.
pub struct CoreCollector {
    read: Box<dyn Fn() -> CoreFigures + Send + Sync>,
}

impl CoreCollector {
    pub fn new(read: impl Fn() -> CoreFigures + Send + Sync + 'static) -> Self {
        Self {
            read: Box::new(read),
        }
    }
}

impl fmt::Debug for CoreCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreCollector").finish_non_exhaustive()
    }
}

impl Collector for CoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        encode(&(self.read)(), &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    /// Every field a different value, so a swapped field shows.
    fn known() -> CoreFigures {
        CoreFigures {
            signaling: MetricsSnapshot {
                masters_connected: 1,
                viewers_connected: 2,
                connections_total: 3,
                connections_rejected: 4,
                messages_relayed: 5,
                messages_held: 6,
                messages_delivered_from_hold: 7,
                messages_expired: 8,
                messages_replaced: 9,
                messages_dropped_overflow: 10,
                messages_dropped_deleted: 11,
                messages_held_slow_consumer: 12,
                connections_closed_slow_consumer: 13,
                messages_rejected: 14,
                messages_rate_limited: 15,
                bus_published: 16,
                bus_received: 17,
                bus_dropped: 18,
                bus_dropped_on_arrival: 19,
                connections_reregistered: 20,
                lease_lapses: 21,
                messages_dropped_unavailable: 22,
            },
            server: ServerFigures {
                connections_open: 23,
                connections_max: 24,
                connections_refused: 25,
                fd_exhausted: 26,
                requests_throttled: 27,
            },
        }
    }

    fn rendered(f: CoreFigures) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(CoreCollector::new(move || f.clone())));
        super::super::render(&registry)
    }

    #[test]
    fn every_sample_of_a_known_snapshot() {
        let text = rendered(known());
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "kvs_signaling_masters_connected 1",
                "kvs_signaling_viewers_connected 2",
                "kvs_signaling_connections_total 3",
                "kvs_signaling_connections_rejected_total 4",
                "kvs_signaling_messages_relayed_total 5",
                "kvs_signaling_messages_held_total 6",
                "kvs_signaling_messages_delivered_from_hold_total 7",
                "kvs_signaling_messages_expired_total 8",
                "kvs_signaling_messages_replaced_total 9",
                "kvs_signaling_messages_dropped_overflow_total 10",
                "kvs_signaling_messages_dropped_deleted_total 11",
                "kvs_signaling_messages_held_slow_consumer_total 12",
                "kvs_signaling_connections_closed_slow_consumer_total 13",
                "kvs_signaling_messages_rejected_total 14",
                "kvs_signaling_messages_rate_limited_total 15",
                "kvs_signaling_bus_published_total 16",
                "kvs_signaling_bus_received_total 17",
                "kvs_signaling_bus_dropped_total 18",
                "kvs_signaling_bus_dropped_on_arrival_total 19",
                "kvs_signaling_messages_dropped_unavailable_total 22",
                "kvs_signaling_lease_lapses_total 21",
                "kvs_signaling_connections_reregistered_total 20",
                "kvs_http_connections_open 23",
                "kvs_http_connections_max 24",
                "kvs_http_connections_refused_total 25",
                "kvs_http_accept_fd_exhausted_total 26",
                "kvs_api_requests_throttled_total 27",
                r#"kvs_signaling_messages_total{outcome="relayed"} 5"#,
                r#"kvs_signaling_messages_total{outcome="held"} 6"#,
                r#"kvs_signaling_messages_total{outcome="delivered_from_hold"} 7"#,
                r#"kvs_signaling_messages_total{outcome="expired"} 8"#,
                r#"kvs_signaling_messages_total{outcome="replaced"} 9"#,
                r#"kvs_signaling_messages_total{outcome="held_slow_consumer"} 12"#,
                r#"kvs_signaling_messages_total{outcome="dropped"} 43"#,
                r#"kvs_signaling_messages_total{outcome="rejected"} 14"#,
                r#"kvs_signaling_messages_total{outcome="rate_limited"} 15"#,
                r#"kvs_signaling_messages_dropped_total{reason="overflow"} 10"#,
                r#"kvs_signaling_messages_dropped_total{reason="deleted"} 11"#,
                r#"kvs_signaling_messages_dropped_total{reason="unavailable"} 22"#,
            ]
        );
    }

    #[test]
    fn help_and_type_lines_keep_the_old_shape() {
        let text = rendered(known());
        let head: Vec<&str> = text.lines().take(6).collect();
        assert_eq!(
            head,
            [
                "# HELP kvs_signaling_masters_connected Masters connected now",
                "# TYPE kvs_signaling_masters_connected gauge",
                "kvs_signaling_masters_connected 1",
                "# HELP kvs_signaling_viewers_connected Viewers connected now",
                "# TYPE kvs_signaling_viewers_connected gauge",
                "kvs_signaling_viewers_connected 2",
            ]
        );
        for line in [
            "# HELP kvs_signaling_connections_total Signaling connections accepted",
            "# TYPE kvs_signaling_connections_total counter",
            "# TYPE kvs_http_connections_open gauge",
            "# TYPE kvs_api_requests_throttled_total counter",
            "# TYPE kvs_signaling_messages_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }

    #[test]
    fn a_saturated_count_does_not_wrap() {
        let mut f = known();
        f.signaling.messages_dropped_overflow = u64::MAX;
        f.server.connections_open = usize::MAX;
        let text = rendered(f);
        assert!(text.contains(&format!(
            "kvs_signaling_messages_total{{outcome=\"dropped\"}} {}",
            u64::MAX
        )));
        assert!(text.contains(&format!("kvs_http_connections_open {}", i64::MAX)));
    }
}
