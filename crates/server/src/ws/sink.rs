//! A connection's outbox: a bounded channel the hub pushes into without ever waiting.

use kvs_core::signaling::hub::SendOutcome;
use kvs_core::signaling::{Outbound, Sink};
use tokio::sync::mpsc;

pub struct MpscSink(pub mpsc::Sender<Outbound>);

impl Sink for MpscSink {
    fn send(&self, out: Outbound) -> SendOutcome {
        match self.0.try_send(out) {
            Ok(()) => SendOutcome::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => SendOutcome::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => SendOutcome::Closed,
        }
    }
}
