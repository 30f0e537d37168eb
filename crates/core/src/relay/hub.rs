//! The relay between a channel's master and its viewers (docs/protocol.md §6.3), for one node
//! of a cluster that may have one node or many.
//!
//! The hub owns no shared state itself; it composes four ports:
//! - [`LocalConnections`]: this node's connections and their bounded outboxes;
//! - [`Presence`]: who is connected to a channel, on which node (cluster-wide, with leases);
//! - [`HeldMessages`]: messages waiting for a recipient connected nowhere;
//! - [`Bus`]: events to the node that holds a recipient, published only there.
//!
//! Its operations live by concern in sibling modules: joining and leaving
//! ([`super::registration`]), moving messages ([`super::route`]), and keeping the node in the
//! cluster — lease renewal, the bus inbox, deletes ([`super::upkeep`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::bus::Bus;
use super::event::{Member, NodeId, Role};
use super::held::HeldMessages;
use super::local::LocalConnections;
use super::message::SignalError;
use super::metrics::{MetricsSnapshot, SignalingMetrics};
use super::presence::{Presence, PresenceError};
use crate::clock::Clock;

/// The channel's MessageTtlSeconds now, or `None` when the channel no longer exists. The
/// application layer answers it from its in-memory channel index; it is asked only when a
/// message has to be held.
#[async_trait]
pub trait ChannelTtl: Send + Sync {
    async fn ttl_seconds(&self, channel_arn: &str) -> Option<u32>;
}

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_viewers: usize,
    pub max_held_per_channel: usize,
    pub go_away_grace: Duration,
    /// Events buffered for a connection until it is live (its WebSocket upgrade completed).
    pub pending_limit: usize,
    /// How long this node's presence lasts without renewal.
    pub lease: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_viewers: 10,
            max_held_per_channel: 1000,
            go_away_grace: Duration::from_secs(60),
            pending_limit: 1024,
            lease: Duration::from_secs(15),
        }
    }
}

/// The ports a hub composes.
#[derive(Clone)]
pub struct HubPorts {
    pub presence: Arc<dyn Presence>,
    pub held: Arc<dyn HeldMessages>,
    pub bus: Arc<dyn Bus>,
    pub ttl: Arc<dyn ChannelTtl>,
}

/// A connection's identity in the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionId {
    pub channel_arn: Arc<str>,
    pub role: Role,
    pub id: u64,
}

/// Releases that failed (the presence backend was unreachable), retried by the heartbeat so a
/// connection that closed during an outage does not keep counting toward the viewer limit.
/// Bounded; overflow policy: the oldest is forgotten (its entry lapses with the presence
/// record's expiry, or is replaced by the next connection with its role).
pub(super) const MAX_PENDING_RELEASES: usize = 10_000;

pub(super) type PendingRelease = (Arc<str>, Role, Member);

pub struct Hub {
    /// This hub, for the tasks it starts (a connect runs in a task of its own).
    pub(super) me: Weak<Hub>,
    pub(super) node: NodeId,
    pub(super) local: LocalConnections,
    pub(super) pending_releases: Mutex<VecDeque<PendingRelease>>,
    /// Releases still running (shutdown waits for them).
    pub(super) releasing: AtomicUsize,
    pub(super) ports: HubPorts,
    pub(super) next_id: AtomicU64,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: HubConfig,
    pub(super) metrics: Arc<SignalingMetrics>,
    /// The live view: which channels are watched, and the feed between nodes.
    pub(super) watch: super::watch::Watch,
}

pub(super) fn presence_failure(e: PresenceError, correlation_id: Option<String>) -> SignalError {
    match e {
        PresenceError::ViewerLimit(max) => SignalError::limit(
            correlation_id,
            format!("The signaling channel already has the maximum of {max} connected viewers."),
        ),
        PresenceError::ChannelGone => {
            SignalError::not_found(correlation_id, "The signaling channel no longer exists.")
        }
        PresenceError::Backend(detail) => {
            tracing::error!(%detail, "presence backend failure");
            SignalError::unavailable(correlation_id)
        }
    }
}

pub(super) fn backend_failure(
    e: impl std::fmt::Display,
    correlation_id: Option<String>,
) -> SignalError {
    tracing::error!(error = %e, "signaling backend failure");
    SignalError::unavailable(correlation_id)
}

impl Hub {
    /// A hub for node `node`. Call [`Hub::start`] inside a Tokio runtime to serve its bus inbox
    /// and renew the node's lease.
    pub fn new(
        node: NodeId,
        clock: Arc<dyn Clock>,
        config: HubConfig,
        ports: HubPorts,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            node,
            local: LocalConnections::new(config.pending_limit),
            pending_releases: Mutex::default(),
            releasing: AtomicUsize::new(0),
            ports,
            next_id: AtomicU64::new(1),
            clock,
            config,
            metrics: Arc::new(SignalingMetrics::default()),
            watch: super::watch::Watch::default(),
        })
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn metrics(&self) -> &Arc<SignalingMetrics> {
        &self.metrics
    }

    /// The counters, with what the bus dropped on arrival (its own count) filled in.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut s = self.metrics.snapshot();
        s.bus_dropped_on_arrival = self.ports.bus.dropped_on_arrival();
        s
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    pub(super) fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    pub(super) fn gauge(&self, role: &Role, delta: i64) {
        let gauge = match role {
            Role::Master => &self.metrics.masters_connected,
            Role::Viewer(_) => &self.metrics.viewers_connected,
            Role::AnswerWaiter(_) => return,
        };
        gauge.fetch_add(delta, Ordering::Relaxed);
    }

    pub(super) fn pending(&self) -> MutexGuard<'_, VecDeque<PendingRelease>> {
        self.pending_releases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this node has no connection left and no presence release in flight: a node
    /// shutting down waits for this, so its viewers stop counting at once cluster-wide.
    pub fn is_settled(&self) -> bool {
        self.local.is_empty() && self.releasing.load(Ordering::SeqCst) == 0
    }

    /// Releases waiting for the presence backend to come back.
    pub fn pending_releases(&self) -> usize {
        self.pending().len()
    }

    /// Number of connections on this node (live or still completing their handshake).
    pub fn connection_count(&self) -> usize {
        self.local.len()
    }

    /// This node's connections that are masters and viewers (SendAlexaOfferToMaster calls
    /// waiting for an answer are neither), live or still completing their handshake.
    pub fn connections_by_role(&self) -> (usize, usize) {
        self.local
            .snapshot()
            .iter()
            .fold((0, 0), |(m, v), (_, _, role)| match role {
                Role::Master => (m + 1, v),
                Role::Viewer(_) => (m, v + 1),
                Role::AnswerWaiter(_) => (m, v),
            })
    }

    /// Number of this node's connections on any of `channels`.
    pub fn connections_on(&self, channels: &std::collections::HashSet<&str>) -> usize {
        self.local
            .snapshot()
            .iter()
            .filter(|(_, ch, _)| channels.contains(&**ch))
            .count()
    }

    /// Number of messages held for a channel (for tests and the console).
    pub async fn held_count(&self, channel_arn: &str) -> usize {
        self.ports.held.count(channel_arn).await.unwrap_or(0)
    }

    /// Whether a master is connected to the channel (on any node).
    pub async fn has_master(&self, channel_arn: &str) -> bool {
        matches!(
            self.ports.presence.lookup(channel_arn, &Role::Master).await,
            Ok(Some(_))
        )
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
pub(crate) mod tests;
