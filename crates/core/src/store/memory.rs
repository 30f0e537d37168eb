//! In-memory store (`--store memory`): the [`Index`] behind one lock, checked and applied in
//! one step. Nothing survives the process.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use super::{Change, Index, Staged, Store, StoreError};
use crate::ids::{ChannelName, Namespace};
use crate::model::Channel;

#[derive(Debug, Default)]
pub struct MemoryStore {
    index: RwLock<Index>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        // Changes are applied whole under the lock, so a poisoned lock still holds a
        // consistent index.
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn change(&self, change: Change) -> Result<(), StoreError> {
        let mut index = self.write();
        index.check(&change, &Staged::default())?;
        index.apply(change);
        Ok(())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert(&self, channel: Channel, max_per_namespace: usize) -> Result<(), StoreError> {
        self.change(Change::Insert {
            channel,
            max_per_namespace,
        })
    }

    async fn get(&self, ns: &Namespace, name: &ChannelName) -> Result<Option<Channel>, StoreError> {
        Ok(self.read().get(ns, name).cloned())
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&ChannelName>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        Ok(self.read().list(ns, prefix, after, limit))
    }

    async fn replace(&self, channel: Channel, expected_revision: u64) -> Result<(), StoreError> {
        self.change(Change::Replace {
            channel,
            expected_revision,
        })
    }

    async fn remove(
        &self,
        ns: &Namespace,
        name: &ChannelName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        self.change(Change::Remove {
            ns: ns.clone(),
            name: name.clone(),
            expected_revision,
        })
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        Ok(self.read().namespaces())
    }

    async fn clear(&self) -> Result<Vec<Channel>, StoreError> {
        Ok(self.write().take_all())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    crate::store_conformance!(async { Arc::new(super::MemoryStore::new()) });
}
