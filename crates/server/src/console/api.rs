//! The console's JSON routes (docs/console.md "The console API"). Each one finds its caller
//! ([`super::caller`]), calls the application layer and shapes the answer; errors are the API's.

use std::time::SystemTime;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kvs_core::app::Purpose;
use kvs_core::ids::ResourceArn;
use kvs_core::relay::Role;
use serde::Deserialize;
use serde_json::{json, Value};

use super::caller;
use super::sessions;
use crate::aws::auth::{Caller, SignedParts};
use crate::aws::error::ApiError;
use crate::control::{self, Operation};
use crate::data_plane;
use crate::endpoints::EndpointBase;
use crate::server::{read_body, Scheme};
use crate::state::{AppState, SharedState};

pub(super) type Answer = Result<Response, ApiError>;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub(super) fn ok(body: Value) -> Answer {
    Ok(json_response(StatusCode::OK, &body))
}

fn whoami_of(state: &AppState, caller: Option<&Caller>) -> Value {
    json!({
        "mode": if state.auth.is_open() { "open" } else { "credentials" },
        "signedIn": caller.is_some(),
        "account": caller.map(|c| c.ns.account.to_string()),
        "accessKeyId": caller.and_then(|c| c.access_key_id.clone()),
        "region": caller.map_or_else(
            || state.auth.default_region().to_string(),
            |c| c.ns.region.to_string(),
        ),
        "node": state.app.hub().node().to_string(),
    })
}

pub async fn whoami(State(state): State<SharedState>, req: Request) -> Answer {
    let who = caller(&state, req.headers()).ok();
    ok(whoami_of(&state, who.as_ref()))
}

