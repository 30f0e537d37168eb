#![allow(clippy::unwrap_used)]
use std::time::{Duration, UNIX_EPOCH};

use kvs_core::media::{Sample, TrackKind};

use super::*;

const T0: u64 = 1_700_000_000_000;
const SPS: &[u8] = &[
    0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0xC0, 0xF1, 0x42, 0xA4, 0x80,
];
const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];

#[derive(Clone, Copy)]
enum S {
    /// A keyframe with SPS and PPS in band.
    K(u64),
    /// A keyframe whose SPS differs (a new resolution).
    K2(u64),
    /// A keyframe without parameter sets.
    Bare(u64),
    V(u64),
    A(u64),
}

fn sample(s: S) -> Sample {
    let annex_b = |nals: &[&[u8]]| {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        v
    };
    let (track, t, keyframe, data) = match s {
        S::K(t) => (TrackKind::Video, t, true, annex_b(&[SPS, PPS, &[0x65, 1]])),
        S::K2(t) => {
            let mut sps = SPS.to_vec();
            sps[3] = 0x1E;
            (TrackKind::Video, t, true, annex_b(&[&sps, PPS, &[0x65, 1]]))
        }
        S::Bare(t) => (TrackKind::Video, t, true, annex_b(&[&[0x65, 1]])),
        S::V(t) => (TrackKind::Video, t, false, annex_b(&[&[0x41, 2]])),
        S::A(t) => (TrackKind::Audio, t, false, vec![0xFC, 3]),
    };
    let at = UNIX_EPOCH + Duration::from_millis(T0 + t);
    Sample {
        track,
        media_time: Duration::from_millis(t),
        producer_time: at,
        arrival_time: at,
        keyframe,
        data,
    }
}

/// (start ms from T0, blocks, duration ms) of each fragment, then the drops by reason.
type Want = (&'static [(u64, usize, u64)], &'static [(DropReason, u64)]);

type Shape = Vec<(u64, usize, u64)>;

fn run(rules: FragmentRules, samples: &[S]) -> (Shape, Vec<(DropReason, u64)>, Vec<NewFragment>) {
    let mut f = Fragmenter::new(rules);
    let mut out = Vec::new();
    for s in samples {
        out.extend(f.push(sample(*s)));
    }
    out.extend(f.finish());
    let shape = out
        .iter()
        .map(|n| {
            let blocks = cluster_children(&n.bytes[n.cluster_offset as usize..])
                .iter()
                .filter(|id| **id == 0xA3)
                .count();
            (n.producer_ms - T0, blocks, n.duration_ms)
        })
        .collect();
    (shape, f.dropped.clone().into_iter().collect(), out)
}

