//! The AWS error response (kvs-spec.md §1.1, §4): `x-amzn-ErrorType` header, JSON body with
//! `__type` and both `Message` and `message` (the signaling API uses lower-case for some
//! shapes; sending both satisfies every client). One exhaustive `match` maps service errors to
//! their HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kvs_core::ServiceError;
use kvs_sigv4::AuthError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
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

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = match &e {
            ServiceError::InvalidArgument(_)
            | ServiceError::ResourceInUse(_)
            | ServiceError::VersionMismatch(_)
            | ServiceError::AccountChannelLimitExceeded(_)
            | ServiceError::TagsPerResourceExceededLimit(_)
            | ServiceError::ClientLimitExceeded(_) => StatusCode::BAD_REQUEST,
            ServiceError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            // 401 in the kinesisvideo model (kvs-spec.md §4.1, §13.1).
            ServiceError::AccessDenied(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Internal(source) => {
                // Logged once here, at the boundary; the client gets a generic message.
                tracing::error!(error = %source, "internal failure");
                return Self::internal();
            }
        };
        Self::new(status, e.code(), e.to_string())
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
        resp
    }
}
