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

#[derive(Debug, Serialize)]
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

#[derive(Debug, Deserialize)]
pub struct SendAlexaOfferToMasterRequest {
    #[serde(rename = "ChannelARN")]
    pub channel_arn: Option<String>,
    #[serde(rename = "SenderClientId")]
    pub sender_client_id: Option<String>,
    #[serde(rename = "MessagePayload")]
    pub message_payload: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SendAlexaOfferToMasterResponse {
    #[serde(rename = "Answer")]
    pub answer: String,
}
