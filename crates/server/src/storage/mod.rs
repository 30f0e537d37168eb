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
//!
//! Viewers join a channel's session (JoinStorageSessionAsViewer) through the registry, at most
//! [`MAX_SESSION_VIEWERS`] cluster-wide; the node running the channel's peer hears of the join
//! at once and offers to the viewer ([`viewers`]).

pub mod api;
pub mod counting;
pub mod hosts;
mod leg;
mod peer;
pub mod signal;
#[cfg(test)]
mod tests;
mod viewers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kvs_core::app::Application;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::media::RecordingTarget;
use kvs_core::relay::{ChannelSink, Role};
use kvs_core::storage_session::{
    EndReason, SessionLimits, SessionRecord, SessionRegistry, ViewerJoin, ViewerRecord,
};
use kvs_core::ServiceError;
use tokio::sync::{mpsc, Notify};

pub use counting::CountingTarget;
pub use hosts::MediaNetConfig;

use crate::metrics::storage::StorageMetrics;

/// Signaling events buffered for a peer (its answer and the master's candidates). Overflow
/// policy: the relay holds what does not fit, as for a slow WebSocket client.
const SIGNAL_CAPACITY: usize = 256;

/// The most viewers one storage session serves, on AWS as here (the JS SDK recognises the
/// refusal by its message, [`VIEWERS_FULL`]).
pub const MAX_SESSION_VIEWERS: usize = 3;
/// The text of the ClientLimitExceededException for a fourth viewer, which the KVS WebRTC JS
/// SDK's storage viewer looks for to stop retrying.
pub const VIEWERS_FULL: &str =
    "The maximum number of viewers connected to the session has been reached (3).";
/// How long a viewer's membership lasts unless the session's peer renews it (every check):
/// how long a viewer may wait for a session to start.
pub const VIEWER_TTL: Duration = Duration::from_secs(30);

struct Running {
    session_id: String,
    stop: Arc<Notify>,
    /// Woken when a viewer joins the channel's session.
    joined: Arc<Notify>,
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
        let joins = registry.viewers_changed();
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
        tokio::spawn(wake_on_joins(Arc::downgrade(&this), joins));
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

    /// The viewers joined to `channel`'s session, waiting or served (the registry's view,
    /// ordered by join). A renewal of nothing: it reads and changes no membership.
    pub async fn viewers(&self, channel: &str) -> Result<Vec<ViewerRecord>, ServiceError> {
        self.registry
            .renew_viewers(channel, &[], VIEWER_TTL)
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
        let joined = Arc::new(Notify::new());
        let previous = self.running().insert(
            channel.as_str().to_owned(),
            Running {
                session_id: session_id.clone(),
                stop: Arc::clone(&stop),
                joined: Arc::clone(&joined),
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
            joined,
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

    /// JoinStorageSessionAsViewer, once the viewer is known to be connected: makes it a
    /// member of the channel's session (or a waiting one, before the session starts). The
    /// peer, wherever it runs, hears of it and offers to the viewer.
    pub async fn join_viewer(&self, channel: &str, client_id: &str) -> Result<(), ServiceError> {
        let joined = self
            .registry
            .join_viewer(channel, client_id, MAX_SESSION_VIEWERS, VIEWER_TTL)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        match joined {
            ViewerJoin::Joined { seq } => {
                self.metrics.viewer_joined();
                tracing::info!(
                    channel,
                    viewer = client_id,
                    seq,
                    "viewer joined the storage session"
                );
                Ok(())
            }
            ViewerJoin::Full => Err(ServiceError::limit(VIEWERS_FULL)),
        }
    }

    /// Wakes this node's peer of `channel`, if it runs one: a viewer joined.
    fn wake(&self, channel: &str) {
        if let Some(r) = self.running().get(channel) {
            r.joined.notify_one();
        }
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

/// Wakes this node's peers whose channels viewers joined, as the registry announces them (the
/// peers' periodic reconciliation catches any notice lost). Ends with the sessions' owner.
async fn wake_on_joins(
    sessions: std::sync::Weak<StorageSessions>,
    mut notices: tokio::sync::broadcast::Receiver<String>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match notices.recv().await {
            Ok(channel) => match sessions.upgrade() {
                Some(s) => s.wake(&channel),
                None => return,
            },
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
