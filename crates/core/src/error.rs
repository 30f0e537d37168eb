//! The service's error enum. Variants carry the AWS exception names (kvs-spec.md §4.1); the wire
//! layer maps each to its HTTP status in one exhaustive `match`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    VersionMismatch(String),
    #[error("{0}")]
    AccountChannelLimitExceeded(String),
    #[error("{0}")]
    TagsPerResourceExceededLimit(String),
    #[error("{0}")]
    ClientLimitExceeded(String),
    #[error("{0}")]
    AccessDenied(String),
    /// A failure of ours (storage, I/O). The source is kept for the log; the client only sees a
    /// generic message.
    #[error("internal failure: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ServiceError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    pub fn channel_not_found() -> Self {
        Self::ResourceNotFound("The requested channel is not found or not active.".into())
    }

    /// The AWS exception name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "InvalidArgumentException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::ResourceInUse(_) => "ResourceInUseException",
            Self::VersionMismatch(_) => "VersionMismatchException",
            Self::AccountChannelLimitExceeded(_) => "AccountChannelLimitExceededException",
            Self::TagsPerResourceExceededLimit(_) => "TagsPerResourceExceededLimitException",
            Self::ClientLimitExceeded(_) => "ClientLimitExceededException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::Internal(_) => "InternalFailure",
        }
    }
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(Box::new(e))
    }
}
