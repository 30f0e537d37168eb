//! Presence: who is connected to a channel anywhere in the cluster — the master, the viewers by
//! ClientId, and SendAlexaOfferToMaster calls waiting for an answer — and on which node.
//!
//! Every node holds a lease that it renews while it runs; the members of a node whose lease ran
//! out stop counting (a node killed with `kill -9` frees its channels within one lease). The
//! one-master rule and the viewer limit are decided here, atomically per channel, so they hold
//! cluster-wide whatever node a client reaches.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::event::{Member, NodeId, Role};
use crate::clock::Clock;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    #[error("the signaling channel already has the maximum of {0} connected viewers")]
    ViewerLimit(usize),
    /// The channel was deleted (or is being deleted): nobody may join it any more.
    #[error("the signaling channel no longer exists")]
    ChannelGone,
    #[error("presence backend failure: {0}")]
    Backend(String),
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The node had no lease (its first renewal, or it was forgotten long ago).
    Fresh,
    /// The lease was still running: nothing of this node's was taken for dead.
    Continued,
    /// The lease had run out before this renewal: other nodes may have dropped this node's
    /// members, so its connections must register again.
    Lapsed,
}

/// Presence, decided on one clock: the backend's own. Nothing here takes a node's wall clock:
/// leases last a *duration* and whether one still runs is decided where it is stored (Redis's
/// `TIME` for the Redis backend, the process's clock in memory), so nodes whose clocks disagree
/// still agree on who is connected.
#[async_trait]
pub trait Presence: Send + Sync {
    /// Makes `member` the connection of `role` on `channel`, returning the member it replaced
    /// (a new master replaces the old one; a viewer reconnecting with its ClientId replaces its
    /// old connection). A viewer that would be the `max_viewers + 1`-th is refused; so is any
    /// claim on a channel that no longer exists ([`PresenceError::ChannelGone`]), decided
    /// atomically with the claim so a connect cannot slip in after a delete.
    async fn claim(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
        max_viewers: usize,
    ) -> Result<Option<Member>, PresenceError>;

    /// Forgets `member` if it still holds `role` (a newer connection may have replaced it).
    async fn release(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
    ) -> Result<(), PresenceError>;

    /// The live connection of `role`, if any.
    async fn lookup(&self, channel: &str, role: &Role) -> Result<Option<Member>, PresenceError>;

    /// The first of `roles` with a live connection, and its index in `roles` (one round trip
    /// on a networked backend, where looking each up would take one each).
    async fn lookup_first(
        &self,
        channel: &str,
        roles: &[Role],
    ) -> Result<Option<(usize, Member)>, PresenceError> {
        for (i, role) in roles.iter().enumerate() {
            if let Some(m) = self.lookup(channel, role).await? {
                return Ok(Some((i, m)));
            }
        }
        Ok(None)
    }

    /// The nodes with a live connection on `channel`.
    async fn nodes(&self, channel: &str) -> Result<Vec<NodeId>, PresenceError>;

    /// The live connections of `channel` by role, sorted (the console's counts).
    async fn roles(&self, channel: &str) -> Result<Vec<(Role, Member)>, PresenceError>;

    /// Forgets every connection of `channel` (it was deleted) and refuses later claims on it,
    /// atomically; returns the nodes of the connections it forgot (sorted, once each), which
    /// are the nodes to tell.
    async fn remove_channel(&self, channel: &str) -> Result<Vec<NodeId>, PresenceError>;

    /// Extends `node`'s lease to `lease` from now (the backend's now), saying whether the
    /// previous lease had already run out.
    async fn renew(&self, node: NodeId, lease: Duration) -> Result<Renewal, PresenceError>;
}

/// The order [`Presence::roles`] lists roles in: the master, viewers, waiting calls, each by
/// ClientId.
pub fn role_key(role: &Role) -> (u8, &str) {
    match role {
        Role::Master => (0, ""),
        Role::Viewer(id) => (1, id),
        Role::AnswerWaiter(id) => (2, id),
    }
}

/// Deleted channels remembered so a late claim on one fails. Bounded; overflow policy: the
/// oldest is forgotten (ARNs carry their creation time and are never reused, and a claim
/// follows its channel check within seconds, so an old entry guards nothing any more).
const MAX_GONE: usize = 100_000;

#[derive(Default)]
struct ChannelPresence {
    members: HashMap<Role, Member>,
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, ChannelPresence>,
    leases: HashMap<NodeId, u64>,
    gone: HashSet<String>,
    gone_order: VecDeque<String>,
}