/// A SigV4-signed `POST /console/api/session` opens a session (credentials mode).
pub async fn sign_in(state: State<SharedState>, req: Request, scheme: Scheme) -> Response {
    sign_in_inner(state, req, scheme)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn sign_in_inner(State(state): State<SharedState>, req: Request, scheme: Scheme) -> Answer {
    let (parts, body) = req.into_parts();
    if state.auth.is_open() {
        let who = caller(&state, &parts.headers)?;
        return ok(whoami_of(&state, Some(&who)));
    }
    let body = read_body(body, state.connections.body_timeout).await?;
    let signed = SignedParts::from_parts(&parts);
    let who = state
        .auth
        .authenticate_header(&signed, &body, SystemTime::now())?;
    let token = state
        .console
        .sessions
        .open(who.ns.clone(), who.access_key_id.clone());
    let mut resp = json_response(StatusCode::OK, &whoami_of(&state, Some(&who)));
    let cookie = sessions::set_cookie(Some(&token), scheme == Scheme::Https);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

pub async fn sign_out(State(state): State<SharedState>, req: Request, scheme: Scheme) -> Response {
    if let Some(t) = sessions::token_of(req.headers()) {
        state.console.sessions.close(&t);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&sessions::set_cookie(None, scheme == Scheme::Https)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn endpoint_of(
    state: &AppState,
    parts: &axum::http::request::Parts,
    scheme: Scheme,
) -> EndpointBase {
    state.public_endpoint.clone().unwrap_or_else(|| {
        EndpointBase::from_request(
            scheme.as_str(),
            &parts.uri,
            &parts.headers,
            &state.local_authority,
        )
    })
}

/// `POST /console/api/call/OPERATION`: the AWS operation, as the API runs it.
pub async fn call(
    State(state): State<SharedState>,
    Path(operation): Path<String>,
    req: Request,
    scheme: Scheme,
) -> Response {
    call_inner(state, operation, req, scheme)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn call_inner(state: SharedState, operation: String, req: Request, scheme: Scheme) -> Answer {
    let (parts, body) = req.into_parts();
    let who = caller(&state, &parts.headers)?;
    let body = read_body(body, state.connections.body_timeout).await?;
    let endpoint = endpoint_of(&state, &parts, scheme);
    let out = if operation == data_plane::Operation::GetIceServerConfig.name() {
        Some(data_plane::get_ice_server_config(&state, &who, &body, &endpoint.authority).await?)
    } else {
        let op = Operation::from_name(&operation)
            .ok_or_else(|| ApiError::unknown_operation("POST", &format!("/{operation}")))?;
        control::handle(op, &state, &who, &body, &endpoint).await?
    };
    Ok(crate::server::success(out))
}

/// Every channel of the caller's account and region, with live connection counts.
pub async fn channels(State(state): State<SharedState>, req: Request) -> Answer {
    let who = caller(&state, req.headers())?;
    let app = &state.app;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = app
            .channels()
            .list(&who.ns, None, 1000, token.as_deref())
            .await?;
        // One presence read per channel, all at once (on Redis, round trips in parallel).
        let counts = futures_util::future::join_all(
            page.channels
                .iter()
                .map(|v| app.hub().connected(v.channel.arn.as_str())),
        )
        .await;
        for (v, roles) in page.channels.iter().zip(counts) {
            let c = &v.channel;
            let roles = roles.unwrap_or_default();
            let masters = roles.iter().filter(|(r, _)| r.is_master()).count();
            let viewers = roles.iter().filter(|(r, _)| r.is_viewer()).count();
            out.push(json!({
                "name": c.name.to_string(),
                "arn": c.arn.to_string(),
                "status": v.status.as_str(),
                "ttl": c.ttl.seconds(),
                "version": c.version.to_string(),
                "tags": c.tags,
                "created": c.created_millis as f64 / 1000.0,
                "masters": masters,
                "viewers": viewers,
            }));
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    ok(json!({ "channels": out }))
}

#[derive(Deserialize)]
struct ChannelAction {
    #[serde(rename = "ChannelARN")]
    channel_arn: String,
    #[serde(rename = "Role")]
    role: Option<String>,
    #[serde(rename = "ClientId")]
    client_id: Option<String>,
}

/// The caller's channel named by a console action's body (404 for another account's).
async fn owned_channel(
    state: &AppState,
    req: Request,
) -> Result<(Caller, ChannelAction, ResourceArn), ApiError> {
    let (parts, body) = req.into_parts();
    let who = caller(state, &parts.headers)?;
    let body = read_body(body, state.connections.body_timeout).await?;
    let action: ChannelAction = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("The request body is invalid: {e}.")))?;
    let arn = ResourceArn::parse("ChannelARN", &action.channel_arn)?;
    state.app.channels().get_by_arn(&who.ns, &arn).await?;
    Ok((who, action, arn))
}

fn unavailable(detail: String) -> ApiError {
    tracing::warn!(%detail, "console action failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
        "The signaling backend did not answer; retry.",
    )
}

pub async fn go_away(State(state): State<SharedState>, req: Request) -> Answer {
    let (_, _, arn) = owned_channel(&state, req).await?;
    let n = state
        .app
        .hub()
        .go_away_channel(arn.as_str())
        .await
        .map_err(unavailable)?;
    ok(json!({ "connections": n }))
}

/// Rotates the TURN secret: through `--turn-secret-file` when there is one (every node that
/// reads the file follows), else in this node's memory (refused on a cluster, whose other nodes
/// would keep the old secret). Every connection of this node is sent RECONNECT_ICE_SERVER.
pub async fn reconnect_ice(State(state): State<SharedState>, req: Request) -> Answer {
    owned_channel(&state, req).await?;
    let secret = crate::app::random_secret();
    match &state.console.turn_secret_file {
        Some(path) => write_secret(path, &secret).map_err(|e| {
            tracing::error!(error = %e, "cannot write the TURN secret file");
            ApiError::internal()
        })?,
        None if state.console.clustered => {
            return Err(ApiError::invalid(
                "Rotating the TURN secret of several nodes needs --turn-secret-file, shared by \
                 the nodes; rotate it there.",
            ))
        }
        None => {}
    }
    let n = if state.ice.rotate(secret) {
        state
            .app
            .hub()
            .broadcast(&kvs_core::relay::Event::ReconnectIceServer)
    } else {
        0
    };
    tracing::info!(connections = n, "TURN secret rotated from the console");
    ok(json!({ "connections": n }))
}

fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("console-tmp");
    std::fs::write(&tmp, format!("{secret}\n"))?;
    std::fs::rename(&tmp, path)
}

pub async fn disconnect(State(state): State<SharedState>, req: Request) -> Answer {
    let (_, action, arn) = owned_channel(&state, req).await?;
    let role = match (action.role.as_deref(), action.client_id) {
        (Some("MASTER"), _) => Role::Master,
        (Some("VIEWER"), Some(id)) => Role::Viewer(id),
        _ => {
            return Err(ApiError::invalid(
                "Role must be MASTER, or VIEWER with a ClientId.",
            ))
        }
    };
    let closed = state
        .app
        .hub()
        .close_client(arn.as_str(), &role)
        .await
        .map_err(unavailable)?;
    if !closed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "No such client is connected to the channel.",
        ));
    }
    ok(json!({ "disconnected": true }))
}

