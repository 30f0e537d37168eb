//! Cuts a storage session's samples into fragments (docs/media-storage.md "Fragments").
//!
//! - A fragment starts at a video keyframe once the SPS and PPS are known; samples before that
//!   are dropped (counted `before_keyframe` / `no_parameter_sets`).
//! - The next keyframe cuts it once it is at least [`FragmentRules::min_duration`] long (or at
//!   once when the parameter sets changed), as AWS's keyframe-aligned fragments are.
//! - Without keyframes a fragment is closed at [`FragmentRules::max_duration`] or
//!   [`FragmentRules::max_bytes`] (SimpleBlock timecodes are 16-bit milliseconds, and memory is
//!   bounded), and what follows is dropped (`no_keyframe`) until the next keyframe.
//! - Tracks are put on one timeline by `producer_time`: each track's first sample fixes the
//!   offset between its media clock and the producer clock, later samples follow the media
//!   clock (smooth, whatever the arrival jitter), until that clock drifts more than
//!   [`DRIFT_MS`] from real time: the track is then re-anchored (see `TrackClock`). Audio up
//!   to [`LATE_AUDIO_MS`] before the fragment start is clamped to it; older audio is dropped
//!   (`late`).
//!
//! [`Fragmenter`] is the synchronous rule set (table-tested); [`FragmentSink`] feeds it from the
//! peer and writes what it cuts to the store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kvs_core::media::{MediaError, Sample, SampleSink, TrackKind};

use crate::h264;
use crate::metrics::MediaMetrics;
use crate::mkv::{self, Block, TrackSetup};
use crate::store::{FragmentStore, NewFragment, StreamKey};

/// Audio this much before a fragment's start still joins it (jitter between the tracks).
pub const LATE_AUDIO_MS: u64 = 200;

/// A track whose timeline is further than this from where its arrivals put it is re-anchored.
/// Below [`LATE_AUDIO_MS`], so that drifting audio is moved before it is dropped as late.
pub const DRIFT_MS: u64 = 100;

/// A track's current delay is the lowest over this much arrival time ...
const DRIFT_WINDOW_MS: i128 = 1000;
/// ... and over at least this many of its samples (low frame rates).
const DRIFT_WINDOW_SAMPLES: u64 = 16;
/// Bounds the window's memory whatever the arrival times.
const DRIFT_WINDOW_MAX: usize = 1024;
/// A change of delay beyond this is a discontinuity (a clock step, a restarted sender), not
/// drift: the track keeps to its media clock, as it did before drift was corrected.
const MAX_DRIFT_MS: i128 = 1000;

/// One track's mapping from its media clock to the session's timeline.
///
/// The first sample fixes the offset (`base`) from its `producer_time`; later samples follow
/// the media clock, smooth whatever the network jitter. But a sender's media clock need not
/// run at real time. The KVS C SDK's sample master adds 20 ms to its Opus timestamps per frame
/// in a sleep loop that ran ~2.5% slow in our runs, while its video keeps to the wall clock:
/// its audio fell 1.5 s behind its video per minute. Its sender reports put a frame at the
/// first frame's wall-clock time plus the frame's media time, so `producer_time` drifts along
/// with the media clock (and without sender reports it is the arrival time anyway; see
/// docs/webrtc-ingestion.md, "The flow", step 5, for how the peer times a sample). Left alone,
/// such audio ends up more than [`LATE_AUDIO_MS`] before every fragment start, and from then on
/// every packet is dropped as late.
///
/// What shows the drift is the arrival time, on the server's clock. Each track watches its
/// delay, arrival minus timeline, as the lowest over a sliding window ([`DRIFT_WINDOW_MS`],
/// [`DRIFT_WINDOW_SAMPLES`]), so that jitter, a slow keyframe or a burst after a stall (all of
/// which only add delay) do not count. The lowest delay of the track's first window is its
/// reference. When the current one is more than [`DRIFT_MS`] off, the offset is moved by the
/// difference and the track follows real time again: forward at once (a gap in the track);
/// back without going below the track's previous timestamp (its next samples are 1 ms apart
/// until its media clock catches up). A well-behaved sender's delay stays within the threshold,
/// and its tracks are never re-anchored.
struct TrackClock {
    /// Timeline ms minus media ms.
    base: i128,
    /// The lowest delay (arrival minus timeline, ms) of the track's first window.
    reference: i128,
    first_arrival: i128,
    /// The first window is over: `reference` is fixed.
    settled: bool,
    seen: u64,
    /// (sample number, arrival ms, arrival minus media ms), increasing in the last: the front
    /// is the lowest of the window.
    window: VecDeque<(u64, i128, i128)>,
    /// The track's previous timestamp.
    last: Option<u64>,
    /// Moved back: stay after `last` until the media clock passes it.
    catching_up: bool,
    /// Times re-anchored.
    re_anchors: u64,
}

