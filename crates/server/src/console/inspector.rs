//! The API inspector (docs/console.md): the last calls of each account, in a bounded ring, and a
//! live stream of new ones. Fed by the dispatcher's [`CallRecord`]s; holds the access key id,
//! never a secret, and the channel a call named, never a body.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::UNIX_EPOCH;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::observe::{CallRecord, CallWatcher};

/// Calls kept per account.
pub const RING: usize = 500;
/// Accounts kept at once; overflow policy: the account whose last call is oldest is forgotten.
const MAX_ACCOUNTS: usize = 1000;
/// New calls buffered for the live streams before a slow one misses some.
const STREAM_BUFFER: usize = 1024;

/// One call as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    pub seq: u64,
    pub at: u64,
    pub operation: &'static str,
    pub access_key_id: Option<String>,
    pub channel: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
    pub latency_ms: f64,
    pub request_id: Option<String>,
}

impl CallView {
    /// Whether the call named a channel matching `filter` (its ARN or name, or a part of it).
    pub fn matches(&self, filter: Option<&str>) -> bool {
        match filter.filter(|f| !f.is_empty()) {
            None => true,
            Some(f) => self.channel.as_deref().is_some_and(|c| c.contains(f)),
        }
    }
}

pub struct Inspector {
    rings: Mutex<HashMap<String, (u64, VecDeque<CallView>)>>,
    seq: AtomicU64,
    live: broadcast::Sender<(String, CallView)>,
}

impl Default for Inspector {
    fn default() -> Self {
        Self {
            rings: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            live: broadcast::channel(STREAM_BUFFER).0,
        }
    }
}

impl Inspector {
    fn rings(&self) -> MutexGuard<'_, HashMap<String, (u64, VecDeque<CallView>)>> {
        self.rings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The account's calls, oldest first, that match `filter`.
    pub fn calls(&self, account: &str, filter: Option<&str>) -> Vec<CallView> {
        self.rings()
            .get(account)
            .map(|(_, ring)| ring.iter().filter(|c| c.matches(filter)).cloned().collect())
            .unwrap_or_default()
    }

    /// Every new call, with its account (a stream filters its own).
    pub fn subscribe(&self) -> broadcast::Receiver<(String, CallView)> {
        self.live.subscribe()
    }
}

impl CallWatcher for Inspector {
    fn record(&self, call: &CallRecord) {
        let Some(account) = &call.account else {
            return;
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let view = CallView {
            seq,
            at: call
                .at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            operation: call.operation,
            access_key_id: call.access_key_id.clone(),
            channel: call.channel.clone(),
            status: call.status,
            error_code: call.error_code.clone(),
            latency_ms: (call.latency.as_secs_f64() * 1e6).round() / 1e3,
            request_id: call.request_id.clone(),
        };
        {
            let mut rings = self.rings();
            if !rings.contains_key(account) && rings.len() >= MAX_ACCOUNTS {
                if let Some(oldest) = rings
                    .iter()
                    .min_by_key(|(_, (last, _))| *last)
                    .map(|(a, _)| a.clone())
                {
                    rings.remove(&oldest);
                }
            }
            let (last, ring) = rings.entry(account.clone()).or_default();
            *last = seq;
            if ring.len() >= RING {
                ring.pop_front();
            }
            ring.push_back(view.clone());
        }
        // No stream open is not an error.
        let _ = self.live.send((account.clone(), view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn call(account: Option<&str>, channel: Option<&str>, code: Option<&str>) -> CallRecord {
        CallRecord {
            at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            account: account.map(str::to_owned),
            access_key_id: Some("AKID".into()),
            operation: "DescribeSignalingChannel",
            channel: channel.map(str::to_owned),
            status: if code.is_some() { 404 } else { 200 },
            error_code: code.map(str::to_owned),
            latency: Duration::from_micros(1234),
            request_id: Some("r".into()),
        }
    }

    #[test]
    fn calls_are_kept_per_account_in_a_bounded_ring() {
        let i = Inspector::default();
        for n in 0..RING + 5 {
            i.record(&call(Some("111"), Some(&format!("c{n}")), None));
        }
        i.record(&call(
            Some("222"),
            Some("x"),
            Some("ResourceNotFoundException"),
        ));
        i.record(&call(None, Some("y"), None));
        let a = i.calls("111", None);
        assert_eq!(a.len(), RING);
        assert_eq!(a[0].channel.as_deref(), Some("c5"));
        let b = i.calls("222", None);
        assert_eq!(
            b,
            vec![CallView {
                seq: RING as u64 + 6,
                at: 1_700_000_000_123,
                operation: "DescribeSignalingChannel",
                access_key_id: Some("AKID".into()),
                channel: Some("x".into()),
                status: 404,
                error_code: Some("ResourceNotFoundException".into()),
                latency_ms: 1.234,
                request_id: Some("r".into()),
            }]
        );
        assert_eq!(i.calls("333", None), vec![]);
        assert_eq!(i.calls("111", Some("c77")).len(), 1);
        assert_eq!(i.calls("111", Some("c50")).len(), 6); // c50, c500..c504
        let _ = SystemTime::now();
    }

    #[tokio::test]
    async fn new_calls_reach_the_stream_with_their_account() {
        let i = Inspector::default();
        let mut rx = i.subscribe();
        i.record(&call(Some("111"), None, None));
        let (account, view) = rx.recv().await.unwrap();
        assert_eq!((account.as_str(), view.seq), ("111", 1));
    }
}