#[derive(Deserialize)]
pub struct Filter {
    channel: Option<String>,
}

pub async fn inspector(
    State(state): State<SharedState>,
    Query(filter): Query<Filter>,
    req: Request,
) -> Answer {
    let who = caller(&state, req.headers())?;
    let calls = state
        .console
        .inspector
        .calls(who.ns.account.as_str(), filter.channel.as_deref());
    ok(json!({ "calls": calls }))
}

/// A presigned signaling URL and ICE servers for the try-a-call page, signed with the session's
/// key (the browser never holds a secret after sign-in).
pub async fn signaling_url(
    State(state): State<SharedState>,
    req: Request,
    scheme: Scheme,
) -> Response {
    signaling_url_inner(state, req, scheme)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn signaling_url_inner(state: SharedState, req: Request, scheme: Scheme) -> Answer {
    let (parts, body) = req.into_parts();
    let endpoint = endpoint_of(&state, &parts, scheme);
    let req = Request::from_parts(parts, body);
    let (who, action, arn) = owned_channel(&state, req).await?;
    let client_id = match action.role.as_deref() {
        Some("MASTER") => None,
        Some("VIEWER") => Some(
            action
                .client_id
                .clone()
                .ok_or_else(|| ApiError::invalid("A viewer needs a ClientId."))?,
        ),
        _ => return Err(ApiError::invalid("Role must be MASTER or VIEWER.")),
    };
    state
        .app
        .usable_channel(&who.ns, &arn, Purpose::Connect)
        .await?;
    let (key, secret, token) = match &who.access_key_id {
        Some(k) => match state.auth.signing_key(k) {
            Some((s, t)) => (k.clone(), s, t),
            None if state.auth.is_open() => (k.clone(), "open-mode".to_owned(), None),
            None => return Err(ApiError::internal()),
        },
        // Open mode verifies no signature; the URL is signed all the same, as a client would.
        None => ("AKIDCONSOLE".to_owned(), "open-mode".to_owned(), None),
    };
    let mut params = vec![("X-Amz-ChannelARN".to_owned(), arn.to_string())];
    if let Some(id) = &client_id {
        params.push(("X-Amz-ClientId".to_owned(), id.clone()));
    }
    if let Some(t) = token {
        params.push(("X-Amz-Security-Token".to_owned(), t));
    }
    let amz_date = kvs_sigv4::format_amz_date(SystemTime::now());
    let path = if endpoint.path.is_empty() {
        "/".to_owned()
    } else {
        format!("{}/", endpoint.path)
    };
    let query = kvs_sigv4::presign_query(
        "GET",
        &endpoint.authority,
        &path,
        &params,
        &key,
        &secret,
        who.ns.region.as_str(),
        "kinesisvideo",
        &amz_date,
        300,
    );
    let ws = match endpoint.scheme.as_str() {
        "https" => "wss",
        _ => "ws",
    };
    let url = format!("{ws}://{}{path}?{query}", endpoint.authority);
    let ice_body = json!({ "ChannelARN": arn.to_string(), "ClientId": client_id }).to_string();
    let ice =
        data_plane::get_ice_server_config(&state, &who, ice_body.as_bytes(), &endpoint.authority)
            .await?;
    let ice: Value = serde_json::from_str(&ice).map_err(|_| ApiError::internal())?;
    let servers: Vec<Value> = ice["IceServerList"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| json!({ "urls": s["Uris"], "username": s["Username"], "credential": s["Password"] }))
                .collect()
        })
        .unwrap_or_default();
    ok(json!({ "url": url, "iceServers": servers }))
}
