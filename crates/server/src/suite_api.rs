//! The test-suite endpoints (docs/testing-with-kvs-signaling.md), offered in open mode only:
//!
//! - `POST /_kvs/reset` empties the server: every channel of every account and region, their
//!   held messages and presence; their signaling connections get GO_AWAY and are closed. It
//!   answers `{"channels":N,"heldMessages":N,"streams":N}`, what it removed.
//! - `GET /_kvs/state` answers `{"channels":N,"connections":{"masters":N,"viewers":N},
//!   "heldMessages":N}`: channels of every account and region, this node's connections, and
//!   the messages held on those channels.
//!
//! - `GET /_kvs/storage-sessions` answers `{"sessions":[{"channelArn","sessionId","node",
//!   "since","state","viewers":[{"clientId","seq","state"}]}]}`: every running storage session
//!   of the cluster (issue 15) with the viewers joined to its channel, `since` in ms since the
//!   epoch on the registry's clock; the console shows the same list.
//!
//! With `--credentials` all three answer 403 AccessDeniedException: a deployment with real users
//! must not be emptied, or inventoried across accounts, by one HTTP call.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::aws::error::ApiError;
use crate::state::SharedState;

fn refused_with_credentials(state: &SharedState) -> Option<Response> {
    (!state.auth.is_open()).then(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "The /_kvs/ test-suite endpoints are available only in open mode (without \
             --credentials).",
        )
        .into_response()
    })
}

fn json_response(body: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /_kvs/reset`.
pub async fn reset(State(state): State<SharedState>) -> Response {
    if let Some(refusal) = refused_with_credentials(&state) {
        return refusal;
    }
    match state.app.reset().await {
        Ok(r) => {
            tracing::info!(
                channels = r.channels,
                held_messages = r.held_messages,
                "reset: the server was emptied (POST /_kvs/reset)"
            );
            json_response(json!({
                "channels": r.channels,
                "heldMessages": r.held_messages,
                "streams": r.streams,
            }))
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /_kvs/state`.
pub async fn state(State(state): State<SharedState>) -> Response {
    if let Some(refusal) = refused_with_credentials(&state) {
        return refusal;
    }
    match state.app.state().await {
        Ok(s) => json_response(json!({
            "channels": s.channels,
            "connections": {"masters": s.masters, "viewers": s.viewers},
            "heldMessages": s.held_messages,
        })),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /_kvs/storage-sessions`.
pub async fn storage_sessions(State(state): State<SharedState>) -> Response {
    if let Some(refusal) = refused_with_credentials(&state) {
        return refusal;
    }
    let list = match state.storage.list().await {
        Ok(list) => list,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut sessions = Vec::with_capacity(list.len());
    for s in list {
        let viewers = match state.storage.viewers(&s.channel_arn).await {
            Ok(v) => v,
            Err(e) => return ApiError::from(e).into_response(),
        };
        sessions.push(json!({
            "channelArn": s.channel_arn,
            "sessionId": s.session_id,
            "node": s.node.to_string(),
            "since": s.since_millis,
            "state": s.state,
            "viewers": viewers
                .iter()
                .map(|v| json!({"clientId": v.client_id, "seq": v.seq, "state": v.state}))
                .collect::<Vec<_>>(),
        }));
    }
    json_response(json!({ "sessions": sessions }))
}
