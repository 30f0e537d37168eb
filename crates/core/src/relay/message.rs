//! WebSocket message formats (docs/protocol.md §6.2, §6.3).
//!
//! Clients differ: the JS SDK sends camelCase keys, the C SDK PascalCase (`RecipientClientId`,
//! `MessagePayload`, `CorrelationId`) plus an `IceServerList` we ignore. Keys are therefore
//! matched case-insensitively and unknown keys are ignored. The payload is validated (base64,
//! 1..10000 characters) but forwarded byte for byte.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ErrorCode;

/// Largest `messagePayload` accepted (docs/protocol.md §8.2: 10K).
pub const MAX_PAYLOAD_CHARS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    SdpOffer,
    SdpAnswer,
    IceCandidate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SdpOffer => "SDP_OFFER",
            Self::SdpAnswer => "SDP_ANSWER",
            Self::IceCandidate => "ICE_CANDIDATE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SDP_OFFER" => Some(Self::SdpOffer),
            "SDP_ANSWER" => Some(Self::SdpAnswer),
            "ICE_CANDIDATE" => Some(Self::IceCandidate),
            _ => None,
        }
    }
}

/// A validated message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    pub action: Action,
    /// Empty strings are normalised to `None` (the C SDK always sends the key).
    pub recipient_client_id: Option<String>,
    pub message_payload: String,
    pub correlation_id: Option<String>,
}

/// Why a client message was refused; becomes a STATUS_RESPONSE when the client gave a
/// correlationId (docs/protocol.md §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalError {
    pub correlation_id: Option<String>,
    pub error_type: ErrorCode,
    pub description: String,
}

impl SignalError {
    pub fn invalid(correlation_id: Option<String>, description: impl Into<String>) -> Self {
        Self {
            correlation_id,
            error_type: ErrorCode::InvalidArgument,
            description: description.into(),
        }
    }

    pub fn limit(correlation_id: Option<String>, description: impl Into<String>) -> Self {
        Self {
            correlation_id,
            error_type: ErrorCode::ClientLimitExceeded,
            description: description.into(),
        }
    }

    pub fn not_found(correlation_id: Option<String>, description: impl Into<String>) -> Self {
        Self {
            correlation_id,
            error_type: ErrorCode::ResourceNotFound,
            description: description.into(),
        }
    }

    /// A failure of ours (a backend); the client learns nothing more.
    /// A backend the relay needs (Redis) cannot be reached; the caller may retry.
    pub fn unavailable(correlation_id: Option<String>) -> Self {
        Self {
            correlation_id,
            error_type: ErrorCode::ServiceUnavailable,
            description: "The service is temporarily unavailable; retry the request.".into(),
        }
    }

    pub fn internal(correlation_id: Option<String>) -> Self {
        Self {
            correlation_id,
            error_type: ErrorCode::InternalFailure,
            description: "The request processing has failed because of an internal error.".into(),
        }
    }

    /// The STATUS_RESPONSE for this error, if the client asked for one.
    pub fn status_response(&self) -> Option<ServerMessage> {
        let correlation_id = self.correlation_id.clone()?;
        Some(ServerMessage {
            sender_client_id: None,
            message_type: "STATUS_RESPONSE",
            message_payload: None,
            status_response: Some(StatusResponse {
                correlation_id,
                error_type: self.error_type.as_str().to_owned(),
                status_code: self.error_type.http_status().to_string(),
                description: truncate(&self.description, 1000),
                success: false,
            }),
        })
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `ClientId` / `correlationId` shape: 1..256 of `[a-zA-Z0-9_.-]`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// True when `s` is base64 of a non-empty byte string within the size limit.
pub fn is_valid_payload(s: &str) -> bool {
    (1..=MAX_PAYLOAD_CHARS).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        && base64_engine().decode(s).is_ok_and(|d| !d.is_empty())
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn string_field(
    obj: &Map<String, Value>,
    name: &str,
    cid: &Option<String>,
) -> Result<Option<String>, SignalError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SignalError::invalid(
            cid.clone(),
            format!("{name} must be a string"),
        )),
    }
}

