//! Binding, routing and graceful shutdown (the mini-redis shape: `run` takes a bound listener
//! and a shutdown future, so tests and `main` drive it the same way).
//!
//! Routing is deliberately thin: `/health`, and one dispatcher that authenticates every AWS
//! request the same way before looking at which operation it is.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use crate::aws::auth::SignedParts;
use crate::aws::error::ApiError;
use crate::aws::request_id;
use crate::control::{self, Operation};
use crate::data_plane;
use crate::endpoints::EndpointBase;
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
    pub listener: std::net::TcpListener,
    pub config: axum_server::tls_rustls::RustlsConfig,
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
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&state.app.hub().metrics_snapshot()),
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
    let app = router(Arc::clone(&state), Scheme::Http);
    let tls_handle = axum_server::Handle::new();
    let tls_task = match tls {
        None => None,
        Some(t) => {
            t.listener.set_nonblocking(true)?;
            // TCP_NODELAY: signaling frames are small and latency-bound; with Nagle a frame
            // that follows another waits for its ACK.
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(t.config)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            let server = axum_server::from_tcp(t.listener)?
                .acceptor(acceptor)
                .handle(tls_handle.clone());
            let app = router(Arc::clone(&state), Scheme::Https);
            Some(tokio::spawn(server.serve(app.into_make_service())))
        }
    };
    let hub = Arc::clone(state.app.hub());
    let tls_stop = tls_handle.clone();
    let shutdown = async move {
        shutdown.await;
        tls_stop.graceful_shutdown(Some(drain));
        let n = hub.broadcast(&kvs_core::relay::Event::GoAway { grace: drain });
        tracing::info!(connections = n, "sent GO_AWAY to signaling connections");
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    // The HTTP server may finish the moment shutdown starts (it does not track upgraded
    // WebSockets): either way, the drain below runs.
    let finished = tokio::select! {
        r = &mut server => Some(r),
        _ = rx => None,
    };
    let deadline = tokio::time::Instant::now() + drain;
    let result = match finished {
        Some(r) => r.map_err(Into::into),
        None => match tokio::time::timeout_at(deadline, server).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => {
                tracing::warn!("requests still in flight after {drain:?}; stopping anyway");
                Ok(())
            }
        },
    };
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
    if let Some(task) = tls_task {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    result
}

async fn dispatch(state: SharedState, req: Request, scheme: Scheme) -> Response {
    match dispatch_inner(state, req, scheme).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

enum Route {
    Control(Operation),
    Signaling(data_plane::Operation),
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

async fn dispatch_inner(
    state: SharedState,
    req: Request,
    scheme: Scheme,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if parts.method == Method::GET && is_websocket(&parts) {
        return Ok(crate::websocket::connect(state, parts).await);
    }
    let route = match (&parts.method, Operation::from_path(&path)) {
        (&Method::POST, Some(op)) => Route::Control(op),
        (&Method::POST, None) => match data_plane::Operation::from_path(&path) {
            Some(op) => Route::Signaling(op),
            None => return Err(ApiError::unknown_operation(parts.method.as_str(), &path)),
        },
        _ => return Err(ApiError::unknown_operation(parts.method.as_str(), &path)),
    };
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::invalid(format!("The request body exceeds {MAX_BODY_BYTES} bytes."))
        })?;
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
    let op = match route {
        Route::Control(op) => op,
        Route::Signaling(data_plane::Operation::SendAlexaOfferToMaster) => {
            let out = data_plane::send_alexa_offer_to_master(state, caller, body).await?;
            return Ok(success(Some(out)));
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
