//! Wire types of kinesis-video-signaling (docs/protocol.md §5.1).

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub struct GetIceServerConfigRequest {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
    #[serde(rename = "ClientId")]
    pub client_id: Option<String>,
    #[serde(rename = "Service")]
    pub service: Option<String>,
    #[serde(rename = "Username")]
    pub username: Option<String>,
}

/// `Debug` redacts the password (redact.rs's rule: no secret in `{:?}`).
#[derive(Serialize)]
pub struct IceServer {
    #[serde(rename = "Uris")]
    pub uris: Vec<String>,
    #[serde(rename = "Username")]
    pub username: String,
    #[serde(rename = "Password")]
    pub password: String,
    #[serde(rename = "Ttl")]
    pub ttl: u32,
}

#[derive(Debug, Serialize)]
pub struct GetIceServerConfigResponse {
    #[serde(rename = "IceServerList")]
    pub ice_server_list: Vec<IceServer>,
}

/// `Debug` shows the payload's length only: SDP carries ICE passwords.
#[derive(Deserialize)]
pub struct SendAlexaOfferToMasterRequest {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
    #[serde(rename = "SenderClientId")]
    pub sender_client_id: Option<String>,
    #[serde(rename = "MessagePayload")]
    pub message_payload: Option<String>,
}

/// `Debug` shows the answer's length only.
#[derive(Serialize)]
pub struct SendAlexaOfferToMasterResponse {
    #[serde(rename = "Answer")]
    pub answer: String,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("uris", &self.uris)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl std::fmt::Debug for SendAlexaOfferToMasterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendAlexaOfferToMasterRequest")
            .field("channel_arn", &self.channel_arn)
            .field("sender_client_id", &self.sender_client_id)
            .field(
                "message_payload_len",
                &self.message_payload.as_ref().map(String::len),
            )
            .finish()
    }
}

impl std::fmt::Debug for SendAlexaOfferToMasterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendAlexaOfferToMasterResponse")
            .field("answer_len", &self.answer.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_turn_passwords_and_sdp() {
        let ice = IceServer {
            uris: vec!["turn:h:3478".into()],
            username: "1700000000:djE=".into(),
            password: "turn-password".into(),
            ttl: 300,
        };
        let offer = SendAlexaOfferToMasterRequest {
            channel_arn: Some("arn".into()),
            sender_client_id: Some("alexa".into()),
            message_payload: Some("a=ice-pwd:sdp-secret".into()),
        };
        let answer = SendAlexaOfferToMasterResponse {
            answer: "a=ice-pwd:sdp-secret".into(),
        };
        for shown in [
            format!("{ice:?}"),
            format!("{offer:?}"),
            format!("{answer:?}"),
        ] {
            assert!(!shown.contains("turn-password"), "{shown}");
            assert!(!shown.contains("sdp-secret"), "{shown}");
        }
    }
}