impl ClientMessage {
    /// Parses and validates one text frame.
    pub fn parse(text: &str) -> Result<Self, SignalError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            SignalError::invalid(None, format!("The message is not valid JSON: {e}"))
        })?;
        let Value::Object(obj) = value else {
            return Err(SignalError::invalid(
                None,
                "The message must be a JSON object.",
            ));
        };
        // The correlation id is read first so every later error can be reported with it; an
        // invalid one cannot be echoed back.
        let correlation_id = match field(&obj, "correlationId") {
            Some(Value::String(s)) if is_valid_id(s) => Some(s.clone()),
            Some(Value::String(s)) if s.is_empty() => None,
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(SignalError::invalid(
                    None,
                    "correlationId must be 1..256 characters of [a-zA-Z0-9_.-]",
                ))
            }
        };
        let cid = &correlation_id;
        let action = string_field(&obj, "action", cid)?
            .ok_or_else(|| SignalError::invalid(cid.clone(), "action is required"))?;
        let action = Action::parse(&action).ok_or_else(|| {
            SignalError::invalid(
                cid.clone(),
                format!(
                    "Unknown action {action:?}; expected SDP_OFFER, SDP_ANSWER or ICE_CANDIDATE"
                ),
            )
        })?;
        let recipient_client_id = string_field(&obj, "recipientClientId", cid)?;
        if let Some(r) = &recipient_client_id {
            if !is_valid_id(r) {
                return Err(SignalError::invalid(
                    cid.clone(),
                    "recipientClientId must be 1..256 characters of [a-zA-Z0-9_.-]",
                ));
            }
        }
        let message_payload = string_field(&obj, "messagePayload", cid)?
            .ok_or_else(|| SignalError::invalid(cid.clone(), "messagePayload is required"))?;
        if message_payload.len() > MAX_PAYLOAD_CHARS {
            return Err(SignalError::invalid(
                cid.clone(),
                format!(
                    "messagePayload is {} characters; the limit is {MAX_PAYLOAD_CHARS}",
                    message_payload.len()
                ),
            ));
        }
        if !is_valid_payload(&message_payload) {
            return Err(SignalError::invalid(
                cid.clone(),
                "messagePayload must be non-empty base64",
            ));
        }
        Ok(Self {
            action,
            recipient_client_id,
            message_payload,
            correlation_id,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusResponse {
    #[serde(rename = "correlationId")]
    pub correlation_id: String,
    #[serde(rename = "errorType")]
    pub error_type: String,
    #[serde(rename = "statusCode")]
    pub status_code: String,
    pub description: String,
    /// Not in the docs, but the JS SDK's type has it and its master example checks it
    /// (docs/protocol.md §13.4).
    pub success: bool,
}

/// A frame sent to a client (docs/protocol.md §6.3). Absent members are omitted, never null: the C
/// SDK matches keys at any depth and base64-decodes any `messagePayload` it sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerMessage {
    #[serde(rename = "senderClientId", skip_serializing_if = "Option::is_none")]
    pub sender_client_id: Option<String>,
    #[serde(rename = "messageType")]
    pub message_type: &'static str,
    #[serde(rename = "messagePayload", skip_serializing_if = "Option::is_none")]
    pub message_payload: Option<String>,
    #[serde(rename = "statusResponse", skip_serializing_if = "Option::is_none")]
    pub status_response: Option<StatusResponse>,
}

impl ServerMessage {
    pub fn relay(action: Action, sender_client_id: Option<String>, payload: String) -> Self {
        Self {
            sender_client_id,
            message_type: action.as_str(),
            message_payload: Some(payload),
            status_response: None,
        }
    }

    pub fn go_away() -> Self {
        Self::bare("GO_AWAY")
    }

    pub fn reconnect_ice_server() -> Self {
        Self::bare("RECONNECT_ICE_SERVER")
    }

    fn bare(message_type: &'static str) -> Self {
        Self {
            sender_client_id: None,
            message_type,
            message_payload: None,
            status_response: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const P: &str = "eyJ0eXBlIjoib2ZmZXIiLCJzZHAiOiJ2PTAuLi4ifQ==";

    #[test]
    fn parses_js_camel_case() {
        let m = ClientMessage::parse(&format!(
            r#"{{"action":"SDP_OFFER","messagePayload":"{P}","correlationId":"c-1"}}"#
        ))
        .unwrap();
        assert_eq!(m.action, Action::SdpOffer);
        assert_eq!(m.message_payload, P);
        assert_eq!(m.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(m.recipient_client_id, None);
    }

    #[test]
    fn parses_c_sdk_pascal_case_with_extras() {
        let text = format!(
            "{{\n\t\"action\": \"SDP_ANSWER\",\n\t\"RecipientClientId\": \"viewer-1\",\n\t\"MessagePayload\": \"{P}\",\n\t\"CorrelationId\": \"x\",\n\t\"IceServerList\": [{{\"Uris\": [\"turn:x\"]}}]\n}}"
        );
        let m = ClientMessage::parse(&text).unwrap();
        assert_eq!(m.action, Action::SdpAnswer);
        assert_eq!(m.recipient_client_id.as_deref(), Some("viewer-1"));
        assert_eq!(m.correlation_id.as_deref(), Some("x"));
    }

    #[test]
    fn empty_recipient_is_absent() {
        let m = ClientMessage::parse(&format!(
            r#"{{"action":"ICE_CANDIDATE","RecipientClientId":"","MessagePayload":"{P}"}}"#
        ))
        .unwrap();
        assert_eq!(m.recipient_client_id, None);
    }

    #[test]
    fn invalid_messages_keep_the_correlation_id() {
        let cases = [
            r#"{"action":"HELLO","messagePayload":"aGk=","correlationId":"c"}"#.to_string(),
            r#"{"action":"SDP_OFFER","messagePayload":"not base64!","correlationId":"c"}"#.into(),
            r#"{"action":"SDP_OFFER","correlationId":"c"}"#.into(),
            r#"{"messagePayload":"aGk=","correlationId":"c"}"#.into(),
            format!(
                r#"{{"action":"SDP_OFFER","messagePayload":"{}","correlationId":"c"}}"#,
                "A".repeat(10_004)
            ),
            r#"{"action":"SDP_OFFER","messagePayload":"aGk=","recipientClientId":"a b","correlationId":"c"}"#.into(),
        ];
        for c in cases {
            let e = ClientMessage::parse(&c).unwrap_err();
            assert_eq!(e.correlation_id.as_deref(), Some("c"), "{c}");
            assert_eq!(e.error_type, "InvalidArgumentException");
            let s = e.status_response().unwrap().to_json();
            assert!(s.contains(r#""statusCode":"400""#), "{s}");
        }
        let e = ClientMessage::parse("{not json").unwrap_err();
        assert!(e.status_response().is_none());
    }

    #[test]
    fn payload_limits() {
        assert!(is_valid_payload("aGk="));
        assert!(is_valid_payload("aGk"));
        assert!(!is_valid_payload(""));
        assert!(!is_valid_payload("a"));
        let max = "A".repeat(10_000);
        assert!(is_valid_payload(&max));
    }

    #[test]
    fn server_messages_omit_absent_members() {
        assert_eq!(
            ServerMessage::go_away().to_json(),
            r#"{"messageType":"GO_AWAY"}"#
        );
        let m = ServerMessage::relay(Action::SdpOffer, Some("v1".into()), P.into()).to_json();
        assert_eq!(
            m,
            format!(
                r#"{{"senderClientId":"v1","messageType":"SDP_OFFER","messagePayload":"{P}"}}"#
            )
        );
    }
}
