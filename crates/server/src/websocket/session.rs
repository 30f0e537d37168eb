//! One signaling connection: frames from the socket are parsed, rate-limited and handed to the
//! application layer; events the hub queued for this connection become frames here. The
//! session also enforces the idle timeout and maximum connection duration (docs/protocol.md §6.5)
//! and closes after a GO_AWAY's grace period (§6.4). Every error is decided here: a bad message costs the sender a STATUS_RESPONSE
//! (when it gave a correlationId), never the connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use kvs_core::relay::metrics::inc;
use kvs_core::relay::rate::{ConnectionRateLimiter, RateLimits};
use kvs_core::relay::{
    ClientMessage, ConnectionId, Event, Registration, ServerMessage, SignalError,
};
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

/// Most frames written between two flushes.
const WRITE_BURST: usize = 64;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;

/// The frame an event becomes (docs/protocol.md §6.3, §6.4); `None` for those that are not frames.
fn frame(event: &Event) -> Option<String> {
    match event {
        Event::Message(m) => {
            Some(ServerMessage::relay(m.action, m.sender.clone(), m.payload.clone()).to_json())
        }
        Event::GoAway { .. } => Some(ServerMessage::go_away().to_json()),
        Event::ReconnectIceServer => Some(ServerMessage::reconnect_ice_server().to_json()),
        Event::Close { .. } => None,
    }
}

pub async fn run(
    mut socket: WebSocket,
    state: SharedState,
    reg: Registration,
    mut outbox: mpsc::Receiver<Event>,
) {
    // Live now: what was held for this connection goes out first.
    reg.activate().await;
    let conn = reg.id().clone();
    let cfg = state.session.clone();
    let started = Instant::now();
    let max_end = started + cfg.max_duration;
    let mut idle_end = started + cfg.idle_timeout;
    let mut go_away_end: Option<Instant> = None;
    let mut outbox_open = true;
    let mut limiter = ConnectionRateLimiter::new(cfg.rate_limits);
    tracing::debug!(channel = %conn.channel_arn, role = ?conn.role, "signaling connection open");
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
                    Message::Text(t) => handle_text(&state, &conn, &mut limiter, t.as_str()).await,
                    Message::Binary(b) => binary_refused(&state, &b),
                    // Pings are answered by the WebSocket layer; they count as activity.
                    Message::Ping(_) | Message::Pong(_) => None,
                    // The client closes: the WebSocket layer has queued the close frame that
                    // answers it (docs/behaviour.md 'Signaling data plane'); flush it before the
                    // socket is dropped, or the client sees no close frame (1006).
                    Message::Close(_) => {
                        let _ = socket.flush().await;
                        break None;
                    }
                };
                if let Some(reply) = reply {
                    if socket.send(Message::Text(reply.into())).await.is_err() {
                        break None;
                    }
                }
            }
            out = outbox.recv(), if outbox_open => match out {
                // The hub let go of this connection; keep serving until a timer ends it (a
                // GO_AWAY's grace period is a promise to the client, docs/protocol.md §6.4).
                None => outbox_open = false,
                Some(Event::Close { reason }) => break Some((CLOSE_NORMAL, reason)),
                Some(event) => {
                    // Write what is already waiting, then flush once: a burst costs one write
                    // (TCP_NODELAY is on, so nothing waits for Nagle either).
                    let mut next = Some(event);
                    let mut written = 0;
                    let mut closing = None;
                    let mut failed = false;
                    while let Some(event) = next.take() {
                        if let Event::Close { reason } = event {
                            closing = Some(reason);
                            break;
                        }
                        if let Event::GoAway { grace } = &event {
                            let end = Instant::now() + *grace;
                            go_away_end = Some(go_away_end.map_or(end, |e| e.min(end)));
                        }
                        if let Some(text) = frame(&event) {
                            if socket.feed(Message::Text(text.into())).await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        written += 1;
                        if written < WRITE_BURST {
                            next = outbox.try_recv().ok();
                        }
                    }
                    if failed || socket.flush().await.is_err() {
                        break None;
                    }
                    if let Some(reason) = closing {
                        break Some((CLOSE_NORMAL, reason));
                    }
                }
            },
            _ = tokio::time::sleep_until(close_at) => {
                let code = if why == "going away" { CLOSE_GOING_AWAY } else { CLOSE_NORMAL };
                break Some((code, why.to_owned()));
            }
        }
    };
    if let Some((code, reason)) = reason {
        tracing::debug!(channel = %conn.channel_arn, role = ?conn.role, %reason, "closing signaling connection");
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    reg.release().await;
    tracing::debug!(channel = %conn.channel_arn, "signaling connection closed");
}

/// Handles one text frame; returns the frame to send back to this client, if any.
async fn handle_text(
    state: &Arc<AppState>,
    conn: &ConnectionId,
    limiter: &mut ConnectionRateLimiter,
    text: &str,
) -> Option<String> {
    let metrics = state.app.hub().metrics();
    let msg = match ClientMessage::parse(text) {
        Ok(m) => m,
        Err(e) => {
            inc(&metrics.messages_rejected);
            return status(e);
        }
    };
    if !limiter.allow(msg.action, state.app.clock().now_millis()) {
        inc(&metrics.messages_rate_limited);
        return status(SignalError::limit(
            msg.correlation_id,
            format!(
                "Too many {} messages on this connection; slow down.",
                msg.action.as_str()
            ),
        ));
    }
    match state.app.relay(conn, msg).await {
        Ok(()) => None,
        Err(e) => status(e),
    }
}

fn status(e: SignalError) -> Option<String> {
    e.status_response().map(|m| m.to_json())
}

/// Only text frames carry signaling messages (docs/protocol.md §6.1). If a binary frame holds JSON
/// with a correlationId, the refusal is reported against it.
fn binary_refused(state: &AppState, bytes: &[u8]) -> Option<String> {
    inc(&state.app.hub().metrics().messages_rejected);
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
