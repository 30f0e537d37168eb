//! The relay between a channel's master and its viewers, with TTL store-and-forward
//! (kvs-spec.md §6.3, architecture.md §2 "TTL").
//!
//! One [`Hub`] per node keeps, per channel ARN, the connected master, the connected viewers by
//! ClientId, and the messages held for recipients that are not connected. Connections are
//! [`Sink`]s: bounded outboxes owned by the WebSocket sessions, so the hub never blocks on a
//! slow socket. All state changes of a channel happen under one lock, which is what keeps held
//! messages in order ahead of live ones when a recipient connects.
//!
//! Rules:
//! - viewer → master, with `senderClientId` = the viewer's ClientId; master → the viewer named by
//!   `recipientClientId`; a viewer's `recipientClientId` is ignored (never viewer → viewer);
//! - a message whose recipient is not connected is held until `now + TTL`, the TTL being the
//!   channel's at the moment the message is accepted, and delivered in order on connect;
//! - a newer held offer (or answer) from the same sender to the same recipient replaces the
//!   older one; at most `max_held_per_channel` are held, the oldest dropped first;
//! - a new master replaces the old one, a viewer reconnecting with its ClientId replaces its old
//!   connection; at most `max_viewers` distinct viewers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::message::{Action, ClientMessage, ServerMessage, SignalError};
use super::metrics::{add, inc, SignalingMetrics};
use crate::clock::Clock;

/// What the hub asks a connection's session to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send this text frame.
    Text(String),
    /// Send GO_AWAY now and close the connection after `grace`.
    GoAway { grace: Duration },
    /// Close the connection now (it was replaced by a newer one).
    Close { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// The outbox is full: the peer is not reading.
    Full,
    /// The connection is gone.
    Closed,
}

/// A connection's outbox.
pub trait Sink: Send + Sync {
    fn send(&self, out: Outbound) -> SendOutcome;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Master,
    Viewer(String),
}

impl Role {
    pub fn is_master(&self) -> bool {
        matches!(self, Self::Master)
    }
}

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_viewers: usize,
    pub max_held_per_channel: usize,
    pub go_away_grace: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_viewers: 10,
            max_held_per_channel: 1000,
            go_away_grace: Duration::from_secs(60),
        }
    }
}

/// A connection's identity in the hub, returned by [`Hub::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionId {
    pub channel_arn: String,
    pub role: Role,
    pub id: u64,
}

struct Conn {
    id: u64,
    sink: Arc<dyn Sink>,
}

struct Held {
    recipient: Role,
    /// The viewer's ClientId for messages from a viewer; `None` from the master.
    sender: Option<String>,
    action: Action,
    payload: String,
    expires_at_millis: u64,
}

#[derive(Default)]
struct ChannelState {
    master: Option<Conn>,
    viewers: HashMap<String, Conn>,
    held: VecDeque<Held>,
}

impl ChannelState {
    fn conn(&self, role: &Role) -> Option<&Conn> {
        match role {
            Role::Master => self.master.as_ref(),
            Role::Viewer(id) => self.viewers.get(id),
        }
    }

    fn is_empty(&self) -> bool {
        self.master.is_none() && self.viewers.is_empty() && self.held.is_empty()
    }

    fn all_conns(&self) -> impl Iterator<Item = &Conn> {
        self.master.iter().chain(self.viewers.values())
    }
}

pub struct Hub {
    channels: Mutex<HashMap<String, ChannelState>>,
    next_id: AtomicU64,
    clock: Arc<dyn Clock>,
    config: HubConfig,
    metrics: Arc<SignalingMetrics>,
}

