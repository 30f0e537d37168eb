//! The typed events that travel inside the core: from the relay to a connection's session, and
//! between nodes over the [`super::bus::Bus`]. Sessions in the server's `websocket/` turn them into frames
//! (docs/protocol.md §6.3, §6.4); nothing in the core builds JSON for a connection.

use std::time::Duration;

use super::message::Action;

/// What a connection is on its channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Master,
    Viewer(String),
    /// A SendAlexaOfferToMaster call waiting for the master's answer to `SenderClientId`. It
    /// has its own place: it is not a viewer, does not count toward the viewer limit and never
    /// evicts a connected viewer with the same ClientId.
    AnswerWaiter(String),
}

impl Role {
    pub fn is_master(&self) -> bool {
        matches!(self, Self::Master)
    }

    pub fn is_viewer(&self) -> bool {
        matches!(self, Self::Viewer(_))
    }
}

/// A node of the cluster (one process). Random per start, so a restarted node is a new node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl NodeId {
    pub fn random() -> Self {
        Self(rand::random::<u64>())
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where a connection lives: its node and its id on that node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    pub node: NodeId,
    pub conn: u64,
}

/// A relayed signaling message as its recipient receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    pub action: Action,
    /// The viewer's ClientId for messages from a viewer; `None` from the master.
    pub sender: Option<String>,
    pub payload: String,
}

/// What a connection's session is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send this message.
    Message(Relayed),
    /// Send GO_AWAY now and close the connection after `grace` (docs/protocol.md §6.4).
    GoAway { grace: Duration },
    /// Send RECONNECT_ICE_SERVER (the TURN credentials changed).
    ReconnectIceServer,
    /// Close the connection now (it was replaced by a newer one).
    Close { reason: String },
}

/// A message waiting for a recipient that is connected nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMessage {
    pub recipient: Role,
    pub message: Relayed,
    /// `now + MessageTtlSeconds` at the moment the message was accepted (docs/design.md §2).
    pub expires_at_millis: u64,
}
