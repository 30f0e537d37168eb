//! GetMedia's per-stream limits (AWS's GetMedia documentation): at most [`CALLS_PER_SECOND`]
//! calls a second per stream (ClientLimitExceededException) and at most
//! [`MAX_OPEN_PER_STREAM`] responses streaming from one stream at once
//! (ConnectionLimitExceededException). Counted on this node, on the injected clock; both maps
//! hold only streams with calls this second or responses open, so they stay bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kvs_core::{ErrorCode, ServiceError};

pub const CALLS_PER_SECOND: u32 = 5;
pub const MAX_OPEN_PER_STREAM: usize = 10;

#[derive(Default)]
pub struct Limits {
    calls: Mutex<HashMap<String, (u64, u32)>>,
    open: Mutex<HashMap<String, usize>>,
    pub open_total: AtomicU64,
    pub started_total: AtomicU64,
}

/// A response streaming; dropping it (the body finished or the client went) frees its slot.
pub struct OpenGuard {
    limits: Arc<Limits>,
    stream: String,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.stream) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.stream);
            }
        }
        self.limits.open_total.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limits {
    /// Counts a call on `stream` at `now_millis`; refuses the sixth of a second, or one while
    /// ten responses of the stream are open.
    pub fn admit(
        self: &Arc<Self>,
        stream: &str,
        now_millis: u64,
    ) -> Result<OpenGuard, ServiceError> {
        let second = now_millis / 1000;
        {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            calls.retain(|_, (s, _)| *s == second);
            let entry = calls.entry(stream.to_owned()).or_insert((second, 0));
            if entry.1 >= CALLS_PER_SECOND {
                return Err(ServiceError::new(
                    ErrorCode::ClientLimitExceeded,
                    format!(
                        "GetMedia was called more than {CALLS_PER_SECOND} times in a second on this stream."
                    ),
                ));
            }
            entry.1 += 1;
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(stream.to_owned()).or_insert(0);
        if *n >= MAX_OPEN_PER_STREAM {
            if *n == 0 {
                open.remove(stream);
            }
            return Err(ServiceError::new(
                ErrorCode::ConnectionLimitExceeded,
                format!("The stream already has {MAX_OPEN_PER_STREAM} GetMedia connections open."),
            ));
        }
        *n += 1;
        self.open_total.fetch_add(1, Ordering::Relaxed);
        self.started_total.fetch_add(1, Ordering::Relaxed);
        Ok(OpenGuard {
            limits: Arc::clone(self),
            stream: stream.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn five_calls_a_second_then_client_limit() {
        let l = Arc::new(Limits::default());
        let mut guards = Vec::new();
        for _ in 0..5 {
            guards.push(l.admit("s", 1_000).unwrap());
        }
        let e = l.admit("s", 1_999).err().unwrap();
        assert_eq!(e.code(), ErrorCode::ClientLimitExceeded);
        // Another stream, and the next second, are counted apart.
        assert!(l.admit("t", 1_999).is_ok());
        assert!(l.admit("s", 2_000).is_ok());
    }

    #[test]
    fn ten_open_responses_then_connection_limit_until_one_ends() {
        let l = Arc::new(Limits::default());
        let mut guards: Vec<OpenGuard> = (0..10).map(|i| l.admit("s", i * 1000).unwrap()).collect();
        let e = l.admit("s", 20_000).err().unwrap();
        assert_eq!(e.code(), ErrorCode::ConnectionLimitExceeded);
        assert_eq!(l.open_total.load(Ordering::Relaxed), 10);
        guards.pop();
        assert!(l.admit("s", 21_000).is_ok());
        drop(guards);
        assert_eq!(l.open_total.load(Ordering::Relaxed), 0);
        assert!(l.open.lock().unwrap().is_empty());
    }
}