impl TrackClock {
    fn new(media: i128, producer: i128, arrival: i128) -> Self {
        let base = producer - media;
        Self {
            base,
            reference: arrival - media - base,
            first_arrival: arrival,
            settled: false,
            seen: 0,
            window: VecDeque::new(),
            last: None,
            catching_up: false,
            re_anchors: 0,
        }
    }

    /// The timeline ms of a sample at `media` ms arriving at `arrival` ms.
    fn timeline_ms(&mut self, media: i128, arrival: i128) -> u64 {
        self.seen += 1;
        let offset = arrival - media;
        while self.window.back().is_some_and(|w| w.2 >= offset) {
            self.window.pop_back();
        }
        self.window.push_back((self.seen, arrival, offset));
        while self.window.len() > DRIFT_WINDOW_MAX
            || self.window.front().is_some_and(|w| {
                w.0 + DRIFT_WINDOW_SAMPLES <= self.seen && w.1 + DRIFT_WINDOW_MS < arrival
            })
        {
            self.window.pop_front();
        }
        let delay = self.window.front().map_or(offset, |w| w.2) - self.base;
        // Positive: samples arrive later than they did, for their timestamps; the media clock
        // is slow and the track's timeline behind.
        let drift = delay - self.reference;
        if !self.settled {
            self.reference = delay;
            self.settled = arrival - self.first_arrival >= DRIFT_WINDOW_MS
                && self.seen >= DRIFT_WINDOW_SAMPLES;
        } else if drift.abs() > MAX_DRIFT_MS {
            self.reference = delay;
        } else if drift.abs() > i128::from(DRIFT_MS) {
            self.base += drift;
            self.catching_up |= drift < 0;
            self.re_anchors += 1;
        }
        let raw = u64::try_from((self.base + media).max(0)).unwrap_or(0);
        let t = match self.last {
            Some(last) if self.catching_up && raw <= last => last.saturating_add(1),
            _ => {
                self.catching_up = false;
                raw
            }
        };
        self.last = Some(t);
        t
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FragmentRules {
    pub min_duration: Duration,
    pub max_duration: Duration,
    pub max_bytes: usize,
    /// Channels of the Opus track (WebRTC negotiates `opus/48000/2`); `None` for video-only
    /// recordings. Declared in every fragment from the first on, even before the first audio
    /// packet arrives: a reader of the concatenated chunks takes the first chunk's tracks.
    pub audio_channels: Option<u8>,
}

impl Default for FragmentRules {
    fn default() -> Self {
        Self {
            min_duration: Duration::from_secs(1),
            // Below the 32.767 s a block's 16-bit relative timecode reaches.
            max_duration: Duration::from_secs(30),
            max_bytes: 32 << 20,
            audio_channels: Some(2),
        }
    }
}

/// Why a sample was not recorded (the `reason` label of `kvs_media_samples_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    BeforeKeyframe,
    NoParameterSets,
    NoKeyframe,
    Late,
    OutOfRange,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        Self::BeforeKeyframe,
        Self::NoParameterSets,
        Self::NoKeyframe,
        Self::Late,
        Self::OutOfRange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BeforeKeyframe => "before_keyframe",
            Self::NoParameterSets => "no_parameter_sets",
            Self::NoKeyframe => "no_keyframe",
            Self::Late => "late",
            Self::OutOfRange => "out_of_range",
        }
    }
}

struct Pending {
    t: u64,
    block: Block,
}

struct Building {
    setup: TrackSetup,
    start: u64,
    server_ms: u64,
    blocks: Vec<Pending>,
    bytes: usize,
    /// The newest video frame's time (the fragment lasts until that frame ends).
    last_video: u64,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub struct Fragmenter {
    rules: FragmentRules,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// Per track (video first): media clock to timeline.
    clocks: [Option<TrackClock>; 2],
    /// The audio track's last timestamp.
    last_audio: Option<u64>,
    current: Option<Building>,
    /// The fragment was closed by a bound: wait for a keyframe.
    closed: bool,
    last_video_gap: u64,
    last_video_t: Option<u64>,
    pub dropped: BTreeMap<DropReason, u64>,
}

impl Fragmenter {
    pub fn new(rules: FragmentRules) -> Self {
        Self {
            rules,
            sps: None,
            pps: None,
            clocks: [None, None],
            last_audio: None,
            current: None,
            closed: false,
            last_video_gap: 0,
            last_video_t: None,
            dropped: BTreeMap::new(),
        }
    }

