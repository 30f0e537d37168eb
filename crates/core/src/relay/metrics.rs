//! Counters of the signaling data plane, readable by a metrics endpoint: connections by role,
//! and what happened to every message (relayed, held, delivered from hold, expired, dropped and
//! why).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct SignalingMetrics {
    pub masters_connected: AtomicI64,
    pub viewers_connected: AtomicI64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub messages_relayed: AtomicU64,
    pub messages_held: AtomicU64,
    pub messages_delivered_from_hold: AtomicU64,
    pub messages_expired: AtomicU64,
    pub messages_replaced: AtomicU64,
    pub messages_dropped_overflow: AtomicU64,
    pub messages_dropped_deleted: AtomicU64,
    pub messages_held_slow_consumer: AtomicU64,
    pub connections_closed_slow_consumer: AtomicU64,
    pub messages_rejected: AtomicU64,
    pub messages_rate_limited: AtomicU64,
    pub bus_published: AtomicU64,
    pub bus_received: AtomicU64,
    pub bus_dropped: AtomicU64,
    pub connections_reregistered: AtomicU64,
    pub lease_lapses: AtomicU64,
    pub messages_dropped_unavailable: AtomicU64,
}

/// A point-in-time copy, for exposition.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub masters_connected: i64,
    pub viewers_connected: i64,
    pub connections_total: u64,
    pub connections_rejected: u64,
    pub messages_relayed: u64,
    pub messages_held: u64,
    pub messages_delivered_from_hold: u64,
    pub messages_expired: u64,
    pub messages_replaced: u64,
    pub messages_dropped_overflow: u64,
    pub messages_dropped_deleted: u64,
    pub messages_held_slow_consumer: u64,
    pub connections_closed_slow_consumer: u64,
    pub messages_rejected: u64,
    pub messages_rate_limited: u64,
    pub bus_published: u64,
    pub bus_received: u64,
    pub bus_dropped: u64,
    /// Filled in by [`super::Hub::metrics_snapshot`] from the bus's own count.
    pub bus_dropped_on_arrival: u64,
    pub connections_reregistered: u64,
    pub lease_lapses: u64,
    pub messages_dropped_unavailable: u64,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl SignalingMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            masters_connected: self.masters_connected.load(Ordering::Relaxed),
            viewers_connected: self.viewers_connected.load(Ordering::Relaxed),
            connections_total: l(&self.connections_total),
            connections_rejected: l(&self.connections_rejected),
            messages_relayed: l(&self.messages_relayed),
            messages_held: l(&self.messages_held),
            messages_delivered_from_hold: l(&self.messages_delivered_from_hold),
            messages_expired: l(&self.messages_expired),
            messages_replaced: l(&self.messages_replaced),
            messages_dropped_overflow: l(&self.messages_dropped_overflow),
            messages_dropped_deleted: l(&self.messages_dropped_deleted),
            messages_held_slow_consumer: l(&self.messages_held_slow_consumer),
            connections_closed_slow_consumer: l(&self.connections_closed_slow_consumer),
            messages_rejected: l(&self.messages_rejected),
            messages_rate_limited: l(&self.messages_rate_limited),
            bus_published: l(&self.bus_published),
            bus_received: l(&self.bus_received),
            bus_dropped: l(&self.bus_dropped),
            bus_dropped_on_arrival: 0,
            connections_reregistered: l(&self.connections_reregistered),
            lease_lapses: l(&self.lease_lapses),
            messages_dropped_unavailable: l(&self.messages_dropped_unavailable),
        }
    }
}
