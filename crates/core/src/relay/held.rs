//! Held messages: what was sent to a recipient connected nowhere, kept until the expiry stamped
//! when it was accepted (docs/design.md §2 "TTL") and handed over, in order, when the recipient
//! connects to any node.
//!
//! Rules (docs/protocol.md §6.3): a newer held offer (or answer) from the same sender to the same
//! recipient replaces the older one; at most `max_per_channel` are held per channel, the oldest
//! dropped first (counted); expired messages are never handed over.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::event::{HeldMessage, Role};
use super::message::Action;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("held-message backend failure: {0}")]
pub struct HeldError(pub String);

/// What holding one message did to the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HoldOutcome {
    /// Older offers/answers it replaced.
    pub replaced: usize,
    /// Oldest messages dropped to stay within the bound (live ones only: expired messages
    /// never count toward it).
    pub dropped: usize,
    /// Expired messages removed on the way.
    pub expired: usize,
}

/// What [`HeldMessages::take`] found.
#[derive(Debug, Default)]
pub struct Taken {
    pub messages: Vec<HeldMessage>,
    pub expired: usize,
}

#[async_trait]
pub trait HeldMessages: Send + Sync {
    async fn hold(
        &self,
        channel: &str,
        message: HeldMessage,
        max_per_channel: usize,
        now_millis: u64,
    ) -> Result<HoldOutcome, HeldError>;

    /// Removes and returns, oldest first, the unexpired messages held for `recipient`.
    async fn take(
        &self,
        channel: &str,
        recipient: &Role,
        now_millis: u64,
    ) -> Result<Taken, HeldError>;

    /// Drops everything held on `channel` (it was deleted); returns how many.
    async fn drop_channel(&self, channel: &str) -> Result<usize, HeldError>;

    /// Drops expired messages everywhere; returns how many.
    async fn sweep(&self, now_millis: u64) -> Result<usize, HeldError>;

    async fn count(&self, channel: &str) -> Result<usize, HeldError>;

    /// The unexpired messages held on `channel`, oldest first, left where they are (the
    /// console's live view).
    async fn peek(&self, channel: &str, now_millis: u64) -> Result<Vec<HeldMessage>, HeldError>;
}

/// Whether a newer message of this kind replaces an older held one from the same sender.
pub fn replaces_older(action: Action) -> bool {
    matches!(action, Action::SdpOffer | Action::SdpAnswer)
}

#[derive(Default)]
pub struct MemoryHeld {
    channels: Mutex<HashMap<String, VecDeque<HeldMessage>>>,
}

impl MemoryHeld {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, VecDeque<HeldMessage>>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl HeldMessages for MemoryHeld {
    async fn hold(
        &self,
        channel: &str,
        message: HeldMessage,
        max_per_channel: usize,
        now_millis: u64,
    ) -> Result<HoldOutcome, HeldError> {
        let mut channels = self.lock();
        let queue = channels.entry(channel.to_owned()).or_default();
        let before = queue.len();
        queue.retain(|h| h.expires_at_millis > now_millis);
        let mut outcome = HoldOutcome {
            expired: before - queue.len(),
            ..HoldOutcome::default()
        };
        if replaces_older(message.message.action) {
            let before = queue.len();
            queue.retain(|h| {
                !(h.recipient == message.recipient
                    && h.message.sender == message.message.sender
                    && h.message.action == message.message.action)
            });
            outcome.replaced = before - queue.len();
        }
        while queue.len() >= max_per_channel.max(1) {
            queue.pop_front();
            outcome.dropped += 1;
        }
        queue.push_back(message);
        Ok(outcome)
    }

    async fn take(
        &self,
        channel: &str,
        recipient: &Role,
        now_millis: u64,
    ) -> Result<Taken, HeldError> {
        let mut channels = self.lock();
        let Some(queue) = channels.get_mut(channel) else {
            return Ok(Taken::default());
        };
        let mut taken = Taken::default();
        let mut keep = VecDeque::with_capacity(queue.len());
        for h in queue.drain(..) {
            if h.recipient != *recipient {
                keep.push_back(h);
            } else if h.expires_at_millis <= now_millis {
                taken.expired += 1;
            } else {
                taken.messages.push(h);
            }
        }
        let empty = keep.is_empty();
        *queue = keep;
        if empty {
            channels.remove(channel);
        }
        Ok(taken)
    }

    async fn drop_channel(&self, channel: &str) -> Result<usize, HeldError> {
        Ok(self.lock().remove(channel).map_or(0, |q| q.len()))
    }

    async fn sweep(&self, now_millis: u64) -> Result<usize, HeldError> {
        let mut expired = 0;
        self.lock().retain(|_, q| {
            let before = q.len();
            q.retain(|h| h.expires_at_millis > now_millis);
            expired += before - q.len();
            !q.is_empty()
        });
        Ok(expired)
    }

    async fn count(&self, channel: &str) -> Result<usize, HeldError> {
        Ok(self.lock().get(channel).map_or(0, VecDeque::len))
    }

    async fn peek(&self, channel: &str, now_millis: u64) -> Result<Vec<HeldMessage>, HeldError> {
        Ok(self.lock().get(channel).map_or_else(Vec::new, |q| {
            q.iter()
                .filter(|h| h.expires_at_millis > now_millis)
                .cloned()
                .collect()
        }))
    }
}
