//! `idle`: K signaling WebSockets held open (1 master + V viewers per channel), the client
//! sockets bound to 127.0.0.2, 127.0.0.3, … so no single source address runs out of ports. With
//! `--server-pid`, the server's VmRSS is read before connecting and while the connections are
//! held: the difference divided by the connections is the RSS per connection. While they are
//! held, a small open-loop DescribeSignalingChannel load measures control-plane latency.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::control::{self, ControlArgs, Op};
use crate::endpoint::Endpoint;
use crate::http::{run_id, Client};
use crate::sign::Signer;
use crate::stats::{round3, Errors};
use crate::{parse_duration, Identity};

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Server, http://127.0.0.1:PORT (loopback only).
    #[arg(long)]
    pub endpoint: String,
    /// WebSocket connections to open and hold.
    #[arg(long, default_value_t = 15_000)]
    pub connections: usize,
    /// How long to hold them (the control-plane load runs meanwhile).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Viewers per channel besides its master (the server allows 10 by default).
    #[arg(long, default_value_t = 10)]
    pub viewers_per_channel: usize,
    /// Source addresses 127.0.0.2 .. 127.0.0.(1+N).
    #[arg(long, default_value_t = 8)]
    pub sources: u8,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// The server's pid, to read its VmRSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Control-plane clients while the connections are held.
    #[arg(long, default_value_t = 4)]
    pub control_clients: usize,
    /// Their offered rate in requests/s, in all.
    #[arg(long, default_value_t = 400.0)]
    pub control_rate: f64,
    #[command(flatten)]
    pub id: Identity,
}

type Ws = WebSocketStream<TcpStream>;

pub async fn run(a: IdleArgs) -> anyhow::Result<Option<Value>> {
    let nofile = rlimit::increase_nofile_limit(u64::MAX).ok();
    let endpoint = Endpoint::parse(&a.endpoint)?;
    let signer = Signer::new(&a.id, &endpoint.host);
    let per_channel = a.viewers_per_channel + 1;
    let n_channels = a.connections.div_ceil(per_channel);
    let rid = run_id();

    // Channels, 8 creators at a time.
    let started = Instant::now();
    let arns: Vec<String> = {
        let mut tasks = Vec::new();
        let creators = 8.min(n_channels.max(1));
        for c in 0..creators {
            let signer = signer.clone();
            let addr = endpoint.addr;
            let rid = rid.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr, signer).await?;
                let mut out = Vec::new();
                for i in (c..n_channels).step_by(creators) {
                    out.push((
                        i,
                        client.create_channel(&format!("bench-i-{rid}-{i}")).await?,
                    ));
                }
                anyhow::Ok(out)
            }));
        }
        let mut all = Vec::with_capacity(n_channels);
        for t in tasks {
            all.extend(t.await.context("creator task")??);
        }
        all.sort();
        all.into_iter().map(|(_, a)| a).collect()
    };
    let create_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = a.server_pid.and_then(rss_kib);

    // Connect everything.
    let (stop_tx, stop_rx) = watch::channel(false);
    let closed_early = Arc::new(AtomicU64::new(0));
    let sources = a.sources.max(1);
    let t_connect = Instant::now();
    let results = futures_util::stream::iter((0..a.connections).map(|i| {
        let ch = i / per_channel;
        let client_id = match i % per_channel {
            0 => None,
            j => Some(format!("i{ch}-{j}")),
        };
        let url = signer.ws_url(&arns[ch], client_id.as_deref(), SystemTime::now());
        let src = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            2 + (i % usize::from(sources)) as u8,
        ));
        let addr = endpoint.addr;
        async move { connect_from(src, addr, &url).await }
    }))
    .buffer_unordered(a.connect_concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let connect_s = t_connect.elapsed().as_secs_f64();
    let mut errors = Errors::default();
    let mut holders = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(ws) => holders.push(tokio::spawn(hold(
                ws,
                stop_rx.clone(),
                Arc::clone(&closed_early),
            ))),
            Err(e) => errors.add(kind_of(&e), || format!("{e:#}")),
        }
    }
    let connected = holders.len();
    eprintln!(
        "idle: {connected} of {} connections open in {connect_s:.1}s",
        a.connections
    );

    // Hold them while a small control-plane load runs; sample RSS meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_held_start = a.server_pid.and_then(rss_kib);
    let ctl_args = ControlArgs {
        endpoint: a.endpoint.clone(),
        op: Op::Describe,
        clients: a.control_clients.max(1),
        duration: a.hold,
        warmup: Duration::ZERO,
        count: 10_000_000,
        rate: Some(a.control_rate),
        timeout: Duration::from_secs(5),
        prefix: "bench-idle".into(),
        list_channels: 10,
        id: a.id.clone(),
    };
    let pid = a.server_pid;
    let sampler = tokio::spawn(async move {
        let mut max = 0u64;
        let deadline = Instant::now() + ctl_args.duration + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Some(r) = pid.and_then(rss_kib) {
                max = max.max(r);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        max
    });
    let ctl = control::load(&ctl_args).await;
    let rss_held_max = sampler.await.unwrap_or(0);
    let rss_held_end = a.server_pid.and_then(rss_kib);
    let still_open = connected as u64 - closed_early.load(Ordering::Relaxed);

    let _ = stop_tx.send(true);
    for h in holders {
        let _ = h.await;
    }
    let per_conn = match (rss_before, rss_held_end) {
        (Some(b), Some(h)) if connected > 0 => {
            Some(round3(h.saturating_sub(b) as f64 / connected as f64))
        }
        _ => None,
    };
    Ok(Some(json!({
        "bench": "idle",
        "connections_requested": a.connections,
        "connected": connected,
        "still_open_after_hold": still_open,
        "channels": n_channels,
        "sources": sources,
        "create_channels_s": round3(create_s),
        "connect_s": round3(connect_s),
        "connects_per_s": round3(connected as f64 / connect_s.max(1e-9)),
        "hold_s": a.hold.as_secs_f64(),
        "rss_before_kib": rss_before,
        "rss_held_start_kib": rss_held_start,
        "rss_held_end_kib": rss_held_end,
        "rss_held_max_kib": rss_held_max,
        "rss_per_connection_kib": per_conn,
        "connect_errors": errors.to_json(),
        "nofile_limit": nofile,
        "control": match ctl {
            Ok(v) => v,
            Err(e) => json!({ "error": format!("{e:#}") }),
        },
    })))
}

async fn connect_from(src: IpAddr, addr: SocketAddr, url: &str) -> anyhow::Result<Ws> {
    let fut = async {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(src, 0))
            .with_context(|| format!("bind {src}"))?;
        let stream = sock.connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let cfg = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(cfg))
            .await
            .context("handshake")?;
        anyhow::Ok(ws)
    };
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .context("connect timed out")?
}

/// Holds one connection until told to stop; counts it if the server closes it first.
async fn hold(ws: Ws, mut stop: watch::Receiver<bool>, closed_early: Arc<AtomicU64>) {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            m = stream.next() => match m {
                Some(Ok(_)) => continue,
                _ => {
                    closed_early.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
}

fn kind_of(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    if s.contains("HTTP error: 400") {
        "handshake 400".into()
    } else if s.starts_with("bind") {
        "bind".into()
    } else if s.starts_with("connect") {
        "connect".into()
    } else {
        s.chars().take(60).collect()
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
