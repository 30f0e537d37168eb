//! `control`: N keep-alive HTTP/1.1 connections sending SigV4-signed kinesisvideo requests for a
//! fixed time (and at most `--count` requests), closed loop or at a fixed offered rate.
//!
//! - `describe`: DescribeSignalingChannel of one channel created during setup.
//! - `create`: CreateSignalingChannel of a new name each time.
//! - `update`: each client updates its own channel (created during setup). The update answers an
//!   empty body, so the client re-describes to learn the new Version before its next update;
//!   only the updates are timed and counted in the rate (the describes are reported apart).
//! - `list`: ListSignalingChannels with `BEGINS_WITH` a prefix that `--list-channels` channels
//!   created during setup share (one page: all of them).
//! - `describe-stream`: DescribeStream (for moto, which has no signaling channels); the stream is
//!   created with CreateStream during setup.
//!
//! Setup happens before the timed window. With `--rate`, latency is measured from each
//! request's intended send time, so a stalled server is not hidden (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::endpoint::Endpoint;
use crate::http::{run_id, Client, Conn, Reply};
use crate::sign::{Signed, Signer};
use crate::stats::{round3, Errors, Latency};
use crate::{parse_duration, Identity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    Describe,
    Create,
    Update,
    List,
    DescribeStream,
}

#[derive(Debug, Clone, Args)]
pub struct ControlArgs {
    /// Server to load, http://127.0.0.1:PORT (loopback only).
    #[arg(long)]
    pub endpoint: String,
    #[arg(long, value_enum)]
    pub op: Op,
    /// Concurrent keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Length of the measured window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load sent before the measured window and not counted.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// At most this many requests in all (warm-up included).
    #[arg(long, default_value_t = 10_000_000)]
    pub count: u64,
    /// Offered rate in requests/s over all clients (open loop); default: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A request without an answer after this long counts as a timeout (and reconnects).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Prefix of created channel and stream names.
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// `list`: channels created under the listed prefix (each list answers all of them).
    #[arg(long, default_value_t = 10)]
    pub list_channels: usize,
    #[command(flatten)]
    pub id: Identity,
}

pub async fn run(a: ControlArgs) -> anyhow::Result<Option<Value>> {
    Ok(Some(load(&a).await?))
}

/// What one client does on each request.
enum Work {
    /// A fixed request (describe, describe-stream): signed once per second.
    Fixed {
        path: &'static str,
        body: Bytes,
        cached: Option<(u64, Signed)>,
    },
    Create {
        prefix: String,
        seq: u64,
    },
    Update {
        arn: String,
        version: String,
        ttl: i64,
        describes: u64,
    },
}

impl Work {
    fn request(&mut self, signer: &Signer) -> (&'static str, Bytes, Signed) {
        let now = SystemTime::now();
        match self {
            Work::Fixed { path, body, cached } => {
                // Same body, same second: same signature. The server still verifies each
                // request; this only keeps the load generator's own CPU for sending.
                let sec = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let signed = match cached {
                    Some((s, signed)) if *s == sec => signed.clone(),
                    _ => {
                        let signed = signer.sign_post(path, body, now);
                        *cached = Some((sec, signed.clone()));
                        signed
                    }
                };
                (path, body.clone(), signed)
            }
            Work::Create { prefix, seq } => {
                *seq += 1;
                let body =
                    Bytes::from(json!({ "ChannelName": format!("{prefix}-{seq}") }).to_string());
                let path = "/createSignalingChannel";
                let signed = signer.sign_post(path, &body, now);
                (path, body, signed)
            }
            Work::Update {
                arn, version, ttl, ..
            } => {
                *ttl = if *ttl == 60 { 30 } else { 60 };
                let body = Bytes::from(
                    json!({
                        "ChannelARN": arn,
                        "CurrentVersion": version,
                        "SingleMasterConfiguration": { "MessageTtlSeconds": ttl },
                    })
                    .to_string(),
                );
                let path = "/updateSignalingChannel";
                let signed = signer.sign_post(path, &body, now);
                (path, body, signed)
            }
        }
    }
}

struct Ctx {
    endpoint: Endpoint,
    signer: Signer,
    measure_from: Instant,
    end: Instant,
    count: u64,
    issued: AtomicU64,
    period: Option<Duration>,
    timeout: Duration,
    start: Instant,
}

#[derive(Default)]
struct ClientResult {
    ok: u64,
    /// Every request of the op sent, warm-up and failures included.
    sent: u64,
    lat: Latency,
    errors: Errors,
    describes: u64,
    reopened: u64,
    finished: Option<Instant>,
}

