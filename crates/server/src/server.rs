//! Binding, routing and graceful shutdown (the mini-redis shape: `run` takes a bound listener
//! and a shutdown future, so tests and `main` drive it the same way).
//!
//! Routing is deliberately thin: `/health`, and one dispatcher that authenticates every AWS
//! request the same way before looking at which operation it is.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::aws::auth::SignedParts;
use crate::aws::error::ApiError;
use crate::aws::request_id;
use crate::control::{self, Operation};
use crate::data_plane;
use crate::endpoints::EndpointBase;
use crate::listener;
use crate::observe::CallContext;
use crate::state::SharedState;

/// Largest request body accepted; control-plane bodies are a few KiB at most.
const MAX_BODY_BYTES: usize = 1 << 20;

/// How a request reached us; endpoint URLs handed out follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

pub fn router(state: SharedState, scheme: Scheme) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/_kvs/reset", post(crate::suite_api::reset))
        .route("/_kvs/state", get(crate::suite_api::state))
        .route(
            "/_kvs/storage-sessions",
            get(crate::suite_api::storage_sessions),
        )
        .merge(crate::console::routes(scheme))
        .fallback(move |State(state): State<SharedState>, req: Request| {
            dispatch(state, req, scheme)
        })
        .layer(request_id::RequestIdLayer)
        .layer(cors())
        .with_state(state)
}

/// Browser apps (the KVS WebRTC JS SDK's pages among them) call the AWS APIs from their own
/// origin, as they do against AWS. Authentication is SigV4, never cookies, so any origin may
/// call; preflights are answered before authentication.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::HeaderName;
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            HeaderName::from_static("x-amzn-requestid"),
            HeaderName::from_static("x-amzn-errortype"),
            HeaderName::from_static("date"),
        ])
        .max_age(Duration::from_secs(600))
}

/// The HTTPS + WSS listener (`--tls-listen`).
pub struct TlsListener {
    pub listener: TcpListener,
    pub config: Arc<rustls::ServerConfig>,
    /// The embedded relay's TURN over TLS on this port (set once the relay runs).
    pub turn: Option<listener::tls_route::TurnIntake>,
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// Whether the store answers (docs/design.md §2: `GET /ready`).
async fn ready(State(state): State<SharedState>) -> Response {
    match state.app.channels().ping().await {
        Ok(()) => health().await.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            ApiError::from(e).into_response()
        }
    }
}

async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}

/// Serves until `shutdown` completes, then stops accepting, sends GO_AWAY to every signaling
/// connection of this node and waits up to `drain` for requests and connections to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsListener>,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let conn = state.connections.config;
    let admission = Arc::clone(&state.connections.admission);
    let http = listener::accept_loop(
        listener,
        None,
        router(Arc::clone(&state), Scheme::Http),
        conn,
        Arc::clone(&admission),
        &graceful,
        stopped(stop_rx.clone()),
    );
    let https = async {
        if let Some(t) = tls {
            listener::accept_loop(
                t.listener,
                Some(listener::tls_setup(t.config, t.turn)),
                router(Arc::clone(&state), Scheme::Https),
                conn,
                Arc::clone(&admission),
                &graceful,
                stopped(stop_rx.clone()),
            )
            .await;
        }
    };
    let hub = Arc::clone(state.app.hub());
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        let n = hub.broadcast(&kvs_core::relay::Event::GoAway { grace: drain });
        tracing::info!(connections = n, "sent GO_AWAY to signaling connections");
    };
    tokio::join!(http, https, signal);
    let deadline = tokio::time::Instant::now() + drain;
    // HTTP connections finish their request in flight and close; upgraded WebSockets are not
    // among them (their sessions close on GO_AWAY's grace or their client's close).
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {drain:?}; stopping anyway");
    }
    // Upgraded WebSockets are not tracked by the HTTP server: wait for them to close.
    // Their presence is released before the node goes, so other nodes stop counting them at
    // once (not only when this node's lease runs out).
    let hub = state.app.hub();
    while !hub.is_settled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Sessions still open at the deadline close by themselves; release them now rather than
    // let the process end before they do.
    let _ = tokio::time::timeout(Duration::from_secs(3), hub.release_all()).await;
    Ok(())
}

async fn dispatch(state: SharedState, req: Request, scheme: Scheme) -> Response {
    let at = SystemTime::now();
    let started = std::time::Instant::now();
    let mut call = CallContext {
        access_key_id: crate::observe::claimed_access_key(req.headers(), req.uri().query()),
        request_id: req
            .extensions()
            .get::<request_id::RequestId>()
            .map(|r| r.0.clone()),
        ..CallContext::default()
    };
    let resp = match dispatch_inner(Arc::clone(&state), req, scheme, &mut call).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    if call.operation.is_some() {
        if call.account.is_none() {
            call.account = state
                .auth
                .account_of(call.access_key_id.as_deref())
                .map(|a| a.to_string());
        }
        let record = call.finish(
            at,
            started.elapsed(),
            resp.status().as_u16(),
            resp.headers(),
        );
        state.calls.record(&record);
    }
    resp
}

