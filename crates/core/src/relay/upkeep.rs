//! Keeping a node in the cluster: its lease, its bus inbox, and what it owes other nodes when a
//! channel is deleted.
//!
//! - The heartbeat renews the node's lease every third of a lease. Whether the lease still ran
//!   is the presence backend's answer (decided on its clock, never this node's), and a renewal
//!   that completes more than a lease after the previous one was sent counts as lapsed too:
//!   other nodes may have taken this one for dead and dropped its members, so its connections
//!   hear GO_AWAY and register again.
//! - The pump serves the bus inbox. After the node's subscription came back, what was published
//!   meanwhile was held or lost, so the node hands its connections what is held for them and
//!   checks each against presence (a Close it missed: the connection was replaced elsewhere).
//!   That runs off the pump, a bounded number at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::bus::{Bus, Envelope};
use super::event::{Event, Member, NodeId, Role};
use super::hub::Hub;
use super::local::Refused;
use super::metrics::{add, inc};
use super::presence::Renewal;

/// Connections caught up at once after a resubscription.
const CATCH_UP_CONCURRENCY: usize = 16;

/// The grace of the GO_AWAY sent to connections that must register again.
const REREGISTER_GRACE: Duration = Duration::from_secs(1);

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

/// Why a delete could not reach every connection of the channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the channel's connections could not all be told: {0}")]
pub struct GoAwayIncomplete(pub String);

impl Hub {
    /// Serves the bus inbox and renews the lease until the returned tasks are dropped.
    pub fn start(self: &Arc<Self>) -> HubTasks {
        let inbox = self.ports.bus.subscribe(self.node);
        let catching_up = Arc::new(AtomicBool::new(false));
        let pump = tokio::spawn(pump(Arc::downgrade(self), inbox, catching_up));
        let heartbeat = tokio::spawn(heartbeat(Arc::downgrade(self)));
        let feed = tokio::spawn(super::live::listen(
            Arc::downgrade(self),
            super::live::subscribe(self),
        ));
        HubTasks {
            handles: vec![pump, heartbeat, feed],
            bus: Arc::clone(&self.ports.bus),
            node: self.node,
        }
    }

    /// After a renewal: retries failed releases and, if the lease had run out, sends GO_AWAY
    /// to every connection of this node so they register again.
    async fn renewed(&self, lapsed: bool) {
        if lapsed {
            let n = self.local.broadcast(&Event::GoAway {
                grace: REREGISTER_GRACE,
            });
            inc(&self.metrics.lease_lapses);
            tracing::warn!(
                connections = n,
                "this node's lease ran out (other nodes may have dropped its connections); \
                 GO_AWAY to its connections so they register again"
            );
        }
        self.retry_releases().await;
    }

    async fn on_envelope(&self, envelope: Envelope) {
        inc(&self.metrics.bus_received);
        match envelope {
            Envelope::Deliver {
                channel,
                conn,
                recipient,
                message,
            } => match self.local.send(conn, Event::Message(message)) {
                Ok(()) => {}
                Err(Refused::Full(Event::Message(m))) => {
                    // Not reading (its connection is being closed): held for the next one.
                    inc(&self.metrics.messages_held_slow_consumer);
                    let _ = self.hold(&channel, recipient, m, None).await;
                }
                Err(Refused::Closed(Event::Message(m))) => {
                    // Gone since the sender looked: hold it for the recipient's next connection.
                    let _ = self.hold(&channel, recipient, m, None).await;
                }
                Err(Refused::Full(_)) => {}
                Err(Refused::Closed(_)) => {}
            },
            Envelope::Close { conn, reason } => {
                let _ = self.local.send_direct(conn, Event::Close { reason });
            }
            Envelope::GoAway { channel, grace } => {
                self.local.send_channel(&channel, &Event::GoAway { grace });
            }
            Envelope::Redirect { conn, to } => {
                self.local.set_redirect(conn, to.map(Arc::from));
            }
            // Handled by the pump itself.
            Envelope::Resubscribed => {}
        }
    }

