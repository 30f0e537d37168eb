//! The storage session (issue 15, docs/webrtc-ingestion.md): JoinStorageSession starts the
//! server's own WebRTC peer on a channel bound to a stream; the peer offers to the master over
//! the signaling channel, receives its H.264 and Opus and hands the frames to the
//! [`RecordingTarget`] as [`kvs_core::media::Sample`]s.
//!
//! [`StorageSessions`] owns this node's running peers and the cluster-wide claim on each
//! channel ([`SessionRegistry`]): the node that answers JoinStorageSession claims the channel
//! and runs the peer itself; the most recent claim wins, and a node whose claim was superseded
//! stops its peer at its next check (at most `check_interval`, 1 s; at once on the same node).
//! The peer's loop is in [`peer`], the HTTP operations in [`api`].

pub mod api;
pub mod counting;
pub mod hosts;
mod peer;
pub mod signal;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kvs_core::app::Application;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::media::RecordingTarget;
use kvs_core::relay::{ChannelSink, Role};
use kvs_core::storage_session::{EndReason, SessionLimits, SessionRecord, SessionRegistry};
use kvs_core::ServiceError;
use tokio::sync::{mpsc, Notify};

pub use counting::CountingTarget;
pub use hosts::MediaNetConfig;

use crate::metrics::storage::StorageMetrics;

/// Signaling events buffered for a peer (its answer and the master's candidates). Overflow
/// policy: the relay holds what does not fit, as for a slow WebSocket client.
const SIGNAL_CAPACITY: usize = 256;

struct Running {
    session_id: String,
    stop: Arc<Notify>,
}

pub struct StorageSessions {
    registry: Arc<dyn SessionRegistry>,
    limits: SessionLimits,
    net: MediaNetConfig,
    metrics: Arc<StorageMetrics>,
    crypto: Arc<str0m::crypto::CryptoProvider>,
    /// This node's peers by channel ARN (at most one each).
    running: Mutex<HashMap<String, Running>>,
    /// Held from a claim to its entry in `running`, so this node's concurrent joins enter
    /// `running` in the order the registry decided (the last claim's peer is the one kept).
    claiming: tokio::sync::Mutex<()>,
}

/// A session started by JoinStorageSession.
#[derive(Debug, Clone)]
pub struct Started {
    pub session_id: String,
    pub client_id: String,
}

impl StorageSessions {
    pub fn new(
        registry: Arc<dyn SessionRegistry>,
        limits: SessionLimits,
        net: MediaNetConfig,
        metrics: Arc<StorageMetrics>,
    ) -> Arc<Self> {
        let notices = registry.superseded();
        let this = Arc::new(Self {
            registry,
            limits,
            net,
            metrics,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            running: Mutex::default(),
            claiming: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(stop_superseded(Arc::downgrade(&this), notices));
        this
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        // One map operation per lock: a poisoned lock still holds a consistent map.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.metrics
    }

    /// Every live session of the cluster (the registry's view: node, since, state).
    pub async fn list(&self) -> Result<Vec<SessionRecord>, ServiceError> {
        self.registry
            .list()
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// This node's running peers (channel ARNs).
    pub fn local_channels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.running().keys().cloned().collect();
        v.sort();
        v
    }

    /// Starts a session on `channel` recording into `stream`: joins the channel as a viewer
    /// of its own, claims the channel (ending the session it replaces) and starts the peer,
    /// which sends its offer. The channel and stream were checked by the caller.
    pub async fn start(
        self: &Arc<Self>,
        app: &Arc<Application>,
        recording: Arc<dyn RecordingTarget>,
        ns: &Namespace,
        channel: &ResourceArn,
        stream: &ResourceArn,
    ) -> Result<Started, ServiceError> {
        if !app.hub().has_master(channel.as_str()).await {
            return Err(ServiceError::not_found(
                "No master is connected to the signaling channel; the storage session offers \
                 to the master, so the master connects first.",
            ));
        }
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        let client_id = format!("kvs-storage-session-{session_id}");
        let (tx, rx) = mpsc::channel(SIGNAL_CAPACITY);
        // Dropped at any await below, the registration takes the viewer out again.
        let reg = app
            .connect(
                ns,
                channel,
                Role::Viewer(client_id.clone()),
                Arc::new(ChannelSink(tx)),
            )
            .await?;
        reg.activate().await;
        let node = app.hub().node();
        let claiming = self.claiming.lock().await;
        let (_record, replaced) = self
            .registry
            .claim(channel.as_str(), &session_id, node, self.limits.claim_ttl)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        if let Some(old) = &replaced {
            tracing::info!(channel = %channel, old = %old.session_id, old_node = %old.node,
                "storage session superseded by a newer JoinStorageSession");
        }
        let stop = Arc::new(Notify::new());
        let previous = self.running().insert(
            channel.as_str().to_owned(),
            Running {
                session_id: session_id.clone(),
                stop: Arc::clone(&stop),
            },
        );
        drop(claiming);
        // The session it replaces on this node stops now, not at its next check.
        if let Some(p) = previous {
            p.stop.notify_one();
        }
        self.metrics.started();
        let ctx = peer::PeerCtx {
            app: Arc::clone(app),
            sessions: Arc::clone(self),
            recording,
            reg,
            rx,
            stop,
            client_id: client_id.clone(),
            session_id: session_id.clone(),
            channel: channel.clone(),
            stream: stream.clone(),
        };
        tokio::spawn(peer::run(ctx));
        Ok(Started {
            session_id,
            client_id,
        })
    }

    /// Stops this node's peer of session `session_id`, if it runs it.
    fn stop_session(&self, session_id: &str) {
        if let Some(r) = self.running().values().find(|r| r.session_id == session_id) {
            r.stop.notify_one();
        }
    }

    /// The end of a peer: its claim released (if still its own), its place on this node freed.
    async fn ended(&self, channel: &str, session_id: &str, reason: EndReason) {
        {
            let mut running = self.running();
            if running
                .get(channel)
                .is_some_and(|r| r.session_id == session_id)
            {
                running.remove(channel);
            }
        }
        if let Err(e) = self.registry.release(channel, session_id).await {
            // The claim lapses after claim_ttl without renewal.
            tracing::warn!(error = %e, channel, "storage-session claim not released");
        }
        self.metrics.ended(reason);
        tracing::info!(
            channel,
            session = session_id,
            reason = reason.as_str(),
            "storage session ended"
        );
    }
}

/// Stops this node's peers whose claims another join replaced, as the registry announces them
/// (the peers' renewal catches any notice lost). Ends with the sessions' owner.
async fn stop_superseded(
    sessions: std::sync::Weak<StorageSessions>,
    mut notices: tokio::sync::broadcast::Receiver<String>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match notices.recv().await {
            Ok(id) => match sessions.upgrade() {
                Some(s) => s.stop_session(&id),
                None => return,
            },
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
