//! The relay between a channel's master and its viewers (kvs-spec.md §6.3), for one node of a
//! cluster that may have one node or many.
//!
//! The hub owns no shared state itself; it composes four parts:
//! - [`LocalConnections`]: this node's connections and their bounded outboxes;
//! - [`Presence`]: who is connected to a channel, on which node (cluster-wide, with leases);
//! - [`HeldMessages`]: messages waiting for a recipient connected nowhere;
//! - [`Bus`]: events to the node that holds a recipient, published only there.
//!
//! Rules:
//! - viewer → master, with `senderClientId` = the viewer's ClientId; master → the viewer named by
//!   `recipientClientId`; a viewer's `recipientClientId` is ignored (never viewer → viewer);
//! - the master's SDP_ANSWER to a ClientId for which a SendAlexaOfferToMaster call waits goes to
//!   that call;
//! - a message whose recipient is connected nowhere is held until `now + TTL`, the TTL being the
//!   channel's at the moment the message is accepted ([`ChannelTtl`]), and handed over in order
//!   when the recipient connects, ahead of live messages;
//! - a new master replaces (and closes) the old one wherever it is; a viewer reconnecting with
//!   its ClientId replaces its old connection; at most `max_viewers` distinct viewers.
//!
//! Holding races with connecting: a sender may find the recipient absent and hold the message
//! just after the recipient took what was held. So after holding, the sender looks again and,
//! if the recipient is there now, hands the held messages over itself. Taking is atomic, so each
//! held message is handed over exactly once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::bus::{Bus, BusError, Envelope};
use super::event::{Event, HeldMessage, Member, NodeId, Relayed, Role};
use super::held::HeldMessages;
use super::local::{LocalConnections, Refused, Sink};
use super::message::{Action, ClientMessage, SignalError};
use super::metrics::{add, inc, SignalingMetrics};
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
    /// Events buffered for a connection while its held messages are handed over.
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

/// A connection's identity in the hub, returned by [`Hub::connect`].
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
const MAX_PENDING_RELEASES: usize = 10_000;

type PendingRelease = (Arc<str>, Role, Member);

pub struct Hub {
    node: NodeId,
    local: LocalConnections,
    pending_releases: Mutex<VecDeque<PendingRelease>>,
    /// Disconnects whose presence release is still running (shutdown waits for them).
    releasing: AtomicUsize,
    /// Renewals that failed in a row; at three (one lease at one renewal per third of a
    /// lease) the lease has run out.
    failed_renewals: AtomicU64,
    ports: HubPorts,
    next_id: AtomicU64,
    clock: Arc<dyn Clock>,
    config: HubConfig,
    metrics: Arc<SignalingMetrics>,
}

fn presence_failure(e: PresenceError, correlation_id: Option<String>) -> SignalError {
    match e {
        PresenceError::ViewerLimit(max) => SignalError::limit(
            correlation_id,
            format!("The signaling channel already has the maximum of {max} connected viewers."),
        ),
        PresenceError::Backend(detail) => {
            tracing::error!(%detail, "presence backend failure");
            SignalError::unavailable(correlation_id)
        }
    }
}

fn backend_failure(e: impl std::fmt::Display, correlation_id: Option<String>) -> SignalError {
    tracing::error!(error = %e, "signaling backend failure");
    SignalError::unavailable(correlation_id)
}

impl Hub {
    /// A hub for node `node`, subscribed to its bus inbox. Call [`Hub::start`] inside a Tokio
    /// runtime to serve the inbox and renew the node's lease.
    pub fn new(
        node: NodeId,
        clock: Arc<dyn Clock>,
        config: HubConfig,
        ports: HubPorts,
    ) -> Arc<Self> {
        Arc::new(Self {
            node,
            local: LocalConnections::new(config.pending_limit),
            pending_releases: Mutex::default(),
            releasing: AtomicUsize::new(0),
            failed_renewals: AtomicU64::new(0),
            ports,
            next_id: AtomicU64::new(1),
            clock,
            config,
            metrics: Arc::new(SignalingMetrics::default()),
        })
    }

