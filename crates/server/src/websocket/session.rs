//! One signaling connection: frames from the socket are parsed, rate-limited and handed to the
//! application layer; events the hub queued for this connection become frames here. The
//! session also enforces the idle timeout and maximum connection duration (docs/protocol.md §6.5)
//! and closes after a GO_AWAY's grace period (§6.4). Every error is decided here: a bad
//! message costs the sender a STATUS_RESPONSE (when it gave a correlationId), never the
//! connection; what breaks the WebSocket protocol itself closes it with the RFC 6455 code
//! (1007 invalid UTF-8, 1009 too big, 1002 protocol error), and a client that does not read
//! is closed with 1008 once its outbox is full (docs/behaviour.md "Signaling data plane", slow consumers).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use kvs_core::relay::live::Outcome;
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
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;

/// The longest a close frame may take to go out (a peer that does not read gets none).
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The close a broken frame earns (RFC 6455 §7.4.1), or `None` when the connection is simply
/// gone (an I/O error: nobody is left to tell).
fn close_for(error: axum::Error) -> Option<(u16, String)> {
    use tungstenite::Error as WsError;
    let inner = error.into_inner();
    match inner.downcast_ref::<WsError>()? {
        WsError::Capacity(e) => Some((
            CLOSE_TOO_BIG,
            format!("Message too big ({e}); signaling messages are at most 64 KiB."),
        )),
        WsError::Utf8(_) => Some((
            CLOSE_INVALID_DATA,
            "A text frame held invalid UTF-8.".to_owned(),
        )),
        WsError::Protocol(e) => Some((CLOSE_PROTOCOL, format!("WebSocket protocol error: {e}"))),
        _ => None,
    }
}

const NOT_READING: &str = "The client is not reading its messages; its outbox is full.";

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
    overflow: Arc<tokio::sync::Notify>,
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
    let mut limiter = ConnectionRateLimiter::new(cfg.rate_limits, Arc::clone(state.app.clock()));
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
            () = overflow.notified() => break Some((CLOSE_POLICY, NOT_READING.to_owned())),
            inbound = socket.recv() => {
                let frame = match inbound {
                    None => break None,
                    Some(Err(e)) => break close_for(e),
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
                    // socket is dropped, or the client sees no close frame (1006); a peer that
                    // does not read gets none, as for the close frames sent below.
                    Message::Close(_) => {
                        let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, socket.flush()).await;
                        break None;
                    }
                };
                if let Some(reply) = reply {
                    tokio::select! {
                        r = socket.send(Message::Text(reply.into())) => if r.is_err() {
                            break None;
                        },
                        () = overflow.notified() => {
                            break Some((CLOSE_POLICY, NOT_READING.to_owned()))
                        }
                    }
                }
            }
            out = outbox.recv(), if outbox_open => match out {
                // The hub let go of this connection; keep serving until a timer ends it (a
                // GO_AWAY's grace period is a promise to the client, docs/protocol.md §6.4).
                None => outbox_open = false,
                Some(Event::Close { reason }) => break Some((CLOSE_NORMAL, reason)),
                Some(event) => {
                    let written = tokio::select! {
                        w = write_batch(&mut socket, &mut outbox, event, &mut go_away_end) => w,
                        () = overflow.notified() => Written::NotReading,
                    };
                    match written {
                        Written::Ok => {}
                        Written::Failed => break None,
                        Written::Closing(reason) => break Some((CLOSE_NORMAL, reason)),
                        Written::NotReading => break Some((CLOSE_POLICY, NOT_READING.to_owned())),
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
        tracing::debug!(channel = %conn.channel_arn, role = ?conn.role, code, %reason, "closing signaling connection");
        if code == CLOSE_POLICY {
            inc(&state.app.hub().metrics().connections_closed_slow_consumer);
        }
        let close = socket.send(Message::Close(Some(CloseFrame {
            code,
            reason: truncate_reason(reason).into(),
        })));
        let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, close).await;
    }
    reg.release().await;
    tracing::debug!(channel = %conn.channel_arn, "signaling connection closed");
}

enum Written {
    Ok,
    Failed,
    Closing(String),
    NotReading,
}

/// Writes `first` and what else is already waiting, then flushes once: a burst costs one
/// write (TCP_NODELAY is on, so nothing waits for Nagle either).
async fn write_batch(
    socket: &mut WebSocket,
    outbox: &mut mpsc::Receiver<Event>,
    first: Event,
    go_away_end: &mut Option<Instant>,
) -> Written {
    let mut next = Some(first);
    let mut written = 0;
    let mut closing = None;
    while let Some(event) = next.take() {
        if let Event::Close { reason } = event {
            closing = Some(reason);
            break;
        }
        if let Event::GoAway { grace } = &event {
            let end = Instant::now() + *grace;
            *go_away_end = Some(go_away_end.map_or(end, |e| e.min(end)));
        }
        if let Some(text) = frame(&event) {
            if socket.feed(Message::Text(text.into())).await.is_err() {
                return Written::Failed;
            }
        }
        written += 1;
        if written < WRITE_BURST {
            next = outbox.try_recv().ok();
        }
    }
    if socket.flush().await.is_err() {
        return Written::Failed;
    }
    match closing {
        Some(reason) => Written::Closing(reason),
        None => Written::Ok,
    }
}

/// A close frame's reason is at most 123 bytes (RFC 6455 §5.5.1).
fn truncate_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// Handles one text frame; returns the frame to send back to this client, if any.
async fn handle_text(
    state: &Arc<AppState>,
    conn: &ConnectionId,
    limiter: &mut ConnectionRateLimiter,
    text: &str,
) -> Option<String> {
    let hub = state.app.hub();
    let metrics = hub.metrics();
    let refused = |action: Option<&str>, outcome: Outcome, e: &SignalError| {
        let (channel, role) = (&conn.channel_arn, &conn.role);
        hub.tap_refused(channel, role, action, text.len(), outcome, &e.description);
    };
    let msg = match ClientMessage::parse(text) {
        Ok(m) => m,
        Err(e) => {
            inc(&metrics.messages_rejected);
            refused(None, Outcome::Rejected, &e);
            return status(e);
        }
    };
    if !limiter.allow(msg.action) {
        inc(&metrics.messages_rate_limited);
        let e = SignalError::limit(
            msg.correlation_id,
            format!(
                "Too many {} messages on this connection; slow down.",
                msg.action.as_str()
            ),
        );
        refused(Some(msg.action.as_str()), Outcome::RateLimited, &e);
        return status(e);
    }
    let action = msg.action;
    match state.app.relay(conn, msg).await {
        Ok(()) => None,
        Err(e) => {
            refused(Some(action.as_str()), Outcome::Rejected, &e);
            status(e)
        }
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