    /// Hands one live connection what is held for it, and closes it if presence no longer
    /// lists it (replaced on another node, or dropped as a dead node's while this node's
    /// subscription was down).
    async fn catch_up(&self, id: u64, channel: Arc<str>, role: Role) {
        let me = Member {
            node: self.node,
            conn: id,
        };
        match self.ports.presence.lookup(&channel, &role).await {
            Ok(Some(m)) if m == me => {
                self.hand_over_held(&channel, &role, id, false).await;
            }
            Ok(Some(_)) => {
                let _ = self.local.send_direct(
                    id,
                    Event::Close {
                        reason: "replaced by a newer connection".into(),
                    },
                );
            }
            Ok(None) => {
                inc(&self.metrics.connections_reregistered);
                let _ = self.local.send_direct(
                    id,
                    Event::GoAway {
                        grace: REREGISTER_GRACE,
                    },
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot check a connection against presence"),
        }
    }

    /// Catches every live connection of this node up, a bounded number at a time.
    async fn catch_up_all(self: Arc<Self>) {
        let mut running = JoinSet::new();
        for (id, channel, role) in self.local.live() {
            if matches!(role, Role::AnswerWaiter(_)) {
                continue;
            }
            while running.len() >= CATCH_UP_CONCURRENCY {
                running.join_next().await;
            }
            let hub = Arc::clone(&self);
            running.spawn(async move { hub.catch_up(id, channel, role).await });
        }
        while running.join_next().await.is_some() {}
    }

    /// The channel was deleted: GO_AWAY to its connections on every node (each closed after
    /// the grace period by its session), its presence and held messages dropped, and later
    /// claims on it refused. An error means some node's connections may not have been told.
    pub async fn channel_deleted(&self, channel_arn: &str) -> Result<(), GoAwayIncomplete> {
        self.channel_gone(channel_arn, self.config.go_away_grace)
            .await
    }

    /// [`Hub::channel_deleted`] with the GO_AWAY grace given: a reset (`POST /_kvs/reset`)
    /// closes the connections at once, where a delete leaves them the configured grace.
    pub async fn channel_gone(
        &self,
        channel_arn: &str,
        grace: Duration,
    ) -> Result<(), GoAwayIncomplete> {
        // One atomic step removes the members and refuses later claims: a claim before it is
        // among the nodes returned, a claim after it fails.
        let nodes = self
            .ports
            .presence
            .remove_channel(channel_arn)
            .await
            .map_err(|e| GoAwayIncomplete(e.to_string()))?;
        match self.ports.held.drop_channel(channel_arn).await {
            Ok(n) => add(&self.metrics.messages_dropped_deleted, n as u64),
            Err(e) => tracing::error!(error = %e, "cannot drop held messages"),
        }
        let n = self
            .local
            .send_channel(channel_arn, &Event::GoAway { grace });
        self.tap(channel_arn, |_| {
            Some(super::watch::What::GoAway { connections: n })
        });
        let others = nodes.into_iter().filter(|n| *n != self.node);
        let mut failed = None;
        for node in others {
            let envelope = Envelope::GoAway {
                channel: channel_arn.to_owned(),
                grace,
            };
            match self.publish(node, envelope).await {
                // A node that is not on the bus is gone, and its connections with it.
                Ok(()) | Err(super::bus::BusError::NoSuchNode) => {}
                Err(e) => failed = Some(e.to_string()),
            }
        }
        match failed {
            Some(e) => Err(GoAwayIncomplete(e)),
            None => Ok(()),
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
}

async fn pump(hub: Weak<Hub>, mut inbox: mpsc::Receiver<Envelope>, catching_up: Arc<AtomicBool>) {
    while let Some(envelope) = inbox.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        if envelope == Envelope::Resubscribed {
            // Off the pump, so the inbox keeps draining meanwhile; one catch-up at a time.
            if !catching_up.swap(true, Ordering::SeqCst) {
                let flag = Arc::clone(&catching_up);
                tokio::spawn(async move {
                    hub.catch_up_all().await;
                    flag.store(false, Ordering::SeqCst);
                });
            }
            continue;
        }
        hub.on_envelope(envelope).await;
    }
}

async fn heartbeat(hub: Weak<Hub>) {
    let (period, lease) = match hub.upgrade() {
        Some(h) => (
            (h.config.lease / 3).max(Duration::from_millis(100)),
            h.config.lease,
        ),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    // When the last renewal that succeeded was sent: its lease runs at least `lease` from then.
    let mut last_renewal: Option<Instant> = None;
    let mut faults = crate::fault_log::FaultLog::default();
    const RENEW: &str = "cannot renew this node's presence lease";
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let sent = Instant::now();
        match hub.ports.presence.renew(hub.node, lease).await {
            Ok(renewal) => {
                faults.succeeded(RENEW);
                let late = last_renewal.is_some_and(|t| Instant::now() >= t + lease);
                let lapsed = late
                    || renewal == Renewal::Lapsed
                    || (renewal == Renewal::Fresh && last_renewal.is_some());
                last_renewal = Some(sent);
                hub.renewed(lapsed).await;
            }
            Err(e) => {
                faults.failed(RENEW, &e.to_string());
            }
        }
    }
}