    /// Serves the bus inbox and renews the lease until the returned tasks are dropped.
    pub fn start(self: &Arc<Self>) -> HubTasks {
        let inbox = self.ports.bus.subscribe(self.node);
        let pump = tokio::spawn(pump(Arc::downgrade(self), inbox));
        let heartbeat = tokio::spawn(heartbeat(Arc::downgrade(self)));
        HubTasks {
            handles: vec![pump, heartbeat],
            bus: Arc::clone(&self.ports.bus),
            node: self.node,
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn metrics(&self) -> &Arc<SignalingMetrics> {
        &self.metrics
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn gauge(&self, role: &Role, delta: i64) {
        let gauge = match role {
            Role::Master => &self.metrics.masters_connected,
            Role::Viewer(_) => &self.metrics.viewers_connected,
            Role::AnswerWaiter(_) => return,
        };
        gauge.fetch_add(delta, Ordering::Relaxed);
    }

    /// Registers a connection, replacing an older one with the same role wherever it is, then
    /// hands over what was held for it. A viewer beyond `max_viewers` is refused with
    /// ClientLimitExceededException.
    pub async fn connect(
        &self,
        channel_arn: &str,
        role: Role,
        sink: Arc<dyn Sink>,
    ) -> Result<ConnectionId, SignalError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let channel: Arc<str> = Arc::from(channel_arn);
        self.local
            .register(id, Arc::clone(&channel), role.clone(), sink);
        let member = Member {
            node: self.node,
            conn: id,
        };
        let claimed = self
            .ports
            .presence
            .claim(&channel, &role, member, self.config.max_viewers, self.now())
            .await;
        match claimed {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    self.close_member(old, "replaced by a newer connection")
                        .await;
                }
            }
            Err(e) => {
                self.local.remove(id);
                inc(&self.metrics.connections_rejected);
                return Err(presence_failure(e, None));
            }
        }
        self.gauge(&role, 1);
        inc(&self.metrics.connections_total);
        self.hand_over_held(&channel, &role, id, true).await;
        self.local.activate(id);
        Ok(ConnectionId {
            channel_arn: channel,
            role,
            id,
        })
    }

