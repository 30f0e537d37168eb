//! Test doubles for the relay, shared by the hub's unit tests and the signaling conformance
//! suite that every backend of the relay's ports runs ([`super::conformance`]).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use std::sync::Arc;

use async_trait::async_trait;

use super::hub::ChannelTtl;
use super::local::{Refused, SendResult, Sink};
use super::{Action, ClientMessage, ConnectionId, Event, Hub, Relayed, Role, SignalError};

pub const ARN: &str = "arn:aws:kinesisvideo:us-east-1:111122223333:channel/c/1";

#[derive(Default)]
pub struct RecordingSink {
    pub events: Mutex<Vec<Event>>,
    pub capacity: Option<usize>,
    pub closed: AtomicBool,
}

impl Sink for RecordingSink {
    fn send(&self, event: Event) -> SendResult {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Refused::Closed(event));
        }
        let mut f = self.events.lock().unwrap();
        if self.capacity.is_some_and(|c| f.len() >= c) {
            return Err(Refused::Full(event));
        }
        f.push(event);
        Ok(())
    }
}

impl RecordingSink {
    /// The relayed messages received, as (sender, payload).
    pub fn messages(&self) -> Vec<(Option<String>, String)> {
        self.relayed()
            .into_iter()
            .map(|r| (r.sender, r.payload))
            .collect()
    }

    pub fn payloads(&self) -> Vec<String> {
        self.relayed().into_iter().map(|r| r.payload).collect()
    }

    pub fn relayed(&self) -> Vec<Relayed> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn all(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

/// A channel TTL the test sets; `0` means the channel is gone.
pub struct TestTtl(pub AtomicU32);

#[async_trait]
impl ChannelTtl for TestTtl {
    async fn ttl_seconds(&self, _channel_arn: &str) -> Option<u32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}

pub fn msg(action: Action, recipient: Option<&str>, payload: &str) -> ClientMessage {
    ClientMessage {
        action,
        recipient_client_id: recipient.map(str::to_owned),
        message_payload: payload.to_owned(),
        correlation_id: None,
    }
}

pub fn viewer(id: &str) -> Role {
    Role::Viewer(id.to_owned())
}

/// Connects and goes live at once, keeping the connection until the test disconnects it (the
/// tests that keep connections by id; the registration guard itself has tests of its own).
#[async_trait]
pub trait Join {
    async fn join(
        &self,
        channel_arn: &str,
        role: Role,
        sink: Arc<dyn Sink>,
    ) -> Result<ConnectionId, SignalError>;
}

#[async_trait]
impl Join for Hub {
    async fn join(
        &self,
        channel_arn: &str,
        role: Role,
        sink: Arc<dyn Sink>,
    ) -> Result<ConnectionId, SignalError> {
        let reg = self.connect(channel_arn, role, sink).await?;
        reg.activate().await;
        Ok(reg.detach())
    }
}
