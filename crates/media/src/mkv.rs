//! The Matroska documents a stream is made of, shaped like Kinesis Video Streams' chunks: each
//! fragment is a complete document (EBML header, a Segment of unknown size, Info, Tracks, one
//! Cluster), so any stored fragment plays on its own and GetMedia's body is a concatenation of
//! them, as AWS's is (docs/media-storage.md "Chunks").
//!
//! What depends on the fragment's place in the stream (its number, the continuation token, how
//! far behind now it is) is not stored: GetMedia writes the fragment tags before the Cluster and
//! its own tags after it when it sends the chunk ([`chunk_parts`]).

use crate::ebml::{id, Writer};

pub const VIDEO_TRACK: u64 = 1;
pub const AUDIO_TRACK: u64 = 2;
/// Opus always runs at 48 kHz (RFC 7845 §5.1).
pub const OPUS_RATE: u32 = 48_000;
/// What the Opus decoder should pre-roll after a seek: 80 ms (the Matroska Opus mapping).
const OPUS_SEEK_PRE_ROLL_NS: u64 = 80_000_000;
const APP: &str = concat!("kvs-signaling ", env!("CARGO_PKG_VERSION"));

/// The tracks of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSetup {
    /// `avcC` built from the stream's SPS and PPS.
    pub avcc: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Audio channels, when the fragment has an audio track.
    pub audio_channels: Option<u8>,
}

/// One SimpleBlock: `rel_ms` from the cluster's timecode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub track: u64,
    pub rel_ms: i16,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// A written fragment: the document and where its Cluster starts (the fragment tags go there).
#[derive(Debug, Clone)]
pub struct Written {
    pub bytes: Vec<u8>,
    pub cluster_offset: usize,
}

/// `OpusHead` (RFC 7845 §5.1) for `channels`, family 0 (mono/stereo), no pre-skip known.
pub fn opus_head(channels: u8) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&OPUS_RATE.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// The document of one fragment: blocks must be in timecode order and the first a video
/// keyframe (the fragmenter guarantees both).
pub fn write_fragment(setup: &TrackSetup, cluster_ms: u64, blocks: &[Block]) -> Written {
    let mut w = Writer::new();
    w.master(id::EBML, |e| {
        e.uint(id::EBML_VERSION, 1)
            .uint(id::EBML_READ_VERSION, 1)
            .uint(id::EBML_MAX_ID_LENGTH, 4)
            .uint(id::EBML_MAX_SIZE_LENGTH, 8)
            .string(id::DOC_TYPE, "matroska")
            .uint(id::DOC_TYPE_VERSION, 4)
            .uint(id::DOC_TYPE_READ_VERSION, 2);
    });
    w.unknown_size(id::SEGMENT);
    w.master(id::INFO, |i| {
        i.uint(id::TIMECODE_SCALE, 1_000_000)
            .string(id::MUXING_APP, APP)
            .string(id::WRITING_APP, APP);
    });
    w.master(id::TRACKS, |t| {
        t.master(id::TRACK_ENTRY, |v| {
            v.uint(id::TRACK_NUMBER, VIDEO_TRACK)
                .uint(id::TRACK_UID, VIDEO_TRACK)
                .uint(id::TRACK_TYPE, 1)
                .string(id::NAME, "kinesis_video")
                .string(id::CODEC_ID, "V_MPEG4/ISO/AVC")
                .binary(id::CODEC_PRIVATE, &setup.avcc)
                .master(id::VIDEO, |p| {
                    p.uint(id::PIXEL_WIDTH, u64::from(setup.width))
                        .uint(id::PIXEL_HEIGHT, u64::from(setup.height));
                });
        });
        if let Some(channels) = setup.audio_channels {
            t.master(id::TRACK_ENTRY, |a| {
                a.uint(id::TRACK_NUMBER, AUDIO_TRACK)
                    .uint(id::TRACK_UID, AUDIO_TRACK)
                    .uint(id::TRACK_TYPE, 2)
                    .string(id::NAME, "kinesis_audio")
                    .string(id::CODEC_ID, "A_OPUS")
                    .binary(id::CODEC_PRIVATE, &opus_head(channels))
                    .uint(id::CODEC_DELAY, 0)
                    .uint(id::SEEK_PRE_ROLL, OPUS_SEEK_PRE_ROLL_NS)
                    .master(id::AUDIO, |p| {
                        p.float(id::SAMPLING_FREQUENCY, f64::from(OPUS_RATE))
                            .uint(id::CHANNELS, u64::from(channels));
                    });
            });
        }
    });
    let cluster_offset = w.buf.len();
    w.master(id::CLUSTER, |c| {
        c.uint(id::TIMECODE, cluster_ms);
        for b in blocks {
            let mut body = Vec::with_capacity(b.data.len() + 4);
            // Track numbers below 127 are one-byte vints.
            body.push(0x80 | (b.track as u8 & 0x7F));
            body.extend_from_slice(&b.rel_ms.to_be_bytes());
            body.push(if b.keyframe { 0x80 } else { 0 });
            body.extend_from_slice(&b.data);
            c.binary(id::SIMPLE_BLOCK, &body);
        }
    });
    Written {
        bytes: w.buf,
        cluster_offset,
    }
}

/// A Tags element of simple tags (`TargetTypeValue` 50, the whole segment).
pub fn tags(pairs: &[(&str, String)]) -> Vec<u8> {
    let mut w = Writer::new();
    w.master(id::TAGS, |t| {
        t.master(id::TAG, |tag| {
            tag.master(id::TARGETS, |x| {
                x.uint(id::TARGET_TYPE_VALUE, 50);
            });
            for (name, value) in pairs {
                tag.master(id::SIMPLE_TAG, |s| {
                    s.string(id::TAG_NAME, name).string(id::TAG_STRING, value);
                });
            }
        });
    });
    w.buf
}