    /// Moves what is held for `role` into local connection `id`. On connect (`direct`) the
    /// messages go ahead of the events buffered while the connection was pending.
    async fn hand_over_held(&self, channel: &str, role: &Role, id: u64, direct: bool) {
        let taken = match self.ports.held.take(channel, role, self.now()).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot read held messages");
                return;
            }
        };
        add(&self.metrics.messages_expired, taken.expired as u64);
        for h in taken.messages {
            let event = Event::Message(h.message.clone());
            let sent = if direct {
                self.local.send_direct(id, event)
            } else {
                self.local.send(id, event)
            };
            match sent {
                Ok(()) => inc(&self.metrics.messages_delivered_from_hold),
                // Gone again or not reading: keep it for the next connection.
                Err(_) => self.hold_quietly(channel, h).await,
            }
        }
    }

    async fn hold_quietly(&self, channel: &str, h: HeldMessage) {
        let now = self.now();
        if h.expires_at_millis <= now {
            inc(&self.metrics.messages_expired);
            return;
        }
        if let Ok(o) = self
            .ports
            .held
            .hold(channel, h, self.config.max_held_per_channel, now)
            .await
        {
            add(&self.metrics.messages_dropped_overflow, o.dropped as u64);
        }
    }

    async fn close_member(&self, member: Member, reason: &str) {
        if member.node == self.node {
            let _ = self.local.send_direct(
                member.conn,
                Event::Close {
                    reason: reason.into(),
                },
            );
            return;
        }
        let envelope = Envelope::Close {
            conn: member.conn,
            reason: reason.into(),
        };
        self.publish(member.node, envelope).await.ok();
    }

    async fn publish(&self, node: NodeId, envelope: Envelope) -> Result<(), BusError> {
        let r = self.ports.bus.publish(node, envelope).await;
        match &r {
            Ok(()) => inc(&self.metrics.bus_published),
            Err(_) => inc(&self.metrics.bus_dropped),
        }
        r
    }

    /// Forgets a connection, unless a newer one already replaced it.
    pub async fn disconnect(&self, conn: &ConnectionId) {
        self.releasing.fetch_add(1, Ordering::SeqCst);
        self.release(conn).await;
        self.releasing.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether this node has no connection left and no presence release in flight: a node
    /// shutting down waits for this, so its viewers stop counting at once cluster-wide.
    pub fn is_settled(&self) -> bool {
        self.local.is_empty() && self.releasing.load(Ordering::SeqCst) == 0
    }

    /// Forgets every connection of this node (it is stopping and its sessions may not have
    /// closed yet), releasing their presence so other nodes stop counting them at once.
    pub async fn release_all(&self) {
        for (id, channel, role) in self.local.snapshot() {
            self.release(&ConnectionId {
                channel_arn: channel,
                role,
                id,
            })
            .await;
        }
        self.retry_releases().await;
    }

    async fn release(&self, conn: &ConnectionId) {
        let Some((channel, role)) = self.local.remove(conn.id) else {
            return;
        };
        self.gauge(&role, -1);
        let member = Member {
            node: self.node,
            conn: conn.id,
        };
        if let Err(e) = self.ports.presence.release(&channel, &role, member).await {
            tracing::warn!(error = %e, "cannot release presence; retrying later");
            let mut pending = self.pending();
            if pending.len() >= MAX_PENDING_RELEASES {
                pending.pop_front();
            }
            pending.push_back((channel, role, member));
        }
    }

    fn pending(&self) -> MutexGuard<'_, VecDeque<PendingRelease>> {
        self.pending_releases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Retries the releases that failed, until one fails again.
    pub async fn retry_releases(&self) {
        loop {
            let Some((channel, role, member)) = self.pending().pop_front() else {
                return;
            };
            if self
                .ports
                .presence
                .release(&channel, &role, member)
                .await
                .is_err()
            {
                self.pending().push_front((channel, role, member));
                return;
            }
        }
    }

    /// After a renewal: retries failed releases and, if the lease had run out before this
    /// renewal (the backend was unreachable for longer than a lease), sends GO_AWAY to every
    /// connection of this node. Other nodes took them for dead and may have dropped their
    /// presence; reconnecting registers them again.
    async fn renewed(&self) {
        if self.failed_renewals.swap(0, Ordering::SeqCst) >= 3 {
            let n = self.local.broadcast(&Event::GoAway {
                grace: Duration::from_secs(1),
            });
            tracing::warn!(
                connections = n,
                "this node's lease ran out while the presence backend was unreachable; \
                 GO_AWAY to its connections so they register again"
            );
        }
        self.retry_releases().await;
    }

    /// Releases waiting for the presence backend to come back.
    pub fn pending_releases(&self) -> usize {
        self.pending().len()
    }

    /// Relays `msg` from `from`.
    pub async fn relay(&self, from: &ConnectionId, msg: ClientMessage) -> Result<(), SignalError> {
        let (recipient, sender) = match &from.role {
            Role::Master => match msg.recipient_client_id {
                Some(r) => (Role::Viewer(r), None),
                None => {
                    inc(&self.metrics.messages_rejected);
                    return Err(SignalError::invalid(
                        msg.correlation_id,
                        "recipientClientId is required for messages from the master.",
                    ));
                }
            },
            Role::Viewer(id) | Role::AnswerWaiter(id) => (Role::Master, Some(id.clone())),
        };
        let message = Relayed {
            action: msg.action,
            sender,
            payload: msg.message_payload,
        };
        self.route(&from.channel_arn, recipient, message, msg.correlation_id)
            .await
    }

    /// Delivers or holds one message. Also used for offers that arrive over HTTPS
    /// (SendAlexaOfferToMaster).
    pub async fn route(
        &self,
        channel: &str,
        recipient: Role,
        message: Relayed,
        correlation_id: Option<String>,
    ) -> Result<(), SignalError> {
        let now = self.now();
        let presence = &self.ports.presence;
        // The master's answer goes to a SendAlexaOfferToMaster call waiting for it, if there
        // is one, else to the viewer: both looked up at once.
        let mut candidates = Vec::with_capacity(2);
        if let (Action::SdpAnswer, None, Role::Viewer(id)) =
            (message.action, &message.sender, &recipient)
        {
            candidates.push(Role::AnswerWaiter(id.clone()));
        }
        candidates.push(recipient);
        match presence.lookup_first(channel, &candidates, now).await {
            Ok(Some((i, m))) => {
                let to = candidates.swap_remove(i);
                self.deliver(m, channel, to, message, correlation_id).await
            }
            Ok(None) => {
                let recipient = candidates.pop().unwrap_or(Role::Master);
                self.hold(channel, recipient, message, correlation_id).await
            }
            Err(e) => Err(presence_failure(e, correlation_id)),
        }
    }

    async fn deliver(
        &self,
        to: Member,
        channel: &str,
        recipient: Role,
        message: Relayed,
        correlation_id: Option<String>,
    ) -> Result<(), SignalError> {
        if to.node == self.node {
            return match self.local.send(to.conn, Event::Message(message)) {
                Ok(()) => {
                    inc(&self.metrics.messages_relayed);
                    Ok(())
                }
                Err(Refused::Full(_)) => {
                    inc(&self.metrics.messages_dropped_slow_consumer);
                    Err(SignalError::limit(
                        correlation_id,
                        "The recipient is not reading its messages; this one was dropped.",
                    ))
                }
                // The recipient is going away: hold the message for its next connection.
                Err(Refused::Closed(Event::Message(m))) => {
                    self.hold(channel, recipient, m, correlation_id).await
                }
                Err(Refused::Closed(_)) => Ok(()),
            };
        }
        let envelope = Envelope::Deliver {
            channel: channel.to_owned(),
            conn: to.conn,
            recipient: recipient.clone(),
            message: message.clone(),
        };
        match self.publish(to.node, envelope).await {
            Ok(()) => {
                inc(&self.metrics.messages_relayed);
                Ok(())
            }
            Err(BusError::Full) => Err(SignalError::limit(
                correlation_id,
                "The recipient's node is overloaded; this message was dropped.",
            )),
            // The recipient's node is gone (killed, or between subscriptions) while its lease
            // still runs: hold the message for the recipient's next connection, on any node.
            Err(BusError::NoSuchNode) => {
                self.hold(channel, recipient, message, correlation_id).await
            }
            Err(e) => Err(backend_failure(e, correlation_id)),
        }
    }

    async fn hold(
        &self,
        channel: &str,
        recipient: Role,
        message: Relayed,
        correlation_id: Option<String>,
    ) -> Result<(), SignalError> {
        // An answer meant for a call that stopped waiting is kept for the viewer of that id.
        let recipient = match recipient {
            Role::AnswerWaiter(id) => Role::Viewer(id),
            r => r,
        };
        let Some(ttl) = self.ports.ttl.ttl_seconds(channel).await else {
            inc(&self.metrics.messages_rejected);
            return Err(SignalError::not_found(
                correlation_id,
                "The signaling channel no longer exists.",
            ));
        };
        let now = self.now();
        let held = HeldMessage {
            recipient: recipient.clone(),
            message,
            expires_at_millis: now.saturating_add(u64::from(ttl) * 1000),
        };
        let outcome = self
            .ports
            .held
            .hold(channel, held, self.config.max_held_per_channel, now)
            .await
            .map_err(|e| backend_failure(e, correlation_id.clone()))?;
        inc(&self.metrics.messages_held);
        add(&self.metrics.messages_replaced, outcome.replaced as u64);
        add(
            &self.metrics.messages_dropped_overflow,
            outcome.dropped as u64,
        );
        // The recipient may have connected meanwhile and taken what was held before this.
        if let Ok(Some(m)) = self.ports.presence.lookup(channel, &recipient, now).await {
            self.flush_to(m, channel, &recipient).await;
        }
        Ok(())
    }

    /// Hands what is held for `recipient` to the connection `to`, on whatever node. When the
    /// recipient's node cannot be reached, the messages are held again and the recipient
    /// looked up once more: it may have reconnected elsewhere meanwhile, after that connection
    /// took what was held (bounded: a few rounds).
    async fn flush_to(&self, mut to: Member, channel: &str, recipient: &Role) {
        for _ in 0..3 {
            if to.node == self.node {
                self.hand_over_held(channel, recipient, to.conn, false)
                    .await;
                return;
            }
            let Ok(taken) = self.ports.held.take(channel, recipient, self.now()).await else {
                return;
            };
            add(&self.metrics.messages_expired, taken.expired as u64);
            let mut unreachable = false;
            for h in taken.messages {
                if unreachable {
                    self.hold_quietly(channel, h).await;
                    continue;
                }
                let envelope = Envelope::Deliver {
                    channel: channel.to_owned(),
                    conn: to.conn,
                    recipient: recipient.clone(),
                    message: h.message.clone(),
                };
                match self.publish(to.node, envelope).await {
                    Ok(()) => inc(&self.metrics.messages_delivered_from_hold),
                    Err(_) => {
                        unreachable = true;
                        self.hold_quietly(channel, h).await;
                    }
                }
            }
            if !unreachable {
                return;
            }
            match self
                .ports
                .presence
                .lookup(channel, recipient, self.now())
                .await
            {
                Ok(Some(m)) if m != to => to = m,
                _ => return,
            }
        }
    }

    /// Hands every connection of this node what is held for it (after the node's bus
    /// subscription came back: messages published meanwhile were held).
    async fn hand_over_all_held(&self) {
        for (id, channel, role) in self.local.snapshot() {
            self.hand_over_held(&channel, &role, id, false).await;
        }
    }

    /// Whether a master is connected to the channel (on any node).
    pub async fn has_master(&self, channel_arn: &str) -> bool {
        matches!(
            self.ports
                .presence
                .lookup(channel_arn, &Role::Master, self.now())
                .await,
            Ok(Some(_))
        )
    }

    /// The channel was deleted: GO_AWAY to its connections on every node (each closed after
    /// the grace period by its session), its presence and held messages dropped.
    pub async fn channel_deleted(&self, channel_arn: &str) {
        let grace = self.config.go_away_grace;
        let nodes = self
            .ports
            .presence
            .nodes(channel_arn, self.now())
            .await
            .unwrap_or_default();
        if let Err(e) = self.ports.presence.remove_channel(channel_arn).await {
            tracing::error!(error = %e, "cannot drop the presence of a deleted channel");
        }
        match self.ports.held.drop_channel(channel_arn).await {
            Ok(n) => add(&self.metrics.messages_dropped_deleted, n as u64),
            Err(e) => tracing::error!(error = %e, "cannot drop held messages"),
        }
        self.local
            .send_channel(channel_arn, &Event::GoAway { grace });
        for node in nodes.into_iter().filter(|n| *n != self.node) {
            let envelope = Envelope::GoAway {
                channel: channel_arn.to_owned(),
                grace,
            };
            self.publish(node, envelope).await.ok();
        }
    }

    /// Sends `event` to every connection of this node (shutdown's GO_AWAY, ICE rotation's
    /// RECONNECT_ICE_SERVER). Returns how many connections took it.
    pub fn broadcast(&self, event: &Event) -> usize {
        self.local.broadcast(event)
    }

    /// Drops held messages whose TTL has run out. Returns how many.
    pub async fn sweep(&self) -> usize {
        match self.ports.held.sweep(self.now()).await {
            Ok(n) => {
                add(&self.metrics.messages_expired, n as u64);
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot sweep held messages");
                0
            }
        }
    }

    /// Number of messages held for a channel (for tests and the console).
    pub async fn held_count(&self, channel_arn: &str) -> usize {
        self.ports.held.count(channel_arn).await.unwrap_or(0)
    }

    /// Number of live connections on this node.
    pub fn connection_count(&self) -> usize {
        self.local.len()
    }

    async fn on_envelope(&self, envelope: Envelope) {
        if envelope != Envelope::Resubscribed {
            inc(&self.metrics.bus_received);
        }
        match envelope {
            Envelope::Deliver {
                channel,
                conn,
                recipient,
                message,
            } => match self.local.send(conn, Event::Message(message)) {
                Ok(()) => {}
                Err(Refused::Full(_)) => inc(&self.metrics.messages_dropped_slow_consumer),
                Err(Refused::Closed(Event::Message(m))) => {
                    // Gone since the sender looked: hold it for the recipient's next connection.
                    let _ = self.hold(&channel, recipient, m, None).await;
                }
                Err(Refused::Closed(_)) => {}
            },
            Envelope::Close { conn, reason } => {
                let _ = self.local.send_direct(conn, Event::Close { reason });
            }
            Envelope::GoAway { channel, grace } => {
                self.local.send_channel(&channel, &Event::GoAway { grace });
            }
            Envelope::Resubscribed => self.hand_over_all_held().await,
        }
    }
}

/// The hub's background tasks; dropping this stops them and leaves the bus.
pub struct HubTasks {
    handles: Vec<tokio::task::JoinHandle<()>>,
    bus: Arc<dyn Bus>,
    node: NodeId,
}

impl Drop for HubTasks {
    fn drop(&mut self) {
        self.bus.unsubscribe(self.node);
        for h in &self.handles {
            h.abort();
        }
    }
}

async fn pump(hub: Weak<Hub>, mut inbox: mpsc::Receiver<Envelope>) {
    while let Some(envelope) = inbox.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        hub.on_envelope(envelope).await;
    }
}

async fn heartbeat(hub: Weak<Hub>) {
    let period = match hub.upgrade() {
        Some(h) => (h.config.lease / 3).max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let until = hub
            .now()
            .saturating_add(hub.config.lease.as_millis() as u64);
        match hub.ports.presence.renew(hub.node, until).await {
            Ok(()) => hub.renewed().await,
            Err(e) => {
                hub.failed_renewals.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(error = %e, "cannot renew this node's presence lease");
            }
        }
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
pub(crate) mod tests;