    fn drop_sample(&mut self, why: DropReason) {
        *self.dropped.entry(why).or_default() += 1;
    }

    /// The sample's time on the session's timeline (epoch ms of the producer clock).
    fn timeline_ms(&mut self, s: &Sample) -> u64 {
        let media = i128::from(ms(s.media_time).min(u64::MAX >> 2));
        let arrival = i128::from(epoch_ms(s.arrival_time));
        let slot = usize::from(s.track != TrackKind::Video);
        self.clocks[slot]
            .get_or_insert_with(|| {
                TrackClock::new(media, i128::from(epoch_ms(s.producer_time)), arrival)
            })
            .timeline_ms(media, arrival)
    }

    /// Times a track was re-anchored (video, audio).
    #[cfg(test)]
    fn re_anchors(&self) -> [u64; 2] {
        self.clocks
            .each_ref()
            .map(|c| c.as_ref().map_or(0, |c| c.re_anchors))
    }

    /// Takes one sample; returns the fragments it completed (zero or one).
    pub fn push(&mut self, s: Sample) -> Vec<NewFragment> {
        let t = self.timeline_ms(&s);
        match s.track {
            TrackKind::Video => self.push_video(s, t),
            TrackKind::Audio if self.rules.audio_channels.is_none() => Vec::new(),
            TrackKind::Audio => {
                self.push_audio(s, t);
                Vec::new()
            }
        }
    }

    fn push_video(&mut self, s: Sample, t: u64) -> Vec<NewFragment> {
        let nals = h264::split_annex_b(&s.data);
        let mut params_changed = false;
        for nal in &nals {
            let slot = match h264::nal_type(nal) {
                h264::NAL_SPS => &mut self.sps,
                h264::NAL_PPS => &mut self.pps,
                _ => continue,
            };
            if slot.as_deref() != Some(*nal) {
                params_changed |= slot.is_some();
                *slot = Some(nal.to_vec());
            }
        }
        let keyframe = s.keyframe || nals.iter().any(|n| h264::nal_type(n) == h264::NAL_IDR);
        let payload = h264::to_avcc_payload(&nals);
        if let Some(prev) = self.last_video_t {
            self.last_video_gap = t.saturating_sub(prev);
        }
        self.last_video_t = Some(t);
        let mut out = Vec::new();
        if keyframe {
            let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
                self.drop_sample(DropReason::NoParameterSets);
                return out;
            };
            let long_enough = self
                .current
                .as_ref()
                .is_some_and(|c| t.saturating_sub(c.start) >= ms(self.rules.min_duration));
            if self.current.is_none() || long_enough || params_changed {
                let (w, h) = h264::sps_dimensions(sps).unwrap_or((0, 0));
                let Some(avcc) = h264::avcc_record(sps, pps) else {
                    self.drop_sample(DropReason::NoParameterSets);
                    return out;
                };
                let setup = TrackSetup {
                    avcc,
                    width: w,
                    height: h,
                    audio_channels: self.rules.audio_channels,
                };
                let next = Building {
                    setup,
                    start: t,
                    server_ms: epoch_ms(s.arrival_time),
                    blocks: Vec::new(),
                    bytes: 0,
                    last_video: t,
                };
                out.extend(self.cut(Some(next)));
                self.closed = false;
            }
        } else if self.current.is_none() {
            self.drop_sample(if self.closed {
                DropReason::NoKeyframe
            } else {
                DropReason::BeforeKeyframe
            });
            return out;
        }
        if !self.add(mkv::VIDEO_TRACK, t, keyframe, payload) {
            return out;
        }
        out.extend(self.close_if_bound_reached());
        out
    }

    fn push_audio(&mut self, s: Sample, t: u64) {
        let Some(c) = &self.current else {
            self.drop_sample(if self.closed {
                DropReason::NoKeyframe
            } else {
                DropReason::BeforeKeyframe
            });
            return;
        };
        let t = if t < c.start {
            if c.start - t > LATE_AUDIO_MS {
                self.drop_sample(DropReason::Late);
                return;
            }
            c.start
        } else {
            t
        };
        // Strictly after the track's previous block: late packets clamped to the start are
        // then 1 ms apart rather than on one timestamp.
        let t = self
            .last_audio
            .map_or(t, |last| t.max(last.saturating_add(1)));
        if self.add(mkv::AUDIO_TRACK, t, true, s.data) {
            self.last_audio = Some(t);
        }
        // Audio alone never closes a fragment: the next video frame does.
    }

