//! `GET /metrics` in the Prometheus text format: the signaling counters of
//! `kvs_core::relay::metrics`, names prefixed `kvs_`.

use kvs_core::relay::metrics::MetricsSnapshot;

pub fn render(s: &MetricsSnapshot) -> String {
    let gauges: [(&str, &str, i64); 2] = [
        (
            "kvs_signaling_masters_connected",
            "Masters connected now",
            s.masters_connected,
        ),
        (
            "kvs_signaling_viewers_connected",
            "Viewers connected now",
            s.viewers_connected,
        ),
    ];
    let counters: [(&str, &str, u64); 20] = [
        (
            "kvs_signaling_connections_total",
            "Signaling connections accepted",
            s.connections_total,
        ),
        (
            "kvs_signaling_connections_rejected_total",
            "Signaling connections refused",
            s.connections_rejected,
        ),
        (
            "kvs_signaling_messages_relayed_total",
            "Messages delivered live",
            s.messages_relayed,
        ),
        (
            "kvs_signaling_messages_held_total",
            "Messages held for a recipient not connected",
            s.messages_held,
        ),
        (
            "kvs_signaling_messages_delivered_from_hold_total",
            "Held messages delivered on connect",
            s.messages_delivered_from_hold,
        ),
        (
            "kvs_signaling_messages_expired_total",
            "Held messages whose TTL ran out",
            s.messages_expired,
        ),
        (
            "kvs_signaling_messages_replaced_total",
            "Held offers/answers replaced by a newer one",
            s.messages_replaced,
        ),
        (
            "kvs_signaling_messages_dropped_overflow_total",
            "Held messages dropped: per-channel bound",
            s.messages_dropped_overflow,
        ),
        (
            "kvs_signaling_messages_dropped_deleted_total",
            "Held messages dropped: channel deleted",
            s.messages_dropped_deleted,
        ),
        (
            "kvs_signaling_messages_held_slow_consumer_total",
            "Messages held for the recipient's next connection: its outbox was full",
            s.messages_held_slow_consumer,
        ),
        (
            "kvs_signaling_connections_closed_slow_consumer_total",
            "Signaling connections closed because their client did not read (outbox full)",
            s.connections_closed_slow_consumer,
        ),
        (
            "kvs_signaling_messages_rejected_total",
            "Invalid messages refused",
            s.messages_rejected,
        ),
        (
            "kvs_signaling_messages_rate_limited_total",
            "Messages refused by rate limits",
            s.messages_rate_limited,
        ),
        (
            "kvs_signaling_bus_published_total",
            "Envelopes sent to another node",
            s.bus_published,
        ),
        (
            "kvs_signaling_bus_received_total",
            "Envelopes received from another node",
            s.bus_received,
        ),
        (
            "kvs_signaling_bus_dropped_total",
            "Envelopes the bus refused (inbox full or node gone)",
            s.bus_dropped,
        ),
        (
            "kvs_signaling_bus_dropped_on_arrival_total",
            "Relayed messages that reached this node's bus subscription with its inbox full",
            s.bus_dropped_on_arrival,
        ),
        (
            "kvs_signaling_messages_dropped_unavailable_total",
            "Messages lost because the held-message backend was unreachable when putting them back",
            s.messages_dropped_unavailable,
        ),
        (
            "kvs_signaling_lease_lapses_total",
            "Times this node's lease ran out before it was renewed (its connections were told to register again)",
            s.lease_lapses,
        ),
        (
            "kvs_signaling_connections_reregistered_total",
            "Connections told to register again because presence no longer listed them",
            s.connections_reregistered,
        ),
    ];
    let mut out = String::new();
    for (name, help, v) in gauges {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        ));
    }
    for (name, help, v) in counters {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    out
}

/// The listeners' and quotas' figures (docs/behaviour.md "Connections").
pub struct ServerFigures {
    pub connections_open: usize,
    pub connections_max: usize,
    pub connections_refused: usize,
    pub fd_exhausted: u64,
    pub requests_throttled: u64,
}

pub fn render_server(f: &ServerFigures) -> String {
    let to_i = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let to_u = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let mut out = String::new();
    for (name, help, v) in [
        (
            "kvs_http_connections_open",
            "Client connections open now (HTTP, HTTPS, TURN/TCP; upgraded WebSockets included)",
            to_i(f.connections_open),
        ),
        (
            "kvs_http_connections_max",
            "The node's connection cap (--max-connections, or derived from the open-file limit)",
            to_i(f.connections_max),
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        ));
    }
    for (name, help, v) in [
        (
            "kvs_http_connections_refused_total",
            "Connections over a cap (per node or per source address), shed or closed",
            to_u(f.connections_refused),
        ),
        (
            "kvs_http_accept_fd_exhausted_total",
            "Accepts that failed for want of file descriptors",
            f.fd_exhausted,
        ),
        (
            "kvs_api_requests_throttled_total",
            "API calls refused with ClientLimitExceededException by a quota",
            f.requests_throttled,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    out
}
