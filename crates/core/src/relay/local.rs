//! The connections of this node: each connection's outbox ([`Sink`]) by connection id, and the
//! ids of each channel's connections (for GO_AWAY on delete and for broadcasts).
//!
//! A connection starts *pending*: events for it are buffered until it is live (its WebSocket
//! upgrade completed) and the messages held for it have been put in its outbox; then the buffer
//! follows ([`LocalConnections::activate`]). That keeps held messages ahead of live ones
//! although presence, held messages and the bus are separate ports, and it means nothing held
//! is handed to a connection that never becomes live.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::event::{Event, Role};

/// Why an outbox refused an event; the event comes back so the caller can hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The outbox is full: the peer is not reading.
    Full(Event),
    /// The connection is gone.
    Closed(Event),
}

impl Refused {
    pub fn into_event(self) -> Event {
        match self {
            Self::Full(e) | Self::Closed(e) => e,
        }
    }
}

pub type SendResult = Result<(), Refused>;

/// A connection's outbox. Never waits.
pub trait Sink: Send + Sync {
    fn send(&self, event: Event) -> SendResult;
}

struct Conn {
    channel: Arc<str>,
    role: Role,
    sink: Arc<dyn Sink>,
    /// `Some` while pending; bounded by `pending_limit`.
    pending: Option<Vec<Event>>,
    /// A hand-over of held messages was deferred while the connection was pending.
    missed_hand_over: bool,
    /// For a viewer joined to a storage session: the storage peer's ClientId, which its
    /// messages go to instead of the master ([`LocalConnections::set_redirect`]).
    redirect: Option<Arc<str>>,
}

/// A connection taken out of this node.
#[derive(Debug)]
pub struct Gone {
    pub channel: Arc<str>,
    pub role: Role,
    /// What was buffered for it while it was pending, if it never became live.
    pub unsent: Vec<Event>,
}

/// Whether a connection can be handed what is held for it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOver {
    /// It is live: hand over.
    Live,
    /// It is still pending: its activation will take what is held (noted on the connection).
    Deferred,
    /// It is gone.
    Gone,
}

#[derive(Default)]
struct Inner {
    conns: HashMap<u64, Conn>,
    by_channel: HashMap<Arc<str>, HashSet<u64>>,
}

pub struct LocalConnections {
    inner: Mutex<Inner>,
    pending_limit: usize,
}

