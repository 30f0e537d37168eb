//! In-memory stream store (`--store memory`, and the default of an [`crate::app::Application`]
//! built without one): every check and change under one lock. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{MediaLink, StoreError, Stream, StreamName, StreamStore};
use crate::ids::{Namespace, ResourceArn};

#[derive(Debug, Default)]
struct State {
    streams: HashMap<Namespace, BTreeMap<StreamName, Stream>>,
    /// (namespace, channel ARN) -> link.
    links: HashMap<(Namespace, String), MediaLink>,
    /// (namespace, stream ARN) -> channel ARN: the reverse of `links`.
    by_stream: HashMap<(Namespace, String), String>,
}

impl State {
    fn stream(&self, ns: &Namespace, name: &str) -> Option<&Stream> {
        self.streams.get(ns)?.get(name)
    }

    fn drop_link(&mut self, ns: &Namespace, channel_arn: &str) {
        if let Some(old) = self.links.remove(&(ns.clone(), channel_arn.to_owned())) {
            self.by_stream
                .remove(&(ns.clone(), old.stream_arn.to_string()));
        }
    }
}

#[derive(Debug, Default)]
pub struct MemoryStreamStore {
    state: Mutex<State>,
}

impl MemoryStreamStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is applied whole under the lock: a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a keyset page starts: at the prefix, or just after the cursor, whichever is later.
pub(crate) fn page_start<'a>(prefix: Option<&'a str>, after: Option<&'a str>) -> Bound<&'a str> {
    match (after, prefix) {
        (Some(a), Some(p)) if a < p => Bound::Included(p),
        (Some(a), _) => Bound::Excluded(a),
        (None, Some(p)) => Bound::Included(p),
        (None, None) => Bound::Unbounded,
    }
}

#[async_trait]
impl StreamStore for MemoryStreamStore {
    async fn insert(&self, stream: Stream, max_per_namespace: usize) -> Result<(), StoreError> {
        let mut st = self.lock();
        let map = st.streams.entry(stream.ns.clone()).or_default();
        if map.contains_key(&stream.name) {
            return Err(StoreError::AlreadyExists);
        }
        if map.len() >= max_per_namespace {
            return Err(StoreError::LimitExceeded);
        }
        map.insert(stream.name.clone(), stream);
        Ok(())
    }

    async fn get(&self, ns: &Namespace, name: &StreamName) -> Result<Option<Stream>, StoreError> {
        Ok(self.lock().stream(ns, name.as_str()).cloned())
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&StreamName>,
        limit: usize,
    ) -> Result<Vec<Stream>, StoreError> {
        let st = self.lock();
        let Some(map) = st.streams.get(ns) else {
            return Ok(Vec::new());
        };
        let start = page_start(prefix, after.map(StreamName::as_str));
        Ok(map
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| prefix.is_none_or(|p| name.as_str().starts_with(p)))
            .take(limit)
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn replace(&self, stream: Stream, expected_revision: u64) -> Result<(), StoreError> {
        let mut st = self.lock();
        let slot = st
            .streams
            .get_mut(&stream.ns)
            .and_then(|m| m.get_mut(&stream.name))
            .ok_or(StoreError::NotFound)?;
        if slot.revision != expected_revision {
            return Err(StoreError::VersionConflict);
        }
        *slot = stream;
        Ok(())
    }

    async fn remove(
        &self,
        ns: &Namespace,
        name: &StreamName,
        expected_revision: u64,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        let current = st.stream(ns, name.as_str()).ok_or(StoreError::NotFound)?;
        if current.revision != expected_revision {
            return Err(StoreError::VersionConflict);
        }
        let arn = current.arn.to_string();
        if let Some(map) = st.streams.get_mut(ns) {
            map.remove(name.as_str());
            if map.is_empty() {
                st.streams.remove(ns);
            }
        }
        if let Some(channel) = st.by_stream.remove(&(ns.clone(), arn)) {
            st.links.remove(&(ns.clone(), channel));
        }
        Ok(())
    }

    async fn link_of_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        Ok(self
            .lock()
            .links
            .get(&(ns.clone(), channel_arn.to_string()))
            .cloned())
    }

    async fn link_of_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<Option<MediaLink>, StoreError> {
        let st = self.lock();
        Ok(st
            .by_stream
            .get(&(ns.clone(), stream_arn.to_string()))
            .and_then(|channel| st.links.get(&(ns.clone(), channel.clone())))
            .cloned())
    }

    async fn set_link(&self, link: MediaLink) -> Result<(), StoreError> {
        let mut st = self.lock();
        let ns = link.ns.clone();
        let stored = st
            .stream(&ns, &link.stream_arn.name)
            .is_some_and(|s| s.arn == link.stream_arn);
        if !stored {
            return Err(StoreError::NotFound);
        }
        let stream_key = (ns.clone(), link.stream_arn.to_string());
        if let Some(other) = st.by_stream.get(&stream_key) {
            if other.as_str() != link.channel_arn.as_str() {
                return Err(StoreError::AlreadyExists);
            }
        }
        st.drop_link(&ns, link.channel_arn.as_str());
        st.by_stream
            .insert(stream_key, link.channel_arn.to_string());
        st.links.insert((ns, link.channel_arn.to_string()), link);
        Ok(())
    }

    async fn unlink_channel(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<(), StoreError> {
        self.lock().drop_link(ns, channel_arn.as_str());
        Ok(())
    }

    async fn unlink_stream(
        &self,
        ns: &Namespace,
        stream_arn: &ResourceArn,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        if let Some(channel) = st.by_stream.remove(&(ns.clone(), stream_arn.to_string())) {
            st.links.remove(&(ns.clone(), channel));
        }
        Ok(())
    }

    async fn clear(&self) -> Result<usize, StoreError> {
        let mut st = self.lock();
        let n = st.streams.values().map(BTreeMap::len).sum();
        *st = State::default();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    crate::stream_store_conformance!(async { Arc::new(super::MemoryStreamStore::new()) });
}
