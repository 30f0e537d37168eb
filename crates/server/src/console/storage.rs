//! The console's view of a channel's WebRTC ingestion (issue 15, docs/console.md): what its
//! bound stream holds (fragments, recorded span, bytes) and the storage sessions running on
//! it anywhere in the cluster, with the viewers joined to them (JoinStorageSessionAsViewer). Read-only: binding a stream and starting a session go through
//! the AWS operations (`/console/api/call/UpdateMediaStorageConfiguration`, JoinStorageSession).

use axum::extract::{Query, Request, State};
use kvs_core::ids::ResourceArn;
use kvs_media::{FragmentMeta, Position, StreamKey};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{ok, Answer};
use super::caller;
use crate::aws::error::ApiError;
use crate::state::{AppState, SharedState};

/// At most this many fragments are counted for one view (a day at 2 s fragments is ~43k);
/// beyond it the count is shown as a lower bound.
const COUNT_LIMIT: usize = 50_000;

#[derive(Deserialize)]
pub struct StorageQuery {
    channel: String,
}

/// `GET /console/api/storage?channel=ARN`.
pub async fn storage(
    State(state): State<SharedState>,
    Query(q): Query<StorageQuery>,
    req: Request,
) -> Answer {
    let who = caller(&state, req.headers())?;
    let arn = ResourceArn::parse("channel", &q.channel)?;
    state.app.channels().get_by_arn(&who.ns, &arn).await?;
    let config = state.app.streams().media_storage(&who.ns, &arn).await?;
    let recording = match &config.stream_arn {
        Some(stream) => Some(recording(&state, stream).await?),
        None => None,
    };
    let viewers: Vec<Value> = state
        .storage
        .viewers(arn.as_str())
        .await?
        .into_iter()
        .map(|v| {
            json!({
                "clientId": v.client_id,
                "since": v.since_millis,
                "state": v.state,
            })
        })
        .collect();
    let master = state.app.hub().has_master(arn.as_str()).await;
    let sessions: Vec<Value> = state
        .storage
        .list()
        .await?
        .into_iter()
        .filter(|s| s.channel_arn == arn.as_str())
        .map(|s| {
            json!({
                "sessionId": s.session_id,
                "node": s.node.to_string(),
                "since": s.since_millis,
                "state": s.state,
                "master": if master { "connected" } else { "gone" },
                "viewers": viewers,
            })
        })
        .collect();
    ok(json!({
        "configuration": {
            "status": if config.enabled { "ENABLED" } else { "DISABLED" },
            "streamArn": config.stream_arn.map(|a| a.to_string()),
        },
        "recording": recording,
        "sessions": sessions,
        // Joined viewers, also while no session runs (they wait for one).
        "viewers": viewers,
    }))
}

/// What the fragment store holds for `stream`: count, bytes, recorded duration and span.
async fn recording(state: &AppState, stream: &ResourceArn) -> Result<Value, ApiError> {
    let key = StreamKey::from_arn(stream);
    let store = state.media.store();
    let fragments = store
        .list(&key, Position::Earliest, COUNT_LIMIT)
        .await
        .map_err(|e| ApiError::from(kvs_core::ServiceError::Unavailable(e.to_string())))?;
    Ok(summary(stream, &fragments, fragments.len() >= COUNT_LIMIT))
}

fn summary(stream: &ResourceArn, fragments: &[FragmentMeta], more: bool) -> Value {
    let bytes: u64 = fragments.iter().map(|f| f.len).sum();
    let duration: u64 = fragments.iter().map(|f| f.duration_ms).sum();
    json!({
        "streamArn": stream.to_string(),
        "fragments": fragments.len(),
        "more": more,
        "bytes": bytes,
        "durationMillis": duration,
        "earliest": fragments.first().map(|f| f.server_ms),
        "latest": fragments.last().map(|f| f.server_ms + f.duration_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(number: u64, server_ms: u64, duration_ms: u64, len: u64) -> FragmentMeta {
        FragmentMeta {
            number,
            producer_ms: server_ms,
            server_ms,
            duration_ms,
            cluster_offset: 0,
            len,
        }
    }

    #[test]
    fn a_summary_adds_durations_and_bytes_and_spans_first_to_last() {
        let arn = ResourceArn::parse(
            "StreamARN",
            "arn:aws:kinesisvideo:us-west-2:111122223333:stream/cam/1700000000000",
        )
        .expect("arn");
        let v = summary(
            &arn,
            &[meta(1, 10_000, 2_000, 300), meta(2, 12_000, 2_500, 400)],
            false,
        );
        assert_eq!(v["fragments"], 2);
        assert_eq!(v["bytes"], 700);
        assert_eq!(v["durationMillis"], 4_500);
        assert_eq!(v["earliest"], 10_000);
        assert_eq!(v["latest"], 14_500);
        let empty = summary(&arn, &[], false);
        assert_eq!(empty["fragments"], 0);
        assert_eq!(empty["earliest"], Value::Null);
    }
}