impl LocalConnections {
    pub fn new(pending_limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            pending_limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under the lock is a single map operation: a poisoned lock still holds
        // consistent maps.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a pending connection.
    pub fn register(&self, id: u64, channel: Arc<str>, role: Role, sink: Arc<dyn Sink>) {
        let mut inner = self.lock();
        inner
            .by_channel
            .entry(Arc::clone(&channel))
            .or_default()
            .insert(id);
        inner.conns.insert(
            id,
            Conn {
                channel,
                role,
                sink,
                pending: Some(Vec::new()),
                missed_hand_over: false,
                redirect: None,
            },
        );
    }

    /// Puts `event` straight into the outbox, ahead of anything buffered (held messages on
    /// connect).
    pub fn send_direct(&self, id: u64, event: Event) -> SendResult {
        match self.lock().conns.get(&id) {
            Some(c) => c.sink.send(event),
            None => Err(Refused::Closed(event)),
        }
    }

    /// Delivers `event`, or buffers it while the connection is pending.
    pub fn send(&self, id: u64, event: Event) -> SendResult {
        let mut inner = self.lock();
        let Some(c) = inner.conns.get_mut(&id) else {
            return Err(Refused::Closed(event));
        };
        match &mut c.pending {
            Some(buf) if buf.len() >= self.pending_limit => Err(Refused::Full(event)),
            Some(buf) => {
                buf.push(event);
                Ok(())
            }
            None => c.sink.send(event),
        }
    }

    /// Ends the pending state: what was buffered goes out in order. Returns whether a
    /// hand-over of held messages was deferred meanwhile (the caller then takes them).
    pub fn activate(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let Some(c) = inner.conns.get_mut(&id) else {
            return false;
        };
        for event in c.pending.take().unwrap_or_default() {
            // A refused event here is a peer that left or stopped reading while it connected;
            // its session ends either way.
            let _ = c.sink.send(event);
        }
        std::mem::take(&mut c.missed_hand_over)
    }

    /// Whether held messages can be handed to connection `id` now; a pending connection
    /// notes that its activation must take them.
    pub fn hand_over(&self, id: u64) -> HandOver {
        match self.lock().conns.get_mut(&id) {
            None => HandOver::Gone,
            Some(c) if c.pending.is_some() => {
                c.missed_hand_over = true;
                HandOver::Deferred
            }
            Some(_) => HandOver::Live,
        }
    }

    /// Forgets a connection; returns what it was if it was registered.
    pub fn remove(&self, id: u64) -> Option<Gone> {
        let mut inner = self.lock();
        let c = inner.conns.remove(&id)?;
        if let Some(set) = inner.by_channel.get_mut(&c.channel) {
            set.remove(&id);
            if set.is_empty() {
                inner.by_channel.remove(&c.channel);
            }
        }
        Some(Gone {
            channel: c.channel,
            role: c.role,
            unsent: c.pending.unwrap_or_default(),
        })
    }

    /// Sends `event` to every connection of `channel`; returns how many took it.
    pub fn send_channel(&self, channel: &str, event: &Event) -> usize {
        let inner = self.lock();
        let Some(ids) = inner.by_channel.get(channel) else {
            return 0;
        };
        ids.iter()
            .filter_map(|id| inner.conns.get(id))
            .filter(|c| c.sink.send(event.clone()).is_ok())
            .count()
    }

    /// Sends `event` to every connection of this node; returns how many took it.
    pub fn broadcast(&self, event: &Event) -> usize {
        self.lock()
            .conns
            .values()
            .filter(|c| c.sink.send(event.clone()).is_ok())
            .count()
    }

    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Every connection of this node: (id, channel, role).
    pub fn snapshot(&self) -> Vec<(u64, Arc<str>, Role)> {
        self.lock()
            .conns
            .iter()
            .map(|(id, c)| (*id, Arc::clone(&c.channel), c.role.clone()))
            .collect()
    }

    /// The live connections of this node (not those still completing their handshake).
    pub fn live(&self) -> Vec<(u64, Arc<str>, Role)> {
        self.lock()
            .conns
            .iter()
            .filter(|(_, c)| c.pending.is_none())
            .map(|(id, c)| (*id, Arc::clone(&c.channel), c.role.clone()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().conns.is_empty()
    }

    /// Sends what viewer connection `id` addresses to the master to the viewer `to` instead
    /// (`None`: to the master again). Returns whether the connection is here.
    pub fn set_redirect(&self, id: u64, to: Option<Arc<str>>) -> bool {
        match self.lock().conns.get_mut(&id) {
            Some(c) => {
                c.redirect = to;
                true
            }
            None => false,
        }
    }

    /// Where connection `id`'s messages to the master go instead, if anywhere.
    pub fn redirect(&self, id: u64) -> Option<Arc<str>> {
        self.lock().conns.get(&id).and_then(|c| c.redirect.clone())
    }

    pub fn role(&self, id: u64) -> Option<Role> {
        self.lock().conns.get(&id).map(|c| c.role.clone())
    }
}

/// The usual outbox: a bounded Tokio channel whose receiver a session (or a waiting call)
/// drains. Overflow policy: refuse the newest event ([`Refused::Full`]).
pub struct ChannelSink(pub tokio::sync::mpsc::Sender<Event>);

impl Sink for ChannelSink {
    fn send(&self, event: Event) -> SendResult {
        use tokio::sync::mpsc::error::TrySendError;
        self.0.try_send(event).map_err(|e| match e {
            TrySendError::Full(ev) => Refused::Full(ev),
            TrySendError::Closed(ev) => Refused::Closed(ev),
        })
    }
}

/// A WebSocket session's outbox (docs/behaviour.md "Signaling data plane", slow consumers): a bounded Tokio channel
/// like [`ChannelSink`], and when it is full the session is told (`overflow`) to close its
/// connection: a client that does not read is disconnected rather than let its backlog grow or
/// slow anyone else. The event that did not fit comes back to the caller, who holds it for the
/// recipient's next connection.
pub struct SessionSink {
    pub tx: tokio::sync::mpsc::Sender<Event>,
    pub overflow: Arc<tokio::sync::Notify>,
}

impl Sink for SessionSink {
    fn send(&self, event: Event) -> SendResult {
        use tokio::sync::mpsc::error::TrySendError;
        self.tx.try_send(event).map_err(|e| match e {
            TrySendError::Full(ev) => {
                self.overflow.notify_one();
                Refused::Full(ev)
            }
            TrySendError::Closed(ev) => Refused::Closed(ev),
        })
    }
}
