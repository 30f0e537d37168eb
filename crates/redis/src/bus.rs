//! The bus between nodes on Redis pub/sub: node N listens on its own channel `P:bus:N` and an
//! envelope is published to the recipient's node only, so a message crosses Redis once per hop
//! and the other nodes never see it. `PUBLISH` answers how many subscribers got it; none means
//! the node is gone (or reconnecting), and the relay then holds the message instead.
//!
//! Each node's inbox is bounded ([`BUS_INBOX`]). Overflow policy, by kind:
//! - a relayed message arriving at a full inbox is dropped and counted
//!   ([`Bus::dropped_on_arrival`], exported in `/metrics`), like a recipient that does not read
//!   (the sender already published, so its hold does not apply);
//! - a Close or a GoAway is never dropped: the subscription waits for room in the inbox. While
//!   it waits, Redis buffers what is published to the node; if that buffer passes Redis's
//!   `client-output-buffer-limit` for pub/sub, Redis drops the subscription, the node
//!   resubscribes, and the hub catches every connection up against presence (which is where a
//!   missed Close or GoAway is repaired).
//!
//! The subscription reconnects by itself after Redis comes back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use kvs_core::relay::bus::{Bus, BusError, Envelope, BUS_INBOX};
use kvs_core::relay::{Action, NodeId, Relayed};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::presence::{parse_role, role_field};
use crate::{Redis, CONNECT_TIMEOUT};

/// An envelope on the wire (JSON; short names, it crosses Redis for every relayed message).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t")]
enum Wire {
    #[serde(rename = "d")]
    Deliver {
        ch: String,
        conn: u64,
        to: String,
        a: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        p: String,
    },
    #[serde(rename = "c")]
    Close { conn: u64, why: String },
    #[serde(rename = "g")]
    GoAway { ch: String, grace_ms: u64 },
    #[serde(rename = "r")]
    Redirect {
        conn: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
}

fn to_wire(e: Envelope) -> Option<Wire> {
    Some(match e {
        Envelope::Deliver {
            channel,
            conn,
            recipient,
            message,
        } => Wire::Deliver {
            ch: channel,
            conn,
            to: role_field(&recipient),
            a: message.action.as_str().to_owned(),
            from: message.sender,
            p: message.payload,
        },
        Envelope::Close { conn, reason } => Wire::Close { conn, why: reason },
        Envelope::GoAway { channel, grace } => Wire::GoAway {
            ch: channel,
            grace_ms: grace.as_millis() as u64,
        },
        Envelope::Redirect { conn, to } => Wire::Redirect { conn, to },
        Envelope::Resubscribed => return None,
    })
}

fn from_wire(w: Wire) -> Option<Envelope> {
    Some(match w {
        Wire::Deliver {
            ch,
            conn,
            to,
            a,
            from,
            p,
        } => Envelope::Deliver {
            channel: ch,
            conn,
            recipient: parse_role(&to)?,
            message: Relayed {
                action: Action::parse(&a)?,
                sender: from,
                payload: p,
            },
        },
        Wire::Close { conn, why } => Envelope::Close { conn, reason: why },
        Wire::GoAway { ch, grace_ms } => Envelope::GoAway {
            channel: ch,
            grace: Duration::from_millis(grace_ms),
        },
        Wire::Redirect { conn, to } => Envelope::Redirect { conn, to },
    })
}

pub struct RedisBus {
    redis: Redis,
    subscriptions: Mutex<HashMap<NodeId, JoinHandle<()>>>,
    dropped: Arc<AtomicU64>,
}

impl RedisBus {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            subscriptions: Mutex::new(HashMap::new()),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn subscriptions(&self) -> MutexGuard<'_, HashMap<NodeId, JoinHandle<()>>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, to: NodeId, envelope: Envelope) -> Result<(), BusError> {
        let wire = to_wire(envelope)
            .ok_or_else(|| BusError::Backend("a local notice is not published".into()))?;
        let text = serde_json::to_string(&wire).map_err(|e| BusError::Backend(e.to_string()))?;
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(self.redis.keys().bus(to))
            .arg(text)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(|e| BusError::Backend(e.to_string()))?;
        if receivers == 0 {
            return Err(BusError::NoSuchNode);
        }
        Ok(())
    }

    fn subscribe(&self, node: NodeId) -> mpsc::Receiver<Envelope> {
        let (tx, rx) = mpsc::channel(BUS_INBOX);
        let task = tokio::spawn(listen(
            self.redis.clone(),
            node,
            tx,
            Arc::clone(&self.dropped),
        ));
        if let Some(old) = self.subscriptions().insert(node, task) {
            old.abort();
        }
        rx
    }

    fn unsubscribe(&self, node: NodeId) {
        if let Some(task) = self.subscriptions().remove(&node) {
            task.abort();
        }
    }

    fn dropped_on_arrival(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for (_, task) in self.subscriptions().drain() {
            task.abort();
        }
    }
}

/// Subscribes to `node`'s channel and forwards what arrives, reconnecting after a failure
/// (with a short pause) until the inbox's receiver is gone.
async fn listen(redis: Redis, node: NodeId, tx: mpsc::Sender<Envelope>, dropped: Arc<AtomicU64>) {
    let channel = redis.keys().bus(node);
    let mut pause = Duration::from_millis(100);
    let mut faults = kvs_core::fault_log::FaultLog::default();
    const SUBSCRIBE: &str = "cannot subscribe to the bus";
    loop {
        if tx.is_closed() {
            return;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, async {
            let mut pubsub = redis.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await
        {
            Ok(Ok(pubsub)) => {
                faults.succeeded(SUBSCRIBE);
                tracing::info!(%node, "subscribed to the node's bus channel");
                pause = Duration::from_millis(100);
                // What was published while the node was not subscribed was held: the node
                // hands it to its connections now.
                if tx.send(Envelope::Resubscribed).await.is_err() {
                    return;
                }
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let envelope = serde_json::from_slice::<Wire>(msg.get_payload_bytes())
                        .ok()
                        .and_then(from_wire);
                    let Some(envelope) = envelope else {
                        tracing::warn!("unreadable bus envelope dropped");
                        continue;
                    };
                    let control = !matches!(envelope, Envelope::Deliver { .. });
                    match tx.try_send(envelope) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(envelope)) if control => {
                            if tx.send(envelope).await.is_err() {
                                return;
                            }
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                tracing::warn!(%node, "bus subscription lost; resubscribing");
            }
            Ok(Err(e)) => {
                faults.failed(SUBSCRIBE, &e.to_string());
            }
            Err(_) => {
                faults.failed(SUBSCRIBE, "timed out");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvs_core::relay::Role;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn envelopes_round_trip() {
        let all = [
            Envelope::Deliver {
                channel: "arn".into(),
                conn: 7,
                recipient: Role::Viewer("v1".into()),
                message: Relayed {
                    action: Action::IceCandidate,
                    sender: None,
                    payload: "cA==".into(),
                },
            },
            Envelope::Close {
                conn: 1,
                reason: "replaced".into(),
            },
            Envelope::GoAway {
                channel: "arn".into(),
                grace: Duration::from_millis(1500),
            },
            Envelope::Redirect {
                conn: 3,
                to: Some("kvs-storage-session-1".into()),
            },
            Envelope::Redirect { conn: 3, to: None },
        ];
        for e in all {
            let text = serde_json::to_string(&to_wire(e.clone()).unwrap()).unwrap_or_default();
            let back = serde_json::from_str::<Wire>(&text).ok().and_then(from_wire);
            assert_eq!(back, Some(e));
        }
    }
}
