//! ConnectAsMaster / ConnectAsViewer (docs/protocol.md §6.1): everything is checked before the
//! upgrade, so a refused client gets a plain HTTP error with a JSON body and the documented
//! status: 400 (bad parameters, too many viewers), 403 (signature), 404 (no such channel).

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use kvs_core::ids::ResourceArn;
use kvs_core::quota::QuotaOp;
use kvs_core::relay::message::is_valid_id;
use kvs_core::relay::{Role, SessionSink};
use tokio::sync::mpsc;

use super::session;
use crate::aws::auth::SignedParts;
use crate::aws::error::ApiError;
use crate::state::SharedState;

/// The one value of a query parameter, decoded strictly (the verifier's decoder): a malformed
/// escape, bytes that are not UTF-8 or a repeated parameter are refused rather than read
/// leniently (a bad `X-Amz-ClientId` read as absent would turn a viewer into the master).
fn param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    kvs_sigv4::query_param(query, name)
        .map_err(|e| ApiError::invalid(format!("The {name} query parameter is invalid: {e}.")))
}

pub async fn connect(state: SharedState, mut parts: Parts) -> Response {
    // The handshake (authentication, the presence claim, on Redis a round trip or more) is
    // bounded by --handshake-timeout like a TLS handshake.
    let limit = state.connections.config.handshake_timeout;
    let result = match tokio::time::timeout(limit, authorise(&state, &mut parts)).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "The WebSocket handshake did not complete in time; retry.",
        )),
    };
    match result {
        Ok(resp) => resp,
        Err(e) => {
            kvs_core::relay::metrics::inc(&state.app.hub().metrics().connections_rejected);
            e.into_response()
        }
    }
}

async fn authorise(state: &SharedState, parts: &mut Parts) -> Result<Response, ApiError> {
    let query = parts.uri.query().unwrap_or("").to_owned();
    let signed = SignedParts::from_parts(parts);
    let caller = state
        .auth
        .authenticate_presigned(&signed, SystemTime::now())?;
    let arn = param(&query, "X-Amz-ChannelARN")?
        .ok_or_else(|| ApiError::invalid("The X-Amz-ChannelARN query parameter is required."))?;
    let arn = ResourceArn::parse("X-Amz-ChannelARN", &arn)?;
    let role = match param(&query, "X-Amz-ClientId")? {
        None => Role::Master,
        Some(id) => {
            if !is_valid_id(&id) {
                return Err(ApiError::invalid(
                    "X-Amz-ClientId must be 1..256 characters of [a-zA-Z0-9_.-].",
                ));
            }
            if id.len() >= 4 && id[..4].eq_ignore_ascii_case("AWS_") {
                return Err(ApiError::invalid(
                    "X-Amz-ClientId must not start with AWS_ (reserved).",
                ));
            }
            Role::Viewer(id)
        }
    };
    let op = match role {
        Role::Master => QuotaOp::ConnectAsMaster,
        _ => QuotaOp::ConnectAsViewer,
    };
    state
        .app
        .throttle(&caller.ns, op, Some(arn.as_str()))
        .await?;
    let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::invalid(format!("A WebSocket upgrade is required: {e}")))?;
    // The C SDK (libwebsockets) offers the subprotocol "wss" and breaks if another is chosen;
    // browsers offer none (docs/protocol.md §6.1).
    let upgrade = upgrade.protocols(["wss"]);

    // The channel must be ACTIVE; the one-master rule and the viewer limit are the hub's.
    let (tx, rx) = mpsc::channel(state.session.outbox_capacity);
    let overflow = Arc::new(tokio::sync::Notify::new());
    let sink = SessionSink {
        tx,
        overflow: Arc::clone(&overflow),
    };
    // Pending until the upgrade completes; dropping the registration (this request went away,
    // or the upgrade never completed) takes the connection out of the hub again.
    let reg = state
        .app
        .connect(&caller.ns, &arn, role, Arc::new(sink))
        .await?;
    let from = parts
        .extensions
        .get::<crate::listener::PeerAddr>()
        .map(|p| p.0.to_string());
    state.app.hub().note_origin(reg.id().id, from);
    let state = Arc::clone(state);
    Ok(small_buffers(upgrade)
        .on_upgrade(move |socket| session::run(socket, state, reg, rx, overflow)))
}

/// KVS messages are at most ~14 KiB of JSON (10K payloads, docs/protocol.md §8.2): buffers sized for
/// that rather than tungstenite's 128 KiB defaults keep an idle connection small (issue 7).
fn small_buffers(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_strictly() {
        let q = "X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-east-1%3A1%3Achannel%2Fc%2F1&X-Amz-ClientId=v1&flag";
        let one = |q: &str, name: &str| param(q, name).map_err(|e| e.code);
        assert_eq!(
            one(q, "X-Amz-ChannelARN"),
            Ok(Some("arn:aws:kinesisvideo:us-east-1:1:channel/c/1".into()))
        );
        assert_eq!(one(q, "X-Amz-ClientId"), Ok(Some("v1".into())));
        assert_eq!(one(q, "missing"), Ok(None));
        for bad in [
            "X-Amz-ClientId=a&X-Amz-ClientId=b",
            "X-Amz-ClientId=%ZZ",
            "X-Amz-ClientId=%F",
            "X-Amz-ClientId=%FF",
        ] {
            assert_eq!(
                one(bad, "X-Amz-ClientId"),
                Err("InvalidArgumentException"),
                "{bad}"
            );
        }
    }
}
