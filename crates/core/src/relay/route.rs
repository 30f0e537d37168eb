//! Moving messages: from a connection to its recipient on whatever node, or into the hold when
//! the recipient is connected nowhere (docs/protocol.md §6.3).
//!
//! Rules:
//! - viewer → master, with `senderClientId` = the viewer's ClientId; master → the viewer named by
//!   `recipientClientId`; a viewer's `recipientClientId` is ignored (never viewer → viewer);
//! - a viewer joined to a storage session (JoinStorageSessionAsViewer) sends what it addresses
//!   to the master to the storage peer instead, which offered to it as the master would
//!   ([`Hub::redirect_viewer`], docs/webrtc-ingestion.md);
//! - the master's SDP_ANSWER to a ClientId for which a SendAlexaOfferToMaster call waits goes to
//!   that call;
//! - a message whose recipient is connected nowhere is held until `now + TTL`, the TTL being the
//!   channel's at the moment the message is accepted ([`super::hub::ChannelTtl`]), and handed
//!   over in order when the recipient is live, ahead of live messages.
//!
//! Holding races with connecting: a sender may find the recipient absent and hold the message
//! just after the recipient took what was held. So after holding, the sender looks again and,
//! if the recipient is there now, hands the held messages over itself. Taking is atomic, so each
//! held message is handed over exactly once.

use std::sync::Arc;

use super::bus::{BusError, Envelope};
use super::event::{Event, HeldMessage, Member, NodeId, Relayed, Role};
use super::hub::{backend_failure, presence_failure, ConnectionId, Hub};
use super::local::{HandOver, Refused};
use super::message::{Action, ClientMessage, SignalError};
use super::metrics::{add, inc};

impl Hub {
    /// Relays `msg` from connection `from`.
    pub async fn relay(&self, from: &ConnectionId, msg: ClientMessage) -> Result<(), SignalError> {
        let (recipient, sender) = match &from.role {
            Role::Master => match msg.recipient_client_id {
                Some(r) => (Role::Viewer(r), None),
                None => {
                    inc(&self.metrics.messages_rejected);
                    return Err(SignalError::invalid(
                        msg.correlation_id,
                        "recipientClientId is required for messages from the master.",
                    ));
                }
            },
            Role::Viewer(id) => match self.local.redirect(from.id) {
                Some(peer) => (Role::Viewer(peer.to_string()), Some(id.clone())),
                None => (Role::Master, Some(id.clone())),
            },
            Role::AnswerWaiter(id) => (Role::Master, Some(id.clone())),
        };
        let message = Relayed {
            action: msg.action,
            sender,
            payload: msg.message_payload,
        };
        self.route(&from.channel_arn, recipient, message, msg.correlation_id)
            .await
    }

