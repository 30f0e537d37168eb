//! [`MediaRecorder`]: the [`RecordingTarget`] the storage session's peer writes into, and the
//! upkeep that holds the fragment store to each stream's data retention and to the global byte
//! bound (docs/media-storage.md "Bounds and retention").

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kvs_core::clock::Clock;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::media::{MediaError, RecordingTarget, SampleSink};
use kvs_core::streams::model::Status;
use kvs_core::streams::service::{StreamRef, StreamView};
use kvs_core::{ErrorCode, ServiceError};

use crate::fragmenter::{FragmentRules, FragmentSink, Fragmenter};
use crate::metrics::MediaMetrics;
use crate::store::{FragmentStore, Position, Removed, StreamKey};

/// How the recorder finds a stream (the application's stream service; a fake in tests).
#[async_trait]
pub trait StreamDirectory: Send + Sync {
    /// The stream an ARN names, with the status in force; `None` when there is none.
    async fn stream(&self, arn: &ResourceArn) -> Result<Option<StreamView>, ServiceError>;
}

#[async_trait]
impl StreamDirectory for kvs_core::app::Application {
    async fn stream(&self, arn: &ResourceArn) -> Result<Option<StreamView>, ServiceError> {
        let Some(ns) = Namespace::from_arn(arn) else {
            return Ok(None);
        };
        match self
            .streams()
            .describe(&ns, &StreamRef::Arn(arn.clone()))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == ErrorCode::ResourceNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RecorderConfig {
    pub rules: FragmentRules,
    /// `--media-max-bytes`: the oldest fragments of any stream go first beyond it.
    pub max_bytes: u64,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            rules: FragmentRules::default(),
            max_bytes: 5 << 30,
        }
    }
}

pub struct MediaRecorder {
    streams: Arc<dyn StreamDirectory>,
    store: Arc<dyn FragmentStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<MediaMetrics>,
    config: RecorderConfig,
}

impl MediaRecorder {
    pub fn new(
        streams: Arc<dyn StreamDirectory>,
        store: Arc<dyn FragmentStore>,
        clock: Arc<dyn Clock>,
        config: RecorderConfig,
    ) -> Self {
        Self {
            streams,
            store,
            clock,
            metrics: Arc::new(MediaMetrics::default()),
            config,
        }
    }

    pub fn store(&self) -> &Arc<dyn FragmentStore> {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<MediaMetrics> {
        &self.metrics
    }

    /// One pass of upkeep: fragments of streams that are gone, past their stream's retention,
    /// then the oldest anywhere while the store is over its byte bound. Returns what went.
    pub async fn upkeep(&self) -> Result<Removed, MediaError> {
        let mut total = Removed::default();
        let now = self.clock.now_millis();
        for key in self.store.streams().await? {
            let arn = ResourceArn::parse("StreamARN", &key.arn())
                .map_err(|e| MediaError::Invalid(e.to_string()))?;
            let view = self
                .streams
                .stream(&arn)
                .await
                .map_err(|e| MediaError::Unavailable(e.to_string()))?;
            let Some(view) = view.filter(|v| v.stream.arn == arn) else {
                let r = self.store.delete_stream(&key).await?;
                self.metrics.orphaned(r.fragments);
                total.add(r);
                continue;
            };
            let keep_ms = u64::from(view.stream.data_retention_hours) * 3_600_000;
            let r = self
                .store
                .delete_before(&key, now.saturating_sub(keep_ms))
                .await?;
            self.metrics.expired(r.fragments);
            total.add(r);
        }
        // Bounded: each round removes at least one fragment or stops.
        while self.store.usage().await?.bytes > self.config.max_bytes {
            let mut oldest: Option<(u64, StreamKey, u64)> = None;
            for key in self.store.streams().await? {
                if let Some(m) = self.store.list(&key, Position::Earliest, 1).await?.first() {
                    if oldest.as_ref().is_none_or(|(t, _, _)| m.server_ms < *t) {
                        oldest = Some((m.server_ms, key, m.number));
                    }
                }
            }
            let Some((_, key, number)) = oldest else {
                break;
            };
            let r = self.store.delete_through(&key, number).await?;
            if r.fragments == 0 {
                break;
            }
            self.metrics.evicted(r.fragments);
            total.add(r);
        }
        Ok(total)
    }

    /// Runs [`Self::upkeep`] every `every` until the task is dropped.
    pub fn spawn_upkeep(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = me.upkeep().await {
                    tracing::warn!(error = %e, "media upkeep failed; retrying next tick");
                }
            }
        })
    }
}

#[async_trait]
impl RecordingTarget for MediaRecorder {
    async fn open(
        &self,
        stream_arn: &ResourceArn,
        channel_arn: &ResourceArn,
    ) -> Result<Box<dyn SampleSink>, MediaError> {
        let view = self
            .streams
            .stream(stream_arn)
            .await
            .map_err(|e| MediaError::Unavailable(e.to_string()))?
            .ok_or_else(|| MediaError::StreamNotFound(stream_arn.to_string()))?;
        if view.status != Status::Active {
            return Err(MediaError::Invalid(format!(
                "the stream {} is {}, not ACTIVE",
                view.stream.name,
                view.status.as_str()
            )));
        }
        if view.stream.data_retention_hours == 0 {
            return Err(MediaError::Invalid(format!(
                "the stream {} has no data retention",
                view.stream.name
            )));
        }
        self.metrics.session_opened();
        tracing::info!(stream = %stream_arn, channel = %channel_arn, "recording opened");
        Ok(Box::new(FragmentSink {
            key: StreamKey::from_arn(&view.stream.arn),
            store: Arc::clone(&self.store),
            metrics: Arc::clone(&self.metrics),
            fragmenter: Fragmenter::new(self.config.rules),
            last_mark: None,
        }))
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
