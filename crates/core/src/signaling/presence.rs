//! Presence: who is connected to a channel anywhere in the cluster — the master, the viewers by
//! ClientId, and SendAlexaOfferToMaster calls waiting for an answer — and on which node.
//!
//! Every node holds a lease that it renews while it runs; the members of a node whose lease ran
//! out stop counting (a node killed with `kill -9` frees its channels within one lease). The
//! one-master rule and the viewer limit are decided here, atomically per channel, so they hold
//! cluster-wide whatever node a client reaches.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::event::{Member, NodeId, Role};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    #[error("the signaling channel already has the maximum of {0} connected viewers")]
    ViewerLimit(usize),
    #[error("presence backend failure: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Presence: Send + Sync {
    /// Makes `member` the connection of `role` on `channel`, returning the member it replaced
    /// (a new master replaces the old one; a viewer reconnecting with its ClientId replaces its
    /// old connection). A viewer that would be the `max_viewers + 1`-th is refused.
    async fn claim(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
        max_viewers: usize,
        now_millis: u64,
    ) -> Result<Option<Member>, PresenceError>;

    /// Forgets `member` if it still holds `role` (a newer connection may have replaced it).
    async fn release(
        &self,
        channel: &str,
        role: &Role,
        member: Member,
    ) -> Result<(), PresenceError>;

    /// The live connection of `role`, if any.
    async fn lookup(
        &self,
        channel: &str,
        role: &Role,
        now_millis: u64,
    ) -> Result<Option<Member>, PresenceError>;

    /// The first of `roles` with a live connection, and its index in `roles` (one round trip
    /// on a networked backend, where looking each up would take one each).
    async fn lookup_first(
        &self,
        channel: &str,
        roles: &[Role],
        now_millis: u64,
    ) -> Result<Option<(usize, Member)>, PresenceError> {
        for (i, role) in roles.iter().enumerate() {
            if let Some(m) = self.lookup(channel, role, now_millis).await? {
                return Ok(Some((i, m)));
            }
        }
        Ok(None)
    }

    /// The nodes with a live connection on `channel`.
    async fn nodes(&self, channel: &str, now_millis: u64) -> Result<Vec<NodeId>, PresenceError>;

    /// Forgets every connection of `channel` (it was deleted).
    async fn remove_channel(&self, channel: &str) -> Result<(), PresenceError>;

    /// Extends `node`'s lease to `until_millis`.
    async fn renew(&self, node: NodeId, until_millis: u64) -> Result<(), PresenceError>;
}

#[derive(Default)]
struct ChannelPresence {
    members: HashMap<Role, Member>,
}

impl ChannelPresence {
    fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, ChannelPresence>,
    leases: HashMap<NodeId, u64>,
}

/// Presence in this process: the single-node default, and the shared presence of the hubs that
/// a test links together. With `lease: None` members never expire (one process: a dead node
/// takes its presence with it).
pub struct MemoryPresence {
    inner: Mutex<Inner>,
    lease: Option<Duration>,
}

impl MemoryPresence {
    pub fn new(lease: Option<Duration>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            lease,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn alive(&self, leases_on: bool, m: &Member, now: u64) -> bool {
        !leases_on || self.leases.get(&m.node).is_some_and(|until| *until > now)
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
        now_millis: u64,
    ) -> Result<Option<Member>, PresenceError> {
        let leases_on = self.lease.is_some();
        let mut inner = self.lock();
        if let Some(lease) = self.lease {
            // A node claiming is alive: its lease starts now if it had none.
            let until = now_millis.saturating_add(lease.as_millis() as u64);
            let l = inner.leases.entry(member.node).or_insert(until);
            *l = (*l).max(until);
        }
        let Inner { channels, leases } = &mut *inner;
        let state = channels.entry(channel.to_owned()).or_default();
        let alive = |m: &Member| !leases_on || leases.get(&m.node).is_some_and(|u| *u > now_millis);
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
            if state.is_empty() {
                inner.channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn lookup(
        &self,
        channel: &str,
        role: &Role,
        now_millis: u64,
    ) -> Result<Option<Member>, PresenceError> {
        let inner = self.lock();
        Ok(inner
            .channels
            .get(channel)
            .and_then(|s| s.members.get(role))
            .filter(|m| inner.alive(self.lease.is_some(), m, now_millis))
            .copied())
    }

    async fn nodes(&self, channel: &str, now_millis: u64) -> Result<Vec<NodeId>, PresenceError> {
        let inner = self.lock();
        let mut nodes: Vec<NodeId> = inner
            .channels
            .get(channel)
            .map(|s| {
                s.members
                    .values()
                    .filter(|m| inner.alive(self.lease.is_some(), m, now_millis))
                    .map(|m| m.node)
                    .collect()
            })
            .unwrap_or_default();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    async fn remove_channel(&self, channel: &str) -> Result<(), PresenceError> {
        self.lock().channels.remove(channel);
        Ok(())
    }

    async fn renew(&self, node: NodeId, until_millis: u64) -> Result<(), PresenceError> {
        let mut inner = self.lock();
        let l = inner.leases.entry(node).or_insert(until_millis);
        *l = (*l).max(until_millis);
        Ok(())
    }
}
