//! Recorded media in the server (issue 15): the recorder the storage session's peer writes
//! into ([`Media::recording`]), its upkeep, and GetMedia (kinesis-video-media `POST /getMedia`,
//! on the endpoint GetDataEndpoint returns), decoded ([`decode`]), limited ([`limits`]) and
//! answered with a streaming body ([`body`]) as docs/media-storage.md describes.

pub mod body;
pub mod decode;
pub mod limits;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kvs_core::app::Application;
use kvs_core::media::RecordingTarget;
use kvs_core::streams::model::Status;
use kvs_core::streams::service::stream_not_found;
use kvs_media::{FragmentStore, MediaRecorder, Position, StreamKey};

use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::metrics::media::MediaScrape;
use decode::Start;

/// The name GetMedia is routed and counted by.
pub const OPERATION: &str = "GetMedia";
pub const PATH: &str = "/getMedia";

pub struct Media {
    recorder: Arc<MediaRecorder>,
    limits: Arc<limits::Limits>,
    /// How long a response waits for a fragment when nothing is being recorded.
    pub idle_end: Duration,
}

impl Media {
    pub fn new(recorder: Arc<MediaRecorder>) -> Self {
        Self {
            recorder,
            limits: Arc::new(limits::Limits::default()),
            idle_end: body::IDLE_END,
        }
    }

    /// What the storage session's peer opens recordings with.
    pub fn recording(&self) -> Arc<dyn RecordingTarget> {
        Arc::clone(&self.recorder) as Arc<dyn RecordingTarget>
    }

    pub fn recorder(&self) -> &Arc<MediaRecorder> {
        &self.recorder
    }

    pub fn store(&self) -> &Arc<dyn FragmentStore> {
        self.recorder.store()
    }

    pub fn scrape(&self) -> MediaScrape {
        use std::sync::atomic::Ordering;
        MediaScrape {
            recorder: self.recorder.metrics().figures(),
            get_media_open: self.limits.open_total.load(Ordering::Relaxed),
            get_media_total: self.limits.started_total.load(Ordering::Relaxed),
        }
    }
}

/// GetMedia: validates, finds the stream, applies the limits and starts the streaming body.
pub async fn get_media(
    app: &Application,
    media: &Media,
    caller: &Caller,
    body: &[u8],
) -> Result<Response, ApiError> {
    let req = decode::decode(body)?;
    let view = app.streams().describe(&caller.ns, &req.stream).await?;
    if view.status != Status::Active {
        return Err(stream_not_found().into());
    }
    let key = StreamKey::from_arn(&view.stream.arn);
    let guard = media
        .limits
        .admit(view.stream.arn.as_str(), app.clock().now_millis())?;
    let store = Arc::clone(media.store());
    let (from, last) = match req.start {
        Start::Earliest => (Position::Earliest, None),
        Start::After(n) => (Position::After(n), Some(n)),
        Start::Producer(t) => (Position::Producer(t), None),
        Start::Server(t) => (Position::Server(t), None),
        // The live edge: what is written after the call.
        Start::Now => {
            let newest = store
                .list(&key, Position::Latest, 1)
                .await
                .map_err(|e| kvs_core::ServiceError::Unavailable(e.to_string()))?
                .first()
                .map_or(0, |m| m.number);
            (Position::After(newest), Some(newest))
        }
    };
    let chunks = body::chunks(
        store,
        Arc::clone(app.clock()),
        key,
        from,
        last,
        guard,
        media.idle_end,
    );
    let mut resp = (StatusCode::OK, Body::from_stream(chunks)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"));
    Ok(resp)
}
