//! The kinesisvideo control plane (docs/protocol.md §2): which path is which operation, and the
//! handlers that turn wire DTOs into validated core calls and back.

mod decode;
pub mod dto;
mod handlers;
mod validate;

pub use decode::{decode, Request};
pub use handlers::handle;

/// The control-plane operations this server implements, by their restJson1 path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateSignalingChannel,
    DescribeSignalingChannel,
    ListSignalingChannels,
    UpdateSignalingChannel,
    DeleteSignalingChannel,
    GetSignalingChannelEndpoint,
    TagResource,
    UntagResource,
    ListTagsForResource,
}

impl Operation {
    /// The AWS operation name.
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateSignalingChannel => "CreateSignalingChannel",
            Self::DescribeSignalingChannel => "DescribeSignalingChannel",
            Self::ListSignalingChannels => "ListSignalingChannels",
            Self::UpdateSignalingChannel => "UpdateSignalingChannel",
            Self::DeleteSignalingChannel => "DeleteSignalingChannel",
            Self::GetSignalingChannelEndpoint => "GetSignalingChannelEndpoint",
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::ListTagsForResource => "ListTagsForResource",
        }
    }

    /// The operation called `name` (the console's calls name operations, not paths).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::CreateSignalingChannel,
            Self::DescribeSignalingChannel,
            Self::ListSignalingChannels,
            Self::UpdateSignalingChannel,
            Self::DeleteSignalingChannel,
            Self::GetSignalingChannelEndpoint,
            Self::TagResource,
            Self::UntagResource,
            Self::ListTagsForResource,
        ]
        .into_iter()
        .find(|op| op.name() == name)
    }

    /// Note the three tag operations are capitalised (docs/protocol.md §2).
    pub fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/createSignalingChannel" => Self::CreateSignalingChannel,
            "/describeSignalingChannel" => Self::DescribeSignalingChannel,
            "/listSignalingChannels" => Self::ListSignalingChannels,
            "/updateSignalingChannel" => Self::UpdateSignalingChannel,
            "/deleteSignalingChannel" => Self::DeleteSignalingChannel,
            "/getSignalingChannelEndpoint" => Self::GetSignalingChannelEndpoint,
            "/TagResource" => Self::TagResource,
            "/UntagResource" => Self::UntagResource,
            "/ListTagsForResource" => Self::ListTagsForResource,
            _ => return None,
        })
    }
}