    /// Adds a block to the fragment being built; false when it falls outside its timecodes.
    fn add(&mut self, track: u64, t: u64, keyframe: bool, data: Vec<u8>) -> bool {
        let Some(c) = &mut self.current else {
            return false;
        };
        let Ok(rel) = i16::try_from(t.saturating_sub(c.start)) else {
            self.drop_sample(DropReason::OutOfRange);
            return false;
        };
        c.bytes += data.len();
        if track == mkv::VIDEO_TRACK {
            c.last_video = c.last_video.max(t);
        }
        c.blocks.push(Pending {
            t,
            block: Block {
                track,
                rel_ms: rel,
                keyframe,
                data,
            },
        });
        true
    }

    fn close_if_bound_reached(&mut self) -> Vec<NewFragment> {
        let Some(c) = &self.current else {
            return Vec::new();
        };
        let last = c.blocks.last().map_or(c.start, |b| b.t);
        if last.saturating_sub(c.start) >= ms(self.rules.max_duration)
            || c.bytes >= self.rules.max_bytes
        {
            let out = self.cut(None).into_iter().collect();
            // No fragment until the next keyframe.
            self.closed = true;
            return out;
        }
        Vec::new()
    }

    /// Ends the fragment being built (moving audio at or after `next`'s start into `next`)
    /// and starts `next`.
    fn cut(&mut self, next: Option<Building>) -> Option<NewFragment> {
        let prev = std::mem::replace(&mut self.current, next);
        let mut prev = prev.filter(|p| !p.blocks.is_empty())?;
        let mut end = None;
        if let Some(n) = &mut self.current {
            end = Some(n.start);
            let (keep, moved): (Vec<Pending>, Vec<Pending>) = prev
                .blocks
                .into_iter()
                .partition(|p| p.block.track == mkv::VIDEO_TRACK || p.t < n.start);
            prev.blocks = keep;
            for mut p in moved {
                p.block.rel_ms = i16::try_from(p.t - n.start).unwrap_or(i16::MAX);
                n.bytes += p.block.data.len();
                n.blocks.push(p);
            }
        }
        prev.blocks.sort_by_key(|p| (p.t, p.block.track));
        let duration = end.map_or(prev.last_video - prev.start + self.last_video_gap, |e| {
            e - prev.start
        });
        let blocks: Vec<Block> = prev.blocks.into_iter().map(|p| p.block).collect();
        let written = mkv::write_fragment(&prev.setup, prev.start, &blocks);
        Some(NewFragment {
            producer_ms: prev.start,
            server_ms: prev.server_ms,
            duration_ms: duration,
            cluster_offset: written.cluster_offset as u64,
            bytes: written.bytes.into(),
        })
    }

    /// Ends the session: the fragment being built, if any.
    pub fn finish(&mut self) -> Option<NewFragment> {
        self.cut(None)
    }
}

/// The [`SampleSink`] of one storage session: samples in, fragments to the store.
pub struct FragmentSink {
    pub(crate) key: StreamKey,
    pub(crate) store: Arc<dyn FragmentStore>,
    pub(crate) metrics: Arc<MediaMetrics>,
    pub(crate) fragmenter: Fragmenter,
    pub(crate) last_mark: Option<tokio::time::Instant>,
}

/// How long a recording counts as live after its last sample (renewed every second).
pub const INGESTING_TTL: Duration = Duration::from_secs(5);

impl FragmentSink {
    async fn store(&mut self, fragments: Vec<NewFragment>) -> Result<(), MediaError> {
        for f in fragments {
            let len = f.bytes.len() as u64;
            self.store.append(&self.key, f).await?;
            self.metrics.written(len);
        }
        let dropped = std::mem::take(&mut self.fragmenter.dropped);
        for (why, n) in dropped {
            self.metrics.dropped(why, n);
        }
        Ok(())
    }
}

#[async_trait]
impl SampleSink for FragmentSink {
    async fn push(&mut self, sample: Sample) -> Result<(), MediaError> {
        let now = tokio::time::Instant::now();
        if self
            .last_mark
            .is_none_or(|m| now.duration_since(m) >= Duration::from_secs(1))
        {
            self.last_mark = Some(now);
            self.store.mark_ingesting(&self.key, INGESTING_TTL).await?;
        }
        let out = self.fragmenter.push(sample);
        self.store(out).await
    }

    async fn finish(mut self: Box<Self>) -> Result<(), MediaError> {
        let last: Vec<NewFragment> = self.fragmenter.finish().into_iter().collect();
        self.store(last).await?;
        // The recording is over: GetMedia readers need not wait for more.
        self.store
            .mark_ingesting(&self.key, Duration::from_millis(1))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "fragmenter_tests.rs"]
mod tests;
