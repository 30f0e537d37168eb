//! The signaling conformance suite on the in-memory ports: several hubs in one process share
//! one presence, one held-message store and one bus, as nodes share Redis.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::bus::MemoryBus;
use super::conformance::{ClusterBackend, NodePorts};
use super::held::MemoryHeld;
use super::presence::MemoryPresence;

struct InProcess(NodePorts);

#[async_trait]
impl ClusterBackend for InProcess {
    async fn node(&self, _lease: Duration) -> NodePorts {
        self.0.clone()
    }
}

async fn in_process() -> Arc<InProcess> {
    Arc::new(InProcess(NodePorts {
        presence: Arc::new(MemoryPresence::new(Some(super::conformance::LEASE))),
        held: Arc::new(MemoryHeld::new()),
        bus: Arc::new(MemoryBus::new()),
    }))
}

crate::signaling_conformance!(in_process());
