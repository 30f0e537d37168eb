//! JoinStorageSession and JoinStorageSessionAsViewer (kinesis-video-webrtc-storage, on the
//! WEBRTC endpoint; docs/webrtc-ingestion.md): decoded and validated as the model says
//! (`channelArn` `^arn:(aws[a-zA-Z-]*):kinesisvideo:...`, `clientId` 1..256 `[a-zA-Z0-9_.-]+`),
//! then checked against the channel and its media-storage configuration.

use std::sync::Arc;

use kvs_core::app::Purpose;
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::relay::message::is_valid_id;
use kvs_core::streams::service::StreamRef;
use kvs_core::{Constraint, Violation};
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

/// JoinStorageSessionAsViewer: validated and checked like JoinStorageSession, then refused
/// honestly: connecting a viewer through the storage peer (forwarding the master's media to
/// it) is not implemented (docs/webrtc-ingestion.md "What differs from AWS").
pub async fn join_storage_session_as_viewer(
    state: Arc<AppState>,
    caller: Caller,
    body: bytes::Bytes,
) -> Result<(), ApiError> {
    let req = decode(&body, true)?;
    bound_stream(&state, &caller.ns, &req.channel).await?;
    Err(ApiError::invalid(
        "JoinStorageSessionAsViewer is not supported by this server: a viewer cannot be \
         connected through the storage session; connect it to the master with ConnectAsViewer.",
    ))
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
