//! The AWS error response (docs/protocol.md §1.1, §4): `x-amzn-ErrorType` header, JSON body with
//! `__type` and both `Message` and `message` (the signaling API uses lower-case for some
//! shapes; sending both satisfies every client). One exhaustive `match` maps service errors to
//! their HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kvs_core::{ErrorCode, ServiceError};
use kvs_sigv4::AuthError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Close the connection after this answer (the rest of the request is still unread).
    pub close: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            close: false,
        }
    }

    /// The same error, answered with `Connection: close`.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgumentException", message)
    }

    pub fn unknown_operation(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("No operation matches {method} {path}"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }
}

/// The one status mapping is [`ErrorCode::http_status`]; this only changes its type.
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Client { code, message } => {
                Self::new(status_of(code), code.as_str(), message)
            }
            ServiceError::Internal(source) => {
                // Logged once here, at the boundary; the client gets a generic message.
                tracing::error!(error = %source, "internal failure");
                Self::internal()
            }
            ServiceError::Unavailable(detail) => {
                tracing::warn!(%detail, "backend unavailable");
                Self::new(
                    status_of(ErrorCode::ServiceUnavailable),
                    ErrorCode::ServiceUnavailable.as_str(),
                    "The service is temporarily unavailable; retry the request.",
                )
            }
        }
    }
}

impl From<kvs_core::Violation> for ApiError {
    fn from(v: kvs_core::Violation) -> Self {
        Self::invalid(v.message())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        Self::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "__type": self.code,
            "Message": self.message,
            "message": self.message,
        });
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