/// Presence in this process: the single-node default, and the shared presence of the hubs that
/// a test links together. Without a clock, members never expire (one process: a dead node takes
/// its presence with it); with one, nodes hold leases on that clock, as they do on Redis's.
pub struct MemoryPresence {
    inner: Mutex<Inner>,
    clock: Option<Arc<dyn Clock>>,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPresence {
    /// One node: no leases.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            clock: None,
        }
    }

    /// Linked nodes in one process, with leases decided on `clock`.
    pub fn with_leases(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            clock: Some(clock),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> Option<u64> {
        self.clock.as_ref().map(|c| c.now_millis())
    }

    /// Ends `node`'s lease now (tests of a dead node).
    #[cfg(any(test, feature = "conformance"))]
    pub fn end_lease(&self, node: NodeId) {
        if let Some(l) = self.lock().leases.get_mut(&node) {
            *l = 0;
        }
    }
}

impl Inner {
    fn alive(&self, now: Option<u64>, m: &Member) -> bool {
        now.is_none_or(|now| self.leases.get(&m.node).is_some_and(|until| *until > now))
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn claim(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
        max_viewers: usize,
    ) -> Result<Option<Member>, PresenceError> {
        let now = self.now();
        let mut inner = self.lock();
        if inner.gone.contains(channel) {
            return Err(PresenceError::ChannelGone);
        }
        let Inner {
            channels, leases, ..
        } = &mut *inner;
        let alive =
            |m: &Member| now.is_none_or(|now| leases.get(&m.node).is_some_and(|u| *u > now));
        let state = channels.entry(channel.to_owned()).or_default();
        // Members of dead nodes are gone.
        state.members.retain(|_, m| alive(m));
        if let Role::Viewer(_) = role {
            let others = state
                .members
                .iter()
                .filter(|(r, _)| r.is_viewer() && *r != role)
                .count();
            if others >= max_viewers {
                return Err(PresenceError::ViewerLimit(max_viewers));
            }
        }
        Ok(state.members.insert(role.clone(), member))
    }

    async fn release(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
    ) -> Result<(), PresenceError> {
        let mut inner = self.lock();
        if let Some(state) = inner.channels.get_mut(channel) {
            if state.members.get(role) == Some(&member) {
                state.members.remove(role);
            }
            if state.members.is_empty() {
                inner.channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn lookup(&self, channel: &str, role: &Role) -> Result<Option<Member>, PresenceError> {
        let now = self.now();
        let inner = self.lock();
        Ok(inner
            .channels
            .get(channel)
            .and_then(|s| s.members.get(role))
            .filter(|m| inner.alive(now, m))
            .copied())
    }

    async fn roles(&self, channel: &str) -> Result<Vec<(Role, Member)>, PresenceError> {
        let now = self.now();
        let inner = self.lock();
        let mut roles: Vec<(Role, Member)> = inner
            .channels
            .get(channel)
            .map(|s| {
                s.members
                    .iter()
                    .filter(|(_, m)| inner.alive(now, m))
                    .map(|(r, m)| (r.clone(), *m))
                    .collect()
            })
            .unwrap_or_default();
        roles.sort_by(|a, b| role_key(&a.0).cmp(&role_key(&b.0)));
        Ok(roles)
    }

    async fn nodes(&self, channel: &str) -> Result<Vec<NodeId>, PresenceError> {
        let now = self.now();
        let inner = self.lock();
        let mut nodes: Vec<NodeId> = inner
            .channels
            .get(channel)
            .map(|s| {
                s.members
                    .values()
                    .filter(|m| inner.alive(now, m))
                    .map(|m| m.node)
                    .collect()
            })
            .unwrap_or_default();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    async fn remove_channel(&self, channel: &str) -> Result<Vec<NodeId>, PresenceError> {
        let mut inner = self.lock();
        let mut nodes: Vec<NodeId> = inner
            .channels
            .remove(channel)
            .map(|s| s.members.values().map(|m| m.node).collect())
            .unwrap_or_default();
        nodes.sort();
        nodes.dedup();
        if inner.gone.insert(channel.to_owned()) {
            inner.gone_order.push_back(channel.to_owned());
            if inner.gone_order.len() > MAX_GONE {
                if let Some(old) = inner.gone_order.pop_front() {
                    inner.gone.remove(&old);
                }
            }
        }
        Ok(nodes)
    }

    async fn renew(&self, node: NodeId, lease: Duration) -> Result<Renewal, PresenceError> {
        let Some(now) = self.now() else {
            return Ok(Renewal::Continued);
        };
        let until = now.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let mut inner = self.lock();
        let found = match inner.leases.get(&node) {
            None => Renewal::Fresh,
            Some(end) if *end > now => Renewal::Continued,
            Some(_) => Renewal::Lapsed,
        };
        let l = inner.leases.entry(node).or_insert(until);
        *l = (*l).max(until);
        Ok(found)
    }
}
