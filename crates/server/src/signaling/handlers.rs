//! GetIceServerConfig and SendAlexaOfferToMaster.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use kvs_core::ids::ResourceArn;
use kvs_core::model::ChannelStatus;
use kvs_core::signaling::message::{is_valid_id, is_valid_payload};
use kvs_core::signaling::{Action, Outbound, Role};
use tokio::sync::mpsc;

use super::dto::*;
use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::aws::json::{parse_body, required, to_body};
use crate::state::AppState;
use crate::ws::sink::MpscSink;

fn arn(value: Option<String>) -> Result<ResourceArn, ApiError> {
    let value = required(value, "ChannelARN")?;
    Ok(ResourceArn::parse("ChannelARN", &value)?)
}

fn client_id(member: &str, value: &str) -> Result<(), ApiError> {
    if !is_valid_id(value) {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ (1..256)"
        )));
    }
    Ok(())
}

fn active_channel(state: &AppState, caller: &Caller, arn: &ResourceArn) -> Result<u32, ApiError> {
    let view = state.service.get_by_arn(&caller.ns, arn)?;
    if view.status != ChannelStatus::Active {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "The requested channel is not found or not active.",
        ));
    }
    Ok(view.channel.ttl.seconds())
}

/// TURN credentials for the channel (kvs-spec.md §5.1): at least one server, 1..4 URIs each, a
/// TTL above the C SDK's 30 s grace.
pub fn get_ice_server_config(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    host: &str,
) -> Result<String, ApiError> {
    let req: GetIceServerConfigRequest = parse_body(body)?;
    let arn = arn(req.channel_arn)?;
    if let Some(c) = &req.client_id {
        client_id("clientId", c)?;
    }
    if let Some(s) = &req.service {
        if s != "TURN" {
            return Err(ApiError::invalid(format!(
                "1 validation error detected: Value '{s}' at 'service' failed to satisfy \
                 constraint: Member must satisfy enum value set: [TURN]"
            )));
        }
    }
    if let Some(u) = &req.username {
        client_id("username", u)?;
    }
    active_channel(state, caller, &arn)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let uris = state.ice_uris(host);
    let (username, password) = state.ice.issue(now, arn.as_str(), req.client_id.as_deref());
    let servers = uris
        .chunks(4)
        .map(|chunk| IceServer {
            uris: chunk.to_vec(),
            username: username.clone(),
            password: password.clone(),
            ttl: state.ice.ttl_seconds(),
        })
        .take(5)
        .collect();
    to_body(&GetIceServerConfigResponse {
        ice_server_list: servers,
    })
}

/// Delivers the offer to the master as an SDP_OFFER from `SenderClientId` and waits for the
/// master's SDP_ANSWER to that client. If no master is connected the offer is held for the
/// channel's MessageTtlSeconds like any other message; if no answer arrives within
/// `--alexa-answer-timeout`, the call fails with ResourceNotFoundException (no master answered).
pub async fn send_alexa_offer_to_master(
    state: Arc<AppState>,
    caller: Caller,
    body: bytes::Bytes,
) -> Result<String, ApiError> {
    let req: SendAlexaOfferToMasterRequest = parse_body(&body)?;
    let arn = arn(req.channel_arn)?;
    let sender = required(req.sender_client_id, "SenderClientId")?;
    client_id("senderClientId", &sender)?;
    let payload = required(req.message_payload, "MessagePayload")?;
    if !is_valid_payload(&payload) {
        return Err(ApiError::invalid(
            "MessagePayload must be base64 of 1..10000 characters.",
        ));
    }
    let ttl = {
        let (state, caller, arn) = (Arc::clone(&state), caller.clone(), arn.clone());
        tokio::task::spawn_blocking(move || active_channel(&state, &caller, &arn))
            .await
            .map_err(|_| ApiError::internal())??
    };
    // The caller waits as a transient viewer named SenderClientId, so the master's answer is
    // routed to it exactly as to a WebSocket viewer.
    let (tx, mut rx) = mpsc::channel(state.session.outbox_capacity);
    let conn = state
        .hub
        .connect(
            arn.as_str(),
            Role::Viewer(sender.clone()),
            Arc::new(MpscSink(tx)),
        )
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.error_type, e.description))?;
    let routed = state.hub.route(
        arn.as_str(),
        Role::Master,
        Some(sender),
        Action::SdpOffer,
        payload,
        None,
        ttl,
    );
    let answer = async {
        routed.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.error_type, e.description))?;
        while let Some(out) = rx.recv().await {
            let Outbound::Text(text) = out else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if v["messageType"] == "SDP_ANSWER" {
                if let Some(p) = v["messagePayload"].as_str() {
                    return Ok(p.to_owned());
                }
            }
        }
        Err(ApiError::internal())
    };
    let result = tokio::time::timeout(state.alexa_answer_timeout, answer).await;
    state.hub.disconnect(&conn);
    let answer = match result {
        Ok(r) => r?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!(
                    "No master answered within {:?}; the offer stays queued for the channel's \
                     MessageTtlSeconds.",
                    state.alexa_answer_timeout
                ),
            ))
        }
    };
    to_body(&SendAlexaOfferToMasterResponse { answer })
}
