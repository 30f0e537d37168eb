//! Binding, routing and graceful shutdown (the mini-redis shape: `run` takes a bound listener
//! and a shutdown future, so tests and `main` drive it the same way).
//!
//! Routing is deliberately thin: `/health`, and one dispatcher that authenticates every AWS
//! request the same way before looking at which operation it is.

use std::future::{Future, IntoFuture};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::aws::auth::SignedParts;
use crate::aws::error::ApiError;
use crate::aws::request_id;
use crate::control::{self, Operation};
use crate::endpoints::EndpointBase;
use crate::state::SharedState;

/// Largest request body accepted; control-plane bodies are a few KiB at most.
const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/health", get(health))
        .fallback(dispatch)
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// Serves until `shutdown` completes, then stops accepting and waits up to `drain` for requests
/// in flight.
pub async fn run(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> anyhow::Result<()> {
    let app = router(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        r = &mut server => return r.map_err(Into::into),
        _ = rx => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => {
            tracing::warn!("requests still in flight after {drain:?}; stopping anyway");
            Ok(())
        }
    }
}

async fn dispatch(State(state): State<SharedState>, req: Request) -> Response {
    match dispatch_inner(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn dispatch_inner(state: SharedState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let op = match (&parts.method, Operation::from_path(&path)) {
        (&Method::POST, Some(op)) => op,
        _ => return Err(ApiError::unknown_operation(parts.method.as_str(), &path)),
    };
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::invalid(format!("The request body exceeds {MAX_BODY_BYTES} bytes."))
        })?;
    let signed = SignedParts::from_parts(&parts);
    let endpoint = state.public_endpoint.clone().unwrap_or_else(|| {
        EndpointBase::from_request("http", &parts.headers, &state.local_authority)
    });
    let span = tracing::Span::current();
    let out = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        let now = SystemTime::now();
        let caller = state.auth.authenticate_header(&signed, &body, now)?;
        tracing::debug!(account = %caller.ns.account, region = %caller.ns.region, ?op, "authenticated");
        control::handle(op, &state, &caller, &body, &endpoint)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "handler task failed");
        ApiError::internal()
    })??;
    Ok(success(out))
}

fn success(body: Option<String>) -> Response {
    let mut resp = match body {
        Some(b) => (StatusCode::OK, b).into_response(),
        None => (StatusCode::OK, Body::empty()).into_response(),
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Resolves after SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}
