//! The in-memory channel index: every channel of every namespace, ordered by name within its
//! namespace. It is the whole of [`super::MemoryStore`] and the read side of the SQLite store
//! (`kvs-sqlite`), which is why reads never touch the disk (issue 7, "channels served from
//! memory").
//!
//! The index only *checks* and *applies* changes; it never decides durability. A backend
//! validates a change against it ([`Index::check`]), makes the change durable, then applies it
//! ([`Index::apply`]). Checks are exact because the backend serialises writers.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::StoreError;
use crate::ids::{ChannelName, Namespace};
use crate::model::Channel;

/// One change to the registry, as a backend receives it.
#[derive(Debug, Clone)]
pub enum Change {
    Insert {
        channel: Channel,
        max_per_namespace: usize,
    },
    Replace {
        channel: Channel,
        expected_revision: u64,
    },
    Remove {
        ns: Namespace,
        name: ChannelName,
        expected_revision: u64,
    },
}

impl Change {
    pub fn key(&self) -> (&Namespace, &ChannelName) {
        match self {
            Self::Insert { channel, .. } | Self::Replace { channel, .. } => {
                (&channel.ns, &channel.name)
            }
            Self::Remove { ns, name, .. } => (ns, name),
        }
    }
}

#[derive(Debug, Default)]
pub struct Index {
    namespaces: HashMap<Namespace, BTreeMap<ChannelName, Channel>>,
}

impl Index {
    pub fn get(&self, ns: &Namespace, name: &ChannelName) -> Option<&Channel> {
        self.namespaces.get(ns)?.get(name)
    }

    pub fn count(&self, ns: &Namespace) -> usize {
        self.namespaces.get(ns).map_or(0, BTreeMap::len)
    }

    /// Channels of `ns` in name order, strictly after `after`, whose names start with `prefix`.
    /// Walks only the part of the namespace that can match.
    pub fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Vec<Channel> {
        let Some(map) = self.namespaces.get(ns) else {
            return Vec::new();
        };
        let start = match (after, prefix) {
            (Some(a), Some(p)) if a.as_str() < p => Bound::Included(p),
            (Some(a), _) => Bound::Excluded(a.as_str()),
            (None, Some(p)) => Bound::Included(p),
            (None, None) => Bound::Unbounded,
        };
        map.range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| prefix.is_none_or(|p| name.as_str().starts_with(p)))
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Whether `change` may be applied now; `staged` lets a batch see the effects of the
    /// changes ahead of it that are not applied yet.
    pub fn check(&self, change: &Change, staged: &Staged) -> Result<(), StoreError> {
        let (ns, name) = change.key();
        let current = staged.current(self, ns, name);
        match change {
            Change::Insert {
                max_per_namespace, ..
            } => {
                if current.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                if staged.count(self, ns) >= *max_per_namespace {
                    return Err(StoreError::LimitExceeded);
                }
                Ok(())
            }
            Change::Replace {
                expected_revision, ..
            }
            | Change::Remove {
                expected_revision, ..
            } => match current {
                None => Err(StoreError::NotFound),
                Some(c) if c.revision != *expected_revision => Err(StoreError::VersionConflict),
                Some(_) => Ok(()),
            },
        }
    }

    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Insert { channel, .. } | Change::Replace { channel, .. } => {
                self.namespaces
                    .entry(channel.ns.clone())
                    .or_default()
                    .insert(channel.name.clone(), channel);
            }
            Change::Remove { ns, name, .. } => {
                if let Some(map) = self.namespaces.get_mut(&ns) {
                    map.remove(&name);
                    if map.is_empty() {
                        self.namespaces.remove(&ns);
                    }
                }
            }
        }
    }

    /// Loads a channel read from durable storage at start-up.
    pub fn load(&mut self, channel: Channel) {
        self.apply(Change::Insert {
            channel,
            max_per_namespace: usize::MAX,
        });
    }

    pub fn len(&self) -> usize {
        self.namespaces.values().map(BTreeMap::len).sum()
    }

    /// Every namespace holding at least one channel, sorted (account, then region).
    pub fn namespaces(&self) -> Vec<Namespace> {
        let mut out: Vec<Namespace> = self.namespaces.keys().cloned().collect();
        out.sort();
        out
    }

    /// Empties the index, returning every channel it held.
    pub fn take_all(&mut self) -> Vec<Channel> {
        std::mem::take(&mut self.namespaces)
            .into_values()
            .flat_map(BTreeMap::into_values)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }
}

/// The accepted but not yet applied changes of one batch, keyed by channel.
#[derive(Debug, Default)]
pub struct Staged {
    channels: HashMap<(Namespace, ChannelName), Option<Channel>>,
    count_delta: HashMap<Namespace, isize>,
}

impl Staged {
    fn current<'a>(
        &'a self,
        index: &'a Index,
        ns: &Namespace,
        name: &ChannelName,
    ) -> Option<&'a Channel> {
        match self.channels.get(&(ns.clone(), name.clone())) {
            Some(staged) => staged.as_ref(),
            None => index.get(ns, name),
        }
    }

    fn count(&self, index: &Index, ns: &Namespace) -> usize {
        let delta = self.count_delta.get(ns).copied().unwrap_or(0);
        index.count(ns).saturating_add_signed(delta)
    }

    /// Records an accepted change so later changes of the batch see it.
    pub fn stage(&mut self, change: &Change) {
        let (ns, name) = change.key();
        let key = (ns.clone(), name.clone());
        match change {
            Change::Insert { channel, .. } => {
                *self.count_delta.entry(ns.clone()).or_default() += 1;
                self.channels.insert(key, Some(channel.clone()));
            }
            Change::Replace { channel, .. } => {
                self.channels.insert(key, Some(channel.clone()));
            }
            Change::Remove { .. } => {
                *self.count_delta.entry(ns.clone()).or_default() -= 1;
                self.channels.insert(key, None);
            }
        }
    }
}
