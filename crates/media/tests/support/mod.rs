//! Real media for tests: H.264 and Opus made by `ffmpeg` (Debian `ffmpeg`, installed by
//! scripts/test.sh), cut into the samples a storage session's peer would push, and `ffprobe`
//! run on what comes back.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_core::media::{Sample, TrackKind};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} ({e}): install the Debian package ffmpeg (scripts/test.sh does)")
    });
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `seconds` of 320x240 30 fps H.264 (constrained baseline, no B-frames, as WebRTC
/// sends it; a keyframe every second) and a 48 kHz Opus sine in `dir`.
pub fn make_media(dir: &Path, seconds: u32) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (video, audio) = (dir.join("v.h264"), dir.join("a.ogg"));
    let t = seconds.to_string();
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .args([
            "testsrc=size=320x240:rate=30",
            "-t",
            &t,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
        ])
        .arg(&video));
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args(["-t", &t, "-ac", "2", "-c:a", "libopus", "-f", "ogg"])
        .arg(&audio));
    (video, audio)
}

/// H.264 access units of an Annex B file: parameter sets, SEI and AUDs join the next picture.
pub fn access_units(data: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    let mut au = Vec::new();
    let mut key = false;
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        let nal = &data[s..end];
        let nal = &nal[..nal.len() - nal.iter().rev().take_while(|b| **b == 0).count()];
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(nal);
        let ty = nal[0] & 0x1F;
        key |= ty == 5;
        if ty == 1 || ty == 5 {
            units.push((std::mem::take(&mut au), key));
            key = false;
        }
    }
    units
}

/// How long an Opus packet lasts (RFC 6716 §3.1), in µs.
pub fn opus_packet_micros(p: &[u8]) -> u64 {
    let config = p[0] >> 3;
    let frame = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    };
    let frames = match p[0] & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(p.get(1).map_or(1, |b| b & 0x3F)),
    };
    frame * frames
}

/// The Opus packets of an Ogg file (its two header packets skipped).
pub fn opus_packets(path: &Path) -> Vec<Vec<u8>> {
    let mut r = ogg::PacketReader::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    while let Some(p) = r.read_packet().unwrap() {
        out.push(p.data);
    }
    out.split_off(2)
}

/// The session's samples in arrival order: video at 30 fps and audio by its packet durations,
/// produced from `start`, arriving 40 ms later.
pub fn samples(video: &Path, audio: &Path, start: SystemTime) -> Vec<Sample> {
    let mut out = Vec::new();
    let data = std::fs::read(video).unwrap();
    for (i, (au, key)) in access_units(&data).into_iter().enumerate() {
        let t = Duration::from_micros(i as u64 * 1_000_000 / 30);
        out.push(Sample {
            track: TrackKind::Video,
            media_time: t,
            producer_time: start + t,
            arrival_time: start + t + Duration::from_millis(40),
            keyframe: key,
            data: au,
        });
    }
    let mut at = 0u64;
    for p in opus_packets(audio) {
        let t = Duration::from_micros(at);
        at += opus_packet_micros(&p);
        out.push(Sample {
            track: TrackKind::Audio,
            media_time: t,
            producer_time: start + t,
            arrival_time: start + t + Duration::from_millis(40),
            keyframe: false,
            data: p,
        });
    }
    out.sort_by_key(|s| s.arrival_time);
    out
}

pub fn epoch(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// `ffprobe -show_streams -show_format` of a file, as JSON.
pub fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (Debian ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Frames per stream type that `ffmpeg` decodes from the whole file, and the last
/// presentation time it reached (s), by decoding everything.
pub fn decode_counts(path: &Path) -> (u64, u64, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut v, mut a, mut first, mut last) = (0, 0, f64::MAX, 0f64);
    for line in text.lines() {
        let mut parts = line.split(',');
        let kind = parts.next().unwrap_or("");
        let t: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
        first = first.min(t);
        last = last.max(t);
        match kind {
            "video" => v += 1,
            "audio" => a += 1,
            _ => {}
        }
    }
    (v, a, last - first)
}

/// What `ffmpeg` complains of while decoding the whole file (empty when it decodes cleanly).
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
