//! The kinesis-video-signaling HTTPS data plane (docs/protocol.md §5.1): GetIceServerConfig and
//! SendAlexaOfferToMaster, on the endpoint GetSignalingChannelEndpoint returns for `HTTPS`.

pub mod dto;
mod handlers;
pub mod ice;

pub use handlers::{
    decode_get_ice_server_config, decode_send_alexa_offer_to_master, get_ice_server_config,
    send_alexa_offer_to_master, AlexaOfferRequest, IceServerConfigRequest,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    GetIceServerConfig,
    SendAlexaOfferToMaster,
    /// kinesis-video-webrtc-storage, on the WEBRTC endpoint (crate::storage).
    JoinStorageSession,
    JoinStorageSessionAsViewer,
}

impl Operation {
    /// The AWS operation name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetIceServerConfig => "GetIceServerConfig",
            Self::SendAlexaOfferToMaster => "SendAlexaOfferToMaster",
            Self::JoinStorageSession => "JoinStorageSession",
            Self::JoinStorageSessionAsViewer => "JoinStorageSessionAsViewer",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        match path {
            "/v1/get-ice-server-config" => Some(Self::GetIceServerConfig),
            "/v1/send-alexa-offer-to-master" => Some(Self::SendAlexaOfferToMaster),
            "/joinStorageSession" => Some(Self::JoinStorageSession),
            "/joinStorageSessionAsViewer" => Some(Self::JoinStorageSessionAsViewer),
            _ => None,
        }
    }
}
