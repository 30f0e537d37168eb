//! The bus between nodes: a node publishes an event to exactly the node that holds its
//! recipient (never a broadcast to every node), so a message crosses the bus at most once per
//! hop, and not at all when sender and recipient share a node.
//!
//! Each node's inbox is bounded ([`BUS_INBOX`] envelopes). Overflow policy: the newest envelope
//! is refused ([`BusError::Full`]), counted, and reported to the sender like a slow consumer;
//! the bus never waits for a slow node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::event::{NodeId, Relayed, Role};

/// Envelopes a node's inbox holds before the bus refuses more.
pub const BUS_INBOX: usize = 8192;

/// What one node asks another to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// Deliver a message to one of the node's connections. If that connection is gone by the
    /// time it arrives, the receiving node holds the message for `recipient`.
    Deliver {
        channel: String,
        conn: u64,
        recipient: Role,
        message: Relayed,
    },
    /// Close one connection (a newer connection with its role opened on another node).
    Close { conn: u64, reason: String },
    /// Send what viewer connection `conn` addresses to the master to the viewer `to` instead
    /// (a storage session's peer), or to the master again (`None`).
    Redirect { conn: u64, to: Option<String> },
    /// The channel was deleted: GO_AWAY to every connection of it on the node.
    GoAway { channel: String, grace: Duration },
    /// From the bus itself, never published: the node's subscription was (re)established.
    /// Envelopes published while it was down found no subscriber and their messages were
    /// held, so the node hands its connections what is held for them.
    Resubscribed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("the node's inbox is full")]
    Full,
    #[error("no such node")]
    NoSuchNode,
    #[error("bus backend failure: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Bus: Send + Sync {
    /// Sends `envelope` to node `to`.
    async fn publish(&self, to: NodeId, envelope: Envelope) -> Result<(), BusError>;

    /// The inbox of `node`; a second subscription replaces the first.
    fn subscribe(&self, node: NodeId) -> mpsc::Receiver<Envelope>;

    /// Stops delivering to `node` (it is shutting down).
    fn unsubscribe(&self, node: NodeId);

    /// Envelopes that reached this node's subscription but not its inbox (the inbox was full).
    /// A backend that refuses at publish time instead (the sender is told) has none.
    fn dropped_on_arrival(&self) -> u64 {
        0
    }
}

/// The bus inside one process: the single node's own (where it is never used, every recipient
/// being local), and the link between the hubs of a multi-node test. Counts what each node
/// received, so tests can assert where messages went.
#[derive(Default)]
pub struct MemoryBus {
    inboxes: Mutex<HashMap<NodeId, mpsc::Sender<Envelope>>>,
    received: Mutex<HashMap<NodeId, Arc<AtomicU64>>>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn inboxes(&self) -> MutexGuard<'_, HashMap<NodeId, mpsc::Sender<Envelope>>> {
        self.inboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn counter(&self, node: NodeId) -> Arc<AtomicU64> {
        let mut m = self
            .received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(m.entry(node).or_default())
    }

    /// Envelopes published to `node` so far.
    pub fn received(&self, node: NodeId) -> u64 {
        self.counter(node).load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, to: NodeId, envelope: Envelope) -> Result<(), BusError> {
        let tx = self
            .inboxes()
            .get(&to)
            .cloned()
            .ok_or(BusError::NoSuchNode)?;
        match tx.try_send(envelope) {
            Ok(()) => {
                self.counter(to).fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(BusError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(BusError::NoSuchNode),
        }
    }

    fn subscribe(&self, node: NodeId) -> mpsc::Receiver<Envelope> {
        let (tx, rx) = mpsc::channel(BUS_INBOX);
        self.inboxes().insert(node, tx);
        rx
    }

    fn unsubscribe(&self, node: NodeId) {
        self.inboxes().remove(&node);
    }
}
