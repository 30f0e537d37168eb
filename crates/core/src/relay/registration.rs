//! Joining and leaving a channel, cancel-safe by construction.
//!
//! A request future can be dropped at any await (the client went away, a proxy timed out). So:
//! - what [`Hub::connect`] registers is owned by a [`Registration`] guard from the moment it is
//!   registered, with no await in between; dropping the guard releases it (in a task, since
//!   releasing may take a network round trip);
//! - the claim on presence, and the close of the connection it replaces, run in a task of their
//!   own: a caller that goes away cannot leave a half-done claim (a replaced master never told,
//!   a presence entry nobody will release);
//! - what was held for a connection is handed over only once it is live ([`Registration::activate`],
//!   after the WebSocket upgrade): a connection that never becomes live takes nothing, and what
//!   was relayed to it while it was completing its handshake is held again for the next one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::event::{Event, Member, Role};
use super::hub::{presence_failure, ConnectionId, Hub, MAX_PENDING_RELEASES};
use super::local::Sink;
use super::message::SignalError;
use super::metrics::inc;
use super::presence::PresenceError;

/// A connection's place in the hub. [`Registration::release`] takes it out; dropping it does the
/// same in the background (a request that went away, an upgrade that never completed).
pub struct Registration {
    hub: Arc<Hub>,
    conn: ConnectionId,
    armed: bool,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("conn", &self.conn)
            .field("armed", &self.armed)
            .finish()
    }
}

impl std::ops::Deref for Registration {
    type Target = ConnectionId;

    fn deref(&self) -> &ConnectionId {
        &self.conn
    }
}

impl Registration {
    pub fn id(&self) -> &ConnectionId {
        &self.conn
    }

    /// The connection is live (its WebSocket is open): what was held for it goes out first, in
    /// order, then what was buffered while it was completing its handshake.
    /// It runs to its end in a task of its own: messages taken from the hold are never left
    /// in a dropped future.
    pub async fn activate(&self) {
        let hub = Arc::clone(&self.hub);
        let conn = self.conn.clone();
        let _ = tokio::spawn(async move { hub.activate(&conn).await }).await;
    }

    /// Takes the connection out of the hub now.
    pub async fn release(mut self) {
        self.armed = false;
        self.hub.disconnect(&self.conn).await;
    }

