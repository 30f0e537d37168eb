//! `startup`: spawns a server command several times and times each run from spawn to the ready
//! line (`listening on http://HOST:PORT` on stdout), then stops it with SIGTERM (SIGKILL if it
//! does not exit within 15 s).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::parse_duration;
use crate::stats::round3;

#[derive(Debug, Clone, Args)]
pub struct StartupArgs {
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Give up on a run whose ready line has not come after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The server command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub async fn run(a: StartupArgs) -> anyhow::Result<Option<Value>> {
    let (prog, args) = a.command.split_first().context("no server command given")?;
    let mut times = Vec::with_capacity(a.runs);
    for _ in 0..a.runs.max(1) {
        let t0 = Instant::now();
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {prog}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(a.timeout, async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("listening on http://") {
                    return anyhow::Ok(true);
                }
            }
            anyhow::Ok(false)
        })
        .await;
        let elapsed = t0.elapsed();
        match ready {
            Ok(Ok(true)) => times.push(elapsed.as_secs_f64() * 1000.0),
            Ok(Ok(false)) => bail!("{prog} exited before its ready line"),
            Ok(Err(e)) => bail!("reading {prog}'s stdout: {e:#}"),
            Err(_) => bail!("{prog}: no ready line within {:?}", a.timeout),
        }
        stop(&mut child).await;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(Some(json!({
        "bench": "startup",
        "runs_ms": times.iter().map(|t| round3(*t)).collect::<Vec<_>>(),
        "median_ms": round3(median),
        "min_ms": round3(sorted[0]),
        "max_ms": round3(sorted[sorted.len() - 1]),
    })))
}

async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
