//! The hub's side of the live view ([`super::watch`]): taps on what happens to a watched
//! channel, the roll call that tells a new watcher who is connected on this node, and the
//! operator's levers (GO_AWAY to a channel, closing one client) that reach every node.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::bus::{BusError, Envelope};
use super::event::{HeldMessage, Relayed, Role};
use super::hub::Hub;
use super::watch::{peer_name, ChannelEvent, FeedItem, Watch, What, WATCH_LEASE};

/// What happened to one message, for the live view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Relayed,
    Held,
    Rejected,
    RateLimited,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Relayed => "relayed",
            Self::Held => "held",
            Self::Rejected => "rejected",
            Self::RateLimited => "rate_limited",
        }
    }
}

impl Hub {
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// Publishes what `what` makes of the event if `channel` is watched; `what` is told whether
    /// payloads are wanted. Nothing is built for a channel nobody watches.
    pub(super) fn tap(&self, channel: &str, what: impl FnOnce(bool) -> Option<What>) {
        let now = self.now();
        let Some(payloads) = self.watch.watched(channel, now) else {
            return;
        };
        if let Some(what) = what(payloads) {
            self.watch.publish(
                channel,
                ChannelEvent {
                    at_ms: now,
                    node: self.node.to_string(),
                    what,
                },
            );
        }
    }

    /// A message from `from` to `to` and what became of it.
    pub fn tap_message(
        &self,
        channel: &str,
        from: &Role,
        to: Option<&Role>,
        message: &Relayed,
        outcome: Outcome,
        reason: Option<&str>,
    ) {
        self.tap(channel, |payloads| {
            Some(What::Message {
                action: message.action.as_str().to_owned(),
                size: message.payload.len(),
                from: peer_name(from),
                to: to.map_or_else(|| "-".to_owned(), peer_name),
                outcome: outcome.as_str().to_owned(),
                reason: reason.map(str::to_owned),
                payload: payloads.then(|| message.payload.clone()),
            })
        });
    }

    /// A message a connection sent that was refused before routing (invalid, rate-limited):
    /// only its size and, if it parsed that far, its action are known.
    pub fn tap_refused(
        &self,
        channel: &str,
        from: &Role,
        action: Option<&str>,
        size: usize,
        outcome: Outcome,
        reason: &str,
    ) {
        self.tap(channel, |_| {
            Some(What::Message {
                action: action.unwrap_or("?").to_owned(),
                size,
                from: peer_name(from),
                to: "-".to_owned(),
                outcome: outcome.as_str().to_owned(),
                reason: Some(reason.to_owned()),
                payload: None,
            })
        });
    }

    /// Notes where connection `id` came from (the server knows; the hub shows it).
    pub fn note_origin(&self, id: u64, from: Option<String>) {
        self.watch.note_origin(id, self.now(), from);
    }

    pub(super) fn tap_connected(&self, channel: &str, role: &Role, id: u64) {
        let origin = self.watch.origin(id).unwrap_or((self.now(), None));
        self.tap(channel, |_| What::connection(role, Some(origin), ""));
    }

    pub(super) fn tap_disconnected(&self, channel: &str, role: &Role, id: u64, reason: &str) {
        self.watch.forget_origin(id);
        self.tap(channel, |_| What::connection(role, None, reason));
    }

    pub(super) fn tap_held_changed(&self, channel: &str) {
        self.tap(channel, |_| Some(What::HeldChanged));
    }

    /// Starts (or renews) a watch of `channel` on every node; read the events with
    /// [`Hub::live_feed`], subscribed before this so the roll call is not missed.
    pub fn watch_channel(&self, channel: &str, payloads: bool) {
        self.watch.feed().publish(FeedItem::Watch {
            channel: channel.to_owned(),
            payloads,
        });
    }

    pub fn live_feed(&self) -> broadcast::Receiver<FeedItem> {
        self.watch.feed().subscribe()
    }

    /// The live connections of `channel`, on every node.
    pub async fn connected(
        &self,
        channel: &str,
    ) -> Result<Vec<(Role, super::event::Member)>, String> {
        self.ports
            .presence
            .roles(channel)
            .await
            .map_err(|e| e.to_string())
    }

    /// The messages held on `channel` now.
    pub async fn held_messages(&self, channel: &str) -> Result<Vec<HeldMessage>, String> {
        self.ports
            .held
            .peek(channel, self.now())
            .await
            .map_err(|e| e.to_string())
    }

    /// A watch arrived on the feed: note it and report this node's connections on it.
    pub(super) fn on_watch(&self, channel: &str, payloads: bool) {
        let now = self.now();
        self.watch
            .mark(channel, payloads, now, now + WATCH_LEASE.as_millis() as u64);
        for (id, on, role) in self.local.live() {
            if &*on == channel {
                self.tap_connected(channel, &role, id);
            }
        }
    }

    /// GO_AWAY to every connection of `channel` on every node, the channel staying as it is
    /// (an operator's lever, docs/console.md). Returns this node's count and whether every
    /// other node with a connection there was told.
    pub async fn go_away_channel(&self, channel: &str) -> Result<usize, String> {
        let grace = self.config.go_away_grace;
        let nodes = self
            .ports
            .presence
            .nodes(channel)
            .await
            .map_err(|e| e.to_string())?;
        let n = self
            .local
            .send_channel(channel, &super::event::Event::GoAway { grace });
        for node in nodes.into_iter().filter(|n| *n != self.node) {
            let envelope = Envelope::GoAway {
                channel: channel.to_owned(),
                grace,
            };
            match self.publish(node, envelope).await {
                Ok(()) | Err(BusError::NoSuchNode) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        self.tap(channel, |_| Some(What::GoAway { connections: n }));
        Ok(n)
    }

    /// Closes the connection of `role` on `channel`, wherever it is. `false` if none.
    pub async fn close_client(&self, channel: &str, role: &Role) -> Result<bool, String> {
        match self.ports.presence.lookup(channel, role).await {
            Ok(Some(m)) => {
                self.close_member(m, "closed from the console").await;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Serves the feed for a hub: watches from other nodes (and this one) start roll calls.
pub(super) async fn listen(hub: std::sync::Weak<Hub>, mut rx: broadcast::Receiver<FeedItem>) {
    loop {
        match rx.recv().await {
            Ok(FeedItem::Watch { channel, payloads }) => {
                let Some(hub) = hub.upgrade() else { return };
                hub.on_watch(&channel, payloads);
            }
            Ok(FeedItem::Event { .. }) => {}
            // Missed watches are renewed by their watchers within a renewal period.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A feed whose items this node's hub reads: used by `Hub::start`.
pub(super) fn subscribe(hub: &Arc<Hub>) -> broadcast::Receiver<FeedItem> {
    hub.watch.feed().subscribe()
}
