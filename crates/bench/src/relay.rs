//! `relay`: C channels x (1 master + V viewers) over real WebSockets. Each viewer sends
//! `SDP_OFFER` (or `ICE_CANDIDATE`) messages whose payload is base64 of `{"s":SEQ,"t":MICROS}`;
//! the master answers each with `SDP_ANSWER` (or `ICE_CANDIDATE`) to its sender, carrying the same
//! payload, and the viewer measures the round trip.
//!
//! Closed loop (default): K messages in flight per viewer. Open loop (`--rate R`): R round trips
//! per second in all, spread evenly over the viewers. `rtt` is timed from the actual send;
//! `rtt_from_intended` from the time the message was due, which also shows a load generator or
//! server falling behind (no coordinated omission) but includes tokio's 1 ms timer granularity. Relayed messages count each direction as one (an offer reaching the master is one, its
//! answer reaching the viewer another). Lost: sent in the window but never answered by the end
//! of the grace period. Out of order: an answer whose sequence number is not above the last one
//! that viewer received.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::{Args, ValueEnum};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::endpoint::Endpoint;
use crate::http::{run_id, Client};
use crate::sign::Signer;
use crate::stats::{round3, Errors, Latency};
use crate::{parse_duration, Identity};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Viewer sends SDP_OFFER, master answers SDP_ANSWER.
    Sdp,
    /// ICE_CANDIDATE both ways.
    Ice,
}

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// Server, http://127.0.0.1:PORT (loopback only): channels are created there and masters
    /// connect there (ws://HOST:PORT/); viewers too unless `--viewer-endpoint` is given.
    #[arg(long)]
    pub endpoint: String,
    /// Servers the viewers connect to instead (repeat the flag or separate with commas), placed
    /// round-robin: viewer k of all (channel-major order) goes to the k-th modulo their number.
    /// With nodes sharing one store this makes every relayed message cross nodes.
    #[arg(long, value_delimiter = ',')]
    pub viewer_endpoint: Vec<String>,
    #[arg(long, default_value_t = 50)]
    pub channels: usize,
    /// Viewers per channel.
    #[arg(long, default_value_t = 1)]
    pub viewers: usize,
    /// Closed loop: messages in flight per viewer.
    #[arg(long, default_value_t = 16)]
    pub inflight: usize,
    /// Open loop: round trips per second in all (each is two relayed messages).
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// After the window, how long to wait for the answers still in flight.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub grace: Duration,
    /// At most this many messages sent per viewer.
    #[arg(long, default_value_t = 10_000_000)]
    pub count: u64,
    #[arg(long, value_enum, default_value_t = Kind::Sdp)]
    pub message: Kind,
    /// Extra payload bytes (before base64) to make messages SDP-sized.
    #[arg(long, default_value_t = 0)]
    pub pad: usize,
    /// Skip the control plane: build channel ARNs locally (for the baseline relay).
    #[arg(long)]
    pub no_control: bool,
    #[command(flatten)]
    pub id: Identity,
}

struct Ctx {
    base: Instant,
    measure_from: Instant,
    end: Instant,
    hard_end: Instant,
    inflight: usize,
    count: u64,
    period: Option<Duration>,
    viewers_total: usize,
    send_action: &'static str,
    answer_action: &'static str,
    pad: String,
}

impl Ctx {
    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.measure_from && at <= self.end
    }

    /// `intended`: when the message was due (open loop); it is sent now.
    fn message(&self, seq: u64, intended: Instant) -> Message {
        let inner = format!(
            r#"{{"s":{seq},"t":{},"a":{}{}}}"#,
            self.micros(intended),
            self.micros(Instant::now()),
            self.pad
        );
        let payload = STANDARD.encode(inner.as_bytes());
        Message::text(format!(
            r#"{{"action":"{}","messagePayload":"{payload}"}}"#,
            self.send_action
        ))
    }
}

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "messageType", borrow)]
    message_type: Option<Cow<'a, str>>,
    #[serde(rename = "senderClientId", borrow)]
    sender_client_id: Option<Cow<'a, str>>,
    #[serde(rename = "messagePayload", borrow)]
    message_payload: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Stamp {
    s: u64,
    /// Intended send time (µs since `Ctx::base`).
    t: u64,
    /// Actual send time.
    a: u64,
}

#[derive(Default)]
struct ViewerResult {
    sent: u64,
    sent_in_window: u64,
    answered: u64,
    answered_of_window: u64,
    received_in_window: u64,
    out_of_order: u64,
    status_responses: u64,
    rtt: Latency,
    rtt_due: Latency,
    errors: Errors,
}

#[derive(Default)]
struct MasterResult {
    received: u64,
    received_in_window: u64,
    status_responses: u64,
    errors: Errors,
}