/// Runs the load and returns its JSON result.
pub async fn load(a: &ControlArgs) -> anyhow::Result<Value> {
    let endpoint = Endpoint::parse(&a.endpoint)?;
    let signer = Signer::new(&a.id, &endpoint.host);
    let clients = a.clients.max(1);
    let rid = run_id();

    // Setup, before the timed window: connections, and what each op needs to exist.
    let mut setup = Client::connect(endpoint.addr, signer.clone()).await?;
    let fixed = match a.op {
        Op::Describe => {
            let name = format!("{}-d-{rid}", a.prefix);
            setup.create_channel(&name).await?;
            Some(("/describeSignalingChannel", json!({ "ChannelName": name })))
        }
        Op::DescribeStream => {
            let name = format!("{}-s-{rid}", a.prefix);
            setup
                .call(
                    "/createStream",
                    &json!({ "StreamName": name, "DataRetentionInHours": 24 }),
                )
                .await?;
            Some(("/describeStream", json!({ "StreamName": name })))
        }
        Op::List => {
            let prefix = format!("{}-l-{rid}-", a.prefix);
            let n = a.list_channels.max(1);
            for i in 0..n {
                setup.create_channel(&format!("{prefix}{i}")).await?;
            }
            let body = json!({
                "ChannelNameCondition": {
                    "ComparisonOperator": "BEGINS_WITH",
                    "ComparisonValue": prefix,
                },
            });
            let listed = setup.call("/listSignalingChannels", &body).await?;
            let got = listed["ChannelInfoList"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(
                got == n,
                "ListSignalingChannels with BEGINS_WITH {prefix} answered {got} channels, not {n}"
            );
            Some(("/listSignalingChannels", body))
        }
        Op::Create | Op::Update => None,
    };
    let mut works = Vec::with_capacity(clients);
    for i in 0..clients {
        works.push(match (a.op, &fixed) {
            (_, Some((path, body))) => Work::Fixed {
                path,
                body: Bytes::from(body.to_string()),
                cached: None,
            },
            (Op::Create, _) => Work::Create {
                prefix: format!("{}-c-{rid}-{i}", a.prefix),
                seq: 0,
            },
            _ => {
                let arn = setup
                    .create_channel(&format!("{}-u-{rid}-{i}", a.prefix))
                    .await?;
                let version = setup.channel_version(&arn).await?;
                Work::Update {
                    arn,
                    version,
                    ttl: 60,
                    describes: 0,
                }
            }
        });
    }
    drop(setup);
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::connect(endpoint.addr, &endpoint.host).await?);
    }

    let start = Instant::now();
    let measure_from = start + a.warmup;
    let ctx = Arc::new(Ctx {
        endpoint,
        signer,
        measure_from,
        end: measure_from + a.duration,
        count: a.count,
        issued: AtomicU64::new(0),
        period: a
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(clients as f64 / r)),
        timeout: a.timeout,
        start,
    });
    let mut tasks = Vec::with_capacity(clients);
    for (i, (conn, work)) in conns.into_iter().zip(works).enumerate() {
        let ctx = Arc::clone(&ctx);
        tasks.push(tokio::spawn(client_loop(i, clients, conn, work, ctx)));
    }
    let mut total = ClientResult::default();
    for t in tasks {
        let r = t.await.context("client task failed")?;
        total.ok += r.ok;
        total.sent += r.sent;
        total.lat.add(&r.lat);
        total.errors.merge(r.errors);
        total.describes += r.describes;
        total.reopened += r.reopened;
        total.finished = total.finished.max(r.finished);
    }
    let window = total
        .finished
        .unwrap_or(ctx.end)
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    let mut out = json!({
        "bench": "control",
        "op": format!("{:?}", a.op).to_lowercase(),
        "clients": clients,
        "window_s": round3(window),
        "ok": total.ok,
        // Warm-up and failed requests included (setup and the describes between updates not):
        // per-request costs measured around the whole run divide by this.
        "requests_total": total.sent,
        "rps": round3(total.ok as f64 / window),
        "latency": total.lat.summary(),
        "errors": total.errors.to_json(),
        "offered_rps": a.rate,
        "connections_reopened": total.reopened,
    });
    if a.op == Op::Update {
        out["describes_between_updates"] = json!(total.describes);
    }
    if a.op == Op::List {
        out["channels_per_list"] = json!(a.list_channels.max(1));
    }
    Ok(out)
}

