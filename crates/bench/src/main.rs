//! `kvs-bench`: the load generator of issue 7's benchmark and the minimal baselines it compares
//! kvs-signaling against. Every load subcommand is bounded in time and in count, stops by itself
//! and prints one line of JSON on stdout (progress and diagnostics go to stderr), so
//! `scripts/bench.sh` can collect the results. Only loopback addresses are accepted as targets.

mod baseline_http;
mod baseline_relay;
mod control;
mod endpoint;
mod http;
mod idle;
mod relay;
mod sign;
mod startup;
mod stats;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kvs-bench",
    about = "Load generator and baselines for kvs-signaling"
)]
struct Cli {
    /// Tokio worker threads of this process (default: one per core, as the server has). The
    /// load generator and the server share the cores; one thread cannot load the baselines.
    #[arg(long, global = true)]
    threads: Option<usize>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Control-plane load: N keep-alive connections sending SigV4-signed requests.
    Control(control::ControlArgs),
    /// Relay load: C channels x (1 master + V viewers) over WebSockets, closed or open loop.
    Relay(relay::RelayArgs),
    /// K idle WebSocket connections held open; server RSS per connection and control-plane
    /// latency meanwhile.
    Idle(idle::IdleArgs),
    /// Time from spawning a server to its ready line, over several runs.
    Startup(startup::StartupArgs),
    /// Minimal HTTP server answering POST /describeSignalingChannel (no auth, no store).
    BaselineHttp(ListenArgs),
    /// Minimal WebSocket relay of the KVS message shape (no auth, no store).
    BaselineRelay(ListenArgs),
}

#[derive(Debug, Args)]
struct ListenArgs {
    /// Listen address (loopback only); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

/// SigV4 identity used to sign requests; the defaults match open mode.
#[derive(Debug, Clone, Args)]
pub struct Identity {
    #[arg(long, default_value = "AKIDBENCH")]
    pub access_key: String,
    #[arg(long, default_value = "bench-secret")]
    pub secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

/// Parses `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write durations with a unit: 2s)"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let out = rt.block_on(async move {
        match cli.command {
            Command::Control(a) => control::run(a).await,
            Command::Relay(a) => relay::run(a).await,
            Command::Idle(a) => idle::run(a).await,
            Command::Startup(a) => startup::run(a).await,
            Command::BaselineHttp(a) => baseline_http::run(&a.listen).await,
            Command::BaselineRelay(a) => baseline_relay::run(&a.listen).await,
        }
    })?;
    if let Some(v) = out {
        println!("{v}");
    }
    Ok(())
}
