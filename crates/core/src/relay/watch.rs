//! The live view of a channel (docs/console.md): what happens on a channel, on every node, for
//! whoever watches it.
//!
//! Nodes share a [`Feed`]: a watcher publishes [`FeedItem::Watch`] for a channel (and again while
//! it keeps watching); every node then reports its connections on that channel and, until the
//! watch lapses, publishes what happens there as [`FeedItem::Event`]s. A channel nobody watches
//! costs one atomic load per message: nothing is published for it.
//!
//! The feed is best effort by design: it is for eyes, not for state. Overflow policy: the feed
//! never waits; a backend whose outgoing queue is full drops the item and counts it, and a
//! watcher that falls behind is told how many items it missed ([`tokio::sync::broadcast`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::event::Role;

/// How long one [`FeedItem::Watch`] keeps a channel watched; watchers renew it more often.
pub const WATCH_LEASE: Duration = Duration::from_secs(60);
/// How often a watcher renews its watch.
pub const WATCH_RENEW: Duration = Duration::from_secs(20);
/// Items a node's feed subscription buffers before its slowest watcher starts missing some.
pub const FEED_BUFFER: usize = 4096;
/// Channels watched at once on a node, at most (more watches are ignored until some lapse).
const MAX_WATCHED: usize = 10_000;

/// One thing on the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "item", rename_all = "snake_case")]
pub enum FeedItem {
    /// Someone watches `channel`: every node reports its connections there, then its events.
    Watch { channel: String, payloads: bool },
    Event {
        channel: String,
        event: ChannelEvent,
    },
}

/// Something that happened on a channel, on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEvent {
    pub at_ms: u64,
    pub node: String,
    pub what: What,
}

