//! WebRTC ingestion's media seam (issue 15): what the recording peer hands over and who takes it.
//!
//! The storage session's WebRTC peer (in the server crate) depacketizes the master's RTP into
//! [`Sample`]s: one H.264 access unit (Annex B, start codes kept) or one Opus packet each. It
//! opens a [`SampleSink`] for the stream the channel is bound to through a [`RecordingTarget`]
//! and pushes samples in arrival order; the target cuts them into Matroska fragments and keeps
//! them for GetMedia. The peer knows nothing of Matroska and the fragment store knows nothing of
//! WebRTC; this module is the only thing both see.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::ids::ResourceArn;

/// Which of the session's two tracks a sample belongs to (docs/protocol.md §5.2: ingestion
/// requires one H.264 video track and one Opus audio track).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One unit of media as received.
#[derive(Debug, Clone)]
pub struct Sample {
    pub track: TrackKind,
    /// Presentation time on the track's own media clock, from the session's first sample of
    /// that track (RTP timestamp unwrapped and divided by the clock rate). Tracks are aligned by
    /// `producer_time`, not by this.
    pub media_time: Duration,
    /// The producer's wall-clock time of capture as best known (from RTCP sender reports when
    /// the sender sends them, else the arrival time); becomes the fragment's producer timestamp.
    pub producer_time: SystemTime,
    /// When the server received it; becomes the fragment's server timestamp.
    pub arrival_time: SystemTime,
    /// Video: the access unit holds an IDR picture (a fragment may start here).
    pub keyframe: bool,
    /// Video: H.264 Annex B access unit (SPS/PPS in-band when the sender sends them).
    /// Audio: one Opus packet.
    pub data: Vec<u8>,
}

/// Why a recording could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("stream not found: {0}")]
    StreamNotFound(String),
    #[error("media store unavailable: {0}")]
    Unavailable(String),
    #[error("media rejected: {0}")]
    Invalid(String),
}

/// Where one storage session's samples go. `push` may buffer; `finish` flushes the last
/// fragment. A sink dropped without `finish` loses at most the fragment being built.
#[async_trait]
pub trait SampleSink: Send {
    async fn push(&mut self, sample: Sample) -> Result<(), MediaError>;
    async fn finish(self: Box<Self>) -> Result<(), MediaError>;
}

/// Opens sinks: one per storage session, writing into the stream `stream_arn`.
#[async_trait]
pub trait RecordingTarget: Send + Sync {
    async fn open(
        &self,
        stream_arn: &ResourceArn,
        channel_arn: &ResourceArn,
    ) -> Result<Box<dyn SampleSink>, MediaError>;
}
