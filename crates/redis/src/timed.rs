//! The one place every Redis command of this crate passes: [`Redis::conn`](crate::Redis) hands
//! out a [`TimedConn`], so a node can time its Redis round trips (the `/metrics` histogram)
//! without each backend knowing it is watched. The subscription of the bus is a separate
//! connection and is not a round trip: it is not timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Arg, Cmd, Pipeline, RedisFuture, Value};

/// Told how long each round trip took. Called on the caller's task: it must not block.
pub trait RoundTrips: Send + Sync {
    /// `command` is the Redis command's name (`EVALSHA`, `HGET`, …; `pipeline` for a pipeline,
    /// `other` for a command this crate does not send).
    fn observe(&self, command: &'static str, elapsed: Duration);
}

/// The commands this crate sends, as static names (a label set bounded by construction).
const COMMANDS: [&str; 12] = [
    "EVALSHA", "EVAL", "SCRIPT", "HGET", "HGETALL", "HMGET", "INFO", "PING", "PUBLISH", "ZCARD",
    "ZRANGE", "GET",
];

/// The static name of `cmd`'s command, `other` when it is none of [`COMMANDS`].
pub(crate) fn command_name(cmd: &Cmd) -> &'static str {
    let Some(Arg::Simple(first)) = cmd.args_iter().next() else {
        return "other";
    };
    COMMANDS
        .iter()
        .find(|c| c.as_bytes().eq_ignore_ascii_case(first))
        .copied()
        .unwrap_or("other")
}

/// A connection that reports each round trip to its observer, if it has one.
#[derive(Clone)]
pub struct TimedConn {
    pub(crate) inner: ConnectionManager,
    pub(crate) observer: Option<Arc<dyn RoundTrips>>,
}

impl ConnectionLike for TimedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let Some(observer) = self.observer.clone() else {
            return self.inner.req_packed_command(cmd);
        };
        Box::pin(async move {
            let started = Instant::now();
            let out = self.inner.req_packed_command(cmd).await;
            observer.observe(command_name(cmd), started.elapsed());
            out
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let Some(observer) = self.observer.clone() else {
            return self.inner.req_packed_commands(pipeline, offset, count);
        };
        Box::pin(async move {
            let started = Instant::now();
            let out = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            observer.observe("pipeline", started.elapsed());
            out
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_named_from_a_bounded_set() {
        assert_eq!(command_name(&redis::cmd("HGET")), "HGET");
        assert_eq!(command_name(&redis::cmd("evalsha")), "EVALSHA");
        assert_eq!(command_name(&redis::cmd("FLUSHALL")), "other");
        assert_eq!(command_name(&Cmd::new()), "other");
    }
}
