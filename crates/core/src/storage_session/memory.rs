//! The in-process [`SessionRegistry`]: one node, claims in a map, time from the injected clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::broadcast;

use super::{
    RegistryError, SessionRecord, SessionRegistry, SessionState, ViewerJoin, ViewerRecord,
    ViewerRenewal, SUPERSEDED_BUFFER, VIEWER_WAITING,
};
use crate::clock::Clock;
use crate::relay::NodeId;

pub struct MemorySessionRegistry {
    clock: Arc<dyn Clock>,
    /// Bounded by the number of channels (one claim each); lapsed claims go at the next write.
    claims: Mutex<BTreeMap<String, SessionRecord>>,
    superseded: broadcast::Sender<String>,
    /// Viewer memberships by channel, then ClientId; lapsed ones go at the next write on
    /// their channel. Bounded by `max` per channel (the join refuses more).
    viewers: Mutex<Viewers>,
    viewers_changed: broadcast::Sender<String>,
}

#[derive(Default)]
struct Viewers {
    by_channel: BTreeMap<String, BTreeMap<String, ViewerRecord>>,
    next_seq: u64,
}

impl MemorySessionRegistry {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            claims: Mutex::default(),
            superseded: broadcast::channel(SUPERSEDED_BUFFER).0,
            viewers: Mutex::default(),
            viewers_changed: broadcast::channel(SUPERSEDED_BUFFER).0,
        }
    }

    fn viewers(&self) -> MutexGuard<'_, Viewers> {
        // Every change is one map operation: a poisoned lock still holds consistent maps.
        self.viewers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    async fn join_viewer(
        &self,
        channel: &str,
        client_id: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<ViewerJoin, RegistryError> {
        let now = self.clock.now_millis();
        let mut v = self.viewers();
        v.next_seq += 1;
        let seq = v.next_seq;
        let members = v.by_channel.entry(channel.to_owned()).or_default();
        members.retain(|_, r| r.expires_millis > now);
        if !members.contains_key(client_id) && members.len() >= max {
            return Ok(ViewerJoin::Full);
        }
        members.insert(
            client_id.to_owned(),
            ViewerRecord {
                client_id: client_id.to_owned(),
                seq,
                since_millis: now,
                expires_millis: now.saturating_add(millis(ttl)),
                state: VIEWER_WAITING.to_owned(),
            },
        );
        drop(v);
        let _ = self.viewers_changed.send(channel.to_owned());
        Ok(ViewerJoin::Joined { seq })
    }

    async fn renew_viewers(
        &self,
        channel: &str,
        legs: &[ViewerRenewal],
        ttl: Duration,
    ) -> Result<Vec<ViewerRecord>, RegistryError> {
        let now = self.clock.now_millis();
        let mut v = self.viewers();
        let Some(members) = v.by_channel.get_mut(channel) else {
            return Ok(Vec::new());
        };
        members.retain(|_, r| r.expires_millis > now);
        for leg in legs {
            if let Some(r) = members.get_mut(&leg.client_id) {
                if r.seq == leg.seq {
                    r.expires_millis = now.saturating_add(millis(ttl));
                    leg.state.as_str().clone_into(&mut r.state);
                }
            }
        }
        let mut out: Vec<ViewerRecord> = members.values().cloned().collect();
        if members.is_empty() {
            v.by_channel.remove(channel);
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    async fn leave_viewer(
        &self,
        channel: &str,
        client_id: &str,
        seq: u64,
    ) -> Result<bool, RegistryError> {
        let mut v = self.viewers();
        let Some(members) = v.by_channel.get_mut(channel) else {
            return Ok(false);
        };
        if members.get(client_id).is_some_and(|r| r.seq == seq) {
            members.remove(client_id);
            return Ok(true);
        }
        Ok(false)
    }

    fn viewers_changed(&self) -> broadcast::Receiver<String> {
        self.viewers_changed.subscribe()
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