/// Which side of a channel: `MASTER`, or a viewer's ClientId.
pub fn peer_name(role: &Role) -> String {
    match role {
        Role::Master => "MASTER".to_owned(),
        Role::Viewer(id) | Role::AnswerWaiter(id) => id.clone(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum What {
    Connected {
        role: String,
        client_id: Option<String>,
        since_ms: u64,
        from: Option<String>,
    },
    Disconnected {
        role: String,
        client_id: Option<String>,
        reason: String,
    },
    Message {
        action: String,
        size: usize,
        from: String,
        to: String,
        /// `relayed`, `held`, `rejected` or `rate_limited`.
        outcome: String,
        reason: Option<String>,
        /// Only when the watcher asked for payloads.
        payload: Option<String>,
    },
    GoAway {
        connections: usize,
    },
    /// The messages held on the channel changed (a watcher reads them again).
    HeldChanged,
}

impl What {
    /// `Connected` / `Disconnected` for a role; `None` for what is not a connection a user
    /// opened (a SendAlexaOfferToMaster call waiting for its answer).
    pub fn connection(
        role: &Role,
        connected: Option<(u64, Option<String>)>,
        reason: &str,
    ) -> Option<Self> {
        let (role, client_id) = match role {
            Role::Master => ("MASTER", None),
            Role::Viewer(id) => ("VIEWER", Some(id.clone())),
            Role::AnswerWaiter(_) => return None,
        };
        Some(match connected {
            Some((since_ms, from)) => Self::Connected {
                role: role.to_owned(),
                client_id,
                since_ms,
                from,
            },
            None => Self::Disconnected {
                role: role.to_owned(),
                client_id,
                reason: reason.to_owned(),
            },
        })
    }
}

/// The feed between nodes. Never waits.
pub trait Feed: Send + Sync {
    /// To every node, this one included.
    fn publish(&self, item: FeedItem);
    /// What every node publishes, from now on.
    fn subscribe(&self) -> broadcast::Receiver<FeedItem>;
    /// Items dropped because the feed's outgoing queue was full.
    fn dropped(&self) -> u64 {
        0
    }
}

/// The feed inside one process (the single node's, and the one a multi-hub test shares).
pub struct MemoryFeed {
    tx: broadcast::Sender<FeedItem>,
}

impl MemoryFeed {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(FEED_BUFFER).0,
        }
    }
}

impl Default for MemoryFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed for MemoryFeed {
    fn publish(&self, item: FeedItem) {
        // No subscriber is not an error: nobody watches.
        let _ = self.tx.send(item);
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.tx.subscribe()
    }
}

/// Where a connection came from, for the live view.
#[derive(Debug, Clone)]
struct Origin {
    since_ms: u64,
    from: Option<String>,
}

/// A node's side of the feed: which channels are watched, and the origin of its connections.
pub struct Watch {
    feed: RwLock<Arc<dyn Feed>>,
    /// Channel -> (watched until, in the clock's milliseconds; payloads wanted).
    watched: Mutex<HashMap<String, (u64, bool)>>,
    /// `watched.len()`, read without the lock on every message.
    count: AtomicUsize,
    origins: Mutex<HashMap<u64, Origin>>,
    published: AtomicU64,
}

impl Default for Watch {
    fn default() -> Self {
        Self::new(Arc::new(MemoryFeed::new()))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is one map operation: a poisoned lock is consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Watch {
    pub fn new(feed: Arc<dyn Feed>) -> Self {
        Self {
            feed: RwLock::new(feed),
            watched: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            origins: Mutex::new(HashMap::new()),
            published: AtomicU64::new(0),
        }
    }

    pub fn feed(&self) -> Arc<dyn Feed> {
        Arc::clone(
            &self
                .feed
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Uses `feed` from now on (the application sets the cluster's before the hub starts).
    pub fn use_feed(&self, feed: Arc<dyn Feed>) {
        *self
            .feed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = feed;
    }

    /// Whether `channel` is watched at `now_ms`, and whether its watchers want payloads.
    pub fn watched(&self, channel: &str, now_ms: u64) -> Option<bool> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut watched = lock(&self.watched);
        match watched.get(channel) {
            Some(&(until, payloads)) if until > now_ms => Some(payloads),
            Some(_) => {
                watched.remove(channel);
                self.count.store(watched.len(), Ordering::Relaxed);
                None
            }
            None => None,
        }
    }

    /// Notes a watch of `channel` until `until_ms`. Payloads, once asked for, stay on for the
    /// watch's lease.
    pub fn mark(&self, channel: &str, payloads: bool, now_ms: u64, until_ms: u64) {
        let mut watched = lock(&self.watched);
        if watched.len() >= MAX_WATCHED {
            watched.retain(|_, (until, _)| *until > now_ms);
            if watched.len() >= MAX_WATCHED {
                return;
            }
        }
        let entry = watched.entry(channel.to_owned()).or_insert((0, false));
        entry.1 = if entry.0 > now_ms {
            entry.1 || payloads
        } else {
            payloads
        };
        entry.0 = until_ms;
        self.count.store(watched.len(), Ordering::Relaxed);
    }

    pub fn publish(&self, channel: &str, event: ChannelEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.feed().publish(FeedItem::Event {
            channel: channel.to_owned(),
            event,
        });
    }

    /// Events published by this node so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn note_origin(&self, id: u64, since_ms: u64, from: Option<String>) {
        lock(&self.origins).insert(id, Origin { since_ms, from });
    }

    pub fn origin(&self, id: u64) -> Option<(u64, Option<String>)> {
        lock(&self.origins)
            .get(&id)
            .map(|o| (o.since_ms, o.from.clone()))
    }

    pub fn forget_origin(&self, id: u64) {
        lock(&self.origins).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_lapses_and_payloads_follow_the_latest_lease() {
        let w = Watch::default();
        assert_eq!(w.watched("c", 0), None);
        w.mark("c", false, 0, 100);
        assert_eq!(w.watched("c", 50), Some(false));
        w.mark("c", true, 50, 150);
        assert_eq!(w.watched("c", 120), Some(true));
        // A renewal without payloads keeps them while the lease that asked still runs.
        w.mark("c", false, 120, 200);
        assert_eq!(w.watched("c", 130), Some(true));
        assert_eq!(w.watched("c", 200), None);
        assert_eq!(w.count.load(Ordering::Relaxed), 0);
        // A watch after a lapse starts over.
        w.mark("c", false, 300, 400);
        assert_eq!(w.watched("c", 301), Some(false));
    }

    #[test]
    fn items_survive_the_wire() {
        let item = FeedItem::Event {
            channel: "arn:c".into(),
            event: ChannelEvent {
                at_ms: 7,
                node: "00000000000000ff".into(),
                what: What::Message {
                    action: "SDP_OFFER".into(),
                    size: 12,
                    from: "v1".into(),
                    to: "MASTER".into(),
                    outcome: "relayed".into(),
                    reason: None,
                    payload: None,
                },
            },
        };
        let text = serde_json::to_string(&item).unwrap();
        assert_eq!(serde_json::from_str::<FeedItem>(&text).unwrap(), item);
    }

    #[tokio::test]
    async fn the_memory_feed_reaches_every_subscriber() {
        let feed = MemoryFeed::new();
        let mut a = feed.subscribe();
        let mut b = feed.subscribe();
        let item = FeedItem::Watch {
            channel: "c".into(),
            payloads: false,
        };
        feed.publish(item.clone());
        assert_eq!(a.recv().await.unwrap(), item);
        assert_eq!(b.recv().await.unwrap(), item);
    }
}
