//! Every response carries `x-amzn-RequestId` (botocore exposes it as
//! `ResponseMetadata.RequestId`; the C SDK logs it), and every log line of a request carries the
//! same id in its span.
//!
//! A plain tower layer rather than `axum::middleware::from_fn`: that one clones the boxed inner
//! service on every request, which showed in the describe profile (issue 7).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Instrument;

/// A v4 UUID from the thread-local generator (`Uuid::new_v4` asks the kernel for every id: a
/// getrandom syscall per request).
pub fn new_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

/// The request's id, for handlers that record it (the console's inspector).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S> Service<Request> for RequestIdService<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = new_id();
        req.extensions_mut().insert(RequestId(id.clone()));
        // Per-request spans and lines are debug: at info they cost a fifth of a describe.
        let span = tracing::debug_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            path = %req.uri().path(),
        );
        let started = std::time::Instant::now();
        let fut = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let mut resp = fut.await?;
                if let Ok(v) = HeaderValue::from_str(&id) {
                    resp.headers_mut().insert("x-amzn-RequestId", v);
                }
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let error_type = resp
                        .headers()
                        .get("x-amzn-ErrorType")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::debug!(
                        status = resp.status().as_u16(),
                        error_type,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "handled"
                    );
                }
                Ok(resp)
            }
            .instrument(span),
        )
    }
}
