//! The default [`RecordingTarget`] until the fragment store is wired in: it keeps no media and
//! counts what it was given, per track, so a storage session is observable end to end (tests,
//! `/metrics`) without Matroska.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use kvs_core::ids::ResourceArn;
use kvs_core::media::{MediaError, RecordingTarget, Sample, SampleSink, TrackKind};

/// Totals over every sink the target opened.
#[derive(Debug, Default)]
pub struct Counts {
    pub sinks_opened: AtomicU64,
    pub sinks_finished: AtomicU64,
    pub video_samples: AtomicU64,
    pub video_keyframes: AtomicU64,
    pub video_bytes: AtomicU64,
    pub audio_samples: AtomicU64,
    pub audio_bytes: AtomicU64,
}

#[derive(Debug, Default, Clone)]
pub struct CountingTarget {
    pub counts: Arc<Counts>,
}

struct CountingSink(Arc<Counts>);

#[async_trait]
impl SampleSink for CountingSink {
    async fn push(&mut self, sample: Sample) -> Result<(), MediaError> {
        let c = &self.0;
        let bytes = sample.data.len() as u64;
        match sample.track {
            TrackKind::Video => {
                c.video_samples.fetch_add(1, Ordering::Relaxed);
                c.video_bytes.fetch_add(bytes, Ordering::Relaxed);
                if sample.keyframe {
                    c.video_keyframes.fetch_add(1, Ordering::Relaxed);
                }
            }
            TrackKind::Audio => {
                c.audio_samples.fetch_add(1, Ordering::Relaxed);
                c.audio_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<(), MediaError> {
        self.0.sinks_finished.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl RecordingTarget for CountingTarget {
    async fn open(
        &self,
        _stream_arn: &ResourceArn,
        _channel_arn: &ResourceArn,
    ) -> Result<Box<dyn SampleSink>, MediaError> {
        self.counts.sinks_opened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(CountingSink(Arc::clone(&self.counts))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[tokio::test]
    async fn counts_samples_bytes_and_keyframes_per_track() {
        let target = CountingTarget::default();
        let arn = ResourceArn::parse(
            "x",
            "arn:aws:kinesisvideo:us-west-2:111122223333:stream/s/1",
        )
        .expect("arn");
        let mut sink = target.open(&arn, &arn).await.expect("open");
        let sample = |track, keyframe, n| Sample {
            track,
            media_time: Duration::ZERO,
            producer_time: SystemTime::UNIX_EPOCH,
            arrival_time: SystemTime::UNIX_EPOCH,
            keyframe,
            data: vec![0; n],
        };
        sink.push(sample(TrackKind::Video, true, 100))
            .await
            .expect("push");
        sink.push(sample(TrackKind::Video, false, 10))
            .await
            .expect("push");
        sink.push(sample(TrackKind::Audio, false, 7))
            .await
            .expect("push");
        sink.finish().await.expect("finish");
        let c = &target.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(get(&c.sinks_opened), 1);
        assert_eq!(get(&c.sinks_finished), 1);
        assert_eq!(
            (
                get(&c.video_samples),
                get(&c.video_keyframes),
                get(&c.video_bytes)
            ),
            (2, 1, 110)
        );
        assert_eq!((get(&c.audio_samples), get(&c.audio_bytes)), (1, 7));
    }
}