    /// Hands the connection to the caller, who must call [`Hub::disconnect`] itself (tests that
    /// keep connections by id).
    #[cfg(any(test, feature = "conformance"))]
    pub fn detach(mut self) -> ConnectionId {
        self.armed = false;
        self.conn.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        let hub = Arc::clone(&self.hub);
        let conn = self.conn.clone();
        // Counted before the task starts, so a node that is shutting down waits for it.
        hub.releasing.fetch_add(1, Ordering::SeqCst);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    hub.release(&conn).await;
                    hub.releasing.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(_) => {
                // No runtime left (the process is ending): forget it locally; the node's lease
                // ends its presence.
                hub.local.remove(conn.id);
                hub.releasing.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl Hub {
    fn arc(&self) -> Option<Arc<Hub>> {
        self.me.upgrade()
    }

    /// Registers a connection as `role` on `channel_arn`, replacing an older one with the same
    /// role wherever it is. A viewer beyond `max_viewers` is refused with
    /// ClientLimitExceededException, a channel deleted meanwhile with ResourceNotFoundException.
    /// The connection is pending until [`Registration::activate`].
    pub async fn connect(
        &self,
        channel_arn: &str,
        role: Role,
        sink: Arc<dyn Sink>,
    ) -> Result<Registration, SignalError> {
        let hub = self.arc().ok_or_else(|| SignalError::unavailable(None))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let channel: Arc<str> = Arc::from(channel_arn);
        self.local
            .register(id, Arc::clone(&channel), role.clone(), sink);
        let reg = Registration {
            hub: Arc::clone(&hub),
            conn: ConnectionId {
                channel_arn: channel,
                role,
                id,
            },
            armed: true,
        };
        // If the caller goes away, the task still finishes the claim and then releases it (the
        // registration comes back from a send to a receiver that is gone, or is dropped with
        // the channel if the receiver goes after the send).
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let outcome = reg.hub.claim(&reg.conn).await;
            if let Err((reg, _)) = tx.send((reg, outcome)) {
                drop(reg);
            }
        });
        match rx.await {
            Ok((reg, Ok(()))) => Ok(reg),
            Ok((mut reg, Err(e))) => {
                // Never claimed: nothing to release but the local entry.
                reg.armed = false;
                hub.local.remove(reg.conn.id);
                inc(&hub.metrics.connections_rejected);
                Err(e)
            }
            // The runtime is shutting down (the task was cancelled with the registration in it,
            // which released it).
            Err(_) => Err(SignalError::unavailable(None)),
        }
    }

    async fn claim(&self, conn: &ConnectionId) -> Result<(), SignalError> {
        let member = Member {
            node: self.node,
            conn: conn.id,
        };
        let claimed = self
            .ports
            .presence
            .claim(
                &conn.channel_arn,
                &conn.role,
                member,
                self.config.max_viewers,
            )
            .await;
        let replaced = match claimed {
            Ok(r) => r,
            Err(e) => {
                // A backend failure leaves the outcome unknown: the claim may have been applied
                // after the node stopped waiting for it (Redis paused, then resumed). Nobody
                // would release that entry, and it would count toward the viewer limit while
                // this node lives; so it is released later, like a release that failed (a
                // release only forgets the member if it still holds the role).
                if matches!(e, PresenceError::Backend(_)) {
                    self.defer_release(Arc::clone(&conn.channel_arn), conn.role.clone(), member);
                }
                return Err(presence_failure(e, None));
            }
        };
        if let Some(old) = replaced {
            self.close_member(old, "replaced by a newer connection")
                .await;
        }
        self.gauge(&conn.role, 1);
        inc(&self.metrics.connections_total);
        Ok(())
    }

    async fn activate(&self, conn: &ConnectionId) {
        // Nothing is ever held for a waiting SendAlexaOfferToMaster call (an answer it missed
        // is held for the viewer of that ClientId).
        let takes_held = !matches!(conn.role, Role::AnswerWaiter(_));
        if takes_held {
            self.hand_over_held(&conn.channel_arn, &conn.role, conn.id, true)
                .await;
        }
        // A sender that held a message while this connection was pending left it held for
        // the activation; it may have done so after the take above.
        if self.local.activate(conn.id) && takes_held {
            self.hand_over_held(&conn.channel_arn, &conn.role, conn.id, false)
                .await;
        }
        self.tap_connected(&conn.channel_arn, &conn.role, conn.id);
    }

    /// Forgets a connection, unless a newer one already replaced it.
    pub async fn disconnect(&self, conn: &ConnectionId) {
        self.releasing.fetch_add(1, Ordering::SeqCst);
        self.release(conn).await;
        self.releasing.fetch_sub(1, Ordering::SeqCst);
    }

    /// Forgets every connection of this node (it is stopping and its sessions may not have
    /// closed yet), releasing their presence so other nodes stop counting them at once.
    pub async fn release_all(&self) {
        for (id, channel, role) in self.local.snapshot() {
            self.release(&ConnectionId {
                channel_arn: channel,
                role,
                id,
            })
            .await;
        }
        self.retry_releases().await;
    }

    pub(super) async fn release(&self, conn: &ConnectionId) {
        let Some(gone) = self.local.remove(conn.id) else {
            return;
        };
        self.gauge(&gone.role, -1);
        self.tap_disconnected(&gone.channel, &gone.role, conn.id, "closed");
        let member = Member {
            node: self.node,
            conn: conn.id,
        };
        if let Err(e) = self
            .ports
            .presence
            .release(&gone.channel, &gone.role, member)
            .await
        {
            tracing::warn!(error = %e, "cannot release presence; retrying later");
            self.defer_release(Arc::clone(&gone.channel), gone.role.clone(), member);
        }
        // Never live: what was relayed to it meanwhile waits for the role's next connection.
        for event in gone.unsent {
            if let Event::Message(m) = event {
                let _ = self.hold(&gone.channel, gone.role.clone(), m, None).await;
            }
        }
    }

    /// Queues a release for the heartbeat to retry (bounded: the oldest goes first).
    fn defer_release(&self, channel: Arc<str>, role: Role, member: Member) {
        let mut pending = self.pending();
        if pending.len() >= MAX_PENDING_RELEASES {
            pending.pop_front();
        }
        pending.push_back((channel, role, member));
    }

    /// Retries the releases that failed, until one fails again.
    pub async fn retry_releases(&self) {
        loop {
            let Some((channel, role, member)) = self.pending().pop_front() else {
                return;
            };
            if self
                .ports
                .presence
                .release(&channel, &role, member)
                .await
                .is_err()
            {
                self.pending().push_front((channel, role, member));
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "registration_tests.rs"]
mod tests;
