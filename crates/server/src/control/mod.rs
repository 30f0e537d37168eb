//! The kinesisvideo control plane (docs/protocol.md §2): which path is which operation, and the
//! handlers that turn wire DTOs into validated core calls and back.

mod decode;
pub mod dto;
mod handlers;
mod stream_decode;
pub mod stream_dto;
mod stream_handlers;
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
    // Streams and the channels' media-storage configuration (issue 15).
    CreateStream,
    DescribeStream,
    ListStreams,
    UpdateStream,
    DeleteStream,
    UpdateDataRetention,
    TagStream,
    UntagStream,
    ListTagsForStream,
    GetDataEndpoint,
    UpdateMediaStorageConfiguration,
    DescribeMediaStorageConfiguration,
    DescribeMappedResourceConfiguration,
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
            Self::CreateStream => "CreateStream",
            Self::DescribeStream => "DescribeStream",
            Self::ListStreams => "ListStreams",
            Self::UpdateStream => "UpdateStream",
            Self::DeleteStream => "DeleteStream",
            Self::UpdateDataRetention => "UpdateDataRetention",
            Self::TagStream => "TagStream",
            Self::UntagStream => "UntagStream",
            Self::ListTagsForStream => "ListTagsForStream",
            Self::GetDataEndpoint => "GetDataEndpoint",
            Self::UpdateMediaStorageConfiguration => "UpdateMediaStorageConfiguration",
            Self::DescribeMediaStorageConfiguration => "DescribeMediaStorageConfiguration",
            Self::DescribeMappedResourceConfiguration => "DescribeMappedResourceConfiguration",
        }
    }

    /// Every operation, in the order of the enum.
    pub const ALL: [Self; 22] = [
        Self::CreateSignalingChannel,
        Self::DescribeSignalingChannel,
        Self::ListSignalingChannels,
        Self::UpdateSignalingChannel,
        Self::DeleteSignalingChannel,
        Self::GetSignalingChannelEndpoint,
        Self::TagResource,
        Self::UntagResource,
        Self::ListTagsForResource,
        Self::CreateStream,
        Self::DescribeStream,
        Self::ListStreams,
        Self::UpdateStream,
        Self::DeleteStream,
        Self::UpdateDataRetention,
        Self::TagStream,
        Self::UntagStream,
        Self::ListTagsForStream,
        Self::GetDataEndpoint,
        Self::UpdateMediaStorageConfiguration,
        Self::DescribeMediaStorageConfiguration,
        Self::DescribeMappedResourceConfiguration,
    ];

    /// The operation called `name` (the console's calls name operations, not paths).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
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
            "/createStream" => Self::CreateStream,
            "/describeStream" => Self::DescribeStream,
            "/listStreams" => Self::ListStreams,
            "/updateStream" => Self::UpdateStream,
            "/deleteStream" => Self::DeleteStream,
            "/updateDataRetention" => Self::UpdateDataRetention,
            "/tagStream" => Self::TagStream,
            "/untagStream" => Self::UntagStream,
            "/listTagsForStream" => Self::ListTagsForStream,
            "/getDataEndpoint" => Self::GetDataEndpoint,
            "/updateMediaStorageConfiguration" => Self::UpdateMediaStorageConfiguration,
            "/describeMediaStorageConfiguration" => Self::DescribeMediaStorageConfiguration,
            "/describeMappedResourceConfiguration" => Self::DescribeMappedResourceConfiguration,
            _ => return None,
        })
    }

    /// The restJson1 path of the operation (the model's `requestUri`).
    pub fn path(self) -> String {
        let name = self.name();
        match self {
            // The three channel tag operations keep their capital (docs/protocol.md §2).
            Self::TagResource | Self::UntagResource | Self::ListTagsForResource => {
                format!("/{name}")
            }
            _ => {
                let mut chars = name.chars();
                let first = chars.next().map(|c| c.to_ascii_lowercase());
                format!(
                    "/{}{}",
                    first.map(String::from).unwrap_or_default(),
                    chars.as_str()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn names_and_paths_cover_every_operation() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
            assert_eq!(Operation::from_path(&op.path()), Some(op), "{}", op.path());
        }
        assert_eq!(Operation::CreateStream.path(), "/createStream");
        assert_eq!(Operation::TagResource.path(), "/TagResource");
        assert_eq!(Operation::from_path("/CreateStream"), None);
    }
}