async fn client_loop(
    idx: usize,
    clients: usize,
    mut conn: Conn,
    mut work: Work,
    ctx: Arc<Ctx>,
) -> ClientResult {
    let mut r = ClientResult::default();
    // Open loop: client i sends at start + (i/clients + k) * period, spreading the clients.
    let mut next = ctx
        .period
        .map(|p| ctx.start + p.mul_f64(idx as f64 / clients as f64));
    loop {
        if ctx.issued.fetch_add(1, Ordering::Relaxed) >= ctx.count {
            break;
        }
        let intended = match (next.as_mut(), ctx.period) {
            (Some(n), Some(p)) => {
                let at = *n;
                *n += p;
                if at >= ctx.end {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                at
            }
            _ => Instant::now(),
        };
        if Instant::now() >= ctx.end {
            break;
        }
        let (path, body, signed) = work.request(&ctx.signer);
        let t0 = Instant::now();
        let reply = conn.post(path, body, &signed, ctx.timeout).await;
        let t1 = Instant::now();
        r.sent += 1;
        let measured = t0 >= ctx.measure_from;
        match reply {
            Reply::Ok { status, .. } if (200..300).contains(&status) => {
                if measured {
                    r.ok += 1;
                    r.lat.record(t1 - intended);
                }
                if let Work::Update {
                    arn,
                    version,
                    describes,
                    ..
                } = &mut work
                {
                    *describes += 1;
                    r.describes += 1;
                    if let Err(e) = refresh_version(&mut conn, &ctx, arn, version).await {
                        r.errors.add("describe-after-update".into(), || e);
                    }
                }
            }
            Reply::Ok { status, body } => {
                let kind = error_type(&body);
                if measured {
                    r.errors.add(format!("{status} {kind}"), || {
                        format!("{path}: HTTP {status} {}", String::from_utf8_lossy(&body))
                    });
                }
                if let Work::Update { arn, version, .. } = &mut work {
                    if kind == "VersionMismatchException" {
                        let _ = refresh_version(&mut conn, &ctx, arn, version).await;
                    }
                }
            }
            Reply::Timeout => {
                r.errors
                    .add("timeout".into(), || format!("{path}: no answer"));
                r.reopened += std::mem::take(&mut conn.reopened);
                conn = match reconnect(&ctx).await {
                    Some(c) => c,
                    None => break,
                };
            }
            Reply::Io(e) => {
                r.reopened += std::mem::take(&mut conn.reopened);
                r.errors.add("io".into(), || format!("{path}: {e}"));
                conn = match reconnect(&ctx).await {
                    Some(c) => c,
                    None => break,
                };
            }
        }
    }
    r.reopened += conn.reopened;
    r.finished = Some(Instant::now());
    r
}

/// A new connection, retried until the window ends.
async fn reconnect(ctx: &Ctx) -> Option<Conn> {
    while Instant::now() < ctx.end {
        if let Ok(c) = Conn::connect(ctx.endpoint.addr, &ctx.endpoint.host).await {
            return Some(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn refresh_version(
    conn: &mut Conn,
    ctx: &Ctx,
    arn: &str,
    version: &mut String,
) -> Result<(), String> {
    let path = "/describeSignalingChannel";
    let body = Bytes::from(json!({ "ChannelARN": arn }).to_string());
    let signed = ctx.signer.sign_post(path, &body, SystemTime::now());
    match conn.post(path, body, &signed, ctx.timeout).await {
        Reply::Ok { status: 200, body } => {
            let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            match v["ChannelInfo"]["Version"].as_str() {
                Some(s) => {
                    *version = s.to_string();
                    Ok(())
                }
                None => Err("describe answered no Version".into()),
            }
        }
        Reply::Ok { status, body } => Err(format!(
            "describe: HTTP {status} {}",
            String::from_utf8_lossy(&body)
        )),
        Reply::Timeout => Err("describe: timeout".into()),
        Reply::Io(e) => Err(format!("describe: {e}")),
    }
}

/// AWS error type from a JSON error body (`__type`, possibly `prefix#Name`).
fn error_type(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["__type"].as_str().map(str::to_string))
        .map(|t| t.rsplit('#').next().unwrap_or(&t).to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_read_from_bodies() {
        assert_eq!(
            error_type(br#"{"__type":"VersionMismatchException","Message":"x"}"#),
            "VersionMismatchException"
        );
        assert_eq!(error_type(br#"{"__type":"aws#Nope"}"#), "Nope");
        assert_eq!(error_type(b"<html>"), "unknown");
    }
}