impl Hub {
    pub fn new(clock: Arc<dyn Clock>, config: HubConfig) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            clock,
            config,
            metrics: Arc::new(SignalingMetrics::default()),
        }
    }

    pub fn metrics(&self) -> &Arc<SignalingMetrics> {
        &self.metrics
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, ChannelState>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters more than losing the relay entirely, so keep serving.
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a connection, replacing an older one with the same role, then delivers what
    /// was held for it. Refused with ClientLimitExceededException when the channel already has
    /// `max_viewers` other viewers.
    pub fn connect(
        &self,
        channel_arn: &str,
        role: Role,
        sink: Arc<dyn Sink>,
    ) -> Result<ConnectionId, SignalError> {
        let now = self.clock.now_millis();
        let mut channels = self.lock();
        let state = channels.entry(channel_arn.to_owned()).or_default();
        if let Role::Viewer(id) = &role {
            if !state.viewers.contains_key(id) && state.viewers.len() >= self.config.max_viewers {
                inc(&self.metrics.connections_rejected);
                return Err(SignalError::limit(
                    None,
                    format!(
                        "The signaling channel already has the maximum of {} connected viewers.",
                        self.config.max_viewers
                    ),
                ));
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Conn { id, sink };
        let replaced = match &role {
            Role::Master => state.master.replace(conn),
            Role::Viewer(cid) => state.viewers.insert(cid.clone(), conn),
        };
        match replaced {
            Some(old) => {
                old.sink.send(Outbound::Close {
                    reason: "replaced by a newer connection".into(),
                });
            }
            None => self.count_connection(&role, 1),
        }
        inc(&self.metrics.connections_total);
        self.deliver_held(state, &role, now);
        Ok(ConnectionId {
            channel_arn: channel_arn.to_owned(),
            role,
            id,
        })
    }

    fn count_connection(&self, role: &Role, delta: i64) {
        let gauge = if role.is_master() {
            &self.metrics.masters_connected
        } else {
            &self.metrics.viewers_connected
        };
        gauge.fetch_add(delta, Ordering::Relaxed);
    }

    fn deliver_held(&self, state: &mut ChannelState, role: &Role, now: u64) {
        let Some(conn) = state.conn(role) else { return };
        let sink = Arc::clone(&conn.sink);
        let mut keep = VecDeque::with_capacity(state.held.len());
        for h in state.held.drain(..) {
            if h.recipient != *role {
                keep.push_back(h);
            } else if h.expires_at_millis <= now {
                inc(&self.metrics.messages_expired);
            } else {
                let text =
                    ServerMessage::relay(h.action, h.sender.clone(), h.payload.clone()).to_json();
                match sink.send(Outbound::Text(text)) {
                    SendOutcome::Sent => inc(&self.metrics.messages_delivered_from_hold),
                    SendOutcome::Full | SendOutcome::Closed => keep.push_back(h),
                }
            }
        }
        state.held = keep;
    }

    /// Forgets a connection, unless it was already replaced by a newer one.
    pub fn disconnect(&self, conn: &ConnectionId) {
        let mut channels = self.lock();
        let Some(state) = channels.get_mut(&conn.channel_arn) else {
            return;
        };
        let removed = match &conn.role {
            Role::Master => {
                if state.master.as_ref().is_some_and(|c| c.id == conn.id) {
                    state.master = None;
                    true
                } else {
                    false
                }
            }
            Role::Viewer(cid) => {
                if state.viewers.get(cid).is_some_and(|c| c.id == conn.id) {
                    state.viewers.remove(cid);
                    true
                } else {
                    false
                }
            }
        };
        if removed {
            self.count_connection(&conn.role, -1);
        }
        if state.is_empty() {
            channels.remove(&conn.channel_arn);
        }
    }

    /// Relays `msg` from `from`; `ttl_seconds` is the channel's MessageTtlSeconds now, used if
    /// the message has to be held.
    pub fn relay(
        &self,
        from: &ConnectionId,
        msg: ClientMessage,
        ttl_seconds: u32,
    ) -> Result<(), SignalError> {
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
            Role::Viewer(id) => (Role::Master, Some(id.clone())),
        };
        self.route(
            &from.channel_arn,
            recipient,
            sender,
            msg.action,
            msg.message_payload,
            msg.correlation_id,
            ttl_seconds,
        )
    }

    /// Delivers or holds one message. Also used for offers that arrive over HTTPS
    /// (SendAlexaOfferToMaster).
    #[allow(clippy::too_many_arguments)]
    pub fn route(
        &self,
        channel_arn: &str,
        recipient: Role,
        sender: Option<String>,
        action: Action,
        payload: String,
        correlation_id: Option<String>,
        ttl_seconds: u32,
    ) -> Result<(), SignalError> {
        let now = self.clock.now_millis();
        let mut channels = self.lock();
        let state = channels.entry(channel_arn.to_owned()).or_default();
        if let Some(conn) = state.conn(&recipient) {
            let text = ServerMessage::relay(action, sender.clone(), payload.clone()).to_json();
            match conn.sink.send(Outbound::Text(text)) {
                SendOutcome::Sent => {
                    inc(&self.metrics.messages_relayed);
                    return Ok(());
                }
                SendOutcome::Full => {
                    inc(&self.metrics.messages_dropped_slow_consumer);
                    return Err(SignalError::limit(
                        correlation_id,
                        "The recipient is not reading its messages; this one was dropped.",
                    ));
                }
                // The recipient is going away: hold the message for its next connection.
                SendOutcome::Closed => {}
            }
        }
        if matches!(action, Action::SdpOffer | Action::SdpAnswer) {
            let before = state.held.len();
            state.held.retain(|h| {
                !(h.recipient == recipient && h.sender == sender && h.action == action)
            });
            add(
                &self.metrics.messages_replaced,
                (before - state.held.len()) as u64,
            );
        }
        while state.held.len() >= self.config.max_held_per_channel.max(1) {
            state.held.pop_front();
            inc(&self.metrics.messages_dropped_overflow);
        }
        state.held.push_back(Held {
            recipient,
            sender,
            action,
            payload,
            expires_at_millis: now.saturating_add(u64::from(ttl_seconds) * 1000),
        });
        inc(&self.metrics.messages_held);
        Ok(())
    }

    /// Whether a master is connected to the channel (on this node).
    pub fn has_master(&self, channel_arn: &str) -> bool {
        self.lock()
            .get(channel_arn)
            .is_some_and(|s| s.master.is_some())
    }

    /// The channel was deleted: GO_AWAY to its connections (closed after the grace period) and
    /// its held messages are dropped.
    pub fn channel_deleted(&self, channel_arn: &str) {
        let Some(state) = self.lock().remove(channel_arn) else {
            return;
        };
        add(
            &self.metrics.messages_dropped_deleted,
            state.held.len() as u64,
        );
        for conn in state.all_conns() {
            conn.sink.send(Outbound::GoAway {
                grace: self.config.go_away_grace,
            });
        }
        let masters = i64::from(state.master.is_some());
        let viewers = state.viewers.len() as i64;
        self.metrics
            .masters_connected
            .fetch_sub(masters, Ordering::Relaxed);
        self.metrics
            .viewers_connected
            .fetch_sub(viewers, Ordering::Relaxed);
    }

    /// Sends `out` to every connection of every channel (shutdown's GO_AWAY, ICE rotation's
    /// RECONNECT_ICE_SERVER). Returns how many connections it reached.
    pub fn broadcast(&self, out: &Outbound) -> usize {
        let channels = self.lock();
        let mut n = 0;
        for state in channels.values() {
            for conn in state.all_conns() {
                if conn.sink.send(out.clone()) == SendOutcome::Sent {
                    n += 1;
                }
            }
        }
        n
    }

    /// Drops held messages whose TTL has run out. Returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_millis();
        let mut channels = self.lock();
        let mut expired = 0;
        channels.retain(|_, state| {
            let before = state.held.len();
            state.held.retain(|h| h.expires_at_millis > now);
            expired += before - state.held.len();
            !state.is_empty()
        });
        add(&self.metrics.messages_expired, expired as u64);
        expired
    }

    /// Number of messages held for a channel (for tests and the console).
    pub fn held_count(&self, channel_arn: &str) -> usize {
        self.lock().get(channel_arn).map_or(0, |s| s.held.len())
    }

    /// Number of live connections across all channels.
    pub fn connection_count(&self) -> usize {
        self.lock().values().map(|s| s.all_conns().count()).sum()
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
