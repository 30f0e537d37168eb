//! The live view's feed between nodes ([`kvs_core::relay::watch`]) on one Redis pub/sub channel,
//! `PREFIX:feed`: every node publishes there and every node listens.
//!
//! Best effort, like the feed itself: items go out through a bounded queue (overflow policy: the
//! newest item is dropped and counted, the caller never waits) to one publishing task, and what
//! arrives is handed to the node's subscribers through a broadcast channel (a subscriber that
//! falls behind is told how much it missed). A lost subscription is re-established with backoff;
//! items published meanwhile are lost, and watchers renew their watch within a renewal period.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kvs_core::relay::watch::{Feed, FeedItem, FEED_BUFFER};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::{Redis, CONNECT_TIMEOUT};

pub struct RedisFeed {
    out: mpsc::Sender<String>,
    local: broadcast::Sender<FeedItem>,
    dropped: Arc<AtomicU64>,
    tasks: [JoinHandle<()>; 2],
}

impl RedisFeed {
    /// Starts the feed's publishing and listening tasks (inside a Tokio runtime).
    pub fn new(redis: Redis) -> Self {
        let (out, rx) = mpsc::channel(FEED_BUFFER);
        let local = broadcast::channel(FEED_BUFFER).0;
        let tasks = [
            tokio::spawn(publish(redis.clone(), rx)),
            tokio::spawn(listen(redis, local.clone())),
        ];
        Self {
            out,
            local,
            dropped: Arc::new(AtomicU64::new(0)),
            tasks,
        }
    }
}

impl Drop for RedisFeed {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Feed for RedisFeed {
    fn publish(&self, item: FeedItem) {
        let Ok(text) = serde_json::to_string(&item) else {
            return;
        };
        if self.out.try_send(text).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.local.subscribe()
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn publish(redis: Redis, mut rx: mpsc::Receiver<String>) {
    let channel = redis.keys().feed();
    while let Some(text) = rx.recv().await {
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(text)
            .query_async(&mut redis.conn())
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "live-view item not published");
        }
    }
}

async fn listen(redis: Redis, local: broadcast::Sender<FeedItem>) {
    let channel = redis.keys().feed();
    let mut pause = Duration::from_millis(100);
    loop {
        let subscribed = tokio::time::timeout(CONNECT_TIMEOUT * 2, async {
            let mut pubsub = redis.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => {
                pause = Duration::from_millis(100);
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    match serde_json::from_slice::<FeedItem>(msg.get_payload_bytes()) {
                        // No local subscriber: nobody on this node listens yet.
                        Ok(item) => {
                            let _ = local.send(item);
                        }
                        Err(e) => tracing::debug!(error = %e, "unreadable live-view item"),
                    }
                }
                tracing::warn!("live-view feed subscription lost; resubscribing");
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot subscribe to the live-view feed"),
            Err(_) => tracing::debug!("subscribing to the live-view feed timed out"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
