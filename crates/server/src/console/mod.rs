//! The web console (docs/console.md): its pages, compiled into the binary, and the routes they
//! call under `/console/api`. Every action goes through the application layer the AWS API uses
//! (the same control-plane handlers, the same hub); what the console adds is a session for the
//! browser, the live view of a channel ([`live`]) and the API inspector ([`inspector`]).

mod api;
pub mod assets;
pub mod inspector;
mod live;
pub mod sessions;
mod storage;

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use kvs_core::ids::Region;

use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::server::Scheme;
use crate::state::{AppState, SharedState};

/// What the console keeps for the node.
pub struct Console {
    pub sessions: sessions::Sessions,
    pub inspector: Arc<inspector::Inspector>,
    /// `--turn-secret-file`: rotating the TURN secret writes it there, so every node sharing
    /// the file takes the new secret.
    pub turn_secret_file: Option<PathBuf>,
    /// Whether other nodes share this one's state (Redis): an in-memory secret rotation would
    /// leave them with the old one.
    pub clustered: bool,
    /// Live views and inspector streams open now (bounded by [`MAX_STREAMS`]).
    pub streams: AtomicUsize,
}

/// Event streams (live views, inspector streams) open at once on a node.
pub const MAX_STREAMS: usize = 256;

impl Console {
    pub fn new(turn_secret_file: Option<PathBuf>, clustered: bool) -> Self {
        Self {
            sessions: sessions::Sessions::default(),
            inspector: Arc::new(inspector::Inspector::default()),
            turn_secret_file,
            clustered,
            streams: AtomicUsize::new(0),
        }
    }
}

pub fn routes(scheme: Scheme) -> Router<SharedState> {
    Router::new()
        .route("/console", get(assets::index))
        .route("/console/", get(assets::index))
        .route("/console/{asset}", get(assets::asset))
        .route("/console/api/whoami", get(api::whoami))
        .route(
            "/console/api/session",
            post(move |s: State<SharedState>, r: Request| api::sign_in(s, r, scheme))
                .delete(move |s: State<SharedState>, r: Request| api::sign_out(s, r, scheme)),
        )
        .route(
            "/console/api/call/{operation}",
            post(move |s: State<SharedState>, p: Path<String>, r: Request| {
                api::call(s, p, r, scheme)
            }),
        )
        .route("/console/api/channels", get(api::channels))
        .route("/console/api/live", get(live::live))
        .route("/console/api/storage", get(storage::storage))
        .route("/console/api/channel/goaway", post(api::go_away))
        .route(
            "/console/api/channel/reconnect-ice",
            post(api::reconnect_ice),
        )
        .route("/console/api/channel/disconnect", post(api::disconnect))
        .route("/console/api/inspector", get(api::inspector))
        .route("/console/api/inspector/stream", get(live::inspector_stream))
        .route(
            "/console/api/signaling-url",
            post(move |s: State<SharedState>, r: Request| api::signaling_url(s, r, scheme)),
        )
}

/// The caller a console request acts as: the open mode's account, or its session's.
/// `x-kvs-region` picks another region than the session's (the console's region selector).
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let region = match headers.get("x-kvs-region").and_then(|v| v.to_str().ok()) {
        Some(r) if !r.is_empty() => Some(
            Region::parse(r).map_err(|_| ApiError::invalid(format!("Unknown region {r:?}.")))?,
        ),
        _ => None,
    };
    if state.auth.is_open() {
        return Ok(Caller {
            ns: state.auth.open_namespace(region),
            access_key_id: None,
        });
    }
    let session = sessions::token_of(headers)
        .and_then(|t| state.console.sessions.get(&t))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                "Sign in to the console first.",
            )
        })?;
    let mut ns = session.ns;
    if let Some(r) = region {
        ns.region = r;
    }
    Ok(Caller {
        ns,
        access_key_id: session.access_key_id,
    })
}

/// A stream slot; given back when the stream ends, however it ends.
pub struct StreamSlot(SharedState);

impl StreamSlot {
    pub fn take(state: &SharedState) -> Result<Self, ApiError> {
        use std::sync::atomic::Ordering;
        let n = state.console.streams.fetch_add(1, Ordering::SeqCst);
        let slot = Self(Arc::clone(state));
        if n >= MAX_STREAMS {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "Too many console event streams are open on this node; close some.",
            ));
        }
        Ok(slot)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0
            .console
            .streams
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
