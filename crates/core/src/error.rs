//! One error vocabulary (docs/design.md §5.1): the AWS error codes as an enum with one status
//! mapping, the service's error type built on it, and validation failures as data
//! ([`Violation`]) turned into AWS's message text in one place ([`Violation::message`]).

use thiserror::Error;

/// The AWS error codes the service answers with (docs/protocol.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    ResourceNotFound,
    ResourceInUse,
    VersionMismatch,
    AccountChannelLimitExceeded,
    AccountStreamLimitExceeded,
    TagsPerResourceExceededLimit,
    /// A stream without data retention cannot store a channel's media.
    NoDataRetention,
    /// A stream tag operation named a resource that is not a stream.
    InvalidResourceFormat,
    ClientLimitExceeded,
    /// GetMedia: too many responses streaming from one stream at once.
    ConnectionLimitExceeded,
    AccessDenied,
    InternalFailure,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The AWS exception name (`__type`, `x-amzn-ErrorType`, STATUS_RESPONSE `errorType`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "InvalidArgumentException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::ResourceInUse => "ResourceInUseException",
            Self::VersionMismatch => "VersionMismatchException",
            Self::AccountChannelLimitExceeded => "AccountChannelLimitExceededException",
            Self::AccountStreamLimitExceeded => "AccountStreamLimitExceededException",
            Self::NoDataRetention => "NoDataRetentionException",
            Self::InvalidResourceFormat => "InvalidResourceFormatException",
            Self::TagsPerResourceExceededLimit => "TagsPerResourceExceededLimitException",
            Self::ClientLimitExceeded => "ClientLimitExceededException",
            Self::ConnectionLimitExceeded => "ConnectionLimitExceededException",
            Self::AccessDenied => "AccessDeniedException",
            Self::InternalFailure => "InternalFailure",
            Self::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status of the error, the one mapping for every plane.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument
            | Self::ResourceInUse
            | Self::VersionMismatch
            | Self::AccountChannelLimitExceeded
            | Self::AccountStreamLimitExceeded
            | Self::NoDataRetention
            | Self::InvalidResourceFormat
            | Self::TagsPerResourceExceededLimit
            | Self::ClientLimitExceeded
            | Self::ConnectionLimitExceeded => 400,
            // 401 in the kinesisvideo model (docs/protocol.md §4.1, §13.1).
            Self::AccessDenied => 401,
            Self::ResourceNotFound => 404,
            Self::InternalFailure => 500,
            Self::ServiceUnavailable => 503,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The constraint of the model that a member failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// A string or list length outside `min..=max`; `got` is the length given.
    Length { min: usize, max: usize, got: usize },
    /// A string not matching the model's pattern.
    Pattern(&'static str),
    /// A number outside `min..=max`; `got` is the value given.
    Range { min: i64, max: i64, got: i64 },
    /// A value outside the enum; `got` is the value given.
    Enum {
        allowed: &'static [&'static str],
        got: String,
    },
    /// A required member missing or null.
    Required,
    /// A member of the wrong JSON type; `detail` says what was expected.
    Type(String),
}

/// One validation failure: which member, which constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub member: String,
    pub constraint: Constraint,
}

impl Violation {
    pub fn new(member: impl Into<String>, constraint: Constraint) -> Self {
        Self {
            member: member.into(),
            constraint,
        }
    }

    /// AWS's message text for the failure (the shape botocore and the AWS CLI show).
    pub fn message(&self) -> String {
        let m = &self.member;
        let head = "1 validation error detected:";
        match &self.constraint {
            Constraint::Length { min, max, got } => format!(
                "{head} Value at '{m}' failed to satisfy constraint: Member must have length \
                 between {min} and {max} (inclusive); got {got}"
            ),
            Constraint::Pattern(p) => format!(
                "{head} Value at '{m}' failed to satisfy constraint: Member must satisfy \
                 regular expression pattern: {p}"
            ),
            Constraint::Range { min, max, got } => format!(
                "{head} Value '{got}' at '{m}' failed to satisfy constraint: Member must have \
                 value between {min} and {max} (inclusive)"
            ),
            Constraint::Enum { allowed, got } => format!(
                "{head} Value '{got}' at '{m}' failed to satisfy constraint: Member must \
                 satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
            Constraint::Required => format!(
                "{head} Value null at '{m}' failed to satisfy constraint: Member must not be null"
            ),
            Constraint::Type(detail) => {
                format!("{head} Value at '{m}' failed to satisfy constraint: {detail}")
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum ServiceError {
    /// A caller error with its code and message.
    #[error("{message}")]
    Client { code: ErrorCode, message: String },
    /// A failure of ours (storage, I/O). The source is kept for the log; the client only sees a
    /// generic message.
    #[error("internal failure: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A backend we depend on is unreachable right now; the client may retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Client {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn violation(v: Violation) -> Self {
        Self::invalid(v.message())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceNotFound, message)
    }

    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceInUse, message)
    }

    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ClientLimitExceeded, message)
    }

    pub fn channel_not_found() -> Self {
        Self::not_found("The requested channel is not found or not active.")
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Client { code, .. } => *code,
            Self::Internal(_) => ErrorCode::InternalFailure,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
        }
    }
}

impl From<Violation> for ServiceError {
    fn from(v: Violation) -> Self {
        Self::violation(v)
    }
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(detail) => Self::Unavailable(detail),
            e => Self::Internal(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_read_like_aws() {
        let cases = [
            (
                Violation::new(
                    "ChannelName",
                    Constraint::Length {
                        min: 1,
                        max: 256,
                        got: 0,
                    },
                ),
                "1 validation error detected: Value at 'ChannelName' failed to satisfy \
                 constraint: Member must have length between 1 and 256 (inclusive); got 0",
            ),
            (
                Violation::new(
                    "maxResults",
                    Constraint::Range {
                        min: 1,
                        max: 10_000,
                        got: 0,
                    },
                ),
                "1 validation error detected: Value '0' at 'maxResults' failed to satisfy \
                 constraint: Member must have value between 1 and 10000 (inclusive)",
            ),
            (
                Violation::new(
                    "service",
                    Constraint::Enum {
                        allowed: &["TURN"],
                        got: "STUN".into(),
                    },
                ),
                "1 validation error detected: Value 'STUN' at 'service' failed to satisfy \
                 constraint: Member must satisfy enum value set: [TURN]",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(v.message(), want);
        }
    }

    #[test]
    fn every_code_has_one_status() {
        assert_eq!(ErrorCode::ResourceNotFound.http_status(), 404);
        assert_eq!(ErrorCode::AccessDenied.http_status(), 401);
        assert_eq!(ErrorCode::ServiceUnavailable.http_status(), 503);
        assert_eq!(ErrorCode::VersionMismatch, "VersionMismatchException");
    }
}
