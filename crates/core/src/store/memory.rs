//! In-memory store (`--store memory`): a map behind one mutex. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{Store, StoreError};
use crate::ids::{ChannelName, Namespace};
use crate::model::Channel;

type Key = (Namespace, ChannelName);

#[derive(Debug, Default)]
pub struct MemoryStore {
    channels: Mutex<BTreeMap<Key, Channel>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<Key, Channel>>, StoreError> {
        self.channels
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl Store for MemoryStore {
    fn insert(&self, channel: &Channel, max_per_namespace: usize) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        let key = (channel.ns.clone(), channel.name.clone());
        if map.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        let count = map.keys().filter(|(ns, _)| *ns == channel.ns).count();
        if count >= max_per_namespace {
            return Err(StoreError::LimitExceeded);
        }
        map.insert(key, channel.clone());
        Ok(())
    }

    fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        Ok(self.lock()?.get(&(ns.clone(), name.clone())).cloned())
    }

    fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        let map = self.lock()?;
        Ok(map
            .iter()
            .filter(|((n, name), _)| {
                n == ns
                    && after.is_none_or(|a| name > a)
                    && prefix.is_none_or(|p| name.as_str().starts_with(p))
            })
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect())
    }

    fn replace(&self, channel: &Channel, expected_revision: u64) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        let slot = map
            .get_mut(&(channel.ns.clone(), channel.name.clone()))
            .ok_or(StoreError::NotFound)?;
        if slot.revision != expected_revision {
            return Err(StoreError::VersionConflict);
        }
        *slot = channel.clone();
        Ok(())
    }

    fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        let key = (ns.clone(), name.clone());
        match map.get(&key) {
            None => Err(StoreError::NotFound),
            Some(c) if c.revision != expected_revision => Err(StoreError::VersionConflict),
            Some(_) => {
                map.remove(&key);
                Ok(())
            }
        }
    }

    fn all(&self) -> Result<Vec<Channel>, StoreError> {
        Ok(self.lock()?.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn memory_store_conforms() {
        super::super::conformance::run_all(&|| Arc::new(super::MemoryStore::new()));
    }
}
