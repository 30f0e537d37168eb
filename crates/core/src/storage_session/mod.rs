//! Storage sessions (issue 15, JoinStorageSession): which node runs the recording peer of a
//! channel, and when a running session must end.
//!
//! The server's WebRTC peer records a channel's master into the stream the channel is bound to.
//! On one node or many, exactly one peer may run per channel: the registry ([`SessionRegistry`])
//! holds one claim per channel, the most recent claim wins (a new JoinStorageSession ends the
//! running session), and a claim lapses unless its node renews it, so a node that died frees
//! the channel. Time is the registry's: Redis's `TIME` on Redis, the injected clock in memory.
//! [`rules`] decides when a running session ends, from facts its node observes.
//!
//! Viewers (JoinStorageSessionAsViewer) are members of the channel's session, kept by the
//! registry apart from the claim: at most a few per channel, counted across every node, each
//! join numbered (`seq`) so the same ClientId joining again is a new leg. A membership lapses
//! unless the running peer renews it, so viewers may join before the session exists (they
//! wait), and a session that replaces another takes its viewers over.

use std::time::Duration;

use async_trait::async_trait;

use crate::relay::NodeId;

pub mod memory;
pub mod rules;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use memory::MemorySessionRegistry;
pub use rules::{EndReason, SessionFacts, SessionLimits, ViewerEnd, ViewerFacts};

/// One channel's storage session as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub channel_arn: String,
    /// Random per JoinStorageSession call.
    pub session_id: String,
    /// The node running the peer.
    pub node: NodeId,
    /// When the claim was made (ms since the epoch, registry's clock).
    pub since_millis: u64,
    /// The claim lapses at this time unless renewed (registry's clock).
    pub expires_millis: u64,
    /// What the peer is doing ([`SessionState::as_str`]), as last renewed.
    pub state: String,
}

/// What a running peer reports when it renews its claim (for listings and the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The offer is sent; waiting for the master's answer.
    Offering,
    /// The answer arrived; ICE/DTLS under way.
    Connecting,
    /// Media flows.
    Connected,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offering => "OFFERING",
            Self::Connecting => "CONNECTING",
            Self::Connected => "CONNECTED",
        }
    }
}

/// A viewer's membership of a channel's storage session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerRecord {
    pub client_id: String,
    /// Increases with every join on the registry (the same ClientId joining again gets a
    /// higher one): a peer serves one leg per `(client_id, seq)`.
    pub seq: u64,
    /// When this join was accepted (registry's clock).
    pub since_millis: u64,
    /// The membership lapses at this time unless renewed (registry's clock).
    pub expires_millis: u64,
    /// `WAITING` until a peer serves it, then the leg's [`SessionState::as_str`].
    pub state: String,
}

/// The state of a membership no peer serves yet.
pub const VIEWER_WAITING: &str = "WAITING";

/// The outcome of [`SessionRegistry::join_viewer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerJoin {
    /// Joined with this sequence number.
    Joined { seq: u64 },
    /// `max` other viewers are members already.
    Full,
}

/// A running leg's renewal: its membership and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerRenewal {
    pub client_id: String,
    pub seq: u64,
    pub state: SessionState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("storage-session registry unavailable: {0}")]
    Unavailable(String),
}

/// The cluster-wide claims on channels' storage sessions.
#[async_trait]
pub trait SessionRegistry: Send + Sync {
    /// Claims `channel`'s session for `session_id` on `node` until `now + ttl`, replacing any
    /// claim (the most recent wins). Returns the new record and the claim it replaced, if that
    /// one was still live.
    async fn claim(
        &self,
        channel: &str,
        session_id: &str,
        node: NodeId,
        ttl: Duration,
    ) -> Result<(SessionRecord, Option<SessionRecord>), RegistryError>;

    /// Extends `session_id`'s claim to `now + ttl` and records its state. `false` when the
    /// claim is no longer its own (superseded, released or lapsed): its peer must stop.
    async fn renew(
        &self,
        channel: &str,
        session_id: &str,
        state: SessionState,
        ttl: Duration,
    ) -> Result<bool, RegistryError>;

    /// Removes the claim if it is still `session_id`'s; returns whether it was.
    async fn release(&self, channel: &str, session_id: &str) -> Result<bool, RegistryError>;

    /// Every live claim, ordered by channel ARN.
    async fn list(&self) -> Result<Vec<SessionRecord>, RegistryError>;

    /// The ids of sessions whose claims a newer claim replaced, as they are replaced, from any
    /// node: the node running one stops its peer at once. Best effort (a notice may be lost
    /// while a subscription is re-established); a peer's periodic renewal is the guarantee.
    fn superseded(&self) -> tokio::sync::broadcast::Receiver<String>;

    /// Makes `client_id` a member of `channel`'s session until `now + ttl`, unless `max` other
    /// live members exist ([`ViewerJoin::Full`]). The same ClientId replaces its membership
    /// (a higher `seq`, counted once). Announced on [`SessionRegistry::viewers_changed`].
    async fn join_viewer(
        &self,
        channel: &str,
        client_id: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<ViewerJoin, RegistryError>;

    /// Extends the memberships of `legs` still holding their `seq` to `now + ttl` with their
    /// states, then returns every live member of `channel` (ordered by `seq`).
    async fn renew_viewers(
        &self,
        channel: &str,
        legs: &[ViewerRenewal],
        ttl: Duration,
    ) -> Result<Vec<ViewerRecord>, RegistryError>;

    /// Ends `client_id`'s membership if it is still join `seq`; returns whether it was.
    async fn leave_viewer(
        &self,
        channel: &str,
        client_id: &str,
        seq: u64,
    ) -> Result<bool, RegistryError>;

    /// The ARNs of channels whose viewers joined, from any node: the node running the
    /// channel's peer serves them at once. Best effort, like [`SessionRegistry::superseded`];
    /// the peer's periodic renewal is the guarantee.
    fn viewers_changed(&self) -> tokio::sync::broadcast::Receiver<String>;
}

/// Notices buffered per subscriber of [`SessionRegistry::superseded`]. Overflow policy: a
/// subscriber that falls behind skips the oldest (its peers still stop at their next renewal).
pub const SUPERSEDED_BUFFER: usize = 256;