/// The IDs of a Cluster's children (a minimal EBML reader for the tests).
fn cluster_children(cluster: &[u8]) -> Vec<u32> {
    cluster_elements(cluster)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// (track, timeline ms) of a fragment's blocks, in the order written.
fn fragment_blocks(f: &NewFragment) -> Vec<(u64, u64)> {
    cluster_elements(&f.bytes[f.cluster_offset as usize..])
        .into_iter()
        .filter(|(id, _)| *id == 0xA3)
        .map(|(_, body)| {
            let rel = i16::from_be_bytes([body[1], body[2]]);
            let t = f.producer_ms.checked_add_signed(i64::from(rel)).unwrap();
            (u64::from(body[0] & 0x7F), t)
        })
        .collect()
}

/// The (ID, body) of a Cluster's children.
fn cluster_elements(cluster: &[u8]) -> Vec<(u32, &[u8])> {
    fn vint(b: &[u8]) -> (usize, u64) {
        let len = b[0].leading_zeros() as usize + 1;
        let mut v = u64::from(b[0]) & (0xFF >> len);
        for x in &b[1..len] {
            v = (v << 8) | u64::from(*x);
        }
        (len, v)
    }
    let (n, _) = vint(&cluster[4..]);
    let mut at = 4 + n;
    let mut ids = Vec::new();
    while at < cluster.len() {
        let id_len = cluster[at].leading_zeros() as usize + 1;
        let id = cluster[at..at + id_len]
            .iter()
            .fold(0u32, |a, b| (a << 8) | u32::from(*b));
        let (n, size) = vint(&cluster[at + id_len..]);
        let body = at + id_len + n;
        ids.push((id, &cluster[body..body + size as usize]));
        at = body + size as usize;
    }
    ids
}

#[test]
fn fragments_follow_the_cut_rules() {
    use DropReason::*;
    use S::*;
    let short = FragmentRules {
        max_duration: Duration::from_secs(2),
        ..FragmentRules::default()
    };
    let cases: &[(&str, FragmentRules, &[S], Want)] = &[
        (
            "samples before the first keyframe are dropped",
            FragmentRules::default(),
            &[V(0), A(10), K(100), V(133), A(150)],
            (&[(100, 3, 66)], &[(BeforeKeyframe, 2)]),
        ),
        (
            "a keyframe cuts only once the fragment is a second long",
            FragmentRules::default(),
            &[K(0), V(500), K(900), V(1000), K(1200), V(1233)],
            (&[(0, 4, 1200), (1200, 2, 66)], &[]),
        ),
        (
            "audio at or after the cut moves to the next fragment",
            FragmentRules::default(),
            &[K(0), A(990), A(1010), K(1000)],
            (&[(0, 2, 1000), (1000, 2, 1000)], &[]),
        ),
        (
            "slightly late audio is clamped, older audio dropped",
            FragmentRules::default(),
            &[K(0), K(1000), A(900), A(700), V(1033)],
            (&[(0, 1, 1000), (1000, 3, 66)], &[(Late, 1)]),
        ),
        (
            "without keyframes the fragment closes at its bound and waits",
            short,
            &[K(0), V(1000), V(2000), V(2100), A(2150), K(3000)],
            (&[(0, 3, 3000), (3000, 1, 900)], &[(NoKeyframe, 2)]),
        ),
        (
            "a keyframe needs the parameter sets once",
            FragmentRules::default(),
            &[Bare(0), V(33), K(66), Bare(1100)],
            (
                &[(66, 1, 1034), (1100, 1, 1034)],
                &[(BeforeKeyframe, 1), (NoParameterSets, 1)],
            ),
        ),
        (
            "new parameter sets cut at once",
            FragmentRules::default(),
            &[K(0), V(33), K2(300)],
            (&[(0, 2, 300), (300, 1, 267)], &[]),
        ),
    ];
    for (name, rules, samples, (want, drops)) in cases {
        let (got, dropped, _) = run(*rules, samples);
        assert_eq!(got, *want, "{name}");
        assert_eq!(dropped, *drops, "{name}: drops");
    }
}

#[test]
fn fragments_carry_the_track_setup_and_server_time() {
    let mut samples = vec![S::K(0), S::A(5)];
    samples.extend((1..30).map(|i| S::V(i * 33)));
    let (_, _, out) = run(FragmentRules::default(), &samples);
    let f = &out[0];
    assert_eq!(f.server_ms, T0);
    let find = |needle: &[u8]| f.bytes.windows(needle.len()).any(|w| w == needle);
    // PixelWidth 320, PixelHeight 240 from the SPS; the Opus track; avcC with the SPS.
    assert!(find(&[0xB0, 0x82, 0x01, 0x40]));
    assert!(find(&[0xBA, 0x81, 0xF0]));
    assert!(find(b"A_OPUS"));
    assert!(find(SPS));
    // SPS/PPS are not repeated in the blocks: the first block is the IDR, length-prefixed.
    assert!(find(&[0x81, 0x00, 0x00, 0x80, 0, 0, 0, 2, 0x65, 1]));
}

#[test]
fn video_only_recordings_have_no_audio_track() {
    let rules = FragmentRules {
        audio_channels: None,
        ..FragmentRules::default()
    };
    let (shape, _, out) = run(rules, &[S::K(0), S::A(5), S::V(33)]);
    assert_eq!(shape, [(0, 2, 66)]);
    assert!(!out[0].bytes.windows(6).any(|w| w == b"A_OPUS"));
}

#[test]
fn late_audio_clamped_to_the_start_keeps_one_timestamp_per_packet() {
    use S::*;
    let mut f = Fragmenter::new(FragmentRules::default());
    let mut out = Vec::new();
    for s in [K(0), K(1000), A(900), A(920), A(940), A(1001), V(1033)] {
        out.extend(f.push(sample(s)));
    }
    out.extend(f.finish());
    let audio: Vec<u64> = out
        .iter()
        .flat_map(fragment_blocks)
        .filter(|b| b.0 == mkv::AUDIO_TRACK)
        .map(|b| b.1 - T0)
        .collect();
    assert_eq!(audio, [1000, 1001, 1002, 1003]);
}

/// Where a simulated sender's producer time comes from.
#[derive(Clone, Copy, Debug)]
enum Producer {
    /// No sender reports: the arrival time.
    Arrival,
    /// Sender reports that map RTP time onto the sender's wall clock from the first frame on,
    /// so that producer time follows the media clock, drift included (what the KVS C SDK's
    /// sender reports amount to when its frame timestamps drift).
    MediaClock,
}

/// A simulated session, in arrival order: H.264 at 30 fps (a keyframe every 2 s) and 20 ms
/// Opus frames for `secs` seconds of real time. Each track's media clock runs at `rate` per
/// mille of real time: its timestamps advance by one frame duration a frame, its frames are
/// captured a frame duration times 1000 / `rate` apart (975: a clock 2.5% slow). Every sample
/// arrives 20 ms plus up to `jitter_ms` (pseudo-random) after its capture, in order within its
/// track (as the peer's depacketizer hands them over); during `stall` (real ms from, to)
/// nothing arrives, and what was held arrives in one burst when it ends.
struct Session {
    secs: u64,
    video_rate: u64,
    audio_rate: u64,
    producer: Producer,
    jitter_ms: u64,
    stall: Option<(u64, u64)>,
}

impl Session {
    fn samples(&self) -> Vec<Sample> {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut jitter = move || {
            // xorshift64: deterministic, no dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % (self.jitter_ms + 1)
        };
        let mut out = Vec::new();
        for (track, rate) in [
            (TrackKind::Video, self.video_rate),
            (TrackKind::Audio, self.audio_rate),
        ] {
            let mut previous = 0;
            for i in 0u64.. {
                let media_us = match track {
                    // 3000 ticks of the 90 kHz clock a frame.
                    TrackKind::Video => i * 1_000_000 / 30,
                    TrackKind::Audio => i * 20_000,
                };
                let real_us = media_us * 1000 / rate;
                if real_us >= self.secs * 1_000_000 {
                    break;
                }
                let mut arrival_us = (real_us + (20 + jitter()) * 1000).max(previous);
                if let Some((from, to)) = self.stall {
                    if (from * 1000..to * 1000).contains(&arrival_us) {
                        arrival_us = to * 1000;
                    }
                }
                previous = arrival_us;
                let mut s = sample(match (track, i % 60) {
                    (TrackKind::Video, 0) => S::K(0),
                    (TrackKind::Video, _) => S::V(0),
                    (TrackKind::Audio, _) => S::A(0),
                });
                let epoch = |us: u64| UNIX_EPOCH + Duration::from_micros(T0 * 1000 + us);
                s.media_time = Duration::from_micros(media_us);
                s.arrival_time = epoch(arrival_us);
                s.producer_time = match self.producer {
                    Producer::Arrival => s.arrival_time,
                    Producer::MediaClock => epoch(media_us),
                };
                out.push(s);
            }
        }
        // Stable: on a tie the video frame (pushed first) comes first.
        out.sort_by_key(|s| s.arrival_time);
        out
    }
}

#[test]
fn track_clocks_that_drift_from_real_time_are_re_anchored() {
    use Producer::*;
    let session = |video_rate, audio_rate, producer| Session {
        secs: 120,
        video_rate,
        audio_rate,
        producer,
        jitter_ms: 30,
        stall: None,
    };
    // (name, session, whether the tracks are to be re-anchored)
    let cases = [
        (
            "correct clocks with jitter",
            Session {
                jitter_ms: 80,
                ..session(1000, 1000, Arrival)
            },
            false,
        ),
        (
            "correct clocks, a 500 ms stall and a burst",
            Session {
                stall: Some((60_000, 60_500)),
                ..session(1000, 1000, Arrival)
            },
            false,
        ),
        (
            "correct clocks, sender reports",
            session(1000, 1000, MediaClock),
            false,
        ),
        (
            "audio 2.5% slow, no sender reports",
            session(1000, 975, Arrival),
            true,
        ),
        (
            "audio 2.5% slow, sender reports on the drifting clock",
            session(1000, 975, MediaClock),
            true,
        ),
        (
            "audio 2.5% fast, no sender reports",
            session(1000, 1025, Arrival),
            true,
        ),
        (
            "audio 2.5% fast, sender reports on the drifting clock",
            session(1000, 1025, MediaClock),
            true,
        ),
        (
            "audio 2.5% slow, 80 ms jitter and a stall",
            Session {
                jitter_ms: 80,
                stall: Some((60_000, 60_700)),
                ..session(1000, 975, Arrival)
            },
            true,
        ),
        (
            "video 2.5% slow, audio correct",
            session(975, 1000, Arrival),
            true,
        ),
        (
            "video 2.5% fast, audio correct",
            session(1025, 1000, Arrival),
            true,
        ),
    ];
    for (name, session, drifts) in cases {
        let samples = session.samples();
        let sent = samples
            .iter()
            .filter(|s| s.track == TrackKind::Audio)
            .count();
        let mut f = Fragmenter::new(FragmentRules::default());
        let mut out = Vec::new();
        for s in samples {
            out.extend(f.push(s));
        }
        out.extend(f.finish());
        let blocks: Vec<(u64, u64)> = out.iter().flat_map(fragment_blocks).collect();
        let track = |n| -> Vec<u64> { blocks.iter().filter(|b| b.0 == n).map(|b| b.1).collect() };
        let (audio, video) = (track(mkv::AUDIO_TRACK), track(mkv::VIDEO_TRACK));
        let drops = &f.dropped;
        assert!(
            audio.len() * 100 >= sent * 99,
            "{name}: {} of {sent} audio frames kept, dropped {drops:?}",
            audio.len()
        );
        for (kind, t) in [("audio", &audio), ("video", &video)] {
            if let Some(w) = t.windows(2).find(|w| w[0] >= w[1]) {
                panic!("{name}: {kind} timestamps not strictly increasing: {w:?}");
            }
        }
        let (a, v) = (audio.last().unwrap(), video.last().unwrap());
        assert!(
            a.abs_diff(*v) <= 200,
            "{name}: audio ends at {a}, video at {v}"
        );
        let re_anchors = f.re_anchors();
        assert_eq!(
            re_anchors.iter().any(|n| *n > 0),
            drifts,
            "{name}: re-anchored (video, audio) {re_anchors:?}"
        );
    }
}
