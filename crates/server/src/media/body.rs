//! GetMedia's streaming body: the stored chunks from the start position on, then new ones as
//! they are written, one fragment in memory at a time (the body is pulled by hyper as the
//! client reads, so a slow client holds back the reads, not memory).
//!
//! While it waits for a live recording's next fragment it sends keep-alives ([`KEEPALIVE`]).
//! When it ends (docs/media-storage.md "GetMedia"): once no fragment is left to send and none
//! arrives for [`IDLE_END`] while the stream is not being recorded; while a recording of the
//! stream is live (on any node: the store's ingesting mark), it waits for the next fragment.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use kvs_core::clock::Clock;
use kvs_media::mkv::{self, ChunkTags};
use kvs_media::{FragmentMeta, FragmentStore, Position, StreamKey};

use super::limits::OpenGuard;

/// How long a response waits for a new fragment when the stream is not being recorded.
pub const IDLE_END: Duration = Duration::from_secs(3);
/// While a recording is live and its next fragment is not written yet, an empty EBML Void
/// element (ID 0xEC, size 0) goes out this often after the first chunk: Matroska readers skip
/// it anywhere, and clients that fail a body silent for a few seconds (the AWS SDKs' stalled
/// stream protection: 5 s) keep reading while a fragment takes longer than that.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(2);
const KEEPALIVE: [u8; 2] = [0xEC, 0x80];
/// How many fragments' metadata one listing fetches.
const PAGE: usize = 16;

struct State {
    store: Arc<dyn FragmentStore>,
    clock: Arc<dyn Clock>,
    key: StreamKey,
    next: Position,
    /// The newest fragment number sent or skipped (for waiting).
    last: Option<u64>,
    queue: VecDeque<FragmentMeta>,
    done: bool,
    /// A chunk went out: keep-alives may follow (before the first one they would come before
    /// any EBML header, and readers would not recognise the body).
    sent_chunk: bool,
    idle_end: Duration,
    _guard: OpenGuard,
}

pub fn chunks(
    store: Arc<dyn FragmentStore>,
    clock: Arc<dyn Clock>,
    key: StreamKey,
    from: Position,
    last: Option<u64>,
    guard: OpenGuard,
    idle_end: Duration,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let state = State {
        store,
        clock,
        key,
        next: from,
        last,
        queue: VecDeque::new(),
        done: false,
        sent_chunk: false,
        idle_end,
        _guard: guard,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        match next_chunk(&mut s).await {
            Ok(Some(chunk)) => Some((Ok(chunk), s)),
            Ok(None) => None,
            Err(e) => {
                // AWS ends a failing GetMedia with a chunk of error tags; so do we.
                tracing::warn!(error = %e, stream = %s.key.arn(), "GetMedia stopped");
                s.done = true;
                let tags = mkv::tags(&[
                    ("AWS_KINESISVIDEO_ERROR_CODE", "INTERNAL_ERROR".to_owned()),
                    ("AWS_KINESISVIDEO_ERROR_ID", "5000".to_owned()),
                ]);
                Some((Ok(Bytes::from(tags)), s))
            }
        }
    })
}

async fn next_chunk(s: &mut State) -> Result<Option<Bytes>, kvs_media::MediaStoreError> {
    let mut idle = Duration::ZERO;
    let mut waited = Duration::ZERO;
    loop {
        if s.queue.is_empty() {
            let page = s.store.list(&s.key, s.next, PAGE).await?;
            if let Some(m) = page.last() {
                s.next = Position::After(m.number);
            } else if s.last.is_none() {
                // A timestamp after every fragment kept: what comes next is what is written
                // from now on (and waiting must not see the older fragments as new).
                if let Some(m) = s.store.list(&s.key, Position::Latest, 1).await?.first() {
                    s.last = Some(m.number);
                    s.next = Position::After(m.number);
                }
            }
            s.queue.extend(page);
        }
        while let Some(meta) = s.queue.pop_front() {
            s.last = Some(meta.number);
            // Deleted since it was listed (retention, eviction): go on with the next.
            let Some(stored) = s.store.read(&s.key, meta.number).await? else {
                continue;
            };
            let now = s.clock.now_millis();
            let tags = ChunkTags {
                fragment_number: meta.number.to_string(),
                server_ms: meta.server_ms,
                producer_ms: meta.producer_ms,
                continuation_token: meta.number.to_string(),
                millis_behind_now: now.saturating_sub(meta.server_ms + meta.duration_ms),
            };
            let parts = mkv::chunk_parts(&stored, meta.cluster_offset as usize, &tags);
            let mut chunk = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in &parts {
                chunk.extend_from_slice(p);
            }
            s.sent_chunk = true;
            return Ok(Some(Bytes::from(chunk)));
        }
        // Nothing to send: wait a little for the next fragment.
        let step = Duration::from_millis(500);
        waited += step;
        if s.store.wait_newer(&s.key, s.last, step).await? {
            idle = Duration::ZERO;
            // A store that answers without waiting must not keep this task from yielding.
            tokio::task::yield_now().await;
            continue;
        }
        if s.store.is_ingesting(&s.key).await? {
            idle = Duration::ZERO;
            if s.sent_chunk && waited >= KEEPALIVE_EVERY {
                return Ok(Some(Bytes::from_static(&KEEPALIVE)));
            }
        } else {
            idle += step;
            if idle >= s.idle_end {
                return Ok(None);
            }
        }
    }
}
