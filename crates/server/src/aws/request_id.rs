//! Every response carries `x-amzn-RequestId` (botocore exposes it as
//! `ResponseMetadata.RequestId`; the C SDK logs it), and every log line of a request carries the
//! same id in its span.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::debug_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    let error_type = resp
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Per-request lines are debug: at info they cost a fifth of a describe (issue 7).
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            error_type = error_type.as_deref().unwrap_or(""),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "handled"
        );
    });
    resp
}