    /// Makes the viewer `viewer` of `channel`, wherever it is connected, send what it
    /// addresses to the master to the viewer `to` instead (a storage session's peer; `None`:
    /// to the master again). Goes the way messages to it go, so it takes effect before a
    /// message routed to it afterwards. `false` when the viewer is connected nowhere.
    pub async fn redirect_viewer(
        &self,
        channel: &str,
        viewer: &str,
        to: Option<&str>,
    ) -> Result<bool, SignalError> {
        let role = Role::Viewer(viewer.to_owned());
        let member = match self.ports.presence.lookup(channel, &role).await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(false),
            Err(e) => return Err(presence_failure(e, None)),
        };
        if member.node == self.node {
            return Ok(self.local.set_redirect(member.conn, to.map(Arc::from)));
        }
        let envelope = Envelope::Redirect {
            conn: member.conn,
            to: to.map(str::to_owned),
        };
        match self.publish(member.node, envelope).await {
            Ok(()) => Ok(true),
            Err(BusError::NoSuchNode) => Ok(false),
            Err(e) => Err(backend_failure(e, None)),
        }
    }

    /// Whether `role` is connected to `channel`, on any node.
    pub async fn is_connected(&self, channel: &str, role: &Role) -> Result<bool, SignalError> {
        match self.ports.presence.lookup(channel, role).await {
            Ok(found) => Ok(found.is_some()),
            Err(e) => Err(presence_failure(e, None)),
        }
    }

    /// Sends one message to `recipient`, or holds it. Also used for offers that arrive over
    /// HTTPS (SendAlexaOfferToMaster).
    pub async fn route(
        &self,
        channel: &str,
        recipient: Role,
        message: Relayed,
        correlation_id: Option<String>,
    ) -> Result<(), SignalError> {
        // The master's answer goes to a SendAlexaOfferToMaster call waiting for it, if there
        // is one, else to the viewer: both looked up at once.
        let mut candidates = Vec::with_capacity(2);
        if let (Action::SdpAnswer, None, Role::Viewer(id)) =
            (message.action, &message.sender, &recipient)
        {
            candidates.push(Role::AnswerWaiter(id.clone()));
        }
        candidates.push(recipient);
        match self.ports.presence.lookup_first(channel, &candidates).await {
            Ok(Some((i, m))) => {
                let to = candidates.swap_remove(i);
                self.send_to(m, channel, to, message, correlation_id).await
            }
            Ok(None) => {
                let recipient = candidates.pop().unwrap_or(Role::Master);
                self.hold(channel, recipient, message, correlation_id).await
            }
            Err(e) => Err(presence_failure(e, correlation_id)),
        }
    }

    /// Sends `message` to member `to` of the cluster: into its outbox on this node, over the bus
    /// otherwise.
    async fn send_to(
        &self,
        to: Member,
        channel: &str,
        recipient: Role,
        message: Relayed,
        correlation_id: Option<String>,
    ) -> Result<(), SignalError> {
        if to.node == self.node {
            let tapped = self
                .watch
                .watched(channel, self.now())
                .is_some()
                .then(|| message.clone());
            return match self.local.send(to.conn, Event::Message(message)) {
                Ok(()) => {
                    inc(&self.metrics.messages_relayed);
                    if let Some(m) = tapped {
                        self.tap_relayed(channel, &recipient, &m);
                    }
                    Ok(())
                }
                // The recipient is not reading: its connection is being closed (the outbox's
                // overflow policy); like one going away, the message waits for its next one.
                Err(Refused::Full(Event::Message(m))) => {
                    inc(&self.metrics.messages_held_slow_consumer);
                    self.hold(channel, recipient, m, correlation_id).await
                }
                // The recipient is going away: hold the message for its next connection.
                Err(Refused::Closed(Event::Message(m))) => {
                    self.hold(channel, recipient, m, correlation_id).await
                }
                Err(Refused::Full(_)) => Ok(()),
                Err(Refused::Closed(_)) => Ok(()),
            };
        }
        let envelope = Envelope::Deliver {
            channel: channel.to_owned(),
            conn: to.conn,
            recipient: recipient.clone(),
            message: message.clone(),
        };
        match self.publish(to.node, envelope).await {
            Ok(()) => {
                inc(&self.metrics.messages_relayed);
                self.tap_relayed(channel, &recipient, &message);
                Ok(())
            }
            Err(BusError::Full) => Err(SignalError::limit(
                correlation_id,
                "The recipient's node is overloaded; this message was dropped.",
            )),
            // The recipient's node is gone (killed, or between subscriptions) while its lease
            // still runs: hold the message for the recipient's next connection, on any node.
            Err(BusError::NoSuchNode) => {
                self.hold(channel, recipient, message, correlation_id).await
            }
            Err(e) => Err(backend_failure(e, correlation_id)),
        }
    }

    /// Holds `message` for `recipient` until the channel's TTL from now runs out.
    pub(super) async fn hold(
        &self,
        channel: &str,
        recipient: Role,
        message: Relayed,
        correlation_id: Option<String>,
    ) -> Result<(), SignalError> {
        // An answer meant for a call that stopped waiting is kept for the viewer of that id.
        let recipient = match recipient {
            Role::AnswerWaiter(id) => Role::Viewer(id),
            r => r,
        };
        let Some(ttl) = self.ports.ttl.ttl_seconds(channel).await else {
            inc(&self.metrics.messages_rejected);
            return Err(SignalError::not_found(
                correlation_id,
                "The signaling channel no longer exists.",
            ));
        };
        let now = self.now();
        self.tap_message(
            channel,
            &sender_role(&message),
            Some(&recipient),
            &message,
            super::live::Outcome::Held,
            None,
        );
        let held = HeldMessage {
            recipient: recipient.clone(),
            message,
            expires_at_millis: now.saturating_add(u64::from(ttl) * 1000),
        };
        let outcome = self
            .ports
            .held
            .hold(channel, held, self.config.max_held_per_channel, now)
            .await
            .map_err(|e| backend_failure(e, correlation_id.clone()))?;
        inc(&self.metrics.messages_held);
        self.tap_held_changed(channel);
        add(&self.metrics.messages_replaced, outcome.replaced as u64);
        add(
            &self.metrics.messages_dropped_overflow,
            outcome.dropped as u64,
        );
        add(&self.metrics.messages_expired, outcome.expired as u64);
        // The recipient may have connected meanwhile and taken what was held before this.
        if let Ok(Some(m)) = self.ports.presence.lookup(channel, &recipient).await {
            self.flush_to(m, channel, &recipient).await;
        }
        Ok(())
    }

    /// Puts a message that was taken from the hold back, with its original expiry.
    pub(super) async fn hold_again(&self, channel: &str, h: HeldMessage) {
        let now = self.now();
        if h.expires_at_millis <= now {
            inc(&self.metrics.messages_expired);
            return;
        }
        match self
            .ports
            .held
            .hold(channel, h, self.config.max_held_per_channel, now)
            .await
        {
            Ok(o) => add(&self.metrics.messages_dropped_overflow, o.dropped as u64),
            Err(e) => {
                inc(&self.metrics.messages_dropped_unavailable);
                tracing::error!(error = %e, "cannot hold a message again; it is lost");
            }
        }
    }

    /// Moves what is held for `role` into local connection `id`. On activation (`direct`) the
    /// messages go ahead of the events buffered while the connection was pending; otherwise
    /// only into a live connection (a pending one takes them when it becomes live).
    pub(super) async fn hand_over_held(&self, channel: &str, role: &Role, id: u64, direct: bool) {
        if !direct && self.local.hand_over(id) != HandOver::Live {
            return;
        }
        let taken = match self.ports.held.take(channel, role, self.now()).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot read held messages");
                return;
            }
        };
        add(&self.metrics.messages_expired, taken.expired as u64);
        for h in taken.messages {
            let event = Event::Message(h.message.clone());
            let sent = if direct {
                self.local.send_direct(id, event)
            } else {
                self.local.send(id, event)
            };
            match sent {
                Ok(()) => inc(&self.metrics.messages_delivered_from_hold),
                // Gone again or not reading: keep it for the next connection.
                Err(_) => self.hold_again(channel, h).await,
            }
        }
    }

    /// Hands what is held for `recipient` to the connection `to`, on whatever node. When the
    /// recipient's node cannot be reached, the messages are held again and the recipient
    /// looked up once more: it may have reconnected elsewhere meanwhile, after that connection
    /// took what was held (bounded: a few rounds).
    async fn flush_to(&self, mut to: Member, channel: &str, recipient: &Role) {
        for _ in 0..3 {
            if to.node == self.node {
                self.hand_over_held(channel, recipient, to.conn, false)
                    .await;
                return;
            }
            let Ok(taken) = self.ports.held.take(channel, recipient, self.now()).await else {
                return;
            };
            add(&self.metrics.messages_expired, taken.expired as u64);
            let mut unreachable = false;
            for h in taken.messages {
                if unreachable {
                    self.hold_again(channel, h).await;
                    continue;
                }
                let envelope = Envelope::Deliver {
                    channel: channel.to_owned(),
                    conn: to.conn,
                    recipient: recipient.clone(),
                    message: h.message.clone(),
                };
                match self.publish(to.node, envelope).await {
                    Ok(()) => inc(&self.metrics.messages_delivered_from_hold),
                    Err(_) => {
                        unreachable = true;
                        self.hold_again(channel, h).await;
                    }
                }
            }
            if !unreachable {
                return;
            }
            match self.ports.presence.lookup(channel, recipient).await {
                Ok(Some(m)) if m != to => to = m,
                _ => return,
            }
        }
    }

    /// Closes member `m` wherever it is (a newer connection took its role).
    pub(super) async fn close_member(&self, member: Member, reason: &str) {
        if member.node == self.node {
            let _ = self.local.send_direct(
                member.conn,
                Event::Close {
                    reason: reason.into(),
                },
            );
            return;
        }
        let envelope = Envelope::Close {
            conn: member.conn,
            reason: reason.into(),
        };
        if let Err(e) = self.publish(member.node, envelope).await {
            // Its node is gone (and the connection with it) or unreachable; in the latter case
            // the node finds out at its next lease renewal or bus resubscription, when it checks
            // its connections against presence (see `upkeep`).
            tracing::warn!(error = %e, node = %member.node, "cannot send Close to a replaced connection's node");
        }
    }

    pub(super) async fn publish(&self, node: NodeId, envelope: Envelope) -> Result<(), BusError> {
        let r = self.ports.bus.publish(node, envelope).await;
        match &r {
            Ok(()) => inc(&self.metrics.bus_published),
            Err(_) => inc(&self.metrics.bus_dropped),
        }
        r
    }
}

/// Who sent a relayed message: the master when it names no sender.
fn sender_role(message: &Relayed) -> Role {
    message
        .sender
        .as_ref()
        .map_or(Role::Master, |id| Role::Viewer(id.clone()))
}

impl Hub {
    fn tap_relayed(&self, channel: &str, recipient: &Role, message: &Relayed) {
        self.tap_message(
            channel,
            &sender_role(message),
            Some(recipient),
            message,
            super::live::Outcome::Relayed,
            None,
        );
    }
}
