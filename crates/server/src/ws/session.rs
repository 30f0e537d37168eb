//! One signaling connection: frames from the socket are parsed, rate-limited and handed to the
//! hub; frames the hub queued for this connection go out. The session also enforces the idle
//! timeout and maximum connection duration (kvs-spec.md §6.5) and closes after a GO_AWAY's grace
//! period (§6.4). Every error is decided here: a bad message costs the sender a STATUS_RESPONSE
//! (when it gave a correlationId), never the connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use kvs_core::ids::{Namespace, ResourceArn};
use kvs_core::signaling::hub::ConnectionId;
use kvs_core::signaling::metrics::inc;
use kvs_core::signaling::rate::{ConnectionRateLimiter, RateLimits};
use kvs_core::signaling::{ClientMessage, Hub, Outbound, ServerMessage, SignalError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::state::{AppState, SharedState};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub rate_limits: RateLimits,
    pub outbox_capacity: usize,
}

/// A connection's place in the hub, released when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    conn: ConnectionId,
}

impl Registration {
    pub fn new(hub: Arc<Hub>, conn: ConnectionId) -> Self {
        Self { hub, conn }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.disconnect(&self.conn);
    }
}

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;

pub async fn run(
    mut socket: WebSocket,
    state: SharedState,
    ns: Namespace,
    arn: ResourceArn,
    reg: Registration,
    mut outbox: mpsc::Receiver<Outbound>,
) {
    let cfg = state.session.clone();
    let started = Instant::now();
    let max_end = started + cfg.max_duration;
    let mut idle_end = started + cfg.idle_timeout;
    let mut go_away_end: Option<Instant> = None;
    let mut limiter = ConnectionRateLimiter::new(cfg.rate_limits);
    tracing::info!(channel = %arn, role = ?reg.conn.role, "signaling connection open");
    let reason = loop {
        let (close_at, why) = [
            (Some(idle_end), "idle timeout"),
            (Some(max_end), "maximum connection duration reached"),
            (go_away_end, "going away"),
        ]
        .into_iter()
        .filter_map(|(t, why)| t.map(|t| (t, why)))
        .min_by_key(|(t, _)| *t)
        .unwrap_or((max_end, "maximum connection duration reached"));
        tokio::select! {
            inbound = socket.recv() => {
                let frame = match inbound {
                    None | Some(Err(_)) => break None,
                    Some(Ok(f)) => f,
                };
                idle_end = Instant::now() + cfg.idle_timeout;
                let reply = match frame {
                    Message::Text(t) => handle_text(&state, &ns, &arn, &reg.conn, &mut limiter, t.as_str()).await,
                    Message::Binary(b) => binary_refused(&state, &b),
                    // Pings are answered by the WebSocket layer; they count as activity.
                    Message::Ping(_) | Message::Pong(_) => None,
                    Message::Close(_) => break None,
                };
                if let Some(reply) = reply {
                    if socket.send(Message::Text(reply.into())).await.is_err() {
                        break None;
                    }
                }
            }
            out = outbox.recv() => match out {
                None => break None,
                Some(Outbound::Text(t)) => {
                    if socket.send(Message::Text(t.into())).await.is_err() {
                        break None;
                    }
                }
                Some(Outbound::GoAway { grace }) => {
                    let go_away = ServerMessage::go_away().to_json();
                    if socket.send(Message::Text(go_away.into())).await.is_err() {
                        break None;
                    }
                    let end = Instant::now() + grace;
                    go_away_end = Some(go_away_end.map_or(end, |e| e.min(end)));
                }
                Some(Outbound::Close { reason }) => break Some((CLOSE_NORMAL, reason)),
            },
            _ = tokio::time::sleep_until(close_at) => {
                let code = if why == "going away" { CLOSE_GOING_AWAY } else { CLOSE_NORMAL };
                break Some((code, why.to_owned()));
            }
        }
    };
    if let Some((code, reason)) = reason {
        tracing::info!(channel = %arn, role = ?reg.conn.role, %reason, "closing signaling connection");
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    drop(reg);
    tracing::info!(channel = %arn, "signaling connection closed");
}

/// Handles one text frame; returns the frame to send back to this client, if any.
async fn handle_text(
    state: &Arc<AppState>,
    ns: &Namespace,
    arn: &ResourceArn,
    conn: &ConnectionId,
    limiter: &mut ConnectionRateLimiter,
    text: &str,
) -> Option<String> {
    let metrics = state.hub.metrics();
    let msg = match ClientMessage::parse(text) {
        Ok(m) => m,
        Err(e) => {
            inc(&metrics.messages_rejected);
            return status(e);
        }
    };
    if !limiter.allow(msg.action, state.service.clock().now_millis()) {
        inc(&metrics.messages_rate_limited);
        return status(SignalError::limit(
            msg.correlation_id,
            format!(
                "Too many {} messages on this connection; slow down.",
                msg.action.as_str()
            ),
        ));
    }
    // The TTL in force now is stamped on the message if it must be held (architecture.md §2).
    let service = Arc::clone(&state.service);
    let (ns, arn) = (ns.clone(), arn.clone());
    let channel = tokio::task::spawn_blocking(move || service.get_by_arn(&ns, &arn)).await;
    let ttl = match channel {
        Ok(Ok(view)) => view.channel.ttl.seconds(),
        Ok(Err(_)) | Err(_) => {
            inc(&metrics.messages_rejected);
            return status(SignalError {
                correlation_id: msg.correlation_id,
                error_type: "ResourceNotFoundException",
                status_code: 404,
                description: "The signaling channel no longer exists.".into(),
            });
        }
    };
    match state.hub.relay(conn, msg, ttl) {
        Ok(()) => None,
        Err(e) => status(e),
    }
}

fn status(e: SignalError) -> Option<String> {
    e.status_response().map(|m| m.to_json())
}

/// Only text frames carry signaling messages (kvs-spec.md §6.1). If a binary frame holds JSON
/// with a correlationId, the refusal is reported against it.
fn binary_refused(state: &AppState, bytes: &[u8]) -> Option<String> {
    inc(&state.hub.metrics().messages_rejected);
    let correlation_id = std::str::from_utf8(bytes).ok().and_then(|t| {
        ClientMessage::parse(t)
            .map(|m| m.correlation_id)
            .unwrap_or_else(|e| e.correlation_id)
    });
    status(SignalError::invalid(
        correlation_id,
        "Binary frames are not supported; send signaling messages as text frames.",
    ))
}