pub async fn run(a: RelayArgs) -> anyhow::Result<Option<Value>> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let endpoint = Endpoint::parse(&a.endpoint)?;
    let signer = Signer::new(&a.id, &endpoint.host);
    let viewer_signers = viewer_signers(&a, &signer)?;
    let rid = run_id();
    let channels = a.channels.max(1);
    let viewers = a.viewers.max(1);

    // Setup: channels, then per channel the master first (so nothing is ever held), then viewers.
    let mut arns = Vec::with_capacity(channels);
    if a.no_control {
        for i in 0..channels {
            arns.push(format!(
                "arn:aws:kinesisvideo:{}:000000000000:channel/bench-r-{rid}-{i}/1",
                a.id.region
            ));
        }
    } else {
        let mut client = Client::connect(endpoint.addr, signer.clone()).await?;
        for i in 0..channels {
            arns.push(client.create_channel(&format!("bench-r-{rid}-{i}")).await?);
        }
    }
    let conns = futures_util::stream::iter(arns.iter().enumerate().map(|(i, arn)| {
        let signer = signer.clone();
        let viewer_signers = &viewer_signers;
        async move {
            let master = connect(&signer.ws_url(arn, None, SystemTime::now())).await?;
            let mut vs = Vec::with_capacity(viewers);
            for j in 0..viewers {
                let id = format!("v{i}-{j}");
                let vsig = &viewer_signers[(i * viewers + j) % viewer_signers.len()];
                vs.push(connect(&vsig.ws_url(arn, Some(&id), SystemTime::now())).await?);
            }
            anyhow::Ok((master, vs))
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;

    let viewers_total = channels * viewers;
    let base = Instant::now();
    let measure_from = base + a.warmup;
    let end = measure_from + a.duration;
    let (send_action, answer_action) = match a.message {
        Kind::Sdp => ("SDP_OFFER", "SDP_ANSWER"),
        Kind::Ice => ("ICE_CANDIDATE", "ICE_CANDIDATE"),
    };
    let ctx = Arc::new(Ctx {
        base,
        measure_from,
        end,
        hard_end: end + a.grace,
        inflight: a.inflight.max(1),
        count: a.count,
        period: a
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(viewers_total as f64 / r)),
        viewers_total,
        send_action,
        answer_action,
        pad: if a.pad > 0 {
            format!(r#","p":"{}""#, "x".repeat(a.pad))
        } else {
            String::new()
        },
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut masters = Vec::new();
    let mut viewer_tasks = Vec::new();
    let mut vidx = 0usize;
    for c in conns {
        let (m, vs) = c.context("connecting the signaling WebSockets")?;
        masters.push(tokio::spawn(master(m, Arc::clone(&ctx), stop_rx.clone())));
        for v in vs {
            viewer_tasks.push(tokio::spawn(viewer(v, Arc::clone(&ctx), vidx)));
            vidx += 1;
        }
    }
    let mut vt = ViewerResult::default();
    for t in viewer_tasks {
        let r = t.await.context("viewer task failed")?;
        vt.sent += r.sent;
        vt.sent_in_window += r.sent_in_window;
        vt.answered += r.answered;
        vt.answered_of_window += r.answered_of_window;
        vt.received_in_window += r.received_in_window;
        vt.out_of_order += r.out_of_order;
        vt.status_responses += r.status_responses;
        vt.rtt.add(&r.rtt);
        vt.rtt_due.add(&r.rtt_due);
        vt.errors.merge(r.errors);
    }
    let _ = stop_tx.send(true);
    let mut mt = MasterResult::default();
    for t in masters {
        let r = t.await.context("master task failed")?;
        mt.received += r.received;
        mt.received_in_window += r.received_in_window;
        mt.status_responses += r.status_responses;
        mt.errors.merge(r.errors);
    }
    let window = a.duration.as_secs_f64().max(1e-9);
    let relayed = mt.received_in_window + vt.received_in_window;
    Ok(Some(json!({
        "bench": "relay",
        "mode": if ctx.period.is_some() { "open" } else { "closed" },
        "channels": channels,
        "viewers_per_channel": viewers,
        "viewer_endpoints": viewer_signers.iter().map(|s| s.host.clone()).collect::<Vec<_>>(),
        "inflight_per_viewer": if ctx.period.is_some() { Value::Null } else { json!(ctx.inflight) },
        "offered_round_trips_per_s": a.rate,
        "offered_msgs_per_s": a.rate.map(|r| r * 2.0),
        "window_s": round3(window),
        "relayed_in_window": relayed,
        // Every message relayed during the whole run (warm-up and grace included): offers the
        // masters received plus answers the viewers received. Per-message costs divide by this.
        "relayed_total": mt.received + vt.answered,
        "msgs_per_s": round3(relayed as f64 / window),
        "round_trips_per_s": round3(vt.received_in_window as f64 / window),
        "rtt": vt.rtt.summary(),
        "rtt_from_intended": vt.rtt_due.summary(),
        "sent": vt.sent,
        "answered": vt.answered,
        "lost": vt.sent.saturating_sub(vt.answered),
        "lost_of_window": vt.sent_in_window.saturating_sub(vt.answered_of_window),
        "out_of_order": vt.out_of_order,
        "status_responses": vt.status_responses + mt.status_responses,
        "viewer_errors": vt.errors.to_json(),
        "master_errors": mt.errors.to_json(),
    })))
}

/// One signer per server the viewers connect to (its host goes into the presigned URL); the
/// master's server when no `--viewer-endpoint` is given.
fn viewer_signers(a: &RelayArgs, master: &Signer) -> anyhow::Result<Vec<Signer>> {
    if a.viewer_endpoint.is_empty() {
        return Ok(vec![master.clone()]);
    }
    a.viewer_endpoint
        .iter()
        .map(|url| Ok(Signer::new(&a.id, &Endpoint::parse(url)?.host)))
        .collect()
}

/// Connects a WebSocket with small buffers (the load generator holds many).
pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let cfg = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(url, Some(cfg), true),
    )
    .await
    .context("WebSocket connect timed out")?
    .with_context(|| {
        format!(
            "WebSocket connect to {}",
            url.split('?').next().unwrap_or(url)
        )
    })?;
    Ok(ws)
}

async fn master(ws: Ws, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) -> MasterResult {
    let mut r = MasterResult::default();
    let (mut sink, mut stream) = ws.split();
    let hard_end = ctx.hard_end + Duration::from_secs(1);
    loop {
        let next = tokio::select! {
            _ = stop.changed() => break,
            n = tokio::time::timeout_at(hard_end.into(), stream.next()) => n,
        };
        let msg = match next {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                r.errors.add("read".into(), || e.to_string());
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let now = Instant::now();
        let Ok(m) = serde_json::from_str::<Incoming>(text.as_str()) else {
            r.errors.add("unparsable".into(), || text.to_string());
            continue;
        };
        if m.message_type.as_deref() == Some("STATUS_RESPONSE") {
            r.status_responses += 1;
            r.errors.add("STATUS_RESPONSE".into(), || text.to_string());
            continue;
        }
        let (Some(sender), Some(payload)) = (m.sender_client_id, m.message_payload) else {
            r.errors
                .add("no sender or payload".into(), || text.to_string());
            continue;
        };
        r.received += 1;
        if ctx.in_window(now) {
            r.received_in_window += 1;
        }
        let answer = format!(
            r#"{{"action":"{}","recipientClientId":"{sender}","messagePayload":"{payload}"}}"#,
            ctx.answer_action
        );
        if let Err(e) = sink.send(Message::text(answer)).await {
            r.errors.add("write".into(), || e.to_string());
            break;
        }
    }
    let _ = sink.close().await;
    r
}

/// Receives answers; in closed loop, sends the next message for each answer.
async fn viewer(ws: Ws, ctx: Arc<Ctx>, vidx: usize) -> ViewerResult {
    let mut r = ViewerResult::default();
    let (sink, mut stream) = ws.split();
    // Closed loop: the sink stays here; open loop: the sender task owns it and gives it back.
    let mut sink = Some(sink);
    let open = ctx.period.is_some();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_in_window = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut sender = None;
    if let (Some(period), Some(mut sink)) = (ctx.period, sink.take_if(|_| open)) {
        let (ctx2, sent2, siw2, done2) = (
            Arc::clone(&ctx),
            Arc::clone(&sent),
            Arc::clone(&sent_in_window),
            Arc::clone(&done),
        );
        sender = Some(tokio::spawn(async move {
            let res = open_sender(&mut sink, &ctx2, vidx, period, &sent2, &siw2).await;
            done2.store(true, Ordering::Release);
            (sink, res)
        }));
    } else if let Some(sink) = sink.as_mut() {
        for _ in 0..ctx.inflight {
            if !send_next(sink, &ctx, &sent, &sent_in_window, &mut r).await {
                break;
            }
        }
    }
    let mut last: Option<u64> = None;
    loop {
        let answered = r.answered;
        let all_in = answered >= sent.load(Ordering::Acquire);
        if Instant::now() >= ctx.end && all_in && (!open || done.load(Ordering::Acquire)) {
            break;
        }
        let now = Instant::now();
        let wait_until = if now < ctx.end {
            ctx.end
        } else if all_in {
            (now + Duration::from_millis(10)).min(ctx.hard_end)
        } else {
            ctx.hard_end
        };
        let msg = match tokio::time::timeout_at(wait_until.into(), stream.next()).await {
            Err(_) if Instant::now() >= ctx.hard_end => break,
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                r.errors.add("read".into(), || e.to_string());
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let now = Instant::now();
        let Ok(m) = serde_json::from_str::<Incoming>(text.as_str()) else {
            r.errors.add("unparsable".into(), || text.to_string());
            continue;
        };
        if m.message_type.as_deref() == Some("STATUS_RESPONSE") {
            r.status_responses += 1;
            r.errors.add("STATUS_RESPONSE".into(), || text.to_string());
            continue;
        }
        let Some(stamp) = m
            .message_payload
            .and_then(|p| STANDARD.decode(p.as_bytes()).ok())
            .and_then(|b| serde_json::from_slice::<Stamp>(&b).ok())
        else {
            r.errors.add("bad payload".into(), || text.to_string());
            continue;
        };
        r.answered += 1;
        if last.is_some_and(|l| stamp.s <= l) {
            r.out_of_order += 1;
        }
        last = Some(last.map_or(stamp.s, |l| l.max(stamp.s)));
        let due = ctx.base + Duration::from_micros(stamp.t);
        let sent_at = ctx.base + Duration::from_micros(stamp.a);
        if ctx.in_window(due) {
            r.answered_of_window += 1;
            r.rtt.record(now.saturating_duration_since(sent_at));
            r.rtt_due.record(now.saturating_duration_since(due));
        }
        if ctx.in_window(now) {
            r.received_in_window += 1;
        }
        if let Some(sink) = sink.as_mut().filter(|_| now < ctx.end) {
            if !send_next(sink, &ctx, &sent, &sent_in_window, &mut r).await {
                break;
            }
        }
    }
    if let Some(h) = sender {
        if let Ok((s, res)) = h.await {
            if let Err(e) = res {
                r.errors.add("write".into(), || e);
            }
            sink = Some(s);
        }
    }
    if let Some(mut s) = sink {
        let _ = s.close().await;
    }
    r.sent = sent.load(Ordering::Acquire);
    r.sent_in_window = sent_in_window.load(Ordering::Acquire);
    r
}

async fn send_next(
    sink: &mut SplitSink<Ws, Message>,
    ctx: &Ctx,
    sent: &AtomicU64,
    sent_in_window: &AtomicU64,
    r: &mut ViewerResult,
) -> bool {
    let seq = sent.load(Ordering::Acquire);
    if seq >= ctx.count {
        return false;
    }
    let now = Instant::now();
    match sink.send(ctx.message(seq, now)).await {
        Ok(()) => {
            sent.store(seq + 1, Ordering::Release);
            if ctx.in_window(now) {
                sent_in_window.fetch_add(1, Ordering::Relaxed);
            }
            true
        }
        Err(e) => {
            r.errors.add("write".into(), || e.to_string());
            false
        }
    }
}

/// Open loop: one message every `period`, this viewer's phase offset by its index.
async fn open_sender(
    sink: &mut SplitSink<Ws, Message>,
    ctx: &Ctx,
    vidx: usize,
    period: Duration,
    sent: &AtomicU64,
    sent_in_window: &AtomicU64,
) -> Result<(), String> {
    let mut at = ctx.base + period.mul_f64(vidx as f64 / ctx.viewers_total as f64);
    let mut seq = 0u64;
    while at < ctx.end && seq < ctx.count {
        tokio::time::sleep_until(at.into()).await;
        // Stamped with the intended time: a late send shows up in the round trip.
        sink.send(ctx.message(seq, at))
            .await
            .map_err(|e| e.to_string())?;
        seq += 1;
        sent.store(seq, Ordering::Release);
        if ctx.in_window(at) {
            sent_in_window.fetch_add(1, Ordering::Relaxed);
        }
        at += period;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        relay: RelayArgs,
    }

    fn hosts(args: &[&str]) -> anyhow::Result<Vec<String>> {
        let cli = Cli::try_parse_from(
            ["relay", "--endpoint", "http://127.0.0.1:1"]
                .iter()
                .chain(args),
        )?;
        let master = Signer::new(&cli.relay.id, "127.0.0.1:1");
        Ok(viewer_signers(&cli.relay, &master)?
            .into_iter()
            .map(|s| s.host)
            .collect())
    }

    #[test]
    fn viewers_connect_to_the_master_server_unless_told_otherwise() {
        assert_eq!(hosts(&[]).unwrap(), ["127.0.0.1:1"]);
        assert_eq!(
            hosts(&[
                "--viewer-endpoint",
                "http://127.0.0.1:2,127.0.0.1:3",
                "--viewer-endpoint",
                "ws://127.0.0.1:4/",
            ])
            .unwrap(),
            ["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"]
        );
        assert!(hosts(&["--viewer-endpoint", "http://10.0.0.1:80"]).is_err());
    }
}
