//! The signaling conformance suite on the in-memory ports: several hubs in one process share
//! one presence, one held-message store and one bus, as nodes share Redis.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::bus::MemoryBus;
use super::conformance::{ClusterBackend, NodePorts};
use super::held::MemoryHeld;
use super::presence::MemoryPresence;
use super::NodeId;
use crate::clock::SystemClock;

struct InProcess {
    ports: NodePorts,
    presence: Arc<MemoryPresence>,
}

#[async_trait]
impl ClusterBackend for InProcess {
    async fn node(&self, _lease: Duration) -> NodePorts {
        self.ports.clone()
    }

    async fn end_lease(&self, node: NodeId) {
        self.presence.end_lease(node);
    }
}

async fn in_process() -> Arc<InProcess> {
    // Leases on the process's clock, as a Redis deployment's are on Redis's: the nodes' own
    // (manual) clock, which the suite steps for held-message TTLs, does not decide them.
    let presence = Arc::new(MemoryPresence::with_leases(Arc::new(SystemClock)));
    Arc::new(InProcess {
        ports: NodePorts {
            presence: presence.clone(),
            held: Arc::new(MemoryHeld::new()),
            bus: Arc::new(MemoryBus::new()),
            feed: Arc::new(crate::relay::watch::MemoryFeed::new()),
        },
        presence,
    })
}

crate::relay_conformance!(in_process());
