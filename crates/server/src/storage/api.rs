//! JoinStorageSession and JoinStorageSessionAsViewer (kinesis-video-webrtc-storage, on the
//! WEBRTC endpoint; docs/webrtc-ingestion.md): decoded and validated as the model says
//! (`channelArn` `^arn:(aws[a-zA-Z-]*):kinesisvideo:...`, `clientId` 1..256 `[a-zA-Z0-9_.-]+`),
//! then checked against the channel and its media-storage configuration.

use std::sync::Arc;

use kvs_core::app::Purpose;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::relay::message::is_valid_id;
use kvs_core::relay::Role;
use kvs_core::streams::service::StreamRef;
use kvs_core::{Constraint, ServiceError, Violation};
use serde::Deserialize;

use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::aws::json::{parse_body, required};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinInput {
    channel_arn: Option<String>,
    client_id: Option<String>,
}

/// A join request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub channel: ResourceArn,
    /// JoinStorageSessionAsViewer only.
    pub client_id: Option<String>,
}

const ARN_PATTERN: &str =
    "^arn:(aws[a-zA-Z-]*):kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$";

fn channel_arn(value: Option<String>) -> Result<ResourceArn, ApiError> {
    let value = required(value, "channelArn")?;
    let arn = ResourceArn::parse("channelArn", &value)?;
    let partition_ok = arn
        .partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_alphabetic() || c == '-'));
    if !partition_ok {
        return Err(Violation::new("channelArn", Constraint::Pattern(ARN_PATTERN)).into());
    }
    Ok(arn)
}

/// Parses a JoinStorageSession (`as_viewer` false) or JoinStorageSessionAsViewer body; no
/// service call. Any bytes give a request or InvalidArgumentException, never a panic.
pub fn decode(body: &[u8], as_viewer: bool) -> Result<JoinRequest, ApiError> {
    let input: JoinInput = parse_body(body)?;
    let channel = channel_arn(input.channel_arn)?;
    let client_id = if as_viewer {
        let id = required(input.client_id, "clientId")?;
        if !is_valid_id(&id) {
            let pattern = Constraint::Pattern("^[a-zA-Z0-9_.-]+$ (1..256)");
            return Err(Violation::new("clientId", pattern).into());
        }
        Some(id)
    } else {
        None
    };
    Ok(JoinRequest { channel, client_id })
}

/// The stream the channel records into: 404 without the channel, InvalidArgumentException
/// when media storage is not ENABLED or its stream is gone or keeps no data.
async fn bound_stream(
    state: &AppState,
    ns: &Namespace,
    channel: &ResourceArn,
) -> Result<ResourceArn, ApiError> {
    state
        .app
        .usable_channel(ns, channel, Purpose::DataPlane)
        .await?;
    let storage = state.app.streams().media_storage(ns, channel).await?;
    let stream = match (storage.enabled, storage.stream_arn) {
        (true, Some(s)) => s,
        _ => {
            return Err(ApiError::invalid(
                "The signaling channel is not configured for media storage \
                 (UpdateMediaStorageConfiguration with Status ENABLED).",
            ))
        }
    };
    let view = state
        .app
        .streams()
        .describe(ns, &StreamRef::Arn(stream.clone()))
        .await
        .map_err(|_| {
            ApiError::invalid("The stream the signaling channel stores into no longer exists.")
        })?;
    if view.stream.data_retention_hours == 0 {
        return Err(ApiError::invalid(
            "The stream the signaling channel stores into has no data retention.",
        ));
    }
    Ok(stream)
}

/// JoinStorageSession: the storage peer joins the channel and sends the master its offer
/// (after this call answers 200 with an empty body, as on AWS).
pub async fn join_storage_session(
    state: Arc<AppState>,
    caller: Caller,
    body: bytes::Bytes,
) -> Result<(), ApiError> {
    let req = decode(&body, false)?;
    let stream = bound_stream(&state, &caller.ns, &req.channel).await?;
    state
        .storage
        .start(
            &state.app,
            Arc::clone(&state.recording),
            &caller.ns,
            &req.channel,
            &stream,
        )
        .await?;
    Ok(())
}

/// JoinStorageSessionAsViewer: validated and checked like JoinStorageSession; the viewer must
/// be connected to the channel's signaling WebSocket as a VIEWER with that ClientId (404
/// otherwise), and at most [`super::MAX_SESSION_VIEWERS`] are joined at once
/// (ClientLimitExceededException). Then 200 with an empty body; the storage peer offers to
/// the viewer over its WebSocket, as the master would (docs/webrtc-ingestion.md).
pub async fn join_storage_session_as_viewer(
    state: Arc<AppState>,
    caller: Caller,
    body: bytes::Bytes,
) -> Result<(), ApiError> {
    let req = decode(&body, true)?;
    bound_stream(&state, &caller.ns, &req.channel).await?;
    let client_id = req.client_id.unwrap_or_default();
    let viewer = Role::Viewer(client_id.clone());
    let connected = state
        .app
        .hub()
        .is_connected(req.channel.as_str(), &viewer)
        .await
        .map_err(|e| ServiceError::new(e.error_type, e.description))?;
    if !connected {
        return Err(ApiError::from(ServiceError::not_found(
            "No viewer with this ClientId is connected to the signaling channel; the viewer \
             connects (ConnectAsViewer) before it joins the storage session.",
        )));
    }
    state
        .storage
        .join_viewer(req.channel.as_str(), &client_id)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/c/1234567890123";

    fn message(e: ApiError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn join_needs_a_channel_arn_of_the_model_pattern() {
        let ok = decode(format!(r#"{{"channelArn":"{ARN}"}}"#).as_bytes(), false).expect("ok");
        assert_eq!(ok.channel.as_str(), ARN);
        assert_eq!(ok.client_id, None);
        assert!(message(decode(b"{}", false).unwrap_err()).contains("channelArn"));
        let gov = ARN.replace("arn:aws:", "arn:aws-us-gov:");
        assert!(decode(format!(r#"{{"channelArn":"{gov}"}}"#).as_bytes(), false).is_ok());
        let other = ARN.replace("arn:aws:", "arn:azure:");
        let e = decode(format!(r#"{{"channelArn":"{other}"}}"#).as_bytes(), false).unwrap_err();
        assert!(message(e).contains("channelArn"));
        // Upper-case member names are not the model's.
        assert!(decode(format!(r#"{{"ChannelARN":"{ARN}"}}"#).as_bytes(), false).is_err());
    }

    #[test]
    fn as_viewer_needs_a_client_id() {
        let body = format!(r#"{{"channelArn":"{ARN}","clientId":"viewer-1.a_b"}}"#);
        let ok = decode(body.as_bytes(), true).expect("ok");
        assert_eq!(ok.client_id.as_deref(), Some("viewer-1.a_b"));
        let missing = format!(r#"{{"channelArn":"{ARN}"}}"#);
        assert!(message(decode(missing.as_bytes(), true).unwrap_err()).contains("clientId"));
        for bad in ["", "a b", &"x".repeat(257)] {
            let body = format!(r#"{{"channelArn":"{ARN}","clientId":"{bad}"}}"#);
            assert!(decode(body.as_bytes(), true).is_err(), "{bad:?}");
        }
        let max = format!(
            r#"{{"channelArn":"{ARN}","clientId":"{}"}}"#,
            "x".repeat(256)
        );
        assert!(decode(max.as_bytes(), true).is_ok());
    }
}
