//! The per-connection service around the router: tells the connection's [`ConnWatch`] when a
//! handler runs (so no idle timer cuts a request being handled) and when the connection became
//! a WebSocket. On a connection over a cap ("shed"), only health, readiness and metrics are
//! answered; everything else gets the cap's refusal, and the connection closes after one
//! response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tower::Service;

use super::canned::Refusal;
use super::watched::ConnWatch;
use crate::aws::error::ApiError;

/// Undoes [`ConnWatch::begin_request`] however the handler ends, dropped future included.
struct InFlight(Arc<ConnWatch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

#[derive(Clone)]
pub struct Watching {
    pub router: Router,
    pub watch: Arc<ConnWatch>,
    /// `Some` on a shed connection: the refusal for everything but the probes.
    pub shed: Option<Refusal>,
    /// The client's address, given to handlers as a [`PeerAddr`] extension.
    pub peer: std::net::SocketAddr,
}

/// The address a request's connection came from (the live view's "from where").
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Paths a shed connection still answers (a load balancer's probes, a scraper).
fn is_probe(req: &Request<hyper::body::Incoming>) -> bool {
    req.method() == Method::GET && matches!(req.uri().path(), "/health" | "/ready" | "/metrics")
}

impl Service<Request<hyper::body::Incoming>> for Watching {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        self.watch.begin_request();
        let guard = InFlight(Arc::clone(&self.watch));
        let shed = self.shed;
        if let Some(refusal) = shed.filter(|_| !is_probe(&req)) {
            let mut resp = ApiError::new(
                StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                refusal.code,
                refusal.message,
            )
            .into_response();
            let id = crate::aws::request_id::new_id();
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert("x-amzn-RequestId", v);
            }
            let headers = resp.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("x-amzn-requestid,x-amzn-errortype,date"),
            );
            drop(guard);
            return Box::pin(std::future::ready(Ok(resp)));
        }
        let fut = self.router.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                guard.0.mark_upgraded();
            }
            if shed.is_some() {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            drop(guard);
            Ok(resp)
        })
    }
}
