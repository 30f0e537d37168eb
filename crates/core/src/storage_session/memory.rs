//! The in-process [`SessionRegistry`]: one node, claims in a map, time from the injected clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::broadcast;

use super::{RegistryError, SessionRecord, SessionRegistry, SessionState, SUPERSEDED_BUFFER};
use crate::clock::Clock;
use crate::relay::NodeId;

pub struct MemorySessionRegistry {
    clock: Arc<dyn Clock>,
    /// Bounded by the number of channels (one claim each); lapsed claims go at the next write.
    claims: Mutex<BTreeMap<String, SessionRecord>>,
    superseded: broadcast::Sender<String>,
}

impl MemorySessionRegistry {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            claims: Mutex::default(),
            superseded: broadcast::channel(SUPERSEDED_BUFFER).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, SessionRecord>> {
        // Every change is one map operation: a poisoned lock still holds a consistent map.
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl SessionRegistry for MemorySessionRegistry {
    async fn claim(
        &self,
        channel: &str,
        session_id: &str,
        node: NodeId,
        ttl: Duration,
    ) -> Result<(SessionRecord, Option<SessionRecord>), RegistryError> {
        let now = self.clock.now_millis();
        let record = SessionRecord {
            channel_arn: channel.to_owned(),
            session_id: session_id.to_owned(),
            node,
            since_millis: now,
            expires_millis: now.saturating_add(millis(ttl)),
            state: SessionState::Offering.as_str().to_owned(),
        };
        let mut claims = self.lock();
        claims.retain(|_, r| r.expires_millis > now);
        let old = claims.insert(channel.to_owned(), record.clone());
        drop(claims);
        if let Some(o) = &old {
            // Nobody subscribed yet: nobody to tell.
            let _ = self.superseded.send(o.session_id.clone());
        }
        Ok((record, old))
    }

    async fn renew(
        &self,
        channel: &str,
        session_id: &str,
        state: SessionState,
        ttl: Duration,
    ) -> Result<bool, RegistryError> {
        let now = self.clock.now_millis();
        let mut claims = self.lock();
        match claims.get_mut(channel) {
            Some(r) if r.session_id == session_id && r.expires_millis > now => {
                r.expires_millis = now.saturating_add(millis(ttl));
                state.as_str().clone_into(&mut r.state);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, channel: &str, session_id: &str) -> Result<bool, RegistryError> {
        let mut claims = self.lock();
        if claims
            .get(channel)
            .is_some_and(|r| r.session_id == session_id)
        {
            claims.remove(channel);
            return Ok(true);
        }
        Ok(false)
    }

    async fn list(&self) -> Result<Vec<SessionRecord>, RegistryError> {
        let now = self.clock.now_millis();
        Ok(self
            .lock()
            .values()
            .filter(|r| r.expires_millis > now)
            .cloned()
            .collect())
    }

    fn superseded(&self) -> broadcast::Receiver<String> {
        self.superseded.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemorySessionRegistry;
    use crate::clock::ManualClock;
    use crate::storage_session::SessionRegistry;

    async fn make() -> (
        Arc<dyn SessionRegistry>,
        impl Fn(u64) -> std::future::Ready<()>,
    ) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let registry: Arc<dyn SessionRegistry> =
            Arc::new(MemorySessionRegistry::new(clock.clone()));
        let step = move |ms| {
            clock.advance(std::time::Duration::from_millis(ms));
            std::future::ready(())
        };
        (registry, step)
    }

    crate::session_registry_conformance!(make);
}
