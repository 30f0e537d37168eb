//! The console's event streams (server-sent events): the live view of one channel, fed by the
//! hub's feed from every node (docs/console.md "Live view events"), and the inspector's stream of
//! new calls. Each stream holds a [`StreamSlot`]; it ends when its client goes away.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use kvs_core::ids::ResourceArn;
use kvs_core::relay::watch::{peer_name, FeedItem, What, WATCH_RENEW};
use kvs_core::relay::HeldMessage;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{caller, StreamSlot};
use crate::aws::error::ApiError;
use crate::state::SharedState;

#[derive(Deserialize)]
pub struct LiveQuery {
    channel: String,
    payloads: Option<String>,
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

fn held_json(held: &[HeldMessage]) -> Value {
    Value::Array(
        held.iter()
            .map(|h| {
                json!({
                    "recipient": peer_name(&h.recipient),
                    "type": h.message.action.as_str(),
                    "size": h.message.payload.len(),
                    "sender": h.message.sender.clone().unwrap_or_else(|| "MASTER".to_owned()),
                    "expiresAt": h.expires_at_millis,
                })
            })
            .collect(),
    )
}

/// The feed event as the page reads it; `None` for what is not this view's.
fn view_of(item: FeedItem, channel: &str, payloads: bool) -> Option<(&'static str, Value)> {
    let FeedItem::Event { channel: on, event } = item else {
        return None;
    };
    if on != channel {
        return None;
    }
    let node = event.node;
    let at = event.at_ms;
    Some(match event.what {
        What::Connected {
            role,
            client_id,
            since_ms,
            from,
        } => (
            "connected",
            json!({ "role": role, "clientId": client_id, "since": since_ms, "from": from, "node": node }),
        ),
        What::Disconnected {
            role,
            client_id,
            reason,
        } => (
            "disconnected",
            json!({ "role": role, "clientId": client_id, "node": node, "reason": reason }),
        ),
        What::Message {
            action,
            size,
            from,
            to,
            outcome,
            reason,
            payload,
        } => {
            let mut m = json!({
                "at": at, "node": node, "type": action, "size": size, "from": from, "to": to,
                "outcome": outcome, "reason": reason,
            });
            // Another watcher of the channel may have asked for payloads: this one did not.
            if let (true, Some(p)) = (payloads, payload) {
                m["payload"] = Value::String(p);
            }
            ("message", m)
        }
        What::GoAway { connections } => (
            "goaway",
            json!({ "at": at, "node": node, "connections": connections }),
        ),
        What::HeldChanged => ("held", Value::Null),
    })
}

struct Live {
    state: SharedState,
    channel: String,
    payloads: bool,
    rx: broadcast::Receiver<FeedItem>,
    renew: tokio::time::Interval,
    /// Events to send before reading more.
    queue: std::collections::VecDeque<Event>,
    _slot: StreamSlot,
}

impl Live {
    async fn snapshot(&self) -> Event {
        let hub = self.state.app.hub();
        let connections: Vec<Value> = hub
            .connected(&self.channel)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|(r, _)| r.is_master() || r.is_viewer())
            .map(|(r, m)| {
                let (role, client_id) = match &r {
                    kvs_core::relay::Role::Viewer(id) => ("VIEWER", Some(id.clone())),
                    _ => ("MASTER", None),
                };
                json!({ "role": role, "clientId": client_id, "since": null, "from": null, "node": m.node.to_string() })
            })
            .collect();
        let held = hub.held_messages(&self.channel).await.unwrap_or_default();
        event(
            "snapshot",
            &json!({ "connections": connections, "held": held_json(&held) }),
        )
    }

    async fn held(&self) -> Event {
        let held = self
            .state
            .app
            .hub()
            .held_messages(&self.channel)
            .await
            .unwrap_or_default();
        event("held", &json!({ "held": held_json(&held) }))
    }

    async fn next(&mut self) -> Event {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return e;
            }
            tokio::select! {
                _ = self.renew.tick() => {
                    self.state.app.hub().watch_channel(&self.channel, self.payloads);
                }
                item = self.rx.recv() => match item {
                    Ok(item) => match view_of(item, &self.channel, self.payloads) {
                        Some(("held", _)) => return self.held().await,
                        Some((name, data)) => return event(name, &data),
                        None => {}
                    },
                    Err(RecvError::Lagged(n)) => {
                        self.queue.push_back(self.snapshot().await);
                        return event("lagged", &json!({ "missed": n }));
                    }
                    Err(RecvError::Closed) => {
                        // The feed was replaced or is gone: start over on the current one.
                        self.rx = self.state.app.hub().live_feed();
                        self.state.app.hub().watch_channel(&self.channel, self.payloads);
                    }
                },
            }
        }
    }
}

pub async fn live(
    State(state): State<SharedState>,
    Query(q): Query<LiveQuery>,
    req: Request,
) -> Response {
    match open_live(state, q, req).await {
        Ok(s) => s.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn open_live(
    state: SharedState,
    q: LiveQuery,
    req: Request,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let who = caller(&state, req.headers())?;
    let arn = ResourceArn::parse("channel", &q.channel)?;
    state.app.channels().get_by_arn(&who.ns, &arn).await?;
    let slot = StreamSlot::take(&state)?;
    let payloads = matches!(q.payloads.as_deref(), Some("1" | "true"));
    // Subscribed before the watch is published, so no node's roll call is missed.
    let rx = state.app.hub().live_feed();
    let mut renew = tokio::time::interval(WATCH_RENEW);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut live = Live {
        state,
        channel: arn.to_string(),
        payloads,
        rx,
        renew,
        queue: Default::default(),
        _slot: slot,
    };
    // The interval's first tick is now: it publishes the watch.
    let first = live.snapshot().await;
    live.queue.push_back(first);
    let stream = stream::unfold(live, |mut live| async move {
        let e = live.next().await;
        Some((Ok(e), live))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Deserialize)]
pub struct StreamQuery {
    channel: Option<String>,
}

pub async fn inspector_stream(
    State(state): State<SharedState>,
    Query(q): Query<StreamQuery>,
    req: Request,
) -> Response {
    let who = match caller(&state, req.headers()) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let slot = match StreamSlot::take(&state) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let account = who.ns.account.to_string();
    let rx = state.console.inspector.subscribe();
    let stream = stream::unfold(
        (rx, account, q.channel, slot),
        |(mut rx, account, filter, slot)| async move {
            loop {
                match rx.recv().await {
                    Ok((a, call)) if a == account && call.matches(filter.as_deref()) => {
                        let data = serde_json::to_value(&call).unwrap_or(Value::Null);
                        return Some((
                            Ok::<_, Infallible>(event("call", &data)),
                            (rx, account, filter, slot),
                        ));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let e = event("lagged", &json!({ "missed": n }));
                        return Some((Ok(e), (rx, account, filter, slot)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