enum Route {
    Control(Operation),
    Signaling(data_plane::Operation),
    /// kinesis-video-media GetMedia (a streaming answer).
    GetMedia,
}

fn is_websocket(parts: &axum::http::request::Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        || parts
            .uri
            .query()
            .is_some_and(|q| q.contains("X-Amz-ChannelARN="))
}

/// A browser asking for a page at `/` (not a WebSocket connect, which also uses `/`): sent to
/// the console.
fn wants_page(parts: &axum::http::request::Parts) -> bool {
    !is_websocket(parts)
        && parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

async fn dispatch_inner(
    state: SharedState,
    req: Request,
    scheme: Scheme,
    call: &mut CallContext,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if parts.method == Method::GET && path == "/" && wants_page(&parts) {
        return Ok((
            StatusCode::FOUND,
            [(header::LOCATION, HeaderValue::from_static("/console"))],
        )
            .into_response());
    }
    if parts.method == Method::GET && is_websocket(&parts) {
        let query = parts.uri.query().unwrap_or("");
        call.operation = Some(match kvs_sigv4::query_param(query, "X-Amz-ClientId") {
            Ok(Some(_)) => "ConnectAsViewer",
            _ => "ConnectAsMaster",
        });
        call.channel = kvs_sigv4::query_param(query, "X-Amz-ChannelARN")
            .ok()
            .flatten();
        return Ok(crate::websocket::connect(state, parts).await);
    }
    let route = match (&parts.method, Operation::from_path(&path)) {
        (&Method::POST, Some(op)) => Route::Control(op),
        (&Method::POST, None) if path == crate::media::PATH => Route::GetMedia,
        (&Method::POST, None) => match data_plane::Operation::from_path(&path) {
            Some(op) => Route::Signaling(op),
            None => return Err(ApiError::unknown_operation(parts.method.as_str(), &path)),
        },
        _ => return Err(ApiError::unknown_operation(parts.method.as_str(), &path)),
    };
    call.operation = Some(match route {
        Route::Control(op) => op.name(),
        Route::Signaling(op) => op.name(),
        Route::GetMedia => crate::media::OPERATION,
    });
    let body = read_body(body, state.connections.body_timeout).await?;
    call.channel_from_body(&body);
    let signed = SignedParts::from_parts(&parts);
    let endpoint = state.public_endpoint.clone().unwrap_or_else(|| {
        EndpointBase::from_request(
            scheme.as_str(),
            &parts.uri,
            &parts.headers,
            &state.local_authority,
        )
    });
    let caller = state
        .auth
        .authenticate_header(&signed, &body, SystemTime::now())?;
    tracing::debug!(account = %caller.ns.account, region = %caller.ns.region, "authenticated");
    call.account = Some(caller.ns.account.to_string());
    let op = match route {
        Route::Control(op) => op,
        Route::GetMedia => {
            return crate::media::get_media(&state.app, &state.media, &caller, &body).await;
        }
        Route::Signaling(data_plane::Operation::SendAlexaOfferToMaster) => {
            let out = data_plane::send_alexa_offer_to_master(state, caller, body).await?;
            return Ok(success(Some(out)));
        }
        Route::Signaling(data_plane::Operation::JoinStorageSession) => {
            crate::storage::api::join_storage_session(state, caller, body).await?;
            return Ok(success(None));
        }
        Route::Signaling(data_plane::Operation::JoinStorageSessionAsViewer) => {
            crate::storage::api::join_storage_session_as_viewer(state, caller, body).await?;
            return Ok(success(None));
        }
        Route::Signaling(data_plane::Operation::GetIceServerConfig) => {
            let out =
                data_plane::get_ice_server_config(&state, &caller, &body, &endpoint.authority)
                    .await?;
            return Ok(success(Some(out)));
        }
    };
    // Handlers run on the request's task: reads come from memory, writes wait (without
    // blocking a thread) for their group commit.
    let out = control::handle(op, &state, &caller, &body, &endpoint).await?;
    Ok(success(out))
}

/// The request body, at most [`MAX_BODY_BYTES`], within `--body-timeout`: beyond either the
/// request is refused (413, 408) and the connection closed, since the rest of the body is
/// still on the wire.
pub(crate) async fn read_body(body: Body, timeout: Duration) -> Result<bytes::Bytes, ApiError> {
    use http_body::Body as _;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("The request body exceeds {MAX_BODY_BYTES} bytes."),
        )
        .closing()
    };
    // A declared length over the limit is refused before a byte of it is read.
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::invalid("The request body could not be read.").closing()),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            format!("The request body did not arrive within {timeout:?}."),
        )
        .closing()),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

pub(crate) fn success(body: Option<String>) -> Response {
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
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // The handlers are installed here, before the caller prints the ready line: a SIGTERM
    // that arrives right after it must drain, not kill the process by the signal's default
    // action (which is what happened while they were installed at the first poll).
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; draining");
    }
}
