//! GetIceServerConfig and SendAlexaOfferToMaster.

use kvs_core::quota::QuotaOp;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kvs_core::app::Purpose;
use kvs_core::ids::ResourceArn;
use kvs_core::relay::message::{is_valid_id, is_valid_payload};
use kvs_core::{Constraint, Violation};

use super::dto::*;
use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::aws::json::{parse_body, required, to_body};
use crate::state::AppState;

fn arn(value: Option<String>) -> Result<ResourceArn, ApiError> {
    let value = required(value, "ChannelARN")?;
    Ok(ResourceArn::parse("ChannelARN", &value)?)
}

fn client_id(member: &str, value: &str) -> Result<(), ApiError> {
    if !is_valid_id(value) {
        let pattern = Constraint::Pattern("[a-zA-Z0-9_.-]+ (1..256)");
        return Err(Violation::new(member, pattern).into());
    }
    Ok(())
}

/// A GetIceServerConfig request, validated (docs/protocol.md §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServerConfigRequest {
    pub arn: ResourceArn,
    pub client_id: Option<String>,
}

/// Parses and validates a GetIceServerConfig body; no service call. Any bytes give a request or
/// InvalidArgumentException, never a panic (docs/reliability.md, "Fuzzing").
pub fn decode_get_ice_server_config(body: &[u8]) -> Result<IceServerConfigRequest, ApiError> {
    let req: GetIceServerConfigRequest = parse_body(body)?;
    let arn = arn(req.channel_arn)?;
    if let Some(c) = &req.client_id {
        client_id("clientId", c)?;
    }
    if let Some(s) = &req.service {
        if s != "TURN" {
            let got = s.clone();
            let allowed = &["TURN"];
            return Err(Violation::new("service", Constraint::Enum { allowed, got }).into());
        }
    }
    if let Some(u) = &req.username {
        client_id("username", u)?;
    }
    Ok(IceServerConfigRequest {
        arn,
        client_id: req.client_id,
    })
}

/// A SendAlexaOfferToMaster request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlexaOfferRequest {
    pub arn: ResourceArn,
    pub sender: String,
    pub payload: String,
}

/// Parses and validates a SendAlexaOfferToMaster body; no service call. Any bytes give a request
/// or InvalidArgumentException, never a panic.
pub fn decode_send_alexa_offer_to_master(body: &[u8]) -> Result<AlexaOfferRequest, ApiError> {
    let req: SendAlexaOfferToMasterRequest = parse_body(body)?;
    let arn = arn(req.channel_arn)?;
    let sender = required(req.sender_client_id, "SenderClientId")?;
    client_id("senderClientId", &sender)?;
    let payload = required(req.message_payload, "MessagePayload")?;
    if !is_valid_payload(&payload) {
        return Err(ApiError::invalid(
            "MessagePayload must be base64 of 1..10000 characters.",
        ));
    }
    Ok(AlexaOfferRequest {
        arn,
        sender,
        payload,
    })
}

/// TURN credentials for the channel (docs/protocol.md §5.1): at least one server, 1..4 URIs each, a
/// TTL above the C SDK's 30 s grace.
pub async fn get_ice_server_config(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    host: &str,
) -> Result<String, ApiError> {
    let IceServerConfigRequest { arn, client_id } = decode_get_ice_server_config(body)?;
    state
        .app
        .throttle(&caller.ns, QuotaOp::GetIceServerConfig, Some(arn.as_str()))
        .await?;
    state
        .app
        .usable_channel(&caller.ns, &arn, Purpose::DataPlane)
        .await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let uris = state.ice_uris(host);
    let (username, password) = state.ice.issue(now, arn.as_str(), client_id.as_deref());
    let servers = uris
        .into_iter()
        .map(|uris| IceServer {
            uris,
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
/// master's SDP_ANSWER to that client (the rules are the application layer's). If no master is
/// connected the offer is held for the channel's MessageTtlSeconds like any other message; if
/// no answer arrives within `--alexa-answer-timeout`, the call fails with
/// ResourceNotFoundException (no master answered).
pub async fn send_alexa_offer_to_master(
    state: Arc<AppState>,
    caller: Caller,
    body: bytes::Bytes,
) -> Result<String, ApiError> {
    let AlexaOfferRequest {
        arn,
        sender,
        payload,
    } = decode_send_alexa_offer_to_master(&body)?;
    state
        .app
        .throttle(
            &caller.ns,
            QuotaOp::SendAlexaOfferToMaster,
            Some(arn.as_str()),
        )
        .await?;
    let answer = state
        .app
        .send_alexa_offer(
            &caller.ns,
            &arn,
            sender,
            payload,
            state.alexa_answer_timeout,
        )
        .await?;
    to_body(&SendAlexaOfferToMasterResponse { answer })
}