/// A timestamp tag's text: seconds with millisecond precision, as AWS writes them.
pub fn seconds_text(millis: u64) -> String {
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// What GetMedia adds to a stored fragment.
pub struct ChunkTags {
    pub fragment_number: String,
    pub server_ms: u64,
    pub producer_ms: u64,
    pub continuation_token: String,
    pub millis_behind_now: u64,
}

/// A chunk as sent: the stored document split at its Cluster, the fragment tags between the
/// halves, GetMedia's own tags after (inside the unknown-sized Segment).
pub fn chunk_parts(
    stored: &bytes::Bytes,
    cluster_offset: usize,
    t: &ChunkTags,
) -> [bytes::Bytes; 4] {
    let at = cluster_offset.min(stored.len());
    let before = tags(&[
        (
            "AWS_KINESISVIDEO_FRAGMENT_NUMBER",
            t.fragment_number.clone(),
        ),
        (
            "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
            seconds_text(t.server_ms),
        ),
        (
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
            seconds_text(t.producer_ms),
        ),
    ]);
    let after = tags(&[
        (
            "AWS_KINESISVIDEO_CONTINUATION_TOKEN",
            t.continuation_token.clone(),
        ),
        (
            "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
            t.millis_behind_now.to_string(),
        ),
    ]);
    [
        stored.slice(..at),
        before.into(),
        stored.slice(at..),
        after.into(),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn setup() -> TrackSetup {
        TrackSetup {
            avcc: vec![1, 0x42, 0xC0, 0x0D],
            width: 320,
            height: 240,
            audio_channels: Some(2),
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn opus_head_is_rfc7845() {
        let h = opus_head(2);
        assert_eq!(&h[..8], b"OpusHead");
        assert_eq!(&h[8..], &[1, 2, 0, 0, 0x80, 0xBB, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn fragment_starts_with_the_header_and_puts_blocks_in_the_cluster() {
        let blocks = vec![
            Block {
                track: 1,
                rel_ms: 0,
                keyframe: true,
                data: vec![0xAA],
            },
            Block {
                track: 2,
                rel_ms: 20,
                keyframe: true,
                data: vec![0xBB],
            },
            Block {
                track: 1,
                rel_ms: -1,
                keyframe: false,
                data: vec![0xCC],
            },
        ];
        let w = write_fragment(&setup(), 1_700_000_000_123, &blocks);
        assert_eq!(&w.bytes[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        assert!(find(&w.bytes, b"matroska").is_some());
        assert!(find(&w.bytes, b"V_MPEG4/ISO/AVC").is_some());
        assert!(find(&w.bytes, b"A_OPUS").is_some());
        let seg = find(&w.bytes, &[0x18, 0x53, 0x80, 0x67]).unwrap();
        assert_eq!(w.bytes[seg + 4], 0x01);
        assert_eq!(
            &w.bytes[w.cluster_offset..w.cluster_offset + 4],
            &[0x1F, 0x43, 0xB6, 0x75]
        );
        // The blocks, in order: track vint, signed timecode, flags, payload.
        assert!(find(&w.bytes, &[0xA3, 0x85, 0x81, 0x00, 0x00, 0x80, 0xAA]).is_some());
        assert!(find(&w.bytes, &[0xA3, 0x85, 0x82, 0x00, 0x14, 0x80, 0xBB]).is_some());
        assert!(find(&w.bytes, &[0xA3, 0x85, 0x81, 0xFF, 0xFF, 0x00, 0xCC]).is_some());
        // The cluster timecode is the fragment start in ms.
        let tc = 1_700_000_000_123u64.to_be_bytes();
        assert!(find(
            &w.bytes[w.cluster_offset..],
            &[&[0xE7, 0x86][..], &tc[2..]].concat()
        )
        .is_some());
    }

    #[test]
    fn video_only_fragments_have_one_track() {
        let mut s = setup();
        s.audio_channels = None;
        let w = write_fragment(&s, 0, &[]);
        assert!(find(&w.bytes, b"A_OPUS").is_none());
    }

    #[test]
    fn chunks_carry_the_fragment_tags_before_the_cluster_and_getmedias_after() {
        let w = write_fragment(&setup(), 5, &[]);
        let stored = bytes::Bytes::from(w.bytes.clone());
        let parts = chunk_parts(
            &stored,
            w.cluster_offset,
            &ChunkTags {
                fragment_number: "91343852333181432392682062607743920146264484235".into(),
                server_ms: 1_700_000_001_005,
                producer_ms: 1_700_000_000_999,
                continuation_token: "91343852333181432392682062607743920146264484235".into(),
                millis_behind_now: 42,
            },
        );
        assert_eq!(parts[0], stored.slice(..w.cluster_offset));
        assert_eq!(&parts[1][..4], &[0x12, 0x54, 0xC3, 0x67]);
        assert!(find(&parts[1], b"AWS_KINESISVIDEO_FRAGMENT_NUMBER").is_some());
        assert!(find(&parts[1], b"1700000001.005").is_some());
        assert!(find(&parts[1], b"1700000000.999").is_some());
        assert_eq!(&parts[2][..4], &[0x1F, 0x43, 0xB6, 0x75]);
        assert!(find(&parts[3], b"AWS_KINESISVIDEO_MILLIS_BEHIND_NOW").is_some());
        assert!(find(&parts[3], b"AWS_KINESISVIDEO_CONTINUATION_TOKEN").is_some());
    }
}
