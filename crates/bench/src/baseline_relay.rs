//! `baseline-relay`: a minimal tokio + tungstenite relay of the KVS signaling message shape, the
//! yardstick for kvs-signaling's relay. A connection to `/?X-Amz-ChannelARN=…` without
//! `X-Amz-ClientId` is the channel's master, with it a viewer. Viewer → master messages get
//! `senderClientId` added; master → viewer messages go to `recipientClientId`. No
//! authentication, no store, no held messages, no limits: what is left is the cost of the
//! WebSockets, the JSON and the routing. Each connection has a bounded outbox (1,024 frames);
//! a full outbox makes the sender wait (backpressure), nothing is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::endpoint::listen_addr;

type Outbox = mpsc::Sender<Message>;

#[derive(Default)]
struct Channel {
    master: Option<(u64, Outbox)>,
    viewers: HashMap<String, (u64, Outbox)>,
}

#[derive(Default)]
struct Relay {
    channels: Mutex<HashMap<String, Arc<Mutex<Channel>>>>,
    next_id: AtomicU64,
}

impl Relay {
    fn channel(&self, arn: &str) -> Arc<Mutex<Channel>> {
        let mut map = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(arn.to_string()).or_default())
    }
}

#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(rename = "recipientClientId", borrow, default)]
    recipient_client_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "messagePayload", borrow)]
    message_payload: std::borrow::Cow<'a, str>,
}

pub async fn run(listen: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let addr = listen_addr(listen)?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let listener = TcpListener::bind(addr).await?;
    println!(
        "kvs-bench baseline-relay listening on http://{}",
        listener.local_addr()?
    );
    let relay = Arc::new(Relay::default());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let relay = Arc::clone(&relay);
                tokio::spawn(async move {
                    let _ = serve(relay, stream).await;
                });
            }
        }
    }
    Ok(None)
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

// tungstenite's handshake callback must return its own (large) error response type.
#[allow(clippy::result_large_err)]
async fn serve(relay: Arc<Relay>, stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut query = String::new();
    let cfg = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |req: &Request, resp: Response| {
            query = req.uri().query().unwrap_or("").to_string();
            Ok(resp)
        },
        Some(cfg),
    )
    .await?;
    let Some(arn) = param(&query, "X-Amz-ChannelARN") else {
        return Ok(());
    };
    let client_id = param(&query, "X-Amz-ClientId");
    let chan = relay.channel(&arn);
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(1024);
    {
        let mut c = chan.lock().unwrap_or_else(PoisonError::into_inner);
        match &client_id {
            None => c.master = Some((id, tx)),
            Some(v) => {
                c.viewers.insert(v.clone(), (id, tx));
            }
        }
    }
    let (mut sink, mut source) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            // Write what is queued, then flush once.
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Ok(m) = serde_json::from_str::<Inbound>(text.as_str()) else {
            continue;
        };
        let (out, to) = match &client_id {
            Some(sender) => {
                let out = format!(
                    r#"{{"senderClientId":"{sender}","messageType":"{}","messagePayload":"{}"}}"#,
                    m.action, m.message_payload
                );
                let c = chan.lock().unwrap_or_else(PoisonError::into_inner);
                (out, c.master.as_ref().map(|(_, t)| t.clone()))
            }
            None => {
                let Some(r) = m.recipient_client_id.as_deref() else {
                    continue;
                };
                let out = format!(
                    r#"{{"messageType":"{}","messagePayload":"{}"}}"#,
                    m.action, m.message_payload
                );
                let c = chan.lock().unwrap_or_else(PoisonError::into_inner);
                (out, c.viewers.get(r).map(|(_, t)| t.clone()))
            }
        };
        if let Some(to) = to {
            let _ = to.send(Message::text(out)).await;
        }
    }
    {
        let mut c = chan.lock().unwrap_or_else(PoisonError::into_inner);
        match &client_id {
            None => {
                if c.master.as_ref().is_some_and(|(i, _)| *i == id) {
                    c.master = None;
                }
            }
            Some(v) => {
                if c.viewers.get(v).is_some_and(|(i, _)| *i == id) {
                    c.viewers.remove(v);
                }
            }
        }
    }
    writer.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let q = "X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-east-1%3A0%3Achannel%2Fc%2F1&X-Amz-ClientId=v1";
        assert_eq!(
            param(q, "X-Amz-ChannelARN").as_deref(),
            Some("arn:aws:kinesisvideo:us-east-1:0:channel/c/1")
        );
        assert_eq!(param(q, "X-Amz-ClientId").as_deref(), Some("v1"));
        assert_eq!(param(q, "nope"), None);
    }
}
